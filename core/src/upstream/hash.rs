//! `hash KEY` and `hash KEY consistent` (ngx_http_upstream_hash_module.c).
//!
//! The plain hash is Cache::Memcached's: `((crc32([REHASH] KEY) >> 16) &
//! 0x7fff)` added to the previous value, the sum modulo the total weight
//! naming a peer by weight; an unusable peer rehashes (REHASH = 1, 2, ...).
//! The consistent hash is ketama as in Cache::Memcached::Fast: each server
//! gets `weight * 160` points `crc32(HOST \0 PORT PREV_HASH)` on a ring
//! (HOST and PORT split from the `server` argument as written); a key goes
//! to the first point at or after `crc32(KEY)`, then onwards. After 20
//! misses both fall back to round robin.

use std::sync::Arc;
use std::time::Instant;

use crate::conf::types::UpstreamConf;

use super::{Balancer, TriedSet};

/// The misses after which nginx falls back to round robin.
const MAX_TRIES: usize = 20;

/// The sorted, deduplicated ketama points: (hash, server).
pub(super) struct Points {
    points: Vec<(u32, Arc<str>)>,
}

/// `server` split as nginx's ngx_http_upstream_init_chash does: `unix:`
/// names are all host; else a trailing `:digits` is the port.
fn host_port(server: &str) -> (&[u8], &[u8]) {
    let b = server.as_bytes();
    if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"unix:") {
        return (&b[5..], b"");
    }
    for j in 0..b.len() {
        let c = b[b.len() - j - 1];
        if c == b':' {
            return (&b[..b.len() - j - 1], &b[b.len() - j..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (b, b"")
}

impl Points {
    pub fn new(conf: &UpstreamConf, primary: &[usize]) -> Points {
        let mut points = Vec::new();
        for &i in primary {
            let peer = &conf.peers[i];
            let (host, port) = host_port(&peer.server);
            let mut base = crc32fast::Hasher::new();
            base.update(host);
            base.update(b"\0");
            base.update(port);
            let mut prev: u32 = 0;
            for _ in 0..peer.weight.saturating_mul(160) {
                let mut h = base.clone();
                h.update(&prev.to_le_bytes());
                let hash = h.finalize();
                points.push((hash, peer.server.clone()));
                prev = hash;
            }
        }
        // ngx_qsort is not stable; equal hashes are merged anyway, the
        // first kept.
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
        Points { points }
    }

    /// ngx_http_upstream_find_chash_point: the first point whose hash is
    /// at least `hash` (may be one past the end, which wraps).
    fn find(&self, hash: u32) -> usize {
        self.points.partition_point(|p| p.0 < hash)
    }

    #[cfg(test)]
    pub fn contains(&self, hash: u32) -> bool {
        self.points.iter().any(|p| p.0 == hash)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }
}

/// `crc32([rehash] key)` folded as nginx's plain hash.
fn step(rehash: usize, key: &[u8]) -> u64 {
    let mut h = crc32fast::Hasher::new();
    if rehash > 0 {
        h.update(rehash.to_string().as_bytes());
    }
    h.update(key);
    ((h.finalize() >> 16) & 0x7fff) as u64
}

impl Balancer {
    /// The primary whose weight range holds `w` (< total weight).
    pub(super) fn by_weight(&self, mut w: u128) -> usize {
        for &i in &self.primary {
            let weight = self.conf.peers[i].weight as u128;
            if w < weight {
                return i;
            }
            w -= weight;
        }
        *self.primary.last().expect("an upstream has a primary")
    }

    pub(super) fn pick_hash(&mut self, key: &[u8], tried: &TriedSet, now: Instant) -> Option<usize> {
        let mut hash: u64 = 0;
        for rehash in 0..=MAX_TRIES {
            hash = hash.wrapping_add(step(rehash, key));
            let i = self.by_weight(hash as u128 % self.total_weight);
            if !tried.contains(i) && self.peers[i].usable(now) {
                self.peers[i].picked(now);
                return Some(i);
            }
        }
        self.pick_rr(tried, now)
    }

    pub(super) fn pick_chash(&mut self, key: &[u8], tried: &TriedSet, now: Instant) -> Option<usize> {
        let Method::Chash(points) = &self.method else { unreachable!("pick_chash without points") };
        let n = points.points.len();
        let start = points.find(crc32fast::hash(key));
        let servers: Vec<Arc<str>> = (0..=MAX_TRIES).map(|k| points.points[(start + k) % n].1.clone()).collect();
        let conf = self.conf.clone();
        for server in servers {
            // Among the addresses of that server, by smooth round robin.
            let found = super::rr::smooth(&mut self.peers, &self.primary, tried, now, |i| conf.peers[i].server == server);
            if found.is_some() {
                return found;
            }
        }
        self.pick_rr(tried, now)
    }
}

use super::Method;
