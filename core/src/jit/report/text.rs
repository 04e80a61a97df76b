//! The text rendering of a report (the default output of `halo jit report`).

use super::analyse::{Analysis, KindCounts};
use super::findings::{self, worker_label, Finding, Severity, TOP};
use super::Report;
use crate::jit::advice;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The VM states in display order, with their names.
pub const STATES: [(char, &str); 5] = [('N', "compiled"), ('I', "interpreted"), ('C', "C"), ('G', "GC"), ('J', "JIT")];

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn kinds(k: &KindCounts) -> String {
    format!("{} (root {}, side {}, stitch {})", k.total, k.root, k.side, k.stitch)
}

fn ws<'a>(w: impl IntoIterator<Item = &'a i64>) -> String {
    w.into_iter().map(|w| worker_label(*w)).collect::<Vec<_>>().join(",")
}

/// Renders the whole report.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let a = r.analysis;
    header(&mut o, a);
    summary(&mut o, a);
    traces(&mut o, a);
    aborts(&mut o, a);
    blacklist(&mut o, a);
    stitches(&mut o, a);
    exits(&mut o, a);
    profile(&mut o, a);
    findings_section(&mut o, r);
    gate(&mut o, r);
    o
}

fn versions(a: &Analysis) -> String {
    let v: BTreeSet<String> = a.workers.iter().filter(|w| !w.header.luajit.is_empty()).map(|w| format!("{} ({})", w.header.luajit, w.header.arch)).collect();
    if v.is_empty() {
        "LuaJIT version unknown".into()
    } else {
        v.into_iter().collect::<Vec<_>>().join(", ")
    }
}

fn header(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "== halo jit report: {} worker{}, {}", a.workers.len(), if a.workers.len() == 1 { "" } else { "s" }, versions(a));
}

fn summary(o: &mut String, a: &Analysis) {
    let s = &a.summary;
    let _ = writeln!(o, "\n1. Summary");
    let list: Vec<String> =
        a.workers.iter().map(|w| format!("{} pid {}{}", worker_label(w.header.worker), w.header.pid, if w.header.closed { "" } else { " (no close record)" })).collect();
    let _ = writeln!(o, "   workers      {}: {}", a.workers.len(), list.join(", "));
    let _ = writeln!(o, "   VM           {}", versions(a));
    let _ = writeln!(o, "   traces       started {}", kinds(&s.started));
    let _ = writeln!(o, "                completed {}", kinds(&s.completed));
    let _ = writeln!(o, "                aborted {}", kinds(&s.aborted));
    let links: Vec<String> = s.links.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(o, "   links        {}", if links.is_empty() { "-".into() } else { links.join(", ") });
    let by_sampler = if s.profiler_flushes > 0 { format!(" ({} by the VM-state sampler)", s.profiler_flushes) } else { String::new() };
    let _ = writeln!(o, "   flushes      {}{by_sampler}", s.flushes);
    let _ = writeln!(o, "   blacklisted  {} site{}", s.blacklisted_sites, if s.blacklisted_sites == 1 { "" } else { "s" });
    if s.at_risk_sites > 0 {
        let _ = writeln!(o, "   at risk      {} site{} (10 or more aborts, not confirmed blacklisted)", s.at_risk_sites, if s.at_risk_sites == 1 { "" } else { "s" });
    }
    let p = &a.profile;
    if p.samples > 0 {
        let shares: Vec<String> = STATES.iter().map(|(c, name)| format!("{name} {:.1}%", pct(p.by_state.get(c).copied().unwrap_or(0), p.samples))).collect();
        let _ = writeln!(o, "   VM states    {}  ({} samples, every {} ms)", shares.join(" | "), p.samples, p.interval_ms);
    } else {
        let _ = writeln!(o, "   VM states    no samples in the logs");
    }
}

