//! I/O operations as futures. Each owns the buffer the kernel writes into
//! or reads from, and returns it with the result, so no borrow outlives
//! the operation; dropping an unfinished operation cancels it and parks the
//! buffer until the kernel lets go of it.

use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::{opcode, squeue, types};

use super::driver::{self, Slot, IGNORE};

/// A submitted single-shot operation that owns `T` while in flight.
pub struct Op<T: 'static> {
    idx: usize,
    data: Option<T>,
}

impl<T: 'static> Op<T> {
    /// Submit `entry`, whose buffers live inside `data`.
    fn submit(entry: squeue::Entry, data: T) -> Op<T> {
        driver::with(|d| {
            let idx = d.ops.insert(Slot::Pending(None));
            d.push(&entry.user_data(idx as u64));
            Op { idx, data: Some(data) }
        })
    }
}

impl<T: 'static + Unpin> Future for Op<T> {
    /// The CQE result (negative errno on failure) and the data back.
    type Output = (i32, T);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, T)> {
        let idx = self.idx;
        let res = driver::with(|d| match &mut d.ops[idx] {
            Slot::Done(res) => {
                let r = *res;
                d.ops.remove(idx);
                Some(r)
            }
            Slot::Pending(w) => {
                *w = Some(cx.waker().clone());
                None
            }
            _ => unreachable!("single-shot op in a multishot slot"),
        });
        match res {
            Some(r) => Poll::Ready((r, self.data.take().expect("op polled after completion"))),
            None => Poll::Pending,
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else { return };
        driver::with(|d| {
            if let Some(slot) = d.ops.get_mut(self.idx) {
                match slot {
                    Slot::Done(_) => {
                        d.ops.remove(self.idx);
                    }
                    _ => {
                        *slot = Slot::Ignored(Box::new(data));
                        let cancel = opcode::AsyncCancel::new(self.idx as u64).build().user_data(IGNORE);
                        d.push(&cancel);
                    }
                }
            }
        });
    }
}

/// IORING_RECVSEND_POLL_FIRST: wait for readiness before trying the recv.
const RECV_POLL_FIRST: u16 = 1;

/// recv(2) into the spare capacity of `buf` (at most `max` bytes); the
/// result is the byte count, 0 at EOF, or -errno. `buf.len()` grows by the
/// bytes received. `poll_first` skips the immediate attempt when no data
/// is expected yet (a keep-alive connection between requests), saving a
/// recv that would fail with EAGAIN.
pub async fn recv(fd: RawFd, mut buf: Vec<u8>, max: usize, poll_first: bool) -> (i32, Vec<u8>) {
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    let spare = buf.capacity() - buf.len();
    // SAFETY: the pointer is into buf's spare capacity, which the Op owns
    // (and parks on drop) until the completion.
    let ptr = unsafe { buf.as_mut_ptr().add(buf.len()) };
    let entry = opcode::Recv::new(types::Fd(fd), ptr, spare.min(u32::MAX as usize) as u32)
        .ioprio(if poll_first { RECV_POLL_FIRST } else { 0 })
        .build();
    let (res, mut buf) = Op::submit(entry, buf).await;
    if res > 0 {
        // SAFETY: the kernel initialised `res` bytes after the old length.
        unsafe { buf.set_len(buf.len() + res as usize) };
    }
    (res, buf)
}

