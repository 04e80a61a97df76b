//! `halo_ffi_shdict_*` (ffi-headers/shdict.h): ngx.shared.DICT over the
//! zones of [`crate::shdict`].
//!
//! A zone's lock is held only inside these calls. Values read out are
//! copied into a per-thread buffer the caller copies at once (the zone may
//! change as soon as the lock is released). A panic (a bug) must not unwind
//! into LuaJIT: each call that touches a zone catches it and fails.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{lend, read_in, set_err, Lent, DECLINED, ERROR, OK};
use crate::shdict::{self, dict, Dict, Fail, StoreOp, Value};

/// `halo_shdict_val_t`.
#[repr(C)]
pub struct Val {
    pub vtype: c_int,
    pub flags: c_int,
    pub num: f64,
    pub str: *const u8,
    pub len: usize,
}

thread_local! {
    /// Values and key lists lent to Lua until its next call.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on zone `zone` locked: None for no such zone, or a panic.
fn on_zone<R>(zone: c_int, f: impl FnOnce(&mut Dict<'_>) -> R) -> Option<R> {
    let index = usize::try_from(zone).ok()?;
    catch_unwind(AssertUnwindSafe(|| shdict::with_dict(index, f))).ok().flatten()
}

static NO_ZONE: &CStr = c"no such lua_shared_dict zone";

/// Reads a value from Lua's struct.
///
/// # Safety
/// `v` must be valid for reads; a string value's `str` valid for `len` bytes.
unsafe fn value_in<'a>(v: *const Val) -> Option<Value<'a>> {
    // SAFETY: caller's contract.
    let v = unsafe { v.as_ref()? };
    Some(match v.vtype as u8 {
        dict::T_NIL => Value::Nil,
        dict::T_BOOLEAN => Value::Boolean(v.num != 0.0),
        dict::T_NUMBER => Value::Number(v.num),
        // SAFETY: caller's contract.
        dict::T_STRING => Value::String(unsafe { read_in(v.str, v.len) }),
        _ => return None,
    })
}

/// A value read out of a zone, its string copied to [`OUT`] (the zone may
/// change as soon as its lock is released).
#[derive(Debug, Clone, Copy)]
pub enum Out {
    Nil,
    Boolean(bool),
    Number(f64),
    String(Lent),
}

/// `value`, its string kept in [`OUT`] until the next call.
fn kept(value: Value<'_>) -> Out {
    match value {
        Value::Nil => Out::Nil,
        Value::Boolean(b) => Out::Boolean(b),
        Value::Number(n) => Out::Number(n),
        Value::String(s) => OUT.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            b.extend_from_slice(s);
            Out::String(Lent::new(&b))
        }),
    }
}

/// Fills Lua's out-struct with `value`.
///
/// # Safety
/// `out` must be NULL or valid for writes.
unsafe fn value_out(out: *mut Val, value: Out, flags: u32) {
    // SAFETY: caller's contract.
    let Some(o) = (unsafe { out.as_mut() }) else { return };
    o.flags = flags as c_int;
    match value {
        Out::Nil => o.vtype = c_int::from(dict::T_NIL),
        Out::Boolean(b) => {
            o.vtype = c_int::from(dict::T_BOOLEAN);
            o.num = f64::from(u8::from(b));
        }
        Out::Number(n) => {
            o.vtype = c_int::from(dict::T_NUMBER);
            o.num = n;
        }
        Out::String(s) => {
            o.vtype = c_int::from(dict::T_STRING);
            o.str = s.ptr;
            o.len = s.len;
        }
    }
}

/// An absolute expiry in ms from a relative time in ms (as nginx, a part
/// of a millisecond is dropped, and 0 never expires).
fn expiry(ms: f64, now: u64) -> u64 {
    let ms = if ms.is_finite() && ms > 0.0 { ms as u64 } else { 0 };
    if ms == 0 { 0 } else { now.saturating_add(ms) }
}

/// # Safety
/// Out-parameters must be NULL or valid for writes.
unsafe fn fail(err: *mut *const c_char, f: Fail) -> c_int {
    // SAFETY: caller's contract.
    unsafe { set_err(err, f.message()) };
    ERROR
}

#[no_mangle]
pub extern "C" fn halo_ffi_shdict_count() -> c_int {
    shdict::names().len() as c_int
}

/// # Safety
/// `name` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_name(zone: c_int, name: *mut *const u8, len: *mut usize) -> c_int {
    let Some(n) = usize::try_from(zone).ok().and_then(|i| shdict::names().into_iter().nth(i)) else {
        return DECLINED;
    };
    OUT.with(|b| {
        let mut b = b.borrow_mut();
        *b = n.into_bytes();
        // SAFETY: caller's contract; the bytes stay in OUT until the next call.
        unsafe { lend(&b, name, len) }
    })
}

