/*
 * ngx.worker.* (lualib/resty/core/worker.lua): this process's place among
 * the workers, set by the core when the worker starts.
 */
#ifndef HALO_FFI_WORKER_H
#define HALO_FFI_WORKER_H

/* Worker number 0..count-1, or -1 outside a worker (ngx.worker.id() = nil). */
int halo_ffi_worker_id(void);

/* Number of worker processes (worker_processes). */
int halo_ffi_worker_count(void);

/* This process's pid. */
int halo_ffi_worker_pid(void);

/* 1 once the worker is shutting down (quit/reload), else 0. */
int halo_ffi_worker_exiting(void);

#endif
