/*
 * The request a Lua handler runs for (lualib/resty/core/request.lua,
 * output.lua, var.lua, response.lua, exit.lua).
 *
 * A handle names one Lua context: one run of one handler, through all its
 * waits (slot and generation in the worker's slab of contexts). Kept past
 * its run (in a global, say), or used from another request while its own
 * run waits, it gets HALO_FFI_NO_REQUEST, never another request.
 * Borrowed pointers returned here stay valid until the next call.
 */
#ifndef HALO_FFI_REQUEST_H
#define HALO_FFI_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* The running handler's request, or 0 outside a request (in a timer too). */
uint64_t halo_ffi_request_current(void);

/* The running context, with or without a request (a timer's), or 0
   outside any: for the APIs that work in timers (sleep, threads, sockets). */
uint64_t halo_ffi_request_context(void);

/* The running handler's phase: 1 rewrite, 2 access, 3 content, 4 log,
   5 header_filter, 6 body_filter, 7 set. Output, exit and sleep work in rewrite,
   access and content; status and headers also in header_filter; elsewhere
   they return HALO_FFI_BAD_CONTEXT. */
int halo_ffi_request_get_phase(uint64_t r);

/* The request's number in this worker (> 0), the key of ngx.ctx. */
double halo_ffi_request_id(uint64_t r);

/* ngx.ctx made a table for the request (or was assigned one): the core
   releases it when the request ends. */
int halo_ffi_request_keep_ctx(uint64_t r);

/* Appends to the response body (ngx.print / ngx.say); the head then counts
   as sent. HALO_FFI_DECLINED after ngx.eof. */
int halo_ffi_request_write(uint64_t r, const unsigned char *data, size_t len);

/* ngx.send_headers, ngx.headers_sent (1 or 0), ngx.eof. Status and headers
   set after the head counts as sent are logged and ignored, as OpenResty
   does (the head itself leaves with the first flush, or at the end). */
int halo_ffi_request_send_headers(uint64_t r);
int halo_ffi_request_headers_sent(uint64_t r);
int halo_ffi_request_eof(uint64_t r);

/* ngx.flush. In a content handler the output so far is sent (with the head,
   chunked, the first time): the call registers that and returns
   HALO_FFI_AGAIN, and the Lua side yields until the bytes are written; ngx.eof
   does the same once and ends the body. Where output is buffered until the
   handler ends (rewrite/access, a location with body_filter_by_lua*) both
   return HALO_FFI_OK. */
int halo_ffi_request_flush(uint64_t r);

/* The response status (0 until set), or a negative code. */
int halo_ffi_request_get_status(uint64_t r);

/* Sets the response status: a whole number in 100..999 (a double, so no
   value wraps on its way in). HALO_FFI_DECLINED otherwise. */
int halo_ffi_request_set_status(uint64_t r, double status);

/* Records ngx.exit(status); the Lua side then yields to end the handler.
   status: an HTTP status (100..999), 0, HALO_FFI_ERROR or HALO_FFI_DECLINED;
   HALO_FFI_DECLINED for anything else. */
int halo_ffi_request_exit(uint64_t r, double status);

/* The request method as sent. */
int halo_ffi_request_get_method(uint64_t r, const unsigned char **data, size_t *len);

/* The value of $name (HALO_FFI_DECLINED: unknown or unset variable). */
int halo_ffi_request_get_var(uint64_t r, const unsigned char *name, size_t len,
                             const unsigned char **value, size_t *value_len);

/* ngx.var.NAME = value (value NULL: empty): HALO_FFI_OK; HALO_FFI_DECLINED
   when no such variable exists; HALO_FFI_ERROR for a built-in that cannot
   change. `set` variables and $args are writable. */
int halo_ffi_request_set_var(uint64_t r, const unsigned char *name, size_t len,
                             const unsigned char *value, size_t value_len);

/* Sets a response header, replacing earlier values; value NULL clears it.
   '_' in the name becomes '-'; Content-Type sets the response's type.
   Header names and values from Lua (here, add_header, set_req_header): the
   name must be a token and the value may hold no NUL, else HALO_FFI_ERROR
   with *err pointing at a static message; CR and LF in the value are kept
   as %0D and %0A, so no value can start a header line of its own. */
