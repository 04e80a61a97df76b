//! ffi-headers/request.h: what a Lua handler sees of its request.
//!
//! While a handler runs, `CURRENT` points at its [`Binding`] (set by
//! [`bind`] for the duration of one resume). Handles are a serial number per
//! binding, so a handle that outlived its run matches nothing.

use std::borrow::Cow;
use std::cell::Cell;
use std::os::raw::{c_char, c_int};

use super::{lend, read_in, set_err, AGAIN, BAD_CONTEXT, DECLINED, NO_REQUEST, OK};
use crate::http::field;
use crate::request::body::RequestBody;
use crate::server::vars::RequestCtx;

/// The request phase a handler runs in (the numbers of
/// `halo_ffi_request_get_phase`, names in lualib/resty/core/phase.lua).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Rewrite = 1,
    Access = 2,
    Content = 3,
    Log = 4,
    HeaderFilter = 5,
    BodyFilter = 6,
    Set = 7,
}

impl Phase {
    /// The directive family, for messages: `access_by_lua*`.
    pub fn directive(self) -> &'static str {
        match self {
            Phase::Rewrite => "rewrite_by_lua*",
            Phase::Access => "access_by_lua*",
            Phase::Content => "content_by_lua*",
            Phase::Log => "log_by_lua*",
            Phase::HeaderFilter => "header_filter_by_lua*",
            Phase::BodyFilter => "body_filter_by_lua*",
            Phase::Set => "set_by_lua*",
        }
    }

    /// Whether output, ngx.exit and ngx.sleep may be used.
    fn may_respond(self) -> bool {
        matches!(self, Phase::Rewrite | Phase::Access | Phase::Content)
    }

    /// Whether the status and response headers may be changed.
    fn may_set_headers(self) -> bool {
        self.may_respond() || self == Phase::HeaderFilter
    }
}

