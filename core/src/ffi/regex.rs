//! `halo_ffi_regex_*` (ffi-headers/regex.h): ngx.re.* over two engines.
//!
//! A pattern first compiles to [`regex::bytes::Regex`] (fast, linear time);
//! one it refuses (look-around, back-references, atomic groups, `\Z`, ...) or
//! one with the `D` / `J` options compiles with PCRE2 instead ([`pcre`]), whose
//! errors are then the ones reported, in PCRE's words. Both fill the same
//! (from, to) pairs, so the Lua side does not know which engine ran.
//!
//! Regex-crate patterns (subjects are byte strings; Unicode
//! classes and UTF-8 only with the `u` flag, as PCRE without `PCRE_UTF8`). Compiled
//! regexes live in a per-thread cache (one per worker: workers are single-threaded;
//! the master's init_by_lua entries are inherited through fork) keyed by (pattern,
//! flags) and named by their index. The cache holds at most [`CACHE_MAX`] entries
//! (lua_regex_cache_max_entries' default); beyond that a compile makes a temporary
//! entry the Lua side frees after use. Cached entries are never evicted, so an id
//! the Lua side keeps stays valid.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::raw::{c_int, c_uint};

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

use super::{read_in, Lent, DECLINED, ERROR, OK};

mod pcre;
use pcre::{MatchCtx, Pcre};

/// `i`: case-insensitive.
pub const CASELESS: c_uint = 1;
/// `m`: `^` and `$` match at line boundaries.
pub const MULTILINE: c_uint = 2;
/// `s`: `.` matches `\n` too.
pub const DOTALL: c_uint = 4;
/// `x`: whitespace and `#` comments in the pattern are ignored.
pub const EXTENDED: c_uint = 8;
/// `u` / `U`: the pattern and subjects are UTF-8 (Unicode classes and case folding).
pub const UTF8: c_uint = 16;
/// `a`: the match must start at the start offset.
pub const ANCHORED: c_uint = 32;
/// `D`: duplicate group names are allowed (PCRE2 only).
pub const DUPNAMES: c_uint = 64;
/// `J`: JavaScript-compatible syntax (PCRE2 only).
pub const JAVASCRIPT: c_uint = 128;
const ALL_FLAGS: c_uint = CASELESS | MULTILINE | DOTALL | EXTENDED | UTF8 | ANCHORED | DUPNAMES | JAVASCRIPT;

/// Most cached compiled regexes per worker (lua_regex_cache_max_entries' default).
pub const CACHE_MAX: usize = 1024;

/// A compiled pattern on one of the two engines.
enum Engine {
    Rust { re: Regex, locs: CaptureLocations, names: Vec<Option<String>> },
    Pcre(Pcre),
}

struct Compiled {
    engine: Engine,
    anchored: bool,
    temp: bool,
}

impl Compiled {
    /// The leftmost match at or after `start`, with its groups readable by
    /// [`Compiled::group`] when `groups` (else only the whole match may be
    /// found, which is cheaper); Err is PCRE2's error code (match limit).
    /// `start` must be at most `subj.len()`.
    fn search(&mut self, subj: &[u8], start: usize, groups: bool, ctx: &MatchCtx) -> Result<Option<(usize, usize)>, c_int> {
        let (re, locs) = match &mut self.engine {
            Engine::Pcre(p) => return p.search(subj, start, self.anchored, ctx.ptr()),
            Engine::Rust { re, locs, .. } => (re, locs),
        };
        let m = if groups {
            re.captures_read_at(locs, subj, start).map(|m| (m.start(), m.end()))
        } else {
            re.find_at(subj, start).map(|m| (m.start(), m.end()))
        };
        // Leftmost-first: if any match starts at `start`, the one found does,
        // and it is the one an anchored search would find.
        Ok(m.filter(|&(s, _)| !self.anchored || s == start))
    }

    /// Group `i` of the last search with groups (None when unmatched).
    fn group(&self, i: usize) -> Option<(usize, usize)> {
        match &self.engine {
            Engine::Rust { locs, .. } => locs.get(i),
            Engine::Pcre(p) => p.group(i),
        }
    }

    /// The group names by number (index 0, the whole match, is None).
    fn names(&self) -> &[Option<String>] {
        match &self.engine {
            Engine::Rust { names, .. } => names,
            Engine::Pcre(p) => &p.names,
        }
    }
}

