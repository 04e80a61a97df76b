//! The twins of ngx.shared.DICT:get, :set and :incr
//! (lualib/resty/core/shdict.lua), over the same functions of
//! crate::ffi::shdict. The twin's ngx.shared holds zone objects of the same
//! shape ({ zone index }) whose methods are shdict.lua's, these three
//! replaced.

use std::ffi::CStr;
use std::os::raw::c_int;

use mlua::ffi as lua;
use mlua::{Lua, Table};

use super::{cfn, copy, push, raise, tostring_at, type_name, State};
use crate::ffi::shdict::{self as api, Out};
use crate::ffi::OK;
use crate::shdict::Value;

/// The twin's ngx.shared: a zone object per zone of `ngx.shared`.
pub(super) fn shared(lua: &Lua, require: &mlua::Function, ngx: &Table) -> mlua::Result<Table> {
    let methods = copy(lua, &require.call::<Table>("resty.core.shdict")?.get::<Table>("methods")?)?;
    methods.raw_set("get", cfn(lua, halo_lua_shdict_get)?)?;
    methods.raw_set("set", cfn(lua, halo_lua_shdict_set)?)?;
    methods.raw_set("incr", cfn(lua, halo_lua_shdict_incr)?)?;
    let mt = lua.create_table()?;
    mt.raw_set("__index", methods)?;
    let shared = lua.create_table()?;
    for pair in ngx.raw_get::<Table>("shared")?.pairs::<mlua::Value, Table>() {
        let (name, zone) = pair?;
        let z = lua.create_table()?;
        z.raw_set(1, zone.raw_get::<c_int>(1)?)?;
        z.set_metatable(Some(mt.clone()))?;
        shared.raw_set(name, z)?;
    }
    Ok(shared)
}

/// shdict.lua's check_zone: the zone index of argument 1.
///
/// # Safety
/// As [`raise`].
unsafe fn zone(l: State) -> c_int {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_type(l, 1) == lua::LUA_TTABLE {
            lua::lua_rawgeti(l, 1, 1);
            let ok = lua::lua_type(l, -1) == lua::LUA_TNUMBER;
            let z = lua::lua_tonumber(l, -1);
            lua::lua_settop(l, -2);
            if ok {
                return z as c_int;
            }
        }
        raise(l, "bad \"zone\" argument".into())
    }
}

/// shdict.lua's check_key for argument 2: the key, or the error to return.
///
/// # Safety
/// `l` is valid with two free slots.
unsafe fn key<'a>(l: State) -> Result<&'a [u8], &'static [u8]> {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_isnil(l, 2) != 0 {
            return Err(b"nil key");
        }
        match tostring_at(l, 2) {
            [] => Err(b"empty key"),
            k if k.len() > 65535 => Err(b"key too long"),
            k => Ok(k),
        }
    }
}

/// Returns (nil, msg) from a lua_CFunction.
///
/// # Safety
/// `l` is valid with two free slots.
unsafe fn fail(l: State, msg: &[u8]) -> c_int {
    // SAFETY: caller's contract.
    unsafe {
        lua::lua_pushnil(l);
        push(l, msg);
    }
    2
}

/// Pushes a value read from a zone.
///
/// # Safety
/// `l` is valid with a free slot; a string is still lent.
unsafe fn push_out(l: State, v: Out) {
    // SAFETY: caller's contract.
    unsafe {
        match v {
            Out::Nil => lua::lua_pushnil(l),
            Out::Boolean(b) => lua::lua_pushboolean(l, c_int::from(b)),
            Out::Number(n) => lua::lua_pushnumber(l, n),
            Out::String(s) => push(l, s.bytes()),
        }
    }
}

