//! The Lua C API of the linked LuaJIT 2.1 (the functions lua.h, lauxlib.h,
//! lualib.h and luajit.h declare and LuaJIT defines): build.rs exports them
//! from the binaries so C modules on `lua_package_cpath` (lua-cjson, lpeg, ...)
//! resolve them when `require` dlopens them, and tests/ffi_exports.rs checks
//! that they are there.
//!
//! A list rather than a pattern alone: `--export-dynamic-symbol` only exports
//! what is linked, and nothing in Rust calls many of these, so each also needs
//! `--undefined` to be pulled out of libluajit.a. (`lua_setlevel` is declared
//! in lua.h but LuaJIT has no definition, so it is not here.)

/// The patterns exported (`--export-dynamic-symbol`): the names below and
/// anything else of the API that is linked, such as `luaJIT_version_2_1_*`.
pub const LUA_API_PATTERNS: [&str; 4] = ["lua_*", "luaL_*", "luaopen_*", "luaJIT_*"];

/// Every function of the API, by header.
pub const LUA_API: &[&str] = &[
    // lua.h
    "lua_newstate", "lua_close", "lua_newthread", "lua_atpanic", "lua_gettop", "lua_settop",
    "lua_pushvalue", "lua_remove", "lua_insert", "lua_replace", "lua_checkstack", "lua_xmove",
    "lua_isnumber", "lua_isstring", "lua_iscfunction", "lua_isuserdata", "lua_type",
    "lua_typename", "lua_equal", "lua_rawequal", "lua_lessthan", "lua_tonumber",
    "lua_tointeger", "lua_toboolean", "lua_tolstring", "lua_objlen", "lua_tocfunction",
    "lua_touserdata", "lua_tothread", "lua_topointer", "lua_pushnil", "lua_pushnumber",
    "lua_pushinteger", "lua_pushlstring", "lua_pushstring", "lua_pushvfstring",
    "lua_pushfstring", "lua_pushcclosure", "lua_pushboolean", "lua_pushlightuserdata",
    "lua_pushthread", "lua_gettable", "lua_getfield", "lua_rawget", "lua_rawgeti",
    "lua_createtable", "lua_newuserdata", "lua_getmetatable", "lua_getfenv", "lua_settable",
    "lua_setfield", "lua_rawset", "lua_rawseti", "lua_setmetatable", "lua_setfenv", "lua_call",
    "lua_pcall", "lua_cpcall", "lua_load", "lua_dump", "lua_yield", "lua_resume", "lua_status",
    "lua_gc", "lua_error", "lua_next", "lua_concat", "lua_getallocf", "lua_setallocf",
    "lua_getstack", "lua_getinfo", "lua_getlocal", "lua_setlocal", "lua_getupvalue",
    "lua_setupvalue", "lua_sethook", "lua_gethook", "lua_gethookmask", "lua_gethookcount",
    "lua_upvalueid", "lua_upvaluejoin", "lua_loadx", "lua_version", "lua_copy",
    "lua_tonumberx", "lua_tointegerx", "lua_isyieldable",
    // lauxlib.h
    "luaL_openlib", "luaL_register", "luaL_getmetafield", "luaL_callmeta", "luaL_typerror",
    "luaL_argerror", "luaL_checklstring", "luaL_optlstring", "luaL_checknumber",
    "luaL_optnumber", "luaL_checkinteger", "luaL_optinteger", "luaL_checkstack",
    "luaL_checktype", "luaL_checkany", "luaL_newmetatable", "luaL_checkudata", "luaL_where",
    "luaL_error", "luaL_checkoption", "luaL_ref", "luaL_unref", "luaL_loadfile",
    "luaL_loadbuffer", "luaL_loadstring", "luaL_newstate", "luaL_gsub", "luaL_findtable",
    "luaL_fileresult", "luaL_execresult", "luaL_loadfilex", "luaL_loadbufferx",
    "luaL_traceback", "luaL_setfuncs", "luaL_pushmodule", "luaL_testudata",
    "luaL_setmetatable", "luaL_buffinit", "luaL_prepbuffer", "luaL_addlstring",
    "luaL_addstring", "luaL_addvalue", "luaL_pushresult",
    // lualib.h
    "luaopen_base", "luaopen_math", "luaopen_string", "luaopen_table", "luaopen_io",
    "luaopen_os", "luaopen_package", "luaopen_debug", "luaopen_bit", "luaopen_jit",
    "luaopen_ffi", "luaopen_string_buffer", "luaL_openlibs",
    // luajit.h
    "luaJIT_setmode", "luaJIT_profile_start", "luaJIT_profile_stop", "luaJIT_profile_dumpstack",
];