/// What a Lua handler produced, and the request it runs for.
pub struct Binding {
    pub phase: Phase,
    /// The request; valid while the binding is current (see `bind`).
    ctx: *mut RequestCtx<'static>,
    pub out: Vec<u8>,
    /// 0 = not set.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The status given to ngx.exit, if it was called.
    pub exit: Option<c_int>,
    /// What the handler yielded to wait for.
    pub pending: Option<Pending>,
    /// ngx.exec's target: "uri?args" or "@name".
    pub exec: Option<String>,
    /// Output or ngx.send_headers happened: the head counts as sent, as in
    /// OpenResty (it leaves with the first ngx.flush, or at the end).
    pub headers_sent: bool,
    /// ngx.eof was called: no more output.
    pub eof: bool,
    /// ngx.flush / ngx.eof send the output so far (a content handler whose
    /// connection takes a stream); otherwise output waits for the end.
    pub streams: bool,
    /// body_filter_by_lua's ngx.arg[1] (the body) and ngx.arg[2] (eof).
    pub arg_body: Vec<u8>,
    pub arg_eof: bool,
    /// set_by_lua's arguments, ngx.arg[1..].
    pub set_args: Vec<String>,
    /// Where decoded arguments live until the next call.
    args_scratch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Binding {
    pub fn new(ctx: &mut RequestCtx<'_>, phase: Phase) -> Binding {
        Binding {
            phase,
            // The lifetime is erased here and never observable: see `ctx`.
            ctx: (ctx as *mut RequestCtx<'_>).cast::<RequestCtx<'static>>(),
            out: Vec::new(),
            status: 0,
            headers: Vec::new(),
            content_type: None,
            exit: None,
            pending: None,
            exec: None,
            headers_sent: false,
            eof: false,
            streams: false,
            arg_body: Vec::new(),
            arg_eof: false,
            set_args: Vec::new(),
            args_scratch: Vec::new(),
        }
    }
}

/// An operation a handler yielded for; the core resumes it when done.
#[derive(Debug)]
pub enum Pending {
    Sleep(std::time::Duration),
    /// Send the output so far (and end the body if `eof`).
    Flush { eof: bool },
    /// Read the request body (ngx.req.read_body).
    ReadBody,
}

thread_local! {
    /// Where results made for Lua live until its next call (one buffer for
    /// the worker, so a request allocates none).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static CURRENT: Cell<*mut Binding> = const { Cell::new(std::ptr::null_mut()) };
    static SERIAL: Cell<u64> = const { Cell::new(0) };
}

/// Run `f` (which resumes Lua) with `b` as the current request.
///
/// `b`'s request context must not be used by anything else meanwhile: it is
/// reached through `b` by the FFI calls `f` makes.
pub fn bind<R>(b: &mut Binding, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(b as *mut Binding));
    SERIAL.with(|s| s.set(s.get() + 1));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    SERIAL.with(|s| s.set(s.get() + 1));
    r
}

/// The current binding if `r` is its handle.
fn binding<'b>(r: u64) -> Option<&'b mut Binding> {
    if r == 0 || r != SERIAL.with(Cell::get) {
        return None;
    }
    let p = CURRENT.with(Cell::get);
    // SAFETY: CURRENT is set by `bind` to a live `&mut Binding` for exactly the
    // span of `f`, and cleared (or restored) before `bind` returns; the serial
    // check makes stale handles fail. FFI calls run synchronously inside that
    // span on this thread, one at a time, so no other reference is active.
    unsafe { p.as_mut() }
}

/// The current binding if `r` is its handle and its phase may respond.
fn responding<'b>(r: u64) -> Result<&'b mut Binding, c_int> {
    let b = binding(r).ok_or(NO_REQUEST)?;
    if b.phase.may_respond() {
        Ok(b)
    } else {
        Err(BAD_CONTEXT)
    }
}

/// The current binding if `r` is its handle and it may change headers.
fn setting_headers<'b>(r: u64) -> Result<&'b mut Binding, c_int> {
    let b = binding(r).ok_or(NO_REQUEST)?;
    if b.phase.may_set_headers() {
        Ok(b)
    } else {
        Err(BAD_CONTEXT)
    }
}

fn ctx<'b>(b: &Binding) -> &'b mut RequestCtx<'static> {
    // SAFETY: `b.ctx` came from a `&mut RequestCtx` that `bind`'s caller holds
    // (unused) for the whole run; the 'static is never observable outside
    // the call that borrows it.
    unsafe { &mut *b.ctx }
}

/// The request of the running handler, if a handler is running (for
/// functions without a handle, such as ngx.log).
pub fn current_ctx<'b>() -> Option<&'b RequestCtx<'static>> {
    let p = CURRENT.with(Cell::get);
    // SAFETY: as in `binding`: CURRENT is live while set.
    unsafe { p.as_ref() }.map(|b| &*ctx(b))
}

/// Fill `out[..max]` with borrowed (name, value) pairs; value None becomes a
/// NULL pointer. Returns how many were written.
///
/// # Safety
/// `out` must be NULL or valid for writes of `max` entries, and the pairs'
/// bytes must stay valid until the caller's next API call.
unsafe fn fill<'p>(out: *mut Header, max: c_int, pairs: impl Iterator<Item = (&'p [u8], Option<&'p [u8]>)>) -> c_int {
    if out.is_null() || max <= 0 {
        return 0;
    }
    let mut n = 0;
    for (name, value) in pairs.take(max as usize) {
        let (vp, vl) = value.map_or((std::ptr::null(), 0), |v| (v.as_ptr(), v.len()));
        // SAFETY: n < max entries (caller's contract).
        unsafe { out.add(n).write(Header { name: name.as_ptr(), name_len: name.len(), value: vp, value_len: vl }) };
        n += 1;
    }
    n as c_int
}

