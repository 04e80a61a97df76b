//! Findings (the actionable items of a report), their stable ids, the
//! `--baseline` filter and the `--fail-on`/`--paths` gate.
//!
//! A finding's id hashes the rule, the primary location and a detail that
//! names *what* happened (reason, abort location, callee), never trace
//! numbers or counts: both change from run to run (the JIT's PRNG feeds the
//! penalties), while the id must survive so a baseline keeps matching.

use super::analyse::{AbortGroup, Analysis, BlacklistSite, SideOutcome};
use super::parse::Loc;
use crate::jit::advice;
use std::collections::{BTreeMap, HashSet};

/// The kinds `--fail-on` accepts.
pub const KINDS: [&str; 7] = ["abort", "stitch", "blacklist", "return", "interpreter", "flush", "exit"];

/// Hot exits at or above this count (LuaJIT's default `hotexit`) whose side
/// trace did not compile are findings.
pub const HOT_EXIT_MIN: u64 = 10;

/// A location is an interpreter-share finding when at least this many of its
/// samples, and at least half of them, and at least 1% of all samples, are `I`.
pub const INTERP_MIN_SAMPLES: u64 = 10;

/// How many exits and profile locations are shown (and considered).
pub const TOP: usize = 20;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Normal operation, shown for completeness.
    Info,
    /// Worth a look.
    Low,
    /// Costs performance.
    Medium,
    /// Code stays in the interpreter for good.
    High,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One actionable item.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Stable short hex hash (see the module doc).
    pub id: String,
    /// Precise rule (`abort`, `abort-profiler`, `interpreter-stub`, ...).
    pub rule: &'static str,
    /// The `--fail-on` kind it belongs to.
    pub kind: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// One-line summary.
    pub title: String,
    /// Locations, the primary one first; the gate's `--paths` match any of them.
    pub locations: Vec<Loc>,
    /// Why: counts, workers, chains.
    pub evidence: Vec<String>,
    /// What to do.
    pub suggestion: String,
    /// Counts in the gate for its kind (e.g. false for recovered aborts).
    pub gated: bool,
}

impl Finding {
    /// The locations `--paths` is matched against. An abort's are `[start,
    /// at]`; only `at`, where recording stopped, is its cause: a trace that
    /// starts in a matching function and aborts in the caller's frame below
    /// it ("return to lower frame") is not the matching code's fault.
    pub fn gate_locations(&self) -> &[Loc] {
        match self.kind {
            "abort" => &self.locations[self.locations.len() - 1..],
            _ => &self.locations,
        }
    }
}

/// FNV-1a 64: a hash that is the same in every build and on every platform,
/// unlike std's `DefaultHasher`.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The stable id of a finding: 8 hex digits of hash(rule, chunk, line, detail).
pub fn finding_id(rule: &str, loc: &Loc, detail: &str) -> String {
    let (chunk, line) = loc.id_parts();
    format!("{:08x}", fnv(&[rule, chunk, &line.to_string(), detail]) >> 32)
}

/// The rule of an abort group.
fn abort_rule(g: &AbortGroup) -> &'static str {
    if g.profiler {
        "abort-profiler"
    } else if g.informational {
        "abort-informational"
    } else if g.loop_shape {
        "abort-loop-shape"
    } else {
        "abort"
    }
}

/// The finding id of an abort group.
pub fn abort_id(g: &AbortGroup) -> String {
    let detail = format!("{} {} at {}", g.id, g.nyi.as_deref().unwrap_or(""), g.at);
    finding_id(abort_rule(g), &g.start, &detail)
}

/// The finding id of a blacklisted site.
pub fn blacklist_id(site: &Loc) -> String {
    finding_id("blacklist", site, "")
}

/// The finding of a blacklist-chain site: a blacklist one when confirmed,
/// else the at-risk abort one.
pub fn site_id(s: &BlacklistSite) -> String {
    if s.confirmed {
        blacklist_id(&s.site)
    } else {
        finding_id("blacklist-risk", &s.site, "")
    }
}

