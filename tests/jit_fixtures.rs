//! The fixtures of jit-logs/fixtures/ (each provokes one class of JIT event)
//! run through the real path: served by halo with `lua_jit_log` on, the
//! worker stopped gracefully, then `halo jit report --json` over its log.
//! The assertions are about the report's classification (event kinds and
//! where), never counts: the JIT's random seed makes counts vary.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Serves `fixture` once with capture on and returns the report (JSON).
fn report(fixture: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("jit-logs/fixtures").join(fixture);
    assert!(file.is_file(), "{}", file.display());
    let conf = http_conf(&format!(
        "    lua_jit_log jit;\n    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        \
         location / {{ content_by_lua_file {}; }}\n    }}",
        file.display()
    ));
    let mut h = Prefix::new().start(&conf);
    let r = h.get("/");
    assert_eq!(r.text(), "ok\n", "{fixture}: {}", h.logs());
    h.signal(libc::SIGQUIT);
    assert!(h.wait_exit(Duration::from_secs(10)).is_some(), "server did not stop\n{}", h.logs());

    let logs: Vec<_> = std::fs::read_dir(h.path().join("jit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert!(!logs.is_empty(), "no JIT log written");
    let out = Command::new(bin()).args(["jit", "report", "--json"]).args(&logs).output().unwrap();
    assert!(out.status.success(), "report failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report JSON: {e}"))
}

/// A location in the fixture file itself at `line` (None: any line).
fn is_at(loc: &Value, fixture: &str, line: Option<i64>) -> bool {
    loc["kind"] == "lua"
        && loc["chunk"].as_str().is_some_and(|c| c.ends_with(&format!("fixtures/{fixture}")))
        && line.is_none_or(|l| loc["line"] == l)
}

/// The abort groups with lj_traceerr id `id` (and NYI bytecode `nyi`).
fn aborts<'a>(rep: &'a Value, id: &str, nyi: Option<&str>) -> Vec<&'a Value> {
    rep["aborts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == id && nyi.is_none_or(|n| a["nyi"] == n))
        .collect()
}

/// Asserts an abort of class (id, nyi) recorded at `fixture:at_line`, and
/// that the report's finding for it carries a suggestion.
fn assert_abort(rep: &Value, fixture: &str, id: &str, nyi: Option<&str>, at_line: i64) {
    let found = aborts(rep, id, nyi);
    let a = found
        .iter()
        .find(|a| is_at(&a["at"], fixture, Some(at_line)))
        .unwrap_or_else(|| panic!("{fixture}: no {id} {nyi:?} abort at line {at_line}; report:\n{rep:#}"));
    assert!(!a["suggestion"].as_str().unwrap().is_empty());
    let id = a["finding"].as_str().unwrap();
    assert!(rep["findings"].as_array().unwrap().iter().any(|f| f["id"] == id), "finding {id} listed");
}

#[test]
fn nyi_bytecode_fnew() {
    let rep = report("nyi_fnew.lua");
    assert_abort(&rep, "nyi_fnew.lua", "NYIBC", Some("FNEW"), 13);
    let a = aborts(&rep, "NYIBC", Some("FNEW"))[0];
    assert_eq!(a["reason"], "NYI: bytecode FNEW", "decoded with the running VM's vmdef");
}

#[test]
fn nyi_bytecode_uclo() {
    let rep = report("nyi_uclo.lua");
    assert_abort(&rep, "nyi_uclo.lua", "NYIBC", Some("UCLO"), 16);
}

#[test]
fn nyi_bytecode_varg() {
    let rep = report("nyi_varg.lua");
    assert_abort(&rep, "nyi_varg.lua", "NYIBC", Some("VARG"), 14);
}