/// [`fill`] with lowercased names (`lower` non-zero), copied into the
/// scratch buffer: ngx.req.get_headers lowercases them, and doing it here
/// spares Lua a string.lower and a string per name.
///
/// # Safety
/// As [`fill`]; the names then live in the scratch buffer until the
/// caller's next call.
unsafe fn fill_headers<'p>(
    lower: c_int,
    out: *mut Header,
    max: c_int,
    pairs: impl Iterator<Item = (&'p [u8], Option<&'p [u8]>)> + Clone,
) -> c_int {
    if lower == 0 {
        // SAFETY: forwarded caller contract.
        return unsafe { fill(out, max, pairs) };
    }
    SCRATCH.with(|s| {
        let mut names = s.borrow_mut();
        names.clear();
        for (n, _) in pairs.clone().take(max.max(0) as usize) {
            names.extend_from_slice(n);
        }
        names.make_ascii_lowercase();
        let names: &[u8] = &names;
        let mut at = 0;
        let lowered = pairs.map(move |(n, v)| {
            let name = &names[at..at + n.len()];
            at += n.len();
            (name, v)
        });
        // SAFETY: forwarded caller contract; `fill` takes at most `max`
        // pairs, the ones whose names were copied above, and the buffer is
        // not touched again before the caller's next call.
        unsafe { fill(out, max, lowered) }
    })
}

/// Lends `v` to Lua, kept in the scratch buffer until its next call.
///
/// # Safety
/// As [`lend`].
unsafe fn lend_kept(v: Vec<u8>, data: *mut *const u8, len: *mut usize) -> c_int {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        *s = v;
        // SAFETY: caller's contract; the bytes stay in the buffer (not
        // moved by the borrow's end) until the next call replaces them.
        unsafe { lend(&s, data, len) }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_current() -> u64 {
    if CURRENT.with(Cell::get).is_null() {
        0
    } else {
        SERIAL.with(Cell::get)
    }
}

/// # Safety
/// `data` must be NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_write(r: u64, data: *const u8, len: usize) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    if b.eof {
        return DECLINED;
    }
    b.headers_sent = true;
    // SAFETY: caller's contract.
    b.out.extend_from_slice(unsafe { read_in(data, len) });
    OK
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_get_status(r: u64) -> c_int {
    match binding(r) {
        Some(b) => c_int::from(b.status),
        None => NO_REQUEST,
    }
}

/// A status Lua may set: a whole number of three digits, as nginx writes
/// status lines (a double, so 1e10 cannot wrap on its way in).
fn http_status(status: f64) -> Option<u16> {
    (status.fract() == 0.0 && (100.0..=999.0).contains(&status)).then_some(status as u16)
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_set_status(r: u64, status: f64) -> c_int {
    let b = match setting_headers(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    let Some(status) = http_status(status) else { return DECLINED };
    if b.headers_sent {
        ctx(b).log(crate::log::Level::Error, format_args!("attempt to set ngx.status after sending out response headers"));
        return OK;
    }
    b.status = status;
    OK
}

/// ngx.exit(status): an HTTP status, 0 (ngx.OK: go on) or ngx.ERROR /
/// ngx.DECLINED; DECLINED for anything else (ngx.AGAIN, ngx.DONE, 65736).
#[no_mangle]
pub extern "C" fn halo_ffi_request_exit(r: u64, status: f64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    let code = match http_status(status) {
        Some(s) => c_int::from(s),
        None if status == 0.0 || status == f64::from(super::ERROR) || status == f64::from(DECLINED) => status as c_int,
        None => return DECLINED,
    };
    b.exit = Some(code);
    OK
}

/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_method(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract; the method text lives in the request (or is
    // static), which outlives the handler's run.
    unsafe { lend(ctx(b).method().as_bytes(), data, len) }
}

/// # Safety
/// `name` must be valid for `len` bytes; `value` and `value_len` for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_var(
    r: u64,
    name: *const u8,
    len: usize,
    value: *mut *const u8,
    value_len: *mut usize,
) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract.
    let name = unsafe { read_in(name, len) };
    let Ok(name) = std::str::from_utf8(name) else { return DECLINED };
    // Variable names are case-insensitive in nginx (and nearly always lowercase).
    let name: Cow<'_, str> = if name.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    // Bytes, not text: $binary_remote_addr and the request body may hold
    // NULs and non-UTF-8 bytes.
    match ctx(b).lookup_bytes(&name) {
        // SAFETY: caller's contract; a borrowed value lives in the request
        // until a call changes it.
        Some(Cow::Borrowed(v)) => unsafe { lend(v, value, value_len) },
        // SAFETY: caller's contract.
        Some(Cow::Owned(v)) => unsafe { lend_kept(v, value, value_len) },
        None => DECLINED,
    }
}

/// ngx.var.NAME = value: OK, DECLINED (no such variable), or ERROR (a
/// built-in that cannot be changed).
///
/// # Safety
/// `name` must be valid for `len` bytes, `value` NULL or valid for
/// `value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_var(r: u64, name: *const u8, len: usize, value: *const u8, value_len: usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract.
    let name = String::from_utf8_lossy(unsafe { read_in(name, len) }).to_ascii_lowercase();
    // SAFETY: caller's contract.
    let value = String::from_utf8_lossy(unsafe { read_in(value, value_len) }).into_owned();
    match ctx(b).assign(&name, value) {
        Ok(()) => OK,
        Err(true) => super::ERROR,
        Err(false) => DECLINED,
    }
}

