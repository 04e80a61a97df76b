//! The worker's keep-alive pools of idle cosocket connections, by pool
//! name. connect takes the most recently pooled one, as lua-nginx-module
//! does, after a non-blocking peek that finds a connection the peer has
//! closed meanwhile (it is closed and the next one tried). One sweeper
//! task per worker, running while any pool holds a connection, closes
//! every second those whose idle timeout passed or whose peer closed, so a
//! pooled connection costs no operation in flight while it waits.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::rt::{self, ops};

struct Idle {
    fd: RawFd,
    reused: u32,
    /// The connection's multishot receive, still armed while it idles: a
    /// completion on it means the peer closed (or sent what it must not).
    multi: Option<ops::RecvMulti>,
    /// When it went idle, and how long it may stay (zero: no limit).
    since: Instant,
    timeout: Duration,
    /// The peer it goes to, in a pool several peers share.
    peer: Option<SocketAddr>,
}

#[derive(Default)]
struct Pool {
    idle: VecDeque<Idle>,
    /// `backlog` pools: connections open for the pool (idle ones too), at
    /// most `limit`, and the connects waiting for one to go.
    opened: usize,
    limit: Option<usize>,
    waiters: VecDeque<Rc<Cell<Option<Waker>>>>,
}

impl Pool {
    /// A connection of this limited pool went away (closed): one waiter may open one.
    fn closed(&mut self) {
        if self.limit.is_some() {
            self.opened = self.opened.saturating_sub(1);
            self.wake_one();
        }
    }

    fn wake_one(&mut self) {
        if let Some(w) = self.waiters.pop_front() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

/// A pool's name: a cosocket pool's (Lua's, "host:port" by default), or
/// one of the proxy's, kept apart so that no Lua name can take them: a
/// peer address's, an upstream block's (by the block's address) or an
/// ngx.balancer pool's (by its name). The last two are shared by several
/// peers, their connections taken by peer ([`take_peer`]). Found without
/// formatting.
#[derive(Clone, Copy)]
pub enum Key<'a> {
    Name(&'a str),
    Peer(SocketAddr),
    Upstream(usize),
    Balancer(&'a str),
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(name: &'a str) -> Self {
        Key::Name(name)
    }
}

impl<'a> From<&'a String> for Key<'a> {
    fn from(name: &'a String) -> Self {
        Key::Name(name)
    }
}

impl From<SocketAddr> for Key<'_> {
    fn from(addr: SocketAddr) -> Self {
        Key::Peer(addr)
    }
}

#[derive(Default)]
struct Pools {
    /// Lua's pools, and ngx.balancer's, by name.
    named: HashMap<String, Pool>,
    balancers: HashMap<String, Pool>,
    /// (ahash: one lookup per proxied request each way; no key here comes from a client.)
    peers: HashMap<SocketAddr, Pool, ahash::RandomState>,
    upstreams: HashMap<usize, Pool, ahash::RandomState>,
}

/// Pool `name` of `map`, made when it has none yet.
fn named_entry<'m>(map: &'m mut HashMap<String, Pool>, name: &str) -> &'m mut Pool {
    if !map.contains_key(name) {
        map.insert(name.to_string(), Pool::default());
    }
    map.get_mut(name).expect("just inserted")
}