/// send(2) of `buf[from..]`, submitted now; awaiting the returned op
/// gives bytes sent or -errno. Submitting without awaiting lets a send go
/// to the kernel in the same batch as the connection's next recv.
pub fn send(fd: RawFd, buf: Vec<u8>, from: usize) -> Op<Vec<u8>> {
    let slice = &buf[from..];
    let entry = opcode::Send::new(types::Fd(fd), slice.as_ptr(), slice.len().min(u32::MAX as usize) as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build();
    Op::submit(entry, buf)
}

/// Send all of `data`, each send(2) within `timeout` (nginx's send
/// timeouts run between two writes), adding what went to `sent`; the
/// buffer back, or Err: the errno (EPIPE for a zero-byte send), None on
/// the timeout.
pub async fn send_all(fd: RawFd, mut data: Vec<u8>, timeout: std::time::Duration, sent: &mut u64) -> Result<Vec<u8>, Option<i32>> {
    let mut from = 0;
    while from < data.len() {
        match super::race(send(fd, data, from), super::sleep_until(super::now() + timeout)).await {
            Ok((n, b)) if n > 0 => {
                data = b;
                from += n as usize;
                *sent += n as u64;
            }
            Ok((n, _)) => return Err(Some(if n == 0 { libc::EPIPE } else { -n })),
            Err(_) => return Err(None),
        }
    }
    Ok(data)
}

/// pread(2) of up to `len` bytes at `offset`, appended to `buf`.
pub async fn read_at(fd: RawFd, mut buf: Vec<u8>, len: usize, offset: u64) -> (i32, Vec<u8>) {
    buf.reserve(len);
    // SAFETY: as in `recv`: spare capacity owned by the Op.
    let ptr = unsafe { buf.as_mut_ptr().add(buf.len()) };
    let entry = opcode::Read::new(types::Fd(fd), ptr, len.min(u32::MAX as usize) as u32).offset(offset).build();
    let (res, mut buf) = Op::submit(entry, buf).await;
    if res > 0 {
        // SAFETY: the kernel initialised `res` bytes after the old length.
        unsafe { buf.set_len(buf.len() + res as usize) };
    }
    (res, buf)
}

/// pwrite(2) of `buf[from..]` at `offset`: bytes written or -errno, and
/// the buffer back.
pub async fn write_at(fd: RawFd, buf: Vec<u8>, from: usize, offset: u64) -> (i32, Vec<u8>) {
    let slice = &buf[from.min(buf.len())..];
    // The pointer is into buf's heap memory, which the Op owns (and parks
    // on drop) until the completion.
    let entry = opcode::Write::new(types::Fd(fd), slice.as_ptr(), slice.len().min(u32::MAX as usize) as u32).offset(offset).build();
    Op::submit(entry, buf).await
}

/// read(2) of a fixed-size record (e.g. a signalfd_siginfo) from `fd`.
pub async fn read_exact_record(fd: RawFd, len: usize) -> (i32, Vec<u8>) {
    read_at(fd, Vec::with_capacity(len), len, u64::MAX).await
}

/// A multishot accept on a listening socket: one SQE, a completion per
/// connection. `next()` yields accepted fds (or -errno).
pub struct AcceptMulti {
    fd: RawFd,
    idx: Option<usize>,
    cancelled: bool,
}

impl AcceptMulti {
    pub fn new(fd: RawFd) -> AcceptMulti {
        AcceptMulti { fd, idx: None, cancelled: false }
    }

    fn arm(&mut self) -> usize {
        driver::with(|d| {
            let idx = d.ops.insert(Slot::Multi { results: Default::default(), waker: None, more: true });
            let entry = opcode::AcceptMulti::new(types::Fd(self.fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(idx as u64);
            d.push(&entry);
            idx
        })
    }

    /// Stop accepting: connections the kernel accepted before the cancel
    /// took effect are still returned by `next`, which then returns None.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        if let Some(idx) = self.idx {
            driver::with(|d| d.push(&opcode::AsyncCancel::new(idx as u64).build().user_data(IGNORE)));
        }
    }

    /// The next accepted connection's fd, or -errno; None once cancelled
    /// and drained. Re-arms by itself when the kernel ends the multishot
    /// (e.g. after an error).
    pub async fn next(&mut self) -> Option<i32> {
        std::future::poll_fn(|cx| {
            let idx = match self.idx {
                Some(i) => i,
                None if self.cancelled => return Poll::Ready(None),
                None => {
                    let i = self.arm();
                    self.idx = Some(i);
                    i
                }
            };
            let (res, rearm) = driver::with(|d| match &mut d.ops[idx] {
                Slot::Multi { results, waker, more } => match results.pop_front() {
                    Some((r, _)) => {
                        let finished = !*more && results.is_empty();
                        if finished {
                            d.ops.remove(idx);
                        }
                        (Some(r), finished)
                    }
                    None => {
                        *waker = Some(cx.waker().clone());
                        (None, false)
                    }
                },
                _ => unreachable!("accept slot"),
            });
            if rearm {
                self.idx = None;
            }
            match res {
                Some(r) => Poll::Ready(Some(r)),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for AcceptMulti {
    fn drop(&mut self) {
        let Some(idx) = self.idx else { return };
        driver::with(|d| {
            if let Some(Slot::Multi { results, more, .. }) = d.ops.get(idx) {
                // Accepted but never handed out: ours to close.
                for &(fd, _) in results.iter().filter(|&&(r, _)| r >= 0) {
                    // SAFETY: these fds were accepted for us and never used.
                    unsafe { libc::close(fd) };
                }
                if *more {
                    d.ops[idx] = Slot::Ignored(Box::new(()));
                    d.push(&opcode::AsyncCancel::new(idx as u64).build().user_data(IGNORE));
                } else {
                    d.ops.remove(idx);
                }
            }
        });
    }
}

/// A multishot recv into the worker's provided buffers: one SQE stays armed
/// on the socket and completes once per arrival of data, so a keep-alive
/// connection costs no submission per request. Bytes are copied out of the
/// buffer (which goes straight back to the kernel) into the caller's Vec.
pub struct RecvMulti {
    fd: RawFd,
    idx: Option<usize>,
}

impl RecvMulti {
    /// None when this worker has no buffer ring (use [`recv`]).
    pub fn new(fd: RawFd) -> Option<RecvMulti> {
        driver::with(|d| d.bufs.is_some()).then_some(RecvMulti { fd, idx: None })
    }

    /// Whether a completion (data, the end, an error) waits to be taken;
    /// None when nothing is armed yet (it cannot tell).
    pub fn pending(&self) -> Option<bool> {
        let idx = self.idx?;
        Some(driver::with(|d| matches!(&d.ops[idx], Slot::Multi { results, more, .. } if !results.is_empty() || !*more)))
    }

    fn arm(fd: RawFd) -> usize {
        driver::with(|d| {
            let idx = d.ops.insert(Slot::Multi { results: Default::default(), waker: None, more: true });
            let entry = opcode::RecvMulti::new(types::Fd(fd), super::bufring::GROUP).build().user_data(idx as u64);
            d.push(&entry);
            idx
        })
    }

    /// The next data received, appended to `buf`: the byte count, 0 at EOF,
    /// or -errno (-ENOBUFS when the worker's buffers ran out: read this once
    /// with [`recv`]; the next call arms a new multishot).
    pub async fn next_into(&mut self, buf: &mut Vec<u8>) -> i32 {
        std::future::poll_fn(|cx| {
            let fd = self.fd;
            let idx = *self.idx.get_or_insert_with(|| Self::arm(fd));
            let (res, finished) = driver::with(|d| {
                let Slot::Multi { results, waker, more } = &mut d.ops[idx] else { unreachable!("recv slot") };
                let Some((res, flags)) = results.pop_front() else {
                    *waker = Some(cx.waker().clone());
                    return (None, false);
                };
                let finished = !*more && results.is_empty();
                if let (Some(bid), Some(bufs)) = (io_uring::cqueue::buffer_select(flags), d.bufs.as_mut()) {
                    if res > 0 {
                        buf.extend_from_slice(bufs.data(bid, res as usize));
                    }
                    bufs.give_back(bid);
                }
                if finished {
                    d.ops.remove(idx);
                }
                (Some(res), finished)
            });
            if finished {
                self.idx = None;
            }
            match res {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for RecvMulti {
    fn drop(&mut self) {
        let Some(idx) = self.idx else { return };
        driver::with(|d| {
            let Some(Slot::Multi { results, more, .. }) = d.ops.get_mut(idx) else { return };
            let more = *more;
            // Data received but never read: its buffers go back.
            for (_, flags) in std::mem::take(results) {
                if let (Some(bid), Some(bufs)) = (io_uring::cqueue::buffer_select(flags), d.bufs.as_mut()) {
                    bufs.give_back(bid);
                }
            }
            if more {
                d.ops[idx] = Slot::Ignored(Box::new(()));
                d.push(&opcode::AsyncCancel::new(idx as u64).build().user_data(IGNORE));
            } else {
                d.ops.remove(idx);
            }
        });
    }
}

/// A socket address in the form connect(2) takes, owned by the operation.
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    /// An IPv4 or IPv6 address.
    pub fn inet(addr: std::net::SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            std::net::SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
                let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::SocketAddr::V6(a) => {
                // SAFETY: as above.
                let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr { storage, len: len as libc::socklen_t }
    }

    /// A unix-domain socket path; None when it does not fit sun_path.
    pub fn unix(path: &[u8]) -> Option<RawAddr> {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_un.
        let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
        if path.is_empty() || path.len() >= sun.sun_path.len() || path.contains(&0) {
            return None;
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &s) in sun.sun_path.iter_mut().zip(path) {
            *d = s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
        Some(RawAddr { storage, len: len as libc::socklen_t })
    }

    /// The address family (AF_INET, AF_INET6, AF_UNIX).
    pub fn family(&self) -> i32 {
        i32::from(self.storage.ss_family)
    }
}

/// connect(2) of `fd` to `addr`: 0 or -errno.
pub async fn connect(fd: RawFd, addr: RawAddr) -> i32 {
    let addr = Box::new(addr);
    // The address lives in the box the Op owns (and parks on drop) until
    // the completion.
    let entry = opcode::Connect::new(types::Fd(fd), &addr.storage as *const _ as *const libc::sockaddr, addr.len).build();
    Op::submit(entry, addr).await.0
}

/// Waits until `fd` is readable or its peer hung up (poll(2) with
/// POLLIN|POLLRDHUP): the revents, or -errno.
pub async fn poll_readable(fd: RawFd) -> i32 {
    let entry = opcode::PollAdd::new(types::Fd(fd), (libc::POLLIN | libc::POLLRDHUP) as u32).build();
    Op::submit(entry, ()).await.0
}
