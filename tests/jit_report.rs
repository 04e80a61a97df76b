//! `halo jit report` run as the real binary over synthetic `halo-jitlog/1`
//! files shaped like the capture's output (two workers).

use std::path::Path;
use std::process::{Command, Output};

fn lua(chunk: &str, line: i64) -> String {
    format!(r#"{{"kind":"lua","chunk":"{chunk}","line":{line},"func":{line}}}"#)
}

fn open(worker: i64) -> String {
    format!(
        r#"{{"ev":"open","v":1,"pid":{},"worker":{worker},"role":"worker","time":1767225600.25,"luajit":"LuaJIT 2.1.1787165859","arch":"x64","mode":"events"}}"#,
        4100 + worker
    )
}

/// One trace record of generation 0 (worker 1 writes its flush literally).
fn trace(ev: &str, tr: i64, kind: &str, parent: i64, exit: i64, loc: &str, rest: &str) -> String {
    format!(r#"{{"ev":"{ev}","gen":0,"tr":{tr},"kind":"{kind}","parent":{parent},"exit":{exit},"loc":{loc}{rest}}}"#)
}

fn root(tr: i64, loc: &str) -> String {
    trace("start", tr, "root", 0, 0, loc, "")
}

fn stop(tr: i64, kind: &str, parent: i64, exit: i64, loc: &str, link: &str, extra: &str) -> String {
    trace("stop", tr, kind, parent, exit, loc, &format!(r#","link":"{link}","target":0,"nins":57,"nexit":4{extra}"#))
}

fn abort(tr: i64, loc: &str, at: &str, code: i64, id: &str, reason: &str, extra: &str) -> String {
    trace("abort", tr, "root", 0, 0, loc, &format!(r#","at":{at},"code":{code},"id":"{id}","reason":"{reason}"{extra}"#))
}

/// Worker 0: a loop in app/handler.lua creating a closure (blacklisted after
/// ten FNEW aborts, then hit by a caller), a string.gsub stitch in
/// lib/util.lua, a `return` link, an interpreter stub, a hot exit, samples,
/// and one profiler-induced abort.
fn worker0() -> String {
    let (h12, h14, m5) = (lua("app/handler.lua", 12), lua("app/handler.lua", 14), lua("app/main.lua", 5));
    let (u3, u4, u5, u8, e1) = (lua("lib/util.lua", 3), lua("lib/util.lua", 4), lua("lib/util.lua", 5), lua("lib/util.lua", 8), lua("app/entry.lua", 1));
    let mut l = vec![open(0)];
    for _ in 0..10 {
        l.push(root(1, &h12));
        l.push(abort(1, &h12, &h14, 7, "NYIBC", "NYI: bytecode FNEW", r#","nyi":"FNEW""#));
    }
    l.push(root(1, &m5));
    l.push(abort(1, &m5, &h12, 5, "BLACKL", "blacklisted", ""));
    l.push(root(1, &u3));
    l.push(stop(1, "root", 0, 0, &u3, "stitch", r#","callee":{"kind":"ffunc","name":"string.gsub"}"#));
    l.push(trace("start", 2, "stitch", 1, -1, &u5, ""));
    l.push(stop(2, "stitch", 1, -1, &u5, "root", ""));
    l.push(root(3, &e1));
    l.push(stop(3, "root", 0, 0, &e1, "return", ""));
    l.push(trace("start", 4, "side", 1, 2, &u4, ""));
    l.push(stop(4, "side", 1, 2, &u4, "interpreter", ""));
    l.push(r#"{"ev":"exits","gen":0,"tr":1,"exit":3,"n":480}"#.into());
    l.push(r#"{"ev":"exits","gen":0,"tr":1,"exit":3,"n":20}"#.into());
    l.push(root(5, &u8));
    l.push(abort(5, &u8, &u8, 0, "RECERR", "error thrown or hook called during recording", r#","profiler":true"#));
    l.push(format!(
        r#"{{"ev":"samples","interval_ms":10,"counts":[{{"state":"I","loc":{h12},"n":300}},{{"state":"N","loc":{u3},"n":600}},{{"state":"C","loc":{{"kind":"ffunc","name":"string.gsub"}},"n":80}},{{"state":"G","loc":{u3},"n":20}}]}}"#
    ));
    l.push(format!(r#"{{"ev":"blacklist","site":{h12},"op":"ILOOP"}}"#));
    l.push(r#"{"ev":"close","time":1767225660.5}"#.into());
    l.join("\n") + "\n"
}

/// Worker 1: a short loop that aborts once and then compiles (recovered),
/// and a flush.
fn worker1() -> String {
    let (u3, u6) = (lua("lib/util.lua", 3), lua("lib/util.lua", 6));
    [
        open(1),
        root(1, &u3),
        abort(1, &u3, &u6, 8, "LLEAVE", "leaving loop in root trace", ""),
        root(1, &u3),
        stop(1, "root", 0, 0, &u3, "loop", ""),
        r#"{"ev":"flush","gen":1}"#.into(),
        r#"{"ev":"close","time":1767225660.5}"#.into(),
    ]
    .join("\n")
        + "\n"
}

fn logs(dir: &Path) -> Vec<String> {
    let a = dir.join("jit-w0-4100.jsonl");
    let b = dir.join("jit-w1-4101.jsonl");
    std::fs::write(&a, worker0()).unwrap();
    std::fs::write(&b, worker1()).unwrap();
    vec![a.to_string_lossy().into_owned(), b.to_string_lossy().into_owned()]
}

fn report(args: &[&str], files: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halo")).args(["jit", "report"]).args(args).args(files).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn report_text_has_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let o = report(&[], &logs(dir.path()));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    for s in [
        "== halo jit report: 2 workers",
        "1. Summary",
        "2. Traces by source line",
        "3. Aborts",
        "4. Blacklist chain",
        "5. Stitched functions",
        "6. Hot side exits",
        "7. Interpreter share",
        "Findings:",
        "gate: off",
    ] {
        assert!(out.contains(s), "missing {s:?} in:\n{out}");
    }
    assert!(out.contains("NYI: bytecode FNEW"));
    assert!(out.contains("string.gsub"));
    assert!(out.contains("lib/util.lua:5"), "stitch call site:\n{out}");
    assert!(out.contains("trace from app/main.lua:5 hit it"), "blacklist cascade:\n{out}");
    assert!(out.contains("profiler-induced"));
}

#[test]
fn report_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let o = report(&["--json"], &logs(dir.path()));
    assert_eq!(o.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(doc["schema"], "halo-jitreport/1");
    for k in ["meta", "summary", "traces", "aborts", "blacklist", "stitches", "returns", "exits", "profile", "findings", "gate"] {
        assert!(doc.get(k).is_some(), "missing {k}");
    }
    assert_eq!(doc["summary"]["workers"], 2);
    assert_eq!(doc["summary"]["flushes"], 1);
    assert_eq!(doc["blacklist"][0]["op"], "ILOOP");
    assert_eq!(doc["stitches"][0]["sites"][0]["call_site"]["line"], 5);
    assert_eq!(doc["exits"][0]["n"], 500);
    assert_eq!(doc["gate"]["result"], "off");
    let f = doc["findings"].as_array().unwrap();
    assert!(f.iter().all(|f| f["id"].as_str().is_some_and(|i| i.len() == 8)));
    for kind in ["abort", "blacklist", "stitch", "return", "interpreter", "flush", "exit"] {
        assert!(f.iter().any(|x| x["kind"] == kind), "no {kind} finding");
    }
}

#[test]
fn report_fail_on_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let files = logs(dir.path());
    let o = report(&["--fail-on", "abort"], &files);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("gate: FAIL"));
    // lib/ has only a recovered and a profiler-induced abort.
    let o = report(&["--fail-on", "abort", "--paths", "lib/**"], &files);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("gate: PASS"));
    assert_eq!(report(&["--fail-on", "stitch", "--paths", "lib/**"], &files).status.code(), Some(1));
    assert_eq!(report(&["--fail-on", "blacklist,return", "--paths", "other/**"], &files).status.code(), Some(0));
    let o = report(&["--json", "--fail-on", "exit"], &files);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["gate"]["result"], "fail");
    assert_eq!(doc["gate"]["violations"][0]["kind"], "exit");
    let o = report(&["--fail-on", "bogus"], &files);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("halo jit report: "));
}

#[test]
fn report_baseline_suppresses_old_findings() {
    let dir = tempfile::tempdir().unwrap();
    let files = logs(dir.path());
    let base = dir.path().join("base.json");
    std::fs::write(&base, report(&["--json"], &files).stdout).unwrap();
    let all = "abort,stitch,blacklist,return,interpreter,flush,exit";
    let o = report(&["--fail-on", all, "--baseline", base.to_str().unwrap()], &files);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("suppressed by baseline"));
}

#[test]
fn report_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("jit-w0-1.jsonl");
    std::fs::write(&bad, format!("{}\n{{\"ev\":\"stop\",\n", open(0))).unwrap();
    let o = report(&[], &[bad.to_string_lossy().into_owned()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("jit-w0-1.jsonl:2:"), "{err}");
    assert_eq!(report(&[], &[]).status.code(), Some(2));
    assert_eq!(report(&[], &["/nonexistent/jit-w9-1.jsonl".into()]).status.code(), Some(2));
    assert_eq!(report(&["--frobnicate"], &["x".into()]).status.code(), Some(2));
}
