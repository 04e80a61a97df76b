//! The built-in `cjson` and `cjson.safe`: lua-cjson 2.1 as OpenResty ships it
//! (the openresty/lua-cjson fork), written in Rust, so JSON works with nothing
//! installed. [`searcher`] finds them after package.cpath, so a `cjson.so`
//! the operator installed there still wins.
//!
//! Like lua-cjson they are classic `lua_CFunction`s over the raw C API (as a C
//! module is in OpenResty too): the results, settings, numbers ("%.14g"),
//! escapes and error texts follow lua_cjson.c, including where a message
//! carries the caller's position (`cjson`) and where not (`cjson.safe`).
//!
//! Deliberate differences from the fork's C code, all on non-JSON input or
//! settings no one relies on: numbers are read the way `strtod` reads them
//! (so `010` is ten, and `Infinity`/`NaN`/hex decode when
//! decode_invalid_numbers is on, as its manual says; the fork's `strtoll`
//! path reads `010` as octal and rejects `Infinity`), an integer beyond the
//! 64-bit range keeps its double value, and a metatable's `__len` does not
//! make a table an array (LuaJIT's lua_objlen ignores `__len` anyway).
//!
//! A Rust panic never crosses into LuaJIT: encode and decode run under
//! `catch_unwind` and turn one into a Lua error. A Lua error raised inside
//! them (only out-of-memory or a failing `__gc` during an allocation can)
//! unwinds through `extern "C-unwind"` frames, as with any C module; should it
//! reach `catch_unwind`, Rust aborts the process rather than continue.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use mlua::ffi::{self as lua, lua_State};
use mlua::{Lua, Value};

/// `cjson._VERSION`: the fork's release whose API this matches.
const VERSION: &CStr = c"2.1.0.11";

/// Registry keys (their addresses) of `cjson.empty_array_mt` and
/// `cjson.array_mt`; the latter's address is also the `cjson.empty_array`
/// light userdata, as in lua_cjson.c.
static EMPTY_ARRAY_MT_KEY: u8 = 0;
static ARRAY_MT_KEY: u8 = 0;

/// Whether '/' is written as "\/". One switch for every instance, because the
/// fork keeps it in its static escape table.
static ESCAPE_FORWARD_SLASH: AtomicBool = AtomicBool::new(true);

fn key(k: &'static u8) -> *mut c_void {
    ptr::from_ref(k).cast_mut().cast()
}

/// Package searcher for `cjson` and `cjson.safe`; nil for other names, so a
/// failed `require` lists only the real searchers' reasons.
pub fn searcher(lua: &Lua, name: mlua::String) -> mlua::Result<Value> {
    // SAFETY: both follow the lua_CFunction protocol: they push one module
    // table, using the stack within the slots they check.
    let open = match name.as_bytes().as_ref() {
        b"cjson" => unsafe { lua.create_c_function(open_cjson)? },
        b"cjson.safe" => unsafe { lua.create_c_function(open_cjson_safe)? },
        _ => return Ok(Value::Nil),
    };
    Ok(Value::Function(open))
}

/// One instance's settings (the config userdata, upvalue 1 of its functions).
/// Plain data, so the userdata needs no `__gc`.
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: c_int,
    sparse_ratio: c_int,
    sparse_safe: c_int,
    encode_max_depth: c_int,
    decode_max_depth: c_int,
    /// 0 off (error), 1 on (NaN, Infinity), 2 "null".
    encode_invalid_numbers: c_int,
    decode_invalid_numbers: c_int,
    encode_keep_buffer: c_int,
    encode_number_precision: c_int,
    encode_empty_table_as_object: c_int,
    decode_array_with_array_mt: c_int,
    encode_skip_unsupported_value_types: c_int,
}

const DEFAULT_CONFIG: Config = Config {
    sparse_convert: 0,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: 1,
    encode_keep_buffer: 1,
    encode_number_precision: 14,
    encode_empty_table_as_object: 1,
    decode_array_with_array_mt: 0,
    encode_skip_unsupported_value_types: 0,
};

// ===== module tables =====

unsafe extern "C-unwind" fn open_cjson(l: *mut lua_State) -> c_int {
    // SAFETY: called by LuaJIT with a valid state.
    unsafe { new_module(l, false) }
}

unsafe extern "C-unwind" fn open_cjson_safe(l: *mut lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { new_module(l, true) }
}