/// # Safety
/// `key` valid for `key_len` bytes; out-parameters NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_get(
    zone: c_int,
    key: *const u8,
    key_len: usize,
    stale: c_int,
    out: *mut Val,
    is_stale: *mut c_int,
    err: *mut *const c_char,
) -> c_int {
    // SAFETY: caller's contract.
    let key = unsafe { read_in(key, key_len) };
    match get(zone, key, stale != 0) {
        Ok(Some(g)) => {
            // SAFETY: caller's contract.
            unsafe {
                value_out(out, g.value, g.flags);
                if !is_stale.is_null() {
                    *is_stale = c_int::from(g.stale);
                }
            }
            OK
        }
        Ok(None) => DECLINED,
        Err(msg) => {
            // SAFETY: caller's contract.
            unsafe { set_err(err, msg) };
            ERROR
        }
    }
}

/// What [`get`] found.
pub struct Got {
    pub value: Out,
    pub flags: u32,
    /// An expired value, returned because `stale` was asked.
    pub stale: bool,
}

/// DICT:get(key) / get_stale: the value (None: not there), Err(message).
pub fn get(zone: c_int, key: &[u8], stale: bool) -> Result<Option<Got>, &'static CStr> {
    let now = shdict::now_ms();
    let r = on_zone(zone, |d| match d.get(key, stale, now) {
        Ok(Some(g)) => Ok(Some(Got { value: kept(g.value), flags: g.flags, stale: g.stale })),
        Ok(None) => Ok(None),
        Err(f) => Err(f.message()),
    });
    r.unwrap_or(Err(NO_ZONE))
}

/// # Safety
/// As [`halo_ffi_shdict_get`]; `val` valid for reads (its string too).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn halo_ffi_shdict_store(
    zone: c_int,
    op: c_int,
    key: *const u8,
    key_len: usize,
    val: *const Val,
    exptime_ms: f64,
    err: *mut *const c_char,
    forcible: *mut c_int,
) -> c_int {
    // SAFETY: caller's contract.
    let (key, value) = unsafe { (read_in(key, key_len), value_in(val)) };
    let Some(value) = value else {
        // SAFETY: caller's contract.
        unsafe { set_err(err, c"bad value type") };
        return ERROR;
    };
    let flags = if val.is_null() { 0 } else {
        // SAFETY: checked non-null; caller's contract.
        unsafe { (*val).flags as u32 }
    };
    let (rc, msg, forced) = store(zone, op, key, value, exptime_ms, flags);
    if let Some(msg) = msg {
        // SAFETY: caller's contract.
        unsafe { set_err(err, msg) };
    }
    if !forcible.is_null() {
        // SAFETY: non-null, caller's contract.
        unsafe { *forcible = c_int::from(forced) };
    }
    rc
}

/// DICT:set / add / replace / safe_set ... (`op`: 1 add, 2 replace, 4
/// safe): OK, DECLINED (not stored: exists, not found, no memory when
/// safe) or ERROR, with the message; and whether other items were evicted.
pub fn store(zone: c_int, op: c_int, key: &[u8], value: Value<'_>, exptime_ms: f64, flags: u32) -> (c_int, Option<&'static CStr>, bool) {
    let op = StoreOp { add: op & 1 != 0, replace: op & 2 != 0, safe: op & 4 != 0 };
    let now = shdict::now_ms();
    match on_zone(zone, |d| d.store(op, key, value, expiry(exptime_ms, now), flags, now)) {
        Some(Ok(forced)) => (OK, None, forced),
        Some(Err((f, forced))) => (if matches!(f, Fail::NoMemory) { ERROR } else { DECLINED }, Some(f.message()), forced),
        None => (ERROR, Some(NO_ZONE), false),
    }
}

/// # Safety
/// `key` valid for `key_len` bytes; `value` valid for reads and writes;
/// `init` NULL or valid for reads; the rest NULL or valid for writes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn halo_ffi_shdict_incr(
    zone: c_int,
    key: *const u8,
    key_len: usize,
    value: *mut f64,
    init: *const f64,
    init_ttl_ms: f64,
    err: *mut *const c_char,
    forcible: *mut c_int,
) -> c_int {
    if value.is_null() {
        return ERROR;
    }
    // SAFETY: caller's contract (init checked for NULL by as_ref).
    let (key, by, init) = unsafe { (read_in(key, key_len), *value, init.as_ref().copied()) };
    match incr(zone, key, by, init, init_ttl_ms) {
        Ok((n, forced)) => {
            // SAFETY: caller's contract.
            unsafe {
                *value = n;
                if !forcible.is_null() {
                    *forcible = c_int::from(forced);
                }
            }
            OK
        }
        Err(msg) => {
            // SAFETY: caller's contract.
            unsafe { set_err(err, msg) };
            ERROR
        }
    }
}

/// DICT:incr(key, by, init?, init_ttl?): the new value and whether other
/// items were evicted, or Err(message).
pub fn incr(zone: c_int, key: &[u8], by: f64, init: Option<f64>, init_ttl_ms: f64) -> Result<(f64, bool), &'static CStr> {
    let now = shdict::now_ms();
    let ttl = if init_ttl_ms.is_finite() && init_ttl_ms > 0.0 { init_ttl_ms as u64 } else { 0 };
    match on_zone(zone, |d| d.incr(key, by, init, ttl, now)) {
        Some(Ok(r)) => Ok(r),
        Some(Err(f)) => Err(f.message()),
        None => Err(NO_ZONE),
    }
}

