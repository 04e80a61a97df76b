//! The lua_CFunction twin of the hot ngx API: the same calls as classic
//! `lua_CFunction`s (arguments and results on the Lua stack, as
//! lua-nginx-module without lua-resty-core), for `lua_api_mode cfunction`
//! and for measuring FFI against them (benches/api.rs). LuaJIT cannot
//! compile a call to one (the trace stitches around it), which is what the
//! FFI versions in lualib/ avoid; a call from interpreted code is cheaper.
//!
//! Each function wraps the same safe Rust function as its `extern "C"` FFI
//! sibling in [`crate::ffi`] (`ffi::request::get_var`, `ffi::shdict::incr`,
//! `crate::api::uri::escape_to`, ...), so the two cannot drift; what lives
//! here is only what lualib's Lua does around the FFI call: argument checks,
//! building result tables, the error texts (the same words).
//!
//! They are exported (`halo_lua_*`, see build.rs) so a JIT log can name them
//! with dladdr instead of printing a bare address.
//!
//! Errors: a Lua error unwinds the Rust frames of the function raising it,
//! so [`raise`] is called only where no Rust value needing a drop is alive.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use mlua::ffi::{self as lua, lua_State};
use mlua::{Lua, Table, Value};

mod regex;
mod request;
mod shdict;
mod utility;

pub use utility::{halo_lua_now, halo_lua_time};

/// The running thread of a lua_CFunction.
type State = *mut lua_State;

/// Raises `msg` as Lua's `error(msg, 2)` from an API function would: with
/// the position of the function that called the lua_CFunction.
///
/// # Safety
/// `l` is the running thread, inside a lua_CFunction; no value that needs
/// a drop may be alive in the Rust frames between here and Lua.
unsafe fn raise(l: State, msg: String) -> ! {
    // SAFETY: `l` is valid (caller's contract); three slots at most.
    unsafe {
        lua::luaL_where(l, 1);
        push(l, msg.as_bytes());
        drop(msg);
        lua::lua_concat(l, 2);
        lua::lua_error(l)
    }
}

/// Pushes `b` as a Lua string (copied).
///
/// # Safety
/// `l` is valid with a free stack slot.
unsafe fn push(l: State, b: &[u8]) {
    // SAFETY: caller's contract; `b` is valid for its length.
    unsafe { lua::lua_pushlstring(l, b.as_ptr().cast::<c_char>(), b.len()) };
}

/// The string at `idx`, if it is one (a number is not).
///
/// # Safety
/// `l` is valid; the bytes live while the value stays on the stack.
unsafe fn string_at<'a>(l: State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_type(l, idx) != lua::LUA_TSTRING {
            return None;
        }
        let mut len = 0;
        let p = lua::lua_tolstring(l, idx, &mut len);
        Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
    }
}

/// Lua's `tostring(v)` of the value at `idx` (absolute), which it replaces.
///
/// # Safety
/// `l` is valid with two free slots; `idx` is an absolute index. A
/// `__tostring` metamethod may raise.
unsafe fn tostring_at<'a>(l: State, idx: c_int) -> &'a [u8] {
    // SAFETY: caller's contract.
    unsafe {
        if !matches!(lua::lua_type(l, idx), lua::LUA_TSTRING | lua::LUA_TNUMBER) {
            lua::lua_getfield(l, lua::LUA_GLOBALSINDEX, c"tostring".as_ptr());
            lua::lua_pushvalue(l, idx);
            lua::lua_call(l, 1, 1);
            lua::lua_replace(l, idx);
        }
        let mut len = 0;
        let p = lua::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            return b"";
        }
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// The type name of the value at `idx` ("nil" for none).
///
/// # Safety
/// `l` is valid.
unsafe fn type_name(l: State, idx: c_int) -> &'static str {
    // SAFETY: caller's contract; lua_typename returns a static string.
    let t = unsafe { lua::lua_type(l, idx) };
    match t {
        lua::LUA_TNONE | lua::LUA_TNIL => "nil",
        // SAFETY: as above.
        _ => unsafe { CStr::from_ptr(lua::lua_typename(l, t)) }.to_str().unwrap_or("?"),
    }
}

/// Pushes the registry's `key` (a value this module put there).
///
/// # Safety
/// `l` is valid with a free slot.
unsafe fn registry(l: State, key: &CStr) {
    // SAFETY: caller's contract.
    unsafe { lua::lua_getfield(l, lua::LUA_REGISTRYINDEX, key.as_ptr()) };
}

/// The running request for the API lua-resty-core has over FFI (ngx.var,
/// ngx.ctx, ngx.header, ngx.req.*): raises resty.core.phase's no_request.
///
/// # Safety
/// As [`raise`].
unsafe fn ffi_request(l: State) -> u64 {
    let r = crate::lua::context::current_request();
    if r == 0 {
        let msg = if crate::lua::context::current() != 0 { "API disabled in the current context" } else { "no request found" };
        // SAFETY: caller's contract.
        unsafe { raise(l, msg.into()) }
    }
    r
}

/// The running request for the API lua-nginx-module has in C (ngx.say,
/// ngx.exit): raises resty.core.phase's request() texts.
///
/// # Safety
/// As [`raise`].
unsafe fn c_request(l: State) -> u64 {
    let r = crate::lua::context::current_request();
    if r == 0 {
        let cx = crate::lua::context::current();
        let msg = if cx != 0 { disabled(cx) } else { "no request found".into() };
        // SAFETY: caller's contract.
        unsafe { raise(l, msg) }
    }
    r
}