impl Pools {
    fn get(&self, key: Key) -> Option<&Pool> {
        match key {
            Key::Name(n) => self.named.get(n),
            Key::Balancer(n) => self.balancers.get(n),
            Key::Peer(a) => self.peers.get(&a),
            Key::Upstream(id) => self.upstreams.get(&id),
        }
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut Pool> {
        match key {
            Key::Name(n) => self.named.get_mut(n),
            Key::Balancer(n) => self.balancers.get_mut(n),
            Key::Peer(a) => self.peers.get_mut(&a),
            Key::Upstream(id) => self.upstreams.get_mut(&id),
        }
    }

    /// Pool `key`, made when it has none yet.
    fn entry(&mut self, key: Key) -> &mut Pool {
        match key {
            Key::Name(n) => named_entry(&mut self.named, n),
            Key::Balancer(n) => named_entry(&mut self.balancers, n),
            Key::Peer(a) => self.peers.entry(a).or_default(),
            Key::Upstream(id) => self.upstreams.entry(id).or_default(),
        }
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Pool> {
        let named = self.named.values_mut().chain(self.balancers.values_mut());
        named.chain(self.peers.values_mut()).chain(self.upstreams.values_mut())
    }

    /// Drop the pools that hold nothing and wait for nothing.
    fn retain_used(&mut self) {
        fn used(pool: &Pool) -> bool {
            !pool.idle.is_empty() || pool.opened > 0 || !pool.waiters.is_empty()
        }
        self.named.retain(|_, p| used(p));
        self.balancers.retain(|_, p| used(p));
        self.peers.retain(|_, p| used(p));
        self.upstreams.retain(|_, p| used(p));
    }
}

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Connections idle for less than this are reused without a peek.
const PEEK_AFTER: Duration = Duration::from_millis(5);
/// How often the sweeper looks at the idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An idle connection of pool `key`: its fd and how often it was reused.
pub fn take<'a>(key: impl Into<Key<'a>>) -> Option<(RawFd, u32)> {
    take_conn(key).map(|(fd, reused, _)| (fd, reused))
}

/// [`take`], with the connection's armed multishot receive if it had one.
pub fn take_conn<'a>(key: impl Into<Key<'a>>) -> Option<(RawFd, u32, Option<ops::RecvMulti>)> {
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let pool = p.get_mut(key.into())?;
        while let Some(idle) = pool.idle.pop_back() {
            if alive(&idle) {
                return Some((idle.fd, idle.reused, idle.multi));
            }
            close(idle.fd);
            pool.closed();
        }
        None
    })
}

/// The most recently pooled idle connection to `peer` of pool `key`, one
/// several peers share (the others' stay): its fd and how often it was reused.
pub fn take_peer(key: Key, peer: SocketAddr) -> Option<(RawFd, u32)> {
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let pool = p.get_mut(key)?;
        while let Some(i) = pool.idle.iter().rposition(|i| i.peer == Some(peer)) {
            let idle = pool.idle.remove(i).expect("a found index");
            if alive(&idle) {
                return Some((idle.fd, idle.reused));
            }
            close(idle.fd);
            pool.closed();
        }
        None
    })
}

/// What a connect of a `backlog` pool may do.
pub enum Acquire {
    /// Reuse this idle connection (fd, reused times).
    Idle(RawFd, u32),
    /// Open a new one (it counts against the pool from now on).
    Open,
    /// Wait for this, then ask again.
    Wait(Slot),
    /// The backlog queue is full.
    Full,
}

/// A connect of pool `key` limited to `size` open connections with a
/// queue of `backlog` waiting connects.
pub fn acquire(key: &str, size: usize, backlog: usize) -> Acquire {
    if let Some((fd, reused)) = take(key) {
        return Acquire::Idle(fd, reused);
    }
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let pool = p.entry(Key::Name(key));
        pool.limit = Some(size);
        if pool.opened < size {
            pool.opened += 1;
            return Acquire::Open;
        }
        if pool.waiters.len() >= backlog {
            return Acquire::Full;
        }
        let w = Rc::new(Cell::new(None));
        pool.waiters.push_back(w.clone());
        Acquire::Wait(Slot { key: key.to_string(), waker: w, woken: false })
    })
}

/// A connection of limited pool `key` was closed (not pooled).
pub fn release(key: &str) {
    POOLS.with(|p| {
        if let Some(pool) = p.borrow_mut().get_mut(Key::Name(key)) {
            pool.closed();
        }
    })
}

/// A place in a pool's backlog queue: ready when a connection may be
/// opened or taken. Dropped (a timeout), it leaves the queue.
pub struct Slot {
    key: String,
    waker: Rc<Cell<Option<Waker>>>,
    woken: bool,
}

