//! Idle upstream connections, per worker: kept after a complete HTTP/1.1
//! response without `Connection: close`, reused most recent first after a
//! non-blocking peek. They live in the worker's keep-alive pools
//! (`cosocket::pool`, under keys Lua's pools cannot take), so its sweeper
//! closes those the peer closed or that stayed idle past their timeout.
//!
//! Which pool, on what terms ([`Terms::of`]): an `upstream {}` block's
//! `keepalive N` is one pool for all its peers (N idle at most, the oldest
//! closed for a newer one, `keepalive_timeout`, `keepalive_requests`), as
//! nginx's; a block without it keeps none. ngx.balancer's
//! enable_keepalive keeps the try's connection in its named pool. A static
//! proxy_pass's connections are kept per address (halo's own choice:
//! nginx keeps none without an upstream block).

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::proxy::ProxyPass;
use crate::cosocket::pool::{self, Key};

/// Idle connections kept per address of a static proxy_pass.
const STATIC_IDLE: usize = 32;
/// How long those stay idle, and how many requests one serves (nginx's
/// upstream `keepalive_timeout` and `keepalive_requests` defaults).
const STATIC_TIMEOUT: Duration = Duration::from_secs(60);
const STATIC_REQUESTS: u64 = 1000;

/// Where a try's connection goes back to, and on what terms.
pub struct Terms<'p> {
    key: Key<'p>,
    /// Idle connections the pool keeps.
    size: usize,
    /// How long one may idle (zero: until the peer closes it).
    timeout: Duration,
    /// Requests one connection serves before it is closed.
    requests: u64,
}

impl<'p> Terms<'p> {
    /// The pool of a try to `addr` through `pass`, None when its
    /// connection is not kept. `keepalive` and `pool`: what ngx.balancer's
    /// enable_keepalive and set_current_peer set for it (a named pool, or
    /// the block's).
    pub fn of(pass: &'p ProxyPass, addr: SocketAddr, keepalive: Option<(Duration, u32)>, pool: Option<&'p (String, Option<usize>)>) -> Option<Terms<'p>> {
        let Some(up) = &pass.upstream else {
            return Some(Terms { key: Key::Peer(addr), size: STATIC_IDLE, timeout: STATIC_TIMEOUT, requests: STATIC_REQUESTS });
        };
        if let Some((timeout, requests)) = keepalive {
            let (name, size) = pool.map_or(("", None), |(n, s)| (n.as_str(), *s));
            let key = if name.is_empty() { Key::Upstream(block(up)) } else { Key::Balancer(name) };
            let requests = if requests == 0 { u64::MAX } else { u64::from(requests) };
            return Some(Terms { key, size: size.unwrap_or(up.balancer_keepalive), timeout, requests });
        }
        let size = up.keepalive?;
        Some(Terms { key: Key::Upstream(block(up)), size, timeout: up.keepalive_timeout, requests: up.keepalive_requests })
    }
}

/// An upstream block's pool key: its address (a reload makes new blocks,
/// and a new worker).
fn block(up: &std::sync::Arc<crate::conf::upstream::UpstreamConf>) -> usize {
    std::sync::Arc::as_ptr(up) as usize
}

/// An idle connection to `addr` still open: its fd and how often it served.
pub fn take(terms: &Terms, addr: SocketAddr) -> Option<(RawFd, u32)> {
    match terms.key {
        Key::Peer(_) => pool::take(terms.key),
        key => pool::take_peer(key, addr),
    }
}

/// Keep `fd` to `addr`, which has served `served` requests, for the next
/// request; false when it is done (served its requests) and not kept.
pub fn put(terms: &Terms, addr: SocketAddr, fd: RawFd, served: u32) -> bool {
    if u64::from(served) >= terms.requests {
        return false;
    }
    match terms.key {
        Key::Peer(_) => pool::put(terms.key, fd, served, terms.timeout, terms.size),
        key => pool::put_peer(key, addr, fd, served, terms.timeout, terms.size),
    }
    true
}
