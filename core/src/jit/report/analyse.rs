//! Aggregation of the parsed records of all workers into the report's
//! sections (summary, traces by line, abort groups, blacklist chain, stitches,
//! link ends, hot exits, VM-state profile). Findings are derived from this in
//! `findings.rs`; rendering is in `render.rs`.
//!
//! Trace numbers are only meaningful per worker and flush generation, so
//! everything that follows a trace number is keyed by (source, gen, tr).

use super::parse::{Event, Header, Loc, Source};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Aborts that are part of normal operation (a restart, a retry, a new mcode
/// area): shown, never gated, never counted towards blacklisting.
pub const INFORMATIONAL: [&str; 3] = ["DOWNREC", "RETRY", "MCODELM"];

/// Aborts about the shape of loops (a loop left in its first iteration, an
/// inner loop met by an outer trace, an unroll limit). LuaJIT resolves them
/// by recording other traces (the inner loop's own trace and side traces
/// around it), so the code usually ends up compiled although the aborted
/// start never is: shown, not gated (what they lead to, blacklisting, is).
pub const LOOP_SHAPE: [&str; 3] = ["LLEAVE", "LINNER", "LUNROLL"];

/// Root aborts of one start pc in one VM after which it is at risk of
/// blacklisting: the penalty starts at 72, doubles (+0..15) per abort and
/// blacklists above 60000, i.e. after 10 or 11 aborts (the randomisation
/// decides). Only a `blacklist` record or a `BLACKL` abort confirms it.
pub const BLACKLIST_ABORTS: u64 = 10;

/// Counts by trace kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindCounts {
    /// All kinds.
    pub total: u64,
    /// Root traces.
    pub root: u64,
    /// Side traces.
    pub side: u64,
    /// Stitched continuations.
    pub stitch: u64,
}

impl KindCounts {
    fn add(&mut self, kind: &str, n: u64) {
        self.total += n;
        match kind {
            "root" => self.root += n,
            "side" => self.side += n,
            "stitch" => self.stitch += n,
            _ => {}
        }
    }
}

/// One worker (one `open` record).
#[derive(Clone, Debug)]
pub struct Worker {
    /// Its log's `open` record.
    pub header: Header,
    /// `flush` records.
    pub flushes: u64,
    /// Of those, flushes caused by halo's VM-state sampler.
    pub profiler_flushes: u64,
}

/// Section 1.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// `start` records.
    pub started: KindCounts,
    /// `stop` records.
    pub completed: KindCounts,
    /// `abort` records.
    pub aborted: KindCounts,
    /// `stop` records by link type.
    pub links: BTreeMap<String, u64>,
    /// `flush` records.
    pub flushes: u64,
    /// Of those, flushes caused by halo's VM-state sampler.
    pub profiler_flushes: u64,
    /// Distinct blacklisted sites (recorded or inferred).
    /// Sites known blacklisted (a bytecode scan, or a `BLACKL` abort).
    pub blacklisted_sites: usize,
    /// Sites with enough aborts that LuaJIT may have blacklisted them.
    pub at_risk_sites: usize,
}

/// Section 2: one trace start location.
#[derive(Clone, Debug, Default)]
pub struct TraceLine {
    /// Start location.
    pub loc: Loc,
    /// `start` records.
    pub started: u64,
    /// Completed traces.
    pub completed: u64,
    /// Aborted traces.
    pub aborted: u64,
    /// The location is a blacklisted site.
    pub blacklisted: bool,
    /// Completed traces by link type.
    pub links: BTreeMap<String, u64>,
    /// Workers that started a trace here.
    pub workers: BTreeSet<i64>,
}

/// Section 3: aborts with the same reason, start and abort location.
#[derive(Clone, Debug, Default)]
pub struct AbortGroup {
    /// lj_traceerr.h id.
    pub id: String,
    /// vmdef.traceerr index.
    pub code: i64,
    /// Message of the first abort of the group.
    pub reason: String,
    /// NYI bytecode name.
    pub nyi: Option<String>,
    /// Trace start.
    pub start: Loc,
    /// Where recording stopped.
    pub at: Loc,
    /// Caused by a jit.profile sample.
    pub profiler: bool,
    /// DOWNREC/RETRY/MCODELM.
    pub informational: bool,
    /// LLEAVE/LINNER/LUNROLL.
    pub loop_shape: bool,
    /// Aborts.
    pub count: u64,
    /// Aborts by trace kind.
    pub kinds: KindCounts,
    /// Workers with such an abort.
    pub workers: BTreeSet<i64>,
    /// Aborts after which the start never completed a trace in that worker.
    pub unrecovered: u64,
}