/// A header name and value from Lua as they may be kept: `x_foo` names
/// X-Foo (as in lua-nginx-module), the name must be a token, the value has
/// CR/LF escaped (http::field). Err: ERROR with the message in `*err`.
///
/// # Safety
/// `name` must be valid for `name_len` bytes, `value` NULL or valid for
/// `value_len` bytes, `err` NULL or valid for a write.
unsafe fn lua_field(
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> Result<(String, Option<String>), c_int> {
    // SAFETY: caller's contract.
    let name = unsafe { read_in(name, name_len) };
    let checked = field::check_name(name).and_then(|()| {
        // SAFETY: caller's contract.
        (!value.is_null()).then(|| field::escape_value(unsafe { read_in(value, value_len) })).transpose()
    });
    match checked {
        Ok(value) => {
            // A token is ASCII: its bytes are its text.
            let name = String::from_utf8(name.iter().map(|&c| if c == b'_' { b'-' } else { c }).collect()).unwrap_or_default();
            let value = value.map(|v| String::from_utf8(v.into_owned()).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
            Ok((name, value))
        }
        Err(msg) => {
            // SAFETY: caller's contract.
            unsafe { set_err(err, msg) };
            Err(super::ERROR)
        }
    }
}

/// # Safety
/// As [`lua_field`].
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_header(
    r: u64,
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> c_int {
    let b = match setting_headers(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    // SAFETY: forwarded caller contract.
    let (name, value) = match unsafe { lua_field(name, name_len, value, value_len, err) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    if b.headers_sent {
        ctx(b).log(crate::log::Level::Error, format_args!("attempt to set ngx.header.{name} after sending out response headers"));
        return OK;
    }
    if name.eq_ignore_ascii_case("content-type") {
        b.content_type = value;
        return OK;
    }
    b.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    if let Some(v) = value {
        b.headers.push((name, v));
    }
    OK
}

/// ngx.sleep: registers the wait; the Lua side yields on AGAIN.
#[no_mangle]
pub extern "C" fn halo_ffi_request_sleep(r: u64, seconds: f64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return DECLINED;
    }
    b.pending = Some(Pending::Sleep(std::time::Duration::from_secs_f64(seconds)));
    AGAIN
}

/// One request header as ffi-headers/request.h's `halo_ffi_header_t`.
#[repr(C)]
pub struct Header {
    pub name: *const u8,
    pub name_len: usize,
    pub value: *const u8,
    pub value_len: usize,
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_header_count(r: u64) -> c_int {
    match binding(r) {
        Some(b) => ctx(b).request_headers().count().min(c_int::MAX as usize) as c_int,
        None => NO_REQUEST,
    }
}

/// # Safety
/// `out` must be valid for writes of `max` headers.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_headers(r: u64, out: *mut Header, max: c_int, lower: c_int) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let pairs = ctx(b).request_headers().map(|(n, v)| (n.as_bytes(), Some(v.as_bytes())));
    // SAFETY: forwarded caller contract; the strings live in the request
    // (lowered names in the scratch buffer).
    unsafe { fill_headers(lower, out, max, pairs) }
}

/// The phase of the running handler (see [`Phase`]), or a negative code.
#[no_mangle]
pub extern "C" fn halo_ffi_request_get_phase(r: u64) -> c_int {
    match binding(r) {
        Some(b) => b.phase as c_int,
        None => NO_REQUEST,
    }
}

/// ngx.ctx made a table for the request: the core releases it at the end.
#[no_mangle]
pub extern "C" fn halo_ffi_request_keep_ctx(r: u64) -> c_int {
    match binding(r) {
        Some(b) => {
            ctx(b).has_lua_ctx = true;
            OK
        }
        None => NO_REQUEST,
    }
}

/// The request's number in this worker (ngx.ctx's key), as a double so Lua
/// gets a plain number (exact below 2^53).
#[no_mangle]
pub extern "C" fn halo_ffi_request_id(r: u64) -> f64 {
    match binding(r) {
        Some(b) => ctx(b).id as f64,
        None => f64::from(NO_REQUEST),
    }
}

/// `%XX` and `+` decoded, as ngx.req.get_uri_args does.
fn unescape_arg(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Decode `a=1&b&c=%20` into `b.args_scratch`, at most `max` pairs, and
/// point `out` at them; returns how many.
///
/// # Safety
/// `out` must be valid for writes of `max` entries.
unsafe fn fill_args(b: &mut Binding, src: &[u8], out: *mut Header, max: c_int) -> c_int {
    b.args_scratch.clear();
    for part in src.split(|&c| c == b'&').filter(|p| !p.is_empty()).take(max.max(0) as usize) {
        let (k, v) = match part.iter().position(|&c| c == b'=') {
            Some(i) => (&part[..i], Some(&part[i + 1..])),
            None => (part, None),
        };
        b.args_scratch.push((unescape_arg(k), v.map(unescape_arg)));
    }
    let pairs = b.args_scratch.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
    // SAFETY: forwarded caller contract; the bytes live in args_scratch
    // until the next call.
    unsafe { fill(out, max, pairs) }
}

/// # Safety
/// `out` must be valid for writes of `max` entries.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_uri_args(r: u64, out: *mut Header, max: c_int) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let args = ctx(b).args.as_deref().unwrap_or("");
    // SAFETY: forwarded caller contract.
    unsafe { fill_args(b, args.as_bytes(), out, max) }
}

/// # Safety
/// `out` must be valid for writes of `max` entries.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_post_args(r: u64, out: *mut Header, max: c_int) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let Some(body) = ctx(b).body.as_ref() else { return DECLINED };
    // In a temp file: ERROR (lua-nginx-module does not parse those either).
    let Some(body) = body.data() else { return super::ERROR };
    // SAFETY: forwarded caller contract.
    unsafe { fill_args(b, body, out, max) }
}

/// ngx.req.read_body: OK when there is nothing (left) to read, else
/// registers the read (AGAIN; the Lua side yields until the body is in).
#[no_mangle]
pub extern "C" fn halo_ffi_request_read_body(r: u64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    let ctx = ctx(b);
    if ctx.body_done || (ctx.req.content_length.unwrap_or(0) == 0 && !ctx.req.chunked) {
        return OK;
    }
    b.pending = Some(Pending::ReadBody);
    AGAIN
}

/// ngx.req.get_body_file: the temp file holding the body (DECLINED when the
/// body is in memory, or was not read).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_body_file(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let Some(path) = ctx(b).body.as_ref().and_then(RequestBody::file_path) else { return DECLINED };
    // SAFETY: caller's contract; the path lives in the request's body.
    unsafe { lend(path.as_os_str().as_encoded_bytes(), data, len) }
}

/// The request body, if it was read (DECLINED when there is none).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_body(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let Some(body) = ctx(b).body.as_ref().and_then(RequestBody::data) else { return DECLINED };
    // SAFETY: caller's contract; the body lives in the request context.
    unsafe { lend(body, data, len) }
}

/// The response header `name` as set so far (Content-Type included).
///
/// # Safety
/// `name` must be valid for `len` bytes; `value` and `value_len` for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_resp_header(
    r: u64,
    name: *const u8,
    len: usize,
    value: *mut *const u8,
    value_len: *mut usize,
) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract.
    let name = String::from_utf8_lossy(unsafe { read_in(name, len) }).replace('_', "-");
    let found = if name.eq_ignore_ascii_case("content-type") {
        b.content_type.clone()
    } else {
        b.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| v.clone())
    };
    match found {
        Some(v) => {
            // SAFETY: caller's contract.
            unsafe { lend_kept(v.into_bytes(), value, value_len) }
        }
        None => DECLINED,
    }
}

