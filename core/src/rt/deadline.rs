//! Coarse deadlines for I/O timeouts (client_header_timeout,
//! keepalive_timeout, send_timeout, ...). Arming one is a store into its
//! slot; a sweep every `TICK` wakes what expired, as nginx's timers are
//! only as precise as its event loop. The precise timers of `timer` are for
//! sleeps: used for a read per request, their heap would keep one stale
//! entry per request for the whole timeout.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use super::notify::race;
use super::timer::{sleep_until, Elapsed};
use super::{now, spawn};

/// How late a deadline may fire.
const TICK: Duration = Duration::from_millis(100);

struct Slot {
    at: Option<Instant>,
    waker: Option<Waker>,
}

thread_local! {
    static SLOTS: RefCell<Slab<Slot>> = const { RefCell::new(Slab::new()) };
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// One reusable deadline, e.g. a connection's.
pub struct Deadline {
    idx: usize,
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadline {
    pub fn new() -> Deadline {
        let idx = SLOTS.with(|s| s.borrow_mut().insert(Slot { at: None, waker: None }));
        if !SWEEPING.with(|s| s.replace(true)) {
            spawn(sweep());
        }
        Deadline { idx }
    }

    /// Run `fut` until `at`; on expiry `fut` is dropped (which cancels its I/O).
    /// (A struct, not an async fn, so the future is no bigger than `fut`'s.)
    pub fn run<F: Future>(&self, at: Instant, fut: F) -> Timed<'_, F> {
        SLOTS.with(|s| s.borrow_mut()[self.idx].at = Some(at));
        Timed { deadline: self, race: race(fut, Expired { idx: self.idx }) }
    }

    fn disarm(&self) {
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(slot) = s.get_mut(self.idx) {
                slot.at = None;
                slot.waker = None;
            }
        });
    }
}

/// The future of [`Deadline::run`]; the deadline is disarmed when it ends
/// or is dropped.
pub struct Timed<'d, F> {
    deadline: &'d Deadline,
    race: super::notify::Race<F, Expired>,
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `race` is pinned structurally (never moved out of a pinned
        // `Timed`; Drop below only touches `deadline`).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        match unsafe { Pin::new_unchecked(&mut this.race) }.poll(cx) {
            Poll::Ready(res) => {
                this.deadline.disarm();
                Poll::Ready(res.map_err(|()| Elapsed))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Drop for Timed<'_, F> {
    fn drop(&mut self) {
        self.deadline.disarm();
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        SLOTS.with(|s| {
            s.borrow_mut().remove(self.idx);
        });
    }
}

struct Expired {
    idx: usize,
}

impl Future for Expired {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let slot = &mut s[self.idx];
            if slot.at.is_some_and(|t| t <= now()) {
                Poll::Ready(())
            } else {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Wake every expired deadline each tick, while any deadline exists.
async fn sweep() {
    loop {
        sleep_until(now() + TICK).await;
        let t = now();
        let (wakers, empty) = SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let w: Vec<Waker> =
                s.iter_mut().filter(|(_, e)| e.at.is_some_and(|at| at <= t)).filter_map(|(_, e)| e.waker.take()).collect();
            (w, s.is_empty())
        });
        for w in wakers {
            w.wake();
        }
        if empty {
            SWEEPING.with(|s| s.set(false));
            return;
        }
    }
}