struct Cache {
    slots: Vec<Option<Compiled>>,
    free: Vec<usize>,
    index: HashMap<(Vec<u8>, c_uint), usize>,
    max: usize,
    /// Whether "exceeding regex cache max entries" was logged already.
    warned: bool,
    /// `lua_regex_match_limit` for PCRE2 searches.
    ctx: MatchCtx,
    /// The last error text or substitution result (borrowed by the caller).
    out: Vec<u8>,
}

impl Cache {
    fn new(max: usize) -> Cache {
        Cache { slots: Vec::new(), free: Vec::new(), index: HashMap::new(), max, warned: false, ctx: MatchCtx::new(), out: Vec::new() }
    }

    fn get(&mut self, id: c_int) -> Option<&mut Compiled> {
        usize::try_from(id).ok().and_then(|i| self.slots.get_mut(i)).and_then(Option::as_mut)
    }

    /// The id of `pat` compiled with `flags` and whether it is temporary, or the
    /// error message.
    fn compile(&mut self, pat: &[u8], flags: c_uint) -> Result<(usize, bool), String> {
        let flags = flags & ALL_FLAGS;
        if let Some(&id) = self.index.get(&(pat.to_vec(), flags)) {
            return Ok((id, false));
        }
        let engine = build(pat, flags)?;
        let temp = self.index.len() >= self.max;
        if temp && !self.warned {
            self.warned = true;
            crate::log::error::log(crate::log::Level::Warn, None, &format!("lua exceeding regex cache max entries ({})", self.max));
        }
        let c = Compiled { engine, anchored: flags & ANCHORED != 0, temp };
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(c);
                i
            }
            None => {
                self.slots.push(Some(c));
                self.slots.len() - 1
            }
        };
        if id > c_int::MAX as usize {
            self.slots[id] = None;
            self.free.push(id);
            return Err("too many regexes".into());
        }
        if !temp {
            self.index.insert((pat.to_vec(), flags), id);
        }
        Ok((id, temp))
    }

    fn free(&mut self, id: c_int) -> c_int {
        match self.get(id) {
            Some(c) if c.temp => {
                let i = id as usize;
                self.slots[i] = None;
                self.free.push(i);
                OK
            }
            Some(_) => DECLINED,
            None => ERROR,
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new(CACHE_MAX));
}

/// Runs `f` on this thread's cache; ERROR if it is busy (cannot happen: no
/// function here calls back into Lua).
fn with_cache(f: impl FnOnce(&mut Cache) -> c_int) -> c_int {
    CACHE.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => f(&mut c),
        Err(_) => ERROR,
    })
}

/// The pattern as the regex crate takes it (`&str`): without the `u` flag,
/// bytes that are not UTF-8 become `\xHH` escapes (one byte each, as the regex
/// is not Unicode then).
fn pattern_text(pat: &[u8], utf8: bool) -> Result<Cow<'_, str>, String> {
    if let Ok(s) = std::str::from_utf8(pat) {
        return Ok(Cow::Borrowed(s));
    }
    if utf8 {
        return Err("invalid UTF-8 in the pattern (u flag)".into());
    }
    let mut out = String::with_capacity(pat.len() + 8);
    for chunk in pat.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Ok(Cow::Owned(out))
}

/// The regex crate's message without its pattern excerpt ("regex parse
/// error:\n    (?=x)\n    ^^^\nerror: look-around ... is not supported").
fn short_message(e: &regex::Error) -> String {
    let full = e.to_string();
    match full.lines().rev().find_map(|l| l.strip_prefix("error: ")) {
        Some(m) => m.to_owned(),
        None => full.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "),
    }
}

/// The regex crate's compile of `pat`, or its error message.
fn build_rust(pat: &[u8], flags: c_uint) -> Result<Regex, String> {
    let text = pattern_text(pat, flags & UTF8 != 0)?;
    RegexBuilder::new(&text)
        .case_insensitive(flags & CASELESS != 0)
        .multi_line(flags & MULTILINE != 0)
        .dot_matches_new_line(flags & DOTALL != 0)
        .ignore_whitespace(flags & EXTENDED != 0)
        .unicode(flags & UTF8 != 0)
        .build()
        .map_err(|e| short_message(&e))
}

