//! `halo jit lint`: finds constructs LuaJIT 2.1 does not compile (or only
//! stitches around) in Lua source, without running it.
//!
//! The work is done in Lua by the embedded `halo.jit.lint` module
//! (lualib/halo/jit/lint.lua): the linked LuaJIT parses each file and the
//! module walks the bytecode with `jit.util`, so the lint sees what the JIT
//! sees. This side reads the files, runs that module in a tool VM (no `ngx`
//! API) and prints the findings with the suggestions of [`super::advice`].

use std::io::Write;

use mlua::{Function, Lua, Table, Value};

use super::advice;
use crate::lua::vm::tool_vm;

/// The `--json` output's schema id.
pub const SCHEMA: &str = "halo-jitlint/1";

/// The help of `halo jit lint`.
pub const USAGE: &str = "Usage: halo jit lint [--json] FILE...

Loads (does not run) each Lua file with halo's LuaJIT and reports what the JIT
will not compile: closures created in loops (fnew-in-loop), upvalues closed in
loops (uclo-in-loop), varargs of unknown count in loops (varg-in-loop),
pcall/xpcall in loops (pcall-in-loop) and calls to library functions the JIT
stitches around (nyi-call).

  --json   print {\"schema\":\"halo-jitlint/1\",\"findings\":[...]} instead of text

Exit status: 0 nothing found, 1 findings, 2 usage error or a file that cannot
be read or does not parse.
";

/// One thing the lint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file as given on the command line.
    pub file: String,
    /// 1-based source line.
    pub line: u32,
    /// Rule id: `fnew-in-loop`, `uclo-in-loop`, `varg-in-loop`, `pcall-in-loop`, `nyi-call`.
    pub rule: String,
    /// For `nyi-call` the function as LuaJIT names it (`string.gsub`); for
    /// `pcall-in-loop` `pcall`/`xpcall`; else the bytecode (`FNEW`, `UCLO`, `VARG`).
    pub detail: String,
    /// Whether the construct is inside a loop of its function.
    pub in_loop: bool,
    /// What was found, in words.
    pub message: String,
}

impl Finding {
    /// The suggestion shared with `halo jit report`.
    pub fn suggestion(&self) -> &'static str {
        advice::for_lint(&self.rule, &self.detail)
    }
}

/// Why a file could not be linted.
#[derive(Debug)]
pub enum LintError {
    /// The source does not parse: LuaJIT's message, `FILE:LINE: text`.
    Syntax(String),
    /// The lint itself failed (a bug, or a broken build).
    Vm(mlua::Error),
}

