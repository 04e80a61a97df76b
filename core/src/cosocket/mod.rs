//! Cosockets: the TCP client sockets Lua code opens with ngx.socket.tcp,
//! on the worker's io_uring. Each socket lives in a per-worker slab, named
//! by slot and generation, and belongs to the run that made it (a request
//! or a timer, threads included): another run gets "bad request", and the
//! owner's end closes what is left open.
//!
//! Every operation is synchronous when it can be (data already buffered,
//! a pooled connection to reuse) and otherwise returns a future for the
//! caller to wait on: the future does the I/O and leaves its outcome in the
//! socket, where the same call, made again after the wait, finds it. So
//! the Lua side is one loop: call; on AGAIN, yield; call again.

pub mod pool;
mod read;
mod send;

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use slab::Slab;

use crate::dns::{self, ResolverConf};
use crate::rt::{self, ops};

pub use read::Pattern;

/// What a socket operation that may wait comes to.
pub enum Step<T> {
    /// Done now.
    Ready(T),
    /// Wait for this future, then make the same call again.
    Wait(Pin<Box<dyn Future<Output = ()>>>),
    /// An ngx.req.socket operation: the request's driver does it on the
    /// client connection, reports with [`client_done`], then the same call
    /// is made again.
    Client(ClientIo),
}

/// What an ngx.req.socket operation asks of the client connection.
pub struct ClientIo {
    pub sock: u64,
    pub op: ClientOp,
}

pub enum ClientOp {
    /// Up to `max` bytes (of the body only, unless the socket is raw).
    Read { max: usize, body: bool, timeout: Duration },
    /// Send these bytes (a raw socket).
    Write(Vec<u8>),
}

/// How a [`ClientOp`] went: the bytes read, or whether the send went out.
pub enum ClientDone {
    Read(Result<Vec<u8>, &'static str>),
    Write(bool),
}

/// The `lua_socket_*` settings of the worker.
pub use crate::conf::LuaSocketConf as Settings;

/// Where to connect.
pub enum Target<'a> {
    /// A host name or address and a port.
    Inet(&'a str, u16),
    /// A unix-domain socket path.
    Unix(&'a [u8]),
}

/// Why an operation failed, in OpenResty's words ("timeout", "closed",
/// "connection refused", ...).
pub type Error = std::borrow::Cow<'static, str>;

struct Sock {
    generation: u32,
    /// The entry context of the run that made the socket.
    owner: u64,
    fd: Option<RawFd>,
    /// Received bytes; the unread ones are `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// A buffer for the next receive, kept between receives.
    spare: Vec<u8>,
    /// The peer closed its side (no more bytes will come).
    eof: bool,
    connect_timeout: Duration,
    send_timeout: Duration,
    read_timeout: Duration,
    /// How many times the connection was reused from a pool.
    reused: u32,
    /// The pool the connection belongs to ("host:port", the unix path or
    /// the `pool` option).
    key: String,
    /// The peer, for the error log.
    peer: String,
    /// What the last wait left, for the context that waited: taken by the
    /// same call made again after the wait.
    outcome: Option<Outcome>,
    /// The context waiting for an operation of each direction (0: none).
    reading: u64,
    writing: u64,
    /// receiveuntil with a size: the pattern was reached (and consumed);
    /// the next call of the iterator says so and starts afresh.
    until_done: bool,
    /// Where a line without its CRs is built (`*l`).
    line: Vec<u8>,
    /// A UDP socket (ngx.socket.udp): connect sets the peer, each receive
    /// is one datagram, no pools.
    datagram: bool,
    /// ngx.req.socket: the client connection (raw when true), reached
    /// through the request's driver; no fd of its own.
    client: Option<bool>,
    /// A read failed (or met the end): reads say "closed" from now on, as
    /// lua-nginx-module finalizes the read side only.
    read_closed: bool,
    /// A send failed: sends say "closed" from now on.
    write_closed: bool,
    /// A send handed to the kernel and not yet seen complete.
    sending: Option<send::Sending>,
    /// connect's `pool_size` and `backlog` options: the pool limits its
    /// open connections (see pool.rs).
    limit: Option<(usize, usize)>,
    /// The connection counts against its limited pool.
    counted: bool,
    /// The connection's multishot receive (armed at its first receive, kept
    /// across receives and while pooled); None without the worker's
    /// buffer ring, or for UDP.
    multi: Option<ops::RecvMulti>,
}

impl Sock {
    fn connected(&self) -> bool {
        self.fd.is_some() || self.client.is_some()
    }
}

/// The end of a wait.
struct Outcome {
    /// The context that waited.
    cx: u64,
    op: Op,
    result: Result<(), Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect,
    Send,
    Read,
}

impl Sock {
    /// The outcome `cx` waited for, if this call is its second half.
    fn take_outcome(&mut self, cx: u64, op: Op) -> Option<Result<(), Error>> {
        match &self.outcome {
            Some(o) if o.cx == cx && o.op == op => self.outcome.take().map(|o| o.result),
            _ => None,
        }
    }
}

/// Clears a direction's waiter when its future ends, however it ends (a
/// killed thread drops its wait).
struct Waiting {
    h: u64,
    op: Op,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        SOCKETS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                if let Some(sock) = s.slab.get_mut((self.h & 0xffff_ffff) as usize) {
                    if u64::from(sock.generation) == self.h >> 32 {
                        match self.op {
                            Op::Read => sock.reading = 0,
                            Op::Send | Op::Connect => sock.writing = 0,
                        }
                    }
                }
            }
        })
    }
}