impl Future for Slot {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let queued = POOLS.with(|p| p.borrow().get(Key::Name(&self.key)).is_some_and(|pool| pool.waiters.iter().any(|w| Rc::ptr_eq(w, &self.waker))));
        if !queued {
            self.woken = true;
            return Poll::Ready(());
        }
        self.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.woken {
            POOLS.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    if let Some(pool) = p.get_mut(Key::Name(&self.key)) {
                        pool.waiters.retain(|w| !Rc::ptr_eq(w, &self.waker));
                    }
                }
            });
        }
    }
}

/// Puts connection `fd` into pool `key`, which keeps at most `size` (the
/// oldest goes); `timeout` zero keeps it until the peer closes it.
pub fn put<'a>(key: impl Into<Key<'a>>, fd: RawFd, reused: u32, timeout: Duration, size: usize) {
    put_conn(key, fd, reused, None, timeout, size)
}

/// [`put`], keeping the connection's multishot receive armed.
pub fn put_conn<'a>(key: impl Into<Key<'a>>, fd: RawFd, reused: u32, multi: Option<ops::RecvMulti>, timeout: Duration, size: usize) {
    put_idle(key.into(), Idle { fd, reused, multi, since: rt::now(), timeout, peer: None }, size)
}

/// [`put`] into a pool several peers share: the connection goes to `peer`
/// ([`take_peer`] finds it).
pub fn put_peer(key: Key, peer: SocketAddr, fd: RawFd, reused: u32, timeout: Duration, size: usize) {
    put_idle(key, Idle { fd, reused, multi: None, since: rt::now(), timeout, peer: Some(peer) }, size)
}

fn put_idle(key: Key, idle: Idle, size: usize) {
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        let pool = p.entry(key);
        pool.idle.push_back(idle);
        if pool.idle.len() > size {
            if let Some(old) = pool.idle.pop_front() {
                close(old.fd);
                pool.closed();
            }
        }
        // A waiting connect can take this one.
        pool.wake_one();
    });
    if !SWEEPING.with(|s| s.replace(true)) {
        rt::spawn(sweep());
    }
}

/// How many idle connections pool `key` holds.
pub fn idle_count<'a>(key: impl Into<Key<'a>>) -> usize {
    POOLS.with(|p| p.borrow().get(key.into()).map_or(0, |pool| pool.idle.len()))
}

async fn sweep() {
    loop {
        rt::sleep_until(rt::now() + SWEEP_EVERY).await;
        let now = rt::now();
        let left = POOLS.with(|p| {
            let mut p = p.borrow_mut();
            for pool in p.values_mut() {
                let before = pool.idle.len();
                pool.idle.retain(|i| {
                    let keep = (i.timeout.is_zero() || now.duration_since(i.since) < i.timeout) && alive(i);
                    if !keep {
                        close(i.fd);
                    }
                    keep
                });
                for _ in pool.idle.len()..before {
                    pool.closed();
                }
            }
            p.retain_used();
            let left = p.values_mut().any(|pool| !pool.idle.is_empty());
            left
        });
        if !left {
            SWEEPING.with(|s| s.set(false));
            return;
        }
    }
}

/// Whether an idle connection is still open and quiet: its armed receive
/// has seen nothing, or (with none armed) a peek finds nothing to read. The
/// peer's close (or anything it sent, which an idle connection must not
/// have) means it cannot be reused.
fn alive(idle: &Idle) -> bool {
    if let Some(pending) = idle.multi.as_ref().and_then(ops::RecvMulti::pending) {
        return !pending;
    }
    // One that idled a moment (a busy proxy's, between two requests) is
    // taken as it is, as nginx takes its cached connections: a peer that
    // closed it just then is rare, and costs that try a new connection.
    if rt::now().saturating_duration_since(idle.since) < PEEK_AFTER {
        return true;
    }
    let fd = idle.fd;
    let mut b = 0u8;
    // SAFETY: a one-byte peek into a local; MSG_DONTWAIT never blocks.
    let n = unsafe { libc::recv(fd, (&mut b as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

fn close(fd: RawFd) {
    // SAFETY: the pool owned fd (nobody took it); nothing uses it after this.
    unsafe { libc::close(fd) };
}
