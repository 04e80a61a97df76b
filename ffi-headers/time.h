/*
 * ngx.time, ngx.now, ngx.today, ... (lualib/resty/core/time.lua).
 *
 * Times are read from the worker's clock cache, refreshed once per event
 * loop iteration (or by halo_ffi_time_update_time). Seconds cross as double:
 * exact up to 2^53 and, unlike int64_t, returned to Lua without boxing a
 * cdata when the caller runs interpreted.
 */
#ifndef HALO_FFI_TIME_H
#define HALO_FFI_TIME_H

#include <stddef.h>

/* Cached time in seconds with millisecond precision (ngx.now). */
double halo_ffi_time_now(void);

/* Cached time in whole seconds (ngx.time). */
double halo_ffi_time_time(void);

/* Refreshes the cache from the system clock (ngx.update_time). */
void halo_ffi_time_update_time(void);

/* Local date "yyyy-mm-dd" (10 bytes). Returns bytes written or HALO_FFI_ERROR. */
int halo_ffi_time_today(unsigned char *buf, size_t len);

/* Local "yyyy-mm-dd hh:mm:ss" (19 bytes). Returns bytes written or HALO_FFI_ERROR. */
int halo_ffi_time_localtime(unsigned char *buf, size_t len);

/* UTC "yyyy-mm-dd hh:mm:ss" (19 bytes). Returns bytes written or HALO_FFI_ERROR. */
int halo_ffi_time_utctime(unsigned char *buf, size_t len);

/* "Thu, 01 Jan 1970 00:00:00 GMT" for sec (29 bytes; clamped to 1970..9999). */
int halo_ffi_time_http_time(double sec, unsigned char *buf, size_t len);

/* "Thu, 01-Jan-70 00:00:00 GMT" for sec (2-digit year up to 2037, as nginx;
   at most 29 bytes). Returns bytes written or HALO_FFI_ERROR. */
int halo_ffi_time_cookie_time(double sec, unsigned char *buf, size_t len);

/* Parses an HTTP date (RFC 9110's three formats) into *sec.
   Returns HALO_FFI_OK, or HALO_FFI_DECLINED when s is not a valid date. */
int halo_ffi_time_parse_http_time(const char *s, size_t len, double *sec);

#endif
