//! Running `*_by_lua*` handlers for a request: each run calls the handler's
//! compiled (and cached) chunk from a pooled coroutine's Lua loop
//! (lualib/halo/runner.lua), with the request bound for the FFI calls it
//! makes ([`crate::ffi::request`]). When the handler yields for
//! an operation (ngx.sleep; ngx.flush, whose bytes go out through the
//! connection's [`Stream`]), the connection's task waits for it on the event
//! loop and resumes the coroutine; other requests run meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use std::os::raw::c_int;

use mlua::{Function, Lua, RegistryKey, Table, Thread};

use super::resume::{resume, Resumed};

use crate::conf::{Config, LuaCode, LuaSource};
use crate::ffi::request::{bind, Binding, Pending, Phase};
use crate::log::Level;
use crate::rt;
use crate::server::phases::{Body, Response};
use crate::server::vars::RequestCtx;

/// The client connection, as handlers reach it while they run: the request
/// body (ngx.req.read_body) and, for a content handler whose output streams,
/// ngx.flush and ngx.eof, which hand the binding to `flush`: it sends the
/// head (the first time) and the output so far (taking `b.out`), and returns
/// when it is written.
#[allow(async_fn_in_trait)] // used with static dispatch only
pub trait Stream {
    /// Sends what `b` holds; `eof` ends the body. False when the client is
    /// gone (the handler runs on; its output goes nowhere).
    async fn flush(&mut self, ctx: &mut RequestCtx<'_>, b: &mut Binding, eof: bool) -> bool;

    /// Reads the request body into `ctx.body` (once). Err: the status the
    /// request ends with (413, 400, 408, 500, 499 when the client left).
    async fn read_body(&mut self, ctx: &mut RequestCtx<'_>) -> Result<(), u16>;
}

/// Handlers that run without the client (filters, the log phase).
pub enum Buffered {}

impl Stream for Buffered {
    async fn flush(&mut self, _: &mut RequestCtx<'_>, _: &mut Binding, _: bool) -> bool {
        match *self {}
    }

    async fn read_body(&mut self, _: &mut RequestCtx<'_>) -> Result<(), u16> {
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
    /// configuration's life), the compiled chunk: `lua_code_cache on`.
    /// The value is the handler's number in halo.runner's table (what a
    /// resume passes to the coroutine's loop).
    cache: RefCell<HashMap<usize, c_int, ahash::RandomState>>,
    /// `lua_code_cache off`: compile (and read `_file` code) per request.
    code_cache: bool,
    /// halo.runner's loop, which pooled coroutines run, and the value it
    /// yields when a handler has returned.
    loop_fn: Function,
    done: RegistryKey,
    register: Function,
    unregister: Function,
    /// halo.runner's handlers by number.
    handlers: Table,
    guard_globals: Function,
    /// Coroutines parked in `loop_fn` between two handlers.
    pool: RefCell<Vec<Thread>>,
    /// resty.core.ctx's release(id): drops a finished request's ngx.ctx.
    release_ctx: Function,
}

impl LuaHandlers {
    /// The VM for `cfg`: lualib loaded, package paths from the config.
    pub fn new(cfg: &Config) -> mlua::Result<LuaHandlers> {
        let vm = super::new_vm(&cfg.prefix, cfg.http.lua_package_path.as_deref(), cfg.http.lua_package_cpath.as_deref())?;
        let require: Function = vm.globals().get("require")?;
        let release_ctx = require.call::<Table>("resty.core.ctx")?.get("release")?;
        let runner = require.call::<Table>("halo.runner")?;
        Ok(LuaHandlers {
            cache: RefCell::new(HashMap::default()),
            code_cache: cfg.http.lua_code_cache,
            loop_fn: runner.get("loop")?,
            done: vm.create_registry_value(runner.get::<Table>("DONE")?)?,
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
    fn handler(&self, code: &Arc<LuaCode>) -> Result<c_int, String> {
        let key = Arc::as_ptr(code) as usize;
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
        let n = self.register.call::<c_int>(&f).map_err(error_text)?;
        if self.code_cache {
            self.cache.borrow_mut().insert(key, n);
        }
        Ok(n)
    }

    /// Handler `n` as a function, to call it directly (init, set_by_lua).
    fn function(&self, n: c_int) -> Result<Function, String> {
        self.handlers.raw_get(n).map_err(error_text)
    }

    /// Run `init_by_lua*` or `init_worker_by_lua*` code: in the VM's own
    /// globals (what init_by_lua defines is what handlers see through _G),
    /// outside any request. `what` names it in the error.
    pub fn run_init(&self, code: &Arc<LuaCode>, what: &str) -> Result<(), String> {
        let h = self.handler(code)?;
        let res = self.function(h)?.call::<()>(()).map_err(|e| format!("{what} error: {}", error_text(e)));
        self.release(h);
        res
    }

    /// A coroutine parked in halo.runner's loop: a pooled one, or a new one.
    fn coroutine(&self) -> Result<Thread, String> {
        if let Some(co) = self.pool.borrow_mut().pop() {
            return Ok(co);
        }
        self.vm.create_thread(self.loop_fn.clone()).map_err(error_text)
    }

    /// A coroutine whose handler returned goes back to the pool.
    fn park(&self, co: Thread) {
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(co);
        }
    }

    /// Run a content handler to its end; its output becomes the response
    /// (what ngx.flush / ngx.eof did not already send through `client`,
    /// when `streams`).
    pub async fn run_content<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>, client: &mut impl Stream, streams: bool) -> Response<'a> {
        // A content handler always answers.
        self.run_with(ctx, code, Phase::Content, Some(client), streams).await.unwrap_or_else(|| Response::special(500))
    }

    /// Run a handler of `phase` to its end, with the client (rewrite,
    /// access) or without (log). Some(response) when it answers the request
    /// (rewrite and access do with ngx.exit(status >= 200), output, or an
    /// error), None to go on.
    pub async fn run<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>, phase: Phase, client: Option<&mut impl Stream>) -> Option<Response<'a>> {
        self.run_with(ctx, code, phase, client, false).await
    }

    async fn run_with<'a>(
        &self,
        ctx: &mut RequestCtx<'a>,
        code: &Arc<LuaCode>,
        phase: Phase,
        client: Option<&mut impl Stream>,
        streams: bool,
    ) -> Option<Response<'a>> {
        let (res, mut b) = self.execute(ctx, code, phase, |b| b.streams = streams, client).await;
        match res {
            Ok(()) if b.exec.is_some() => {
                Some(Response::pending(Body::Exec(b.exec.take().unwrap_or_default())))
            }
            Ok(()) => {
                let answers = phase == Phase::Content
                    || (phase != Phase::Log && (b.exit.is_some_and(|s| s >= 200) || !b.out.is_empty()));
                if answers {
                    return Some(respond(ctx, b));
                }
                match b.exit {
                    // ngx.exit(ngx.ERROR) and other negative codes: a 500.
                    Some(s) if s < 0 && phase != Phase::Log => Some(Response::special(500)),
                    _ => None,
                }
            }
            Err(()) if phase == Phase::Log => None,
            Err(()) if b.out.is_empty() && !b.headers_sent => Some(Response::special(500)),
            Err(()) => {
                // The head counts as sent (output, ngx.send_headers): as
                // OpenResty, no 500 page; what there is goes out, then the
                // connection closes. (Output is buffered, so the client gets
                // a Content-Length matching the part: see README.)
                let mut r = respond(ctx, b);
                r.close = true;
                Some(r)
            }
        }
    }

    /// header_filter_by_lua*: may change the status and headers of `resp`.
    /// An error answers 500.
    pub async fn run_header_filter<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>, mut resp: Response<'a>) -> Response<'a> {
        let headers = std::mem::take(&mut resp.headers);
        let content_type = resp.content_type.take().map(|c| c.into_owned());
        let status = resp.status;
        let (res, b) = self
            .execute(
                ctx,
                code,
                Phase::HeaderFilter,
                |b| {
                    b.status = status;
                    b.headers = headers;
                    b.content_type = content_type;
                },
                None::<&mut Buffered>,
            )
            .await;
        if res.is_err() {
            return Response::special(500);
        }
        resp.status = b.status;
        resp.headers = b.headers;
        resp.content_type = b.content_type.map(std::borrow::Cow::Owned);
        resp
    }

    /// body_filter_by_lua*: sees the whole body once, as ngx.arg[1] with
    /// ngx.arg[2] true (halo buffers bodies), and may replace it. An error
    /// leaves the body as it was.
    pub async fn run_body_filter<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>, mut resp: Response<'a>) -> Response<'a> {
        let body = match std::mem::replace(&mut resp.body, Body::Empty) {
            Body::Bytes(b) => b.into_owned(),
            Body::File(f) => {
                use std::io::{Read, Seek};
                let mut file = f.file;
                let mut buf = Vec::with_capacity(f.len as usize);
                if file.seek(std::io::SeekFrom::Start(f.offset)).and_then(|_| file.take(f.len).read_to_end(&mut buf)).is_err() {
                    ctx.log(Level::Error, format_args!("body_filter_by_lua*: reading the file failed"));
                    return Response::special(500);
                }
                buf
            }
            other => {
                resp.body = other;
                return resp;
            }
        };
        let (_, b) = self
            .execute(
                ctx,
                code,
                Phase::BodyFilter,
                |b| {
                    b.arg_body = body;
                    b.arg_eof = true;
                },
                None::<&mut Buffered>,
            )
            .await;
        resp.body = Body::Bytes(std::borrow::Cow::Owned(b.arg_body));
        resp.content_length = None;
        resp
    }

    /// set_by_lua*: run `code` with `args` as ngx.arg[1..] (it cannot wait:
    /// the rewrite directives around it run synchronously) and return its
    /// first result as a string (nil as ""); None after an error, which is
    /// logged (the request then gets a 500).
    pub fn run_set(&self, ctx: &mut RequestCtx<'_>, code: &Arc<LuaCode>, args: Vec<String>) -> Option<String> {
        let h = self.handler(code).and_then(|h| Ok((h, self.function(h)?)));
        let mut b = Binding::new(ctx, Phase::Set);
        b.set_args = args;
        let (h, f) = match h {
            Ok(h) => h,
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to load set_by_lua*: {e}"));
                return None;
            }
        };
        // Called, not resumed: it cannot wait, and its first result is the value.
        let res = match bind(&mut b, || f.call::<mlua::Value>(())) {
            Ok(mlua::Value::Nil) => Ok(String::new()),
            Ok(v) => v.to_string().map_err(error_text),
            Err(e) => Err(error_text(e)),
        };
        self.release(h);
        res.map_err(|e| ctx.log(Level::Error, format_args!("failed to run set_by_lua*: {e}"))).ok()
    }

    /// Run `code` in a new coroutine, through any waits, to its end, with a
    /// binding of `phase` (filled by `init`) that it returns; errors are
    /// logged (Err(())).
    ///
    /// The binding's pointer to `ctx` is made after the last use of `ctx`
    /// before the run and is not used after it, so the FFI calls in between
    /// are the only users of the request.
    async fn execute(
        &self,
        ctx: &mut RequestCtx<'_>,
        code: &Arc<LuaCode>,
        phase: Phase,
        init: impl FnOnce(&mut Binding),
        mut stream: Option<&mut impl Stream>,
    ) -> (Result<(), ()>, Binding) {
        let started = self.handler(code).and_then(|h| Ok((h, self.coroutine()?)));
        let mut b = Binding::new(ctx, phase);
        init(&mut b);
        let (h, co) = match started {
            Ok(started) => started,
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to load {}: {e}", phase.directive()));
                return (Err(()), b);
            }
        };
        // The first resume hands the loop its handler; later ones end a wait.
        let mut handler = Some(h);
        let done = self.done.id();
        let outcome = loop {
            // SAFETY: `co` is a coroutine of this VM, new or parked in a yield
            // (pooled coroutines are only ever parked there), used by nothing
            // else; `done` is a registry value of this VM, kept by `self`.
            let res = bind(&mut b, || unsafe { resume(co.state(), handler.take(), done) });
            match res {
                // The coroutine is dead: it is not reused.
                Resumed::Failed(e) => break Err(e),
                Resumed::Done => {
                    self.park(co);
                    break Ok(());
                }
                Resumed::Yielded => match b.pending.take() {
                    Some(Pending::Sleep(d)) => rt::sleep_until(rt::now() + d).await,
                    Some(Pending::ReadBody) => {
                        if let Some(s) = stream.as_deref_mut() {
                            if let Err(status) = s.read_body(ctx).await {
                                // As lua-nginx-module: the request ends with
                                // the error's status; the handler stops.
                                b.exit = Some(c_int::from(status));
                                break Ok(());
                            }
                        }
                    }
                    Some(Pending::Flush { eof }) => {
                        if let Some(s) = stream.as_deref_mut() {
                            if !s.flush(ctx, &mut b, eof).await {
                                // The client is gone: later output is dropped.
                                b.eof = true;
                            }
                        }
                    }
                    // ngx.exit / ngx.exec: the handler stops where it is, and
                    // its coroutine with it.
                    None if b.exit.is_some() || b.exec.is_some() => break Ok(()),
                    None => break Err(format!("attempt to yield from {} without an operation to wait for", phase.directive())),
                },
            }
        };
        self.release(h);
        let res = outcome.map_err(|e| ctx.log(Level::Error, format_args!("failed to run {}: {e}", phase.directive())));
        (res, b)
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

