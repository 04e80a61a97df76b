//! Running `*_by_lua*` handlers for a request: each run is a fresh coroutine
//! of the worker's VM over the handler's compiled (and cached) chunk, with
//! the request bound for the FFI calls it makes ([`crate::ffi::request`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use mlua::{Function, Lua, ThreadStatus};

use crate::conf::{Config, LuaCode, LuaSource};
use crate::ffi::request::{bind, Binding};
use crate::log::Level;
use crate::server::phases::{Body, Response};
use crate::server::vars::RequestCtx;

/// A worker's VM and its compiled handlers.
pub struct LuaHandlers {
    pub vm: Lua,
    /// Compiled chunks by the address of their `LuaCode` (one per directive
    /// for the life of the configuration), as `lua_code_cache on`.
    cache: RefCell<HashMap<usize, Function>>,
}

impl LuaHandlers {
    /// The VM for `cfg`: lualib loaded, package paths from the config.
    pub fn new(cfg: &Config) -> mlua::Result<LuaHandlers> {
        let vm = super::new_vm(&cfg.prefix, cfg.http.lua_package_path.as_deref(), cfg.http.lua_package_cpath.as_deref())?;
        Ok(LuaHandlers { vm, cache: RefCell::new(HashMap::new()) })
    }

    fn function(&self, code: &Arc<LuaCode>) -> Result<Function, String> {
        let key = Arc::as_ptr(code) as usize;
        if let Some(f) = self.cache.borrow().get(&key) {
            return Ok(f.clone());
        }
        let f = match &code.source {
            LuaSource::Inline(src) => self.vm.load(src.as_str()).set_name(format!("={}", code.chunkname)).into_function(),
            LuaSource::File(path) => match std::fs::read(path) {
                Ok(src) => self.vm.load(src).set_name(format!("@{}", path.display())).into_function(),
                Err(e) => return Err(format!("failed to load Lua file \"{}\": {e}", path.display())),
            },
        }
        .map_err(|e| e.to_string())?;
        self.cache.borrow_mut().insert(key, f.clone());
        Ok(f)
    }

    /// Run a content handler; its output becomes the response.
    pub fn run_content<'a>(&self, ctx: &mut RequestCtx<'a>, code: &Arc<LuaCode>) -> Response<'a> {
        let f = match self.function(code) {
            Ok(f) => f,
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to load content_by_lua*: {e}"));
                return Response::special(500);
            }
        };
        let mut b = Binding::new(ctx);
        let outcome = bind(&mut b, || self.resume(&f));
        // ngx.exit yields; any other yield of the handler itself would wait
        // for the event loop (ngx.sleep, cosockets), which is not built yet.
        let outcome = match outcome {
            Ok(true) if b.exit.is_none() => {
                Err("attempt to yield from content_by_lua*: yielding APIs are not supported yet".to_string())
            }
            other => other.map(drop),
        };
        match outcome {
            Ok(()) => respond(ctx, b),
            Err(e) => {
                ctx.log(Level::Error, format_args!("failed to run content_by_lua*: {e}"));
                if b.out.is_empty() {
                    Response::special(500)
                } else {
                    // Part of the body is out: send it, then close, so the
                    // client sees a cut response rather than a complete one.
                    let mut r = respond(ctx, b);
                    r.close = true;
                    r
                }
            }
        }
    }

    /// Run `f` in a new coroutine whose globals are its own (over _G), until
    /// it returns or yields; Ok(true) when it yielded.
    fn resume(&self, f: &Function) -> Result<bool, String> {
        let run = || -> mlua::Result<Result<bool, String>> {
            let env = self.vm.create_table()?;
            let meta = self.vm.create_table()?;
            meta.set("__index", self.vm.globals())?;
            env.set_metatable(Some(meta))?;
            let setfenv: Function = self.vm.globals().get("setfenv")?;
            setfenv.call::<()>((f.clone(), env))?;
            let co = self.vm.create_thread(f.clone())?;
            match co.resume::<mlua::MultiValue>(()) {
                Ok(_) => Ok(Ok(co.status() == ThreadStatus::Resumable)),
                Err(e) => Ok(Err(error_text(e))),
            }
        };
        run().unwrap_or_else(|e| Err(e.to_string()))
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
fn respond<'a>(ctx: &RequestCtx<'a>, b: Binding) -> Response<'a> {
    let exit = b.exit.unwrap_or(0);
    let status = if b.status != 0 { b.status } else if exit >= 200 { exit as u16 } else { 200 };
    // ngx.exit(>= 300) before any output: nginx's own page for that status.
    if b.out.is_empty() && exit >= 300 {
        let mut r = Response::special(exit as u16);
        r.headers = b.headers;
        return r;
    }
    Response {
        status,
        content_type: Some(match b.content_type {
            Some(t) => std::borrow::Cow::Owned(t),
            None => std::borrow::Cow::Borrowed(ctx.conf.default_type.as_str()),
        }),
        content_length: None,
        headers: b.headers,
        body: Body::Bytes(std::borrow::Cow::Owned(b.out)),
        special: false,
        close: false,
    }
}
