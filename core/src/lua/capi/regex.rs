//! The twins of ngx.re.match, ngx.re.find and ngx.re.gsub
//! (lualib/resty/core/regex.lua), over the same functions of
//! crate::ffi::regex (its compile cache, its searches, its templates).

use std::cell::Cell;
use std::os::raw::{c_int, c_uint};

use mlua::ffi as lua;

use super::{push, raise, registry, string_at, tostring_at, type_name, State};
use crate::ffi::regex::{self as api, ANCHORED, CASELESS, DOTALL, DUPNAMES, EXTENDED, JAVASCRIPT, MULTILINE, UTF8};
use crate::ffi::ERROR;

thread_local! {
    /// The (from, to) pairs of a search, taken for a call.
    static CAPS: Cell<Vec<c_int>> = const { Cell::new(Vec::new()) };
}

/// A compiled regex for one call: freed at the end when temporary.
struct Compiled {
    id: c_int,
    temp: bool,
    ncap: usize,
}

impl Compiled {
    fn done(self) {
        if self.temp {
            api::halo_ffi_regex_free(self.id);
        }
    }
}

/// regex.lua's parse_opts: the flags, or the error for an unknown letter.
fn parse_opts(opts: &[u8]) -> Result<c_uint, String> {
    let mut flags = 0;
    for &c in opts {
        flags |= match c {
            b'i' => CASELESS,
            b'm' => MULTILINE,
            b's' => DOTALL,
            b'x' => EXTENDED,
            b'u' | b'U' => UTF8,
            b'a' => ANCHORED,
            b'D' => DUPNAMES,
            b'J' => JAVASCRIPT,
            b'o' | b'j' | b'd' => 0,
            _ => {
                let o = String::from_utf8_lossy(opts);
                return Err(format!("unknown flag \"{}\" (flags \"{o}\")", c as char));
            }
        };
    }
    Ok(flags)
}

/// regex.lua's check_args: subject (1; a number as text), regex (2) and
/// the options (`opts_n`), or raise.
///
/// # Safety
/// As [`raise`].
unsafe fn args<'a>(l: State, fname: &str, opts_n: c_int) -> (&'a [u8], &'a [u8], &'a [u8]) {
    // SAFETY: caller's contract.
    unsafe {
        let subj = match lua::lua_type(l, 1) {
            lua::LUA_TSTRING | lua::LUA_TNUMBER => tostring_at(l, 1),
            _ => {
                let t = type_name(l, 1);
                raise(l, format!("bad argument #1 to '{fname}' (string expected, got {t})"))
            }
        };
        let Some(regex) = string_at(l, 2) else {
            let t = type_name(l, 2);
            raise(l, format!("bad argument #2 to '{fname}' (string expected, got {t})"))
        };
        let opts = match lua::lua_type(l, opts_n) {
            lua::LUA_TNONE | lua::LUA_TNIL => b"",
            lua::LUA_TSTRING => string_at(l, opts_n).unwrap_or_default(),
            _ => {
                let t = type_name(l, opts_n);
                raise(l, format!("bad argument #{opts_n} to '{fname}' (string expected, got {t})"))
            }
        };
        (subj, regex, opts)
    }
}

/// Raises unless the argument at `idx` is nil or of type `want`.
///
/// # Safety
/// As [`raise`].
unsafe fn optional(l: State, idx: c_int, want: c_int, fname: &str) {
    // SAFETY: caller's contract.
    unsafe {
        let t = lua::lua_type(l, idx);
        if t != want && t != lua::LUA_TNIL && t != lua::LUA_TNONE {
            let (w, got) = (if want == lua::LUA_TTABLE { "table" } else { "number" }, type_name(l, idx));
            raise(l, format!("bad argument #{idx} to '{fname}' ({w} expected, got {got})"))
        }
    }
}

