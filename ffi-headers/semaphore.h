/*
 * ngx.semaphore (lualib/ngx/semaphore.lua). The core keeps the semaphores
 * of the worker, shared by all its requests, timers and light threads; Lua
 * holds each one as a halo_ffi_semaphore_t whose finalizer (ffi.gc) frees
 * it. A wait that must block yields only the calling coroutine.
 */
#ifndef HALO_FFI_SEMAPHORE_H
#define HALO_FFI_SEMAPHORE_H

#include <stdint.h>

typedef struct {
    uint64_t id;
} halo_ffi_semaphore_t;

/* A new semaphore with n resources in sem->id: HALO_FFI_OK;
   HALO_FFI_DECLINED when n < 0 or sem is NULL. */
int halo_ffi_semaphore_new(int n, halo_ffi_semaphore_t *sem);

/* Frees the semaphore (the finalizer: sem is the object Lua held). */
void halo_ffi_semaphore_free(const halo_ffi_semaphore_t *sem);

/* Adds n (>= 1) resources: the first n waiters, in the order they came,
   each get one; the rest adds to the count. HALO_FFI_OK; HALO_FFI_DECLINED
   when sem names no semaphore. */
int halo_ffi_semaphore_post(uint64_t sem, int n);

/* The resources left minus the waiters queued (negative while some wait). */
int halo_ffi_semaphore_count(uint64_t sem);

/* In the running context r: takes a resource, HALO_FFI_OK at once when one
   is free; else HALO_FFI_DECLINED when wait_ms is 0 (a timeout), else
   queues the context and returns HALO_FFI_AGAIN: the caller yields and,
   once resumed, reads the outcome with halo_ffi_semaphore_wait_result.
   HALO_FFI_BAD_CONTEXT outside rewrite, access, content and timers;
   HALO_FFI_ERROR when sem names no semaphore. */
int halo_ffi_semaphore_wait(uint64_t r, uint64_t sem, int wait_ms);

/* After the resume of a wait that returned HALO_FFI_AGAIN: HALO_FFI_OK
   when the resource was granted, HALO_FFI_DECLINED when the wait timed
   out; HALO_FFI_NO_REQUEST when r waited for no semaphore. */
int halo_ffi_semaphore_wait_result(uint64_t r);

#endif