struct Sockets {
    slab: Slab<Sock>,
    next_generation: u32,
    settings: Settings,
    /// The http level's resolver: what sockets of timers resolve with.
    resolver: Option<Arc<ResolverConf>>,
}

thread_local! {
    static SOCKETS: RefCell<Sockets> = RefCell::new(Sockets { slab: Slab::new(), next_generation: 1, settings: Settings::default(), resolver: None });
}

/// The worker's settings and http-level resolver, from its config.
pub fn configure(settings: Settings, resolver: Option<Arc<ResolverConf>>) {
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        s.settings = settings;
        s.resolver = resolver;
    });
}

/// The http level's resolver (for sockets outside requests).
pub fn http_resolver() -> Option<Arc<ResolverConf>> {
    SOCKETS.with(|s| s.borrow().resolver.clone())
}

/// The worker's settings.
pub fn settings() -> Settings {
    SOCKETS.with(|s| s.borrow().settings)
}

/// A socket's handle: slot (low 32 bits) and generation.
fn handle(slot: usize, generation: u32) -> u64 {
    u64::from(generation) << 32 | slot as u64
}

/// Why a call reached no socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// The handle names no live socket (closed by its owner's end).
    Gone,
    /// The socket belongs to another request or timer.
    Foreign,
}

fn with<R>(h: u64, owner: u64, f: impl FnOnce(&mut Sock, &Settings) -> R) -> Result<R, Bad> {
    SOCKETS.with(|s| {
        let s = &mut *s.borrow_mut();
        let sock = s.slab.get_mut((h & 0xffff_ffff) as usize).filter(|k| u64::from(k.generation) == h >> 32).ok_or(Bad::Gone)?;
        if sock.owner != owner {
            return Err(Bad::Foreign);
        }
        Ok(f(sock, &s.settings))
    })
}

/// The socket `h` if it is still the one the future started on (same
/// generation and fd): what a finished wait records its outcome into.
fn with_live(h: u64, fd: RawFd, f: impl FnOnce(&mut Sock)) {
    SOCKETS.with(|s| {
        let s = &mut *s.borrow_mut();
        if let Some(sock) = s.slab.get_mut((h & 0xffff_ffff) as usize) {
            if u64::from(sock.generation) == h >> 32 && sock.fd == Some(fd) {
                f(sock);
            }
        }
    })
}

/// ngx.socket.tcp() (or ngx.socket.udp() when `datagram`): a new,
/// unconnected socket owned by `owner`.
pub fn new(owner: u64, datagram: bool) -> u64 {
    SOCKETS.with(|s| {
        let s = &mut *s.borrow_mut();
        let generation = s.next_generation;
        s.next_generation = s.next_generation.checked_add(1).unwrap_or(1);
        let st = s.settings;
        let slot = s.slab.insert(Sock {
            generation,
            owner,
            fd: None,
            rbuf: Vec::new(),
            rpos: 0,
            spare: Vec::new(),
            eof: false,
            connect_timeout: st.connect_timeout,
            send_timeout: st.send_timeout,
            read_timeout: st.read_timeout,
            reused: 0,
            key: String::new(),
            peer: String::new(),
            outcome: None,
            reading: 0,
            writing: 0,
            until_done: false,
            line: Vec::new(),
            datagram,
            client: None,
            read_closed: false,
            write_closed: false,
            sending: None,
            limit: None,
            counted: false,
            multi: None,
        });
        handle(slot, generation)
    })
}

