//! Running `*_by_lua*` handlers for a request: each run opens a Lua context
//! ([`super::context`]) and calls the handler's compiled (and cached) chunk
//! from a pooled coroutine's Lua loop (lualib/halo/runner.lua), lending the
//! request to the FFI calls it makes for each resume. When the handler
//! yields for an operation its FFI call registered (ngx.sleep; ngx.flush,
//! whose bytes go out through the connection's [`Stream`]), the run waits
//! for it on the event loop and resumes the coroutine; other requests run
//! meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use std::os::raw::c_int;

use mlua::{Function, Lua, RegistryKey, Table, Thread};

use super::context::{self, Kind, Phase, Run};
use super::sched::{Ended, Task};
use crate::conf::{Config, LuaApiMode, LuaCode, LuaSource};
use crate::log::Level;
use crate::request::{Body, RequestCtx, Response};

/// The client connection, as handlers reach it while they run: the request
/// body (ngx.req.read_body) and, for a content handler, ngx.flush and
/// ngx.eof: `flush` sends the head (the first time) and the output so far
/// (taking `ctx.resp.out`), and returns when it is written.
#[allow(async_fn_in_trait)] // used with static dispatch only
pub trait Stream {
    /// Sends the request's output so far; `eof` ends the body. False when
    /// the client is gone (the handler runs on; its output goes nowhere).
    async fn flush(&mut self, ctx: &mut RequestCtx<'_>, eof: bool) -> bool;

    /// Reads the request body into `ctx.body` (once). Err: the status the
    /// request ends with (413, 400 also when the client left, 408, 500).
    async fn read_body(&mut self, ctx: &mut RequestCtx<'_>) -> Result<(), u16>;

    /// proxy_request_buffering off: the body's next piece as it arrives
    /// (decoded; one read's worth, after waiting up to client_body_timeout
    /// for it when `wait` and nothing is buffered; maybe empty), with
    /// `ctx.body_done` set at its end. Err as `read_body`'s.
    async fn read_body_part(&mut self, ctx: &mut RequestCtx<'_>, wait: bool) -> Result<Vec<u8>, u16>;

    /// The client's socket, watched for its close (lua_check_client_abort).
    fn client_fd(&self) -> Option<std::os::fd::RawFd>;

    /// Ready when the client's connection is gone (closed, half-closed or
    /// failed), as nginx's check for a broken connection; bytes it sends
    /// meanwhile (a pipelined request) are kept for later. Never ready
    /// where there is no client connection of its own.
    async fn hangup(&mut self);

    /// ngx.req.socket's reads: up to `max` bytes from the client (what is
    /// buffered first), of the body only when `body` (then "closed" at its
    /// end); the raw form takes the connection over. Err: "closed",
    /// "timeout".
    async fn read_raw(&mut self, ctx: &mut RequestCtx<'_>, max: usize, body: bool, timeout: std::time::Duration) -> Result<Vec<u8>, &'static str>;

    /// ngx.req.socket(true)'s sends: `data` to the client as it is. False
    /// when the client is gone.
    async fn write_raw(&mut self, ctx: &mut RequestCtx<'_>, data: &[u8]) -> bool;

    /// An upgraded proxied connection (the upstream's 101 went out): the
    /// bytes copied both ways between the client (what it sent after its
    /// head first) and `peer` until either side closes or fails, or nothing
    /// moves for `idle`; the client connection is taken over. Err: why it
    /// ended otherwise than by a close ("timed out"), or why there is no
    /// tunnel here (no client connection).
    async fn tunnel(&mut self, ctx: &mut RequestCtx<'_>, peer: std::os::fd::RawFd, idle: std::time::Duration) -> Result<(), &'static str>;
}

/// Handlers that run without the client (filters, the log phase).
pub enum Buffered {}

impl Stream for Buffered {
    async fn flush(&mut self, _: &mut RequestCtx<'_>, _: bool) -> bool {
        match *self {}
    }

    async fn read_body(&mut self, _: &mut RequestCtx<'_>) -> Result<(), u16> {
        match *self {}
    }

    async fn read_body_part(&mut self, _: &mut RequestCtx<'_>, _: bool) -> Result<Vec<u8>, u16> {
        match *self {}
    }

    fn client_fd(&self) -> Option<std::os::fd::RawFd> {
        match *self {}
    }

    async fn hangup(&mut self) {
        match *self {}
    }

    async fn read_raw(&mut self, _: &mut RequestCtx<'_>, _: usize, _: bool, _: std::time::Duration) -> Result<Vec<u8>, &'static str> {
        match *self {}
    }

    async fn write_raw(&mut self, _: &mut RequestCtx<'_>, _: &[u8]) -> bool {
        match *self {}
    }

    async fn tunnel(&mut self, _: &mut RequestCtx<'_>, _: std::os::fd::RawFd, _: std::time::Duration) -> Result<(), &'static str> {
        match *self {}
    }
}

/// Idle coroutines kept for reuse; more than this many handlers waiting at
/// once is rare, and the rest are left to the GC.
const POOL_MAX: usize = 64;

/// A worker's VM and its compiled handlers.
pub struct LuaHandlers {
    vm: Lua,
    /// Per directive (keyed by the address of its `LuaCode`, stable for the
    /// configuration's life) and API mode (a server{}'s handler may run in
    /// locations of either), the compiled chunk: `lua_code_cache on`.
    /// The value is the handler's number in halo.runner's table (what a
    /// resume passes to the coroutine's loop).
    cache: RefCell<HashMap<(usize, LuaApiMode), c_int, ahash::RandomState>>,
    /// `lua_api_mode cfunction`'s globals: `ngx` is the lua_CFunction twin
    /// ([`super::capi::ngx_table`]), the rest is `_G`'s (reads and writes).
    /// Made when a handler first needs it, so ffi mode costs nothing.
    cfunction_env: RefCell<Option<Table>>,
    /// http{}'s lua_api_mode, for init_by_lua*.
    init_mode: LuaApiMode,
    /// `lua_code_cache off`: compile (and read `_file` code) per request.
    code_cache: bool,
    /// halo.runner's loop, which pooled coroutines run, and the value it
    /// yields when a handler has returned.
    loop_fn: Function,
    pub(super) done: RegistryKey,
    /// halo.runner's light-thread hooks: the coroutine ngx.thread.spawn made
    /// for a context, and the news that a thread ended.
    pub(super) take_thread: Function,
    pub(super) thread_ended: Function,
    register: Function,
    unregister: Function,
    /// halo.runner's handlers by number.
    handlers: Table,
    guard_globals: Function,
    /// Coroutines parked in `loop_fn` between two handlers.
    pool: RefCell<Vec<Thread>>,
    /// resty.core.ctx's release(id): drops a finished request's ngx.ctx.
    release_ctx: Function,
    /// resty.core.timer: the handler that calls a timer's callback (its
    /// number in halo.runner), and forget(id) for a timer that never runs.
    timer_dispatch: c_int,
    timer_forget: Function,
}

impl LuaHandlers {
    /// The VM for `cfg`: lualib loaded, package paths from the config.
    pub fn new(cfg: &Config) -> mlua::Result<LuaHandlers> {
        // Before init_by_lua, which may use ngx.re already.
        crate::ffi::regex::configure(cfg.http.lua_regex_match_limit, cfg.http.lua_regex_cache_max_entries);
        let vm = super::new_vm(&cfg.prefix, cfg.http.lua_package_path.as_deref(), cfg.http.lua_package_cpath.as_deref())?;
        let require: Function = vm.globals().get("require")?;
        let release_ctx = require.call::<Table>("resty.core.ctx")?.get("release")?;
        let runner = require.call::<Table>("halo.runner")?;
        let timers = require.call::<Table>("resty.core.timer")?;
        let timer_dispatch = runner.get::<Function>("register")?.call::<c_int>(timers.get::<Function>("dispatch")?)?;
        Ok(LuaHandlers {
            timer_dispatch,
            timer_forget: timers.get("forget")?,
            cache: RefCell::new(HashMap::default()),
            cfunction_env: RefCell::new(None),
            init_mode: cfg.http.lua_api_mode,
            code_cache: cfg.http.lua_code_cache,
            loop_fn: runner.get("loop")?,
            done: vm.create_registry_value(runner.get::<Table>("DONE")?)?,
            take_thread: runner.get("take_thread")?,
            thread_ended: runner.get("thread_ended")?,
            register: runner.get("register")?,
            unregister: runner.get("unregister")?,
            handlers: runner.get("handlers")?,
            guard_globals: runner.get("guard_globals")?,
            pool: RefCell::new(Vec::new()),
            release_ctx,
            vm,
        })
    }

    /// The VM itself.
    pub fn vm(&self) -> &Lua {
        &self.vm
    }

    /// init_by_lua* and init_worker_by_lua* are over: from now on, writing
    /// an undeclared global logs a warning (halo.runner).
    pub fn guard_globals(&self) {
        if let Err(e) = self.guard_globals.call::<()>(()) {
            crate::error_log!(Level::Alert, None, "installing the globals write guard failed: {e}");
        }
    }

    /// The request is over: forget its ngx.ctx (if it made one).
    pub fn request_done(&self, id: u64) {
        if let Err(e) = self.release_ctx.call::<()>(id as f64) {
            crate::error_log!(Level::Alert, None, "releasing ngx.ctx failed: {e}");
        }
    }

    /// The compiled chunk of `code`, run as it is by every request (as
    /// lua-nginx-module with OpenResty's LuaJIT: handlers share _G, their
    /// locals are their own).
    fn handler(&self, code: &Arc<LuaCode>, mode: LuaApiMode) -> Result<c_int, String> {
        let key = (Arc::as_ptr(code) as usize, mode);
        if let Some(&n) = self.cache.borrow().get(&key) {
            return Ok(n);
        }
        let (src, name) = match &code.source {
            LuaSource::Inline(src) => (src.clone(), format!("={}", code.chunkname)),
            LuaSource::File(path) => match std::fs::read_to_string(path) {
                Ok(src) => (src, format!("@{}", path.display())),
                Err(e) => return Err(format!("failed to load Lua file \"{}\": {e}", path.display())),
            },
        };
        let f = self.vm.load(src).set_name(name).into_function().map_err(|e| e.to_string())?;
        if mode == LuaApiMode::Cfunction {
            f.set_environment(self.cfunction_env().map_err(error_text)?).map_err(error_text)?;
        }
        let n = self.register.call::<c_int>(&f).map_err(error_text)?;
        if self.code_cache {
            self.cache.borrow_mut().insert(key, n);
        }
        Ok(n)
    }

    /// The globals of `lua_api_mode cfunction` handlers (made once).
    fn cfunction_env(&self) -> mlua::Result<Table> {
        if let Some(env) = &*self.cfunction_env.borrow() {
            return Ok(env.clone());
        }
        let globals = self.vm.globals();
        let env = self.vm.create_table()?;
        env.raw_set("ngx", super::capi::ngx_table(&self.vm)?)?;
        let mt = self.vm.create_table()?;
        mt.raw_set("__index", &globals)?;
        mt.raw_set("__newindex", &globals)?;
        env.set_metatable(Some(mt))?;
        *self.cfunction_env.borrow_mut() = Some(env.clone());
        Ok(env)
    }

    /// Handler `n` as a function, to call it directly (init, set_by_lua).
    fn function(&self, n: c_int) -> Result<Function, String> {
        self.handlers.raw_get(n).map_err(error_text)
    }

    /// Run `init_by_lua*` or `init_worker_by_lua*` code: in the VM's own
    /// globals (what init_by_lua defines is what handlers see through _G),
    /// outside any request. `what` names it in the error.
    pub fn run_init(&self, code: &Arc<LuaCode>, what: &str) -> Result<(), String> {
        let h = self.handler(code, self.init_mode)?;
        let res = self.function(h)?.call::<()>(()).map_err(|e| format!("{what} error: {}", error_text(e)));
        self.release(h);
        res
    }

    /// Runs timer `id`'s callback (resty.core.timer keeps it) in a timer
    /// context, with its light threads, to its end. Errors are logged.
    pub async fn run_timer(&self, id: u32, premature: bool) {
        let cx = context::open(Kind::Timer, |r| r.timer = Some((id, premature)));
        let co = match self.coroutine() {
            Ok(co) => co,
            Err(e) => {
                crate::error_log!(Level::Error, None, "failed to run a timer: {e}");
                self.timer_forget(id);
                return context::close(cx, |_| ());
            }
        };
        let ended = match self.start(None, cx, co, self.timer_dispatch) {
            Ok(ended) => ended,
            Err(co) => self.drive(None, Task::entry(cx, co), None::<&mut Buffered>, "ngx.timer").await,
        };
        if let Ended::Failed(e) = ended {
            crate::error_log!(Level::Error, None, "lua entry thread aborted: runtime error: {e}");
            // A failed every-timer is not stopped by its error (as nginx).
        }
        context::close(cx, |_| ());
    }

    /// Timer `id` will not run: its callback is dropped.
    pub fn timer_forget(&self, id: u32) {
        if let Err(e) = self.timer_forget.call::<()>(id) {
            crate::error_log!(Level::Alert, None, "dropping a timer failed: {e}");
        }
    }

    /// A coroutine parked in halo.runner's loop: a pooled one, or a new one.
    fn coroutine(&self) -> Result<Thread, String> {
        if let Some(co) = self.pool.borrow_mut().pop() {
            return Ok(co);
        }
        self.vm.create_thread(self.loop_fn.clone()).map_err(error_text)
    }

    /// A coroutine whose handler returned goes back to the pool.
    pub(super) fn park(&self, co: Thread) {
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(co);
        }
    }

    /// Run a handler of `phase` to its end, with the client (rewrite,
    /// access, content) or without (log). A content handler always answers;
    /// rewrite and access do with ngx.exit(status >= 200), output, or an
    /// error.
    pub async fn run<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>, phase: Phase, client: Option<&mut impl Stream>) -> Ran<'a> {
        // A content handler's output streams (ngx.flush); others' waits for the end.
        let streams = phase == Phase::Content;
        let (res, run) = self.execute(ctx, code, phase, |r| r.streams = streams, |r| End { exit: r.exit, exec: r.exec.take() }, client).await;
        match res {
            Ok(()) if run.exec.is_some() => Ran::Exec(run.exec.unwrap_or_default()),
            Ok(()) => {
                let answers = phase == Phase::Content
                    || (phase != Phase::Log && (run.exit.is_some_and(|s| s >= 200) || !ctx.resp.out.is_empty()));
                if answers {
                    return Ran::Respond(respond(ctx, run.exit));
                }
                match run.exit {
                    // ngx.exit(ngx.ERROR) and other negative codes: a 500.
                    Some(s) if s < 0 && phase != Phase::Log => Ran::Respond(ctx.special(500)),
                    _ => Ran::Next,
                }
            }
            Err(()) if phase == Phase::Log => Ran::Next,
            Err(()) if ctx.resp.out.is_empty() && !ctx.resp.headers_sent => Ran::Respond(ctx.special(500)),
            Err(()) => {
                // The head counts as sent (output, ngx.send_headers): as
                // OpenResty, no 500 page; what there is goes out, then the
                // connection closes.
                let mut r = respond(ctx, run.exit);
                r.close = true;
                Ran::Respond(r)
            }
        }
    }

    /// balancer_by_lua*: picks the next try's peer (ngx.balancer sets
    /// `ctx.balancer`); it may wait (beyond nginx). false after an error.
    pub async fn run_balancer(&self, ctx: &mut RequestCtx<'_>, code: &Arc<LuaCode>) -> bool {
        let (res, ()) = self.execute(ctx, code, Phase::Balancer, |_| {}, |_| {}, None::<&mut Buffered>).await;
        res.is_ok()
    }

    /// header_filter_by_lua*: may change `ctx.resp`'s status and headers.
    /// false after an error (the request then answers 500).
    pub async fn run_header_filter(&self, ctx: &mut RequestCtx<'_>, code: &Arc<LuaCode>) -> bool {
        let (res, ()) = self.execute(ctx, code, Phase::HeaderFilter, |_| {}, |_| {}, None::<&mut Buffered>).await;
        res.is_ok()
    }

    /// body_filter_by_lua*: runs on each chunk of the body as it is sent,
    /// as ngx.arg[1], with ngx.arg[2] true on the last; returns the chunk
    /// it leaves and whether it ended the body (ngx.arg[2] = true). An error
    /// leaves the chunk as it was.
    pub async fn run_body_filter(&self, ctx: &mut RequestCtx<'_>, code: &Arc<LuaCode>, chunk: Vec<u8>, eof: bool) -> (Vec<u8>, bool) {
        let init = |r: &mut Run| {
            r.arg_body = chunk;
            r.arg_eof = eof;
        };
        let (_, out) = self.execute(ctx, code, Phase::BodyFilter, init, |r| (std::mem::take(&mut r.arg_body), r.arg_eof), None::<&mut Buffered>).await;
        out
    }

    /// set_by_lua*: run `code` with `args` as ngx.arg[1..] (it cannot wait:
    /// the rewrite directives around it run synchronously) and return its
    /// first result as a string (nil as ""); None after an error, which is
    /// logged (the request then gets a 500).
    pub fn run_set(&self, ctx: &mut RequestCtx<'_>, code: &Arc<LuaCode>, args: Vec<String>) -> Option<String> {
        let (h, f) = match self.handler(code, ctx.conf.lua_api_mode).and_then(|h| Ok((h, self.function(h)?))) {
            Ok(h) => h,
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to load set_by_lua*: {e}"));
                return None;
            }
        };
        let cx = context::open(Kind::Request(Phase::Set), |r| r.set_args = args);
        // Called, not resumed: it cannot wait, and its first result is the value.
        let res = match context::enter(cx, Some(ctx), || f.call::<mlua::Value>(())) {
            Ok(mlua::Value::Nil) => Ok(String::new()),
            Ok(v) => v.to_string().map_err(error_text),
            Err(e) => Err(error_text(e)),
        };
        context::close(cx, |_| ());
        self.release(h);
        res.map_err(|e| ctx.log(Level::Error, format_args!("failed to run set_by_lua*: {e}"))).ok()
    }

    /// Run `code` in a pooled coroutine, in a context of `phase` whose
    /// state `init` fills, through any waits, to its end; `last` reads the
    /// state at the end (also when the handler could not start). Errors are
    /// logged (Err(())).
    async fn execute<R>(
        &self,
        ctx: &mut RequestCtx<'_>,
        code: &Arc<LuaCode>,
        phase: Phase,
        init: impl FnOnce(&mut Run),
        last: impl FnOnce(&mut Run) -> R,
        stream: Option<&mut impl Stream>,
    ) -> (Result<(), ()>, R) {
        let cx = context::open(Kind::Request(phase), init);
        let (h, co) = match self.handler(code, ctx.conf.lua_api_mode).and_then(|h| Ok((h, self.coroutine()?))) {
            Ok(started) => started,
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to load {}: {e}", phase.directive()));
                return (Err(()), context::close(cx, last));
            }
        };
        let ended = match self.start(Some(&mut *ctx), cx, co, h) {
            Ok(ended) => ended,
            // It waits: the scheduler's (larger) future, only now.
            Err(co) => Box::pin(self.drive(Some(&mut *ctx), Task::entry(cx, co), stream, phase.directive())).await,
        };
        let outcome = match ended {
            Ended::Ok => Ok(()),
            Ended::Failed(e) => Err(e),
            Ended::Status(status) => {
                context::with_run(cx.raw(), |_, r| r.exit = Some(c_int::from(status)));
                Ok(())
            }
        };
        let end = context::close(cx, last);
        self.release(h);
        let res = outcome.map_err(|e| ctx.log(Level::Error, format_args!("failed to run {}: {e}", phase.directive())));
        (res, end)
    }

    /// `lua_code_cache off`: the handler compiled for this run is forgotten.
    fn release(&self, h: c_int) {
        if !self.code_cache {
            if let Err(e) = self.unregister.call::<()>(h) {
                crate::error_log!(Level::Alert, None, "dropping a handler failed: {e}");
            }
        }
    }
}

/// The error as lua-nginx-module logs it: message, then the coroutine's
/// stack (mlua appends the traceback to runtime errors).
fn error_text(e: mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m,
        mlua::Error::CallbackError { cause, traceback } => format!("{cause}\n{traceback}"),
        other => other.to_string(),
    }
}

/// What a run's end leaves for its phase.
struct End {
    exit: Option<c_int>,
    exec: Option<String>,
}

/// How a handler's run ended, for the phase that ran it.
pub enum Ran<'a> {
    /// Go on to the next phase.
    Next,
    /// ngx.exec: an internal redirect to this URI (with `?args`) or @name.
    Exec(String),
    /// The handler answered: this response, with `ctx.resp`'s head.
    Respond(Response<'a>),
}

/// The response a handler's output and ngx.exit status make.
fn respond<'a>(ctx: &mut RequestCtx<'a>, exit: Option<c_int>) -> Response<'a> {
    // ngx.exit(>= 300) before any output: nginx's own page for that status.
    let exit = exit.unwrap_or(0);
    if ctx.resp.out.is_empty() && exit >= 300 {
        absolute_location(ctx);
        return ctx.special(exit as u16);
    }
    lua_head(ctx, exit);
    Response::with_body(Body::Bytes(std::borrow::Cow::Owned(std::mem::take(&mut ctx.resp.out))))
}

/// Completes the head of a response made by Lua (at the end of a handler,
/// or its first ngx.flush): the status (ngx.status, else the ngx.exit code,
/// else 200), default_type, an absolute Location.
pub fn lua_head(ctx: &mut RequestCtx<'_>, exit: c_int) {
    absolute_location(ctx);
    if ctx.resp.status == 0 {
        ctx.resp.status = if exit >= 200 { exit as u16 } else { 200 };
    }
    if ctx.resp.content_type.is_none() {
        ctx.resp.content_type = Some(std::borrow::Cow::Borrowed(ctx.conf.default_type.as_str()));
    }
}

/// A relative Location becomes absolute, as nginx's header filter makes it.
fn absolute_location(ctx: &mut RequestCtx<'_>) {
    if let Some(i) = ctx.resp.headers.position(|n, v| n.eq_ignore_ascii_case(b"location") && v.starts_with(b"/")) {
        let abs = ctx.absolute_url(&String::from_utf8_lossy(ctx.resp.headers.value(i)));
        ctx.resp.headers.set_value(i, abs);
    }
}