/// `DICT:get(key, flags?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_shdict_get(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let z = zone(l);
        let key = match key(l) {
            Ok(k) => k,
            Err(e) => return fail(l, e),
        };
        match api::get(z, key, false) {
            Ok(None) => {
                lua::lua_pushnil(l);
                1
            }
            Err(msg) => fail(l, msg.to_bytes()),
            Ok(Some(g)) => {
                // The caller has this version already: no value, true third.
                if lua::lua_type(l, 3) == lua::LUA_TNUMBER && lua::lua_tonumber(l, 3) == f64::from(g.flags) {
                    lua::lua_pushnil(l);
                    lua::lua_pushnil(l);
                    lua::lua_pushboolean(l, 1);
                    return 3;
                }
                push_out(l, g.value);
                if g.flags != 0 {
                    lua::lua_pushnumber(l, f64::from(g.flags));
                    return 2;
                }
                1
            }
        }
    }
}

/// `DICT:set(key, value, exptime?, flags?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_shdict_set(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let z = zone(l);
        let exptime = if lua::lua_toboolean(l, 4) == 0 { 0.0 } else { lua::lua_tonumber(l, 4) };
        if exptime < 0.0 {
            raise(l, "bad \"exptime\" argument".into())
        }
        let key = match key(l) {
            Ok(k) => k,
            Err(e) => return fail(l, e),
        };
        let value = match lua::lua_type(l, 3) {
            lua::LUA_TSTRING => {
                let mut len = 0;
                let p = lua::lua_tolstring(l, 3, &mut len);
                Value::String(std::slice::from_raw_parts(p.cast::<u8>(), len))
            }
            lua::LUA_TNUMBER => Value::Number(lua::lua_tonumber(l, 3)),
            lua::LUA_TNIL | lua::LUA_TNONE => Value::Nil,
            lua::LUA_TBOOLEAN => Value::Boolean(lua::lua_toboolean(l, 3) != 0),
            _ => return fail(l, b"bad value type"),
        };
        let flags = if lua::lua_toboolean(l, 5) == 0 { 0 } else { lua::lua_tonumber(l, 5) as u32 };
        let (rc, msg, forced) = api::store(z, 0, key, value, exptime * 1000.0, flags);
        lua::lua_pushboolean(l, c_int::from(rc == OK));
        match msg.filter(|_| rc != OK) {
            Some(m) => push(l, m.to_bytes()),
            None => lua::lua_pushnil(l),
        }
        lua::lua_pushboolean(l, c_int::from(forced));
    }
    3
}

/// A number argument of incr: as tonumber(), or raise `what`'s error.
///
/// # Safety
/// As [`raise`].
unsafe fn number_arg(l: State, idx: c_int, what: &str) -> f64 {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_isnumber(l, idx) == 0 {
            let t = type_name(l, idx);
            raise(l, format!("bad {what} arg: number expected, got {t}"))
        }
        lua::lua_tonumber(l, idx)
    }
}

/// `DICT:incr(key, value, init?, init_ttl?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_shdict_incr(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let z = zone(l);
        let key = match key(l) {
            Ok(k) => k,
            Err(e) => return fail(l, e),
        };
        let by = number_arg(l, 3, "value");
        let init = (lua::lua_toboolean(l, 4) != 0).then(|| number_arg(l, 4, "init"));
        let mut ttl = 0.0;
        if lua::lua_isnil(l, 5) == 0 && lua::lua_type(l, 5) != lua::LUA_TNONE {
            ttl = number_arg(l, 5, "init_ttl");
            if ttl < 0.0 {
                raise(l, "bad \"init_ttl\" argument".into())
            }
            if init.is_none() {
                raise(l, "must provide \"init\" when providing \"init_ttl\"".into())
            }
        }
        match api::incr(z, key, by, init, ttl * 1000.0) {
            Err(msg) => fail(l, CStr::to_bytes(msg)),
            Ok((n, forced)) => {
                lua::lua_pushnumber(l, n);
                if init.is_none() {
                    return 1;
                }
                lua::lua_pushnil(l);
                lua::lua_pushboolean(l, c_int::from(forced));
                3
            }
        }
    }
}