/// resty.core.phase's disabled(r): "API disabled in the context of ...".
fn disabled(r: u64) -> String {
    const NAMES: [&str; 9] = ["rewrite", "access", "content", "log", "header_filter", "body_filter", "set", "timer", "balancer"];
    let phase = crate::ffi::request::halo_ffi_request_get_phase(r);
    match usize::try_from(phase).ok().and_then(|p| p.checked_sub(1)).and_then(|i| NAMES.get(i)) {
        Some(&"timer") => "API disabled in the context of ngx.timer".into(),
        Some(name) => format!("API disabled in the context of {name}_by_lua*"),
        None => "API disabled in the context of unknown_by_lua*".into(),
    }
}

/// A lua_CFunction as an mlua function.
fn cfn(lua: &Lua, f: lua::lua_CFunction) -> mlua::Result<mlua::Function> {
    // SAFETY: every function of this module follows the lua_CFunction
    // protocol and raises errors only through `raise` (or Lua's own calls).
    unsafe { lua.create_c_function(f) }
}

/// A shallow copy of table `t` (raw fields, the same metatable: lualib's
/// guard of what halo does not support), for a twin that replaces some.
fn copy(lua: &Lua, t: &Table) -> mlua::Result<Table> {
    let c = lua.create_table()?;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        c.raw_set(k, v)?;
    }
    c.set_metatable(t.metatable())?;
    Ok(c)
}

/// A table whose reads and writes are the lua_CFunctions `get` and `set`
/// (ngx.var, ngx.header).
fn proxy(lua: &Lua, get: lua::lua_CFunction, set: lua::lua_CFunction) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", cfn(lua, get)?)?;
    mt.set("__newindex", cfn(lua, set)?)?;
    t.set_metatable(Some(mt))?;
    Ok(t)
}

/// The `ngx` table of `lua_api_mode cfunction`: the VM's `ngx` (filled by
/// lualib) with the hot API replaced by its lua_CFunction twin. Fields it
/// does not replace are the same values; other reads and writes of fields
/// it does not hold (ngx.headers_sent, a user's ngx.foo) go to `ngx`.
pub fn ngx_table(lua: &Lua) -> mlua::Result<Table> {
    let require: mlua::Function = lua.globals().get("require")?;
    let ngx: Table = lua.globals().get("ngx")?;
    // What the twins share with lualib, found at run time in the registry.
    lua.set_named_registry_value("halo.capi.ngx", &ngx)?;
    lua.set_named_registry_value("halo.capi.ctxs", require.call::<Table>("resty.core.ctx")?.get::<Table>("ctxs")?)?;
    lua.set_named_registry_value("halo.capi.headers_mt", require.call::<Table>("resty.core.request")?.get::<Table>("headers_mt")?)?;
    lua.set_named_registry_value("halo.capi.api_yield", require.call::<Table>("resty.core.coroutine")?.get::<Table>("API_YIELD")?)?;
    lua.set_named_registry_value("halo.capi.regex_state", require.call::<Table>("resty.core.regex")?.get::<Table>("cache_state")?)?;
    lua.set_named_registry_value("halo.capi.clear_tab", require.call::<Table>("resty.core.base")?.get::<mlua::Function>("clear_tab")?)?;

    let c = copy(lua, &ngx)?;
    c.raw_set("var", proxy(lua, request::halo_lua_var_get, request::halo_lua_var_set)?)?;
    c.raw_set("header", proxy(lua, request::halo_lua_header_get, request::halo_lua_header_set)?)?;
    let req = copy(lua, &ngx.raw_get::<Table>("req")?)?;
    req.raw_set("get_method", cfn(lua, request::halo_lua_req_get_method)?)?;
    req.raw_set("get_headers", cfn(lua, request::halo_lua_req_get_headers)?)?;
    req.raw_set("get_uri_args", cfn(lua, request::halo_lua_req_get_uri_args)?)?;
    c.raw_set("req", req)?;
    c.raw_set("say", cfn(lua, request::halo_lua_say)?)?;
    c.raw_set("print", cfn(lua, request::halo_lua_print)?)?;
    c.raw_set("exit", cfn(lua, request::halo_lua_exit)?)?;
    c.raw_set("now", cfn(lua, halo_lua_now)?)?;
    c.raw_set("time", cfn(lua, halo_lua_time)?)?;
    c.raw_set("escape_uri", cfn(lua, utility::halo_lua_escape_uri)?)?;
    c.raw_set("encode_base64", cfn(lua, utility::halo_lua_encode_base64)?)?;
    c.raw_set("md5", cfn(lua, utility::halo_lua_md5)?)?;
    let re = copy(lua, &ngx.raw_get::<Table>("re")?)?;
    re.raw_set("match", cfn(lua, regex::halo_lua_re_match)?)?;
    re.raw_set("find", cfn(lua, regex::halo_lua_re_find)?)?;
    re.raw_set("gsub", cfn(lua, regex::halo_lua_re_gsub)?)?;
    c.raw_set("re", re)?;
    c.raw_set("shared", shdict::shared(lua, &require, &ngx)?)?;
    // ngx.status and ngx.ctx are fields with getters and setters.
    let mt = lua.create_table()?;
    mt.set("__index", cfn(lua, request::halo_lua_ngx_index)?)?;
    mt.set("__newindex", cfn(lua, request::halo_lua_ngx_newindex)?)?;
    c.set_metatable(Some(mt))?;
    Ok(c)
}

/// The `halo.capi` table: now() and time(), for the JIT tooling's tests of
/// a stitch around a C function of halo's.
pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("now", cfn(lua, halo_lua_now)?)?;
    t.set("time", cfn(lua, halo_lua_time)?)?;
    Ok(t)
}
