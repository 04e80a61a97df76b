/*
 * ngx.log and print at process level (lualib/resty/core/log.lua).
 *
 * Levels are nginx's numbers: STDERR 0, EMERG 1, ALERT 2, CRIT 3, ERR 4,
 * WARN 5, NOTICE 6, INFO 7, DEBUG 8 (ngx.STDERR .. ngx.DEBUG).
 */
#ifndef HALO_FFI_LOG_H
#define HALO_FFI_LOG_H

#include <stddef.h>

/* The error log's threshold as a level number: a message of level L is
   written when L <= this value. */
int halo_ffi_log_level(void);

/* Writes msg (formatted by the caller, e.g. "[lua] a.lua:3: hi") to the error
   log at level. Returns HALO_FFI_OK, or HALO_FFI_ERROR for a bad level. */
int halo_ffi_log_write(int level, const char *msg, size_t len);

#endif