/// PCRE2's compile options for `flags` (as lua-nginx-module maps the letters).
fn pcre_options(flags: c_uint) -> u32 {
    use pcre2_sys::*;
    let map = [
        (CASELESS, PCRE2_CASELESS),
        (MULTILINE, PCRE2_MULTILINE),
        (DOTALL, PCRE2_DOTALL),
        (EXTENDED, PCRE2_EXTENDED),
        (UTF8, PCRE2_UTF),
        (DUPNAMES, PCRE2_DUPNAMES),
        (JAVASCRIPT, PCRE2_ALT_BSUX | PCRE2_MATCH_UNSET_BACKREF),
    ];
    map.iter().filter(|(f, _)| flags & f != 0).fold(0, |o, (_, p)| o | p)
}

/// Whether `pat` may hold syntax the regex crate accepts with another
/// meaning: possessive quantifiers (`a*+` is `(a*)+` there), and `$` without
/// `m` (PCRE's also matches before a final newline). PCRE is the reference,
/// so a false alarm only costs speed.
fn pcre_syntax(pat: &[u8], flags: c_uint) -> bool {
    (flags & MULTILINE == 0 && pat.contains(&b'$'))
        || pat.windows(2).any(|w| matches!(w, [b'*' | b'+' | b'?' | b'}', b'+']))
}

/// `pat` on the regex crate when it can run it (and no PCRE-only option is
/// given), else on PCRE2, whose error is the one reported (so every compile
/// error is in PCRE's words, as OpenResty users match on them).
fn build(pat: &[u8], flags: c_uint) -> Result<Engine, String> {
    if flags & (DUPNAMES | JAVASCRIPT) == 0 && !pcre_syntax(pat, flags) {
        if let Ok(re) = build_rust(pat, flags) {
            let names = re.capture_names().map(|n| n.map(str::to_owned)).collect();
            return Ok(Engine::Rust { locs: re.capture_locations(), re, names });
        }
    }
    Pcre::new(pat, pcre_options(flags)).map(Engine::Pcre)
}

/// Sets `lua_regex_match_limit` (0: PCRE2's default) and
/// `lua_regex_cache_max_entries` for this thread's cache (the master's, which
/// the workers inherit); called once the configuration is read.
pub fn configure(match_limit: u32, cache_max: usize) {
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.ctx.set_match_limit(match_limit);
            c.max = cache_max;
        }
    });
}

/// Compiles (or finds cached) `pat`; returns the id, or ERROR with the message
/// in `*err`, `*errlen`.
///
/// # Safety
/// `pat` must be NULL or valid for reads of `len` bytes; `temp`, `err` and
/// `errlen` each NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_regex_compile(
    pat: *const u8,
    len: usize,
    flags: c_uint,
    temp: *mut c_int,
    err: *mut *const u8,
    errlen: *mut usize,
) -> c_int {
    // SAFETY: forwarded caller contract.
    let pat = unsafe { read_in(pat, len) };
    match compile(pat, flags) {
        Ok((id, is_temp)) => {
            if !temp.is_null() {
                // SAFETY: non-null and valid for a write (caller's contract).
                unsafe { *temp = c_int::from(is_temp) };
            }
            id
        }
        Err(msg) => {
            // SAFETY: forwarded caller contract.
            unsafe { msg.out(err, errlen) };
            ERROR
        }
    }
}

/// Compiles (or finds cached) `pat` with `flags` (ffi-headers/regex.h's
/// HALO_FFI_REGEX_*): its id and whether it is temporary (free it after
/// use), or the compile error (kept until the next call).
pub fn compile(pat: &[u8], flags: c_uint) -> Result<(c_int, bool), Lent> {
    let mut res = Err(Lent::new(b"regex cache busy"));
    with_cache(|c| {
        res = match c.compile(pat, flags) {
            Ok((id, temp)) => Ok((id as c_int, temp)),
            Err(msg) => {
                c.out = msg.into_bytes();
                // `c.out` lives until the next call.
                Err(Lent::new(&c.out))
            }
        };
        OK
    });
    res
}

/// Searches `subj` from `start`; fills `caps` with (from, to) pairs. Returns
/// the pairs filled, 0 for no match, or ERROR.
///
/// # Safety
/// `subj` must be NULL or valid for reads of `len` bytes; `caps` NULL or valid
/// for writes of `ncaps` ints.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_regex_exec(
    id: c_int,
    subj: *const u8,
    len: usize,
    start: usize,
    caps: *mut c_int,
    ncaps: c_int,
) -> c_int {
    if caps.is_null() || ncaps < 2 {
        return ERROR;
    }
    // SAFETY: forwarded caller contract.
    let subj = unsafe { read_in(subj, len) };
    // SAFETY: non-null and valid for `ncaps` ints (caller's contract).
    let caps = unsafe { std::slice::from_raw_parts_mut(caps, ncaps as usize) };
    exec(id, subj, start, caps)
}

