//! The worker's keep-alive pools of idle cosocket connections, by pool
//! name. connect takes the most recently pooled one, as lua-nginx-module
//! does, after a non-blocking peek that finds a connection the peer has
//! closed meanwhile (it is closed and the next one tried). One sweeper
//! task per worker, running while any pool holds a connection, closes
//! every second those whose idle timeout passed or whose peer closed, so a
//! pooled connection costs no operation in flight while it waits.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::rt;

struct Idle {
    fd: RawFd,
    reused: u32,
    /// When it went idle, and how long it may stay (zero: no limit).
    since: Instant,
    timeout: Duration,
}

thread_local! {
    static POOLS: RefCell<HashMap<String, VecDeque<Idle>>> = RefCell::new(HashMap::new());
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// How often the sweeper looks at the idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An idle connection of pool `key`: its fd and how often it was reused.
pub fn take(key: &str) -> Option<(RawFd, u32)> {
    loop {
        let idle = POOLS.with(|p| p.borrow_mut().get_mut(key)?.pop_back())?;
        if alive(idle.fd) {
            return Some((idle.fd, idle.reused));
        }
        close(idle.fd);
    }
}

/// Puts connection `fd` into pool `key`, which keeps at most `size` (the
/// oldest goes); `timeout` zero keeps it until the peer closes it.
pub fn put(key: String, fd: RawFd, reused: u32, timeout: Duration, size: usize) {
    let evicted = POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let q = p.entry(key).or_default();
        q.push_back(Idle { fd, reused, since: rt::now(), timeout });
        if q.len() > size {
            q.pop_front()
        } else {
            None
        }
    });
    if let Some(old) = evicted {
        close(old.fd);
    }
    if !SWEEPING.with(|s| s.replace(true)) {
        rt::spawn(sweep());
    }
}

/// How many idle connections pool `key` holds.
pub fn idle_count(key: &str) -> usize {
    POOLS.with(|p| p.borrow().get(key).map_or(0, VecDeque::len))
}

async fn sweep() {
    loop {
        rt::sleep_until(rt::now() + SWEEP_EVERY).await;
        let now = rt::now();
        let left = POOLS.with(|p| {
            let mut p = p.borrow_mut();
            for q in p.values_mut() {
                q.retain(|i| {
                    let keep = (i.timeout.is_zero() || now.duration_since(i.since) < i.timeout) && alive(i.fd);
                    if !keep {
                        close(i.fd);
                    }
                    keep
                });
            }
            p.retain(|_, q| !q.is_empty());
            !p.is_empty()
        });
        if !left {
            SWEEPING.with(|s| s.set(false));
            return;
        }
    }
}

/// Whether an idle connection is still open and quiet: a peek that finds
/// nothing to read. The peer's close (or anything it sent, which an idle
/// connection must not have) means it cannot be reused.
fn alive(fd: RawFd) -> bool {
    let mut b = 0u8;
    // SAFETY: a one-byte peek into a local; MSG_DONTWAIT never blocks.
    let n = unsafe { libc::recv(fd, (&mut b as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

fn close(fd: RawFd) {
    // SAFETY: the pool owned fd (nobody took it); nothing uses it after this.
    unsafe { libc::close(fd) };
}
