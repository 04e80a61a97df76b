//! The twins of ngx.var, ngx.header, ngx.status, ngx.ctx,
//! ngx.req.get_method / get_headers / get_uri_args, ngx.say / ngx.print and
//! ngx.exit (lualib/resty/core/var.lua, response.lua, ctx.lua, request.lua,
//! output.lua, exit.lua), over the same functions of crate::ffi::request.

use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::c_int;

use mlua::ffi as lua;

use super::{c_request, disabled, ffi_request, push, raise, registry, string_at, tostring_at, type_name, State};
use crate::ffi::request::{self as api, Header};
use crate::ffi::{BAD_CONTEXT, DECLINED, ERROR, OK};

thread_local! {
    /// Header and argument entries the core fills, taken for a call.
    static PAIRS: Cell<Vec<Header>> = const { Cell::new(Vec::new()) };
    /// ngx.say's flattened output, taken for a call.
    static OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Lua's tostring of the value at `idx`, as an owned text for a message.
///
/// # Safety
/// As [`tostring_at`].
unsafe fn text_of(l: State, idx: c_int) -> String {
    // SAFETY: caller's contract.
    String::from_utf8_lossy(unsafe { tostring_at(l, idx) }).into_owned()
}

/// `ngx.var[name]` (the `__index` of ngx.var).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_var_get(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let name = match lua::lua_type(l, 2) {
            // ngx.var[1]: regex capture $1.
            lua::LUA_TSTRING | lua::LUA_TNUMBER => tostring_at(l, 2),
            _ => {
                let n = text_of(l, 2);
                raise(l, format!("bad variable name: {n}"))
            }
        };
        let r = ffi_request(l);
        match api::get_var(r, name) {
            Ok(v) => push(l, v.bytes()),
            Err(_) => lua::lua_pushnil(l),
        }
    }
    1
}

/// `ngx.var[name] = value` (the `__newindex` of ngx.var).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_var_set(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let Some(name) = string_at(l, 2) else {
            let n = text_of(l, 2);
            raise(l, format!("bad variable name: {n}"))
        };
        let r = ffi_request(l);
        let value = if lua::lua_isnil(l, 3) != 0 { b"" } else { tostring_at(l, 3) };
        let rc = api::set_var(r, name, value);
        if rc == OK {
            return 0;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if rc == DECLINED {
            raise(
                l,
                format!(
                    "variable \"{name}\" not found for writing; maybe it is a built-in variable that is not changeable or you forgot to use \"set ${name} '';\" in the config file to define it first"
                ),
            )
        }
        raise(l, format!("variable \"{name}\" not changeable"))
    }
}

/// The header name argument (2) of ngx.header's metamethods.
///
/// # Safety
/// As [`raise`].
unsafe fn header_name<'a>(l: State) -> &'a [u8] {
    // SAFETY: caller's contract.
    unsafe {
        match string_at(l, 2) {
            Some(n) => n,
            None => {
                let t = type_name(l, 2);
                raise(l, format!("bad argument #1 to 'ngx.header' (string expected, got {t})"))
            }
        }
    }
}

/// `ngx.header[name]` (the `__index` of ngx.header).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_header_get(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; one slot is pushed.
    unsafe {
        let name = header_name(l);
        let r = ffi_request(l);
        match api::get_resp_header(r, name) {
            Ok(v) => push(l, v.bytes()),
            Err(_) => lua::lua_pushnil(l),
        }
    }
    1
}

/// Raises what the core said of a header change, as response.lua's check().
///
/// # Safety
/// As [`raise`].
unsafe fn check_header(l: State, r: u64, rc: Result<c_int, &'static CStr>) {
    match rc {
        // SAFETY (both): caller's contract.
        Ok(BAD_CONTEXT) => unsafe { raise(l, disabled(r)) },
        Err(msg) => unsafe { raise(l, msg.to_string_lossy().into_owned()) },
        Ok(_) => {}
    }
}

/// `ngx.header[name] = value` (the `__newindex` of ngx.header): a string,
/// number, boolean, nil (unset) or a table of values (one line each).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_header_set(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let name = header_name(l);
        let r = ffi_request(l);
        match lua::lua_type(l, 3) {
            lua::LUA_TNONE | lua::LUA_TNIL => check_header(l, r, api::set_header(r, name, None)),
            lua::LUA_TTABLE => {
                check_header(l, r, api::set_header(r, name, None));
                for i in 1..=lua::lua_objlen(l, 3) {
                    lua::lua_rawgeti(l, 3, i as _);
                    let v = tostring_at(l, 4);
                    check_header(l, r, api::add_header(r, name, v));
                    lua::lua_settop(l, 3);
                }
            }
            lua::LUA_TSTRING | lua::LUA_TNUMBER | lua::LUA_TBOOLEAN => {
                let v = tostring_at(l, 3);
                check_header(l, r, api::set_header(r, name, Some(v)));
            }
            _ => {
                let (n, t) = (String::from_utf8_lossy(name).into_owned(), type_name(l, 3));
                raise(l, format!("bad argument to 'ngx.header.{n}' (string, number, boolean, nil or table expected, got {t})"))
            }
        }
    }
    0
}

