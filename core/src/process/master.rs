//! The master process: forks the workers (and the privileged agent when
//! init_by_lua enabled it), respawns one that dies, reloads
//! on SIGHUP, stops on SIGQUIT (gracefully) or SIGTERM/SIGINT (fast), and
//! passes SIGUSR1 (reopen logs) on. It stays single-threaded so that fork
//! is safe, and reads its signals synchronously with sigtimedwait.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conf::{self, Config};
use crate::log::Level;

use super::listen::{self, Listener};
use super::signals;
use super::worker;
use crate::lua::handler::LuaHandlers;

struct WorkerProc {
    pid: i32,
    /// The worker number; None for the privileged agent.
    id: Option<usize>,
    /// The configuration generation it serves.
    generation: u64,
}

/// Everything the master owns.
pub struct Master {
    cfg: Arc<Config>,
    listeners: Vec<Listener>,
    /// The workers and the privileged agent, of every generation still alive.
    workers: Vec<WorkerProc>,
    generation: u64,
    /// init_by_lua of the current configuration enabled the privileged agent.
    agent: bool,
    globals: String,
    /// The Lua VM with init_by_lua run, which every worker inherits.
    lua: Option<LuaHandlers>,
}

/// What nginx calls the process in its log lines.
fn proc_name(id: Option<usize>) -> &'static str {
    if id.is_some() {
        "worker process"
    } else {
        "privileged agent process"
    }
}

/// Fork one worker serving `cfg` (`id` None: the privileged agent, which
/// gets no listening sockets). Returns the child's pid.
fn spawn_worker(cfg: &Arc<Config>, listeners: &[Listener], id: Option<usize>, lua: &mut Option<LuaHandlers>) -> std::io::Result<i32> {
    let count = cfg.worker_processes;
    let fds: Vec<_> = match id {
        Some(id) => listeners
            .iter()
            .flat_map(|l| l.fds_for(id, count).into_iter().map(move |fd| (fd, l.conf.addr)))
            .collect(),
        None => Vec::new(),
    };
    // SAFETY: the master is single-threaded (no locks held by other
    // threads can be inherited); the child only runs the worker and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        // The child's copy of the master's VM becomes the worker's.
        let Some(lua) = lua.take() else { std::process::exit(2) };
        if id.is_none() {
            // The agent serves no clients: it closes the listening sockets
            // (nginx's ngx_close_listening_sockets in the agent).
            for s in listeners.iter().flat_map(|l| l.sockets.iter()) {
                // SAFETY: this child's copy of a listening fd, never used in it.
                unsafe { libc::close(s.as_raw_fd()) };
            }
        }
        let code = worker::run(cfg.clone(), fds, id, count, lua);
        std::process::exit(code);
    }
    Ok(pid)
}

impl Master {
    pub fn new(cfg: Config, listeners: Vec<Listener>, globals: String, lua: LuaHandlers) -> Master {
        // init_by_lua ran in prepare_lua, just before.
        let agent = crate::ffi::worker::privileged_agent_wanted();
        Master { cfg: Arc::new(cfg), listeners, workers: Vec::new(), generation: 0, agent, globals, lua: Some(lua) }
    }

    /// Start the workers and, if enabled, the privileged agent.
    fn start_workers(&mut self) {
        let agent = self.agent.then_some(None);
        for id in (0..self.cfg.worker_processes).map(Some).chain(agent) {
            self.spawn(id);
        }
    }

    fn spawn(&mut self, id: Option<usize>) {
        let name = proc_name(id);
        match spawn_worker(&self.cfg, &self.listeners, id, &mut self.lua) {
            Ok(pid) => {
                crate::error_log!(Level::Notice, None, "start {name} {pid}");
                self.workers.push(WorkerProc { pid, id, generation: self.generation });
            }
            Err(e) => crate::error_log!(Level::Alert, None, "fork() failed while spawning \"{name}\" ({e})"),
        }
    }

    fn signal_all(&self, sig: libc::c_int, generation: Option<u64>) {
        for w in &self.workers {
            if generation.is_none_or(|g| g == w.generation) {
                let _ = signals::kill(w.pid, sig);
            }
        }
    }

