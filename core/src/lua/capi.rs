//! `require "halo.capi"`: a few ngx API calls as classic `lua_CFunction`s,
//! the style lua-nginx-module uses without lua-resty-core. LuaJIT cannot
//! compile a call to one (the trace stitches around it), which is what the
//! FFI versions in lualib/ avoid; these exist to measure that difference and
//! so the JIT tooling has a real C function of halo's to name.
//!
//! They are exported (`halo_lua_*`, see build.rs) so a JIT log can name them
//! with dladdr instead of printing a bare address.

use std::os::raw::c_int;

use mlua::ffi::lua_State;
use mlua::{Lua, Table};

/// `halo.capi.now()`: like `ngx.now()`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_now(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is the calling thread; one slot is pushed, within LUA_MINSTACK.
    unsafe { mlua::ffi::lua_pushnumber(l, crate::log::time::ngx_now()) };
    1
}

/// `halo.capi.time()`: like `ngx.time()`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_time(l: *mut lua_State) -> c_int {
    // SAFETY: as in halo_lua_now.
    unsafe { mlua::ffi::lua_pushnumber(l, crate::log::time::ngx_time()) };
    1
}

/// The `halo.capi` table.
pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // SAFETY: both follow the lua_CFunction protocol (read nothing, push one
    // number, return 1) and never raise a Lua error.
    unsafe {
        t.set("now", lua.create_c_function(halo_lua_now)?)?;
        t.set("time", lua.create_c_function(halo_lua_time)?)?;
    }
    Ok(t)
}