/// `ngx.req.get_method()`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_req_get_method(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; one slot is pushed.
    unsafe {
        let r = ffi_request(l);
        match api::get_method(r) {
            Ok(m) => push(l, m.bytes()),
            Err(_) => raise(l, "no request found".into()),
        }
    }
    1
}

/// request.lua's limit(): argument 1, 100 when nil.
///
/// # Safety
/// As [`raise`].
unsafe fn limit(l: State, fname: &str) -> f64 {
    // SAFETY: caller's contract.
    unsafe {
        match lua::lua_type(l, 1) {
            lua::LUA_TNONE | lua::LUA_TNIL => 100.0,
            lua::LUA_TNUMBER => lua::lua_tonumber(l, 1),
            _ => {
                let t = type_name(l, 1);
                raise(l, format!("bad argument #1 to '{fname}' (number expected, got {t})"))
            }
        }
    }
}

/// Adds the filled pairs to the table at the top of the stack as
/// string.lua's args_table: name -> value (true when there is no value),
/// a list for a repeated name.
///
/// # Safety
/// `l` is valid with four free slots; the pairs' bytes are still lent.
unsafe fn add_pairs(l: State, pairs: &[Header]) {
    for p in pairs {
        let (name, value) = p.lent();
        // SAFETY: caller's contract; the stack is back at the table after each.
        unsafe {
            push(l, name.bytes());
            lua::lua_pushvalue(l, -1);
            lua::lua_rawget(l, -3);
            let push_value = |l: State| match value {
                Some(v) => push(l, v.bytes()),
                None => lua::lua_pushboolean(l, 1),
            };
            match lua::lua_type(l, -1) {
                lua::LUA_TNIL => {
                    lua::lua_settop(l, -2);
                    push_value(l);
                    lua::lua_rawset(l, -3);
                }
                lua::LUA_TTABLE => {
                    let n = lua::lua_objlen(l, -1);
                    push_value(l);
                    lua::lua_rawseti(l, -2, (n + 1) as _);
                    lua::lua_settop(l, -3);
                }
                _ => {
                    lua::lua_createtable(l, 2, 0);
                    lua::lua_insert(l, -2);
                    lua::lua_rawseti(l, -2, 1);
                    push_value(l);
                    lua::lua_rawseti(l, -2, 2);
                    lua::lua_rawset(l, -3);
                }
            }
        }
    }
}

/// `ngx.req.get_headers(max_headers?, raw?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_req_get_headers(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let r = ffi_request(l);
        let max = limit(l, "get_headers");
        let raw = lua::lua_toboolean(l, 2) != 0;
        let mut n = api::halo_ffi_request_header_count(r).max(0) as usize;
        if max > 0.0 && n as f64 > max {
            n = max as usize;
        }
        let mut pairs = PAIRS.take();
        pairs.clear();
        pairs.resize(n, Header::EMPTY);
        let got = api::get_headers(r, &mut pairs, !raw);
        if got < 0 {
            PAIRS.set(pairs);
            lua::lua_pushnil(l);
            lua::lua_pushnumber(l, f64::from(got));
            return 2;
        }
        lua::lua_createtable(l, 0, got);
        add_pairs(l, &pairs[..got as usize]);
        PAIRS.set(pairs);
        if !raw {
            registry(l, c"halo.capi.headers_mt");
            lua::lua_setmetatable(l, -2);
        }
    }
    1
}

