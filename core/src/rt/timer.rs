//! Timers in user space: a binary heap of deadlines. The loop waits on the
//! ring with the nearest deadline as its timeout, so a timer costs no SQE.
//! Cancelled timers are dropped lazily when they reach the top. A slot can
//! be reused by a new timer while its old deadline is still in the heap: a
//! heap item counts only if its deadline is its slot's own.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use slab::Slab;

struct Entry {
    waker: Option<Waker>,
    fired: bool,
    at: Instant,
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    entries: Slab<Entry>,
}

thread_local! {
    static TIMERS: RefCell<Timers> = RefCell::new(Timers::default());
}

pub(crate) fn next_deadline() -> Option<Instant> {
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        while let Some(Reverse((at, idx))) = t.heap.peek().copied() {
            if t.entries.get(idx).is_some_and(|e| e.at == at) {
                return Some(at);
            }
            t.heap.pop();
        }
        None
    })
}

pub(crate) fn fire_expired(now: Instant) {
    let mut wake = Vec::new();
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        while let Some(Reverse((at, idx))) = t.heap.peek().copied() {
            if at > now {
                break;
            }
            t.heap.pop();
            if let Some(e) = t.entries.get_mut(idx).filter(|e| e.at == at) {
                e.fired = true;
                if let Some(w) = e.waker.take() {
                    wake.push(w);
                }
            }
        }
    });
    for w in wake {
        w.wake();
    }
}

/// A future that completes at `deadline`.
pub struct Sleep {
    idx: usize,
}

/// Sleep until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let idx = t.entries.insert(Entry { waker: None, fired: false, at: deadline });
        t.heap.push(Reverse((deadline, idx)));
        Sleep { idx }
    })
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        TIMERS.with(|t| {
            let mut t = t.borrow_mut();
            let e = &mut t.entries[self.idx];
            if e.fired {
                Poll::Ready(())
            } else {
                e.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        TIMERS.with(|t| {
            t.borrow_mut().entries.remove(self.idx);
        });
    }
}

/// The deadline passed before the operation completed.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use crate::rt;

    /// A sleep dropped before its deadline leaves that deadline in the
    /// heap; the next sleep reusing its slot must not fire at it.
    #[test]
    fn a_reused_slot_does_not_fire_at_the_old_deadline() {
        let took: Rc<RefCell<Option<Duration>>> = Rc::new(RefCell::new(None));
        let (t, done) = (took.clone(), took.clone());
        let main = async move {
            // Cancelled at once by the race: its 50 ms deadline stays queued.
            let _ = rt::race(std::future::ready(()), rt::sleep_until(rt::now() + Duration::from_millis(50))).await;
            let start = std::time::Instant::now();
            rt::sleep_until(rt::now() + Duration::from_millis(200)).await;
            *t.borrow_mut() = Some(start.elapsed());
        };
        rt::run(64, main, || {}, move || done.borrow().is_some()).expect("io_uring runtime");
        let took = took.take().expect("the sleep ended");
        assert!(took >= Duration::from_millis(190), "the second sleep woke after {took:?}");
    }
}
