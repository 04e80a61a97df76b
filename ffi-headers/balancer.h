/*
 * ngx.balancer (lualib/ngx/balancer.lua): what balancer_by_lua* sets for
 * the proxy's next try. Only in balancer_by_lua* (elsewhere
 * HALO_FFI_BAD_CONTEXT).
 */
#ifndef HALO_FFI_BALANCER_H
#define HALO_FFI_BALANCER_H

#include <stddef.h>
#include <stdint.h>

/* The try's peer: an IPv4 or IPv6 address (no name) and a port, and the
   keep-alive pool enable_keepalive puts its connection in: pool (NULL:
   the block's own) of pool_size idle connections (0: balancer_keepalive).
   HALO_FFI_ERROR for anything else (errmsg in *err). */
int halo_ffi_balancer_set_current_peer(uint64_t r, const unsigned char *addr, size_t len, int port, const unsigned char *pool, size_t pool_len, int pool_size, const char **err);

/* Keep the try's connection after the response: idle for timeout seconds
   at most (0: no limit), for max_requests requests (0: no limit).
   HALO_FFI_ERROR "no current peer set" before set_current_peer. */
int halo_ffi_balancer_enable_keepalive(uint64_t r, double timeout, unsigned int max_requests, const char **err);

/* Tries after the current one (the total is capped by nothing else). */
int halo_ffi_balancer_set_more_tries(uint64_t r, int count);

/* The last try's outcome: 0 none (the first try), 1 "failed", 2 "next";
   its status in *status. */
int halo_ffi_balancer_get_last_failure(uint64_t r, int *status);

/* Timeouts in seconds for the tries; a negative one is left as it is. */
int halo_ffi_balancer_set_timeouts(uint64_t r, double connect, double send, double read);

#endif
