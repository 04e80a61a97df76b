//! Idle upstream connections, per worker and per peer address: kept after
//! a complete HTTP/1.1 response without `Connection: close`, reused most
//! recent first after a non-blocking peek. They live in the worker's
//! keep-alive pools (`cosocket::pool`, keyed by the peer's address, which
//! no Lua pool name can take), so its sweeper closes those the peer closed
//! or that stayed idle past [`IDLE_TIMEOUT`].

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::cosocket::pool;

/// Idle connections kept per peer address.
pub const MAX_IDLE: usize = 32;
/// How long an idle connection is kept (nginx's upstream keepalive_timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An idle connection to `addr` still open: its fd and how often it served.
pub fn take(addr: SocketAddr) -> Option<(RawFd, u32)> {
    pool::take(addr)
}

/// Keep `fd` for the next request to `addr`.
pub fn put(addr: SocketAddr, fd: RawFd, reused: u32) {
    pool::put(addr, fd, reused, IDLE_TIMEOUT, MAX_IDLE);
}

/// How many idle connections `addr` has.
pub fn idle(addr: SocketAddr) -> usize {
    pool::idle_count(addr)
}
