/*
 * halo C ABI: conventions shared by every ffi-headers/<module>.h.
 *
 * These headers are the single source of truth between the Rust core
 * (core/src/ffi/<module>.rs defines each function) and the Lua layer
 * (lualib/ declares them with ffi.cdef through resty.core.base.cdef, which
 * feeds LuaJIT this very text with the preprocessor lines removed).
 * So: plain C declarations only; no macros, no #if around declarations.
 *
 * Conventions:
 *   - every function is named halo_ffi_<module>_<op> and exported from the
 *     halo executable (tests/ffi_exports.rs checks each one);
 *   - int results use the codes below; non-negative values may carry data;
 *   - variable-size output goes into a caller buffer (unsigned char *buf,
 *     size_t len) and the function returns the bytes written, or
 *     HALO_FFI_ERROR when the buffer is too small; or it is a borrowed
 *     pointer + length the caller copies at once;
 *   - input strings are (const char *, size_t) and never kept;
 *   - at most 8 arguments (pass a struct pointer beyond that).
 */
#ifndef HALO_FFI_BASE_H
#define HALO_FFI_BASE_H

#include <stddef.h>
#include <stdint.h>

enum {
    HALO_FFI_OK          = 0,
    HALO_FFI_ERROR       = -1,
    HALO_FFI_AGAIN       = -2,
    HALO_FFI_BUSY        = -3,
    HALO_FFI_DONE        = -4,
    HALO_FFI_DECLINED    = -5,
    HALO_FFI_ABORT       = -6,
    HALO_FFI_NO_REQUEST  = -100,
    HALO_FFI_BAD_CONTEXT = -101
};

#endif
