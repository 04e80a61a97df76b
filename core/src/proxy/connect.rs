//! One connection to an upstream server: an idle one from the pool or a
//! new connect(2) raced with proxy_connect_timeout.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::upstream::PeerAddr;
use crate::rt::{self, ops};

use super::{pool, Failure};

/// A connection to a peer; closed when dropped unless it went back to the
/// pool ([`UpstreamConn::keep`]).
pub struct UpstreamConn {
    pub fd: RawFd,
    pub addr: PeerAddr,
    /// Requests it served before this one (0: a new connection).
    pub reused: u32,
}

impl UpstreamConn {
    /// Back to the pool, for the next request to the same peer.
    pub fn keep(mut self) {
        // (-1: the pool owns the fd now, the drop leaves it alone.)
        let fd = std::mem::replace(&mut self.fd, -1);
        pool::put(&self.addr, fd, self.reused + 1);
    }
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: the connection owns fd; nothing uses it after this.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// A connection to `addr`: a pooled one unless `fresh`, else a new one.
pub async fn get(addr: &PeerAddr, timeout: Duration, fresh: bool) -> Result<UpstreamConn, Failure> {
    if !fresh {
        if let Some((fd, reused)) = pool::take(addr) {
            return Ok(UpstreamConn { fd, addr: addr.clone(), reused });
        }
    }
    let raw = match addr {
        PeerAddr::Inet(a) => ops::RawAddr::inet(*a),
        PeerAddr::Unix(p) => match ops::RawAddr::unix(p.as_os_str().as_encoded_bytes()) {
            Some(raw) => raw,
            None => return Err(Failure::internal(format!("invalid unix socket path \"{}\" while connecting to upstream", p.display()))),
        },
    };
    // SAFETY: plain socket(2); the fd is owned by the UpstreamConn below.
    let fd = unsafe { libc::socket(raw.family(), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::internal(format!("socket() failed {} while connecting to upstream", crate::log::error::os_error(&e))));
    }
    let conn = UpstreamConn { fd, addr: addr.clone(), reused: 0 };
    match rt::race(ops::connect(fd, raw), rt::sleep_until(rt::now() + timeout)).await {
        Ok(0) => Ok(conn),
        Ok(e) => {
            let os = crate::log::error::os_error(&std::io::Error::from_raw_os_error(-e));
            Err(match addr {
                PeerAddr::Inet(_) => Failure::bad_gateway(format!("connect() failed {os} while connecting to upstream")),
                // A unix socket's connect fails at once, which nginx words
                // so (and deems critical unless the peer is just not there).
                PeerAddr::Unix(_) => {
                    let mut f = Failure::bad_gateway(format!("connect() to {addr} failed {os} while connecting to upstream"));
                    if !matches!(-e, libc::ECONNREFUSED | libc::EAGAIN | libc::ECONNRESET | libc::ENETDOWN | libc::ENETUNREACH | libc::EHOSTDOWN | libc::EHOSTUNREACH) {
                        f.level = crate::log::Level::Crit;
                    }
                    f
                }
            })
        }
        Err(_) => Err(Failure::timed_out("connecting to upstream")),
    }
}
