//! `halo_ffi_base64_*` (ffi-headers/base64.h) over [`crate::api::base64`].

use std::os::raw::c_int;

use super::{len_result, out_buf, read_in, DECLINED, ERROR};
use crate::api::base64::{self as b64, Alpha};

/// Encodes `src` into `dst` (flags: 1 no padding, 2 URL alphabet); bytes
/// written, ERROR when `dst` is too small.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `dlen` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_base64_encode(src: *const u8, len: usize, flags: c_int, dst: *mut u8, dlen: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let (src, dst) = unsafe { (read_in(src, len), out_buf(dst, dlen)) };
    let (alpha, pad) = match flags {
        0 => (Alpha::Standard, true),
        1 => (Alpha::Standard, false),
        2 => (Alpha::Url, false),
        _ => return ERROR,
    };
    len_result(b64::encode_to(src, alpha, pad, dst))
}

/// Decodes `src` into `dst` (mode 0 standard, 1 URL, 2 MIME); bytes
/// written, DECLINED for invalid input, ERROR when `dst` is too small.
///
/// # Safety
/// `src` NULL or valid for reads of `len` bytes; `dst` NULL or valid for
/// writes of `dlen` bytes, not overlapping `src`.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_base64_decode(src: *const u8, len: usize, mode: c_int, dst: *mut u8, dlen: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let (src, dst) = unsafe { (read_in(src, len), out_buf(dst, dlen)) };
    if dst.len() < b64::decoded_len_max(src.len()) {
        return ERROR;
    }
    let decoded = match mode {
        0 => b64::decode_to(src, Alpha::Standard, dst),
        1 => b64::decode_to(src, Alpha::Url, dst),
        2 => b64::decode_mime_to(src, dst),
        _ => return ERROR,
    };
    match decoded {
        Some(n) => len_result(Some(n)),
        None => DECLINED,
    }
}