/// Compiles (or finds cached) `regex`: Err(message) for a bad regex (the
/// call returns it); raises for bad options.
///
/// # Safety
/// As [`raise`].
unsafe fn compile(l: State, regex: &[u8], opts: &[u8]) -> Result<Compiled, Vec<u8>> {
    let flags = match parse_opts(opts) {
        Ok(f) => f,
        // SAFETY: caller's contract.
        Err(msg) => unsafe { raise(l, msg) },
    };
    match api::compile(regex, flags) {
        Ok((id, temp)) => {
            if !temp && opts.contains(&b'o') {
                // regex.lua's cache_state.o_cached, for ngx.re.opt.
                // SAFETY: caller's contract; two slots.
                unsafe {
                    registry(l, c"halo.capi.regex_state");
                    lua::lua_pushboolean(l, 1);
                    lua::lua_setfield(l, -2, c"o_cached".as_ptr());
                    lua::lua_settop(l, -2);
                }
            }
            Ok(Compiled { id, temp, ncap: api::halo_ffi_regex_ncaptures(id).max(0) as usize })
        }
        // SAFETY: the message is lent until the next call.
        Err(msg) => Err(unsafe { msg.bytes() }.to_vec()),
    }
}

/// regex.lua's exec_error.
fn exec_error(rc: c_int) -> Vec<u8> {
    if rc == ERROR {
        return b"failed to run regex".to_vec();
    }
    format!("pcre_exec() failed: {rc}").into_bytes()
}

/// Pushes `n` nils then `msg`; returns n + 1.
///
/// # Safety
/// `l` is valid with n + 1 free slots.
unsafe fn fail(l: State, nils: c_int, msg: &[u8]) -> c_int {
    // SAFETY: caller's contract.
    unsafe {
        for _ in 0..nils {
            lua::lua_pushnil(l);
        }
        push(l, msg);
    }
    nils + 1
}

/// The 0-based start from ctx.pos (argument 4, 1-based).
///
/// # Safety
/// `l` is valid with a free slot.
unsafe fn start_of(l: State) -> usize {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_type(l, 4) != lua::LUA_TTABLE {
            return 0;
        }
        lua::lua_getfield(l, 4, c"pos".as_ptr());
        let pos = lua::lua_tonumber(l, -1);
        lua::lua_settop(l, -2);
        if pos > 0.0 { pos as usize - 1 } else { 0 }
    }
}

/// ctx.pos = to + 1 when there is a ctx.
///
/// # Safety
/// `l` is valid with a free slot.
unsafe fn set_pos(l: State, to: c_int) {
    // SAFETY: caller's contract.
    unsafe {
        if lua::lua_type(l, 4) == lua::LUA_TTABLE {
            lua::lua_pushnumber(l, f64::from(to) + 1.0);
            lua::lua_setfield(l, 4, c"pos".as_ptr());
        }
    }
}

/// Pushes regex.lua's collect() table for a search that filled `rc` pairs
/// of `caps`: [0] the match, [1..ncap] the groups (false unmatched), named
/// groups also by name (lists of the matched ones with D). Into the table
/// at `res` when it is not 0.
///
/// # Safety
/// `l` is valid with four free slots.
unsafe fn collect(l: State, subj: &[u8], re: &Compiled, dup: bool, caps: &[c_int], rc: c_int, res: c_int) {
    // SAFETY: caller's contract.
    unsafe {
        if res != 0 {
            lua::lua_pushvalue(l, res);
        } else {
            lua::lua_createtable(l, re.ncap as c_int, 0);
        }
        for i in 0..=re.ncap {
            let (from, to) = if (i as c_int) < rc { (caps[2 * i], caps[2 * i + 1]) } else { (-1, -1) };
            if from >= 0 {
                push(l, &subj[from as usize..to as usize]);
            } else {
                lua::lua_pushboolean(l, 0);
            }
            lua::lua_rawseti(l, -2, i as _);
        }
        for i in 1..=re.ncap as c_int {
            let Ok(name) = api::capture_name(re.id, i) else { continue };
            push(l, name.bytes());
            lua::lua_rawgeti(l, -2, i.into());
            if !dup {
                lua::lua_rawset(l, -3);
                continue;
            }
            if lua::lua_toboolean(l, -1) == 0 {
                lua::lua_settop(l, -3);
                continue;
            }
            lua::lua_pushvalue(l, -2);
            lua::lua_rawget(l, -4);
            if lua::lua_type(l, -1) == lua::LUA_TTABLE {
                let n = lua::lua_objlen(l, -1);
                lua::lua_insert(l, -2);
                lua::lua_rawseti(l, -2, (n + 1) as _);
                lua::lua_settop(l, -3);
            } else {
                lua::lua_settop(l, -2);
                lua::lua_createtable(l, 1, 0);
                lua::lua_insert(l, -2);
                lua::lua_rawseti(l, -2, 1);
                lua::lua_rawset(l, -3);
            }
        }
    }
}

