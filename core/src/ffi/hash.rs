//! `halo_ffi_hash_*` (ffi-headers/hash.h) over [`crate::api::digest`], and
//! nginx's `ngx_hex_dump` and `ngx_atoi`, which lua-resty-string calls through `ffi.C`.

use std::os::raw::c_int;

use super::{out_buf, read_in, ERROR, OK};
use crate::api::digest;

/// Copies a fixed-size result into `dst` (NULL: ERROR).
///
/// # Safety
/// `dst` must be NULL or valid for writes of `bytes.len()` bytes.
unsafe fn put(dst: *mut u8, bytes: &[u8]) -> c_int {
    // SAFETY: forwarded caller contract.
    let dst = unsafe { out_buf(dst, bytes.len()) };
    if dst.is_empty() && !bytes.is_empty() {
        return ERROR;
    }
    dst.copy_from_slice(bytes);
    OK
}

/// ngx.md5_bin: 16 bytes into `dst`.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_hash_md5_bin(src: *const u8, len: usize, dst: *mut u8) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { put(dst, &digest::md5(read_in(src, len))) }
}

/// ngx.md5: 32 hex digits into `dst`.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_hash_md5(src: *const u8, len: usize, dst: *mut u8) -> c_int {
    // SAFETY: forwarded caller contract.
    let sum = digest::md5(unsafe { read_in(src, len) });
    let mut hex = [0u8; 32];
    if digest::hex_to(&sum, &mut hex).is_none() {
        return ERROR;
    }
    // SAFETY: forwarded caller contract.
    unsafe { put(dst, &hex) }
}

/// ngx.sha1_bin: 20 bytes into `dst`.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of 20 bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_hash_sha1_bin(src: *const u8, len: usize, dst: *mut u8) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { put(dst, &digest::sha1(read_in(src, len))) }
}

/// ngx.hmac_sha1: 20 bytes into `dst`.
///
/// # Safety
/// `key` and `src` NULL or valid for reads of their lengths; `dst` NULL or
/// valid for writes of 20 bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_hash_hmac_sha1(key: *const u8, key_len: usize, src: *const u8, len: usize, dst: *mut u8) -> c_int {
    // SAFETY: forwarded caller contract.
    let (key, src) = unsafe { (read_in(key, key_len), read_in(src, len)) };
    match digest::hmac_sha1(key, src) {
        // SAFETY: forwarded caller contract.
        Some(mac) => unsafe { put(dst, &mac) },
        None => ERROR,
    }
}

/// ngx.crc32_short / ngx.crc32_long.
///
/// # Safety
/// `src` must be NULL or valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_hash_crc32(src: *const u8, len: usize) -> u32 {
    // SAFETY: forwarded caller contract.
    digest::crc32(unsafe { read_in(src, len) })
}

/// nginx's `u_char *ngx_hex_dump(u_char *dst, u_char *src, size_t len)`:
/// `2 * len` lower-case hex digits of `src` into `dst`; returns the end of
/// what it wrote. Not a halo_ffi_* function: lua-resty-string declares and
/// calls it by this name (resty/string.lua's to_hex), so build.rs exports
/// it as is. NULL `dst` or `src` writes nothing and returns `dst`.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `2 * len` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn ngx_hex_dump(dst: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    let Some(out_len) = len.checked_mul(2) else { return dst };
    if dst.is_null() || src.is_null() {
        return dst;
    }
    // SAFETY: forwarded caller contract (both non-null here).
    let (src, out) = unsafe { (read_in(src, len), out_buf(dst, out_len)) };
    match digest::hex_to(src, out) {
        // SAFETY: `dst` is valid for `out_len >= n` bytes, so `dst + n` is
        // within (or one past) the caller's buffer.
        Some(n) => unsafe { dst.add(n) },
        None => dst,
    }
}

/// nginx's `ngx_int_t ngx_atoi(u_char *line, size_t n)`: the decimal number
/// `line[..n]`, or -1 (NGX_ERROR) when it is empty, holds a non-digit or
/// overflows. lua-resty-string declares it beside ngx_hex_dump (its atoi).
///
/// # Safety
/// `line` must be NULL or valid for reads of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn ngx_atoi(line: *const u8, n: usize) -> isize {
    // SAFETY: forwarded caller contract.
    let digits = unsafe { read_in(line, n) };
    if digits.is_empty() {
        return -1;
    }
    digits
        .iter()
        .try_fold(0isize, |v, &c| {
            let d = (c as char).to_digit(10)?;
            v.checked_mul(10)?.checked_add(d as isize)
        })
        .unwrap_or(-1)
}
