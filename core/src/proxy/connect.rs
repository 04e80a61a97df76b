//! One connection to an upstream server: an idle one from the pool or a
//! new connect(2) raced with proxy_connect_timeout.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::rt::{self, ops};

use super::pool::{self, Terms};
use super::Failure;

/// A connection to a peer; closed when dropped unless it went back to its
/// pool ([`UpstreamConn::keep`]).
pub struct UpstreamConn<'t> {
    pub fd: RawFd,
    pub addr: SocketAddr,
    /// Requests it served before this one (0: a new connection).
    pub reused: u32,
    /// Its pool; None: closed after the request.
    pub terms: Option<&'t Terms<'t>>,
}

impl UpstreamConn<'_> {
    /// Back to its pool, for the next request to the same peer (closed
    /// when it has none or served its `keepalive_requests`).
    pub fn keep(self) {
        if let Some(terms) = self.terms {
            if pool::put(terms, self.addr, self.fd, self.reused + 1) {
                std::mem::forget(self);
            }
        }
    }
}

impl Drop for UpstreamConn<'_> {
    fn drop(&mut self) {
        // SAFETY: the connection owns fd; nothing uses it after this.
        unsafe { libc::close(self.fd) };
    }
}

/// A connection to `addr`: one idle in its pool (`terms`) unless `fresh`,
/// else a new one.
pub async fn get<'t>(addr: SocketAddr, timeout: Duration, terms: Option<&'t Terms<'t>>, fresh: bool) -> Result<UpstreamConn<'t>, Failure> {
    if let Some(t) = terms.filter(|_| !fresh) {
        if let Some((fd, reused)) = pool::take(t, addr) {
            return Ok(UpstreamConn { fd, addr, reused, terms });
        }
    }
    let raw = ops::RawAddr::inet(addr);
    // SAFETY: plain socket(2); the fd is owned by the UpstreamConn below.
    let fd = unsafe { libc::socket(raw.family(), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::internal(format!("socket() failed {} while connecting to upstream", crate::log::error::os_error(&e))));
    }
    let conn = UpstreamConn { fd, addr, reused: 0, terms };
    match rt::race(ops::connect(fd, raw), rt::sleep_until(rt::now() + timeout)).await {
        Ok(0) => Ok(conn),
        Ok(e) => {
            let e = std::io::Error::from_raw_os_error(-e);
            Err(Failure::bad_gateway(format!("connect() failed {} while connecting to upstream", crate::log::error::os_error(&e))))
        }
        Err(_) => Err(Failure::timed_out("connecting to upstream")),
    }
}
