//! `halo_ffi_string_*` (ffi-headers/string.h): URI escaping, args decoding
//! and SQL quoting over [`crate::api::uri`] and [`crate::api::args`].

use std::cell::RefCell;
use std::os::raw::c_int;

use super::request::Header;
use super::{len_result, out_buf, read_in, DECLINED};
use crate::api::args::Args;
use crate::api::uri::{self, Escape};

thread_local! {
    /// ngx.decode_args' results until the next call (no request owns them).
    static ARGS: RefCell<Args> = RefCell::new(Args::default());
}

/// The escaped length of `src` as `type`, DECLINED for an unknown type.
///
/// # Safety
/// `src` must be NULL or valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_escaped_length(src: *const u8, len: usize, ty: c_int) -> c_int {
    let Some(kind) = Escape::from_type(ty) else { return DECLINED };
    // SAFETY: forwarded caller contract.
    let src = unsafe { read_in(src, len) };
    len_result(Some(uri::escaped_len(src, kind)))
}

/// Escapes `src` as `type` into `dst`; bytes written, ERROR when `dst` is
/// too small, DECLINED for an unknown type.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `dlen` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_escape_uri(src: *const u8, len: usize, ty: c_int, dst: *mut u8, dlen: usize) -> c_int {
    let Some(kind) = Escape::from_type(ty) else { return DECLINED };
    // SAFETY: forwarded caller contract.
    let (src, dst) = unsafe { (read_in(src, len), out_buf(dst, dlen)) };
    len_result(uri::escape_to(src, kind, dst))
}

/// Unescapes `src` into `dst`; bytes written (at most `dlen`: room for
/// `len` bytes always suffices).
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `dlen` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_unescape_uri(src: *const u8, len: usize, dst: *mut u8, dlen: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let (src, dst) = unsafe { (read_in(src, len), out_buf(dst, dlen)) };
    if dst.len() < src.len() {
        return super::ERROR;
    }
    len_result(Some(uri::unescape_to(src, dst)))
}

/// ngx.decode_args: decodes into the thread's scratch, lends the first `n`
/// arguments through `out`; returns how many were decoded.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `out` NULL or valid for
/// writes of `n` entries; `truncated` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_decode_args(
    src: *const u8,
    len: usize,
    out: *mut Header,
    n: c_int,
    max: c_int,
    truncated: *mut c_int,
) -> c_int {
    // SAFETY: forwarded caller contract.
    let src = unsafe { read_in(src, len) };
    ARGS.with_borrow_mut(|args| {
        let cut = args.decode(src, max);
        if !truncated.is_null() {
            // SAFETY: non-null and valid for a write (caller's contract).
            unsafe { *truncated = c_int::from(cut) };
        }
        // SAFETY: forwarded caller contract; the bytes stay in the
        // thread's scratch until the next call.
        unsafe { super::request::fill(out, n, args.iter()) };
        len_result(Some(args.len()))
    })
}

/// The length of ngx.quote_sql_str(src).
///
/// # Safety
/// `src` must be NULL or valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_quoted_sql_length(src: *const u8, len: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let src = unsafe { read_in(src, len) };
    len_result(Some(uri::quoted_sql_len(src)))
}

/// ngx.quote_sql_str into `dst`; bytes written, ERROR when too small.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `dlen` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_string_quote_sql_str(src: *const u8, len: usize, dst: *mut u8, dlen: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let (src, dst) = unsafe { (read_in(src, len), out_buf(dst, dlen)) };
    len_result(uri::quote_sql_to(src, dst))
}