impl AbortGroup {
    /// Every abort of the group was followed by a completed trace from the
    /// same start in the same worker.
    pub fn recovered(&self) -> bool {
        self.unrecovered == 0
    }
}

/// Aborts with one reason and abort location, part of a blacklist cause.
#[derive(Clone, Debug, Default)]
pub struct Cause {
    /// lj_traceerr.h id.
    pub id: String,
    /// NYI bytecode name.
    pub nyi: Option<String>,
    /// Message.
    pub reason: String,
    /// Where recording stopped.
    pub at: Loc,
    /// Aborts.
    pub count: u64,
}

/// Section 4: a blacklisted site and its chain.
#[derive(Clone, Debug, Default)]
pub struct BlacklistSite {
    /// The penalised start.
    pub site: Loc,
    /// The blacklisted bytecode, when a `blacklist` record named it.
    pub op: Option<String>,
    /// Known from a `blacklist` record (not only inferred).
    pub recorded: bool,
    /// Known blacklisted: recorded, or a later trace aborted on it with
    /// `BLACKL`. Otherwise only at risk: it aborted often enough that LuaJIT
    /// may have blacklisted it.
    pub confirmed: bool,
    /// Workers where it is (or is inferred to be) blacklisted.
    pub workers: BTreeSet<i64>,
    /// Aborts of traces that started at the site.
    pub causes: Vec<Cause>,
    /// `BLACKL` aborts whose `at` is the site, by their start (the callers).
    pub cascade: Vec<(Loc, u64)>,
}

/// One call site of a stitched function.
#[derive(Clone, Debug, Default)]
pub struct StitchSite {
    /// The start of the `stitch` continuation trace, i.e. the call site;
    /// `None` when no continuation started.
    pub call_site: Option<Loc>,
    /// Stitches.
    pub count: u64,
    /// Start locations of the traces that ended in the stitch.
    pub traces: BTreeSet<Loc>,
    /// Workers.
    pub workers: BTreeSet<i64>,
}

/// Section 5: one function traces stitch around.
#[derive(Clone, Debug, Default)]
pub struct Stitch {
    /// The function that is not compiled.
    pub callee: Loc,
    /// Stitches.
    pub count: u64,
    /// By call site, most frequent first.
    pub sites: Vec<StitchSite>,
}

/// Section 5: traces that end in the interpreter (`return`, `interpreter`).
#[derive(Clone, Debug, Default)]
pub struct LinkEnd {
    /// `return` or `interpreter`.
    pub link: String,
    /// Trace start.
    pub loc: Loc,
    /// Traces.
    pub count: u64,
    /// Workers.
    pub workers: BTreeSet<i64>,
    /// `interpreter` stubs: the start locations of their parent traces.
    pub parents: BTreeSet<Loc>,
}

/// What became of the side trace of an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SideOutcome {
    /// No side trace was tried.
    None,
    /// Side traces aborted.
    Aborted,
    /// An `interpreter` stub was installed.
    Interpreter,
    /// A side trace compiled.
    Compiled,
}

impl SideOutcome {
    /// Name used in the text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SideOutcome::None => "none",
            SideOutcome::Aborted => "aborted",
            SideOutcome::Interpreter => "interpreter",
            SideOutcome::Compiled => "compiled",
        }
    }
}

/// Section 6: one trace exit.
#[derive(Clone, Debug)]
pub struct HotExit {
    /// Worker id.
    pub worker: i64,
    /// Process id.
    pub pid: i64,
    /// Generation.
    pub gen: i64,
    /// Trace.
    pub tr: i64,
    /// Exit number.
    pub exit: i64,
    /// Exits taken.
    pub n: u64,
    /// The trace's start, if its `stop` was logged.
    pub start: Option<Loc>,
    /// The exit's side trace.
    pub side: SideOutcome,
}

/// Section 7: samples at one location.
#[derive(Clone, Debug, Default)]
pub struct LocProfile {
    /// Where the samples landed.
    pub loc: Loc,
    /// Samples by state letter.
    pub by_state: BTreeMap<char, u64>,
    /// All samples.
    pub total: u64,
    /// `I` samples.
    pub interpreted: u64,
}

/// Section 7 and the summary's VM-state shares.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// All samples.
    pub samples: u64,
    /// Sampling interval of the first `samples` record.
    pub interval_ms: f64,
    /// Samples by state letter.
    pub by_state: BTreeMap<char, u64>,
    /// Per location, most interpreted first.
    pub locs: Vec<LocProfile>,
    /// Per function (samples whose location names its function, as
    /// `chunk:name`; `loc.kind` is "function"), most interpreted first.
    pub funcs: Vec<LocProfile>,
}