/// The finding id of one call site of a stitched function.
pub fn stitch_id(callee: &Loc, site: &Loc) -> String {
    finding_id("stitch", site, &callee.to_string())
}

/// The finding id of a `return` or `interpreter` link end.
pub fn end_id(link: &str, loc: &Loc) -> String {
    finding_id(if link == "interpreter" { "interpreter-stub" } else { "return" }, loc, "")
}

/// The finding id of hot exits of the traces starting at `loc`. Exit numbers
/// are left out: they are snapshot numbers, which vary with the trace shape.
pub fn exit_id(loc: &Loc) -> String {
    finding_id("hot-exit", loc, "")
}

/// The finding id of a location that mostly runs interpreted.
pub fn share_id(loc: &Loc) -> String {
    finding_id("interpreter-share", loc, "")
}

fn workers(ws: impl IntoIterator<Item = i64>) -> String {
    ws.into_iter().map(worker_label).collect::<Vec<_>>().join(",")
}

/// `w3`, or `master` for worker -1.
pub fn worker_label(w: i64) -> String {
    if w < 0 {
        "master".to_string()
    } else {
        format!("w{w}")
    }
}

fn plural(n: u64, one: &str) -> String {
    let suffix = match (n, one.ends_with("sh") || one.ends_with("ch")) {
        (1, _) => "",
        (_, true) => "es",
        _ => "s",
    };
    format!("{n} {one}{suffix}")
}