/// The pairs buffer with room for `n` ints.
fn caps_buf(n: usize) -> Vec<c_int> {
    let mut caps = CAPS.take();
    if caps.len() < n {
        caps.resize(n, -1);
    }
    caps
}

/// `ngx.re.match(subject, regex, options?, ctx?, res_table?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_re_match(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let (subj, regex, opts) = args(l, "match", 3);
        optional(l, 4, lua::LUA_TTABLE, "match");
        optional(l, 5, lua::LUA_TTABLE, "match");
        let dup = opts.contains(&b'D');
        let re = match compile(l, regex, opts) {
            Ok(re) => re,
            Err(msg) => return fail(l, 1, &msg),
        };
        let n = (re.ncap + 1) * 2;
        let mut caps = caps_buf(n);
        let rc = api::exec(re.id, subj, start_of(l), &mut caps[..n]);
        if rc <= 0 {
            CAPS.set(caps);
            re.done();
            if rc == 0 {
                lua::lua_pushnil(l);
                return 1;
            }
            return fail(l, 1, &exec_error(rc));
        }
        set_pos(l, caps[1]);
        let res = if lua::lua_type(l, 5) == lua::LUA_TTABLE { 5 } else { 0 };
        collect(l, subj, &re, dup, &caps, rc, res);
        CAPS.set(caps);
        re.done();
    }
    1
}

/// `ngx.re.find(subject, regex, options?, ctx?, nth?)`.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_re_find(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let (subj, regex, opts) = args(l, "find", 3);
        optional(l, 4, lua::LUA_TTABLE, "find");
        optional(l, 5, lua::LUA_TNUMBER, "find");
        let nth = lua::lua_tonumber(l, 5).max(0.0) as usize;
        let re = match compile(l, regex, opts) {
            Ok(re) => re,
            Err(msg) => return fail(l, 2, &msg),
        };
        // Only the pairs up to nth: the whole match alone is the fast search.
        let n = if nth > 0 { (nth.min(re.ncap) + 1) * 2 } else { 2 };
        let mut caps = caps_buf(n);
        let rc = api::exec(re.id, subj, start_of(l), &mut caps[..n]);
        let ncap = re.ncap;
        re.done();
        let (from, to) = match nth < n / 2 {
            true => (caps[nth * 2], caps[nth * 2 + 1]),
            false => (-1, -1),
        };
        let end = caps[1];
        CAPS.set(caps);
        if rc <= 0 {
            if rc == 0 {
                lua::lua_pushnil(l);
                return 1;
            }
            return fail(l, 2, &exec_error(rc));
        }
        set_pos(l, end);
        if nth > ncap {
            return fail(l, 2, b"nth out of bound");
        }
        if from < 0 {
            lua::lua_pushnil(l);
            lua::lua_pushnil(l);
            return 2;
        }
        lua::lua_pushnumber(l, f64::from(from) + 1.0);
        lua::lua_pushnumber(l, f64::from(to));
    }
    2
}

