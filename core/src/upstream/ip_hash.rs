//! `ip_hash` (ngx_http_upstream_ip_hash_module.c): the first three octets
//! of an IPv4 client (all 16 bytes of IPv6; three zero bytes for a client
//! with no IP) hashed as `hash = (hash * 113 + byte) % 6271` from 89, the
//! hash modulo the total weight naming a peer by weight; an unusable peer
//! hashes the address again from there. After 20 misses, round robin.

use std::net::IpAddr;
use std::time::Instant;

use super::{Balancer, TriedSet};

const MAX_TRIES: usize = 20;

impl Balancer {
    pub(super) fn pick_ip_hash(&mut self, client: Option<IpAddr>, tried: &TriedSet, now: Instant) -> Option<usize> {
        let v6;
        let v4;
        let addr: &[u8] = match client {
            Some(IpAddr::V4(a)) => {
                v4 = a.octets();
                &v4[..3]
            }
            Some(IpAddr::V6(a)) => {
                v6 = a.octets();
                &v6[..]
            }
            None => &[0, 0, 0],
        };
        let mut hash: u64 = 89;
        for _ in 0..=MAX_TRIES {
            for &b in addr {
                hash = (hash * 113 + b as u64) % 6271;
            }
            let i = self.by_weight(hash as u128 % self.total_weight);
            if !tried.contains(i) && self.peers[i].usable(now) {
                self.peers[i].picked(now);
                return Some(i);
            }
        }
        self.pick_rr(tried, now)
    }
}
