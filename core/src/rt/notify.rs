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
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Result<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Err(v));
        }
        Poll::Pending
    })
    .await
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