/// Adds `n` samples in `state` to `p`.
fn add_sample(p: &mut LocProfile, state: char, n: u64) {
    *p.by_state.entry(state).or_default() += n;
    p.total += n;
    if state == 'I' {
        p.interpreted += n;
    }
}

/// Everything the report shows, before findings.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// One per `open` record.
    pub workers: Vec<Worker>,
    /// Section 1.
    pub summary: Summary,
    /// Section 2, most active first.
    pub traces: Vec<TraceLine>,
    /// Section 3, largest first.
    pub aborts: Vec<AbortGroup>,
    /// Section 4.
    pub blacklist: Vec<BlacklistSite>,
    /// Section 5, stitches.
    pub stitches: Vec<Stitch>,
    /// Section 5, `return` and `interpreter` links.
    pub ends: Vec<LinkEnd>,
    /// Section 6: all exits, most taken first.
    pub exits: Vec<HotExit>,
    /// Section 7.
    pub profile: Profile,
}

/// The abort grouping key: (id, nyi, start, at, profiler).
type AbortKey = (String, Option<String>, Loc, Loc, bool);

/// Builds the analysis of all sources.
pub fn analyse(sources: &[Source]) -> Analysis {
    let mut a = Analysis::default();
    let mut lines: BTreeMap<Loc, TraceLine> = BTreeMap::new();
    let mut aborts: BTreeMap<AbortKey, AbortGroup> = BTreeMap::new();
    // Site -> (op, recorded, workers).
    let mut sites: BTreeMap<Loc, (Option<String>, bool, BTreeSet<i64>)> = BTreeMap::new();
    // (callee, call site) -> site stats.
    let mut stitches: BTreeMap<(Loc, Option<Loc>), StitchSite> = BTreeMap::new();
    let mut ends: BTreeMap<(String, Loc), LinkEnd> = BTreeMap::new();
    let mut profile = BTreeMap::<Loc, LocProfile>::new();
    let mut funcs = BTreeMap::<Loc, LocProfile>::new();

    for src in sources {
        let w = src.header.worker;
        let (mut flushes, mut profiler_flushes) = (0, 0);
        // Pre-pass: the start of every completed trace, and the last event
        // index at which each start location completed a trace.
        let mut trace_loc: HashMap<(i64, i64), &Loc> = HashMap::new();
        let mut last_done: HashMap<&Loc, usize> = HashMap::new();
        // (gen, parent, exit) -> outcome of the exit's side traces.
        let mut side: HashMap<(i64, i64, i64), SideOutcome> = HashMap::new();
        for (i, ev) in src.events.iter().enumerate() {
            match ev {
                Event::Stop { t, link, .. } => {
                    trace_loc.insert((t.gen, t.tr), &t.loc);
                    last_done.insert(&t.loc, i);
                    if t.kind == "side" {
                        let o = if link == "interpreter" { SideOutcome::Interpreter } else { SideOutcome::Compiled };
                        let e = side.entry((t.gen, t.parent, t.exit)).or_insert(o);
                        *e = (*e).max(o);
                    }
                }
                Event::Abort { t, .. } if t.kind == "side" => {
                    let e = side.entry((t.gen, t.parent, t.exit)).or_insert(SideOutcome::Aborted);
                    *e = (*e).max(SideOutcome::Aborted);
                }
                _ => {}
            }
        }

        // Stitch stops waiting for their continuation's `start`: (gen, tr) -> key.
        let mut pending: HashMap<(i64, i64), (Loc, Loc)> = HashMap::new();
        // Start -> (root aborts so far, event index of the BLACKLIST_ABORTS-th).
        let mut root_aborts: HashMap<&Loc, (u64, usize)> = HashMap::new();
        let mut exits: BTreeMap<(i64, i64, i64), u64> = BTreeMap::new();
        for (i, ev) in src.events.iter().enumerate() {
            match ev {
                Event::Start(t) => {
                    a.summary.started.add(&t.kind, 1);
                    let l = line(&mut lines, &t.loc);
                    l.started += 1;
                    l.workers.insert(w);
                    if t.kind == "stitch" {
                        if let Some((callee, start)) = pending.remove(&(t.gen, t.parent)) {
                            add_stitch(&mut stitches, callee, Some(t.loc.clone()), start, w);
                        }
                    }
                }
                Event::Stop { t, link, callee, .. } => {
                    a.summary.completed.add(&t.kind, 1);
                    *a.summary.links.entry(link.clone()).or_default() += 1;
                    let l = line(&mut lines, &t.loc);
                    l.completed += 1;
                    l.workers.insert(w);
                    *l.links.entry(link.clone()).or_default() += 1;
                    match link.as_str() {
                        "stitch" => {
                            let callee = callee.clone().unwrap_or_default();
                            // A continuation that never started leaves the call site unknown.
                            if let Some((c, s)) = pending.insert((t.gen, t.tr), (callee, t.loc.clone())) {
                                add_stitch(&mut stitches, c, None, s, w);
                            }
                        }
                        "return" | "interpreter" => {
                            let e = ends.entry((link.clone(), t.loc.clone())).or_insert_with(|| LinkEnd {
                                link: link.clone(),
                                loc: t.loc.clone(),
                                ..Default::default()
                            });
                            e.count += 1;
                            e.workers.insert(w);
                            if link == "interpreter" {
                                if let Some(p) = trace_loc.get(&(t.gen, t.parent)) {
                                    e.parents.insert((*p).clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Event::Abort { t, at, code, id, reason, nyi, profiler } => {
                    a.summary.aborted.add(&t.kind, 1);
                    let l = line(&mut lines, &t.loc);
                    l.aborted += 1;
                    l.workers.insert(w);
                    let informational = INFORMATIONAL.contains(&id.as_str());
                    let key = (id.clone(), nyi.clone(), t.loc.clone(), at.clone(), *profiler);
                    let g = aborts.entry(key).or_insert_with(|| AbortGroup {
                        id: id.clone(),
                        code: *code,
                        reason: reason.clone(),
                        nyi: nyi.clone(),
                        start: t.loc.clone(),
                        at: at.clone(),
                        profiler: *profiler,
                        informational,
                        loop_shape: LOOP_SHAPE.contains(&id.as_str()),
                        ..Default::default()
                    });
                    g.count += 1;
                    g.kinds.add(&t.kind, 1);
                    g.workers.insert(w);
                    if last_done.get(&t.loc).is_none_or(|&d| d < i) {
                        g.unrecovered += 1;
                    }
                    // Only root traces penalise their start pc (lj_trace.c
                    // trace_abort); the informational ids never do.
                    if t.kind == "root" && !informational {
                        let e = root_aborts.entry(&t.loc).or_default();
                        e.0 += 1;
                        if e.0 == BLACKLIST_ABORTS {
                            e.1 = i;
                        }
                    }
                    if id == "BLACKL" {
                        sites.entry(at.clone()).or_default().2.insert(w);
                    }
                }
                Event::Flush { profiler, .. } => {
                    flushes += 1;
                    profiler_flushes += u64::from(*profiler);
                }
                Event::Exits { gen, tr, exit, n } => *exits.entry((*gen, *tr, *exit)).or_default() += n,
                Event::Samples { interval_ms, counts } => {
                    if a.profile.interval_ms == 0.0 {
                        a.profile.interval_ms = *interval_ms;
                    }
                    for s in counts {
                        a.profile.samples += s.n;
                        *a.profile.by_state.entry(s.state).or_default() += s.n;
                        let p = profile.entry(s.loc.clone()).or_insert_with(|| LocProfile { loc: s.loc.clone(), ..Default::default() });
                        add_sample(p, s.state, s.n);
                        if s.loc.kind == "lua" && !s.loc.name.is_empty() {
                            let f = Loc { kind: "function".into(), name: s.loc.name.clone(), ..Default::default() };
                            let p = funcs.entry(f.clone()).or_insert_with(|| LocProfile { loc: f, ..Default::default() });
                            add_sample(p, s.state, s.n);
                        }
                    }
                }
                Event::Blacklist { site, op } => {
                    let e = sites.entry(site.clone()).or_default();
                    if !op.is_empty() {
                        e.0 = Some(op.clone());
                    }
                    e.1 = true;
                    e.2.insert(w);
                }
                Event::Close => {}
            }
        }
        for (callee, start) in pending.into_values() {
            add_stitch(&mut stitches, callee, None, start, w);
        }
        for (loc, (n, nth)) in root_aborts {
            // A start that still completed a trace afterwards was not blacklisted.
            if n >= BLACKLIST_ABORTS && last_done.get(loc).is_none_or(|&d| d < nth) {
                sites.entry(loc.clone()).or_default().2.insert(w);
            }
        }
        for ((gen, tr, exit), n) in exits {
            a.exits.push(HotExit {
                worker: w,
                pid: src.header.pid,
                gen,
                tr,
                exit,
                n,
                start: trace_loc.get(&(gen, tr)).map(|l| (*l).clone()),
                side: side.get(&(gen, tr, exit)).copied().unwrap_or(SideOutcome::None),
            });
        }
        a.summary.flushes += flushes;
        a.summary.profiler_flushes += profiler_flushes;
        a.workers.push(Worker {
            header: src.header.clone(),
            flushes,
            profiler_flushes,
        });
    }

    a.blacklist = sites.into_iter().map(|(site, (op, recorded, workers))| chain(site, op, recorded, workers, &aborts)).collect();
    a.summary.blacklisted_sites = a.blacklist.iter().filter(|s| s.confirmed).count();
    a.summary.at_risk_sites = a.blacklist.len() - a.summary.blacklisted_sites;
    for s in a.blacklist.iter().filter(|s| s.confirmed) {
        if let Some(l) = lines.get_mut(&s.site) {
            l.blacklisted = true;
        }
    }

    a.traces = lines.into_values().collect();
    a.traces.sort_by(|x, y| (y.started + y.completed + y.aborted).cmp(&(x.started + x.completed + x.aborted)).then_with(|| x.loc.cmp(&y.loc)));
    a.aborts = aborts.into_values().collect();
    a.aborts.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.start.cmp(&y.start)));
    a.stitches = group_stitches(stitches);
    a.ends = ends.into_values().collect();
    a.ends.sort_by(|x, y| x.link.cmp(&y.link).then(y.count.cmp(&x.count)).then_with(|| x.loc.cmp(&y.loc)));
    a.exits.sort_by(|x, y| y.n.cmp(&x.n).then(x.worker.cmp(&y.worker)).then(x.gen.cmp(&y.gen)).then(x.tr.cmp(&y.tr)).then(x.exit.cmp(&y.exit)));
    for (list, map) in [(&mut a.profile.locs, profile), (&mut a.profile.funcs, funcs)] {
        *list = map.into_values().collect();
        list.sort_by(|x, y| y.interpreted.cmp(&x.interpreted).then(y.total.cmp(&x.total)).then_with(|| x.loc.cmp(&y.loc)));
    }
    a
}

fn line<'a>(lines: &'a mut BTreeMap<Loc, TraceLine>, loc: &Loc) -> &'a mut TraceLine {
    lines.entry(loc.clone()).or_insert_with(|| TraceLine { loc: loc.clone(), ..Default::default() })
}

fn add_stitch(map: &mut BTreeMap<(Loc, Option<Loc>), StitchSite>, callee: Loc, call_site: Option<Loc>, start: Loc, w: i64) {
    let s = map.entry((callee, call_site.clone())).or_insert_with(|| StitchSite { call_site, ..Default::default() });
    s.count += 1;
    s.traces.insert(start);
    s.workers.insert(w);
}

fn group_stitches(map: BTreeMap<(Loc, Option<Loc>), StitchSite>) -> Vec<Stitch> {
    let mut by_callee: BTreeMap<Loc, Stitch> = BTreeMap::new();
    for ((callee, _), site) in map {
        let s = by_callee.entry(callee.clone()).or_insert_with(|| Stitch { callee, ..Default::default() });
        s.count += site.count;
        s.sites.push(site);
    }
    let mut out: Vec<Stitch> = by_callee.into_values().collect();
    for s in &mut out {
        s.sites.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.call_site.cmp(&y.call_site)));
    }
    out.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.callee.cmp(&y.callee)));
    out
}

