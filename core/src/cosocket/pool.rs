//! The worker's keep-alive pools of idle cosocket connections, by pool
//! name. A connection put back waits in its pool, watched: when the peer
//! closes it (or sends anything: an idle connection must not) or its idle
//! timeout passes, it is closed and dropped. connect takes the most
//! recently pooled one, as lua-nginx-module does.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use crate::rt::{self, ops, Notify};

struct Idle {
    fd: RawFd,
    reused: u32,
    /// Taken by a connect (or evicted): the watcher leaves the fd alone.
    taken: Cell<bool>,
    wake: Notify,
}

thread_local! {
    static POOLS: RefCell<HashMap<String, VecDeque<Rc<Idle>>>> = RefCell::new(HashMap::new());
}

/// An idle connection of pool `key`: its fd and how often it was reused.
pub fn take(key: &str) -> Option<(RawFd, u32)> {
    let idle = POOLS.with(|p| p.borrow_mut().get_mut(key)?.pop_back())?;
    idle.taken.set(true);
    idle.wake.set();
    Some((idle.fd, idle.reused))
}

/// Puts connection `fd` into pool `key`, which keeps at most `size` (the
/// oldest goes); `timeout` zero keeps it until the peer closes it.
pub fn put(key: String, fd: RawFd, reused: u32, timeout: Duration, size: usize) {
    let idle = Rc::new(Idle { fd, reused, taken: Cell::new(false), wake: Notify::default() });
    let evicted = POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let q = p.entry(key.clone()).or_default();
        q.push_back(idle.clone());
        if q.len() > size {
            q.pop_front()
        } else {
            None
        }
    });
    if let Some(old) = evicted {
        old.taken.set(true);
        old.wake.set();
        close(old.fd);
    }
    rt::spawn(watch(key, idle, timeout));
}

/// How many idle connections pool `key` holds.
pub fn idle_count(key: &str) -> usize {
    POOLS.with(|p| p.borrow().get(key).map_or(0, VecDeque::len))
}

async fn watch(key: String, idle: Rc<Idle>, timeout: Duration) {
    let readable = ops::poll_readable(idle.fd);
    let expired = async {
        if timeout.is_zero() {
            std::future::pending::<()>().await
        } else {
            rt::sleep_until(rt::now() + timeout).await
        }
    };
    let _ = rt::race(readable, rt::race(idle.wake.wait(), expired)).await;
    if idle.taken.get() {
        return;
    }
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        if let Some(q) = p.get_mut(&key) {
            q.retain(|i| !Rc::ptr_eq(i, &idle));
            if q.is_empty() {
                p.remove(&key);
            }
        }
    });
    close(idle.fd);
}

fn close(fd: RawFd) {
    // SAFETY: the pool owned fd (nobody took it); nothing uses it after this.
    unsafe { libc::close(fd) };
}
