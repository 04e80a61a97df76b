//! Idle upstream connections, per worker and per peer address (IP and
//! port, or unix socket path): kept after
//! a complete HTTP/1.1 response without `Connection: close`, reused most
//! recent first after a non-blocking peek. They live in the worker's
//! keep-alive pools (`cosocket::pool`, keyed by the peer's address, which
//! no Lua pool name can take, see [`with_key`]), so its sweeper closes those
//! the peer closed or that stayed idle past [`IDLE_TIMEOUT`].

use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::upstream::PeerAddr;
use crate::cosocket::pool;

/// Idle connections kept per peer address.
pub const MAX_IDLE: usize = 32;
/// How long an idle connection is kept (nginx's upstream keepalive_timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pool of `addr`: keyed by the address itself for IP peers; a unix
/// socket's by a name no Lua pool can have (Lua names hold no NUL).
fn with_key<R>(addr: &PeerAddr, f: impl FnOnce(pool::Key) -> R) -> R {
    match addr {
        PeerAddr::Inet(a) => f(pool::Key::Peer(*a)),
        PeerAddr::Unix(_) => f(pool::Key::Name(&format!("\0proxy {addr}"))),
    }
}

/// An idle connection to `addr` still open: its fd and how often it served.
pub fn take(addr: &PeerAddr) -> Option<(RawFd, u32)> {
    with_key(addr, |k| pool::take(k))
}

/// Keep `fd` for the next request to `addr`.
pub fn put(addr: &PeerAddr, fd: RawFd, reused: u32) {
    with_key(addr, |k| pool::put(k, fd, reused, IDLE_TIMEOUT, MAX_IDLE));
}

/// How many idle connections `addr` has.
pub fn idle(addr: &PeerAddr) -> usize {
    with_key(addr, |k| pool::idle_count(k))
}
