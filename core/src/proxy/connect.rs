//! One connection to an upstream server: an idle one from the pool or a
//! new connect(2) raced with proxy_connect_timeout.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::upstream::PeerAddr;
use crate::rt::{self, ops};

use super::pool::{self, Terms};
use super::Failure;

/// A connection to a peer; closed when dropped unless it went back to its
/// pool ([`UpstreamConn::keep`]).
pub struct UpstreamConn<'t> {
    pub fd: RawFd,
    pub addr: PeerAddr,
    /// Requests it served before this one (0: a new connection).
    pub reused: u32,
    /// Its pool; None: closed after the request.
    pub terms: Option<&'t Terms<'t>>,
}

impl UpstreamConn<'_> {
    /// Back to its pool, for the next request to the same peer (closed
    /// when it has none or served its `keepalive_requests`).
    pub fn keep(mut self) {
        if let Some(terms) = self.terms {
            if pool::put(terms, &self.addr, self.fd, self.reused + 1) {
                // (The pool owns the fd now, the drop leaves it alone.)
                self.fd = -1;
            }
        }
    }
}

impl Drop for UpstreamConn<'_> {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: the connection owns fd; nothing uses it after this.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// A connection to `addr`: one idle in its pool (`terms`) unless `fresh`,
/// else a new one.
pub async fn get<'t>(addr: &PeerAddr, timeout: Duration, terms: Option<&'t Terms<'t>>, fresh: bool) -> Result<UpstreamConn<'t>, Failure> {
    if let Some(t) = terms.filter(|_| !fresh) {
        if let Some((fd, reused)) = pool::take(t, addr) {
            return Ok(UpstreamConn { fd, addr: addr.clone(), reused, terms });
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
    let conn = UpstreamConn { fd, addr: addr.clone(), reused: 0, terms };
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