int halo_ffi_request_set_header(uint64_t r, const unsigned char *name, size_t name_len,
                                const unsigned char *value, size_t value_len,
                                const char **err);

/* One request header, borrowed (valid until the handler yields or ends). */
typedef struct {
    const unsigned char *name;
    size_t name_len;
    const unsigned char *value;
    size_t value_len;
} halo_ffi_header_t;

/* The number of request headers. */
int halo_ffi_request_header_count(uint64_t r);

/* Fills out[0..max) with the request headers in order; returns how many.
   lower non-zero: names lowercased (copies valid until the next call). */
int halo_ffi_request_get_headers(uint64_t r, halo_ffi_header_t *out, int max, int lower);

/* Decodes the query arguments (as halo_ffi_string_decode_args: at most
   max of them, 0 = all; *truncated 1 when max cut the list) and fills
   out[0..n) with the first ones in order (value NULL for an argument
   without '='). Returns how many were decoded: when that is more than n,
   call again with room for them all. Valid until the next call. */
int halo_ffi_request_get_uri_args(uint64_t r, halo_ffi_header_t *out, int n, int max,
                                  int *truncated);

/* The response header `name` set so far ('_' as '-'; Content-Type too);
   HALO_FFI_DECLINED when not set. */
int halo_ffi_request_get_resp_header(uint64_t r, const unsigned char *name, size_t len,
                                     const unsigned char **value, size_t *value_len);

/* ngx.arg[i]: in body_filter_by_lua, i = 1 is the body; in set_by_lua, the
   directive's arguments (HALO_FFI_DECLINED past the last). ngx.arg[2] of the
   body filter is eof (1 or 0). HALO_FFI_BAD_CONTEXT in other phases. */
int halo_ffi_request_get_arg(uint64_t r, int i, const unsigned char **data, size_t *len);
int halo_ffi_request_get_arg_eof(uint64_t r);
int halo_ffi_request_set_arg_body(uint64_t r, const unsigned char *data, size_t len);
int halo_ffi_request_set_arg_eof(uint64_t r, int eof);

/* The same for an application/x-www-form-urlencoded request body;
   HALO_FFI_DECLINED when the body was not read, HALO_FFI_ERROR when it is in
   a temp file. */
int halo_ffi_request_get_post_args(uint64_t r, halo_ffi_header_t *out, int n, int max,
                                   int *truncated);

/* ngx.req.read_body: HALO_FFI_OK when there is nothing (left) to read;
   else HALO_FFI_AGAIN, and the Lua side yields until the body is in memory
   or, past client_body_buffer_size, in a temp file. A body that cannot be
   read (413, 400, 408) ends the request with that status. */
int halo_ffi_request_read_body(uint64_t r);

/* The temp file holding the body; HALO_FFI_DECLINED when it is in memory or
   was not read. */
int halo_ffi_request_get_body_file(uint64_t r, const unsigned char **data, size_t *len);

/* The request body once read, when in memory; HALO_FFI_DECLINED when the
   request has none (or it is empty), it was not read, or it is in a temp
   file. After ngx.req.read_body a request without a body has an empty
   one (which set_body_data and init_body may replace). */
int halo_ffi_request_get_body(uint64_t r, const unsigned char **data, size_t *len);

/* Rewriting the request body (ngx.req.set_body_data, set_body_file,
   init_body, append_body, finish_body), in any request phase, as
   lua-nginx-module allows. Each returns HALO_FFI_OK, or HALO_FFI_ERROR with
   *err / *err_len naming what lua-nginx-module raises (valid until the next
   call): "request body not read yet" before ngx.req.read_body (or
   lua_need_request_body), "request_body not initialized" for append and
   finish without init_body, and the file errors below. A new body replaces
   the old at once (a temp file of the old one is removed unless
   client_body_in_file_only on keeps it), and the Content-Length request
   header says its length, as get_headers(), $http_content_length,
   $content_length and subrequests see it. */

/* The body becomes data[0..len), in memory. */
int halo_ffi_request_set_body_data(uint64_t r, const unsigned char *data, size_t len,
                                   const unsigned char **err, size_t *err_len);

