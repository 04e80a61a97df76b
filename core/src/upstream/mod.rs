//! Load balancing over an `upstream {}` group: which peer a request's next
//! try goes to, and what its outcome teaches (nginx's round-robin, hash,
//! ip_hash, least_conn and random modules, without a `zone`: state is per
//! worker). Pure computation, no I/O: the proxy owns one [`Balancer`] per
//! group per worker and calls it.
//!
//! A request's tries:
//!
//! ```text
//! let mut tried = TriedSet::new();
//! for _ in 0..balancer.tries() {            // or proxy_next_upstream_tries
//!     let Some(peer) = balancer.pick(&input, &mut tried) else { break }; // 502
//!     ... connect to peer.addr, send, read ...
//!     balancer.done(&peer, Outcome::Ok or Outcome::Failed);
//! }
//! ```
//!
//! Files: `health` (a peer's counters: max_fails / fail_timeout, max_conns,
//! down), `rr` (smooth weighted round robin, also the fallback of the other
//! methods), `hash` (`hash KEY` and its ketama `consistent` form),
//! `ip_hash`, `least_conn`, `random`.

mod hash;
mod health;
mod ip_hash;
mod least_conn;
mod random;
mod rr;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::conf::types::{Balance, PeerAddr, UpstreamConf};

use health::PeerState;

/// The peer a try goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its index in `UpstreamConf::peers` (what [`TriedSet`] and
    /// [`Balancer::done`] know it by).
    pub index: usize,
    pub addr: PeerAddr,
    /// The address as `$upstream_addr` shows it (`10.0.0.1:80`,
    /// `unix:/run/app.sock`).
    pub name: Arc<str>,
}

/// How a try with a peer went, for [`Balancer::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer answered (whatever the status): its failures are forgiven
    /// if it was being re-checked.
    Ok,
    /// Connect error, timeout, or a response `proxy_next_upstream` counts
    /// as a failure: counts against `max_fails` within `fail_timeout`.
    Failed,
}

/// The peers one request has tried already (nginx's `rrp->tried`
/// bitmap); [`Balancer::pick`] adds the peer it returns.
#[derive(Debug, Clone, Default)]
pub struct TriedSet {
    /// Peers 0..64, then the rest (an upstream of up to 64 peers, nearly
    /// all, allocates nothing).
    first: u64,
    rest: Vec<u64>,
}

impl TriedSet {
    pub fn new() -> TriedSet {
        TriedSet::default()
    }

    pub fn insert(&mut self, index: usize) {
        let (w, b) = (index / 64, index % 64);
        if w == 0 {
            self.first |= 1 << b;
            return;
        }
        if self.rest.len() < w {
            self.rest.resize(w, 0);
        }
        self.rest[w - 1] |= 1 << b;
    }

    pub fn contains(&self, index: usize) -> bool {
        let (w, b) = (index / 64, index % 64);
        let word = if w == 0 { Some(&self.first) } else { self.rest.get(w - 1) };
        word.is_some_and(|w| w & (1 << b) != 0)
    }

    /// How many peers are in the set.
    pub fn len(&self) -> usize {
        self.first.count_ones() as usize + self.rest.iter().map(|w| w.count_ones() as usize).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.first == 0 && self.rest.iter().all(|&w| w == 0)
    }
}

/// What one pick needs to know about the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// The client's address (`ip_hash`); None (a unix-socket client) hashes
    /// as nginx's pseudo address.
    pub client_ip: Option<IpAddr>,
    /// The `hash` key, the group's `Balance::Hash::key` evaluated for this
    /// request; None or empty falls back to round robin, as nginx.
    pub hash_key: Option<&'a [u8]>,
}

/// The clock the failure windows are measured on.
pub type Clock = Box<dyn Fn() -> Instant>;

/// One worker's balancing state for one `upstream` group.
pub struct Balancer {
    conf: Arc<UpstreamConf>,
    peers: Vec<PeerState>,
    /// Indexes of the primary peers, then of the backups, in config order.
    primary: Vec<usize>,
    backup: Vec<usize>,
    /// Sum of the primaries' weights (down ones too, as nginx).
    total_weight: u128,
    /// One primary and no backup: nginx's `peers->single` (its failures
    /// are not counted, it is never taken out).
    single: bool,
    method: Method,
    clock: Clock,
}

enum Method {
    RoundRobin,
    Hash,
    Chash(hash::Points),
    IpHash,
    LeastConn,
    Random(random::Random),
}

impl Balancer {
    /// A balancer for `conf` on the system's monotonic clock.
    pub fn new(conf: Arc<UpstreamConf>) -> Balancer {
        Balancer::with_clock(conf, Box::new(Instant::now))
    }

