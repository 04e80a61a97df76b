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
//! nginx keeps none without an upstream block), and so are a unix socket
//! peer's, on its block's terms (the shared pools find peers by IP and port).

use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::proxy::ProxyPass;
use crate::conf::upstream::PeerAddr;
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
    /// A unix socket peer's pool name (a NUL cannot be in a name Lua gives).
    unix: Option<String>,
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
    pub fn of(pass: &'p ProxyPass, addr: &PeerAddr, keepalive: Option<(Duration, u32)>, pool: Option<&'p (String, Option<usize>)>) -> Option<Terms<'p>> {
        let (key, size, timeout, requests) = match &pass.upstream {
            None => (Key::Name(""), STATIC_IDLE, STATIC_TIMEOUT, STATIC_REQUESTS),
            Some(up) => match keepalive {
                Some((timeout, requests)) => {
                    let (name, size) = pool.map_or(("", None), |(n, s)| (n.as_str(), *s));
                    let key = if name.is_empty() { Key::Upstream(block(up)) } else { Key::Balancer(name) };
                    let requests = if requests == 0 { u64::MAX } else { u64::from(requests) };
                    (key, size.unwrap_or(up.balancer_keepalive), timeout, requests)
                }
                None => (Key::Upstream(block(up)), up.keepalive?, up.keepalive_timeout, up.keepalive_requests),
            },
        };
        // A static peer's own pool, and a unix peer's.
        let (key, unix) = match addr {
            PeerAddr::Unix(_) => (key, Some(format!("\0proxy {addr}"))),
            PeerAddr::Inet(a) if pass.upstream.is_none() => (Key::Peer(*a), None),
            PeerAddr::Inet(_) => (key, None),
        };
        Some(Terms { key, unix, size, timeout, requests })
    }

    /// The pool's key, and the peer to find in it when several share it.
    fn key<'k>(&'k self, addr: &PeerAddr) -> (Key<'k>, Option<std::net::SocketAddr>) {
        match (&self.unix, addr) {
            (Some(name), _) => (Key::Name(name), None),
            (None, PeerAddr::Inet(a)) if matches!(self.key, Key::Upstream(_) | Key::Balancer(_)) => (self.key, Some(*a)),
            (None, _) => (self.key, None),
        }
    }
}

/// An upstream block's pool key: its address (a reload makes new blocks,
/// and a new worker).
fn block(up: &std::sync::Arc<crate::conf::upstream::UpstreamConf>) -> usize {
    std::sync::Arc::as_ptr(up) as usize
}

/// An idle connection to `addr` still open: its fd and how often it served.
pub fn take(terms: &Terms, addr: &PeerAddr) -> Option<(RawFd, u32)> {
    match terms.key(addr) {
        (key, Some(peer)) => pool::take_peer(key, peer),
        (key, None) => pool::take(key),
    }
}

/// Keep `fd` to `addr`, which has served `served` requests, for the next
/// request; false when it is done (served its requests) and not kept.
pub fn put(terms: &Terms, addr: &PeerAddr, fd: RawFd, served: u32) -> bool {
    if u64::from(served) >= terms.requests {
        return false;
    }
    match terms.key(addr) {
        (key, Some(peer)) => pool::put_peer(key, peer, fd, served, terms.timeout, terms.size),
        (key, None) => pool::put(key, fd, served, terms.timeout, terms.size),
    }
    true
}
