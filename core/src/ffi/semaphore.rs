//! ffi-headers/semaphore.h: ngx.semaphore over crate::lua::semaphore. A wait
//! that must block registers its [`semaphore::Grant`] raced with the
//! timeout as the running context's pending future; the outcome is left in
//! the context's run for `halo_ffi_semaphore_wait_result`.

use std::os::raw::c_int;
use std::time::Duration;

use super::{AGAIN, BAD_CONTEXT, DECLINED, ERROR, NO_REQUEST, OK};
use crate::lua::context::{self, Kind, Pending, Phase};
use crate::lua::semaphore;
use crate::rt;

/// ffi-headers/semaphore.h's `halo_ffi_semaphore_t`.
#[repr(C)]
pub struct Semaphore {
    pub id: u64,
}

/// Whether a context of `kind` may wait (as lua-nginx-module: the phases
/// that may yield, and timers; a light thread has its parent's kind).
fn may_wait(kind: Kind) -> bool {
    matches!(kind, Kind::Timer | Kind::Request(Phase::Rewrite | Phase::Access | Phase::Content))
}

/// # Safety
/// `sem` must be NULL or point to a writable `halo_ffi_semaphore_t`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_semaphore_new(n: c_int, sem: *mut Semaphore) -> c_int {
    if sem.is_null() || n < 0 {
        return DECLINED;
    }
    let id = semaphore::new(n as u32);
    // SAFETY: `sem` is non-null and points to a halo_ffi_semaphore_t (header contract).
    unsafe { (*sem).id = id };
    OK
}

/// # Safety
/// `sem` must be NULL or point to a `halo_ffi_semaphore_t`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_semaphore_free(sem: *const Semaphore) {
    if !sem.is_null() {
        // SAFETY: `sem` is non-null and points to a halo_ffi_semaphore_t (header contract).
        semaphore::free(unsafe { (*sem).id });
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_semaphore_post(sem: u64, n: c_int) -> c_int {
    if semaphore::post(sem, n.max(0) as u32) {
        OK
    } else {
        DECLINED
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_semaphore_count(sem: u64) -> c_int {
    semaphore::count(sem).map_or(0, |n| n.clamp(c_int::MIN.into(), c_int::MAX.into()) as c_int)
}

#[no_mangle]
pub extern "C" fn halo_ffi_semaphore_wait(r: u64, sem: u64, wait_ms: c_int) -> c_int {
    context::with_active(r, |kind, run| {
        if !may_wait(kind) {
            return BAD_CONTEXT;
        }
        match semaphore::take(sem) {
            None => return ERROR,
            Some(true) => return OK,
            Some(false) if wait_ms <= 0 => return DECLINED,
            Some(false) => {}
        }
        let Some(grant) = semaphore::wait(sem) else { return ERROR };
        let deadline = rt::now() + Duration::from_millis(wait_ms as u64);
        run.sema = None;
        run.pending = Some(Pending::Future(Box::pin(async move {
            // The grant is polled first: granted and timed out at once counts as granted.
            let granted = rt::race(grant, rt::sleep_until(deadline)).await.is_ok();
            context::with_run(r, |_, run| run.sema = Some(granted));
        })));
        AGAIN
    })
    .unwrap_or(NO_REQUEST)
}

#[no_mangle]
pub extern "C" fn halo_ffi_semaphore_wait_result(r: u64) -> c_int {
    match context::with_active(r, |_, run| run.sema.take()) {
        Some(Some(true)) => OK,
        Some(Some(false)) => DECLINED,
        _ => NO_REQUEST,
    }
}
