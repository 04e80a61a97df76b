/*
 * ngx.escape_uri, ngx.unescape_uri, ngx.decode_args, ngx.quote_sql_str
 * (lualib/resty/core/string.lua; ngx.encode_args is Lua over the escaping).
 *
 * Pure functions of their input: no request needed. Output goes into the
 * caller's buffer (dst, dlen bytes of room); the result is the bytes
 * written, or HALO_FFI_ERROR when dst is too small (ask the *_length
 * function first).
 */
#ifndef HALO_FFI_STRING_H
#define HALO_FFI_STRING_H

#include <stddef.h>
#include "request.h"   /* halo_ffi_header_t */

/* The length of src escaped as type: nginx's NGX_ESCAPE_* kinds, 0 URI,
   1 args, 2 URI component (ngx.escape_uri's default), 3 HTML, 4 refresh,
   5 memcached, 6 mail auth. HALO_FFI_DECLINED for another type. */
int halo_ffi_string_escaped_length(const unsigned char *src, size_t len, int type);

/* Escapes src as type into dst ("%XX", upper-case hex). */
int halo_ffi_string_escape_uri(const unsigned char *src, size_t len, int type,
                               unsigned char *dst, size_t dlen);

/* Unescapes a URI component into dst (never longer than src): "%XX" with
   two hex digits becomes the byte, '+' a space, anything else stays. */
int halo_ffi_string_unescape_uri(const unsigned char *src, size_t len,
                                 unsigned char *dst, size_t dlen);

/* Decodes "a=1&b&c=%20" as ngx.decode_args: at most max arguments (0 or
   negative: all; *truncated 1 when max cut the list), fills out[0..n) with
   the first ones (value NULL for a bare name) and returns how many were
   decoded; when that is more than n, call again with room for them all.
   The strings stay valid until the next call. */
int halo_ffi_string_decode_args(const unsigned char *src, size_t len,
                                halo_ffi_header_t *out, int n, int max, int *truncated);

/* The length of ngx.quote_sql_str(src): quotes and escapes included. */
int halo_ffi_string_quoted_sql_length(const unsigned char *src, size_t len);

/* src in single quotes with NUL, \b, \t, \n, \r, Ctrl-Z, \, ' and "
   backslash-escaped (MySQL's escapes); bytes >= 0x80 are kept. */
int halo_ffi_string_quote_sql_str(const unsigned char *src, size_t len,
                                  unsigned char *dst, size_t dlen);

#endif
