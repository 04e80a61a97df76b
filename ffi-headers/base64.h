/*
 * ngx.encode_base64, ngx.decode_base64, ngx.decode_base64mime
 * (lualib/resty/core/base64.lua) and ngx.base64's url variants
 * (lualib/ngx/base64.lua). Output goes into the caller's buffer (dst, dlen
 * bytes of room); results are the bytes written, or HALO_FFI_ERROR when
 * dst is too small.
 */
#ifndef HALO_FFI_BASE64_H
#define HALO_FFI_BASE64_H

#include <stddef.h>

/* Encodes src: flags 0 standard with padding, 1 standard without, 2 the
   URL-safe alphabet (never padded). Needs 4 * ceil(len / 3) bytes. */
int halo_ffi_base64_encode(const unsigned char *src, size_t len, int flags,
                           unsigned char *dst, size_t dlen);

/* Decodes src as nginx does: mode 0 standard, 1 URL-safe, 2 MIME (standard,
   bytes outside the alphabet skipped). Decoding stops at the first '=';
   padding is optional. HALO_FFI_DECLINED for invalid input. Needs
   3 * ceil(len / 4) bytes. */
int halo_ffi_base64_decode(const unsigned char *src, size_t len, int mode,
                           unsigned char *dst, size_t dlen);

#endif
