//! Unit tests of `halo jit report` over synthetic record sequences shaped like
//! the capture's (real reason texts, link names and bytecode names).

use super::analyse::{analyse, Analysis, SideOutcome};
use super::findings::{self, Finding};
use super::parse::{parse_str, Loc};
use super::*;

fn lua(chunk: &str, line: i64) -> String {
    format!(r#"{{"kind":"lua","chunk":"{chunk}","line":{line},"func":1}}"#)
}

fn ffunc(name: &str) -> String {
    format!(r#"{{"kind":"ffunc","name":"{name}"}}"#)
}

fn open(worker: i64) -> String {
    format!(
        r#"{{"ev":"open","v":1,"pid":{},"worker":{worker},"role":"worker","time":1700000000.5,"luajit":"LuaJIT 2.1.1787165859","arch":"x64","mode":"events"}}"#,
        1000 + worker
    )
}

fn start(gen: i64, tr: i64, kind: &str, parent: i64, exit: i64, loc: &str) -> String {
    format!(r#"{{"ev":"start","gen":{gen},"tr":{tr},"kind":"{kind}","parent":{parent},"exit":{exit},"loc":{loc}}}"#)
}

// Generation 0: every test that needs another generation writes the record itself.
fn stop(tr: i64, kind: &str, parent: i64, exit: i64, loc: &str, link: &str, extra: &str) -> String {
    format!(
        r#"{{"ev":"stop","gen":0,"tr":{tr},"kind":"{kind}","parent":{parent},"exit":{exit},"loc":{loc},"link":"{link}","target":0,"nins":42,"nexit":3{extra}}}"#
    )
}

fn root_stop(tr: i64, loc: &str, link: &str) -> String {
    stop(tr, "root", 0, 0, loc, link, "")
}

fn abort(tr: i64, loc: &str, at: &str, code: i64, id: &str, reason: &str, extra: &str) -> String {
    format!(
        r#"{{"ev":"abort","gen":0,"tr":{tr},"kind":"root","parent":0,"exit":0,"loc":{loc},"at":{at},"code":{code},"id":"{id}","reason":"{reason}"{extra}}}"#
    )
}

fn fnew(tr: i64, loc: &str, at: &str) -> String {
    abort(tr, loc, at, 7, "NYIBC", "NYI: bytecode FNEW", r#","nyi":"FNEW""#)
}

fn log(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

fn run(files: &[(&str, String)]) -> (Analysis, Vec<Finding>) {
    let mut sources = Vec::new();
    for (name, text) in files {
        sources.extend(parse_str(name, text).expect("parses"));
    }
    let a = analyse(&sources);
    let f = findings::build(&a);
    (a, f)
}

fn one(lines: &[String]) -> (Analysis, Vec<Finding>) {
    run(&[("jit-w0-1000.jsonl", log(lines))])
}

fn loc(chunk: &str, line: i64) -> Loc {
    Loc { kind: "lua".into(), chunk: chunk.into(), line, func: 1, name: String::new() }
}

fn gate_ids(f: &[Finding], kinds: &str, paths: &[&str]) -> Vec<String> {
    let kinds = findings::parse_kinds(kinds).unwrap();
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    let g = findings::gate(f, &kinds, &paths).unwrap();
    g.violations.iter().map(|v| f[v.finding].id.clone()).collect()
}

#[test]
fn report_groups_aborts_by_reason_start_and_at() {
    let (h, h3, h9) = (lua("app/h.lua", 1), lua("app/h.lua", 3), lua("app/h.lua", 9));
    let (a, _) = run(&[
        ("w0", log(&[open(0), start(0, 1, "root", 0, 0, &h), fnew(1, &h, &h3), start(0, 1, "root", 0, 0, &h), fnew(1, &h, &h3), fnew(1, &h, &h9)])),
        ("w1", log(&[open(1), fnew(1, &h, &h3)])),
    ]);
    assert_eq!(a.aborts.len(), 2);
    let g = &a.aborts[0];
    assert_eq!((g.count, g.at.line, g.nyi.as_deref()), (3, 3, Some("FNEW")));
    assert_eq!(g.workers.iter().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(g.kinds.root, 3);
    assert_eq!(a.aborts[1].count, 1);
    assert_eq!(a.summary.aborted.total, 4);
    assert_eq!(a.summary.started.root, 2);
    assert_eq!(a.workers.len(), 2);
}

#[test]
fn report_recovered_only_when_the_start_completes_later_in_the_same_worker() {
    let (h, h2, k, k2) = (lua("app/h.lua", 1), lua("app/h.lua", 2), lua("app/k.lua", 1), lua("app/k.lua", 2));
    let too_deep = |l: &str, at: &str| abort(1, l, at, 3, "STACKOV", "trace too deep", "");
    let (a, f) = run(&[
        // h: aborts, then compiles: recovered. k: compiles, then aborts: not recovered.
        ("w0", log(&[open(0), too_deep(&h, &h2), root_stop(1, &h, "loop"), root_stop(2, &k, "loop"), too_deep(&k, &k2)])),
        // k's completion in w0 does not recover w1's abort.
        ("w1", log(&[open(1), too_deep(&k, &k2)])),
    ]);
    let h_group = a.aborts.iter().find(|g| g.start.chunk == "app/h.lua").unwrap();
    let k_group = a.aborts.iter().find(|g| g.start.chunk == "app/k.lua").unwrap();
    assert!(h_group.recovered());
    assert_eq!(k_group.unrecovered, 2);
    let ids = gate_ids(&f, "abort", &[]);
    assert_eq!(ids, vec![findings::abort_id(k_group)]);
}

#[test]
fn report_infers_the_blacklist_chain() {
    let (site, cause, caller, other) = (lua("lib/r.lua", 88), lua("lib/r.lua", 93), lua("app/main.lua", 5), lua("lib/q.lua", 7));
    let mut lines = vec![open(0)];
    for _ in 0..10 {
        lines.push(start(0, 3, "root", 0, 0, &site));
        lines.push(fnew(3, &site, &cause));
    }
    let blackl = |from: &str, at: &str| abort(4, from, at, 5, "BLACKL", "blacklisted", "");
    lines.push(blackl(&caller, &site));
    lines.push(blackl(&caller, &site));
    // Only a BLACKL abort names lib/q.lua:7: still a blacklisted site.
    lines.push(blackl(&caller, &other));
    lines.push(r#"{"ev":"blacklist","site":{"kind":"lua","chunk":"lib/r.lua","line":88,"func":1},"op":"ILOOP"}"#.into());
    let (a, f) = one(&lines);
    assert_eq!(a.blacklist.len(), 2);
    let s = a.blacklist.iter().find(|s| s.site == loc("lib/r.lua", 88)).unwrap();
    assert_eq!(s.op.as_deref(), Some("ILOOP"));
    assert!(s.recorded);
    assert_eq!(s.causes.len(), 1);
    assert_eq!((s.causes[0].at.line, s.causes[0].count), (93, 10));
    assert_eq!(s.cascade, vec![(loc("app/main.lua", 5), 2)]);
    let q = a.blacklist.iter().find(|s| s.site == loc("lib/q.lua", 7)).unwrap();
    assert!(!q.recorded && q.causes.is_empty());
    assert!(a.traces.iter().any(|t| t.loc == loc("lib/r.lua", 88) && t.blacklisted));
    assert_eq!(a.summary.blacklisted_sites, 2);
    // The abort group at the site is high: it led to blacklisting.
    let g = f.iter().find(|x| x.rule == "abort" && x.locations[0] == loc("lib/r.lua", 88)).unwrap();
    assert_eq!(g.severity, findings::Severity::High);
    assert!(f.iter().any(|x| x.rule == "blacklist" && x.id == findings::blacklist_id(&loc("lib/r.lua", 88))));

    // Ten aborts alone put a start at risk, not blacklisted: LuaJIT
    // blacklists after 10 or 11, by chance. No blacklist finding gates it.
    let mut lines = vec![open(0)];
    for _ in 0..10 {
        lines.push(start(0, 3, "root", 0, 0, &site));
        lines.push(fnew(3, &site, &cause));
    }
    let (a, f) = one(&lines);
    assert_eq!((a.blacklist.len(), a.summary.blacklisted_sites, a.summary.at_risk_sites), (1, 0, 1));
    assert!(!a.blacklist[0].confirmed);
    assert!(!a.traces.iter().any(|t| t.blacklisted));
    assert!(gate_ids(&f, "blacklist", &[]).is_empty());
    let risk = f.iter().find(|x| x.rule == "blacklist-risk").unwrap();
    assert_eq!((risk.kind, risk.gated), ("abort", false));
    assert!(risk.title.contains("at risk of blacklisting (10 aborts)"), "{}", risk.title);
    // A "blacklisted" abort on it confirms it.
    lines.push(blackl(&caller, &site));
    let (a, f) = one(&lines);
    assert_eq!((a.summary.blacklisted_sites, a.summary.at_risk_sites), (1, 0));
    assert_eq!(gate_ids(&f, "blacklist", &[]), vec![findings::blacklist_id(&loc("lib/r.lua", 88))]);

    // Nine aborts are not enough to infer blacklisting.
    let mut lines = vec![open(0)];
    for _ in 0..9 {
        lines.push(fnew(3, &site, &cause));
    }
    assert!(one(&lines).0.blacklist.is_empty());
    // Ten aborts followed by a compiled trace from the same start: not blacklisted.
    lines.push(fnew(3, &site, &cause));
    lines.push(root_stop(3, &site, "loop"));
    assert!(one(&lines).0.blacklist.is_empty());
}

#[test]
fn report_takes_the_stitch_call_site_from_the_following_stitch_start() {
    let (loop_, call, other) = (lua("app/u.lua", 3), lua("app/u.lua", 5), lua("app/v.lua", 9));
    let gsub = format!(r#","callee":{}"#, ffunc("string.gsub"));
    let lines = [
        open(0),
        start(0, 1, "root", 0, 0, &loop_),
        stop(1, "root", 0, 0, &loop_, "stitch", &gsub),
        // An unrelated trace in between.
        start(0, 2, "root", 0, 0, &other),
        root_stop(2, &other, "loop"),
        start(0, 3, "stitch", 1, -1, &call),
        stop(3, "stitch", 1, -1, &call, "root", ""),
        // A stitch whose continuation never started.
        stop(4, "root", 0, 0, &other, "stitch", &gsub),
        r#"{"ev":"flush","gen":1}"#.into(),
        // Trace 4 of generation 1 is another trace: not 4's continuation.
        start(1, 5, "stitch", 4, -1, &call),
    ];
    let (a, f) = one(&lines);
    assert_eq!(a.stitches.len(), 1);
    let s = &a.stitches[0];
    assert_eq!((s.callee.to_string().as_str(), s.count), ("string.gsub", 2));
    let known = s.sites.iter().find(|x| x.call_site.is_some()).unwrap();
    assert_eq!(known.call_site, Some(loc("app/u.lua", 5)));
    assert_eq!(known.traces.iter().next(), Some(&loc("app/u.lua", 3)));
    assert!(s.sites.iter().any(|x| x.call_site.is_none() && x.count == 1));
    let st = f.iter().find(|x| x.id == findings::stitch_id(&s.callee, &loc("app/u.lua", 5))).unwrap();
    assert!(st.suggestion.contains("ngx.re.gsub"));
    assert_eq!(a.summary.flushes, 1);
}

#[test]
fn report_sums_exits_per_worker_gen_trace_exit() {
    let (t, side) = (lua("app/e.lua", 2), lua("app/e.lua", 5));
    let exits = |gen: i64, tr: i64, exit: i64, n: u64| format!(r#"{{"ev":"exits","gen":{gen},"tr":{tr},"exit":{exit},"n":{n}}}"#);
    let lines = [
        open(0),
        root_stop(1, &t, "loop"),
        exits(0, 1, 2, 30),
        exits(0, 1, 2, 20),
        exits(0, 1, 3, 40),
        exits(0, 1, 4, 5),
        stop(2, "side", 1, 3, &side, "interpreter", ""),
        abort(3, &side, &side, 7, "NYIBC", "NYI: bytecode UCLO", r#","nyi":"UCLO""#)
            .replace(r#""kind":"root","parent":0,"exit":0"#, r#""kind":"side","parent":1,"exit":4"#),
        r#"{"ev":"flush","gen":1}"#.into(),
        exits(1, 1, 2, 7),
    ];
    let (a, f) = one(&lines);
    let by = |gen: i64, exit: i64| a.exits.iter().find(|x| x.gen == gen && x.exit == exit).unwrap();
    assert_eq!(by(0, 2).n, 50);
    assert_eq!(by(0, 2).side, SideOutcome::None);
    assert_eq!(by(0, 3).side, SideOutcome::Interpreter);
    assert_eq!(by(0, 4).side, SideOutcome::Aborted);
    assert_eq!(by(1, 2).n, 7);
    assert_eq!(by(1, 2).start, None);
    assert_eq!(a.exits[0].n, 50);
    assert_eq!(by(0, 2).start, Some(loc("app/e.lua", 2)));
    // One hot-exit finding for the trace start (exits 2 and 3; 4 and gen 1's are below hotexit).
    let hot: Vec<_> = f.iter().filter(|x| x.rule == "hot-exit").collect();
    assert_eq!(hot.len(), 1);
    assert_eq!(hot[0].evidence.len(), 2);
    assert_eq!(hot[0].severity, findings::Severity::High);
    let stubs: Vec<_> = a.ends.iter().filter(|e| e.link == "interpreter").collect();
    assert_eq!(stubs[0].parents.iter().next(), Some(&loc("app/e.lua", 2)));
}

#[test]
fn report_computes_vm_state_shares() {
    let (h, k) = (lua("app/h.lua", 4), lua("app/k.lua", 8));
    let samples = format!(
        r#"{{"ev":"samples","interval_ms":10,"counts":[{{"state":"I","loc":{h},"n":60}},{{"state":"N","loc":{h},"n":20}},{{"state":"N","loc":{k},"n":100}},{{"state":"G","loc":{k},"n":20}}]}}"#
    );
    let more = format!(r#"{{"ev":"samples","interval_ms":10,"counts":[{{"state":"I","loc":{h},"n":20}}]}}"#);
    let (a, f) = one(&[open(0), samples, more]);
    let p = &a.profile;
    assert_eq!((p.samples, p.interval_ms), (220, 10.0));
    assert_eq!(p.by_state.get(&'I'), Some(&80));
    assert_eq!(p.locs[0].loc, loc("app/h.lua", 4));
    assert_eq!((p.locs[0].interpreted, p.locs[0].total), (80, 100));
    let share: Vec<_> = f.iter().filter(|x| x.rule == "interpreter-share").collect();
    assert_eq!(share.len(), 1);
    assert_eq!(share[0].locations[0], loc("app/h.lua", 4));
}

#[test]
fn report_ids_are_stable_across_trace_numbers_and_counts() {
    let (h, h3) = (lua("app/h.lua", 1), lua("app/h.lua", 3));
    let (_, f1) = one(&[open(0), fnew(1, &h, &h3)]);
    let (_, f2) = one(&[open(3), fnew(17, &h, &h3), fnew(23, &h, &h3), fnew(23, &h, &h3)]);
    assert_eq!(f1[0].id, f2[0].id);
    assert_eq!(f1[0].id.len(), 8);
    assert!(f1[0].id.chars().all(|c| c.is_ascii_hexdigit()));
    // A different abort location is a different finding.
    let (_, f3) = one(&[open(0), fnew(1, &h, &lua("app/h.lua", 4))]);
    assert_ne!(f1[0].id, f3[0].id);
    // Pinned: the hash must not change between builds (baselines hold ids).
    assert_eq!(findings::finding_id("abort", &loc("app/h.lua", 1), "NYIBC FNEW at app/h.lua:3"), f1[0].id);
    assert_eq!(f1[0].id, "8dd7f79f");
}

#[test]
fn report_baseline_suppresses_known_findings() {
    let (h, h3, k) = (lua("app/h.lua", 1), lua("app/h.lua", 3), lua("app/k.lua", 2));
    let files = vec!["w0".to_string()];
    let (a, f) = one(&[open(0), fnew(1, &h, &h3)]);
    let g = findings::gate(&f, &[], &[]).unwrap();
    let doc = json::render(&Report { files: &files, analysis: &a, findings: &f, baseline: None, suppressed: 0, gate: &g });
    let path = std::env::temp_dir().join(format!("halo-jit-baseline-{}.json", std::process::id()));
    std::fs::write(&path, doc.to_string()).unwrap();
    let base = findings::load_baseline(path.to_str().unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(base.contains(&f[0].id));

    let (_, f2) = one(&[open(0), fnew(5, &h, &h3), root_stop(1, &k, "return")]);
    let (kept, suppressed) = findings::apply_baseline(f2, &base);
    assert_eq!(suppressed, 1);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].rule, "return");
    assert!(gate_ids(&kept, "abort", &[]).is_empty());
}

#[test]
fn report_gate_matches_paths_against_the_cause() {
    let (app, lib, lib2) = (lua("app/handler.lua", 10), lua("lib/resty/x.lua", 20), lua("lib/resty/x.lua", 22));
    let gsub = format!(r#","callee":{}"#, ffunc("string.gsub"));
    let lines = [
        open(0),
        // An abort that starts in lib but stops in app.
        fnew(1, &lib, &app),
        // An abort entirely in lib.
        fnew(2, &lib2, &lib2),
        // The stitching trace starts elsewhere, so it does not recover the first abort.
        root_stop(3, &lua("lib/resty/x.lua", 30), "stitch").replace(r#""nexit":3"#, &format!(r#""nexit":3{gsub}"#)),
        start(0, 4, "stitch", 3, -1, &lib2),
    ];
    let (_, f) = one(&lines);
    assert_eq!(gate_ids(&f, "abort", &[]).len(), 2);
    assert_eq!(gate_ids(&f, "abort", &["app/**"]).len(), 1);
    assert_eq!(gate_ids(&f, "abort", &["app/*.lua"]).len(), 1);
    // An abort matches by where it stopped (its cause), not where it started.
    assert_eq!(gate_ids(&f, "abort", &["lib/**"]).len(), 1);
    assert_eq!(gate_ids(&f, "abort", &["other/**"]).len(), 0);
    // `*` does not cross directories.
    assert_eq!(gate_ids(&f, "abort,stitch", &["lib/*.lua"]).len(), 0);
    assert_eq!(gate_ids(&f, "stitch", &["lib/resty/**"]).len(), 1);
    assert_eq!(gate_ids(&f, "stitch", &["app/**"]).len(), 0);
    assert_eq!(gate_ids(&f, "return,flush", &[]).len(), 0);
    assert!(findings::parse_kinds("abort,nope").is_err());
    assert!(findings::gate(&f, &["abort".into()], &["[".into()]).is_err());
    let g = findings::gate(&f, &[], &[]).unwrap();
    assert_eq!(g.result(), "off");
}

#[test]
fn report_profiler_induced_aborts_never_gate() {
    let (h, h2) = (lua("app/h.lua", 1), lua("app/h.lua", 2));
    let prof = abort(1, &h, &h2, 0, "RECERR", "error thrown or hook called during recording", r#","profiler":true"#);
    let retry = abort(1, &h, &h, 6, "RETRY", "retry recording", "");
    let mut lines = vec![open(0)];
    lines.extend(std::iter::repeat_n(prof, 12));
    lines.push(retry);
    let (a, f) = one(&lines);
    assert_eq!(a.aborts.len(), 2);
    assert!(a.aborts.iter().any(|g| g.profiler && g.count == 12));
    assert!(a.aborts.iter().any(|g| g.informational));
    assert!(f.iter().filter(|x| x.kind == "abort").all(|x| !x.gated && x.severity == findings::Severity::Info));
    assert!(gate_ids(&f, "abort", &[]).is_empty());
    // A sampler abort still penalises the start pc in the VM.
    assert_eq!(a.blacklist.len(), 1);
}

#[test]
fn report_malformed_line_names_file_and_line() {
    let text = format!("{}\n{}\n{{\"ev\":\"start\",\"gen\":0\n", open(0), root_stop(1, &lua("a.lua", 1), "loop"));
    let e = parse_str("jit-w0-1.jsonl", &text).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("jit-w0-1.jsonl", 3));
    assert!(e.to_string().starts_with("jit-w0-1.jsonl:3: "));
    // A known record without a required field is malformed too.
    let e = parse_str("f", &format!("{}\n{{\"ev\":\"stop\",\"gen\":0,\"tr\":1}}\n", open(0))).unwrap_err();
    assert_eq!(e.line, 2);
    // Records before `open` are an error.
    assert_eq!(parse_str("f", "{\"ev\":\"flush\",\"gen\":1}\n").unwrap_err().line, 1);
    // Unknown kinds and fields are skipped.
    let ok = format!("{}\n{{\"ev\":\"future\",\"x\":1}}\n{}\n", open(0), root_stop(1, &lua("a.lua", 1), "loop").replace("\"nins\"", "\"new\":[1],\"nins\""));
    assert_eq!(parse_str("f", &ok).unwrap()[0].events.len(), 1);
}

#[test]
fn report_cli_options_and_errors() {
    let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let o = parse_args(&args(&["--json", "--fail-on", "abort,stitch", "--fail-on=abort", "--paths", "app/**", "--paths=lib/**", "a.jsonl"])).unwrap().unwrap();
    assert_eq!(o.fail_on, vec!["abort", "stitch"]);
    assert_eq!(o.paths, vec!["app/**", "lib/**"]);
    assert!(o.json);
    assert_eq!(o.files, vec!["a.jsonl"]);
    assert!(parse_args(&args(&["--fail-on", "bogus", "a"])).is_err());
    assert!(parse_args(&args(&["--frobnicate", "a"])).is_err());
    assert!(parse_args(&args(&["--baseline"])).is_err());
    assert_eq!(cli(&args(&[])), 2);
    assert_eq!(cli(&args(&["/nonexistent/halo-jit.jsonl"])), 2);
}

#[test]
fn report_sampler_flushes_are_not_findings() {
    let sampler = r#"{"ev":"flush","gen":1,"cause":"profiler"}"#.to_string();
    let (a, f) = one(&[open(0), sampler.clone()]);
    assert_eq!((a.summary.flushes, a.summary.profiler_flushes), (1, 1));
    assert!(gate_ids(&f, "flush", &[]).is_empty());
    let (_, f) = one(&[open(0), sampler, r#"{"ev":"flush","gen":2,"cause":"jit"}"#.into()]);
    assert_eq!(gate_ids(&f, "flush", &["app/**"]).len(), 1, "a flush has no location and gates regardless of --paths");
}

#[test]
fn report_skips_an_unfinished_last_line_only() {
    let good = format!("{}\n", open(0));
    let cut = format!("{good}{{\"ev\":\"sta");
    assert_eq!(parse::parse_str("jit-w0-1.jsonl", &cut).unwrap().len(), 1);
    let broken_middle = format!("{good}{{\"ev\":\"sta\n{}\n", open(0));
    assert!(parse::parse_str("jit-w0-1.jsonl", &broken_middle).is_err());
}