/// `ngx.req.get_uri_args(max_args?, tab?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_req_get_uri_args(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let r = ffi_request(l);
        let mut max = limit(l, "get_uri_args");
        if max < 0.0 {
            max = 100.0; // as lua-resty-core: a negative limit is the default
        }
        let max = max.min(f64::from(c_int::MAX)) as c_int;
        let mut pairs = PAIRS.take();
        if pairs.len() < 32 {
            pairs.resize(32, Header::EMPTY);
        }
        let mut truncated = 0;
        let mut n = api::get_uri_args(r, &mut pairs, max, &mut truncated);
        if n as usize > pairs.len() {
            pairs.resize(n as usize, Header::EMPTY);
            n = api::get_uri_args(r, &mut pairs, max, &mut truncated);
        }
        if n < 0 {
            PAIRS.set(pairs);
            lua::lua_pushnil(l);
            let msg: &[u8] = if n == ERROR { b"request body in temp file not supported" } else { b"request body not read" };
            push(l, msg);
            return 2;
        }
        if lua::lua_toboolean(l, 2) != 0 {
            // Filled after clear_tab(tab); the pairs stay lent meanwhile
            // (clear_tab calls no API).
            registry(l, c"halo.capi.clear_tab");
            lua::lua_pushvalue(l, 2);
            lua::lua_call(l, 1, 0);
            lua::lua_pushvalue(l, 2);
        } else {
            lua::lua_createtable(l, 0, n);
        }
        add_pairs(l, &pairs[..n as usize]);
        PAIRS.set(pairs);
        if truncated != 0 {
            push(l, b"truncated");
            return 2;
        }
    }
    1
}

/// Appends the value at `idx` (absolute) to `out` as output.lua's flatten:
/// strings, numbers, booleans, nil, ngx.null and (nested) array tables.
/// Err: the type name of a value that cannot be output.
///
/// # Safety
/// `l` is valid with two free slots per table level.
unsafe fn flatten(l: State, idx: c_int, out: &mut Vec<u8>) -> Result<(), &'static str> {
    // SAFETY: caller's contract.
    unsafe {
        match lua::lua_type(l, idx) {
            lua::LUA_TSTRING | lua::LUA_TNUMBER => {
                let mut len = 0;
                let p = lua::lua_tolstring(l, idx, &mut len);
                out.extend_from_slice(std::slice::from_raw_parts(p.cast::<u8>(), len));
            }
            lua::LUA_TBOOLEAN => out.extend_from_slice(if lua::lua_toboolean(l, idx) != 0 { b"true" } else { b"false" }),
            lua::LUA_TNIL | lua::LUA_TNONE => out.extend_from_slice(b"nil"),
            lua::LUA_TLIGHTUSERDATA if lua::lua_touserdata(l, idx).is_null() => out.extend_from_slice(b"null"),
            lua::LUA_TTABLE => {
                if lua::lua_checkstack(l, 2) == 0 {
                    return Err("table");
                }
                for i in 1..=lua::lua_objlen(l, idx) {
                    lua::lua_rawgeti(l, idx, i as _);
                    let r = flatten(l, lua::lua_gettop(l), out);
                    lua::lua_settop(l, -2);
                    r?;
                }
            }
            _ => return Err(type_name(l, idx)),
        }
    }
    Ok(())
}

/// ngx.print / ngx.say: the arguments flattened, then one write.
///
/// # Safety
/// As a lua_CFunction.
unsafe fn output(l: State, fname: &str, newline: bool) -> c_int {
    // SAFETY: `l` is the calling thread.
    unsafe {
        let r = c_request(l);
        let mut out = OUT.take();
        out.clear();
        let mut res = Ok(());
        for i in 1..=lua::lua_gettop(l) {
            res = flatten(l, i, &mut out);
            if res.is_err() {
                break;
            }
        }
        if newline {
            out.push(b'\n');
        }
        let rc = if res.is_ok() { api::write(r, &out) } else { OK };
        OUT.set(out);
        if let Err(t) = res {
            raise(l, format!("bad argument to '{fname}' (string, number, boolean, nil, ngx.null, or array table expected, got {t})"))
        }
        if rc == BAD_CONTEXT {
            raise(l, disabled(r))
        }
        if rc == DECLINED {
            lua::lua_pushnil(l);
            push(l, b"seen eof");
            return 2;
        }
        lua::lua_pushnumber(l, 1.0);
    }
    1
}

/// `ngx.say(...)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_say(l: State) -> c_int {
    // SAFETY: forwarded.
    unsafe { output(l, "say", true) }
}

/// `ngx.print(...)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_print(l: State) -> c_int {
    // SAFETY: forwarded.
    unsafe { output(l, "print", false) }
}

