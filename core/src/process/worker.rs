//! A worker process: its own io_uring loop accepting on the inherited
//! listening sockets and serving connections until told to stop. The
//! privileged agent runs the same loop with no listening sockets and no
//! worker id: init_worker_by_lua, its timers and their cosockets only.
//!
//! SIGQUIT (graceful): stop accepting, let in-flight requests finish, close
//! idle keep-alive connections, exit when none is left (a single process,
//! `master_process off`, exits at once, as nginx's does). SIGTERM/SIGINT
//! (fast): exit now. SIGUSR1: reopen log files.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use crate::conf::Config;
use crate::log::access::AccessLogs;
use crate::log::Level;
use crate::lua::handler::LuaHandlers;
use crate::lua::timer::{self, Timer};
use crate::server::Worker;
use crate::rt::{self, ops, Notify};
use crate::server::select::ServerIndex;

use super::signals;

/// Run a worker until it is told to stop; returns the exit code. `lua` is
/// the VM the master prepared (init_by_lua already run), inherited through
/// fork. `id` None: the privileged agent (give it no listeners).
pub fn run(cfg: Arc<Config>, listeners: Vec<(RawFd, SocketAddr)>, id: Option<usize>, count: usize, lua: LuaHandlers) -> i32 {
    crate::log::error::set_pid();
    // Still one thread here (just forked, or the single process before it
    // starts any), so changing the environment is sound.
    super::worker_setup::apply(&cfg);
    let sfd = match signals::signalfd() {
        Ok(fd) => fd,
        Err(e) => {
            crate::error_log!(Level::Emerg, None, "signalfd() failed ({e})");
            return 2;
        }
    };
    match id {
        Some(id) => crate::ffi::worker::set_worker(Some(id as u32), count as u32),
        None => {
            crate::ffi::worker::set_agent(count as u32);
            crate::error_log!(Level::Notice, None, "privileged agent process");
        }
    }
    if let Err(e) = crate::jit::capture::worker_start(lua.vm()) {
        crate::error_log!(Level::Error, None, "{e}");
    }
    let w = Rc::new(Worker {
        lua: Some(lua),
        servers: ServerIndex::new(&cfg.http.servers),
        cfg,
        id,
        count,
        shutdown: Notify::default(),
        conns: Cell::new(0),
        accepting: Cell::new(listeners.len()),
        exit_now: Cell::new(false),
        next_conn: Cell::new(0),
        next_request: Cell::new(0),
        access_logs: RefCell::new(AccessLogs::default()),
    });
    crate::cosocket::configure(w.cfg.http.lua_socket, w.cfg.http.resolver.clone());
    // Before init_worker_by_lua, which may start timers.
    timer::set_spawner(Box::new(spawn_timer(Rc::downgrade(&w))), w.cfg.http.lua_max_pending_timers, w.cfg.http.lua_max_running_timers);
    crate::lua::subrequest::set_runner(Box::new(crate::server::subrequest::runner(Rc::downgrade(&w))));
    if let Some(lua) = &w.lua {
        if let Some(code) = &w.cfg.http.init_worker_by_lua {
            if let Err(e) = lua.run_init(code, "init_worker_by_lua") {
                crate::error_log!(Level::Error, None, "{e}");
            }
        }
        lua.guard_globals();
    }
    let entries = (w.cfg.worker_connections.clamp(64, 4096) as u32).next_power_of_two();
    let main = {
        let w = w.clone();
        async move {
            for (fd, addr) in listeners {
                rt::spawn(accept_loop(w.clone(), fd, addr));
            }
            rt::spawn(signal_loop(w.clone(), sfd));
        }
    };
    let done = {
        let w = w.clone();
        move || w.exit_now.get() || (w.shutdown.is_set() && w.conns.get() == 0 && w.accepting.get() == 0 && timer::active() == 0)
    };
    match rt::run(entries, main, crate::log::time::update, done) {
        Ok(()) => {
            // exit_worker_by_lua: on a graceful stop, once the last request is done.
            crate::ffi::worker::set_exiting(true);
            if let (Some(code), Some(lua)) = (&w.cfg.http.exit_worker_by_lua, &w.lua) {
                if let Err(e) = lua.run_init(code, "exit_worker_by_lua") {
                    crate::error_log!(Level::Error, None, "{e}");
                }
            }
            if let Some(lua) = &w.lua {
                if let Err(e) = crate::jit::capture::close(lua.vm()) {
                    crate::error_log!(Level::Error, None, "{e}");
                }
            }
            0
        }
        Err(e) => {
            crate::error_log!(Level::Emerg, None, "{e}");
            2
        }
    }
}

