//! A peer's per-worker counters: passive health (nginx's `max_fails` and
//! `fail_timeout`), active connections for `max_conns` and `least_conn`,
//! and the weights smooth round robin moves.

use std::time::{Duration, Instant};

use crate::conf::types::PeerConf;

use super::Outcome;

pub(super) struct PeerState {
    pub weight: i128,
    /// Lowered by failures (weight / max_fails each), raised by one per
    /// selection round back to `weight`.
    pub effective_weight: i128,
    pub current_weight: i128,
    /// Picked and not yet done.
    pub conns: u64,
    pub fails: u64,
    /// When the last failure happened (None: never, nginx's 0).
    pub accessed: Option<Instant>,
    /// When the failure window last started: the last failure, or the pick
    /// that re-checks a peer after its window.
    pub checked: Option<Instant>,
    pub max_fails: u64,
    pub fail_timeout: Duration,
    pub max_conns: u64,
    pub down: bool,
}

/// `now - t`, with None as the distant past.
fn since(now: Instant, t: Option<Instant>) -> Option<Duration> {
    t.map(|t| now.saturating_duration_since(t))
}

impl PeerState {
    pub fn new(p: &PeerConf) -> PeerState {
        let weight = p.weight as i128;
        PeerState {
            weight,
            effective_weight: weight,
            current_weight: 0,
            conns: 0,
            fails: 0,
            accessed: None,
            checked: None,
            max_fails: p.max_fails,
            fail_timeout: p.fail_timeout,
            max_conns: p.max_conns,
            down: p.down,
        }
    }

    /// nginx's skip conditions, besides `tried`: down; `max_fails` failures
    /// with the window since `checked` not yet over; `max_conns` reached.
    pub fn usable(&self, now: Instant) -> bool {
        if self.down {
            return false;
        }
        if self.max_fails > 0
            && self.fails >= self.max_fails
            && since(now, self.checked).is_some_and(|d| d <= self.fail_timeout)
        {
            return false;
        }
        !(self.max_conns > 0 && self.conns >= self.max_conns)
    }

    /// A pick of this peer: a peer whose window is over starts a new one
    /// (so the success of this try clears its failures).
    pub fn picked(&mut self, now: Instant) {
        if since(now, self.checked).is_none_or(|d| d > self.fail_timeout) {
            self.checked = Some(now);
        }
    }

    /// ngx_http_upstream_free_round_robin_peer's accounting.
    pub fn outcome(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Failed => {
                self.fails += 1;
                self.accessed = Some(now);
                self.checked = Some(now);
                if self.max_fails > 0 {
                    self.effective_weight -= self.weight / self.max_fails as i128;
                }
                if self.effective_weight < 0 {
                    self.effective_weight = 0;
                }
            }
            Outcome::Ok => {
                if self.accessed < self.checked {
                    self.fails = 0;
                }
            }
        }
    }
}