/// Derives the findings of an analysis, most severe first.
pub fn build(a: &Analysis) -> Vec<Finding> {
    let mut out = Vec::new();
    let blacklisted: HashSet<&Loc> = a.blacklist.iter().filter(|s| s.confirmed).map(|s| &s.site).collect();

    for g in &a.aborts {
        let severity = if g.profiler || g.informational {
            Severity::Info
        } else if g.recovered() || g.loop_shape {
            Severity::Low
        } else if blacklisted.contains(&g.start) {
            Severity::High
        } else {
            Severity::Medium
        };
        let status = if g.profiler {
            "profiler-induced".to_string()
        } else if g.informational {
            "informational".to_string()
        } else if g.loop_shape && !g.recovered() {
            format!("{} not recovered (loop shape: LuaJIT usually compiles the path through other traces)", g.unrecovered)
        } else if g.recovered() {
            "recovered".to_string()
        } else {
            format!("{} not recovered", g.unrecovered)
        };
        let mut evidence = vec![
            format!(
                "{} in {} (root {}, side {}, stitch {}), {status}",
                plural(g.count, "abort"),
                workers(g.workers.iter().copied()),
                g.kinds.root,
                g.kinds.side,
                g.kinds.stitch
            ),
            format!("trace started at {}, recording stopped at {}", g.start, g.at),
        ];
        if blacklisted.contains(&g.start) {
            evidence.push(format!("{} is blacklisted (see the blacklist chain)", g.start));
        }
        out.push(Finding {
            id: abort_id(g),
            rule: abort_rule(g),
            kind: "abort",
            severity,
            title: format!("trace abort: {} at {}", g.reason, g.at),
            locations: vec![g.start.clone(), g.at.clone()],
            evidence,
            suggestion: advice::for_abort(&g.id, g.nyi.as_deref()).to_string(),
            gated: !g.profiler && !g.informational && !g.loop_shape && !g.recovered(),
        });
    }

    for s in &a.blacklist {
        let mut locations = vec![s.site.clone()];
        let mut evidence = Vec::new();
        for c in &s.causes {
            evidence.push(format!("cause: {} at {} ({})", c.reason, c.at, plural(c.count, "abort")));
            if !locations.contains(&c.at) {
                locations.push(c.at.clone());
            }
        }
        if s.causes.is_empty() {
            evidence.push("cause: not in the log (blacklisted before capture started, or by a flushed generation)".into());
        }
        for (caller, n) in &s.cascade {
            evidence.push(format!("hit later by the trace starting at {caller} ({} \"blacklisted\")", plural(*n, "abort")));
        }
        let aborted: u64 = s.causes.iter().map(|c| c.count).sum();
        evidence.push(format!(
            "{} in {}",
            if s.recorded {
                "blacklisted (bytecode scan)".to_string()
            } else if s.confirmed {
                "blacklisted (a later trace aborted on it)".to_string()
            } else {
                format!("at risk ({}): LuaJIT blacklists a start after 10 or 11, by chance; neither a bytecode scan nor a \"blacklisted\" abort confirms it", plural(aborted, "abort"))
            },
            workers(s.workers.iter().copied())
        ));
        let suggestion = match s.causes.first() {
            Some(c) => format!("{}; then reload (or jit.on(fn, true)) so the site is compiled again", advice::for_abort(&c.id, c.nyi.as_deref())),
            None => advice::for_abort("BLACKL", None).to_string(),
        };
        // Not confirmed: an abort finding, not a blacklist one, and not
        // gated itself (the site's own abort findings gate as they are).
        let (rule, kind, title) = if s.confirmed {
            ("blacklist", "blacklist", format!("{} blacklisted at {}", s.op.as_deref().unwrap_or("trace start"), s.site))
        } else {
            ("blacklist-risk", "abort", format!("trace start at {} at risk of blacklisting ({})", s.site, plural(aborted, "abort")))
        };
        out.push(Finding {
            id: site_id(s),
            rule,
            kind,
            severity: if s.confirmed {
                Severity::High
            } else if a.aborts.iter().any(|g| g.start == s.site && !g.profiler && !g.informational) {
                Severity::Medium
            } else {
                // Only the sampler's aborts penalised it.
                Severity::Info
            },
            title,
            locations,
            evidence,
            suggestion,
            gated: s.confirmed,
        });
    }

    for st in &a.stitches {
        for site in &st.sites {
            // Without a continuation the best place to point at is the trace start.
            let primary = site.call_site.clone().or_else(|| site.traces.iter().next().cloned()).unwrap_or_default();
            let mut locations = vec![primary.clone(), st.callee.clone()];
            locations.extend(site.traces.iter().filter(|t| **t != primary).cloned());
            let traces: Vec<String> = site.traces.iter().map(Loc::to_string).collect();
            out.push(Finding {
                id: stitch_id(&st.callee, &primary),
                rule: "stitch",
                kind: "stitch",
                severity: Severity::Medium,
                title: format!("stitch around {} called at {}", st.callee, site.call_site.as_ref().map_or("(unknown call site)".to_string(), Loc::to_string)),
                locations,
                evidence: vec![
                    format!("{} in {}", plural(site.count, "stitch"), workers(site.workers.iter().copied())),
                    format!("traces ending in the stitch start at {}", traces.join(", ")),
                ],
                suggestion: advice::for_callee(&st.callee.to_string()).to_string(),
                gated: true,
            });
        }
    }

    for e in &a.ends {
        let stub = e.link == "interpreter";
        let mut locations = vec![e.loc.clone()];
        locations.extend(e.parents.iter().cloned());
        let mut evidence = vec![format!("{} with link {} in {}", plural(e.count, "trace"), e.link, workers(e.workers.iter().copied()))];
        if stub && !e.parents.is_empty() {
            evidence.push(format!("side exit of the trace starting at {}", e.parents.iter().map(Loc::to_string).collect::<Vec<_>>().join(", ")));
        }
        let rule = if stub { "interpreter-stub" } else { "return" };
        out.push(Finding {
            id: end_id(&e.link, &e.loc),
            rule,
            kind: if stub { "interpreter" } else { "return" },
            severity: if stub { Severity::Medium } else { Severity::Low },
            title: if stub {
                format!("side trace at {} falls back to the interpreter", e.loc)
            } else {
                format!("trace from {} returns to the interpreter", e.loc)
            },
            locations,
            evidence,
            suggestion: advice::for_report(rule).to_string(),
            gated: true,
        });
    }

    // Flushes by halo's own sampler are the price of sampling, not a finding.
    let app_flushes = a.summary.flushes - a.summary.profiler_flushes;
    if app_flushes > 0 {
        let per: Vec<String> = a
            .workers
            .iter()
            .filter(|w| w.flushes > w.profiler_flushes)
            .map(|w| format!("{} pid {}: {}", worker_label(w.header.worker), w.header.pid, w.flushes - w.profiler_flushes))
            .collect();
        let mcodeal: u64 = a.aborts.iter().filter(|g| g.id == "MCODEAL").map(|g| g.count).sum();
        let mut evidence = vec![format!("{} ({})", plural(app_flushes, "flush"), per.join(", "))];
        if a.summary.profiler_flushes > 0 {
            evidence.push(format!("not counted: {} by the VM-state sampler", plural(a.summary.profiler_flushes, "flush")));
        }
        if mcodeal > 0 {
            evidence.push(format!("{} with MCODEAL (mcode memory full) in the log", plural(mcodeal, "abort")));
        }
        out.push(Finding {
            id: finding_id("flush", &Loc::default(), ""),
            rule: "flush",
            kind: "flush",
            severity: Severity::Medium,
            title: "the trace cache was flushed".into(),
            locations: Vec::new(),
            evidence,
            suggestion: if mcodeal > 0 { advice::for_abort("MCODEAL", None) } else { advice::for_report("flush") }.to_string(),
            gated: true,
        });
    }

    let mut hot: BTreeMap<Loc, (Severity, Vec<String>)> = BTreeMap::new();
    for x in a.exits.iter().take(TOP).filter(|x| x.n >= HOT_EXIT_MIN && x.side != SideOutcome::Compiled) {
        let loc = x.start.clone().unwrap_or_default();
        let e = hot.entry(loc).or_insert((Severity::Medium, Vec::new()));
        if x.side == SideOutcome::Interpreter {
            e.0 = Severity::High;
        }
        e.1.push(format!("{} gen {} trace {} exit {}: {}, side trace: {}", worker_label(x.worker), x.gen, x.tr, x.exit, plural(x.n, "exit"), x.side.as_str()));
    }
    for (loc, (severity, evidence)) in hot {
        out.push(Finding {
            id: exit_id(&loc),
            rule: "hot-exit",
            kind: "exit",
            severity,
            title: format!("hot side exit without a compiled side trace in the trace from {loc}"),
            locations: vec![loc],
            evidence,
            suggestion: advice::for_report("hot-exit").to_string(),
            gated: true,
        });
    }

    let total = a.profile.samples;
    for p in a.profile.locs.iter().take(TOP) {
        if p.interpreted < INTERP_MIN_SAMPLES || p.interpreted * 2 < p.total || p.interpreted * 100 < total {
            continue;
        }
        let share = p.interpreted as f64 / p.total as f64;
        out.push(Finding {
            id: share_id(&p.loc),
            rule: "interpreter-share",
            kind: "interpreter",
            severity: if p.interpreted * 10 >= total { Severity::High } else { Severity::Medium },
            title: format!("{} runs interpreted {:.0}% of the time", p.loc, share * 100.0),
            locations: vec![p.loc.clone()],
            evidence: vec![format!(
                "{} of {} samples here are interpreted ({:.1}% of all samples)",
                p.interpreted,
                p.total,
                p.interpreted as f64 * 100.0 / total.max(1) as f64
            )],
            suggestion: advice::for_report("interpreter-share").to_string(),
            gated: true,
        });
    }

    merge(out)
}

