/*
 * ngx.timer.at / ngx.timer.every (lualib/resty/core/timer.lua). Lua keeps
 * each timer's callback and arguments by the number the core gives; the
 * core waits for the delay on the event loop and runs the callback in a
 * timer context of its own (no request: request APIs answer
 * HALO_FFI_BAD_CONTEXT there).
 */
#ifndef HALO_FFI_TIMER_H
#define HALO_FFI_TIMER_H

#include <stdint.h>

/* Creates a timer firing after `delay` seconds (every `delay` seconds if
   `every`): HALO_FFI_OK with its number in *id; HALO_FFI_BAD_CONTEXT
   outside a worker (init_by_lua); HALO_FFI_DECLINED when the worker is
   exiting; HALO_FFI_BUSY when lua_max_pending_timers are pending. */
int halo_ffi_timer_at(double delay, int every, uint32_t *id);

/* In a timer context r: its number in *id; returns 1 when the run is
   premature (the worker is stopping), 0 when not, HALO_FFI_NO_REQUEST
   outside a timer context. */
int halo_ffi_timer_current(uint64_t r, uint32_t *id);

/* ngx.timer.running_count and ngx.timer.pending_count. */
int halo_ffi_timer_running_count(void);
int halo_ffi_timer_pending_count(void);

#endif
