//! ffi-headers/thread.h: ngx.thread.spawn, wait and kill. The scheduling
//! itself is crate::lua::sched's; these calls register what the running
//! context asks for.

use std::os::raw::c_int;

use super::{AGAIN, BAD_CONTEXT, BUSY, DECLINED, DONE, NO_REQUEST, OK};
use crate::lua::context::{self, Kind, Pending, Phase};

/// Whether a context of `kind` may spawn, wait and kill (as lua-nginx-module:
/// the phases that may yield, and timers).
fn may_schedule(kind: Kind) -> bool {
    matches!(kind, Kind::Timer | Kind::Request(Phase::Rewrite | Phase::Access | Phase::Content))
}

/// # Safety
/// The pointer arguments must be NULL or valid as the header says.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_thread_spawn(r: u64, t: *mut u64) -> c_int {
    if t.is_null() {
        return DECLINED;
    }
    context::with_active(r, |kind, _| may_schedule(kind))
        .map_or(NO_REQUEST, |ok| {
            if !ok {
                return BAD_CONTEXT;
            }
            let Some(child) = context::open_child(r) else { return NO_REQUEST };
            context::with_run(r, |_, run| run.pending = Some(Pending::Spawn(child)));
            // SAFETY: `t` is non-null and points to a uint64_t (header contract).
            unsafe { *t = child.raw() };
            AGAIN
        })
}

/// # Safety
/// The pointer arguments must be NULL or valid as the header says.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_thread_wait(r: u64, ts: *const u64, n: c_int) -> c_int {
    if ts.is_null() || n <= 0 {
        return DECLINED;
    }
    // SAFETY: `ts` is non-null and valid for `n` reads (header contract).
    let ts = unsafe { std::slice::from_raw_parts(ts, n as usize) };
    match context::with_active(r, |kind, _| may_schedule(kind)) {
        None => return NO_REQUEST,
        Some(false) => return BAD_CONTEXT,
        Some(true) => {}
    }
    // (The slab is not borrowed across these: each call borrows it once.)
    if ts.iter().any(|&t| !context::is_live(t)) {
        return OK;
    }
    if !ts.iter().all(|&t| context::is_child(r, t)) {
        return DECLINED;
    }
    context::with_run(r, |_, run| run.pending = Some(Pending::Join(ts.to_vec())));
    AGAIN
}

#[no_mangle]
pub extern "C" fn halo_ffi_thread_kill(r: u64, t: u64) -> c_int {
    context::with_active(r, |kind, _| may_schedule(kind))
        .map_or(NO_REQUEST, |ok| match () {
            _ if !ok => BAD_CONTEXT,
            _ if context::kill(r, t) => OK,
            _ if !context::is_live(t) => DONE,
            _ => DECLINED,
        })
}

#[no_mangle]
pub extern "C" fn halo_ffi_thread_on_abort(r: u64) -> c_int {
    let checks = context::with_request(r, |kind, _, req| match kind {
        Kind::Request(Phase::Rewrite | Phase::Access | Phase::Content) => Some(req.conf.lua_check_client_abort),
        _ => None,
    });
    match checks {
        None => NO_REQUEST,
        Some(None) => BAD_CONTEXT,
        Some(Some(false)) => DECLINED,
        Some(Some(true)) => {
            let root = context::root(r);
            let first = context::with_run(root, |_, run| !std::mem::replace(&mut run.on_abort, true));
            if first == Some(true) {
                OK
            } else {
                BUSY
            }
        }
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_thread_wait_abort(r: u64) -> c_int {
    context::with_active(r, |_, run| {
        run.pending = Some(Pending::Abort);
        AGAIN
    })
    .unwrap_or(NO_REQUEST)
}