/// # Safety
/// `key` valid for `key_len` bytes; `ttl_ms` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_get_ttl(zone: c_int, key: *const u8, key_len: usize, ttl_ms: *mut f64) -> c_int {
    // SAFETY: caller's contract.
    let key = unsafe { read_in(key, key_len) };
    let now = shdict::now_ms();
    match on_zone(zone, |d| d.ttl(key, now)) {
        Some(Some(ms)) if !ttl_ms.is_null() => {
            // SAFETY: non-null, caller's contract.
            unsafe { *ttl_ms = ms as f64 };
            OK
        }
        Some(_) => DECLINED,
        None => ERROR,
    }
}

/// # Safety
/// `key` valid for `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_set_expire(zone: c_int, key: *const u8, key_len: usize, exptime_ms: f64) -> c_int {
    // SAFETY: caller's contract.
    let key = unsafe { read_in(key, key_len) };
    let now = shdict::now_ms();
    match on_zone(zone, |d| d.set_expire(key, expiry(exptime_ms, now), now)) {
        Some(true) => OK,
        Some(false) => DECLINED,
        None => ERROR,
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_shdict_flush_all(zone: c_int) -> c_int {
    let now = shdict::now_ms();
    on_zone(zone, |d| d.flush_all(now)).map_or(ERROR, |()| OK)
}

#[no_mangle]
pub extern "C" fn halo_ffi_shdict_flush_expired(zone: c_int, max: c_int) -> c_int {
    let now = shdict::now_ms();
    on_zone(zone, |d| d.flush_expired(max.max(0) as usize, now)).map_or(ERROR, |n| n.min(c_int::MAX as usize) as c_int)
}

/// # Safety
/// `buf` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_get_keys(zone: c_int, max: c_int, buf: *mut *const u8, len: *mut usize) -> c_int {
    let now = shdict::now_ms();
    OUT.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        let mut n = 0;
        let done = on_zone(zone, |d| {
            d.keys(max.max(0) as usize, now, |k| {
                b.extend_from_slice(&(k.len() as u16).to_le_bytes());
                b.extend_from_slice(k);
                n += 1;
            })
        });
        if done.is_none() {
            return ERROR;
        }
        // SAFETY: caller's contract; the bytes stay in OUT until the next call.
        unsafe { lend(&b, buf, len) };
        n
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_shdict_capacity(zone: c_int) -> f64 {
    usize::try_from(zone).ok().and_then(shdict::size_of).unwrap_or(0) as f64
}

#[no_mangle]
pub extern "C" fn halo_ffi_shdict_free_space(zone: c_int) -> f64 {
    on_zone(zone, |d| d.free_space()).unwrap_or(0) as f64
}

/// # Safety
/// `key` valid for `key_len` bytes; `val` valid for reads; `err` NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_push(
    zone: c_int,
    key: *const u8,
    key_len: usize,
    left: c_int,
    val: *const Val,
    err: *mut *const c_char,
) -> c_int {
    // SAFETY: caller's contract.
    let (key, value) = unsafe { (read_in(key, key_len), value_in(val)) };
    let Some(value @ (Value::Number(_) | Value::String(_))) = value else {
        // SAFETY: caller's contract.
        unsafe { set_err(err, c"bad value type") };
        return ERROR;
    };
    let now = shdict::now_ms();
    match on_zone(zone, |d| d.push(key, value, left != 0, now)) {
        Some(Ok(n)) => n.min(c_int::MAX as usize) as c_int,
        // SAFETY: caller's contract.
        Some(Err(f)) => unsafe { fail(err, f) },
        None => ERROR,
    }
}

/// # Safety
/// `key` valid for `key_len` bytes; `out` and `err` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_pop(
    zone: c_int,
    key: *const u8,
    key_len: usize,
    left: c_int,
    out: *mut Val,
    err: *mut *const c_char,
) -> c_int {
    // SAFETY: caller's contract.
    let key = unsafe { read_in(key, key_len) };
    let now = shdict::now_ms();
    let mut bytes = Vec::new();
    match on_zone(zone, |d| d.pop(key, left != 0, now, &mut bytes)) {
        Some(Ok(Some(vtype))) => {
            // SAFETY: caller's contract.
            unsafe { value_out(out, kept(dict::read_value(vtype, &bytes)), 0) };
            OK
        }
        Some(Ok(None)) => DECLINED,
        // SAFETY: caller's contract.
        Some(Err(f)) => unsafe { fail(err, f) },
        None => ERROR,
    }
}

/// # Safety
/// `key` valid for `key_len` bytes; `err` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_shdict_llen(zone: c_int, key: *const u8, key_len: usize, err: *mut *const c_char) -> c_int {
    // SAFETY: caller's contract.
    let key = unsafe { read_in(key, key_len) };
    let now = shdict::now_ms();
    match on_zone(zone, |d| d.llen(key, now)) {
        Some(Ok(n)) => n.min(c_int::MAX as usize) as c_int,
        // SAFETY: caller's contract.
        Some(Err(f)) => unsafe { fail(err, f) },
        None => ERROR,
    }
}
