//! ngx.timer.at / ngx.timer.every: the worker's timers. Lua keeps each
//! timer's callback and arguments (resty.core.timer, by the number given
//! here); the core counts them against `lua_max_pending_timers` and
//! `lua_max_running_timers` and hands each new one to the worker's spawner,
//! which waits for its delay on the event loop and runs the callback in a
//! timer context of its own ([`LuaHandlers::run_timer`]). At a graceful
//! stop every pending timer fires at once with `premature` true.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use super::handler::LuaHandlers;
use crate::rt::{self, Notify};

/// A timer the worker must run.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    /// The number resty.core.timer keeps the callback under.
    pub id: u32,
    pub delay: Duration,
    /// ngx.timer.every: runs again every `delay` until the worker stops.
    pub every: bool,
}

/// Why a timer was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not in a worker (init_by_lua runs in the master).
    NoWorker,
    /// The worker is shutting down.
    Exiting,
    /// `lua_max_pending_timers` are pending already.
    TooMany,
}

struct Limits {
    max_pending: usize,
    max_running: usize,
}

/// What the worker gives to run a timer.
type Spawner = Box<dyn Fn(Timer)>;

thread_local! {
    static SPAWNER: RefCell<Option<Spawner>> = const { RefCell::new(None) };
    static LIMITS: RefCell<Limits> = const { RefCell::new(Limits { max_pending: 1024, max_running: 256 }) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
    static PENDING: Cell<usize> = const { Cell::new(0) };
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    static EXITING: Cell<bool> = const { Cell::new(false) };
}

/// The worker's way to run timers (set once the worker's loop state exists,
/// before init_worker_by_lua), with the limits of its config.
pub fn set_spawner(spawner: Spawner, max_pending: usize, max_running: usize) {
    SPAWNER.with(|s| *s.borrow_mut() = Some(spawner));
    LIMITS.with(|l| *l.borrow_mut() = Limits { max_pending, max_running });
}

/// The worker stops: no new timers from now on.
pub fn set_exiting() {
    EXITING.with(|e| e.set(true));
}

/// Creates a timer: its number, or why not.
pub fn start(delay: Duration, every: bool) -> Result<u32, Refused> {
    if EXITING.with(Cell::get) {
        return Err(Refused::Exiting);
    }
    if PENDING.with(Cell::get) >= LIMITS.with(|l| l.borrow().max_pending) {
        return Err(Refused::TooMany);
    }
    let id = NEXT_ID.with(|n| {
        let id = n.get().wrapping_add(1).max(1);
        n.set(id);
        id
    });
    let timer = Timer { id, delay, every };
    let spawned = SPAWNER.with(|s| match &*s.borrow() {
        Some(spawn) => {
            spawn(timer);
            true
        }
        None => false,
    });
    if !spawned {
        return Err(Refused::NoWorker);
    }
    PENDING.with(|p| p.set(p.get() + 1));
    Ok(id)
}

/// ngx.timer.pending_count: timers waiting for their delay.
pub fn pending_count() -> usize {
    PENDING.with(Cell::get)
}

/// ngx.timer.running_count: timer callbacks running now.
pub fn running_count() -> usize {
    RUNNING.with(Cell::get)
}

/// Timers pending or running: a graceful stop waits for them.
pub fn active() -> usize {
    pending_count() + running_count()
}

/// Runs `timer` for the worker: waits for its delay (cut short by
/// `shutdown`, which makes the run premature) and runs its callback; an
/// every-timer's next period starts when the last one expired, so a
/// callback shorter than the period keeps the pace.
pub async fn run(lua: &LuaHandlers, timer: Timer, shutdown: &Notify) {
    let mut at = rt::now() + timer.delay;
    loop {
        let premature = shutdown.is_set() || rt::race(rt::sleep_until(at), shutdown.wait()).await.is_err();
        let last = !timer.every || premature;
        // An every-timer stays pending between its runs.
        if last {
            PENDING.with(|p| p.set(p.get() - 1));
        }
        let max_running = LIMITS.with(|l| l.borrow().max_running);
        if RUNNING.with(Cell::get) >= max_running {
            crate::error_log!(crate::log::Level::Alert, None, "{max_running} lua_max_running_timers are not enough");
            if last {
                lua.timer_forget(timer.id);
            }
        } else {
            RUNNING.with(|r| r.set(r.get() + 1));
            lua.run_timer(timer.id, premature).await;
            RUNNING.with(|r| r.set(r.get() - 1));
        }
        if last {
            return;
        }
        at = (at + timer.delay).max(rt::now());
    }
}