/// Pushes a new module table with its own settings: `cjson.new()`, or with
/// `safe` the `cjson.safe` flavour (encode/decode return nil, err).
///
/// # Safety
/// `l` is a valid state inside a lua_CFunction call.
unsafe fn new_module(l: *mut lua_State, safe: bool) -> c_int {
    type Setting = (&'static CStr, lua::lua_CFunction);
    let settings: [Setting; 12] = [
        (c"encode_empty_table_as_object", cfg_encode_empty_table_as_object),
        (c"decode_array_with_array_mt", cfg_decode_array_with_array_mt),
        (c"encode_sparse_array", cfg_encode_sparse_array),
        (c"encode_max_depth", cfg_encode_max_depth),
        (c"decode_max_depth", cfg_decode_max_depth),
        (c"encode_number_precision", cfg_encode_number_precision),
        (c"encode_keep_buffer", cfg_encode_keep_buffer),
        (c"encode_invalid_numbers", cfg_encode_invalid_numbers),
        (c"decode_invalid_numbers", cfg_decode_invalid_numbers),
        (c"encode_escape_forward_slash", cfg_encode_escape_forward_slash),
        (c"encode_skip_unsupported_value_types", cfg_encode_skip_unsupported_value_types),
        if safe { (c"encode", safe_encode) } else { (c"encode", encode) },
    ];
    // SAFETY: at most 4 slots are used at a time (checked); every index
    // names a value this function pushed.
    unsafe {
        lua::luaL_checkstack(l, 4, c"cjson".as_ptr());
        // The shared metatables, made once per VM.
        lua::lua_pushlightuserdata(l, key(&EMPTY_ARRAY_MT_KEY));
        lua::lua_rawget(l, lua::LUA_REGISTRYINDEX);
        let missing = lua::lua_isnil(l, -1) != 0;
        lua::lua_pop(l, 1);
        if missing {
            for k in [&EMPTY_ARRAY_MT_KEY, &ARRAY_MT_KEY] {
                lua::lua_pushlightuserdata(l, key(k));
                lua::lua_newtable(l);
                lua::lua_rawset(l, lua::LUA_REGISTRYINDEX);
            }
        }

        lua::lua_newtable(l);
        let cfg = lua::lua_newuserdata(l, std::mem::size_of::<Config>()).cast::<Config>();
        // LuaJIT aligns userdata to 8 bytes, enough for a struct of c_ints.
        cfg.write(DEFAULT_CONFIG);
        for (name, f) in settings {
            lua::lua_pushvalue(l, -1);
            lua::lua_pushcclosure(l, f, 1);
            lua::lua_setfield(l, -3, name.as_ptr());
        }
        lua::lua_pushvalue(l, -1);
        lua::lua_pushcclosure(l, if safe { safe_decode } else { decode }, 1);
        lua::lua_setfield(l, -3, c"decode".as_ptr());
        lua::lua_pop(l, 1);

        lua::lua_pushcclosure(l, if safe { open_cjson_safe } else { open_cjson }, 0);
        lua::lua_setfield(l, -2, c"new".as_ptr());
        lua::lua_pushlightuserdata(l, ptr::null_mut());
        lua::lua_setfield(l, -2, c"null".as_ptr());
        for (name, k) in [(c"empty_array_mt", &EMPTY_ARRAY_MT_KEY), (c"array_mt", &ARRAY_MT_KEY)] {
            lua::lua_pushlightuserdata(l, key(k));
            lua::lua_rawget(l, lua::LUA_REGISTRYINDEX);
            lua::lua_setfield(l, -2, name.as_ptr());
        }
        lua::lua_pushlightuserdata(l, key(&ARRAY_MT_KEY));
        lua::lua_setfield(l, -2, c"empty_array".as_ptr());
        lua::lua_pushstring(l, c"cjson".as_ptr());
        lua::lua_setfield(l, -2, c"_NAME".as_ptr());
        lua::lua_pushstring(l, VERSION.as_ptr());
        lua::lua_setfield(l, -2, c"_VERSION".as_ptr());
    }
    1
}

// ===== settings =====
//
// These call the auxiliary library's argument checks directly, as
// lua_cjson.c does: they hold nothing that needs dropping and cannot panic,
// so an argument error unwinding through them is like one through C.

/// The instance's settings: the userdata in upvalue 1.
///
/// # Safety
/// `l` is inside a call of a closure made by [`new_module`].
unsafe fn config(l: *mut lua_State) -> *mut Config {
    // SAFETY: every closure of the module has the config userdata, made
    // by new_module, as upvalue 1.
    unsafe { lua::lua_touserdata(l, lua::lua_upvalueindex(1)).cast::<Config>() }
}

/// lua_cjson.c's json_arg_init: at most `args` arguments, padded with nil.
///
/// # Safety
/// As [`config`].
unsafe fn arg_init(l: *mut lua_State, args: c_int) -> *mut Config {
    // SAFETY: a lua_CFunction has LUA_MINSTACK (20) slots, more than `args`.
    unsafe {
        if lua::lua_gettop(l) > args {
            lua::luaL_argerror(l, args + 1, c"found too many arguments".as_ptr());
        }
        while lua::lua_gettop(l) < args {
            lua::lua_pushnil(l);
        }
        config(l)
    }
}

/// An integer setting at `idx` (kept if nil) within `min..=max`; pushes it.
///
/// # Safety
/// `l` is a valid state and `setting` points into the config userdata.
unsafe fn integer_option(l: *mut lua_State, idx: c_int, setting: *mut c_int, min: c_int, max: c_int) {
    // SAFETY: as the function's contract; one slot for the message.
    unsafe {
        if lua::lua_isnil(l, idx) == 0 {
            let value = lua::luaL_checkinteger(l, idx);
            if value < min as lua::lua_Integer || value > max as lua::lua_Integer {
                let msg = lua::lua_pushfstring(l, c"expected integer between %d and %d".as_ptr(), min, max);
                // Argument 1 whatever `idx` is, as lua_cjson.c reports it.
                lua::luaL_argerror(l, 1, msg);
            }
            *setting = value as c_int;
        }
        lua::lua_pushinteger(l, *setting as lua::lua_Integer);
    }
}

/// An on/off setting at `idx` (a boolean, or "off"/"on"; kept if nil), or
/// with `extra` a third option ("null"); pushes it back as lua_cjson.c does.
///
/// # Safety
/// As [`integer_option`].
unsafe fn enum_option(l: *mut lua_State, idx: c_int, setting: *mut c_int, extra: Option<&'static CStr>) {
    let options: [*const c_char; 4] =
        [c"off".as_ptr(), c"on".as_ptr(), extra.map_or(ptr::null(), CStr::as_ptr), ptr::null()];
    // SAFETY: as the function's contract; `options` is NULL-terminated and
    // `*setting` stays an index into it.
    unsafe {
        if lua::lua_isnil(l, idx) == 0 {
            *setting = if lua::lua_isboolean(l, idx) != 0 {
                lua::lua_toboolean(l, idx)
            } else {
                lua::luaL_checkoption(l, idx, ptr::null(), options.as_ptr())
            };
        }
        match *setting {
            0 | 1 => lua::lua_pushboolean(l, *setting),
            n => {
                lua::lua_pushstring(l, options[(n as usize).min(2)]);
            }
        }
    }
}

macro_rules! bool_setting {
    ($name:ident, $field:ident) => {
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            // SAFETY: a closure of new_module, called by LuaJIT.
            unsafe {
                let cfg = arg_init(l, 1);
                enum_option(l, 1, &raw mut (*cfg).$field, None);
            }
            1
        }
    };
}

