/*
 * Cosockets (lualib/resty/core/socket.lua: ngx.socket.tcp and its
 * methods). A socket belongs to the run of the context that made it (a
 * request's handler or a timer, with their light threads): used from
 * another, a call returns HALO_FFI_NO_REQUEST (Lua raises "bad request");
 * the run's end closes it.
 *
 * Calls that may wait return HALO_FFI_AGAIN: the caller yields and, once
 * resumed, makes the same call again with the same arguments, which then
 * gives the outcome. Failures return HALO_FFI_ERROR; the error text
 * ("timeout", "closed", "connection refused", ...) is then lent by
 * halo_ffi_socket_errmsg. Cosockets work in rewrite, access, content and
 * timers; elsewhere calls return HALO_FFI_BAD_CONTEXT.
 */
#ifndef HALO_FFI_SOCKET_H
#define HALO_FFI_SOCKET_H

#include <stddef.h>
#include <stdint.h>

/* The text of the last HALO_FFI_ERROR (its length; *data lent until the
   next call). */
int halo_ffi_socket_errmsg(const unsigned char **data);

/* A new socket (*s) for the running context r: TCP, or UDP when
   datagram (ngx.socket.udp: connect sets the peer, kind 4 receives one
   datagram, no pools). */
int halo_ffi_socket_tcp_new(uint64_t r, int datagram, uint64_t *s);

/* ngx.req.socket(raw): a socket (*s) over the request's client
   connection: it reads the body (HALO_FFI_ERROR "no body", "request body
   already exists", "chunked request bodies not supported yet"), or, raw,
   the connection itself both ways (the handler then owns the wire; the
   connection closes after the request). */
int halo_ffi_socket_req(uint64_t r, int raw, uint64_t *s);

/* Connects to host:port, or to the unix socket path `host` when port < 0,
   reusing an idle connection of pool `pool` (NULL: "host:port") first. */
int halo_ffi_socket_tcp_connect(uint64_t r, uint64_t s, const unsigned char *host, size_t host_len,
                                int port, const unsigned char *pool, size_t pool_len);

/* connect's pool_size and backlog options for the socket's next connect:
   with backlog >= 0 the pool keeps at most pool_size connections open (in
   use or idle; pool_size <= 0: lua_socket_pool_size) and queues at most
   backlog connects beyond them ("too many waiting connect operations"). */
int halo_ffi_socket_tcp_pool_opts(uint64_t r, uint64_t s, int pool_size, int backlog);

/* Sends all of data: the byte count once done. */
int halo_ffi_socket_tcp_send(uint64_t r, uint64_t s, const unsigned char *data, size_t len);

/* Receives by kind: 0 a line (*l), 1 everything until the peer closes
   (*a), 2 exactly n bytes, 3 whatever is there, at most n (receiveany),
   4 the next datagram, at most n bytes (UDP).
   HALO_FFI_OK: *data/*len lent until the socket's next call;
   HALO_FFI_ERROR: the error (errmsg) and the partial data in *data/*len. */
int halo_ffi_socket_tcp_receive(uint64_t r, uint64_t s, int kind, size_t n,
                                const unsigned char **data, size_t *len);

/* receiveuntil's iterator: the bytes before pattern (with it if
   inclusive), at most `size` per call when size >= 0. HALO_FFI_DONE: the
   pattern was reached by the last chunk (the iterator returns nil). Else
   as halo_ffi_socket_tcp_receive. */
int halo_ffi_socket_tcp_receive_until(uint64_t r, uint64_t s, const unsigned char *pattern, size_t pattern_len,
                                      int inclusive, long size, const unsigned char **data, size_t *len);

/* Timeouts in milliseconds; a negative one is left as it is. */
int halo_ffi_socket_tcp_settimeouts(uint64_t r, uint64_t s, double connect_ms, double send_ms, double read_ms);

/* Puts the connection into its pool (timeout_ms < 0 and size <= 0: the
   lua_socket_keepalive_timeout and lua_socket_pool_size defaults). */
int halo_ffi_socket_tcp_setkeepalive(uint64_t r, uint64_t s, double timeout_ms, int size);

/* Closes the connection; HALO_FFI_ERROR ("closed") when there is none. */
int halo_ffi_socket_tcp_close(uint64_t r, uint64_t s);

/* How often the connection came from a pool (>= 0), its fd (>= 0), or
   HALO_FFI_DECLINED when not connected. */
int halo_ffi_socket_tcp_reused(uint64_t r, uint64_t s);
int halo_ffi_socket_tcp_fd(uint64_t r, uint64_t s);

/* setsockopt: "keepalive", "reuseaddr", "tcp-nodelay", "sndbuf", "rcvbuf". */
int halo_ffi_socket_tcp_setoption(uint64_t r, uint64_t s, const unsigned char *name, size_t len, int value);

#endif
