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
/// `addr` must be valid for `len` bytes, `pool` NULL or valid for
/// `pool_len`; `err` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_balancer_set_current_peer(r: u64, addr: *const u8, len: usize, port: c_int, pool: *const u8, pool_len: usize, pool_size: c_int, err: *mut *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let text = unsafe { read_in(addr, len) };
    let ip = std::str::from_utf8(text).ok().and_then(|t| t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok());
    // SAFETY: forwarded caller contract (NULL: no pool named).
    let pool = (!pool.is_null()).then(|| String::from_utf8_lossy(unsafe { read_in(pool, pool_len) }).into_owned());
    let size = usize::try_from(pool_size).ok().filter(|&n| n > 0);
    balancer(r, |req| match (ip, u16::try_from(port)) {
        (Some(ip), Ok(port)) if port > 0 => {
            req.balancer.peer = Some(SocketAddr::new(ip, port));
            req.balancer.pool = (pool.is_some() || size.is_some()).then(|| (pool.unwrap_or_default(), size));
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

/// # Safety
/// `err` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_balancer_enable_keepalive(r: u64, timeout: f64, max_requests: u32, err: *mut *const c_char) -> c_int {
    let timeout = if timeout.is_finite() && timeout > 0.0 { Duration::from_secs_f64(timeout) } else { Duration::ZERO };
    balancer(r, |req| {
        if req.balancer.peer.is_none() {
            // SAFETY: forwarded caller contract.
            unsafe { set_err(err, c"no current peer set") };
            return ERROR;
        }
        req.balancer.keepalive = Some((timeout, max_requests));
        OK
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