/// The response a handler's binding describes.
fn respond<'a>(ctx: &RequestCtx<'a>, mut b: Binding) -> Response<'a> {
    let headers = std::mem::take(&mut b.headers);
    let mut r = head(ctx, &b, headers);
    // ngx.exit(>= 300) before any output: nginx's own page for that status.
    let exit = b.exit.unwrap_or(0);
    if b.out.is_empty() && exit >= 300 {
        let mut page = Response::special(exit as u16);
        page.headers = r.headers;
        return page;
    }
    r.body = Body::Bytes(std::borrow::Cow::Owned(b.out));
    r
}

/// The head of the response `b` describes, with `headers` (b's own or a
/// copy) and no body: for the end of a handler, or its first ngx.flush.
pub fn head<'a>(ctx: &RequestCtx<'a>, b: &Binding, mut headers: Vec<(String, String)>) -> Response<'a> {
    // A relative Location becomes absolute, as nginx's header filter makes it.
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("location") && value.starts_with('/') {
            *value = crate::server::phases::absolute_url(ctx, value);
        }
    }
    let exit = b.exit.unwrap_or(0);
    let status = if b.status != 0 { b.status } else if exit >= 200 { exit as u16 } else { 200 };
    Response {
        status,
        content_type: Some(match &b.content_type {
            Some(t) => std::borrow::Cow::Owned(t.clone()),
            None => std::borrow::Cow::Borrowed(ctx.conf.default_type.as_str()),
        }),
        content_length: None,
        headers,
        body: Body::Empty,
        special: false,
        close: false,
    }
}
