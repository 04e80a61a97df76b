//! What a worker process sets on itself before it serves, as nginx's
//! `ngx_worker_process_init` does: the environment `env` allows and
//! `worker_rlimit_nofile`. The master (and `init_by_lua*`, run there) keeps
//! the whole environment.

use crate::conf::Config;
use crate::log::Level;

/// Apply `cfg`'s `env` and `worker_rlimit_nofile` to this (just forked, or
/// single) process.
pub fn apply(cfg: &Config) {
    restrict_env(cfg);
    if let Some(n) = cfg.worker_rlimit_nofile {
        let lim = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
        // SAFETY: a plain system call on a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            crate::error_log!(Level::Alert, None, "setrlimit(RLIMIT_NOFILE, {n}) failed ({}: {e})", e.raw_os_error().unwrap_or(0));
        }
    }
}

/// Keep TZ and the variables `env` names, set the `env NAME=value` ones and
/// drop the rest, so `os.getenv` in a handler sees what nginx's would.
fn restrict_env(cfg: &Config) {
    let keep = |k: &std::ffi::OsStr| k == "TZ" || cfg.env.iter().any(|e| e.value.is_none() && k == e.name.as_str());
    for (k, _) in std::env::vars_os() {
        if !keep(&k) {
            std::env::remove_var(k);
        }
    }
    for e in &cfg.env {
        if let Some(v) = &e.value {
            std::env::set_var(&e.name, v);
        }
    }
}
