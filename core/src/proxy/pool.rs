//! Idle upstream connections, per worker and per peer address (IP and
//! port, or unix socket path): kept after
//! a complete HTTP/1.1 response without `Connection: close`, reused most
//! recent first after a non-blocking peek. They live in the worker's
//! keep-alive pools (`cosocket::pool`, under a name Lua's pools cannot
//! take), so its sweeper closes those the peer closed or that stayed idle
//! past [`IDLE_TIMEOUT`].

use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::upstream::PeerAddr;
use crate::cosocket::pool;

/// Idle connections kept per peer address.
pub const MAX_IDLE: usize = 32;
/// How long an idle connection is kept (nginx's upstream keepalive_timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn key(addr: &PeerAddr) -> String {
    // (A NUL cannot be in a pool name Lua gives, so no cosocket pool shares it.)
    format!("\0proxy {addr}")
}

/// An idle connection to `addr` still open: its fd and how often it served.
pub fn take(addr: &PeerAddr) -> Option<(RawFd, u32)> {
    pool::take(&key(addr))
}

/// Keep `fd` for the next request to `addr`.
pub fn put(addr: &PeerAddr, fd: RawFd, reused: u32) {
    pool::put(key(addr), fd, reused, IDLE_TIMEOUT, MAX_IDLE);
}

/// How many idle connections `addr` has.
pub fn idle(addr: &PeerAddr) -> usize {
    pool::idle_count(&key(addr))
}