/// The chain of one blacklisted site: the aborts that started there (the
/// cause: the penalty lands on the start pc) and the `BLACKL` aborts that
/// later ran into it (the callers).
fn chain(site: Loc, op: Option<String>, recorded: bool, workers: BTreeSet<i64>, aborts: &BTreeMap<AbortKey, AbortGroup>) -> BlacklistSite {
    let mut causes: BTreeMap<(String, Option<String>, Loc), Cause> = BTreeMap::new();
    let mut cascade: BTreeMap<Loc, u64> = BTreeMap::new();
    for g in aborts.values() {
        if g.start == site && !g.informational {
            let c = causes.entry((g.id.clone(), g.nyi.clone(), g.at.clone())).or_insert_with(|| Cause {
                id: g.id.clone(),
                nyi: g.nyi.clone(),
                reason: g.reason.clone(),
                at: g.at.clone(),
                count: 0,
            });
            c.count += g.count;
        }
        if g.id == "BLACKL" && g.at == site {
            *cascade.entry(g.start.clone()).or_default() += g.count;
        }
    }
    let mut causes: Vec<Cause> = causes.into_values().collect();
    causes.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.at.cmp(&y.at)));
    let mut cascade: Vec<(Loc, u64)> = cascade.into_iter().collect();
    cascade.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let confirmed = recorded || !cascade.is_empty();
    BlacklistSite { site, op, recorded, confirmed, workers, causes, cascade }
}
