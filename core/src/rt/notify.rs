//! A one-shot broadcast flag: tasks wait until it is set (graceful
//! shutdown uses it to wake idle connections and accept loops).

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Set the flag and wake every waiter.
    pub fn set(&self) {
        self.set.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves once the flag is set.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Poll two futures; the first to finish wins, the other is dropped.
pub async fn race<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> Result<A::Output, B::Output> {
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