/// The worker's timer spawner: each timer is a task of the worker's loop.
fn spawn_timer(w: std::rc::Weak<Worker>) -> impl Fn(Timer) {
    move |t| {
        let w = w.clone();
        rt::spawn(async move {
            if let Some(w) = w.upgrade() {
                if let Some(lua) = &w.lua {
                    timer::run(lua, t, &w.shutdown).await;
                }
            }
        });
    }
}

async fn accept_loop(w: Rc<Worker>, fd: RawFd, addr: SocketAddr) {
    let mut accept = ops::AcceptMulti::new(fd);
    loop {
        let next = rt::race(accept.next(), w.shutdown.wait()).await;
        let res = match next {
            Ok(Some(res)) => res,
            Ok(None) => break,
            Err(()) => {
                // Connections the kernel already accepted still get served.
                accept.cancel();
                while let Some(res) = accept.next().await {
                    if res >= 0 {
                        start_conn(&w, res, addr);
                    }
                }
                // io_uring accepts with exclusive wake-ups: a connection whose
                // wake-up went to our cancelled request would wait in the
                // queue for the next arrival. Take what is queued now.
                loop {
                    // SAFETY: accept4 on our listening socket with no address out-params.
                    let fd = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
                    if fd < 0 {
                        break;
                    }
                    start_conn(&w, fd, addr);
                }
                break;
            }
        };
        if res < 0 {
            let e = std::io::Error::from_raw_os_error(-res);
            crate::error_log!(Level::Alert, None, "accept4() failed ({}: {e})", -res);
            if -res == libc::EMFILE || -res == libc::ENFILE {
                rt::sleep_until(std::time::Instant::now() + std::time::Duration::from_millis(100)).await;
            }
            continue;
        }
        start_conn(&w, res, addr);
    }
    w.accepting.set(w.accepting.get() - 1);
}

fn start_conn(w: &Rc<Worker>, fd: RawFd, listen: SocketAddr) {
    if w.conns.get() >= w.cfg.worker_connections {
        crate::error_log!(Level::Alert, None, "{} worker_connections are not enough", w.cfg.worker_connections);
        // SAFETY: fd was just accepted for us and is not used elsewhere.
        unsafe { libc::close(fd) };
        return;
    }
    w.conns.set(w.conns.get() + 1);
    let w2 = w.clone();
    rt::spawn(async move {
        crate::server::conn::serve(&w2, fd, listen).await;
        // SAFETY: the connection task owned fd and is done with it.
        unsafe { libc::close(fd) };
        w2.conns.set(w2.conns.get() - 1);
    });
}

async fn signal_loop(w: Rc<Worker>, sfd: RawFd) {
    loop {
        let (res, buf) = ops::read_exact_record(sfd, std::mem::size_of::<libc::signalfd_siginfo>()).await;
        if res < std::mem::size_of::<libc::signalfd_siginfo>() as i32 {
            continue;
        }
        let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32;
        match signo {
            // nginx's single process (master_process off) quits at once
            // on SIGQUIT: what is in flight, pending timers included, is
            // dropped; exit_worker_by_lua still runs. `halo resty` (and
            // resty-cli on OpenResty) end this way.
            libc::SIGQUIT if !w.cfg.master_process => {
                crate::error_log!(Level::Notice, None, "gracefully shutting down");
                crate::ffi::worker::set_exiting(true);
                // Not `shutdown`: that would wake pending timers as premature.
                w.exit_now.set(true);
            }
            libc::SIGQUIT => {
                crate::error_log!(Level::Notice, None, "gracefully shutting down");
                // Premature timers see ngx.worker.exiting() true.
                crate::ffi::worker::set_exiting(true);
                timer::set_exiting();
                w.shutdown.set();
                if let Some(t) = w.cfg.worker_shutdown_timeout {
                    // What has not ended by then (connections, timers) is cut.
                    let w = w.clone();
                    rt::spawn(async move {
                        rt::sleep_until(rt::now() + t).await;
                        crate::error_log!(Level::Notice, None, "worker_shutdown_timeout: exiting with work in flight");
                        w.exit_now.set(true);
                    });
                }
            }
            libc::SIGTERM | libc::SIGINT => {
                crate::error_log!(Level::Notice, None, "exiting");
                timer::set_exiting();
                w.exit_now.set(true);
                w.shutdown.set();
            }
            libc::SIGUSR1 => {
                let _ = crate::log::error::reopen();
                w.access_logs.borrow_mut().reopen();
            }
            _ => {}
        }
    }
}
