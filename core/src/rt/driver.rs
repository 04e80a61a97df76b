//! The ring and the table of in-flight operations.
//!
//! Each submitted SQE carries the index of its slot in `ops` as user_data.
//! A completion fills the slot and wakes the task waiting on it. An
//! operation whose future was dropped before completion keeps its buffers
//! parked in the slot (`Ignored`) until the kernel is done with them.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::task::Waker;

use io_uring::{cqueue, squeue, IoUring};

use super::bufring::BufRing;
use slab::Slab;

/// user_data of completions nobody waits for (cancel requests).
pub(crate) const IGNORE: u64 = u64::MAX;

pub(crate) enum Slot {
    /// Submitted; the waker of the task to wake, once it polled.
    Pending(Option<Waker>),
    /// A single-shot operation completed with (result, flags).
    Done(i32),
    /// A multishot operation: queued (result, CQE flags), and whether more
    /// will come.
    Multi { results: VecDeque<(i32, u32)>, waker: Option<Waker>, more: bool },
    /// Its future was dropped: holds the buffers until the CQE arrives.
    Ignored(#[allow(dead_code)] Box<dyn Any>),
}

pub(crate) struct Driver {
    // Declared first, dropped first: the kernel lets go of the buffers
    // before they are freed.
    pub ring: IoUring,
    pub ops: Slab<Slot>,
    /// Buffers for multishot receives; None when the kernel cannot provide
    /// them (single-shot receives then).
    pub bufs: Option<BufRing>,
}

/// Why the ring could not be created.
#[derive(Debug)]
pub struct RingError(pub io::Error);

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EACCES) => write!(
                f,
                "io_uring is not available ({}): halo needs io_uring. If you run in a container, \
                 allow io_uring_setup/io_uring_enter/io_uring_register in the seccomp profile \
                 (docker: --security-opt seccomp=unconfined or a profile that allows them); \
                 on Linux 6.6+ also check that sysctl kernel.io_uring_disabled is 0",
                self.0
            ),
            _ => write!(f, "io_uring_setup() failed ({})", self.0),
        }
    }
}

thread_local! {
    pub(crate) static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

impl Driver {
    /// A ring tuned for one thread that submits and reaps by itself:
    /// SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN (see DESIGN.md for the
    /// measured gain). Falls back to a plain ring on kernels without them.
    pub fn new(entries: u32) -> Result<Driver, RingError> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => IoUring::new(entries),
                _ => Err(e),
            })
            .map_err(RingError)?;
        let bufs = BufRing::new(&ring).ok();
        Ok(Driver { ring, ops: Slab::with_capacity(256), bufs })
    }

    /// Queue an SQE, flushing the queue to the kernel first if it is full.
    pub fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every entry's buffers are owned by its op slot (or the
            // future holding the slot) until its completion arrives.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) {
                    panic!("io_uring submit failed: {e}");
                }
            }
        }
    }

    /// Hand completions to their slots; returns wakers to call.
    pub fn reap(&mut self, wake: &mut Vec<Waker>) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            if ud == IGNORE {
                continue;
            }
            let idx = ud as usize;
            let Some(slot) = self.ops.get_mut(idx) else { continue };
            match slot {
                Slot::Pending(w) => {
                    if let Some(w) = w.take() {
                        wake.push(w);
                    }
                    *slot = Slot::Done(cqe.result());
                }
                Slot::Multi { results, waker, more } => {
                    results.push_back((cqe.result(), cqe.flags()));
                    *more = cqueue::more(cqe.flags());
                    if let Some(w) = waker.take() {
                        wake.push(w);
                    }
                }
                Slot::Ignored(_) => {
                    // A cancelled multishot receive may still fill buffers.
                    if let (Some(bid), Some(bufs)) = (cqueue::buffer_select(cqe.flags()), self.bufs.as_mut()) {
                        bufs.give_back(bid);
                    }
                    if !cqueue::more(cqe.flags()) {
                        self.ops.remove(idx);
                    }
                }
                Slot::Done(..) => {}
            }
        }
    }
}

/// Check, before any worker is forked, that this process may use io_uring
/// at all, so a blocked io_uring is one clear start-up error rather than
/// workers dying and being respawned.
pub fn probe() -> Result<(), RingError> {
    Driver::new(8).map(drop)
}

/// Run `f` with this thread's driver. Panics outside a worker's runtime.
pub(crate) fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    DRIVER.with(|d| f(d.borrow_mut().as_mut().expect("no io_uring runtime on this thread")))
}