/// The owner's run is over: the socket goes (its connection is closed).
pub fn release(h: u64) {
    SOCKETS.with(|s| {
        let s = &mut *s.borrow_mut();
        let slot = (h & 0xffff_ffff) as usize;
        if s.slab.get(slot).is_some_and(|k| u64::from(k.generation) == h >> 32) {
            let mut sock = s.slab.remove(slot);
            if let Some(fd) = sock.fd {
                close_after_send(fd, sock.sending.take());
                if sock.counted {
                    pool::release(&sock.key);
                }
            }
        }
    })
}

/// Closes `fd` once the send in flight on it (if any) has finished: a
/// send just handed to the kernel is not cancelled by the close.
fn close_after_send(fd: RawFd, sending: Option<send::Sending>) {
    match sending.map(|s| send::settle(fd, s)) {
        Some(send::Settled::Pending(s)) => rt::spawn(async move {
            let _ = send::finish(fd, s).await;
            close_fd(fd);
        }),
        _ => close_fd(fd),
    }
}

/// Settles `sock`'s send in flight without waiting: Err when it failed
/// (the write side is closed then), Ok(Some) when it still goes on.
fn settle_send(sock: &mut Sock) -> Result<Option<send::Sending>, Error> {
    let (Some(fd), Some(s)) = (sock.fd, sock.sending.take()) else { return Ok(None) };
    match send::settle(fd, s) {
        send::Settled::Done => Ok(None),
        send::Settled::Pending(s) => Ok(Some(s)),
        send::Settled::Failed(e) => {
            sock.write_closed = true;
            Err(e)
        }
    }
}

fn close_fd(fd: RawFd) {
    // SAFETY: the socket owned fd; nothing uses the number after this.
    unsafe { libc::close(fd) };
}

/// Forgets the connection of `sock` (closing it unless `keep`), ready for
/// a new connect.
fn reset(sock: &mut Sock, keep: bool) -> Option<RawFd> {
    let fd = sock.fd.take();
    if !keep {
        sock.multi = None;
    }
    if let (Some(fd), false) = (fd, keep) {
        close_after_send(fd, sock.sending.take());
        if sock.counted {
            pool::release(&sock.key);
        }
    }
    // (Kept, the connection goes to its pool and counts there.)
    sock.counted = false;
    sock.rbuf.clear();
    sock.rpos = 0;
    sock.eof = false;
    sock.outcome = None;
    sock.until_done = false;
    sock.reused = 0;
    sock.read_closed = false;
    sock.write_closed = false;
    fd
}

/// OpenResty's words for an errno: strerror with a lower-case first letter.
pub fn errno_text(errno: i32) -> Error {
    let e = std::io::Error::from_raw_os_error(errno).to_string();
    let text = e.split(" (os error").next().unwrap_or(&e);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => format!("{}{}", c.to_lowercase(), chars.as_str()).into(),
        None => "unknown error".into(),
    }
}