/* The body becomes the file path (as get_body_file then names it), removed
   at the end of the request when clean is non-zero. Errors:
   stat() "path" failed, open() "path" failed. */
int halo_ffi_request_set_body_file(uint64_t r, const unsigned char *path, size_t len,
                                   int clean, const unsigned char **err, size_t *err_len);

/* Starts a new, empty body (the old one goes now) with a buffer of size
   bytes: negative for client_body_buffer_size, 0 to write to a file from
   the first byte. */
int halo_ffi_request_init_body(uint64_t r, int64_t size,
                               const unsigned char **err, size_t *err_len);

/* Adds data[0..len) to the body init_body started: in memory while it fits
   the buffer, then in a new temp file under client_body_temp_path (removed
   after the request). "fail to write file" when that fails (the cause is
   in the error log). */
int halo_ffi_request_append_body(uint64_t r, const unsigned char *data, size_t len,
                                 const unsigned char **err, size_t *err_len);

/* Ends the body init_body started: it is the request's body from now on
   (get_body_data when in memory, get_body_file when in its temp file);
   append_body needs init_body again after. */
int halo_ffi_request_finish_body(uint64_t r, const unsigned char **err, size_t *err_len);

/* ngx.exec: records an internal redirect to uri ("/path?args" or "@name")
   with args appended; HALO_FFI_DECLINED for a uri not starting with / or @.
   The Lua side then yields, ending the handler. */
int halo_ffi_request_exec(uint64_t r, const unsigned char *uri, size_t uri_len,
                          const unsigned char *args, size_t args_len);

/* ngx.req.http_version() * 10 (10 or 11). */
int halo_ffi_request_http_version(uint64_t r);

/* ngx.req.start_time(): seconds since the epoch, with milliseconds. */
double halo_ffi_request_start_time(uint64_t r);

/* ngx.req.is_internal(): 1 after an internal redirect, else 0. */
int halo_ffi_request_is_internal(uint64_t r);

/* ngx.is_subrequest: 1 in a subrequest (ngx.location.capture), else 0. */
int halo_ffi_request_is_subrequest(uint64_t r);

/* The number of response headers set so far (Content-Type included). */
int halo_ffi_request_resp_header_count(uint64_t r);

/* Fills out[0..max) with the response headers set so far, Content-Type
   first; returns how many. Valid until the next call. */
int halo_ffi_request_get_resp_headers(uint64_t r, halo_ffi_header_t *out, int max, int lower);

/* ngx.req.set_header (value non-NULL: replaces every header of the name) and
   ngx.req.clear_header (value NULL); '_' in the name becomes '-'. */
int halo_ffi_request_set_req_header(uint64_t r, const unsigned char *name, size_t len,
                                    const unsigned char *value, size_t value_len,
                                    const char **err);

/* ngx.req.add_header (lualib/ngx/req.lua): one more request header of the
   name, after those the request has; '_' in the name becomes '-'. */
int halo_ffi_request_add_req_header(uint64_t r, const unsigned char *name, size_t len,
                                    const unsigned char *value, size_t value_len,
                                    const char **err);

/* ngx.req.set_method with a method name ("POST"); HALO_FFI_DECLINED for
   another name. */
int halo_ffi_request_set_method(uint64_t r, const unsigned char *name, size_t len);

/* ngx.req.set_uri without jump: $uri becomes uri (HALO_FFI_DECLINED unless
   it starts with '/'). */
int halo_ffi_request_set_uri(uint64_t r, const unsigned char *uri, size_t len);

/* ngx.req.raw_header(): the request head as sent; HALO_FFI_DECLINED when it
   was not valid UTF-8. */
int halo_ffi_request_raw_header(uint64_t r, const unsigned char **data, size_t *len);

/* One more value of a response header (after set_header cleared it):
   ngx.header.X = { "a", "b" }. */
int halo_ffi_request_add_header(uint64_t r, const unsigned char *name, size_t name_len,
                                const unsigned char *value, size_t value_len,
                                const char **err);

/* ngx.sleep: registers a wait of `seconds` and returns HALO_FFI_AGAIN, after
   which the Lua side yields; HALO_FFI_DECLINED for a negative or NaN time. */
int halo_ffi_request_sleep(uint64_t r, double seconds);

#endif
