//! `halo jit lint` through the real binary: findings with exact lines, the
//! text and JSON output, and the exit status (0 clean, 1 findings, 2 errors).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn halo(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halo")).arg("jit").arg("lint").args(args).current_dir(cwd).output().unwrap()
}

fn write(dir: &Path, name: &str, src: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, src).unwrap();
    p
}

/// One construct per rule; the comment on each line says what it should get.
const SAMPLE: &str = r#"local gsub = string.gsub              -- 1: not a call: nothing
local M = {}
function M.handler(uri, ...)
  local n = 0
  for i = 1, 10 do
    local f = function() return i end   -- 6: fnew-in-loop
    n = n + f()                         -- 7: uclo-in-loop (the block's last line)
  end
  local s = uri:gsub("/", "_")          -- 9: nyi-call string.gsub (method)
  for _, v in ipairs({ ... }) do        -- 10: VARG outside the loop: nothing
    local args = { ... }                -- 11: varg-in-loop
    local ok = pcall(tostring, v)       -- 12: pcall-in-loop
    n = n + #table.concat(args)
  end
  while n > 0 do
    n = n - math.fmod(n, 3) - 1         -- 16: nyi-call math.fmod (in loop)
  end
  gsub(s, "x", "y")                     -- 18: an upvalue: not followed
  return string.gsub(s, "x", "y")       -- 19: nyi-call string.gsub
end
return M
"#;

#[test]
fn lint_reports_each_rule_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sample.lua", SAMPLE);
    let out = halo(&["sample.lua"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let found: Vec<(u32, &str)> = stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let mut parts = l.splitn(4, ": ");
            let loc = parts.next().unwrap();
            let rule = parts.next().unwrap();
            (loc.strip_prefix("sample.lua:").unwrap().parse().unwrap(), rule)
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (6, "fnew-in-loop"),
            (7, "uclo-in-loop"),
            (9, "nyi-call"),
            (11, "varg-in-loop"),
            (12, "pcall-in-loop"),
            (16, "nyi-call"),
            (19, "nyi-call"),
        ],
        "{stdout}"
    );
    // Every finding has its suggestion line, from jit::advice.
    assert_eq!(stdout.lines().filter(|l| l.starts_with("    suggestion: ")).count(), found.len());
    assert!(stdout.contains("sample.lua:9: nyi-call: string.gsub is not compiled"), "{stdout}");
    assert!(stdout.contains("probably: method call :gsub on a string"), "{stdout}");
    assert!(stdout.contains("use ngx.re.gsub"), "{stdout}");
}

#[test]
fn lint_json_output() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sample.lua", SAMPLE);
    let out = halo(&["--json", "sample.lua"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(r#"{"schema":"halo-jitlint/1","findings":[{"#), "{stdout}");
    // One object per finding, with every field.
    assert_eq!(stdout.matches(r#""file":"sample.lua""#).count(), 7, "{stdout}");
    assert!(
        stdout.contains(r#""line":16,"#)
            && stdout.contains(r#""detail":"math.fmod""#)
            && stdout.contains(r#""in_loop":true"#)
            && stdout.contains(r#""in_loop":false"#)
            && stdout.contains(r#""suggestion":"math.fmod is not compiled"#),
        "{stdout}"
    );
}

#[test]
fn lint_clean_file_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "clean.lua",
        r#"
local find, sub = string.find, string.sub
local function split(s, sep)
  local out, i = {}, 1
  while true do
    local j = find(s, sep, i, true)
    if not j then break end
    out[#out + 1] = sub(s, i, j - 1)
    i = j + #sep
  end
  out[#out + 1] = sub(s, i)
  return out
end
return { split = split, re = function(s) return ngx.re.match(s, "a") end }
"#,
    );
    let out = halo(&["clean.lua"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty());
    let out = halo(&["--json", "clean.lua"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"schema\":\"halo-jitlint/1\",\"findings\":[]}\n");
}

#[test]
fn lint_errors_exit_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.lua", "local x = 1\nlocal y = = 2\n");
    write(dir.path(), "ok.lua", "print('x')\n");
    // A syntax error still lets the other files be linted.
    let out = halo(&["bad.lua", "ok.lua"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("halo jit lint: bad.lua:2: "), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok.lua:1: nyi-call: print"));

    let out = halo(&["missing.lua"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("halo jit lint: missing.lua: "));

    // No files: usage.
    let out = halo(&[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: halo jit lint"));
}