/// ngx.arg[i]: in body_filter_by_lua, i = 1 is the body; in set_by_lua,
/// the directive's arguments. DECLINED for an index with no value.
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_arg(r: u64, i: c_int, data: *mut *const u8, len: *mut usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let value: &[u8] = match b.phase {
        Phase::BodyFilter if i == 1 => &b.arg_body,
        Phase::BodyFilter => return DECLINED,
        Phase::Set => match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| b.set_args.get(i)) {
            Some(a) => a.as_bytes(),
            None => return DECLINED,
        },
        _ => return BAD_CONTEXT,
    };
    // SAFETY: caller's contract; the value lives in the binding for the run.
    unsafe { lend(value, data, len) }
}

/// body_filter_by_lua's ngx.arg[2]: 1 at the end of the body, else 0.
#[no_mangle]
pub extern "C" fn halo_ffi_request_get_arg_eof(r: u64) -> c_int {
    match binding(r) {
        Some(b) if b.phase == Phase::BodyFilter => c_int::from(b.arg_eof),
        Some(_) => BAD_CONTEXT,
        None => NO_REQUEST,
    }
}

/// Sets ngx.arg[1] (the body) in body_filter_by_lua.
///
/// # Safety
/// `data` must be NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_arg_body(r: u64, data: *const u8, len: usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    if b.phase != Phase::BodyFilter {
        return BAD_CONTEXT;
    }
    // SAFETY: caller's contract.
    b.arg_body = unsafe { read_in(data, len) }.to_vec();
    OK
}

