//! ffi-headers/balancer.h: ngx.balancer's calls, which leave their
//! settings in the request's `BalancerPick` for the proxy's try.

use std::net::{IpAddr, SocketAddr};
use std::os::raw::{c_char, c_int};
use std::time::Duration;

use super::{read_in, set_err, BAD_CONTEXT, ERROR, NO_REQUEST, OK};
use crate::lua::context::{self, Kind, Phase};
use crate::request::RequestCtx;

/// Runs `f` on the request of `r` if it runs balancer_by_lua*.
fn balancer(r: u64, f: impl for<'x, 'a> FnOnce(&'x mut RequestCtx<'a>) -> c_int) -> c_int {
    context::with_request(r, |kind, _, req| match kind {
        Kind::Request(Phase::Balancer) => f(req),
        _ => BAD_CONTEXT,
    })
    .unwrap_or(NO_REQUEST)
}

/// # Safety
/// `addr` must be valid for `len` bytes; `err` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_balancer_set_current_peer(r: u64, addr: *const u8, len: usize, port: c_int, err: *mut *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let text = unsafe { read_in(addr, len) };
    let ip = std::str::from_utf8(text).ok().and_then(|t| t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok());
    balancer(r, |req| match (ip, u16::try_from(port)) {
        (Some(ip), Ok(port)) if port > 0 => {
            req.balancer.peer = Some(SocketAddr::new(ip, port));
            OK
        }
        (None, _) => {
            // SAFETY: forwarded caller contract.
            unsafe { set_err(err, c"no host allowed: the peer must be an IP address") };
            ERROR
        }
        _ => {
            // SAFETY: forwarded caller contract.
            unsafe { set_err(err, c"invalid port") };
            ERROR
        }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_balancer_set_more_tries(r: u64, count: c_int) -> c_int {
    balancer(r, |req| {
        req.balancer.more_tries = count.max(0) as u32;
        OK
    })
}

/// # Safety
/// `status` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_balancer_get_last_failure(r: u64, status: *mut c_int) -> c_int {
    balancer(r, |req| {
        let (state, code) = match req.balancer.last_failure {
            None => (0, 0),
            Some(("failed", s)) => (1, s),
            Some((_, s)) => (2, s),
        };
        if !status.is_null() {
            // SAFETY: non-null, valid for a write (caller's contract).
            unsafe { *status = c_int::from(code) };
        }
        state
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_balancer_set_timeouts(r: u64, connect: f64, send: f64, read: f64) -> c_int {
    let secs = |s: f64| (s >= 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s));
    balancer(r, |req| {
        for (slot, v) in req.balancer.timeouts.iter_mut().zip([connect, send, read]) {
            if let Some(d) = secs(v) {
                *slot = Some(d);
            }
        }
        OK
    })
}