/// `ngx.exit(status)`: records the status, then yields the handler's
/// coroutine to the core with resty.core.coroutine's API sentinel (so a
/// user coroutine passes it up, as for the FFI version).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_exit(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        if lua::lua_type(l, 1) != lua::LUA_TNUMBER {
            let t = type_name(l, 1);
            raise(l, format!("bad argument #1 to 'exit' (number expected, got {t})"))
        }
        let status = lua::lua_tonumber(l, 1);
        let r = c_request(l);
        let rc = api::halo_ffi_request_exit(r, status);
        if rc == BAD_CONTEXT {
            raise(l, disabled(r))
        }
        if rc == DECLINED {
            if status == f64::from(crate::ffi::AGAIN) || status == f64::from(crate::ffi::DONE) {
                raise(l, "bad argument to 'ngx.exit': does not accept NGX_AGAIN or NGX_DONE".into())
            }
            let s = String::from_utf8_lossy(tostring_at(l, 1)).into_owned();
            raise(l, format!("bad argument #1 to 'exit' (invalid status code {s})"))
        }
        lua::lua_settop(l, 0);
        registry(l, c"halo.capi.api_yield");
        lua::lua_yield(l, 1)
    }
}

/// Pushes the request's ngx.ctx table (made on first use), shared with
/// resty.core.ctx's store.
///
/// # Safety
/// `l` is valid with three free slots; `r` names the running request.
unsafe fn push_ctx(l: State, r: u64) {
    let id = api::halo_ffi_request_id(r);
    // SAFETY: caller's contract.
    unsafe {
        registry(l, c"halo.capi.ctxs");
        lua::lua_pushnumber(l, id);
        lua::lua_rawget(l, -2);
        if lua::lua_isnil(l, -1) != 0 {
            lua::lua_settop(l, -2);
            lua::lua_createtable(l, 0, 4);
            lua::lua_pushnumber(l, id);
            lua::lua_pushvalue(l, -2);
            lua::lua_rawset(l, -4);
            api::halo_ffi_request_keep_ctx(r);
        }
        lua::lua_remove(l, -2);
    }
}

/// The `__index` of the twin's ngx: ngx.status, ngx.ctx; anything else
/// is read from the VM's ngx.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_ngx_index(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        match string_at(l, 2) {
            Some(b"status") => {
                let r = ffi_request(l);
                lua::lua_pushnumber(l, f64::from(api::halo_ffi_request_get_status(r)));
            }
            Some(b"ctx") => {
                let r = ffi_request(l);
                push_ctx(l, r);
            }
            _ => {
                // ngx[key], whose metamethods (lualib's) raise at their
                // caller, this C function, which has no position: the error
                // is raised again with the position of the indexing code.
                lua::lua_pushcfunction(l, halo_lua_ngx_get);
                registry(l, c"halo.capi.ngx");
                lua::lua_pushvalue(l, 2);
                if lua::lua_pcall(l, 2, 1, 0) != 0 {
                    lua::luaL_where(l, 1);
                    lua::lua_insert(l, -2);
                    lua::lua_concat(l, 2);
                    lua::lua_error(l);
                }
            }
        }
    }
    1
}

/// `t[k]`, for [`halo_lua_ngx_index`]'s protected call.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_ngx_get(l: State) -> c_int {
    // SAFETY: `l` is the calling thread, with (t, k) on its stack.
    unsafe { lua::lua_gettable(l, 1) };
    1
}

/// The `__newindex` of the twin's ngx: ngx.status = n, ngx.ctx = t;
/// anything else is written to the VM's ngx.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_ngx_newindex(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        match string_at(l, 2) {
            Some(b"status") => {
                let r = ffi_request(l);
                if lua::lua_type(l, 3) != lua::LUA_TNUMBER {
                    let t = type_name(l, 3);
                    raise(l, format!("bad argument to 'ngx.status' (number expected, got {t})"))
                }
                let rc = api::halo_ffi_request_set_status(r, lua::lua_tonumber(l, 3));
                if rc == BAD_CONTEXT {
                    raise(l, disabled(r))
                }
                if rc != OK {
                    let v = String::from_utf8_lossy(tostring_at(l, 3)).into_owned();
                    raise(l, format!("invalid HTTP status code {v}"))
                }
            }
            Some(b"ctx") => {
                let r = ffi_request(l);
                if lua::lua_type(l, 3) != lua::LUA_TTABLE {
                    let t = type_name(l, 3);
                    raise(l, format!("ctx should be a table while getting a {t}"))
                }
                registry(l, c"halo.capi.ctxs");
                lua::lua_pushnumber(l, api::halo_ffi_request_id(r));
                lua::lua_pushvalue(l, 3);
                lua::lua_rawset(l, -3);
                api::halo_ffi_request_keep_ctx(r);
            }
            _ => {
                registry(l, c"halo.capi.ngx");
                lua::lua_pushvalue(l, 2);
                lua::lua_pushvalue(l, 3);
                lua::lua_settable(l, -3);
            }
        }
    }
    0
}