impl std::fmt::Display for LintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LintError::Syntax(m) => f.write_str(m),
            LintError::Vm(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl From<mlua::Error> for LintError {
    fn from(e: mlua::Error) -> Self {
        LintError::Vm(e)
    }
}

/// A linter: one tool VM with `halo.jit.lint` loaded, reused for every file.
pub struct Linter {
    lua: Lua,
    lint_source: Function,
}

impl Linter {
    /// Creates the VM and loads the lint module.
    pub fn new() -> mlua::Result<Linter> {
        let lua = tool_vm()?;
        let module: Table = lua.load(r#"return require "halo.jit.lint""#).eval()?;
        let lint_source = module.get("lint_source")?;
        Ok(Linter { lua, lint_source })
    }

    /// Lints Lua source `src` (bytes, as on disk), naming it `file`.
    pub fn lint_source(&self, src: &[u8], file: &str) -> Result<Vec<Finding>, LintError> {
        let src = self.lua.create_string(src)?;
        let (found, err): (Value, Option<String>) = self.lint_source.call((src, file))?;
        let Value::Table(found) = found else {
            return Err(LintError::Syntax(err.unwrap_or_else(|| format!("{file}: cannot load"))));
        };
        let mut out = Vec::new();
        for f in found.sequence_values::<Table>() {
            let f = f?;
            out.push(Finding {
                file: f.get("file")?,
                line: f.get("line")?,
                rule: f.get("rule")?,
                detail: f.get("detail")?,
                in_loop: f.get("in_loop")?,
                message: f.get("message")?,
            });
        }
        Ok(out)
    }

    /// Whether this VM compiles `unpack` (probed at load; see lint.lua).
    pub fn unpack_compiled(&self) -> mlua::Result<bool> {
        let module: Table = self.lua.load(r#"return require "halo.jit.lint""#).eval()?;
        module.get("unpack_compiled")
    }
}

/// The findings as `halo-jitlint/1` JSON, one line: `{"schema":...,"findings":[...]}`.
///
/// Written by hand around serde_json's escaping so the keys keep the
/// documented order (serde_json's map sorts them without `preserve_order`).
pub fn to_json(findings: &[Finding]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let list: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                r#"{{"file":{},"line":{},"rule":{},"detail":{},"in_loop":{},"suggestion":{},"message":{}}}"#,
                q(&f.file),
                f.line,
                q(&f.rule),
                q(&f.detail),
                f.in_loop,
                q(f.suggestion()),
                q(&f.message)
            )
        })
        .collect();
    format!(r#"{{"schema":{},"findings":[{}]}}"#, q(SCHEMA), list.join(","))
}

/// The findings as text: `FILE:LINE: RULE: message` and an indented suggestion.
pub fn to_text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!("{}:{}: {}: {}\n    suggestion: {}\n", f.file, f.line, f.rule, f.message, f.suggestion()));
    }
    s
}

