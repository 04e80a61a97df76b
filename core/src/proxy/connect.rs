//! One connection to an upstream server: an idle one from the pool or a
//! new connect(2) raced with proxy_connect_timeout.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::rt::{self, ops};

use super::{pool, Failure};

/// A connection to a peer; closed when dropped unless it went back to the
/// pool ([`UpstreamConn::keep`]).
pub struct UpstreamConn {
    pub fd: RawFd,
    pub addr: SocketAddr,
    /// Requests it served before this one (0: a new connection).
    pub reused: u32,
}

impl UpstreamConn {
    /// Back to the pool, for the next request to the same peer.
    pub fn keep(self) {
        let me = std::mem::ManuallyDrop::new(self);
        pool::put(me.addr, me.fd, me.reused + 1);
    }
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        // SAFETY: the connection owns fd; nothing uses it after this.
        unsafe { libc::close(self.fd) };
    }
}

/// A connection to `addr`: a pooled one unless `fresh`, else a new one.
pub async fn get(addr: SocketAddr, timeout: Duration, fresh: bool) -> Result<UpstreamConn, Failure> {
    if !fresh {
        if let Some((fd, reused)) = pool::take(addr) {
            return Ok(UpstreamConn { fd, addr, reused });
        }
    }
    let raw = ops::RawAddr::inet(addr);
    // SAFETY: plain socket(2); the fd is owned by the UpstreamConn below.
    let fd = unsafe { libc::socket(raw.family(), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::internal(format!("socket() failed {} while connecting to upstream", crate::log::error::os_error(&e))));
    }
    let conn = UpstreamConn { fd, addr, reused: 0 };
    match rt::race(ops::connect(fd, raw), rt::sleep_until(rt::now() + timeout)).await {
        Ok(0) => Ok(conn),
        Ok(e) => {
            let e = std::io::Error::from_raw_os_error(-e);
            Err(Failure::bad_gateway(format!("connect() failed {} while connecting to upstream", crate::log::error::os_error(&e))))
        }
        Err(_) => Err(Failure::timed_out("connecting to upstream")),
    }
}
