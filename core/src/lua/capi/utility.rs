//! The twins of ngx.now, ngx.time, ngx.escape_uri, ngx.encode_base64 and
//! ngx.md5 (lualib/resty/core/time.lua, string.lua, base64.lua, hash.lua),
//! over the same functions as their FFI (crate::ffi::time, crate::api).

use std::cell::Cell;
use std::os::raw::c_int;

use mlua::ffi as lua;

use super::{push, raise, tostring_at, State};
use crate::api::base64::{self as b64, Alpha};
use crate::api::{digest, uri};

thread_local! {
    /// The output buffer of the string functions, taken for a call (so
    /// nothing stays borrowed while Lua copies the result).
    static BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on the output buffer (cleared), then pushes what it wrote.
///
/// # Safety
/// `l` is valid with a free slot.
unsafe fn push_made(l: State, f: impl FnOnce(&mut Vec<u8>)) {
    let mut buf = BUF.take();
    buf.clear();
    f(&mut buf);
    // SAFETY: caller's contract.
    unsafe { push(l, &buf) };
    BUF.set(buf);
}

/// resty.core.base's as_string for argument 1: nil and false are "",
/// other values tostring(value).
///
/// # Safety
/// `l` is valid with two free slots.
unsafe fn as_string<'a>(l: State) -> &'a [u8] {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_toboolean(l, 1) == 0 {
            return b"";
        }
        tostring_at(l, 1)
    }
}

/// `ngx.now()` (and `halo.capi.now()`).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_now(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; one slot is pushed, within LUA_MINSTACK.
    unsafe { lua::lua_pushnumber(l, crate::ffi::time::halo_ffi_time_now()) };
    1
}

/// `ngx.time()` (and `halo.capi.time()`).
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_time(l: State) -> c_int {
    // SAFETY: as in halo_lua_now.
    unsafe { lua::lua_pushnumber(l, crate::ffi::time::halo_ffi_time_time()) };
    1
}

/// `ngx.escape_uri(str, type?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_escape_uri(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let kind = match lua::lua_type(l, 2) {
            lua::LUA_TNONE | lua::LUA_TNIL => uri::Escape::UriComponent,
            lua::LUA_TNUMBER => {
                let t = lua::lua_tonumber(l, 2);
                // As the FFI call's int argument: in range, then truncated.
                match (0.0..=6.0).contains(&t).then(|| uri::Escape::from_type(t as i32)).flatten() {
                    Some(k) => k,
                    None => {
                        let n = String::from_utf8_lossy(tostring_at(l, 2)).into_owned();
                        raise(l, format!("\"type\" {n} out of range"))
                    }
                }
            }
            _ => raise(l, "\"type\" is not a number".into()),
        };
        let s = as_string(l);
        if uri::escaped_len(s, kind) == s.len() {
            lua::lua_settop(l, 1);
            if lua::lua_type(l, 1) != lua::LUA_TSTRING {
                lua::lua_pushlstring(l, s.as_ptr().cast(), s.len());
            }
            return 1;
        }
        push_made(l, |out| uri::escape_into(s, kind, out));
    }
    1
}

/// `ngx.encode_base64(str, no_padding?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_encode_base64(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let pad = match lua::lua_type(l, 2) {
            lua::LUA_TNONE | lua::LUA_TNIL => true,
            lua::LUA_TBOOLEAN => lua::lua_toboolean(l, 2) == 0,
            _ => {
                let t = super::type_name(l, 2);
                raise(l, format!("bad no_padding: boolean expected, got {t}"))
            }
        };
        let s = as_string(l);
        push_made(l, |out| {
            out.resize(b64::encoded_len(s.len(), pad), 0);
            let n = b64::encode_to(s, Alpha::Standard, pad, out).unwrap_or(0);
            out.truncate(n);
        });
    }
    1
}

/// `ngx.md5(str)`: 32 hex digits.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_md5(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let sum = digest::md5(as_string(l));
        let mut hex = [0u8; 32];
        let n = digest::hex_to(&sum, &mut hex).unwrap_or(0);
        push(l, &hex[..n]);
    }
    1
}