    /// A balancer whose failure windows are measured on `clock` (tests
    /// pass one they advance).
    pub fn with_clock(conf: Arc<UpstreamConf>, clock: Clock) -> Balancer {
        let peers: Vec<PeerState> = conf.peers.iter().map(PeerState::new).collect();
        let primary: Vec<usize> = (0..peers.len()).filter(|&i| !conf.peers[i].backup).collect();
        let backup: Vec<usize> = (0..peers.len()).filter(|&i| conf.peers[i].backup).collect();
        let total_weight = primary.iter().map(|&i| conf.peers[i].weight as u128).sum();
        let single = primary.len() == 1 && backup.is_empty();
        let method = match &conf.method {
            Balance::RoundRobin => Method::RoundRobin,
            Balance::Hash { consistent: false, .. } => Method::Hash,
            Balance::Hash { consistent: true, .. } => Method::Chash(hash::Points::new(&conf, &primary)),
            Balance::IpHash => Method::IpHash,
            Balance::LeastConn => Method::LeastConn,
            Balance::Random { two } => Method::Random(random::Random::new(&conf, &primary, *two)),
        };
        Balancer { conf, peers, primary, backup, total_weight, single, method, clock }
    }

    /// The group this balancer serves.
    pub fn conf(&self) -> &Arc<UpstreamConf> {
        &self.conf
    }

    /// How many tries a request may make: the peers not marked `down`,
    /// backups included (nginx's `peer.tries`, whatever the method;
    /// `proxy_next_upstream_tries` may lower it).
    pub fn tries(&self) -> usize {
        self.conf.peers.iter().filter(|p| !p.down).count()
    }

    /// The peer for the request's next try, or None when every peer is
    /// down, tried, failed within its window or at `max_conns` (nginx's
    /// NGX_BUSY: "no live upstreams"). The peer is added to `tried` and
    /// counted as an active connection until [`Balancer::done`].
    ///
    /// The hash methods recompute their sequence from the key each time and
    /// skip what `tried` holds, which walks the same peers as nginx's
    /// per-request hash state.
    pub fn pick(&mut self, input: &PickInput, tried: &mut TriedSet) -> Option<Peer> {
        let now = (self.clock)();
        let index = match &self.method {
            Method::RoundRobin => self.pick_rr(tried, now),
            Method::Hash => match input.hash_key {
                Some(key) if !key.is_empty() && !self.single => self.pick_hash(key, tried, now),
                _ => self.pick_rr(tried, now),
            },
            Method::Chash(_) => match input.hash_key {
                Some(key) if !key.is_empty() && !self.single => self.pick_chash(key, tried, now),
                _ => self.pick_rr(tried, now),
            },
            Method::IpHash if !self.single => self.pick_ip_hash(input.client_ip, tried, now),
            Method::IpHash => self.pick_rr(tried, now),
            Method::LeastConn if !self.single => self.pick_least_conn(tried, now),
            Method::LeastConn => self.pick_rr(tried, now),
            Method::Random(_) if self.primary.len() >= 2 => self.pick_random(tried, now),
            Method::Random(_) => self.pick_rr(tried, now),
        }?;
        tried.insert(index);
        self.peers[index].conns += 1;
        let p = &self.conf.peers[index];
        Some(Peer { index, addr: p.addr.clone(), name: p.name.clone() })
    }

    /// The end of a try with `peer`: its connection stops counting as
    /// active, and a failure counts against `max_fails` (and lowers its
    /// effective weight, as nginx); a success after its window clears its
    /// failures. True when this failure reached `max_fails`: the caller
    /// logs nginx's warning "upstream server temporarily disabled".
    pub fn done(&mut self, peer: &Peer, outcome: Outcome) -> bool {
        let now = (self.clock)();
        let single = self.single;
        let Some(state) = self.peers.get_mut(peer.index) else { return false };
        state.conns = state.conns.saturating_sub(1);
        if single {
            return false;
        }
        state.outcome(outcome, now);
        outcome == Outcome::Failed && state.max_fails > 0 && state.fails >= state.max_fails
    }

    /// The active connections (picked, not yet done) of a peer, by index.
    pub fn active(&self, index: usize) -> u64 {
        self.peers.get(index).map_or(0, |p| p.conns)
    }

    /// Whether a peer may be picked now (not down, not failed within its
    /// window, below `max_conns`), ignoring any request's tries.
    pub fn is_available(&self, index: usize) -> bool {
        let now = (self.clock)();
        self.peers.get(index).is_some_and(|p| p.usable(now))
    }
}