/// Searches `subj` with regex `id` from byte `start`; fills `caps` with
/// (from, to) pairs (-1 for an unmatched group), as many as it holds.
/// Returns the pairs filled, 0 for no match, or ERROR / PCRE2's code.
pub fn exec(id: c_int, subj: &[u8], start: usize, caps: &mut [c_int]) -> c_int {
    if caps.len() < 2 || subj.len() > c_int::MAX as usize {
        return ERROR;
    }
    with_cache(|c| {
        if start > subj.len() {
            return 0;
        }
        let pairs = caps.len() / 2;
        let Cache { slots, ctx, .. } = c;
        let Some(re) = slots.get_mut(id as usize).and_then(Option::as_mut) else { return ERROR };
        let (s, e) = match re.search(subj, start, pairs > 1, ctx) {
            Ok(Some(m)) => m,
            Ok(None) => return 0,
            // PCRE2's code (<= -2), as lua-nginx-module reports it.
            Err(rc) => return rc.min(-2),
        };
        caps[0] = s as c_int;
        caps[1] = e as c_int;
        if pairs == 1 {
            return 1;
        }
        let n = pairs.min(re.names().len());
        for i in 1..n {
            let (a, b) = re.group(i).map_or((-1, -1), |(a, b)| (a as c_int, b as c_int));
            caps[2 * i] = a;
            caps[2 * i + 1] = b;
        }
        n as c_int
    })
}

/// The number of groups of regex `id`, or ERROR.
#[no_mangle]
pub extern "C" fn halo_ffi_regex_ncaptures(id: c_int) -> c_int {
    with_cache(|c| c.get(id).map_or(ERROR, |re| (re.names().len() - 1) as c_int))
}

/// The name of group `i` of regex `id`: OK with the name, DECLINED for an
/// unnamed group, ERROR for an unknown id or group.
///
/// # Safety
/// `name` and `len` must each be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_regex_capture_name(id: c_int, i: c_int, name: *mut *const u8, len: *mut usize) -> c_int {
    match capture_name(id, i) {
        // SAFETY: forwarded caller contract.
        Ok(n) => unsafe { n.out(name, len) },
        Err(rc) => rc,
    }
}

/// The name of group `i` of regex `id` (it lives as long as the compiled
/// regex: cached ones for the process); Err(DECLINED) for an unnamed
/// group, Err(ERROR) for an unknown id or group.
pub fn capture_name(id: c_int, i: c_int) -> Result<Lent, c_int> {
    let mut res = Err(ERROR);
    with_cache(|c| {
        let Some(re) = c.get(id) else { return ERROR };
        let Some(slot) = usize::try_from(i).ok().filter(|&i| i >= 1).and_then(|i| re.names().get(i)) else {
            return ERROR;
        };
        res = slot.as_ref().map(|n| Lent::new(n.as_bytes())).ok_or(DECLINED);
        OK
    });
    res
}

/// One piece of a replacement template.
#[derive(Debug, PartialEq)]
enum Piece {
    /// Bytes copied as they are (`$$` gives one `$`).
    Lit(Vec<u8>),
    /// The text of a group (0 = the whole match); empty when unmatched or absent.
    Group(usize),
}

fn bracket_next(tpl: &[u8], i: usize) -> bool {
    tpl.get(i) == Some(&b'{')
}