bool_setting!(cfg_encode_empty_table_as_object, encode_empty_table_as_object);
bool_setting!(cfg_decode_array_with_array_mt, decode_array_with_array_mt);
bool_setting!(cfg_encode_keep_buffer, encode_keep_buffer);
bool_setting!(cfg_decode_invalid_numbers, decode_invalid_numbers);
bool_setting!(cfg_encode_skip_unsupported_value_types, encode_skip_unsupported_value_types);

macro_rules! int_setting {
    ($name:ident, $field:ident, $min:expr, $max:expr) => {
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            // SAFETY: a closure of new_module, called by LuaJIT.
            unsafe {
                let cfg = arg_init(l, 1);
                integer_option(l, 1, &raw mut (*cfg).$field, $min, $max);
            }
            1
        }
    };
}

int_setting!(cfg_encode_max_depth, encode_max_depth, 1, c_int::MAX);
int_setting!(cfg_decode_max_depth, decode_max_depth, 1, c_int::MAX);
int_setting!(cfg_encode_number_precision, encode_number_precision, 1, 16);

unsafe extern "C-unwind" fn cfg_encode_sparse_array(l: *mut lua_State) -> c_int {
    // SAFETY: a closure of new_module, called by LuaJIT.
    unsafe {
        let cfg = arg_init(l, 3);
        enum_option(l, 1, &raw mut (*cfg).sparse_convert, None);
        integer_option(l, 2, &raw mut (*cfg).sparse_ratio, 0, c_int::MAX);
        integer_option(l, 3, &raw mut (*cfg).sparse_safe, 0, c_int::MAX);
    }
    3
}

unsafe extern "C-unwind" fn cfg_encode_invalid_numbers(l: *mut lua_State) -> c_int {
    // SAFETY: a closure of new_module, called by LuaJIT.
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(l, 1, &raw mut (*cfg).encode_invalid_numbers, Some(c"null"));
    }
    1
}

unsafe extern "C-unwind" fn cfg_encode_escape_forward_slash(l: *mut lua_State) -> c_int {
    let mut on = c_int::from(ESCAPE_FORWARD_SLASH.load(Ordering::Relaxed));
    // SAFETY: a closure of new_module, called by LuaJIT; `on` is a local.
    unsafe {
        arg_init(l, 1);
        enum_option(l, 1, &raw mut on, None);
    }
    ESCAPE_FORWARD_SLASH.store(on != 0, Ordering::Relaxed);
    1
}

// ===== encode and decode entry points =====

/// Why encode or decode failed.
enum Fail {
    /// A message raised like luaL_error (with the caller's position).
    Msg(String),
    /// decode's argument is neither a string nor a number.
    NotString,
}