/// `ngx.re.gsub(subject, regex, replace, options?)`: `replace` a template
/// string (or number) or a function of the match table.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
#[no_mangle]
pub unsafe extern "C-unwind" fn halo_lua_re_gsub(l: State) -> c_int {
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        let (subj, regex, opts) = args(l, "gsub", 4);
        let func = match lua::lua_type(l, 3) {
            lua::LUA_TFUNCTION => true,
            lua::LUA_TSTRING | lua::LUA_TNUMBER => false,
            _ => {
                let t = type_name(l, 3);
                raise(l, format!("bad argument #3 to 'gsub' (string or function expected, got {t})"))
            }
        };
        let dup = opts.contains(&b'D');
        let re = match compile(l, regex, opts) {
            Ok(re) => re,
            Err(msg) => return fail(l, 2, &msg),
        };
        if func {
            return sub_func(l, subj, re, dup);
        }
        let tpl = tostring_at(l, 3);
        let (n, text) = api::sub(re.id, subj, tpl, true);
        let text = text.map(|t| t.bytes().to_vec());
        re.done();
        match (n, text) {
            (0, _) => {
                lua::lua_pushvalue(l, 1);
                lua::lua_pushnumber(l, 0.0);
                2
            }
            (n, Some(t)) if n > 0 => {
                push(l, &t);
                drop(t);
                lua::lua_pushnumber(l, f64::from(n));
                2
            }
            (ERROR, t) => {
                // As lua-resty-core: the reason goes to the error log.
                registry(l, c"halo.capi.ngx");
                lua::lua_getfield(l, -1, c"log".as_ptr());
                lua::lua_getfield(l, -2, c"ERR".as_ptr());
                push(l, b"failed to compile the replacement template: ");
                push(l, &t.unwrap_or_default());
                lua::lua_call(l, 3, 0);
                fail(l, 2, b"failed to compile the replacement template")
            }
            (n, _) => fail(l, 2, &exec_error(n)),
        }
    }
}

/// gsub with a function: each match table goes to the function at 3, its
/// result (tostring) replaces the match.
///
/// # Safety
/// As a lua_CFunction; the function may raise (its error unwinds this
/// frame: the buffers are then dropped, the regex left to the cache).
unsafe fn sub_func(l: State, subj: &[u8], re: Compiled, dup: bool) -> c_int {
    let n = (re.ncap + 1) * 2;
    let (mut pos, mut copied, mut count) = (0usize, 0usize, 0);
    let mut out = Vec::with_capacity(subj.len());
    // SAFETY: `l` is the calling thread; a few slots are used.
    unsafe {
        loop {
            // Taken per search: the function may run ngx.re calls itself.
            let mut caps = caps_buf(n);
            let rc = api::exec(re.id, subj, pos, &mut caps[..n]);
            if rc <= 0 {
                CAPS.set(caps);
                if rc < 0 {
                    re.done();
                    return fail(l, 2, &exec_error(rc));
                }
                break;
            }
            count += 1;
            let (from, to) = (caps[0] as usize, caps[1] as usize);
            lua::lua_pushvalue(l, 3);
            collect(l, subj, &re, dup, &caps, rc, 0);
            CAPS.set(caps);
            lua::lua_call(l, 1, 1);
            out.extend_from_slice(&subj[copied..from]);
            let top = lua::lua_gettop(l);
            out.extend_from_slice(tostring_at(l, top));
            lua::lua_settop(l, -2);
            copied = to;
            pos = to;
            if to == from {
                pos += 1;
                if pos > subj.len() {
                    break;
                }
            }
        }
        re.done();
        if count == 0 {
            lua::lua_pushvalue(l, 1);
        } else {
            out.extend_from_slice(&subj[copied..]);
            push(l, &out);
        }
        lua::lua_pushnumber(l, f64::from(count));
    }
    2
}
