//! `halo_ffi_worker_*` (ffi-headers/worker.h): `ngx.worker.id/count/pid/exiting`
//! and `ngx.process`, from a small per-process state the worker (or the
//! privileged agent) sets when it starts.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Worker number, or -1 outside a worker. Before [`set_worker`]: 0 (a single
/// process serving requests, as `master_process off`).
static ID: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicI32 = AtomicI32::new(1);
/// Cached pid; 0 = not cached, ask the OS (getpid is a real syscall on glibc).
static PID: AtomicI32 = AtomicI32::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);
/// The master's pid as a worker saw it at start (0: not a worker).
static MASTER_PID: AtomicI32 = AtomicI32::new(0);
/// This process is the privileged agent.
static AGENT: AtomicBool = AtomicBool::new(false);
/// init_by_lua called `enable_privileged_agent` (read by the master).
static AGENT_WANTED: AtomicBool = AtomicBool::new(false);

/// nginx's process type numbers, as lua-resty-core's ngx.process names them.
const PROCESS_MASTER: c_int = 1;
const PROCESS_WORKER: c_int = 3;
const PROCESS_PRIVILEGED_AGENT: c_int = 99;

/// Records this process's place among the workers: `id` is its number
/// (0..count), or None outside a worker (master, privileged agent: then
/// `ngx.worker.id()` is nil). Call it in the worker after fork: it also caches
/// the pid that `ngx.worker.pid()` returns.
pub fn set_worker(id: Option<u32>, count: u32) {
    let id = id.map_or(-1, |i| i.min(i32::MAX as u32) as i32);
    ID.store(id, Ordering::Relaxed);
    COUNT.store(count.min(i32::MAX as u32) as i32, Ordering::Relaxed);
    PID.store(std::process::id() as i32, Ordering::Relaxed);
    EXITING.store(false, Ordering::Relaxed);
    // SAFETY: getppid has no preconditions. The parent of a worker is the
    // master that forked it.
    let ppid = if id >= 0 { unsafe { libc::getppid() } } else { 0 };
    MASTER_PID.store(ppid, Ordering::Relaxed);
    AGENT.store(false, Ordering::Relaxed);
}

/// Records this process as the privileged agent (after fork): no worker
/// id (`ngx.worker.id()` nil), `count` workers besides it, type "privileged
/// agent", the master as its parent.
pub fn set_agent(count: u32) {
    set_worker(None, count);
    // SAFETY: getppid has no preconditions; the agent's parent is the master.
    MASTER_PID.store(unsafe { libc::getppid() }, Ordering::Relaxed);
    AGENT.store(true, Ordering::Relaxed);
}

/// Forget an earlier `enable_privileged_agent` (before init_by_lua runs
/// for a new configuration: each one asks afresh, as each nginx cycle does).
pub fn reset_privileged_agent() {
    AGENT_WANTED.store(false, Ordering::Relaxed);
}

/// Whether init_by_lua asked for the privileged agent.
pub fn privileged_agent_wanted() -> bool {
    AGENT_WANTED.load(Ordering::Relaxed)
}

/// Marks the worker as shutting down (`ngx.worker.exiting()` becomes true).
pub fn set_exiting(exiting: bool) {
    EXITING.store(exiting, Ordering::Relaxed);
}

/// Worker number 0..count-1, or -1 outside a worker.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_id() -> c_int {
    ID.load(Ordering::Relaxed)
}

/// Number of worker processes.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_count() -> c_int {
    COUNT.load(Ordering::Relaxed)
}

/// This process's pid.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_pid() -> c_int {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id() as c_int,
        pid => pid,
    }
}

/// 1 once the worker is shutting down, else 0.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_exiting() -> c_int {
    c_int::from(EXITING.load(Ordering::Relaxed))
}

/// ngx.process.type(): 99 in the privileged agent, 3 (worker) in a worker,
/// else 1 (master: init_by_lua runs there before the fork, as in nginx with
/// master_process on).
#[no_mangle]
pub extern "C" fn halo_ffi_worker_process_type() -> c_int {
    if AGENT.load(Ordering::Relaxed) {
        PROCESS_PRIVILEGED_AGENT
    } else if MASTER_PID.load(Ordering::Relaxed) != 0 {
        PROCESS_WORKER
    } else {
        PROCESS_MASTER
    }
}

/// ngx.process.get_master_pid(): the master's pid; in the master, its own.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_master_pid() -> c_int {
    match MASTER_PID.load(Ordering::Relaxed) {
        0 => std::process::id() as c_int,
        pid => pid,
    }
}

/// ngx.process.enable_privileged_agent() (init_by_lua only, checked in
/// Lua): the master starts the agent with the workers. `connections` is
/// accepted and ignored (the agent serves no connections; its cosockets are
/// not counted). With `master_process off` nothing starts, as in OpenResty.
#[no_mangle]
pub extern "C" fn halo_ffi_worker_enable_privileged_agent(_connections: u32) {
    AGENT_WANTED.store(true, Ordering::Relaxed);
}

/// ngx.process.signal_graceful_exit(): this process shuts down gracefully,
/// as on SIGQUIT (the worker's signal loop does the rest; the master
/// respawns a worker that exits this way, as nginx does).
#[no_mangle]
pub extern "C" fn halo_ffi_worker_signal_graceful_exit() {
    // SAFETY: kill on our own pid with a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGQUIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the state is process-wide and tests run in parallel threads.
    #[test]
    fn state() {
        assert_eq!(halo_ffi_worker_pid(), std::process::id() as c_int);
        set_worker(Some(3), 4);
        assert_eq!((halo_ffi_worker_id(), halo_ffi_worker_count()), (3, 4));
        assert_eq!(halo_ffi_worker_pid(), std::process::id() as c_int);
        assert_eq!(halo_ffi_worker_exiting(), 0);
        set_exiting(true);
        assert_eq!(halo_ffi_worker_exiting(), 1);
        set_worker(None, 2);
        assert_eq!((halo_ffi_worker_id(), halo_ffi_worker_count(), halo_ffi_worker_exiting()), (-1, 2, 0));
        assert_eq!(halo_ffi_worker_process_type(), PROCESS_MASTER);
        set_agent(2);
        assert_eq!((halo_ffi_worker_id(), halo_ffi_worker_count(), halo_ffi_worker_process_type()), (-1, 2, 99));
        set_worker(Some(1), 2);
        assert_eq!(halo_ffi_worker_process_type(), PROCESS_WORKER);
        reset_privileged_agent();
        assert!(!privileged_agent_wanted());
        halo_ffi_worker_enable_privileged_agent(512);
        assert!(privileged_agent_wanted());
        reset_privileged_agent();
    }
}
