//! ffi-headers/timer.h: ngx.timer.at, ngx.timer.every and the counts, over
//! crate::lua::timer.

use std::os::raw::c_int;
use std::time::Duration;

use super::{BAD_CONTEXT, BUSY, DECLINED, NO_REQUEST, OK};
use crate::lua::context;
use crate::lua::timer::{self, Refused};

/// # Safety
/// The pointer arguments must be NULL or valid as the header says.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_timer_at(delay: f64, every: c_int, id: *mut u32) -> c_int {
    if id.is_null() || !(delay >= 0.0 && delay.is_finite()) {
        return DECLINED;
    }
    match timer::start(Duration::from_secs_f64(delay), every != 0) {
        Ok(n) => {
            // SAFETY: `id` is non-null and points to a uint32_t (header contract).
            unsafe { *id = n };
            OK
        }
        Err(Refused::NoWorker) => BAD_CONTEXT,
        Err(Refused::Exiting) => DECLINED,
        Err(Refused::TooMany) => BUSY,
    }
}

/// # Safety
/// The pointer arguments must be NULL or valid as the header says.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_timer_current(r: u64, id: *mut u32) -> c_int {
    match context::with_active(r, |_, run| run.timer) {
        Some(Some((n, premature))) if !id.is_null() => {
            // SAFETY: `id` is non-null and points to a uint32_t (header contract).
            unsafe { *id = n };
            c_int::from(premature)
        }
        _ => NO_REQUEST,
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_timer_running_count() -> c_int {
    timer::running_count().min(c_int::MAX as usize) as c_int
}

#[no_mangle]
pub extern "C" fn halo_ffi_timer_pending_count() -> c_int {
    timer::pending_count().min(c_int::MAX as usize) as c_int
}
