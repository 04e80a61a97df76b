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

/* ngx.process (lualib/ngx/process.lua): nginx's process type number (1
   master, 3 worker, 99 privileged agent), the master's pid (its own in the
   master), a graceful exit of this process (as SIGQUIT), and the request
   for a privileged agent (init_by_lua; connections is ignored). */
int halo_ffi_worker_process_type(void);
int halo_ffi_worker_master_pid(void);
void halo_ffi_worker_signal_graceful_exit(void);
void halo_ffi_worker_enable_privileged_agent(unsigned int connections);

#endif
