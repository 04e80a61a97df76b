//! The C ABI the Lua layer calls through LuaJIT's FFI.
//!
//! The hot API's functions wrap a safe `pub fn` beside them (`get_var`,
//! `set_header`, `shdict::incr`, `regex::exec`, ...) whose results are
//! [`Lent`] bytes: the lua_CFunction twin in `crate::lua::capi` wraps the same
//! ones, so the two bindings share their semantics.
//!
//! Every function here is `#[no_mangle] extern "C"`, named `halo_ffi_<module>_<op>`,
//! declared in `ffi-headers/<module>.h` (the single source of truth, fed verbatim to
//! `ffi.cdef` by lualib/) and exported from the `halo` executable by the root
//! build.rs, so that `ffi.C.halo_ffi_*` resolves. One Rust file per header.
//!
//! None of these functions may panic (a panic cannot unwind into LuaJIT): user
//! input is checked and turned into return codes.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

pub mod balancer;
pub mod base64;
pub mod config;
pub mod hash;
pub mod location;
pub mod log;
pub mod regex;
pub mod request;
pub mod semaphore;
pub mod shdict;
pub mod socket;
pub mod string;
pub mod thread;
pub mod timer;
pub mod time;
pub mod worker;

/// Success (`HALO_FFI_OK` in ffi-headers/base.h).
pub const OK: c_int = 0;
/// Failure; the error text, if any, is in an out-parameter.
pub const ERROR: c_int = -1;
/// The operation was registered; the Lua side yields and is resumed later.
pub const AGAIN: c_int = -2;
/// Busy (resty-core's FFI_BUSY).
pub const BUSY: c_int = -3;
/// Done: nothing more to do (no yield needed).
pub const DONE: c_int = -4;
/// Not found / not applicable (maps to `nil` in Lua).
pub const DECLINED: c_int = -5;
/// Aborted (resty-core's FFI_ABORT).
pub const ABORT: c_int = -6;
/// The handle names no live request (stale or foreign).
pub const NO_REQUEST: c_int = -100;
/// The API is not allowed in the current phase.
pub const BAD_CONTEXT: c_int = -101;

/// Copies `s` into the caller's buffer `buf[..len]`; returns the number of bytes
/// written, or [`ERROR`] when it does not fit (or `buf` is NULL).
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
pub(crate) unsafe fn write_out(buf: *mut u8, len: usize, s: &[u8]) -> c_int {
    if buf.is_null() || s.len() > len || s.len() > c_int::MAX as usize {
        return ERROR;
    }
    // SAFETY: `buf` is non-null and valid for `len >= s.len()` bytes (caller's
    // contract); `s` is a Rust slice, so the two cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len()) };
    s.len() as c_int
}

/// Bytes an API call hands Lua, which stay valid until the next API call on
/// this thread (they live in the request, the run's state or a per-thread
/// buffer): the one result type of the safe functions that both bindings of
/// an API wrap, the FFI lending the pointer, the lua_CFunction copying the
/// bytes into a Lua string at once.
#[derive(Debug, Clone, Copy)]
pub struct Lent {
    ptr: *const u8,
    len: usize,
}