/// Sets ngx.arg[2] (eof) in body_filter_by_lua.
#[no_mangle]
pub extern "C" fn halo_ffi_request_set_arg_eof(r: u64, eof: c_int) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    if b.phase != Phase::BodyFilter {
        return BAD_CONTEXT;
    }
    b.arg_eof = eof != 0;
    OK
}

/// ngx.exec(uri, args): records the internal redirect; the Lua side then
/// yields to end the handler.
///
/// # Safety
/// `uri` must be valid for `uri_len` bytes, `args` NULL or valid for
/// `args_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_exec(r: u64, uri: *const u8, uri_len: usize, args: *const u8, args_len: usize) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    // SAFETY: caller's contract.
    let mut target = String::from_utf8_lossy(unsafe { read_in(uri, uri_len) }).into_owned();
    if target.is_empty() || !(target.starts_with('/') || target.starts_with('@')) {
        return DECLINED;
    }
    // SAFETY: caller's contract.
    let args = unsafe { read_in(args, args_len) };
    if !args.is_empty() {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&String::from_utf8_lossy(args));
    }
    b.exec = Some(target);
    OK
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_http_version(r: u64) -> c_int {
    match binding(r) {
        Some(b) => 10 + c_int::from(ctx(b).req.version_minor),
        None => NO_REQUEST,
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_start_time(r: u64) -> f64 {
    let Some(b) = binding(r) else { return f64::from(NO_REQUEST) };
    // The request's start as wall time: now minus how long it has run.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let started = now.saturating_sub(ctx(b).start.elapsed());
    (started.as_millis() as f64) / 1000.0
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_is_internal(r: u64) -> c_int {
    match binding(r) {
        Some(b) => c_int::from(ctx(b).internal),
        None => NO_REQUEST,
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_resp_header_count(r: u64) -> c_int {
    match binding(r) {
        Some(b) => (b.headers.len() + usize::from(b.content_type.is_some())).min(c_int::MAX as usize) as c_int,
        None => NO_REQUEST,
    }
}

/// # Safety
/// `out` must be valid for writes of `max` entries.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_resp_headers(r: u64, out: *mut Header, max: c_int, lower: c_int) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let ct = b.content_type.as_deref().map(|v| (&b"Content-Type"[..], Some(v.as_bytes())));
    let pairs = ct.into_iter().chain(b.headers.iter().map(|(n, v)| (n.as_bytes(), Some(v.as_bytes()))));
    // SAFETY: forwarded caller contract; the strings live in the binding
    // until a call that changes headers.
    unsafe { fill_headers(lower, out, max, pairs) }
}

/// ngx.send_headers: the head counts as sent from now on.
#[no_mangle]
pub extern "C" fn halo_ffi_request_send_headers(r: u64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    b.headers_sent = true;
    OK
}

/// ngx.headers_sent: 1 or 0.
#[no_mangle]
pub extern "C" fn halo_ffi_request_headers_sent(r: u64) -> c_int {
    match binding(r) {
        Some(b) => c_int::from(b.headers_sent),
        None => NO_REQUEST,
    }
}

/// ngx.eof: no more output for this request.
#[no_mangle]
pub extern "C" fn halo_ffi_request_eof(r: u64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    b.headers_sent = true;
    let first = !b.eof;
    b.eof = true;
    if b.streams && first {
        b.pending = Some(Pending::Flush { eof: true });
        return AGAIN;
    }
    OK
}

/// ngx.flush: when the output streams, registers a flush (the Lua side
/// yields on AGAIN until the bytes are sent); OK when it is buffered.
#[no_mangle]
pub extern "C" fn halo_ffi_request_flush(r: u64) -> c_int {
    let b = match responding(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    if !b.streams || b.eof {
        return OK;
    }
    b.headers_sent = true;
    b.pending = Some(Pending::Flush { eof: false });
    AGAIN
}

/// ngx.req.set_header (value non-NULL) / clear_header (value NULL).
///
/// # Safety
/// As [`lua_field`].
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_req_header(
    r: u64,
    name: *const u8,
    len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: forwarded caller contract.
    let (name, value) = match unsafe { lua_field(name, len, value, value_len, err) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    ctx(b).edit_header(&name, value);
    OK
}

/// ngx.req.set_method: one of nginx's method names.
///
/// # Safety
/// `name` must be valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_method(r: u64, name: *const u8, len: usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract.
    let m = unsafe { read_in(name, len) };
    const METHODS: [&str; 14] =
        ["GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"];
    match METHODS.iter().find(|x| x.as_bytes() == m) {
        Some(x) => {
            ctx(b).method_override = Some(x);
            OK
        }
        None => DECLINED,
    }
}

/// ngx.req.set_uri(uri): changes $uri (the jump form goes through
/// halo_ffi_request_exec).
///
/// # Safety
/// `uri` must be valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_uri(r: u64, uri: *const u8, len: usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    // SAFETY: caller's contract.
    let uri = String::from_utf8_lossy(unsafe { read_in(uri, len) }).into_owned();
    if !uri.starts_with('/') {
        return DECLINED;
    }
    ctx(b).uri = std::borrow::Cow::Owned(uri);
    OK
}

/// ngx.req.raw_header(): the head as sent (DECLINED when not valid UTF-8).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_raw_header(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    let Some(b) = binding(r) else { return NO_REQUEST };
    let Some(raw) = ctx(b).req.raw_header() else { return DECLINED };
    // SAFETY: caller's contract; the head lives in the request.
    unsafe { lend(raw.as_bytes(), data, len) }
}

/// Adds one more value of a response header (ngx.header.X = { ... }).
///
/// # Safety
/// As `halo_ffi_request_set_header`, with `value` non-NULL.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_add_header(
    r: u64,
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> c_int {
    let b = match setting_headers(r) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    // SAFETY: forwarded caller contract; a NULL value adds an empty one.
    let (name, value) = match unsafe { lua_field(name, name_len, value, value_len, err) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    if b.headers_sent {
        return OK;
    }
    b.headers.push((name, value.unwrap_or_default()));
    OK
}