/// Turns a result into the function's return: the value is on the stack
/// already; a failure raises (with the caller's position, as luaL_error), or
/// with `safe` returns nil and the bare message (lua_cjson.c's pcall from C
/// adds no position).
///
/// # Safety
/// `l` is the state of the running lua_CFunction, with 2 free slots.
unsafe fn finish(l: *mut lua_State, result: std::thread::Result<Result<(), Fail>>, safe: bool) -> c_int {
    let msg = match result {
        Ok(Ok(())) => return 1,
        Ok(Err(Fail::Msg(m))) => m,
        Ok(Err(Fail::NotString)) if safe => {
            // SAFETY: argument 1 exists (checked by the caller).
            let got = unsafe { CStr::from_ptr(lua::luaL_typename(l, 1)) };
            format!("bad argument #1 to '?' (string expected, got {})", got.to_string_lossy())
        }
        // SAFETY: raises the standard argument error; nothing here needs dropping.
        Ok(Err(Fail::NotString)) => return unsafe { lua::luaL_typerror(l, 1, c"string".as_ptr()) },
        Err(_) => "cjson: internal error".to_owned(),
    };
    // SAFETY: the message is copied into Lua and dropped before anything can
    // raise, so the raise unwinds through no Rust value.
    unsafe {
        lua::lua_pushlstring(l, msg.as_ptr().cast(), msg.len());
        drop(msg);
        if safe {
            lua::lua_pushnil(l);
            lua::lua_insert(l, -2);
            return 2;
        }
        lua::luaL_where(l, 1);
        lua::lua_insert(l, -2);
        lua::lua_concat(l, 2);
        lua::lua_error(l)
    }
}

/// # Safety
/// `l` is the state of a closure of [`new_module`] being called.
unsafe fn run_encode(l: *mut lua_State, safe: bool) -> c_int {
    // SAFETY: as the function's contract.
    unsafe {
        if lua::lua_gettop(l) != 1 {
            return lua::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
        }
        let cfg = *config(l);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut enc = Encoder { l, cfg, slash: ESCAPE_FORWARD_SLASH.load(Ordering::Relaxed), out: Vec::new() };
            enc.value(0)?;
            lua::lua_pushlstring(l, enc.out.as_ptr().cast(), enc.out.len());
            Ok(())
        }));
        finish(l, r, safe)
    }
}

/// # Safety
/// As [`run_encode`].
unsafe fn run_decode(l: *mut lua_State, safe: bool) -> c_int {
    // SAFETY: as the function's contract; the input string stays on the
    // stack (argument 1) while `data` borrows it.
    unsafe {
        if lua::lua_gettop(l) != 1 {
            return lua::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
        }
        let cfg = *config(l);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let t = lua::lua_type(l, 1);
            if t != lua::LUA_TSTRING && t != lua::LUA_TNUMBER {
                return Err(Fail::NotString);
            }
            let mut len = 0;
            let p = lua::lua_tolstring(l, 1, &mut len);
            let data = std::slice::from_raw_parts(p.cast::<u8>(), len);
            Decoder { l, cfg, data, pos: 0, depth: 0, tmp: Vec::new() }.run()
        }));
        finish(l, r, safe)
    }
}

unsafe extern "C-unwind" fn encode(l: *mut lua_State) -> c_int {
    // SAFETY: a closure of new_module, called by LuaJIT.
    unsafe { run_encode(l, false) }
}

unsafe extern "C-unwind" fn safe_encode(l: *mut lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { run_encode(l, true) }
}

unsafe extern "C-unwind" fn decode(l: *mut lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { run_decode(l, false) }
}

unsafe extern "C-unwind" fn safe_decode(l: *mut lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { run_decode(l, true) }
}

// ===== encoding =====

struct Encoder {
    l: *mut lua_State,
    cfg: Config,
    slash: bool,
    out: Vec<u8>,
}

/// lua_typename of the value at `idx`.
fn type_name(l: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `idx` is a valid index of the running function (callers);
    // lua_typename returns a static string.
    unsafe { CStr::from_ptr(lua::luaL_typename(l, idx)).to_string_lossy().into_owned() }
}

impl Encoder {
    fn fail(&self, idx: c_int, reason: &str) -> Fail {
        Fail::Msg(format!("Cannot serialise {}: {reason}", type_name(self.l, idx)))
    }

    /// Appends the value on top of the stack; Ok(false) if it was skipped
    /// (encode_skip_unsupported_value_types).
    fn value(&mut self, depth: c_int) -> Result<bool, Fail> {
        let l = self.l;
        // SAFETY: the value is at -1; every push below is within the slots
        // lua_checkstack granted for this depth.
        unsafe {
            match lua::lua_type(l, -1) {
                lua::LUA_TSTRING => self.string(-1),
                lua::LUA_TNUMBER => self.number(-1)?,
                lua::LUA_TBOOLEAN => {
                    self.out.extend_from_slice(if lua::lua_toboolean(l, -1) != 0 { b"true" } else { b"false" })
                }
                lua::LUA_TTABLE => self.table(depth + 1)?,
                lua::LUA_TNIL => self.out.extend_from_slice(b"null"),
                lua::LUA_TLIGHTUSERDATA => {
                    let p = lua::lua_touserdata(l, -1);
                    if p.is_null() {
                        self.out.extend_from_slice(b"null");
                    } else if p == key(&ARRAY_MT_KEY) {
                        self.out.extend_from_slice(b"[]");
                    }
                    // Any other light userdata writes nothing, as in lua_cjson.c.
                }
                _ if self.cfg.encode_skip_unsupported_value_types != 0 => return Ok(false),
                _ => return Err(self.fail(-1, "type not supported")),
            }
        }
        Ok(true)
    }

