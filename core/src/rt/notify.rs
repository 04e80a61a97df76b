//! A one-shot broadcast flag: tasks wait until it is set (graceful
//! shutdown uses it to wake idle connections and accept loops).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    /// One entry per pending `wait()`, removed when it is dropped, so a
    /// long-lived connection waiting once per request leaves nothing behind.
    waiters: RefCell<Slab<Option<Waker>>>,
}

impl Notify {
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Set the flag and wake every waiter.
    pub fn set(&self) {
        self.set.set(true);
        let wakers: Vec<Waker> = self.waiters.borrow_mut().iter_mut().filter_map(|(_, w)| w.take()).collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once the flag is set.
    pub fn wait(&self) -> Wait<'_> {
        Wait { notify: self, key: None }
    }
}

/// The future of `Notify::wait`.
pub struct Wait<'a> {
    notify: &'a Notify,
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.set.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        match self.key {
            Some(k) => waiters[k] = Some(cx.waker().clone()),
            None => {
                let k = waiters.insert(Some(cx.waker().clone()));
                drop(waiters);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.notify.waiters.borrow_mut().remove(k);
        }
    }
}

/// Poll two futures; the first to finish wins, the other is dropped.
///
/// A struct, not an `async fn`: an async fn keeps its arguments beside its
/// own state, which doubles the size of every future built from it (and of
/// every waiting connection's task).
pub fn race<A: Future, B: Future>(a: A, b: B) -> Race<A, B> {
    Race { a, b }
}

/// The future of [`race`].
pub struct Race<A, B> {
    a: A,
    b: B,
}

impl<A: Future, B: Future> Future for Race<A, B> {
    type Output = Result<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `a` and `b` are pinned structurally: they are never moved
        // out of a pinned `Race` (no method hands them out by value, and
        // `Race` has no Drop that could move them), so pinning `self` pins them.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.a) }.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // SAFETY: as above.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.b) }.poll(cx) {
            return Poll::Ready(Err(v));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn dropped_waits_leave_no_waker_behind() {
        let n = Notify::default();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            let mut w = std::pin::pin!(n.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(n.waiters.borrow().len(), 0);
        let mut w = std::pin::pin!(n.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        n.set();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
