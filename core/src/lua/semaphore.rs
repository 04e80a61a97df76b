//! ngx.semaphore's semaphores: per worker (thread-local), so every request,
//! timer and light thread of the worker shares them. A semaphore has a count
//! of resources and a FIFO queue of waiters; [`post`] hands resources to the
//! waiters at the head first (marking them granted, so no later [`take`] can
//! steal them) and adds the rest to the count.
//!
//! A waiter is a [`Grant`] future: it completes when granted. Dropping it
//! before then takes it off the queue (a request that ends while it waits
//! loses nothing for the others); dropping it granted but not yet seen
//! complete gives the resource back. The count Lua sees is the resources
//! left minus the waiters queued (lua-nginx-module's
//! `resource_count - wait_count`).
//!
//! A semaphore's id is its slot (low 32 bits) and a generation (high 32,
//! never 0), so an id kept past [`free`] names nothing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

struct Sema {
    generation: u32,
    /// Resources free to take (never positive while waiters queue).
    resources: i64,
    /// Waiters not granted yet, first come first.
    queue: VecDeque<usize>,
}

struct Waiter {
    /// The semaphore's id.
    sema: u64,
    granted: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
struct State {
    semas: Slab<Sema>,
    waiters: Slab<Waiter>,
    /// The last generation given (ids are unique for the worker's life, but
    /// for wrapping after 2^32 semaphores).
    generation: u32,
}

impl State {
    fn get(&mut self, id: u64) -> Option<&mut Sema> {
        self.semas.get_mut((id & 0xffff_ffff) as usize).filter(|s| u64::from(s.generation) == id >> 32)
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// A new semaphore with `n` resources; its id (never 0).
pub fn new(n: u32) -> u64 {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.generation = s.generation.checked_add(1).unwrap_or(1);
        let generation = s.generation;
        let slot = s.semas.insert(Sema { generation, resources: i64::from(n), queue: VecDeque::new() });
        u64::from(generation) << 32 | slot as u64
    })
}

/// Frees semaphore `id` (Lua collected it). Its waiters, if any were left,
/// are never granted now: they wait until their timeouts.
pub fn free(id: u64) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.get(id).is_some() {
            s.semas.remove((id & 0xffff_ffff) as usize);
        }
    });
}

/// Adds `n` resources: the first up to `n` waiters are granted one each
/// and woken, the rest goes to the count. False if `id` names nothing.
pub fn post(id: u64, n: u32) -> bool {
    let mut wake = Vec::new();
    let found = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let s = &mut *s;
        let Some(sema) = s.semas.get_mut((id & 0xffff_ffff) as usize).filter(|x| u64::from(x.generation) == id >> 32) else {
            return false;
        };
        let mut n = i64::from(n);
        while n > 0 {
            let Some(k) = sema.queue.pop_front() else { break };
            let w = &mut s.waiters[k];
            w.granted = true;
            wake.extend(w.waker.take());
            n -= 1;
        }
        sema.resources = sema.resources.saturating_add(n);
        true
    });
    // Outside the borrow: a waker may run code that uses semaphores.
    for w in wake {
        w.wake();
    }
    found
}

/// Resources left minus waiters queued; None if `id` names nothing.
pub fn count(id: u64) -> Option<i64> {
    STATE.with(|s| s.borrow_mut().get(id).map(|x| x.resources - x.queue.len() as i64))
}

/// Takes a resource if one is free: Some(true); Some(false) when there is
/// none; None if `id` names nothing.
pub fn take(id: u64) -> Option<bool> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let sema = s.get(id)?;
        Some(if sema.resources > 0 {
            sema.resources -= 1;
            true
        } else {
            false
        })
    })
}

/// Queues a waiter on `id` (after the ones already queued); None if `id`
/// names nothing.
pub fn wait(id: u64) -> Option<Grant> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.get(id)?;
        let key = s.waiters.insert(Waiter { sema: id, granted: false, waker: None });
        s.get(id)?.queue.push_back(key);
        Some(Grant { key, done: false })
    })
}

/// A waiter on a semaphore: completes once [`post`] granted it a resource.
pub struct Grant {
    key: usize,
    /// Completed: the resource is the caller's, the entry is gone.
    done: bool,
}

impl Future for Grant {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let granted = STATE.with(|s| {
            let mut s = s.borrow_mut();
            let w = &mut s.waiters[self.key];
            if w.granted {
                s.waiters.remove(self.key);
                true
            } else {
                match &mut w.waker {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                false
            }
        });
        if granted {
            self.done = true;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let give_back = STATE.with(|s| {
            let mut s = s.borrow_mut();
            let w = s.waiters.remove(self.key);
            if w.granted {
                return Some(w.sema);
            }
            if let Some(sema) = s.get(w.sema) {
                sema.queue.retain(|&k| k != self.key);
            }
            None
        });
        // Granted, but its owner is gone: the next waiter gets it.
        if let Some(id) = give_back {
            post(id, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(g: &mut Grant) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(g).poll(&mut cx).is_ready()
    }

    #[test]
    fn resources_are_taken_then_waiters_queue_in_order() {
        let s = new(1);
        assert_eq!(take(s), Some(true));
        assert_eq!(take(s), Some(false));
        let mut a = wait(s).unwrap();
        let mut b = wait(s).unwrap();
        assert!(!poll(&mut a) && !poll(&mut b));
        assert_eq!(count(s), Some(-2));
        post(s, 1);
        assert_eq!(count(s), Some(-1));
        assert!(poll(&mut a) && !poll(&mut b));
        post(s, 3);
        assert!(poll(&mut b));
        assert_eq!(count(s), Some(2));
        drop((a, b));
        assert_eq!(count(s), Some(2));
        free(s);
        assert_eq!(count(s), None);
        assert!(!post(s, 1));
    }

    #[test]
    fn a_dropped_waiter_leaves_the_queue_and_gives_back_its_grant() {
        let s = new(0);
        let a = wait(s).unwrap();
        let mut b = wait(s).unwrap();
        drop(a);
        assert_eq!(count(s), Some(-1));
        post(s, 1);
        assert!(poll(&mut b), "the post reaches the live waiter");
        let c = wait(s).unwrap();
        let mut d = wait(s).unwrap();
        post(s, 1);
        // c was granted but never saw it: dropping it passes the resource on.
        drop(c);
        assert!(poll(&mut d));
        let e = wait(s).unwrap();
        post(s, 1);
        drop(e);
        assert_eq!(count(s), Some(1), "with nobody queued it goes back to the count");
        STATE.with(|st| assert_eq!(st.borrow().waiters.len(), 0));
        free(s);
    }
}