    /// Reap exited children; respawn current-generation workers that died
    /// unless `stopping`.
    fn reap(&mut self, stopping: bool) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else { continue };
            let w = self.workers.remove(pos);
            let abnormal = libc::WIFSIGNALED(status) || libc::WEXITSTATUS(status) != 0;
            let name = proc_name(w.id);
            if libc::WIFSIGNALED(status) {
                crate::error_log!(Level::Alert, None, "{name} {pid} exited on signal {}", libc::WTERMSIG(status));
            } else {
                crate::error_log!(Level::Notice, None, "{name} {pid} exited with code {}", libc::WEXITSTATUS(status));
            }
            if abnormal && !stopping && w.generation == self.generation {
                self.spawn(w.id);
            }
        }
    }

    /// Re-read the config; on success start new workers and retire the old
    /// ones gracefully. The listening sockets are kept, so no connection
    /// waiting to be accepted is lost.
    fn reload(&mut self) {
        let cfg = match conf::build::load(&self.cfg.prefix, &self.cfg.conf_path, &self.globals) {
            Ok(c) => c,
            Err(e) => {
                crate::error_log!(Level::Emerg, None, "{e}");
                return;
            }
        };
        for n in &cfg.notices {
            crate::error_log!(Level::Notice, None, "{n}");
        }
        // A fresh VM for the new configuration, init_by_lua run again.
        // Until the new workers run, a respawned old one needs the old zones.
        let zones = crate::shdict::current();
        let lua = match prepare_lua(&cfg) {
            Ok(l) => l,
            Err(e) => {
                crate::error_log!(Level::Emerg, None, "{e}");
                crate::shdict::restore(zones);
                return;
            }
        };
        let agent = crate::ffi::worker::privileged_agent_wanted();
        let mut old = std::mem::take(&mut self.listeners);
        let listeners = match listen::open_all(&cfg.http.listens, cfg.worker_processes, &mut old) {
            Ok(l) => l,
            Err(e) => {
                crate::error_log!(Level::Emerg, None, "{e}");
                // Keep serving with the old sockets, config and zones.
                self.listeners = old;
                crate::shdict::restore(zones);
                return;
            }
        };
        if cfg.error_log.path != self.cfg.error_log.path || cfg.error_log.level != self.cfg.error_log.level {
            if let Err(e) = crate::log::error::init(&cfg.error_log.path, cfg.error_log.level) {
                crate::error_log!(Level::Alert, None, "could not open error log {:?} ({e})", cfg.error_log.path);
            }
        }
        // Sockets no longer configured close here; old workers hold their own copies.
        drop(old);
        self.listeners = listeners;
        self.cfg = Arc::new(cfg);
        self.lua = Some(lua);
        // The new configuration's init_by_lua decides whether an agent runs.
        self.agent = agent;
        let retired = self.generation;
        self.generation += 1;
        self.start_workers();
        self.signal_all(libc::SIGQUIT, Some(retired));
    }

    /// The master's loop; returns the process exit code.
    pub fn run(mut self) -> i32 {
        self.start_workers();
        let mut stopping: Option<Instant> = None;
        loop {
            let got = signals::wait(500);
            if let Some((sig, from)) = got {
                if sig != libc::SIGCHLD {
                    crate::error_log!(Level::Notice, None, "signal {sig} ({}) received from {from}", signal_name(sig));
                }
            }
            let sig = got.map(|(s, _)| s);
            match sig {
                Some(libc::SIGCHLD) | None => {}
                Some(libc::SIGHUP) if stopping.is_none() => self.reload(),
                Some(libc::SIGQUIT) if stopping.is_none() => {
                    self.signal_all(libc::SIGQUIT, None);
                    stopping = Some(Instant::now() + Duration::from_secs(3600));
                }
                Some(libc::SIGTERM) | Some(libc::SIGINT) => {
                    self.signal_all(libc::SIGTERM, None);
                    let soon = Instant::now() + Duration::from_secs(5);
                    stopping = Some(stopping.map_or(soon, |s| s.min(soon)));
                }
                Some(libc::SIGUSR1) => {
                    let _ = crate::log::error::reopen();
                    self.signal_all(libc::SIGUSR1, None);
                }
                _ => {}
            }
            self.reap(stopping.is_some());
            if let Some(deadline) = stopping {
                if self.workers.is_empty() {
                    crate::error_log!(Level::Notice, None, "exit");
                    return 0;
                }
                if Instant::now() > deadline {
                    self.signal_all(libc::SIGKILL, None);
                }
            }
        }
    }
}

/// The VM workers will inherit: lualib loaded, init_by_lua run.
pub fn prepare_lua(cfg: &Config) -> Result<LuaHandlers, String> {
    crate::ffi::config::set_prefix(&cfg.prefix);
    // Mapped here, before init_by_lua and the fork, so every worker shares them.
    crate::shdict::configure(&cfg.http.lua_shared_dicts)?;
    // Each configuration's init_by_lua enables the agent afresh.
    crate::ffi::worker::reset_privileged_agent();
    let lua = LuaHandlers::new(cfg).map_err(|e| format!("failed to create the Lua VM: {e}"))?;
    if let Some(log) = crate::jit::capture::settings(cfg) {
        crate::jit::capture::start(lua.vm(), &log)?;
    }
    if let Some(code) = &cfg.http.init_by_lua {
        lua.run_init(code, "init_by_lua")?;
    }
    Ok(lua)
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGWINCH => "SIGWINCH",
        _ => "",
    }
}

/// Write the pid file (nginx writes the master's pid followed by a newline).
pub fn write_pid(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Listening fds as (fd, address) for a single-process run.
pub fn single_fds(listeners: &[Listener]) -> Vec<(i32, std::net::SocketAddr)> {
    listeners.iter().flat_map(|l| l.sockets.iter().map(move |s| (s.as_raw_fd(), l.conf.addr))).collect()
}