/// `sock:connect(...)` by context `cx`: reuses an idle connection of the
/// pool (at once) or opens one (a wait). `pool` overrides the pool's name.
pub fn connect(h: u64, owner: u64, cx: u64, target: Target<'_>, pool: Option<&str>, resolver: Option<Arc<ResolverConf>>) -> Result<Step<Result<(), Error>>, Bad> {
    with(h, owner, |sock, _| {
        if let Some(res) = sock.take_outcome(cx, Op::Connect) {
            return Step::Ready(res);
        }
        if sock.reading != 0 || sock.writing != 0 {
            return Step::Ready(Err("socket busy".into()));
        }
        // A new connect closes what the socket had.
        reset(sock, false);
        let name = match &target {
            Target::Inet(host, port) => format!("{host}:{port}"),
            Target::Unix(path) => format!("unix:{}", String::from_utf8_lossy(path)),
        };
        let key = pool.map_or_else(|| name.clone(), str::to_string);
        sock.peer = name;
        let limit = sock.limit.filter(|_| !sock.datagram);
        let pooled = match limit {
            _ if sock.datagram => None,
            None => pool::take_conn(&key).map(|(fd, reused, multi)| {
                sock.multi = multi;
                (fd, reused)
            }),
            Some((size, backlog)) => match pool::acquire(&key, size, backlog) {
                pool::Acquire::Idle(fd, reused) => Some((fd, reused)),
                pool::Acquire::Open => {
                    sock.counted = true;
                    None
                }
                pool::Acquire::Full => return Step::Ready(Err("too many waiting connect operations".into())),
                pool::Acquire::Wait(slot) => {
                    sock.key = key.clone();
                    sock.writing = cx;
                    let target = match target {
                        Target::Inet(host, port) => Err((host.to_string(), port)),
                        Target::Unix(path) => Ok(path.to_vec()),
                    };
                    let kind = libc::SOCK_STREAM;
                    return Step::Wait(Box::pin(queued(h, cx, slot, key, size, backlog, target, kind, resolver, sock.connect_timeout)));
                }
            },
        };
        if let Some((fd, reused)) = pooled {
            sock.fd = Some(fd);
            sock.reused = reused + 1;
            sock.counted = limit.is_some();
            sock.key = key;
            return Step::Ready(Ok(()));
        }
        sock.key = key;
        let addr = match target {
            Target::Unix(path) => match ops::RawAddr::unix(path) {
                Some(a) => Ok(a),
                None => return Step::Ready(Err("bad unix socket path".into())),
            },
            Target::Inet(host, port) => match literal_ip(host) {
                Some(ip) => Ok(ops::RawAddr::inet(SocketAddr::new(ip, port))),
                None => Err((host.to_string(), port)),
            },
        };
        sock.writing = cx;
        let kind = if sock.datagram { libc::SOCK_DGRAM } else { libc::SOCK_STREAM };
        Step::Wait(Box::pin(open(h, cx, addr, kind, resolver, sock.connect_timeout)))
    })
}

/// A connect of a full `backlog` pool: waits in its queue (within the
/// connect timeout) until it may take an idle connection or open one.
#[allow(clippy::too_many_arguments)]
async fn queued(
    h: u64,
    cx: u64,
    slot: pool::Slot,
    key: String,
    size: usize,
    backlog: usize,
    target: Result<Vec<u8>, (String, u16)>,
    kind: i32,
    resolver: Option<Arc<ResolverConf>>,
    timeout: Duration,
) {
    let waiting = Waiting { h, op: Op::Connect };
    let deadline = rt::now() + timeout;
    let mut slot = Some(slot);
    loop {
        if let Some(s) = slot.take() {
            if rt::race(s, rt::sleep_until(deadline)).await.is_err() {
                return finish_connect(h, cx, None, Err("timeout".into()));
            }
        }
        match pool::acquire(&key, size, backlog) {
            pool::Acquire::Idle(fd, reused) => {
                finish_connect(h, cx, Some(fd), Ok(()));
                with_live(h, fd, |sock| {
                    sock.reused = reused + 1;
                    sock.counted = true;
                });
                return;
            }
            pool::Acquire::Open => break,
            pool::Acquire::Wait(s) => slot = Some(s),
            pool::Acquire::Full => return finish_connect(h, cx, None, Err("too many waiting connect operations".into())),
        }
    }
    SOCKETS.with(|s| {
        if let Some(sock) = s.borrow_mut().slab.get_mut((h & 0xffff_ffff) as usize) {
            sock.counted = true;
        }
    });
    let addr = match target {
        Ok(path) => match ops::RawAddr::unix(&path) {
            Some(a) => Ok(a),
            None => return finish_connect(h, cx, None, Err("bad unix socket path".into())),
        },
        Err((host, port)) => match literal_ip(&host) {
            Some(ip) => Ok(ops::RawAddr::inet(SocketAddr::new(ip, port))),
            None => Err((host, port)),
        },
    };
    // (open has a guard of its own.)
    drop(waiting);
    open(h, cx, addr, kind, resolver, deadline.saturating_duration_since(rt::now())).await
}

/// connect's `pool_size` / `backlog` options for socket `h`'s next connect
/// (no backlog: pool_size only caps the idle connections, as before).
pub fn set_pool_limit(h: u64, owner: u64, size: usize, backlog: Option<usize>) -> Result<(), Bad> {
    with(h, owner, |sock, _| sock.limit = backlog.map(|b| (size.max(1), b)))
}

