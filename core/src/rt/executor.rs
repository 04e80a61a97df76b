//! A minimal single-threaded executor: tasks are boxed futures in a slab,
//! a waker is the task's index, and the loop alternates between polling
//! ready tasks and waiting on the ring.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use slab::Slab;

use super::driver::{self, Driver, RingError, DRIVER};
use super::timer;

type Task = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    static TASKS: RefCell<Slab<Option<Task>>> = RefCell::new(Slab::new());
    static READY: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
}

/// The time at the start of this loop iteration (one clock read per
/// iteration, as nginx's cached time): for deadlines and request starts.
pub fn now() -> Instant {
    NOW.with(|n| match n.get() {
        Some(t) => t,
        None => {
            let t = Instant::now();
            n.set(Some(t));
            t
        }
    })
}

fn refresh_now() -> Instant {
    let t = Instant::now();
    NOW.with(|n| n.set(Some(t)));
    t
}

/// Start a task on this thread's executor.
pub fn spawn(fut: impl Future<Output = ()> + 'static) {
    let idx = TASKS.with(|t| t.borrow_mut().insert(Some(Box::pin(fut))));
    READY.with(|r| r.borrow_mut().push_back(idx));
}

fn waker(idx: usize) -> Waker {
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    fn wake(p: *const ()) {
        READY.with(|r| r.borrow_mut().push_back(p as usize));
    }
    fn drop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the data pointer is a plain task index, never dereferenced;
    // the vtable functions only touch this thread's queue, and wakers never
    // leave the worker thread (nothing here is Send to another thread).
    unsafe { Waker::from_raw(RawWaker::new(idx as *const (), &VTABLE)) }
}

fn poll_ready() {
    while let Some(idx) = READY.with(|r| r.borrow_mut().pop_front()) {
        let task = TASKS.with(|t| t.borrow_mut().get_mut(idx).and_then(|s| s.take()));
        let Some(mut task) = task else { continue };
        let w = waker(idx);
        let mut cx = Context::from_waker(&w);
        match task.as_mut().poll(&mut cx) {
            Poll::Ready(()) => {
                TASKS.with(|t| {
                    t.borrow_mut().remove(idx);
                });
            }
            Poll::Pending => TASKS.with(|t| {
                if let Some(s) = t.borrow_mut().get_mut(idx) {
                    *s = Some(task);
                }
            }),
        }
    }
}

/// Build the ring and run tasks until `done()` returns true after a loop
/// iteration (checked when no task is ready). `tick` runs once per
/// iteration, before waiting, e.g. to refresh the cached time.
pub fn run(
    entries: u32,
    main: impl Future<Output = ()> + 'static,
    mut tick: impl FnMut(),
    mut done: impl FnMut() -> bool,
) -> Result<(), RingError> {
    let drv = Driver::new(entries)?;
    DRIVER.with(|d| *d.borrow_mut() = Some(drv));
    spawn(main);
    let mut wake = Vec::new();
    loop {
        tick();
        poll_ready();
        if done() {
            break;
        }
        let deadline = timer::next_deadline();
        driver::with(|d| {
            let res = match deadline {
                Some(at) => {
                    let dur = at.saturating_duration_since(now());
                    let ts = io_uring::types::Timespec::new()
                        .sec(dur.as_secs())
                        .nsec(dur.subsec_nanos());
                    let args = io_uring::types::SubmitArgs::new().timespec(&ts);
                    d.ring.submitter().submit_with_args(1, &args)
                }
                None => d.ring.submitter().submit_and_wait(1),
            };
            if let Err(e) = res {
                match e.raw_os_error() {
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {}
                    _ => panic!("io_uring_enter failed: {e}"),
                }
            }
            d.reap(&mut wake);
        });
        for w in wake.drain(..) {
            w.wake();
        }
        timer::fire_expired(refresh_now());
    }
    // Drop the tasks (and their parked buffers) before the ring goes.
    TASKS.with(|t| t.borrow_mut().clear());
    DRIVER.with(|d| d.borrow_mut().take());
    Ok(())
}