/// Merges findings with the same id (e.g. two functions on one line) and
/// sorts them: most severe first, then by kind and location.
fn merge(list: Vec<Finding>) -> Vec<Finding> {
    let mut by_id: BTreeMap<String, Finding> = BTreeMap::new();
    for f in list {
        match by_id.get_mut(&f.id) {
            Some(m) => {
                m.severity = m.severity.max(f.severity);
                m.gated |= f.gated;
                m.evidence.extend(f.evidence);
                for l in f.locations {
                    if !m.locations.contains(&l) {
                        m.locations.push(l);
                    }
                }
            }
            None => {
                by_id.insert(f.id.clone(), f);
            }
        }
    }
    let mut out: Vec<Finding> = by_id.into_values().collect();
    out.sort_by(|x, y| {
        y.severity.cmp(&x.severity).then(x.kind.cmp(y.kind)).then_with(|| x.locations.first().cmp(&y.locations.first())).then_with(|| x.id.cmp(&y.id))
    });
    out
}

/// The finding ids of an earlier `--json` report.
pub fn load_baseline(path: &str) -> Result<HashSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("baseline {path}: {e}"))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("baseline {path}: not JSON: {e}"))?;
    if doc.get("schema").and_then(|s| s.as_str()) != Some(super::SCHEMA) {
        return Err(format!("baseline {path}: not a `{}` report (write it with halo jit report --json)", super::SCHEMA));
    }
    let list = doc.get("findings").and_then(|f| f.as_array()).ok_or_else(|| format!("baseline {path}: no `findings` list"))?;
    Ok(list.iter().filter_map(|f| f.get("id").and_then(|i| i.as_str()).map(str::to_string)).collect())
}