/// An address written as one (`1.2.3.4`, `::1`, `[::1]`): no lookup.
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// Opens the connection (resolving the host first if it is a name) and
/// records the fd or the error in socket `h`, for `cx`.
async fn open(h: u64, cx: u64, addr: Result<ops::RawAddr, (String, u16)>, kind: i32, resolver: Option<Arc<ResolverConf>>, timeout: Duration) {
    let _waiting = Waiting { h, op: Op::Connect };
    let addr = match addr {
        Ok(a) => a,
        Err((host, port)) => match dns::resolve(resolver.as_deref(), &host).await {
            Ok(ips) if !ips.is_empty() => ops::RawAddr::inet(SocketAddr::new(ips[0], port)),
            Ok(_) => return finish_connect(h, cx, None, Err(format!("{host} could not be resolved (3: Host not found)").into())),
            Err(e) => return finish_connect(h, cx, None, Err(e.to_string().into())),
        },
    };
    // SAFETY: plain socket(2); the fd is ours until stored or closed below.
    let fd = unsafe { libc::socket(addr.family(), kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EMFILE);
        return finish_connect(h, cx, None, Err(errno_text(errno)));
    }
    let res = rt::race(ops::connect(fd, addr), rt::sleep_until(rt::now() + timeout)).await;
    let log = settings().log_errors;
    let outcome = match res {
        Ok(0) => Ok(()),
        Ok(e) => {
            if log {
                let os = std::io::Error::from_raw_os_error(-e).to_string();
                let os = os.split(" (os error").next().unwrap_or(&os);
                crate::error_log!(crate::log::Level::Error, None, "connect() failed ({}: {os}), when connecting to {}", -e, peer_of(h));
            }
            Err(errno_text(-e))
        }
        Err(()) => {
            if log {
                crate::error_log!(crate::log::Level::Error, None, "lua tcp socket connect timed out, when connecting to {}", peer_of(h));
            }
            Err("timeout".into())
        }
    };
    if outcome.is_err() {
        close_fd(fd);
        return finish_connect(h, cx, None, outcome);
    }
    finish_connect(h, cx, Some(fd), outcome)
}

fn finish_connect(h: u64, cx: u64, fd: Option<RawFd>, result: Result<(), Error>) {
    SOCKETS.with(|s| {
        let s = &mut *s.borrow_mut();
        match s.slab.get_mut((h & 0xffff_ffff) as usize) {
            Some(sock) if u64::from(sock.generation) == h >> 32 && sock.fd.is_none() => {
                if fd.is_none() && sock.counted {
                    // The connect failed: its place in the pool goes.
                    sock.counted = false;
                    pool::release(&sock.key);
                }
                sock.fd = fd;
                sock.outcome = Some(Outcome { cx, op: Op::Connect, result });
            }
            // The socket went away or was reconnected meanwhile.
            _ => {
                if let Some(fd) = fd {
                    close_fd(fd);
                }
            }
        }
    })
}

/// The peer socket `h` connects to, for the error log.
fn peer_of(h: u64) -> String {
    SOCKETS.with(|s| s.borrow().slab.get((h & 0xffff_ffff) as usize).map(|k| k.peer.clone()).unwrap_or_default())
}

/// `sock:send(data)` by context `cx`: the bytes sent (all of them), after
/// a wait.
pub fn send(h: u64, owner: u64, cx: u64, data: &[u8]) -> Result<Step<Result<usize, Error>>, Bad> {
    with(h, owner, |sock, _| {
        if let Some(res) = sock.take_outcome(cx, Op::Send) {
            sock.write_closed |= res.is_err();
            return Step::Ready(res.map(|()| data.len()));
        }
        if sock.writing != 0 {
            return Step::Ready(Err("socket busy writing".into()));
        }
        if !sock.connected() || sock.write_closed {
            return Step::Ready(Err("closed".into()));
        }
        if data.is_empty() {
            return Step::Ready(Ok(0));
        }
        let Some(fd) = sock.fd else {
            sock.writing = cx;
            return Step::Client(ClientIo { sock: h, op: ClientOp::Write(data.to_vec()) });
        };
        let deadline = rt::now() + sock.send_timeout;
        match settle_send(sock) {
            Err(e) => return Step::Ready(Err(e)),
            // Handed to the kernel: done for Lua (see send.rs). A larger
            // send waits, so its timeout or error is its own.
            Ok(None) if data.len() <= send::AT_ONCE_MAX => {
                sock.sending = Some(send::Sending::start(fd, data.to_vec(), deadline));
                return Step::Ready(Ok(data.len()));
            }
            Ok(None) => {}
            // The last send still goes on: this one waits for it.
            Ok(Some(prev)) => sock.sending = Some(prev),
        }
        sock.writing = cx;
        let prev = sock.sending.take();
        Step::Wait(Box::pin(send_all(h, cx, fd, prev, data.to_vec(), sock.send_timeout)))
    })
}

