//! Resuming a handler's coroutine through LuaJIT's C API. mlua's
//! `Thread::resume` converts and moves arguments and results between stacks
//! on every call; a request needs none of that: the argument is the
//! handler's number in halo.runner and the result is one yielded value
//! compared with a sentinel.

use std::os::raw::c_int;

use mlua::ffi;

/// How a resume ended.
pub enum Resumed {
    /// The handler returned: its coroutine is parked in halo.runner's loop.
    Done,
    /// The coroutine yielded for something else (an API's wait, ngx.exit).
    Yielded,
    /// The coroutine's function returned (a light thread's end): it is dead.
    Returned,
    /// The handler raised an error (message and traceback); the coroutine is dead.
    Failed(String),
}

/// Resumes `co`, passing the number `arg` if given, and tells what it
/// yielded: the registry value `done` means the handler returned.
///
/// # Safety
/// `co` must be a coroutine of the VM whose registry holds `done`,
/// not started or suspended in a yield, used by nothing else meanwhile, on
/// the VM's thread.
pub unsafe fn resume(co: *mut ffi::lua_State, arg: Option<c_int>, done: c_int) -> Resumed {
    // SAFETY (whole body): the caller's contract; a coroutine that is new or
    // suspended in a yield has room for the few slots used here
    // (LUA_MINSTACK), and each branch leaves its stack empty, as a later
    // resume expects.
    unsafe {
        let nargs = match arg {
            Some(i) => {
                ffi::lua_pushinteger(co, i as ffi::lua_Integer);
                1
            }
            None => 0,
        };
        match ffi::lua_resume_(co, nargs) {
            ffi::LUA_YIELD => {
                let is_done = ffi::lua_gettop(co) >= 1 && {
                    ffi::lua_rawgeti_(co, ffi::LUA_REGISTRYINDEX, done);
                    ffi::lua_rawequal(co, -1, -2) != 0
                };
                ffi::lua_settop(co, 0);
                if is_done {
                    Resumed::Done
                } else {
                    Resumed::Yielded
                }
            }
            // halo.runner's loop never returns; a light thread's body does.
            ffi::LUA_OK => {
                ffi::lua_settop(co, 0);
                Resumed::Returned
            }
            _ => {
                let msg = error_message(co);
                // The dead coroutine keeps its frames: its traceback says
                // where the error was, as lua-nginx-module logs it.
                let cmsg = std::ffi::CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
                ffi::luaL_traceback(co, co, cmsg.as_ptr(), 0);
                let text = error_message(co);
                ffi::lua_settop(co, 0);
                Resumed::Failed(text)
            }
        }
    }
}

/// The value on top of `co` as error text.
///
/// # Safety
/// `co` must be a valid state with a value on top.
unsafe fn error_message(co: *mut ffi::lua_State) -> String {
    // SAFETY: caller's contract; lua_tolstring on a string or number gives
    // `len` valid bytes, which are copied before anything changes the stack.
    unsafe {
        if matches!(ffi::lua_type(co, -1), ffi::LUA_TSTRING | ffi::LUA_TNUMBER) {
            let mut len = 0;
            let p = ffi::lua_tolstring(co, -1, &mut len);
            String::from_utf8_lossy(std::slice::from_raw_parts(p.cast::<u8>(), len)).into_owned()
        } else {
            let ty = std::ffi::CStr::from_ptr(ffi::lua_typename(co, ffi::lua_type(co, -1)));
            format!("(error object is a {} value)", ty.to_string_lossy())
        }
    }
}
