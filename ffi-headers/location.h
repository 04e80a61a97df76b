/*
 * Subrequests (lualib/resty/core/location.lua: ngx.location.capture and
 * capture_multi). Each subrequest runs the target location's phases in the
 * worker as a request of its own, sharing the parent's connection and
 * request headers; its response is kept in memory. The caller yields while
 * they run (concurrently) and reads their outcomes after the resume.
 */
#ifndef HALO_FFI_LOCATION_H
#define HALO_FFI_LOCATION_H

#include <stddef.h>
#include <stdint.h>

/* A borrowed string. */
typedef struct {
    const unsigned char *data;
    size_t len;
} halo_ffi_str_t;

/* The subrequest's copy_all_vars, share_all_vars, always_forward_body and
   ctx options (flags). */
enum {
    HALO_FFI_CAPTURE_COPY_VARS = 1,
    HALO_FFI_CAPTURE_SHARE_VARS = 2,
    HALO_FFI_CAPTURE_FORWARD_BODY = 4,
    HALO_FFI_CAPTURE_CTX = 8
};

/* One subrequest: the URI (may carry ?args), the args option already
   encoded (data NULL: none), the body option (data NULL: none), the vars
   option as nvars (name, value) pairs, the method (ngx.HTTP_*), flags. */
typedef struct {
    halo_ffi_str_t uri;
    halo_ffi_str_t args;
    halo_ffi_str_t body;
    const halo_ffi_str_t *vars;
    int nvars;
    int method;
    int flags;
} halo_ffi_subrequest_t;

/* Starts the n subrequests of srs (everything is copied) and returns
   HALO_FFI_AGAIN: the caller yields until all have ended. ids[0..n) get
   the subrequests' request numbers (ngx.ctx keys, for the ctx option).
   HALO_FFI_ERROR with *err set (valid until the next call): an unsafe URI,
   an unsupported method, too deep a nesting. HALO_FFI_BAD_CONTEXT outside
   rewrite, access and content. */
int halo_ffi_location_capture(uint64_t r, const halo_ffi_subrequest_t *srs, int n,
                              uint64_t *ids, const char **err);

/* After the resume: subrequest i's status, truncated flag, body (borrowed
   until halo_ffi_location_finish), Content-Length as nginx reports it in
   the header table (-1: none) and number of headers. HALO_FFI_DECLINED
   when there is no outcome i. */
int halo_ffi_location_result(uint64_t r, int i, int *status, int *truncated,
                             const unsigned char **body, size_t *body_len,
                             int64_t *content_length, int *nheaders);

/* Header j of subrequest i, borrowed as above. */
int halo_ffi_location_header(uint64_t r, int i, int j, halo_ffi_str_t *name,
                             halo_ffi_str_t *value);

/* The outcomes were read: share_all_vars copies the subrequests' variables
   into the parent; the outcomes are dropped. */
int halo_ffi_location_finish(uint64_t r);

#endif
