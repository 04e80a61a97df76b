//! `random [two [least_conn]]` (ngx_http_upstream_random_module.c): a
//! primary drawn with probability by weight; with `two`, two distinct
//! usable draws and the one with fewer active connections per weight
//! (ties: the second, as nginx). After 20 misses, round robin.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Instant;

use crate::conf::types::UpstreamConf;

use super::{Balancer, Method, TriedSet};

const MAX_TRIES: usize = 20;

pub(super) struct Random {
    two: bool,
    /// xorshift64* state.
    state: u64,
    /// Cumulative weights of the primaries (for the draw's binary search).
    ranges: Vec<(u128, usize)>,
}

impl Random {
    pub fn new(conf: &UpstreamConf, primary: &[usize], two: bool) -> Random {
        let mut acc = 0u128;
        let ranges = primary
            .iter()
            .map(|&i| {
                acc += conf.peers[i].weight as u128;
                (acc, i)
            })
            .collect();
        // A per-process random seed without I/O.
        let seed = RandomState::new().hash_one(conf.name.as_str()) | 1;
        Random { two, state: seed, ranges }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A primary, by weight.
    fn peek(&mut self) -> usize {
        let total = self.ranges.last().map_or(1, |r| r.0);
        let x = self.next() as u128 % total;
        let k = self.ranges.partition_point(|r| r.0 <= x);
        self.ranges[k].1
    }
}

impl Balancer {
    pub(super) fn pick_random(&mut self, tried: &TriedSet, now: Instant) -> Option<usize> {
        let Method::Random(r) = &mut self.method else { unreachable!("pick_random without state") };
        let two = r.two;
        let mut first: Option<usize> = None;
        let mut chosen = None;
        for _ in 0..=MAX_TRIES {
            let i = r.peek();
            if Some(i) == first || tried.contains(i) || !self.peers[i].usable(now) {
                continue;
            }
            if !two {
                chosen = Some(i);
                break;
            }
            match first {
                None => first = Some(i),
                Some(f) => {
                    let (a, b) = (&self.peers[i], &self.peers[f]);
                    // The second draw unless it has more per weight.
                    let more = (a.conns as i128) * b.weight > (b.conns as i128) * a.weight;
                    chosen = Some(if more { f } else { i });
                    break;
                }
            }
        }
        match chosen {
            Some(i) => {
                self.peers[i].picked(now);
                Some(i)
            }
            None => self.pick_rr(tried, now),
        }
    }
}
