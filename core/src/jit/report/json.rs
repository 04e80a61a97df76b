//! The `--json` rendering of a report (`halo-jitreport/1`, documented in
//! jit-logs/README.md): the same content as the text, as one document.

use super::analyse::{Analysis, KindCounts};
use super::findings::{self, Finding, TOP};
use super::parse::Loc;
use super::text::STATES;
use super::{Report, SCHEMA};
use crate::jit::advice;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn kinds(k: &KindCounts) -> Value {
    json!({"total": k.total, "root": k.root, "side": k.side, "stitch": k.stitch})
}

fn locs<'a>(l: impl IntoIterator<Item = &'a Loc>) -> Value {
    Value::Array(l.into_iter().map(Loc::to_json).collect())
}

fn counts(m: &BTreeMap<String, u64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn states(m: &BTreeMap<char, u64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

fn finding(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "rule": f.rule,
        "kind": f.kind,
        "severity": f.severity.as_str(),
        "title": f.title,
        "locations": locs(&f.locations),
        "evidence": f.evidence,
        "suggestion": f.suggestion,
        "gated": f.gated,
    })
}

/// Renders the whole report as one JSON document.
pub fn render(r: &Report) -> Value {
    let a = r.analysis;
    json!({
        "schema": SCHEMA,
        "meta": meta(r),
        "summary": summary(a),
        "traces": a.traces.iter().map(|t| json!({
            "loc": t.loc.to_json(),
            "started": t.started,
            "completed": t.completed,
            "aborted": t.aborted,
            "blacklisted": t.blacklisted,
            "links": counts(&t.links),
            "workers": t.workers,
        })).collect::<Vec<_>>(),
        "aborts": a.aborts.iter().map(|g| json!({
            "id": g.id,
            "code": g.code,
            "reason": g.reason,
            "nyi": g.nyi,
            "start": g.start.to_json(),
            "at": g.at.to_json(),
            "count": g.count,
            "kinds": kinds(&g.kinds),
            "workers": g.workers,
            "recovered": g.recovered(),
            "unrecovered": g.unrecovered,
            "profiler": g.profiler,
            "informational": g.informational,
            "suggestion": advice::for_abort(&g.id, g.nyi.as_deref()),
            "finding": findings::abort_id(g),
        })).collect::<Vec<_>>(),
        "blacklist": a.blacklist.iter().map(|s| json!({
            "site": s.site.to_json(),
            "op": s.op,
            "source": if s.recorded { "scan" } else { "inferred" },
            "confirmed": s.confirmed,
            "workers": s.workers,
            "causes": s.causes.iter().map(|c| json!({
                "id": c.id, "nyi": c.nyi, "reason": c.reason, "at": c.at.to_json(), "count": c.count,
            })).collect::<Vec<_>>(),
            "cascade": s.cascade.iter().map(|(l, n)| json!({"start": l.to_json(), "count": n})).collect::<Vec<_>>(),
            "finding": findings::site_id(s),
        })).collect::<Vec<_>>(),
        "stitches": a.stitches.iter().map(|s| json!({
            "callee": s.callee.to_json(),
            "name": s.callee.to_string(),
            "count": s.count,
            "suggestion": advice::for_callee(&s.callee.to_string()),
            "sites": s.sites.iter().map(|site| {
                let primary = site.call_site.clone().or_else(|| site.traces.iter().next().cloned()).unwrap_or_default();
                json!({
                    "call_site": site.call_site.as_ref().map(Loc::to_json),
                    "count": site.count,
                    "traces": locs(&site.traces),
                    "workers": site.workers,
                    "finding": findings::stitch_id(&s.callee, &primary),
                })
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "returns": a.ends.iter().map(|e| json!({
            "link": e.link,
            "loc": e.loc.to_json(),
            "count": e.count,
            "workers": e.workers,
            "parents": locs(&e.parents),
            "finding": findings::end_id(&e.link, &e.loc),
        })).collect::<Vec<_>>(),
        "exits": a.exits.iter().take(TOP).map(|x| json!({
            "worker": x.worker,
            "pid": x.pid,
            "gen": x.gen,
            "trace": x.tr,
            "exit": x.exit,
            "n": x.n,
            "start": x.start.as_ref().map(Loc::to_json),
            "side": x.side.as_str(),
        })).collect::<Vec<_>>(),
        "profile": {
            "samples": a.profile.samples,
            "interval_ms": a.profile.interval_ms,
            "by_state": states(&a.profile.by_state),
            "functions": a.profile.funcs.iter().take(TOP).filter(|l| l.interpreted > 0).map(|l| json!({
                "name": l.loc.name,
                "samples": l.total,
                "by_state": states(&l.by_state),
                "interpreted": l.interpreted,
                "interpreted_share": l.interpreted as f64 / l.total.max(1) as f64,
            })).collect::<Vec<_>>(),
            "locations": a.profile.locs.iter().take(TOP).filter(|l| l.interpreted > 0).map(|l| json!({
                "loc": l.loc.to_json(),
                "samples": l.total,
                "by_state": states(&l.by_state),
                "interpreted": l.interpreted,
                "interpreted_share": l.interpreted as f64 / l.total.max(1) as f64,
            })).collect::<Vec<_>>(),
        },
        "findings": r.findings.iter().map(finding).collect::<Vec<_>>(),
        "gate": gate(r),
    })
}

fn meta(r: &Report) -> Value {
    json!({
        "tool": format!("halo {}", env!("CARGO_PKG_VERSION")),
        "files": r.files,
        "workers": r.analysis.workers.iter().map(|w| json!({
            "file": w.header.file,
            "pid": w.header.pid,
            "worker": w.header.worker,
            "role": w.header.role,
            "luajit": w.header.luajit,
            "arch": w.header.arch,
            "mode": w.header.mode,
            "closed": w.header.closed,
            "flushes": w.flushes,
            "profiler_flushes": w.profiler_flushes,
        })).collect::<Vec<_>>(),
        "baseline": r.baseline,
        "suppressed": r.suppressed,
    })
}

fn summary(a: &Analysis) -> Value {
    let s = &a.summary;
    let p = &a.profile;
    let share = if p.samples == 0 {
        Value::Null
    } else {
        let mut m = Map::new();
        for (c, name) in STATES {
            let n = p.by_state.get(&c).copied().unwrap_or(0);
            m.insert(name.to_lowercase(), json!(n as f64 / p.samples as f64));
        }
        Value::Object(m)
    };
    let mut versions: Vec<&str> = a.workers.iter().map(|w| w.header.luajit.as_str()).filter(|v| !v.is_empty()).collect();
    versions.sort_unstable();
    versions.dedup();
    json!({
        "workers": a.workers.len(),
        "luajit": versions,
        "started": kinds(&s.started),
        "completed": kinds(&s.completed),
        "aborted": kinds(&s.aborted),
        "links": counts(&s.links),
        "flushes": s.flushes,
        "profiler_flushes": s.profiler_flushes,
        "blacklisted_sites": s.blacklisted_sites,
        "at_risk_sites": s.at_risk_sites,
        "samples": p.samples,
        "vmstate_share": share,
    })
}

fn gate(r: &Report) -> Value {
    let g = r.gate;
    json!({
        "result": g.result(),
        "fail_on": g.kinds,
        "paths": g.paths,
        "violations": g.violations.iter().map(|v| {
            let f = &r.findings[v.finding];
            json!({"id": f.id, "kind": f.kind, "rule": f.rule, "severity": f.severity.as_str(), "title": f.title, "matched": v.matched})
        }).collect::<Vec<_>>(),
    })
}