async fn send_all(h: u64, cx: u64, fd: RawFd, prev: Option<send::Sending>, data: Vec<u8>, timeout: Duration) {
    let _waiting = Waiting { h, op: Op::Send };
    if let Some(prev) = prev {
        if let Err(e) = send::finish(fd, prev).await {
            with_live(h, fd, |sock| sock.outcome = Some(Outcome { cx, op: Op::Send, result: Err(e) }));
            return;
        }
    }
    let deadline = rt::now() + timeout;
    let len = data.len();
    let mut data = data;
    let mut from = 0;
    let result = loop {
        match rt::race(ops::send(fd, data, from), rt::sleep_until(deadline)).await {
            Ok((n, d)) if n > 0 => {
                from += n as usize;
                data = d;
                if from >= len {
                    break Ok(());
                }
            }
            Ok((0, _)) => break Err("closed".into()),
            Ok((e, _)) if -e == libc::EPIPE => break Err("broken pipe".into()),
            Ok((e, _)) => break Err(errno_text(-e)),
            Err(()) => break Err("timeout".into()),
        }
    };
    if result.as_ref().is_err_and(|e| e == "timeout") && settings().log_errors {
        crate::error_log!(crate::log::Level::Error, None, "lua tcp socket write timed out");
    }
    with_live(h, fd, |sock| {
        sock.outcome = Some(Outcome { cx, op: Op::Send, result });
    });
}

/// What a receive gives: the bytes (lent until the socket's next call),
/// or an error with the partial data read before it.
pub enum Received<'s> {
    Data(&'s [u8]),
    /// receiveuntil's iterator reached the pattern: it returns nil now.
    Done,
    Failed(Error, &'s [u8]),
    /// Not connected, or its read side closed already: "closed", with no
    /// partial data.
    Closed,
}

/// `sock:receive(pattern)`, `receiveany`, and receiveuntil's iterator, by
/// context `cx`: `f` gets what came, at once when the buffer holds it.
pub fn receive<R>(h: u64, owner: u64, cx: u64, pattern: Pattern<'_>, f: impl FnOnce(Received<'_>) -> R) -> Result<Step<R>, Bad> {
    with(h, owner, |sock, st| {
        if let Some(Err(e)) = sock.take_outcome(cx, Op::Read) {
            // The error ends the read: what came before it is the partial
            // result (and is gone from the buffer). A timeout leaves the
            // connection usable; anything else closes it.
            sock.read_closed = e != "timeout";
            let start = sock.rpos;
            sock.rpos = sock.rbuf.len();
            return Step::Ready(f(Received::Failed(e, &sock.rbuf[start..])));
        }
        if sock.reading != 0 {
            return Step::Ready(f(Received::Failed("socket busy reading".into(), &[])));
        }
        if !sock.connected() || sock.read_closed {
            return Step::Ready(f(Received::Closed));
        }
        // A send that failed shows here, at the socket's next operation.
        let sending = match settle_send(sock) {
            Ok(s) => s,
            Err(e) => return Step::Ready(f(Received::Failed(e, &[]))),
        };
        if let (Some(s), Some(_)) = (sending, sock.fd) {
            sock.sending = Some(s);
        }
        match read::take(sock, pattern) {
            read::Taken::Data(range) => Step::Ready(f(Received::Data(&sock.rbuf[range]))),
            read::Taken::Line => Step::Ready(f(Received::Data(&sock.line))),
            read::Taken::Done => Step::Ready(f(Received::Done)),
            read::Taken::Closed(range) => {
                sock.read_closed = true;
                Step::Ready(f(Received::Failed("closed".into(), &sock.rbuf[range])))
            }
            read::Taken::More => {
                // Compact: the unread bytes go to the front.
                if sock.rpos > 0 {
                    sock.rbuf.drain(..sock.rpos);
                    sock.rpos = 0;
                }
                sock.reading = cx;
                let Some(fd) = sock.fd else {
                    let op = ClientOp::Read { max: st.buffer_size, body: sock.client == Some(false), timeout: sock.read_timeout };
                    return Step::Client(ClientIo { sock: h, op });
                };
                let buf = std::mem::take(&mut sock.spare);
                let max = match pattern {
                    Pattern::Datagram(n) => n,
                    _ => st.buffer_size,
                };
                let sending = sock.sending.take();
                let multi = match sock.multi.take() {
                    Some(m) => Some(m),
                    None if !sock.datagram => ops::RecvMulti::new(fd),
                    None => None,
                };
                Step::Wait(Box::pin(fill(h, cx, fd, sending, buf, max, sock.read_timeout, read::Want::of(&pattern), multi)))
            }
        }
    })
}