    fn string(&mut self, idx: c_int) {
        let mut len = 0;
        // SAFETY: a string (or number) at `idx`, which stays on the stack
        // while the bytes are read.
        let s = unsafe {
            let p = lua::lua_tolstring(self.l, idx, &mut len);
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &c in s {
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' if self.slash => self.out.extend_from_slice(b"\\/"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(c >> 4)]);
                    self.out.push(HEX[usize::from(c & 15)]);
                }
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }

    fn number(&mut self, idx: c_int) -> Result<(), Fail> {
        // SAFETY: a number at `idx`.
        let x = unsafe { lua::lua_tonumber(self.l, idx) };
        if !x.is_finite() {
            match self.cfg.encode_invalid_numbers {
                0 => return Err(self.fail(idx, "must not be NaN or Infinity")),
                1 => {
                    self.out.extend_from_slice(if x.is_nan() {
                        b"NaN".as_slice()
                    } else if x < 0.0 {
                        b"-Infinity"
                    } else {
                        b"Infinity"
                    });
                }
                _ => self.out.extend_from_slice(b"null"),
            }
            return Ok(());
        }
        format_g(&mut self.out, x, self.cfg.encode_number_precision.clamp(1, 16) as usize);
        Ok(())
    }

    fn table(&mut self, depth: c_int) -> Result<(), Fail> {
        let l = self.l;
        // SAFETY: the table is at -1; lua_checkstack grants the 3 slots a
        // level uses (metatable and registry value, or key and value).
        unsafe {
            if depth > self.cfg.encode_max_depth || lua::lua_checkstack(l, 3) == 0 {
                return Err(Fail::Msg(format!("Cannot serialise, excessive nesting ({depth})")));
            }
            let has_mt = lua::lua_getmetatable(l, -1) != 0;
            let mut as_array = false;
            if has_mt {
                as_array = self.is_registry_value(&ARRAY_MT_KEY);
                lua::lua_pop(l, 1);
            }
            if as_array {
                let len = lua::lua_objlen(l, -1).min(c_int::MAX as usize) as c_int;
                return self.array(depth, len);
            }
            let len = self.array_length()?;
            if len > 0 || (len == 0 && self.cfg.encode_empty_table_as_object == 0) {
                return self.array(depth, len);
            }
            if has_mt {
                lua::lua_getmetatable(l, -1);
                let empty_array = self.is_registry_value(&EMPTY_ARRAY_MT_KEY);
                lua::lua_pop(l, 1);
                if empty_array {
                    return self.array(depth, 0);
                }
            }
            self.object(depth)
        }
    }

    /// Whether the value at -1 is the registry's value under `k`.
    fn is_registry_value(&self, k: &'static u8) -> bool {
        // SAFETY: one slot, granted by the caller's lua_checkstack.
        unsafe {
            lua::lua_pushlightuserdata(self.l, key(k));
            lua::lua_rawget(self.l, lua::LUA_REGISTRYINDEX);
            let same = lua::lua_rawequal(self.l, -1, -2) != 0;
            lua::lua_pop(self.l, 1);
            same
        }
    }

    /// lua_cjson.c's lua_array_length: the array size of the table at -1,
    /// or -1 if it is an object (a key other than a positive integer, or an
    /// excessively sparse array that encode_sparse_array converts).
    fn array_length(&self) -> Result<c_int, Fail> {
        let l = self.l;
        let (mut max, mut items) = (0.0f64, 0.0f64);
        // SAFETY: the table is at -1; lua_next uses the 2 slots granted.
        unsafe {
            lua::lua_pushnil(l);
            while lua::lua_next(l, -2) != 0 {
                let k = if lua::lua_type(l, -2) == lua::LUA_TNUMBER { lua::lua_tonumber(l, -2) } else { 0.0 };
                if k != 0.0 && k.floor() == k && k >= 1.0 {
                    max = max.max(k);
                    items += 1.0;
                    lua::lua_pop(l, 1);
                    continue;
                }
                lua::lua_pop(l, 2);
                return Ok(-1);
            }
        }
        let ratio = f64::from(self.cfg.sparse_ratio);
        if self.cfg.sparse_ratio > 0 && max > items * ratio && max > f64::from(self.cfg.sparse_safe) {
            if self.cfg.sparse_convert == 0 {
                return Err(self.fail(-1, "excessively sparse array"));
            }
            return Ok(-1);
        }
        // Beyond C's int the fork overflows; an object is the sane reading.
        if max > f64::from(c_int::MAX) {
            return Ok(-1);
        }
        Ok(max as c_int)
    }

    fn array(&mut self, depth: c_int, len: c_int) -> Result<(), Fail> {
        self.out.push(b'[');
        let mut comma = false;
        for i in 1..=len {
            let at = self.out.len();
            if comma {
                self.out.push(b',');
            }
            // SAFETY: the table is at -1; one slot for the element.
            unsafe { lua::lua_rawgeti(self.l, -1, lua::lua_Integer::from(i)) };
            if self.value(depth)? {
                comma = true;
            } else {
                self.out.truncate(at);
            }
            // SAFETY: pops the element pushed above.
            unsafe { lua::lua_pop(self.l, 1) };
        }
        self.out.push(b']');
        Ok(())
    }

    fn object(&mut self, depth: c_int) -> Result<(), Fail> {
        let l = self.l;
        self.out.push(b'{');
        let mut comma = false;
        // SAFETY: the table is at -1; key and value use the 2 slots granted.
        unsafe {
            lua::lua_pushnil(l);
            while lua::lua_next(l, -2) != 0 {
                let at = self.out.len();
                if comma {
                    self.out.push(b',');
                }
                match lua::lua_type(l, -2) {
                    lua::LUA_TNUMBER => {
                        self.out.push(b'"');
                        self.number(-2)?;
                        self.out.extend_from_slice(b"\":");
                    }
                    // A string key is read in place: lua_tolstring does not
                    // convert it, so lua_next still finds it.
                    lua::LUA_TSTRING => {
                        self.string(-2);
                        self.out.push(b':');
                    }
                    _ => return Err(self.fail(-2, "table key must be a number or string")),
                }
                if self.value(depth)? {
                    comma = true;
                } else {
                    self.out.truncate(at);
                }
                lua::lua_pop(l, 1);
            }
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// C's `%.<prec>g` (prec 1..=17) of a finite number, appended to `out`.
pub fn format_g(out: &mut Vec<u8>, x: f64, prec: usize) {
    if x == 0.0 {
        out.extend_from_slice(if x.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // Rust's float formatting is exact, so rounding to `prec` significant
    // digits gives what glibc's printf gives.
    let sci = format!("{:.*e}", prec - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        out.extend_from_slice(strip_zeros(mantissa).as_bytes());
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(e.to_string().as_bytes());
    } else {
        let fixed = format!("{:.*}", (prec as i32 - 1 - exp).max(0) as usize, x);
        out.extend_from_slice(strip_zeros(&fixed).as_bytes());
    }
}

/// `%g` drops trailing zeros of the fraction, and the point if none is left.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

// ===== decoding =====

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    /// The decoded bytes are in `Decoder::tmp`.
    Str,
    Number(f64),
    Integer(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    /// The name lua_cjson.c prints for an unexpected token.
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Number(_) => "T_NUMBER",
            Tok::Integer(_) => "T_INTEGER",
            Tok::Boolean(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Decoder<'a> {
    l: *mut lua_State,
    cfg: Config,
    data: &'a [u8],
    pos: usize,
    depth: c_int,
    tmp: Vec<u8>,
}

impl Decoder<'_> {
    /// The byte at `i`; NUL past the end, as the C parser sees its
    /// NUL-terminated input (a NUL inside the input ends it too).
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn rest(&self, i: usize) -> &[u8] {
        self.data.get(i..).unwrap_or_default()
    }

    fn run(mut self) -> Result<(), Fail> {
        if self.data.len() >= 2 && (self.data[0] == 0 || self.data[1] == 0) {
            return Err(Fail::Msg("JSON parser does not support UTF-16 or UTF-32".into()));
        }
        let (tok, at) = self.next_token();
        self.value(tok, at)?;
        let (tok, at) = self.next_token();
        if tok != Tok::End {
            return Err(expected("the end", tok, at));
        }
        Ok(())
    }

    /// The next token and where it starts (0-based).
    fn next_token(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let c = self.at(start);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start);
        }
        let tok = match c {
            0 => Tok::End,
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                    Tok::Error("invalid number")
                } else {
                    self.number_token()
                }
            }
            _ if self.rest(start).starts_with(b"true") => {
                self.pos += 4;
                Tok::Boolean(true)
            }
            _ if self.rest(start).starts_with(b"false") => {
                self.pos += 5;
                Tok::Boolean(false)
            }
            _ if self.rest(start).starts_with(b"null") => {
                self.pos += 4;
                Tok::Null
            }
            b'+' | b'i' | b'I' | b'n' | b'N' if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() => {
                self.number_token()
            }
            _ => Tok::Error("invalid token"),
        };
        // An error token reports where the scan stopped (json_set_token_error).
        let at = if matches!(tok, Tok::Error(_)) { self.pos } else { start };
        (tok, at)
    }

    /// lua_cjson.c's json_is_invalid_number: not strict JSON, though strtod
    /// may read it (a '+', hex, leading zeros, inf, nan).
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let word = |w: &[u8]| self.data.get(p..p + 3).is_some_and(|s| s.eq_ignore_ascii_case(w));
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Tok {
        match scan_number(self.rest(self.pos)) {
            Some((n, len, integer)) => {
                self.pos += len;
                if integer {
                    Tok::Integer(n)
                } else {
                    Tok::Number(n)
                }
            }
            None => Tok::Error("invalid number"),
        }
    }

    fn string_token(&mut self) -> Tok {
        self.tmp.clear();
        self.pos += 1;
        loop {
            let c = self.at(self.pos);
            match c {
                b'"' => break,
                0 => return Tok::Error("unexpected end of string"),
                b'\\' => {
                    let e = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            if !self.unicode_escape() {
                                return Tok::Error("invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return Tok::Error("invalid escape code"),
                    };
                    self.tmp.push(e);
                    self.pos += 2;
                }
                _ => {
                    self.tmp.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Tok::Str
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |v, i| Some(v << 4 | char::from(self.at(at + i)).to_digit(16)?))
    }

    /// `\uXXXX` (a surrogate pair as two) at `pos`, as UTF-8 into `tmp`.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else { return false };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            // A low surrogate first, or a high one alone, is an error.
            if cp & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else { return false };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // Never a surrogate here (pairs are combined, lone halves rejected).
        let Some(ch) = char::from_u32(cp) else { return false };
        let mut buf = [0u8; 4];
        self.tmp.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        self.pos += len;
        true
    }

    /// Enters an array or object needing `slots` Lua stack slots.
    fn descend(&mut self, slots: c_int) -> Result<(), Fail> {
        self.depth += 1;
        // SAFETY: lua_checkstack only grows the stack (or says no).
        if self.depth <= self.cfg.decode_max_depth && unsafe { lua::lua_checkstack(self.l, slots) } != 0 {
            return Ok(());
        }
        Err(Fail::Msg(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.pos
        )))
    }

    /// Pushes the value that starts with `tok`.
    fn value(&mut self, tok: Tok, at: usize) -> Result<(), Fail> {
        let l = self.l;
        // SAFETY: each push has a slot: the caller's LUA_MINSTACK at the top
        // level, the slots `descend` checked inside arrays and objects.
        unsafe {
            match tok {
                Tok::Str => {
                    lua::lua_pushlstring(l, self.tmp.as_ptr().cast(), self.tmp.len());
                }
                Tok::Number(n) | Tok::Integer(n) => lua::lua_pushnumber(l, n),
                Tok::Boolean(b) => lua::lua_pushboolean(l, c_int::from(b)),
                Tok::Null => lua::lua_pushlightuserdata(l, ptr::null_mut()),
                Tok::ObjBegin => return self.object(),
                Tok::ArrBegin => return self.array(),
                _ => return Err(expected("value", tok, at)),
            }
        }
        Ok(())
    }

    fn object(&mut self) -> Result<(), Fail> {
        let l = self.l;
        self.descend(3)?;
        // SAFETY: table, key and value fit in the 3 slots checked.
        unsafe { lua::lua_newtable(l) };
        let (mut tok, mut at) = self.next_token();
        if tok == Tok::ObjEnd {
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if tok != Tok::Str {
                return Err(expected("object key string", tok, at));
            }
            // SAFETY: as above.
            unsafe { lua::lua_pushlstring(l, self.tmp.as_ptr().cast(), self.tmp.len()) };
            (tok, at) = self.next_token();
            if tok != Tok::Colon {
                return Err(expected("colon", tok, at));
            }
            (tok, at) = self.next_token();
            self.value(tok, at)?;
            // SAFETY: table, key, value on top.
            unsafe { lua::lua_rawset(l, -3) };
            (tok, at) = self.next_token();
            if tok == Tok::ObjEnd {
                self.depth -= 1;
                return Ok(());
            }
            if tok != Tok::Comma {
                return Err(expected("comma or object end", tok, at));
            }
            (tok, at) = self.next_token();
        }
    }

    fn array(&mut self) -> Result<(), Fail> {
        let l = self.l;
        self.descend(2)?;
        // SAFETY: the table and one element fit in the 2 slots checked (the
        // metatable lookup uses both before any element).
        unsafe {
            lua::lua_newtable(l);
            if self.cfg.decode_array_with_array_mt != 0 {
                lua::lua_pushlightuserdata(l, key(&ARRAY_MT_KEY));
                lua::lua_rawget(l, lua::LUA_REGISTRYINDEX);
                lua::lua_setmetatable(l, -2);
            }
        }
        let (mut tok, mut at) = self.next_token();
        if tok == Tok::ArrEnd {
            self.depth -= 1;
            return Ok(());
        }
        let mut i: lua::lua_Integer = 1;
        loop {
            self.value(tok, at)?;
            // SAFETY: table and element on top.
            unsafe { lua::lua_rawseti(l, -2, i) };
            i += 1;
            (tok, at) = self.next_token();
            if tok == Tok::ArrEnd {
                self.depth -= 1;
                return Ok(());
            }
            if tok != Tok::Comma {
                return Err(expected("comma or array end", tok, at));
            }
            (tok, at) = self.next_token();
        }
    }
}

fn expected(what: &str, found: Tok, at: usize) -> Fail {
    Fail::Msg(format!("Expected {what} but found {} at character {}", found.name(), at + 1))
}

/// Reads a number at the start of `s` as C's strtod does (sign; decimal
/// with fraction and exponent, hex, inf/infinity, nan): its value, length,
/// and whether it is an integer token (digits only, as lua_cjson.c's
/// strtoll path sees it). None if no number starts there.
pub fn scan_number(s: &[u8]) -> Option<(f64, usize, bool)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    let negative = match at(0) {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i.min(s.len())..];
    let word = |w: &[u8]| rest.get(..w.len()).is_some_and(|r| r.eq_ignore_ascii_case(w));
    if word(b"infinity") {
        return Some((sign * f64::INFINITY, i + 8, false));
    }
    if word(b"inf") {
        return Some((sign * f64::INFINITY, i + 3, false));
    }
    if word(b"nan") {
        let mut end = i + 3;
        // strtod also takes "nan(chars)".
        if at(end) == b'(' {
            let mut j = end + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                end = j + 1;
            }
        }
        return Some((f64::NAN, end, false));
    }
    if at(i) == b'0' && at(i + 1) | 0x20 == b'x' && (at(i + 2).is_ascii_hexdigit() || (at(i + 2) == b'.' && at(i + 3).is_ascii_hexdigit())) {
        return scan_hex(s, i + 2, sign);
    }
    let start = i;
    while at(i).is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - start;
    let mut integer = int_digits > 0;
    if at(i) == b'.' {
        let mut j = i + 1;
        while at(j).is_ascii_digit() {
            j += 1;
        }
        if int_digits == 0 && j == i + 1 {
            return None;
        }
        i = j;
        integer = false;
    } else if int_digits == 0 {
        return None;
    }
    if at(i) | 0x20 == b'e' {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            while at(j).is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
        integer = false;
    }
    // ASCII digits, point and exponent only: valid UTF-8 that Rust's
    // correctly rounded parser reads like glibc's strtod.
    let text = std::str::from_utf8(&s[start..i]).ok()?;
    let v: f64 = text.parse().ok()?;
    Some((sign * v, i, integer))
}

/// A hex number after "0x" at `i`: digits, optional fraction, optional
/// binary exponent.
fn scan_hex(s: &[u8], mut i: usize, sign: f64) -> Option<(f64, usize, bool)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let digit = |c: u8| char::from(c).to_digit(16).map(f64::from);
    let mut v = 0.0f64;
    let mut integer = true;
    while let Some(d) = digit(at(i)) {
        v = v * 16.0 + d;
        i += 1;
    }
    if at(i) == b'.' {
        integer = false;
        i += 1;
        let mut scale = 1.0 / 16.0;
        while let Some(d) = digit(at(i)) {
            v += d * scale;
            scale /= 16.0;
            i += 1;
        }
    }
    if at(i) | 0x20 == b'p' {
        let mut j = i + 1;
        let neg = at(j) == b'-';
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            let mut e: i32 = 0;
            while at(j).is_ascii_digit() {
                e = e.saturating_mul(10).saturating_add(i32::from(at(j) - b'0'));
                j += 1;
            }
            v *= 2f64.powi(if neg { -e } else { e });
            i = j;
            integer = false;
        }
    }
    Some((sign * v, i, integer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(x: f64, p: usize) -> String {
        let mut v = Vec::new();
        format_g(&mut v, x, p);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn percent_g() {
        assert_eq!(g(1.0, 14), "1");
        assert_eq!(g(-0.0, 14), "-0");
        assert_eq!(g(0.1, 14), "0.1");
        assert_eq!(g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(g(100.0, 14), "100");
        assert_eq!(g(1e14, 14), "1e+14");
        assert_eq!(g(12345678901234.0, 14), "12345678901234");
        assert_eq!(g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(g(2f64.powi(53), 16), "9007199254740992");
        assert_eq!(g(0.0001, 14), "0.0001");
        assert_eq!(g(0.00001, 14), "1e-05");
        assert_eq!(g(1.5e300, 14), "1.5e+300");
        assert_eq!(g(1.23456, 3), "1.23");
        assert_eq!(g(-2.5, 1), "-2");
        assert_eq!(g(9.5, 1), "1e+01");
    }

    #[test]
    fn numbers_scan_like_strtod() {
        assert_eq!(scan_number(b"12,"), Some((12.0, 2, true)));
        assert_eq!(scan_number(b"-1.5e3]"), Some((-1500.0, 6, false)));
        assert_eq!(scan_number(b"1e"), Some((1.0, 1, false)));
        assert_eq!(scan_number(b"1."), Some((1.0, 2, false)));
        assert_eq!(scan_number(b"010"), Some((10.0, 3, true)));
        assert_eq!(scan_number(b"0x1F"), Some((31.0, 4, true)));
        assert_eq!(scan_number(b"-Infinity"), Some((f64::NEG_INFINITY, 9, false)));
        assert_eq!(scan_number(b"+inf"), Some((f64::INFINITY, 4, false)));
        assert!(scan_number(b"nan").is_some_and(|(n, l, _)| n.is_nan() && l == 3));
        assert_eq!(scan_number(b"-"), None);
        assert_eq!(scan_number(b"-x"), None);
        assert_eq!(scan_number(b"12345678901234567890"), Some((1.2345678901234567e19, 20, true)));
    }
}