fn traces(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n2. Traces by source line");
    if a.traces.is_empty() {
        let _ = writeln!(o, "   (no traces)");
        return;
    }
    let w = a.traces.iter().map(|t| t.loc.to_string().len()).max().unwrap_or(0).max(5);
    let _ = writeln!(o, "   {:<w$}  {:>7}  {:>9}  {:>7}  {:<11}  links", "start", "started", "completed", "aborted", "blacklisted");
    for t in &a.traces {
        let links: Vec<String> = t.links.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            o,
            "   {:<w$}  {:>7}  {:>9}  {:>7}  {:<11}  {}",
            t.loc.to_string(),
            t.started,
            t.completed,
            t.aborted,
            if t.blacklisted { "yes" } else { "no" },
            if links.is_empty() { "-".into() } else { links.join(", ") }
        );
    }
}

fn aborts(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n3. Aborts (by reason, start and abort location)");
    let (prof, rest): (Vec<_>, Vec<_>) = a.aborts.iter().partition(|g| g.profiler);
    if rest.is_empty() {
        let _ = writeln!(o, "   (none)");
    }
    for g in rest {
        let status = if g.informational {
            "informational".to_string()
        } else if g.recovered() {
            "recovered".to_string()
        } else {
            format!("NOT recovered ({})", g.unrecovered)
        };
        let _ = writeln!(o, "   {:>5}  {}  [{}]", g.count, g.reason, findings::abort_id(g));
        let _ = writeln!(o, "          {} → {}   {}   {}", g.start, g.at, ws(&g.workers), status);
        let _ = writeln!(o, "          fix: {}", advice::for_abort(&g.id, g.nyi.as_deref()));
    }
    if !prof.is_empty() {
        let _ = writeln!(o, "   profiler-induced (a jit.profile sample landed during recording; never gated):");
        for g in prof {
            let _ = writeln!(o, "   {:>5}  {}  {} → {}   {}  [{}]", g.count, g.reason, g.start, g.at, ws(&g.workers), findings::abort_id(g));
        }
    }
}

fn blacklist(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n4. Blacklist chain (cause → penalised start → \"blacklisted\" aborts in callers)");
    if a.blacklist.is_empty() {
        let _ = writeln!(o, "   (no blacklisted sites)");
    }
    for s in &a.blacklist {
        let how = if s.recorded {
            "bytecode scan"
        } else if s.confirmed {
            "a later trace aborted on it"
        } else {
            "at risk: aborted often enough, not confirmed"
        };
        let _ = writeln!(o, "   {}  {}, {}  [{}]", s.site, ws(&s.workers), how, findings::site_id(s));
        if s.causes.is_empty() {
            let _ = writeln!(o, "     cause        not in the log");
        }
        for c in &s.causes {
            let _ = writeln!(o, "     cause        {} at {} ({}×)", c.reason, c.at, c.count);
        }
        let _ = writeln!(o, "     penalised    trace start {}{} → {}", s.site, s.op.as_ref().map(|op| format!(" ({op})")).unwrap_or_default(), if s.confirmed { "blacklisted" } else { "at risk" });
        if s.cascade.is_empty() {
            let _ = writeln!(o, "     blacklisted  no later trace ran into it");
        }
        for (caller, n) in &s.cascade {
            let _ = writeln!(o, "     blacklisted  trace from {caller} hit it ({n}×)");
        }
    }
}