impl Lent {
    /// Lends `bytes`, which the caller keeps alive until the next API call.
    pub(crate) fn new(bytes: &[u8]) -> Lent {
        Lent { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// The bytes.
    ///
    /// # Safety
    /// No API call may have run on this thread since this was made.
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        // SAFETY: made from a live slice, which stays valid until the next
        // API call (caller's contract).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Writes `(*data, *len)` (the FFI's out-parameters): OK, or ERROR
    /// (nothing written) when either is NULL.
    ///
    /// # Safety
    /// As [`lend`].
    pub(crate) unsafe fn out(self, data: *mut *const u8, len: *mut usize) -> c_int {
        if data.is_null() || len.is_null() {
            return ERROR;
        }
        // SAFETY: both non-null and valid for a write (caller's contract).
        unsafe {
            *data = self.ptr;
            *len = self.len;
        }
        OK
    }
}

/// Hands Lua a borrowed `bytes` through its out-parameters `(*data, *len)`:
/// OK, or ERROR (nothing written) when either is NULL.
///
/// # Safety
/// `data` and `len` must each be NULL or valid for a write; `bytes` must stay
/// valid until the caller's next API call.
pub(crate) unsafe fn lend(bytes: &[u8], data: *mut *const u8, len: *mut usize) -> c_int {
    if data.is_null() || len.is_null() {
        return ERROR;
    }
    // SAFETY: both non-null and valid for a write (caller's contract).
    unsafe {
        *data = bytes.as_ptr();
        *len = bytes.len();
    }
    OK
}

/// Points the caller's `*err` at a static message (resty-core's
/// `get_errmsg_ptr()` convention); nothing when `err` is NULL.
///
/// # Safety
/// `err` must be NULL or valid for a write.
pub(crate) unsafe fn set_err(err: *mut *const c_char, msg: &'static CStr) {
    if !err.is_null() {
        // SAFETY: non-null and valid for a write (caller's contract); the
        // text is static.
        unsafe { *err = msg.as_ptr() };
    }
}

/// Lends the caller's output buffer `(ptr, len)` as a slice; empty for NULL.
///
/// # Safety
/// `ptr` must be NULL or valid for writes of `len` bytes for the returned
/// lifetime, and not aliased by anything else used meanwhile.
pub(crate) unsafe fn out_buf<'a>(ptr: *mut u8, len: usize) -> &'a mut [u8] {
    if ptr.is_null() {
        return &mut [];
    }
    // SAFETY: non-null and valid for `len` bytes (caller's contract).
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// A length or byte count as an int result: ERROR past `c_int::MAX`
/// (no Lua string is that long) or for None.
pub(crate) fn len_result(n: Option<usize>) -> c_int {
    n.and_then(|n| c_int::try_from(n).ok()).unwrap_or(ERROR)
}

/// Borrows the caller's input string `(ptr, len)`; an empty slice for NULL.
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `len` bytes for the returned lifetime.
pub(crate) unsafe fn read_in<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: non-null and valid for `len` bytes (caller's contract).
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust codes match the enum in ffi-headers/base.h, which Lua reads.
    #[test]
    fn codes_match_base_h() {
        let h = include_str!("../../../ffi-headers/base.h");
        let want = [
            ("HALO_FFI_OK", OK),
            ("HALO_FFI_ERROR", ERROR),
            ("HALO_FFI_AGAIN", AGAIN),
            ("HALO_FFI_BUSY", BUSY),
            ("HALO_FFI_DONE", DONE),
            ("HALO_FFI_DECLINED", DECLINED),
            ("HALO_FFI_ABORT", ABORT),
            ("HALO_FFI_NO_REQUEST", NO_REQUEST),
            ("HALO_FFI_BAD_CONTEXT", BAD_CONTEXT),
        ];
        for (name, code) in want {
            let line = h
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} not in base.h"));
            let v: c_int = line.split('=').nth(1).unwrap().trim().trim_end_matches(',').parse().unwrap();
            assert_eq!(v, code, "{name}");
        }
    }

    #[test]
    fn write_out_checks_space() {
        let mut b = [0u8; 4];
        // SAFETY: `b` is valid for 4 bytes.
        unsafe {
            assert_eq!(write_out(b.as_mut_ptr(), 4, b"abcd"), 4);
            assert_eq!(&b, b"abcd");
            assert_eq!(write_out(b.as_mut_ptr(), 3, b"abcd"), ERROR);
            assert_eq!(write_out(std::ptr::null_mut(), 4, b"ab"), ERROR);
            assert_eq!(read_in(std::ptr::null(), 5), b"");
            assert_eq!(read_in(b.as_ptr(), 2), b"ab");
        }
    }
}