/// Receives into socket `h`'s buffer until what came answers `want` (or
/// the peer closed, or a receive failed or timed out: `timeout` is per
/// receive, as nginx re-arms its read timer), so the receive waits once.
/// Each receive goes into a buffer of its own: an abandoned one (timeout)
/// parks that, not the socket's unread bytes.
#[allow(clippy::too_many_arguments)]
async fn fill(h: u64, cx: u64, fd: RawFd, sending: Option<send::Sending>, buf: Vec<u8>, max: usize, timeout: Duration, want: read::Want, multi: Option<ops::RecvMulti>) {
    let _waiting = Waiting { h, op: Op::Read };
    let mut multi = multi;
    // The request goes out first (its failure is this receive's).
    if let Some(s) = sending {
        if let Err(e) = send::finish(fd, s).await {
            with_live(h, fd, |sock| {
                sock.write_closed = true;
                sock.multi = multi.take();
                sock.outcome = Some(Outcome { cx, op: Op::Read, result: Err(e) });
            });
            return;
        }
    }
    let mut buf = buf;
    loop {
        buf.clear();
        let deadline = rt::now() + timeout;
        let res = match multi.as_mut() {
            // The connection's multishot receive: no submission per read.
            Some(m) => match rt::race(m.next_into(&mut buf), rt::sleep_until(deadline)).await {
                // The worker's buffers ran out: this read is a plain recv.
                Ok(n) if n == -libc::ENOBUFS => rt::race(ops::recv(fd, buf, max, false), rt::sleep_until(deadline)).await,
                Ok(n) => Ok((n, buf)),
                Err(()) => Err(()),
            },
            None => rt::race(ops::recv(fd, buf, max, false), rt::sleep_until(deadline)).await,
        };
        if res.is_err() && settings().log_errors {
            crate::error_log!(crate::log::Level::Error, None, "lua tcp socket read timed out");
        }
        let mut more = false;
        let mut next = Vec::new();
        with_live(h, fd, |sock| {
            record(sock, cx, res);
            more = sock.outcome.as_ref().is_some_and(|o| o.result.is_ok()) && !read::ready(sock, &want);
            if more {
                // Not enough yet: receive again, into the spare buffer.
                sock.outcome = None;
                next = std::mem::take(&mut sock.spare);
            } else {
                sock.multi = multi.take();
            }
        });
        if !more {
            return;
        }
        buf = next;
    }
}

/// Records what one receive brought into `sock`.
fn record(sock: &mut Sock, cx: u64, res: Result<(i32, Vec<u8>), ()>) {
    {
        let result = match res {
            Ok((n, buf)) if n > 0 => {
                if sock.rbuf.is_empty() {
                    sock.spare = std::mem::replace(&mut sock.rbuf, buf);
                } else {
                    sock.rbuf.extend_from_slice(&buf);
                    sock.spare = buf;
                }
                Ok(())
            }
            Ok((0, buf)) => {
                sock.eof = true;
                sock.spare = buf;
                Ok(())
            }
            Ok((e, buf)) => {
                sock.spare = buf;
                Err(errno_text(-e))
            }
            Err(()) => Err("timeout".into()),
        };
        sock.outcome = Some(Outcome { cx, op: Op::Read, result });
    }
}

/// ngx.req.socket(raw): a socket over the client connection of `owner`'s
/// request.
pub fn new_client(owner: u64, raw: bool) -> u64 {
    let h = new(owner, false);
    SOCKETS.with(|s| {
        if let Some(sock) = s.borrow_mut().slab.get_mut((h & 0xffff_ffff) as usize) {
            sock.client = Some(raw);
        }
    });
    h
}

/// The request's driver did a [`ClientOp`] of socket `h` for context `cx`.
pub fn client_done(h: u64, cx: u64, done: ClientDone) {
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        let Some(sock) = s.slab.get_mut((h & 0xffff_ffff) as usize).filter(|k| u64::from(k.generation) == h >> 32) else { return };
        let (op, result) = match done {
            ClientDone::Read(res) => {
                sock.reading = 0;
                match res {
                    Ok(data) => {
                        sock.rbuf.extend_from_slice(&data);
                        (Op::Read, Ok(()))
                    }
                    // The end of the body (or of the connection): what is
                    // buffered is the last of it.
                    Err("closed") => {
                        sock.eof = true;
                        (Op::Read, Ok(()))
                    }
                    Err(e) => (Op::Read, Err(e.into())),
                }
            }
            ClientDone::Write(ok) => {
                sock.writing = 0;
                (Op::Send, if ok { Ok(()) } else { Err("closed".into()) })
            }
        };
        sock.outcome = Some(Outcome { cx, op, result });
    })
}