fn stitches(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n5. Stitched functions and returns to the interpreter");
    let _ = writeln!(o, "   stitches (callee, call site, count):");
    if a.stitches.is_empty() {
        let _ = writeln!(o, "     (none)");
    }
    for s in &a.stitches {
        let _ = writeln!(o, "     {}  {}×", s.callee, s.count);
        for site in &s.sites {
            let primary = site.call_site.clone().or_else(|| site.traces.iter().next().cloned()).unwrap_or_default();
            let at = site.call_site.as_ref().map_or("(call site unknown)".to_string(), |l| l.to_string());
            let _ = writeln!(o, "       {at}  {}×  {}  [{}]", site.count, ws(&site.workers), findings::stitch_id(&s.callee, &primary));
        }
        let _ = writeln!(o, "       fix: {}", advice::for_callee(&s.callee.to_string()));
    }
    for (link, title) in [("return", "return links (trace ends back in the interpreter)"), ("interpreter", "interpreter links (side-trace fallback stubs)")] {
        let _ = writeln!(o, "   {title}:");
        let list: Vec<_> = a.ends.iter().filter(|e| e.link == link).collect();
        if list.is_empty() {
            let _ = writeln!(o, "     (none)");
        }
        for e in list {
            let parents = if e.parents.is_empty() {
                String::new()
            } else {
                format!("  (exit of {})", e.parents.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
            };
            let _ = writeln!(o, "     {}  {}×  {}{parents}  [{}]", e.loc, e.count, ws(&e.workers), findings::end_id(&e.link, &e.loc));
        }
    }
}

fn exits(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n6. Hot side exits (top {TOP})");
    if a.exits.is_empty() {
        let _ = writeln!(o, "   (no exits records)");
        return;
    }
    let _ = writeln!(o, "   {:>9}  {:<6}  {:>3}  {:>5}  {:>4}  {:<11}  trace start", "exits", "worker", "gen", "trace", "exit", "side trace");
    for x in a.exits.iter().take(TOP) {
        let start = x.start.as_ref().map_or("(?)".to_string(), |l| l.to_string());
        let _ = writeln!(o, "   {:>9}  {:<6}  {:>3}  {:>5}  {:>4}  {:<11}  {start}", x.n, worker_label(x.worker), x.gen, x.tr, x.exit, x.side.as_str());
    }
}

fn profile(o: &mut String, a: &Analysis) {
    let _ = writeln!(o, "\n7. Interpreter share (top {TOP} by interpreted samples)");
    let p = &a.profile;
    if p.samples == 0 {
        let _ = writeln!(o, "   (no samples records)");
        return;
    }
    for (title, list) in [("function", &p.funcs), ("location", &p.locs)] {
        if list.is_empty() {
            continue;
        }
        let w = list.iter().take(TOP).map(|l| l.loc.to_string().len()).max().unwrap_or(0).max(8);
        let _ = writeln!(o, "   {title:<w$}  {:>7}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}", "samples", "I%", "N", "I", "C", "G", "J");
        for l in list.iter().take(TOP).filter(|l| l.interpreted > 0) {
            let n = |c: char| l.by_state.get(&c).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "   {:<w$}  {:>7}  {:>5.1}%  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
                l.loc.to_string(),
                l.total,
                pct(l.interpreted, l.total),
                n('N'),
                n('I'),
                n('C'),
                n('G'),
                n('J')
            );
        }
    }
}

fn finding_lines(o: &mut String, f: &Finding, extra: &str) {
    let loc = f.locations.first().map_or("-".to_string(), |l| l.to_string());
    let _ = writeln!(o, "  [{}] {:<6} {:<19} {}  {}{extra}", f.id, f.severity.as_str(), f.rule, loc, f.title);
    if f.severity == Severity::Info {
        return;
    }
    for e in &f.evidence {
        let _ = writeln!(o, "             - {e}");
    }
    let _ = writeln!(o, "             fix: {}", f.suggestion);
}

fn findings_section(o: &mut String, r: &Report) {
    let suppressed = match r.baseline {
        Some(b) => format!(" ({} suppressed by baseline {b})", r.suppressed),
        None => String::new(),
    };
    let _ = writeln!(o, "\nFindings: {}{suppressed}", r.findings.len());
    for f in r.findings {
        finding_lines(o, f, "");
    }
}

fn gate(o: &mut String, r: &Report) {
    let g = r.gate;
    let mut policy = format!("--fail-on {}", g.kinds.join(","));
    for p in &g.paths {
        let _ = write!(policy, " --paths {p}");
    }
    match g.result() {
        "off" => {
            let _ = writeln!(o, "\ngate: off (no --fail-on)");
        }
        "pass" => {
            let _ = writeln!(o, "\ngate: PASS ({policy})");
        }
        _ => {
            let _ = writeln!(o, "\ngate: FAIL ({policy}): {} finding{}", g.violations.len(), if g.violations.len() == 1 { "" } else { "s" });
            for v in &g.violations {
                let extra = if v.matched.is_empty() { String::new() } else { format!("  (matched {})", v.matched.join(", ")) };
                finding_lines(o, &r.findings[v.finding], &extra);
            }
        }
    }
}
