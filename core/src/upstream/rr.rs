//! Smooth weighted round robin (ngx_http_upstream_round_robin.c): each
//! round every usable peer's `current_weight` grows by its
//! `effective_weight`, the largest wins and gives back the round's total.
//! Weights 5, 1, 1 give a a b a c a a. Backups are tried only when no
//! primary is usable.

use std::time::Instant;

use super::health::PeerState;
use super::{Balancer, TriedSet};

/// One smooth-weighted round over `list` among the peers `usable` and
/// `extra` accept; the winner is marked as picked.
pub(super) fn smooth(
    peers: &mut [PeerState],
    list: &[usize],
    tried: &TriedSet,
    now: Instant,
    mut extra: impl FnMut(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut total: i128 = 0;
    for &i in list {
        if tried.contains(i) || !peers[i].usable(now) || !extra(i) {
            continue;
        }
        let p = &mut peers[i];
        p.current_weight += p.effective_weight;
        total += p.effective_weight;
        if p.effective_weight < p.weight {
            p.effective_weight += 1;
        }
        if best.is_none_or(|b| peers[i].current_weight > peers[b].current_weight) {
            best = Some(i);
        }
    }
    let b = best?;
    peers[b].current_weight -= total;
    peers[b].picked(now);
    Some(b)
}

impl Balancer {
    /// ngx_http_upstream_get_round_robin_peer: the primaries, then the
    /// backups.
    pub(super) fn pick_rr(&mut self, tried: &TriedSet, now: Instant) -> Option<usize> {
        if self.single {
            let i = self.primary[0];
            let p = &self.peers[i];
            // nginx never takes a lone server out for its failures.
            if tried.contains(i) || p.down || (p.max_conns > 0 && p.conns >= p.max_conns) {
                return None;
            }
            return Some(i);
        }
        smooth(&mut self.peers, &self.primary, tried, now, |_| true)
            .or_else(|| smooth(&mut self.peers, &self.backup, tried, now, |_| true))
    }
}
