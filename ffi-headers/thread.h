/*
 * Light threads (lualib/resty/core/thread.lua: ngx.thread.spawn, wait,
 * kill). A thread is a coroutine with its own context, a child of the
 * context that spawned it, in the same run (a request's phase or a timer);
 * the core schedules the run's threads on the event loop.
 */
#ifndef HALO_FFI_THREAD_H
#define HALO_FFI_THREAD_H

#include <stdint.h>

/* Opens the new thread's context (*t), a child of the running context r,
   and returns HALO_FFI_AGAIN: the caller yields, the core runs the thread
   (the coroutine halo.runner's take_thread gives for t) until it first
   waits or ends, then resumes the caller. HALO_FFI_BAD_CONTEXT outside
   rewrite, access, content and timers. */
int halo_ffi_thread_spawn(uint64_t r, uint64_t *t);

/* HALO_FFI_OK when one of ts[0..n) has ended already, HALO_FFI_AGAIN after
   registering the wait (yield; the core resumes r when one ends),
   HALO_FFI_DECLINED when one is not a thread r spawned. */
int halo_ffi_thread_wait(uint64_t r, const uint64_t *ts, int n);

/* Kills thread t (its pending operation is cancelled, its coroutine
   dropped): HALO_FFI_OK, HALO_FFI_DONE when it has ended already,
   HALO_FFI_DECLINED when r did not spawn it. */
int halo_ffi_thread_kill(uint64_t r, uint64_t t);

/* ngx.on_abort: registers the run's callback (once): HALO_FFI_OK,
   HALO_FFI_DECLINED when lua_check_client_abort is off, HALO_FFI_BUSY on
   a second call, HALO_FFI_BAD_CONTEXT outside rewrite, access, content. */
int halo_ffi_thread_on_abort(uint64_t r);

/* Called by the callback's thread: HALO_FFI_AGAIN, the thread then waits
   (without keeping the run going) until the client closes its connection. */
int halo_ffi_thread_wait_abort(uint64_t r);

#endif