/// Parses a replacement template as lua-nginx-module does: `$N` (all the digits
/// that follow), `${N}`, `$$`; and `${name}` for a named group (an extension).
fn parse_template(tpl: &[u8], names: &[Option<String>]) -> Result<Vec<Piece>, String> {
    let shown = || String::from_utf8_lossy(tpl).into_owned();
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < tpl.len() {
        let b = tpl[i];
        i += 1;
        if b != b'$' {
            lit.push(b);
            continue;
        }
        if tpl.get(i) == Some(&b'$') {
            lit.push(b'$');
            i += 1;
            continue;
        }
        if !bracket_next(tpl, i) && tpl.get(i).is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') {
            // As lua-nginx-module: only ${name} (a halo extension) names a group.
            let end = tpl[i..].iter().position(|&c| !(c.is_ascii_alphanumeric() || c == b'_')).map_or(tpl.len(), |n| i + n);
            return Err(format!(
                "attempt to use named capturing variable \"{}\" (named captures not supported yet)",
                String::from_utf8_lossy(&tpl[i..end])
            ));
        }
        let bracket = bracket_next(tpl, i);
        if bracket {
            i += 1;
        }
        let begin = i;
        while i < tpl.len() && (tpl[i].is_ascii_digit() || (bracket && (tpl[i].is_ascii_alphanumeric() || tpl[i] == b'_'))) {
            i += 1;
        }
        let name = &tpl[begin..i];
        if bracket {
            if tpl.get(i) != Some(&b'}') {
                return Err(format!("the closing bracket in \"{}\" variable is missing", shown()));
            }
            i += 1;
        }
        if name.is_empty() {
            return Err(format!("invalid capturing variable name found in \"{}\"", shown()));
        }
        let group = if name.iter().all(u8::is_ascii_digit) {
            // Absurdly large numbers name no group: they expand to nothing.
            std::str::from_utf8(name).ok().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX)
        } else {
            let n = std::str::from_utf8(name).unwrap_or_default();
            names
                .iter()
                .position(|g| g.as_deref() == Some(n))
                .ok_or_else(|| format!("unknown capture name \"{n}\" in \"{}\"", shown()))?
        };
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Group(group));
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// `subj` with the first (or every, if `global`) match of `re` replaced by the
/// template `pieces`, into `out`; returns the number of replacements (`out` is
/// left empty when 0), or PCRE2's error code. Empty matches advance one byte,
/// as OpenResty does.
fn substitute(re: &mut Compiled, subj: &[u8], pieces: &[Piece], global: bool, ctx: &MatchCtx, out: &mut Vec<u8>) -> Result<usize, c_int> {
    out.clear();
    let groups = pieces.iter().any(|p| matches!(p, Piece::Group(g) if *g > 0));
    let (mut pos, mut copied, mut n) = (0, 0, 0);
    while let Some((s, e)) = re.search(subj, pos, groups, ctx)? {
        n += 1;
        out.extend_from_slice(&subj[copied..s]);
        for p in pieces {
            match p {
                Piece::Lit(l) => out.extend_from_slice(l),
                Piece::Group(0) => out.extend_from_slice(&subj[s..e]),
                Piece::Group(g) => {
                    if let Some((a, b)) = re.group(*g) {
                        out.extend_from_slice(&subj[a..b]);
                    }
                }
            }
        }
        copied = e;
        pos = e;
        if e == s {
            pos += 1;
            if pos > subj.len() {
                break;
            }
        }
        if !global {
            break;
        }
    }
    if n > 0 {
        out.extend_from_slice(&subj[copied..]);
    }
    Ok(n)
}

/// Replaces the first (or every) match of regex `id` in `subj` with the
/// template `tpl`. Returns the number of replacements, with the result in
/// `*out`, `*outlen` when > 0; or ERROR with the message there.
///
/// # Safety
/// `subj` and `tpl` must each be NULL or valid for reads of `len` / `tpl_len`
/// bytes; `out` and `outlen` each NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_regex_sub(
    id: c_int,
    subj: *const u8,
    len: usize,
    tpl: *const u8,
    tpl_len: usize,
    global: c_int,
    out: *mut *const u8,
    outlen: *mut usize,
) -> c_int {
    // SAFETY: forwarded caller contract.
    let (subj, tpl) = unsafe { (read_in(subj, len), read_in(tpl, tpl_len)) };
    let (rc, text) = sub(id, subj, tpl, global != 0);
    if let Some(text) = text {
        // SAFETY: forwarded caller contract.
        unsafe { text.out(out, outlen) };
    }
    rc
}