/// Runs `halo jit lint ARGS`; returns the exit code (0 clean, 1 findings, 2 errors).
pub fn cli(args: &[String]) -> i32 {
    let mut json = false;
    let mut files = Vec::new();
    let mut options_done = false;
    for a in args {
        match a.as_str() {
            _ if options_done => files.push(a.clone()),
            "--" => options_done = true,
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            o if o.starts_with('-') && o != "-" => {
                eprintln!("halo jit lint: unknown option \"{o}\"");
                eprint!("{USAGE}");
                return 2;
            }
            _ => files.push(a.clone()),
        }
    }
    if files.is_empty() {
        eprint!("{USAGE}");
        return 2;
    }

    let linter = match Linter::new() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("halo jit lint: cannot start the Lua VM: {e}");
            return 2;
        }
    };
    // Keep going after a bad file: one typo should not hide the findings
    // of the others, but it still decides the exit status.
    let mut failed = false;
    let mut findings = Vec::new();
    for file in &files {
        let src = match std::fs::read(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("halo jit lint: {file}: {e}");
                failed = true;
                continue;
            }
        };
        match linter.lint_source(&src, file) {
            Ok(f) => findings.extend(f),
            Err(e) => {
                eprintln!("halo jit lint: {e}");
                failed = true;
            }
        }
    }

    let out = if json { to_json(&findings) + "\n" } else { to_text(&findings) };
    // A closed pipe (`| head`) is not worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    if failed {
        2
    } else if findings.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(src: &str) -> Vec<(u32, String, String, bool)> {
        let l = Linter::new().unwrap();
        l.lint_source(src.as_bytes(), "t.lua")
            .unwrap()
            .into_iter()
            .map(|f| (f.line, f.rule, f.detail, f.in_loop))
            .collect()
    }

    fn f(line: u32, rule: &str, detail: &str, in_loop: bool) -> (u32, String, String, bool) {
        (line, rule.to_owned(), detail.to_owned(), in_loop)
    }

    #[test]
    fn lint_finds_closures_and_upvalue_closing_in_loops_only() {
        let src = "\
local t = {}
local g = function() end
for i = 1, 10 do
  t[i] = function() return i end
end
while #t > 0 do
  local x = t[#t]
  t[#t] = nil
  local h = function() return x end
end
for i = 1, 10 do t[i] = function() return g end end
";
        // UCLO gets the line of the block's last statement; a closure that
        // captures only outer locals needs no UCLO.
        assert_eq!(
            lint(src),
            vec![
                f(4, "fnew-in-loop", "FNEW", true),
                f(4, "uclo-in-loop", "UCLO", true),
                f(9, "fnew-in-loop", "FNEW", true),
                f(9, "uclo-in-loop", "UCLO", true),
                f(11, "fnew-in-loop", "FNEW", true),
            ]
        );
    }

    #[test]
    fn lint_varargs_only_of_unknown_count_in_loops() {
        let src = "\
local function f(...)
  local a, b = ...
  local all = {...}
  for i = 1, 3 do
    local n = select('#', ...)
    local x = select(i, ...)
    local y = select(-1, ...)
    local t = {...}
    g(...)
    local c = ...
  end
end
local select = select
local function h(...)
  for i = 1, select('#', ...) do
    local v = (select(i, ...))
  end
end
";
        assert_eq!(
            lint(src),
            vec![f(7, "varg-in-loop", "VARG", true), f(8, "varg-in-loop", "VARG", true), f(9, "varg-in-loop", "VARG", true)]
        );
    }

    #[test]
    fn lint_calls_by_global_path_method_and_local_copy() {
        let src = "\
local gsub = string.gsub
local s = gsub('a', 'a', 'b')
for i = 1, 3 do
  local m = s:match('x')
  local r = ngx.re.match(s, 'x')
  local ok = pcall(error, 'x')
  local t = os.time()
  io.write('x')
  io.stdout:write('x')
  local e = getfenv(0)
end
print(unpack({1}))
local ok2 = pcall(tostring, 1)
debug.getmetatable(s)
for _, v in ipairs({}) do xpcall(v, v) end
";
        assert_eq!(
            lint(src),
            vec![
                f(2, "nyi-call", "string.gsub", false),
                f(4, "nyi-call", "string.match", true),
                f(6, "pcall-in-loop", "pcall", true),
                f(7, "nyi-call", "os.time", true),
                f(12, "nyi-call", "print", false),
                f(12, "nyi-call", "unpack", false),
                f(15, "pcall-in-loop", "xpcall", true),
            ]
        );
    }

    #[test]
    fn lint_reports_syntax_errors_with_file_and_line_and_skips_shebang() {
        let l = Linter::new().unwrap();
        match l.lint_source(b"local x = 1\nlocal = 2\n", "bad.lua") {
            Err(LintError::Syntax(m)) => assert!(m.starts_with("bad.lua:2: "), "{m}"),
            other => panic!("{other:?}"),
        }
        // Line numbers survive a #! line.
        let found = l.lint_source(b"#!/usr/bin/env luajit\nprint(1)\n", "s.lua").unwrap();
        assert_eq!(found[0].line, 2);
        assert!(l.lint_source(b"", "empty.lua").unwrap().is_empty());
    }

    #[test]
    fn lint_unpack_probe_matches_this_vm() {
        // This vendored LuaJIT (2.1.1767980792) predates unpack's recorder
        // (upstream 52cdb12e, 2026-08): it stitches. If a bump changes that,
        // the probe follows and this test says so.
        assert!(!Linter::new().unwrap().unpack_compiled().unwrap());
    }

    #[test]
    fn lint_output_formats() {
        let f = Finding {
            file: "a.lua".into(),
            line: 3,
            rule: "nyi-call".into(),
            detail: "string.gsub".into(),
            in_loop: false,
            message: "m".into(),
        };
        let text = to_text(std::slice::from_ref(&f));
        assert_eq!(text, format!("a.lua:3: nyi-call: m\n    suggestion: {}\n", advice::for_callee("string.gsub")));
        let json = to_json(&[f]);
        assert!(json.starts_with(r#"{"schema":"halo-jitlint/1","findings":[{"file":"a.lua","line":3,"#), "{json}");
        let j: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(j["schema"], SCHEMA);
        assert_eq!(j["findings"][0]["line"], 3);
        assert_eq!(j["findings"][0]["in_loop"], false);
        assert_eq!(j["findings"][0]["suggestion"], advice::for_callee("string.gsub"));
    }
}