/// The stitch of `name`: its call sites must include `fixture:line`.
fn assert_stitch(rep: &Value, fixture: &str, name: &str, kind: &str, line: i64) {
    let s = rep["stitches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{fixture}: no stitch of {name}; report:\n{rep:#}"));
    assert_eq!(s["callee"]["kind"], kind);
    assert!(
        s["sites"].as_array().unwrap().iter().any(|site| is_at(&site["call_site"], fixture, Some(line))),
        "{fixture}: call site line {line}: {s:#}"
    );
    assert!(s["suggestion"].as_str().unwrap().contains(if kind == "cfunc" { "FFI" } else { "ngx.re.gsub" }), "{s:#}");
}

#[test]
fn stitched_library_function() {
    let rep = report("stitch_ff.lua");
    assert_stitch(&rep, "stitch_ff.lua", "string.gsub", "ffunc", 14);
}

#[test]
fn stitched_c_function_is_named() {
    let rep = report("stitch_c.lua");
    assert_stitch(&rep, "stitch_c.lua", "halo_lua_now", "cfunc", 17);
}

#[test]
fn return_under_pcall_and_error() {
    let rep = report("return_pcall.lua");
    let returns = rep["returns"].as_array().unwrap();
    assert!(
        returns.iter().any(|r| r["link"] == "return" && is_at(&r["loc"], "return_pcall.lua", Some(18))),
        "trace ending in a return link at line 18; report:\n{rep:#}"
    );
    assert_abort(&rep, "return_pcall.lua", "NYIRETL", None, 21);
}

#[test]
fn leaving_a_loop() {
    let rep = report("loop_leave.lua");
    let a = aborts(&rep, "LLEAVE", None);
    assert!(a.iter().any(|a| is_at(&a["start"], "loop_leave.lua", Some(14))), "report:\n{rep:#}");
}

#[test]
fn inner_loop() {
    let rep = report("loop_inner.lua");
    assert_abort(&rep, "loop_inner.lua", "LINNER", None, 18);
    let a = aborts(&rep, "LINNER", None);
    assert!(a.iter().any(|a| is_at(&a["start"], "loop_inner.lua", Some(15))));
}

#[test]
fn loop_unroll_limit() {
    let rep = report("loop_unroll.lua");
    assert_abort(&rep, "loop_unroll.lua", "LUNROLL", None, 16);
}

#[test]
fn trace_too_long() {
    let rep = report("trace_too_long.lua");
    let a = aborts(&rep, "TRACEOV", None);
    assert!(a.iter().any(|a| is_at(&a["start"], "trace_too_long.lua", Some(12))), "report:\n{rep:#}");
}

#[test]
fn blacklist_cascade() {
    let rep = report("blacklist.lua");
    let site = rep["blacklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| is_at(&b["site"], "blacklist.lua", Some(29)))
        .unwrap_or_else(|| panic!("blacklist.lua:29 not blacklisted; report:\n{rep:#}"));
    // Cause -> penalised start -> the caller that ran into it.
    assert!(site["causes"].as_array().unwrap().iter().any(|c| c["nyi"] == "VARG"), "{site:#}");
    assert_eq!(site["op"], "ILOOP", "the bytecode scan found the patched loop: {site:#}");
    assert_eq!(site["source"], "scan");
    assert!(
        site["cascade"].as_array().unwrap().iter().any(|c| is_at(&c["start"], "blacklist.lua", Some(37))),
        "the driver loop hit the blacklisted loop: {site:#}"
    );
    assert!(!aborts(&rep, "BLACKL", None).is_empty());
}

#[test]
fn side_exits_and_a_side_trace() {
    let rep = report("side_exits.lua");
    assert!(rep["summary"]["started"]["side"].as_i64().unwrap() >= 1, "a side trace; report:\n{rep:#}");
    let exits = rep["exits"].as_array().unwrap();
    assert!(
        exits.iter().any(|e| is_at(&e["start"], "side_exits.lua", Some(13)) && e["n"].as_i64().unwrap() > 0 && e["side"] == "compiled"),
        "exits of the loop's trace, with a compiled side trace: {exits:#?}"
    );
}