/// Replaces the first (or every, `global`) match of regex `id` in `subj`
/// with the template `tpl`: the number of replacements with the result
/// when > 0; ERROR with the message (a bad template); or PCRE2's code.
pub fn sub(id: c_int, subj: &[u8], tpl: &[u8], global: bool) -> (c_int, Option<Lent>) {
    let mut text = None;
    let rc = with_cache(|c| {
        let Cache { slots, out: buf, ctx, .. } = c;
        let result = match usize::try_from(id).ok().and_then(|i| slots.get_mut(i)).and_then(Option::as_mut) {
            None => Err("unknown regex".to_owned()),
            Some(_) if subj.len() > c_int::MAX as usize => Err("subject too long".to_owned()),
            Some(re) => parse_template(tpl, re.names()).map(|pieces| substitute(re, subj, &pieces, global, ctx, buf)),
        };
        match result {
            Ok(Err(rc)) => {
                buf.clear();
                rc.min(-2)
            }
            Ok(Ok(n)) => {
                // `buf` lives until the next call.
                text = Some(Lent::new(buf));
                n.min(c_int::MAX as usize) as c_int
            }
            Err(msg) => {
                *buf = msg.into_bytes();
                text = Some(Lent::new(buf));
                ERROR
            }
        }
    });
    (rc, text)
}

/// `ngx.re.opt("jit_stack_size", size)`: the JIT stack of later PCRE2
/// searches; OK, or ERROR if it cannot be allocated.
#[no_mangle]
pub extern "C" fn halo_ffi_regex_set_jit_stack_size(size: c_int) -> c_int {
    let size = usize::try_from(size).unwrap_or(0);
    with_cache(|c| if c.ctx.set_jit_stack_size(size) { OK } else { ERROR })
}