/// `sock:settimeouts(connect, send, read)` (None keeps one).
pub fn set_timeouts(h: u64, owner: u64, connect: Option<Duration>, send: Option<Duration>, read: Option<Duration>) -> Result<(), Bad> {
    with(h, owner, |sock, _| {
        if let Some(d) = connect {
            sock.connect_timeout = d;
        }
        if let Some(d) = send {
            sock.send_timeout = d;
        }
        if let Some(d) = read {
            sock.read_timeout = d;
        }
    })
}

/// `sock:setkeepalive(timeout, size)`: the connection goes to its pool
/// (the socket is closed for Lua). Errors as OpenResty's.
pub fn set_keepalive(h: u64, owner: u64, timeout: Option<Duration>, size: Option<usize>) -> Result<Result<(), Error>, Bad> {
    with(h, owner, |sock, st| {
        let Some(_) = sock.fd else { return Err(if sock.client.is_some() { "not supported for request sockets" } else { "closed" }.into()) };
        if sock.reading != 0 || sock.writing != 0 {
            return Err("socket busy".into());
        }
        if sock.datagram {
            return Err("not a tcp socket".into());
        }
        if sock.rpos < sock.rbuf.len() {
            return Err("unread data in buffer".into());
        }
        if sock.eof {
            reset(sock, false);
            return Err("closed".into());
        }
        let sending = match settle_send(sock) {
            Ok(s) => s,
            Err(e) => {
                reset(sock, false);
                return Err(e);
            }
        };
        let key = std::mem::take(&mut sock.key);
        let reused = sock.reused;
        let (timeout, size) = (timeout.unwrap_or(st.keepalive_timeout), size.unwrap_or(st.pool_size).max(1));
        let multi = sock.multi.take();
        if let Some(fd) = reset(sock, true) {
            match sending {
                None => pool::put_conn(&key, fd, reused, multi, timeout, size),
                // Pooled once its last send is out (closed if that fails).
                Some(s) => rt::spawn(async move {
                    match send::finish(fd, s).await {
                        Ok(()) => pool::put(&key, fd, reused, timeout, size),
                        Err(_) => close_fd(fd),
                    }
                }),
            }
        }
        Ok(())
    })
}

/// `sock:close()`.
pub fn close(h: u64, owner: u64) -> Result<Result<(), Error>, Bad> {
    with(h, owner, |sock, _| {
        if !sock.connected() {
            return Err("closed".into());
        }
        // A request socket only stops: the connection is the request's.
        sock.client = None;
        reset(sock, false);
        Ok(())
    })
}

/// `sock:getreusedtimes()`: None when not connected.
pub fn reused_times(h: u64, owner: u64) -> Result<Option<u32>, Bad> {
    with(h, owner, |sock, _| sock.fd.map(|_| sock.reused))
}

/// `sock:getfd()`: None when not connected.
pub fn fd(h: u64, owner: u64) -> Result<Option<RawFd>, Bad> {
    with(h, owner, |sock, _| sock.fd)
}

/// `sock:setoption(name, value)`: keepalive, reuseaddr, tcp-nodelay,
/// sndbuf, rcvbuf.
pub fn set_option(h: u64, owner: u64, name: &str, value: i32) -> Result<Result<(), Error>, Bad> {
    with(h, owner, |sock, _| {
        let Some(fd) = sock.fd else { return Err("closed".into()) };
        let (level, opt) = match name {
            "keepalive" => (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            "reuseaddr" => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            "tcp-nodelay" => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            "sndbuf" => (libc::SOL_SOCKET, libc::SO_SNDBUF),
            "rcvbuf" => (libc::SOL_SOCKET, libc::SO_RCVBUF),
            _ => return Err(format!("unsupported option {name}").into()),
        };
        // SAFETY: setsockopt on our fd with a pointer to an int of the stated size.
        let r = unsafe { libc::setsockopt(fd, level, opt, (&value as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t) };
        if r < 0 {
            return Err(errno_text(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)));
        }
        Ok(())
    })
}
