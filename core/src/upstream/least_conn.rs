//! `least_conn` (ngx_http_upstream_least_conn_module.c): the usable peer
//! with the fewest active connections relative to its weight; ties are
//! broken by smooth weighted round robin among the tied peers. Backups
//! are tried the same way when no primary is usable.

use std::time::Instant;

use super::health::PeerState;
use super::{Balancer, TriedSet};

/// `a` has fewer connections per weight than `b`: a.conns/a.w < b.conns/b.w.
fn fewer(a: &PeerState, b: &PeerState) -> bool {
    (a.conns as i128) * b.weight < (b.conns as i128) * a.weight
}

fn same(a: &PeerState, b: &PeerState) -> bool {
    (a.conns as i128) * b.weight == (b.conns as i128) * a.weight
}

fn least(peers: &mut [PeerState], list: &[usize], tried: &TriedSet, now: Instant) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut many = false;
    for &i in list {
        if tried.contains(i) || !peers[i].usable(now) {
            continue;
        }
        match best {
            Some(b) if !fewer(&peers[i], &peers[b]) => many |= same(&peers[i], &peers[b]),
            _ => {
                best = Some(i);
                many = false;
            }
        }
    }
    let first = best?;
    if !many {
        peers[first].picked(now);
        return Some(first);
    }
    // The tied peers, from the first one on.
    let start = list.iter().position(|&i| i == first).unwrap_or(0);
    let tied: Vec<usize> = list[start..]
        .iter()
        .copied()
        .filter(|&i| !tried.contains(i) && peers[i].usable(now) && same(&peers[i], &peers[first]))
        .collect();
    super::rr::smooth(peers, &tied, tried, now, |_| true)
}

impl Balancer {
    pub(super) fn pick_least_conn(&mut self, tried: &TriedSet, now: Instant) -> Option<usize> {
        least(&mut self.peers, &self.primary, tried, now).or_else(|| least(&mut self.peers, &self.backup, tried, now))
    }
}
