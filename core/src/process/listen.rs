//! Listening sockets, opened by the master before it forks so that
//! workers inherit them and a reload reuses them: connections waiting in
//! a listen queue survive a change of workers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::conf::Listen;

/// One configured address and its socket(s): one socket, or one per
/// worker slot with `reuseport` (the kernel spreads connections).
pub struct Listener {
    pub conf: Listen,
    pub sockets: Vec<OwnedFd>,
}

impl Listener {
    /// The sockets worker `id` of `workers` accepts on.
    pub fn fds_for(&self, id: usize, workers: usize) -> Vec<RawFd> {
        if self.sockets.len() == 1 {
            return vec![self.sockets[0].as_raw_fd()];
        }
        self.sockets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % workers.max(1) == id % workers.max(1))
            .map(|(_, s)| s.as_raw_fd())
            .collect()
    }
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, val: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a local int with its exact size.
    let r = unsafe {
        libc::setsockopt(fd, level, opt, &val as *const i32 as *const libc::c_void, std::mem::size_of::<i32>() as u32)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// socket + bind + listen for one address.
pub fn open_socket(l: &Listen) -> io::Result<OwnedFd> {
    let domain = if l.addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the fd is owned immediately below.
    let raw = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    // Accepted sockets inherit TCP_NODELAY on Linux: one setsockopt here
    // instead of one per connection. Without it, Nagle holds back a
    // response while the previous one is unacknowledged (delayed ACK: 40 ms
    // stalls on keep-alive and pipelined connections).
    setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if l.reuseport {
        setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if l.addr.is_ipv6() {
        setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (storage, len) = sockaddr(&l.addr);
    // SAFETY: storage holds a valid sockaddr of length len.
    if unsafe { libc::bind(raw, &storage as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let backlog = if l.backlog > 0 { l.backlog } else { 511 };
    // SAFETY: listen(2) on our own socket.
    if unsafe { libc::listen(raw, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

pub use crate::rt::sockaddr::to_sockaddr as sockaddr;

/// Open (or keep from `old`) the listeners `confs` asks for. `slots` is
/// the number of sockets for a `reuseport` address (the worker count). On
/// error every socket taken from `old` is put back, so the caller can keep
/// serving on them.
pub fn open_all(confs: &[Listen], slots: usize, old: &mut Vec<Listener>) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for c in confs {
        match open_one(c, slots, old) {
            Ok(l) => out.push(l),
            Err(e) => {
                old.extend(out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn open_one(c: &Listen, slots: usize, old: &mut Vec<Listener>) -> io::Result<Listener> {
    let named = |e: io::Error| {
        io::Error::new(e.kind(), format!("bind() to {} failed ({}: {})", c.addr, e.raw_os_error().unwrap_or(0), e))
    };
    if let Some(pos) = old.iter().position(|o| o.conf.addr == c.addr && o.conf.reuseport == c.reuseport) {
        let mut l = old.remove(pos);
        while l.conf.reuseport && l.sockets.len() < slots {
            match open_socket(c) {
                Ok(s) => l.sockets.push(s),
                Err(e) => {
                    old.push(l);
                    return Err(named(e));
                }
            }
        }
        l.conf = c.clone();
        return Ok(l);
    }
    let n = if c.reuseport { slots.max(1) } else { 1 };
    let sockets = (0..n).map(|_| open_socket(c).map_err(named)).collect::<io::Result<Vec<_>>>()?;
    Ok(Listener { conf: c.clone(), sockets })
}