/// Frees temporary entry `id`: OK; DECLINED for a cached one; ERROR if unknown.
#[no_mangle]
pub extern "C" fn halo_ffi_regex_free(id: c_int) -> c_int {
    with_cache(|c| c.free(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::null_mut;

    fn compile(pat: &str, flags: c_uint) -> Result<(c_int, bool), String> {
        let (mut temp, mut err, mut errlen) = (-1, std::ptr::null(), 0usize);
        // SAFETY: pointers to live locals; `err` is read before the next call.
        unsafe {
            let id = halo_ffi_regex_compile(pat.as_ptr(), pat.len(), flags, &mut temp, &mut err, &mut errlen);
            if id >= 0 {
                Ok((id, temp == 1))
            } else {
                Err(String::from_utf8_lossy(std::slice::from_raw_parts(err, errlen)).into_owned())
            }
        }
    }

    fn id(pat: &str, flags: c_uint) -> c_int {
        compile(pat, flags).unwrap().0
    }

    fn exec(id: c_int, subj: &str, start: usize, pairs: usize) -> Vec<(c_int, c_int)> {
        let mut caps = vec![7; pairs * 2];
        // SAFETY: `caps` holds `pairs * 2` ints.
        let n = unsafe { halo_ffi_regex_exec(id, subj.as_ptr(), subj.len(), start, caps.as_mut_ptr(), caps.len() as c_int) };
        assert!(n >= 0, "exec error {n}");
        (0..n as usize).map(|i| (caps[2 * i], caps[2 * i + 1])).collect()
    }

    fn sub(id: c_int, subj: &str, tpl: &str, global: bool) -> Result<(String, c_int), String> {
        let (mut out, mut len) = (std::ptr::null(), 0usize);
        // SAFETY: pointers to live locals; the result is copied at once.
        unsafe {
            let n = halo_ffi_regex_sub(id, subj.as_ptr(), subj.len(), tpl.as_ptr(), tpl.len(), c_int::from(global), &mut out, &mut len);
            let text = if len > 0 { String::from_utf8_lossy(std::slice::from_raw_parts(out, len)).into_owned() } else { String::new() };
            if n < 0 {
                Err(text)
            } else {
                Ok((if n == 0 { subj.to_owned() } else { text }, n))
            }
        }
    }

    #[test]
    fn compile_is_cached_by_pattern_and_flags() {
        let a = id("a(b)c", 0);
        assert_eq!(id("a(b)c", 0), a);
        assert_ne!(id("a(b)c", CASELESS), a);
        // Unknown bits (flags the Lua side does not send) are ignored.
        assert_eq!(id("a(b)c", 1 << 20), a);
        assert_eq!(halo_ffi_regex_ncaptures(a), 1);
        assert_eq!(halo_ffi_regex_free(a), DECLINED, "cached entries stay");
        assert_eq!(halo_ffi_regex_ncaptures(-1), ERROR);
        assert_eq!(halo_ffi_regex_ncaptures(1 << 30), ERROR);
    }

    #[test]
    fn compile_errors_are_messages() {
        // Every compile error is PCRE2's, in lua-nginx-module's words.
        let e = compile("(abc", 0).unwrap_err();
        assert_eq!(e, "pcre2_compile() failed: missing closing parenthesis in \"(abc\"");
        let e = compile("a)b", 0).unwrap_err();
        assert!(e.starts_with("pcre2_compile() failed: ") && e.ends_with(" in \"a)b\" at \")b\""), "{e}");
        // Syntax the regex crate lacks runs on PCRE2; D and J always do.
        for pcre_only in ["a(?=b)", "(a)\\1", "(?>a)", "a\\Z", "a*+", "(?<n>a)|(?<n>b)"] {
            let flags = if pcre_only.contains("?<n>") { DUPNAMES } else { 0 };
            let (id, _) = compile(pcre_only, flags).unwrap();
            let c = CACHE.with(|c| matches!(c.borrow().slots[id as usize].as_ref().unwrap().engine, Engine::Pcre(_)));
            assert!(c, "{pcre_only}");
        }
        assert_eq!(exec(id("(a)\\1", 0), "xaa", 0, 2), [(1, 3), (1, 2)]);
        assert_eq!(exec(id("(?<=a)b", ANCHORED), "ab", 1, 1), [(1, 2)]);
        assert_eq!(exec(id("(?<=a)b", ANCHORED), "ab", 0, 1), []);
        assert_eq!(exec(id("(?<=a)b", 0), "ab", 3, 1), [], "start past the end");
        // $ without m: at the end or before a final newline, as PCRE's.
        assert_eq!(exec(id("a$", 0), "a\n", 0, 1), [(0, 1)]);
        assert_eq!(exec(id("a$", 0), "a\nb", 0, 1), []);
        assert_eq!(exec(id("a$", MULTILINE), "a\nb", 0, 1), [(0, 1)]);
        // Non-UTF-8 bytes are literal bytes without u, an error with it.
        let pat = b"\xff+";
        let mut temp = 0;
        // SAFETY: pointers to live data.
        let id = unsafe { halo_ffi_regex_compile(pat.as_ptr(), 2, 0, &mut temp, null_mut(), null_mut()) };
        assert!(id >= 0);
        let subj = b"a\xff\xffb";
        let mut caps = [0; 2];
        // SAFETY: `caps` holds 2 ints.
        assert_eq!(unsafe { halo_ffi_regex_exec(id, subj.as_ptr(), 4, 0, caps.as_mut_ptr(), 2) }, 1);
        assert_eq!(caps, [1, 3]);
        // SAFETY: pointers to live data.
        assert_eq!(unsafe { halo_ffi_regex_compile(pat.as_ptr(), 2, UTF8, &mut temp, null_mut(), null_mut()) }, ERROR);
    }

    #[test]
    fn exec_fills_pairs_with_unmatched_groups() {
        let r = id("(world)|(hello)|(?<named>howdy)", 0);
        assert_eq!(exec(r, "hello, world", 0, 4), [(0, 5), (-1, -1), (0, 5), (-1, -1)]);
        // Fewer pairs asked for: fewer filled; one pair: the whole match only.
        assert_eq!(exec(r, "hello, world", 0, 2), [(0, 5), (-1, -1)]);
        assert_eq!(exec(r, "hello, world", 1, 1), [(7, 12)]);
        assert_eq!(exec(r, "nothing", 0, 4), []);
        assert_eq!(exec(r, "hello", 6, 4), [], "start past the end: no match");
        let (mut name, mut len) = (std::ptr::null(), 0usize);
        // SAFETY: pointers to live locals.
        unsafe {
            assert_eq!(halo_ffi_regex_capture_name(r, 1, &mut name, &mut len), DECLINED);
            assert_eq!(halo_ffi_regex_capture_name(r, 3, &mut name, &mut len), OK);
            assert_eq!(std::slice::from_raw_parts(name, len), b"named");
            assert_eq!(halo_ffi_regex_capture_name(r, 4, &mut name, &mut len), ERROR);
            assert_eq!(halo_ffi_regex_capture_name(r, 0, &mut name, &mut len), ERROR);
        }
        let mut caps = [0; 4];
        // SAFETY: `caps` holds 4 ints; too few or a NULL buffer is an error.
        unsafe {
            assert_eq!(halo_ffi_regex_exec(r, b"x".as_ptr(), 1, 0, caps.as_mut_ptr(), 1), ERROR);
            assert_eq!(halo_ffi_regex_exec(r, b"x".as_ptr(), 1, 0, null_mut(), 4), ERROR);
            assert_eq!(halo_ffi_regex_exec(-3, b"x".as_ptr(), 1, 0, caps.as_mut_ptr(), 4), ERROR);
        }
    }

    #[test]
    fn flags() {
        assert_eq!(exec(id("abc", CASELESS), "xABC", 0, 1), [(1, 4)]);
        assert_eq!(exec(id("^b$", MULTILINE), "a\nb\nc", 0, 1), [(2, 3)]);
        assert_eq!(exec(id("^b$", 0), "a\nb\nc", 0, 1), []);
        assert_eq!(exec(id("a.b", DOTALL), "a\nb", 0, 1), [(0, 3)]);
        assert_eq!(exec(id("a.b", 0), "a\nb", 0, 1), []);
        assert_eq!(exec(id("a b # comment", EXTENDED), "xab", 0, 1), [(1, 3)]);
        // Anchored at the start offset, not at 0.
        let a = id("\\d+", ANCHORED);
        assert_eq!(exec(a, "ab12", 0, 1), []);
        assert_eq!(exec(a, "ab12", 2, 1), [(2, 4)]);
        // Without u, . is one byte and \w ASCII; with it, one character.
        assert_eq!(exec(id("^.$", 0), "é", 0, 1), []);
        assert_eq!(exec(id("^.$", UTF8), "é", 0, 1), [(0, 2)]);
        assert_eq!(exec(id("\\w+", UTF8), "éa", 0, 1), [(0, 3)]);
        assert_eq!(exec(id("é", 0), "café", 0, 1), [(3, 5)]);
    }

    #[test]
    fn templates() {
        let r = id("([0-9])(?<rest>[0-9])", 0);
        assert_eq!(sub(r, "hello, 1234", "[$0][$1]", false), Ok(("hello, [12][1]34".into(), 1)));
        assert_eq!(sub(r, "hello, 1234", "<${2}${rest}$$>", true), Ok(("hello, <22$><44$>".into(), 2)));
        assert_eq!(sub(r, "hello, 1234", "$9", true), Ok(("hello, ".into(), 2)), "absent group: empty");
        assert_eq!(sub(r, "no digits", "x", true), Ok(("no digits".into(), 0)));
        let d = id("[0-9]", 0);
        assert_eq!(sub(d, "hello, 1234", "${0}00", false), Ok(("hello, 100234".into(), 1)));
        assert_eq!(sub(d, "hello, 1234", "$$", false), Ok(("hello, $234".into(), 1)));
        // Empty matches advance one byte.
        assert_eq!(sub(id("x*", 0), "abc", "-", true), Ok(("-a-b-c-".into(), 4)));
        assert_eq!(sub(id("b*", 0), "abc", "-", true), Ok(("-a--c-".into(), 4)));
        assert_eq!(
            sub(d, "1", "a$x_1-", false).unwrap_err(),
            "attempt to use named capturing variable \"x_1\" (named captures not supported yet)"
        );
        for bad in ["$", "a$-", "${1", "${}"] {
            let e = sub(d, "1", bad, false).unwrap_err();
            assert!(e.contains(&format!("\"{bad}\"")), "{bad}: {e}");
        }
        assert_eq!(sub(d, "1", "${nope}", false).unwrap_err(), "unknown capture name \"nope\" in \"${nope}\"");
        assert_eq!(sub(-1, "1", "x", false).unwrap_err(), "unknown regex");
    }

    #[test]
    fn beyond_the_bound_entries_are_temporary() {
        let mut c = Cache::new(2);
        assert_eq!(c.compile(b"a", 0), Ok((0, false)));
        assert_eq!(c.compile(b"b", 0), Ok((1, false)));
        let (t, temp) = c.compile(b"c", 0).unwrap();
        assert!(temp);
        assert_eq!(c.compile(b"a", 0), Ok((0, false)), "cached ones still found");
        let (t2, _) = c.compile(b"c", 0).unwrap();
        assert_ne!(t, t2, "not cached: a second entry");
        assert_eq!(c.free(t as c_int), OK);
        assert_eq!(c.free(t as c_int), ERROR, "already freed");
        assert_eq!(c.compile(b"d", 0), Ok((t, true)), "slot reused");
        assert_eq!(c.free(0), DECLINED);
    }
}