/// Drops the findings whose id is in the baseline; returns the rest and how
/// many were dropped.
pub fn apply_baseline(findings: Vec<Finding>, baseline: &HashSet<String>) -> (Vec<Finding>, usize) {
    let before = findings.len();
    let kept: Vec<Finding> = findings.into_iter().filter(|f| !baseline.contains(&f.id)).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// Parses a `--fail-on` list.
pub fn parse_kinds(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !KINDS.contains(&k) {
            return Err(format!("unknown --fail-on kind `{k}` (one of: {})", KINDS.join(", ")));
        }
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    Ok(out)
}

/// A finding that fails the gate.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Index into the findings the gate was evaluated on.
    pub finding: usize,
    /// The locations that matched `--paths` (as text); empty when no `--paths`
    /// was given or the finding has no location (flush).
    pub matched: Vec<String>,
}

/// The gate's verdict.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    /// `--fail-on` kinds.
    pub kinds: Vec<String>,
    /// `--paths` globs.
    pub paths: Vec<String>,
    /// Failing findings.
    pub violations: Vec<Violation>,
}

impl Gate {
    /// `off` (no --fail-on), `pass` or `fail`.
    pub fn result(&self) -> &'static str {
        if self.kinds.is_empty() {
            "off"
        } else if self.violations.is_empty() {
            "pass"
        } else {
            "fail"
        }
    }
}

/// Evaluates the gate: a finding fails it when its kind is in `kinds`, it is
/// gated (an abort that recovered, came from the profiler, is informational
/// or about loop shape is not), and one of its gate locations' chunk matches one of the
/// globs (any location when there are no globs; a finding without locations,
/// a flush, always matches since it throws away every trace).
pub fn gate(findings: &[Finding], kinds: &[String], paths: &[String]) -> Result<Gate, String> {
    let pats = paths.iter().map(|p| glob::Pattern::new(p).map_err(|e| format!("bad --paths glob `{p}`: {e}"))).collect::<Result<Vec<_>, _>>()?;
    // `*` stays inside one directory and `**` crosses them, as in .gitignore.
    let opts = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
    let mut g = Gate { kinds: kinds.to_vec(), paths: paths.to_vec(), violations: Vec::new() };
    for (i, f) in findings.iter().enumerate() {
        if !f.gated || !kinds.iter().any(|k| k == f.kind) {
            continue;
        }
        if pats.is_empty() || f.locations.is_empty() {
            g.violations.push(Violation { finding: i, matched: Vec::new() });
            continue;
        }
        let matched: Vec<String> =
            f.gate_locations().iter().filter(|l| l.path().is_some_and(|c| pats.iter().any(|p| p.matches_with(c, opts)))).map(Loc::to_string).collect();
        if !matched.is_empty() {
            g.violations.push(Violation { finding: i, matched });
        }
    }
    Ok(g)
}
