//! Sends that do not wait: `sock:send` of up to [`AT_ONCE_MAX`] bytes hands them to io_uring and
//! returns (they go to the kernel with the ring's next submit, in the same
//! batch as the receive that usually follows), and the socket's next
//! operation settles the send first. A send that failed is reported by
//! that next operation; a close or setkeepalive right after a send lets it
//! finish before the connection is closed or pooled.

use std::future::Future;
use std::os::fd::RawFd;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{errno_text, Error};

/// The largest send that returns at once: one the kernel's socket buffer
/// takes without waiting, in practice.
pub(super) const AT_ONCE_MAX: usize = 64 * 1024;
use crate::rt::{self, ops};

/// A send handed to the kernel, not yet seen complete.
pub(super) struct Sending {
    op: ops::Op<Vec<u8>>,
    /// Bytes of the buffer sent before this op.
    from: usize,
    deadline: Instant,
}

impl Sending {
    pub(super) fn start(fd: RawFd, data: Vec<u8>, deadline: Instant) -> Sending {
        Sending { op: ops::send(fd, data, 0), from: 0, deadline }
    }
}

/// Where a send stands.
pub(super) enum Settled {
    Done,
    Failed(Error),
    /// Still in flight (possibly resubmitted for its rest).
    Pending(Sending),
}

/// Looks at a send without waiting: done, failed, or still going.
pub(super) fn settle(fd: RawFd, mut s: Sending) -> Settled {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        match std::pin::Pin::new(&mut s.op).poll(&mut cx) {
            Poll::Pending => return Settled::Pending(s),
            Poll::Ready((n, buf)) => match step(fd, s.from, s.deadline, n, buf) {
                Ok(None) => return Settled::Done,
                Ok(Some(next)) => s = next,
                Err(e) => return Settled::Failed(e),
            },
        }
    }
}

/// What a completed send op leaves: done, the rest to send, or the error.
fn step(fd: RawFd, from: usize, deadline: Instant, n: i32, buf: Vec<u8>) -> Result<Option<Sending>, Error> {
    if n <= 0 {
        return Err(match -n {
            0 => "closed".into(),
            libc::EPIPE => "broken pipe".into(),
            e => errno_text(e),
        });
    }
    let from = from + n as usize;
    if from >= buf.len() {
        return Ok(None);
    }
    Ok(Some(Sending { op: ops::send(fd, buf, from), from, deadline }))
}

/// Waits for the send to finish (its rest resubmitted as needed) within
/// its send timeout.
pub(super) async fn finish(fd: RawFd, mut s: Sending) -> Result<(), Error> {
    loop {
        match rt::race(&mut s.op, rt::sleep_until(s.deadline)).await {
            Ok((n, buf)) => match step(fd, s.from, s.deadline, n, buf)? {
                None => return Ok(()),
                Some(next) => s = next,
            },
            Err(()) => return Err("timeout".into()),
        }
    }
}

