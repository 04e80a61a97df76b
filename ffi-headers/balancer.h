/*
 * ngx.balancer (lualib/ngx/balancer.lua): what balancer_by_lua* sets for
 * the proxy's next try. Only in balancer_by_lua* (elsewhere
 * HALO_FFI_BAD_CONTEXT).
 */
#ifndef HALO_FFI_BALANCER_H
#define HALO_FFI_BALANCER_H

#include <stddef.h>
#include <stdint.h>

/* The try's peer: an IPv4 or IPv6 address (no name) and a port.
   HALO_FFI_ERROR for anything else (errmsg in *err). */
int halo_ffi_balancer_set_current_peer(uint64_t r, const unsigned char *addr, size_t len, int port, const char **err);

/* Tries after the current one (the total is capped by nothing else). */
int halo_ffi_balancer_set_more_tries(uint64_t r, int count);

/* The last try's outcome: 0 none (the first try), 1 "failed", 2 "next";
   its status in *status. */
int halo_ffi_balancer_get_last_failure(uint64_t r, int *status);

/* Timeouts in seconds for the tries; a negative one is left as it is. */
int halo_ffi_balancer_set_timeouts(uint64_t r, double connect, double send, double read);

#endif
