//! ffi-headers/request.h: what a Lua handler sees of its request.
//!
//! A handle names one Lua context (crate::lua::context): the run of one
//! handler. Each call finds the context's request through it; a handle kept
//! past its run, or used while its context waits, matches nothing
//! (NO_REQUEST).

use std::borrow::Cow;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use super::{lend, read_in, set_err, Lent, AGAIN, BAD_CONTEXT, DECLINED, NO_REQUEST, OK};
use crate::http::field;
use crate::lua::context::{self, Kind, Pending, Phase, Run};
use crate::request::body::{LuaBody, RequestBody, TempFile};
use crate::request::RequestCtx;

thread_local! {
    /// Where results made for Lua live until its next call (one buffer for
    /// the worker, so a request allocates none).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with the phase, run state and request of context `r`;
/// NO_REQUEST when `r` names no running request context.
#[inline]
fn request(r: u64, f: impl for<'x, 'a> FnOnce(Phase, &mut Run, &'x mut RequestCtx<'a>) -> c_int) -> c_int {
    context::with_request(r, |kind, run, req| match kind {
        Kind::Request(phase) => f(phase, run, req),
        Kind::Timer => BAD_CONTEXT,
    })
    .unwrap_or_else(|| no_request(r))
}

/// Why `r` reached no request: a timer has none (the API is disabled
/// there), anything else names no running request.
#[cold]
pub(super) fn no_request(r: u64) -> c_int {
    match context::with_active(r, |kind, _| kind) {
        Some(Kind::Timer) => BAD_CONTEXT,
        _ => NO_REQUEST,
    }
}

/// [`request`] for calls that produce output or end the handler: only
/// rewrite, access and content may (BAD_CONTEXT elsewhere).
#[inline]
fn responding(r: u64, f: impl for<'x, 'a> FnOnce(&mut Run, &'x mut RequestCtx<'a>) -> c_int) -> c_int {
    request(r, |phase, run, req| if phase.may_respond() { f(run, req) } else { BAD_CONTEXT })
}

/// [`request`] for calls that change the status or response headers; `f`
/// is told whether the head counts as sent already (changes are refused
/// then, except in header_filter_by_lua, which runs as the head is made).
#[inline]
fn setting_headers(r: u64, f: impl for<'x, 'a> FnOnce(&'x mut RequestCtx<'a>, bool) -> c_int) -> c_int {
    request(r, |phase, _, req| {
        if !phase.may_set_headers() {
            return BAD_CONTEXT;
        }
        let sent = req.resp.headers_sent && phase != Phase::HeaderFilter;
        f(req, sent)
    })
}

/// Fill `out[..max]` with borrowed (name, value) pairs; value None becomes a
/// NULL pointer. Returns how many were written.
///
/// # Safety
/// `out` must be NULL or valid for writes of `max` entries, and the pairs'
/// bytes must stay valid until the caller's next API call.
pub(crate) unsafe fn fill<'p>(out: *mut Header, max: c_int, pairs: impl Iterator<Item = (&'p [u8], Option<&'p [u8]>)>) -> c_int {
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
unsafe fn fill_headers<'p>(lower: c_int, out: *mut Header, max: c_int, pairs: impl Iterator<Item = (&'p [u8], Option<&'p [u8]>)>) -> c_int {
    if lower == 0 {
        // SAFETY: forwarded caller contract.
        return unsafe { fill(out, max, pairs) };
    }
    if out.is_null() || max <= 0 {
        return 0;
    }
    SCRATCH.with(|s| {
        let mut names = s.borrow_mut();
        names.clear();
        // One pass: the entries first point at offsets into the buffer
        // (which may move while it grows), fixed up once all names are in.
        let mut n = 0;
        for (name, value) in pairs.take(max as usize) {
            let at = names.len();
            // Copy, then lower in place: a plain loop the compiler vectorizes.
            names.extend_from_slice(name);
            names[at..].make_ascii_lowercase();
            let (vp, vl) = value.map_or((std::ptr::null(), 0), |v| (v.as_ptr(), v.len()));
            // SAFETY: n < max entries (caller's contract).
            unsafe { out.add(n).write(Header { name: at as *const u8, name_len: name.len(), value: vp, value_len: vl }) };
            n += 1;
        }
        let base = names.as_ptr();
        for i in 0..n {
            // SAFETY: entry i was written above; its offset is within `names`,
            // which is not touched again before the caller's next call.
            unsafe {
                let h = &mut *out.add(i);
                h.name = base.add(h.name as usize);
            }
        }
        n as c_int
    })
}

/// Lends `v` to Lua, kept in the scratch buffer until its next call (the
/// bytes are not moved by the borrow's end).
fn keep(v: Vec<u8>) -> Lent {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        *s = v;
        Lent::new(&s)
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_current() -> u64 {
    context::current_request()
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_context() -> u64 {
    context::current()
}

/// # Safety
/// `data` must be NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_write(r: u64, data: *const u8, len: usize) -> c_int {
    // SAFETY: caller's contract.
    write(r, unsafe { read_in(data, len) })
}

/// ngx.print / ngx.say's output: OK, DECLINED after ngx.eof.
pub fn write(r: u64, data: &[u8]) -> c_int {
    responding(r, |_, req| {
        if req.resp.eof {
            return DECLINED;
        }
        req.resp.headers_sent = true;
        if req.resp.out.capacity() == 0 {
            req.resp.out = crate::request::output_buffer();
        }
        req.resp.out.extend_from_slice(data);
        OK
    })
}

/// ngx.status (0 until set), or a negative code.
#[no_mangle]
pub extern "C" fn halo_ffi_request_get_status(r: u64) -> c_int {
    request(r, |_, _, req| c_int::from(req.resp.status))
}

/// A status Lua may set: a whole number of three digits, as nginx writes
/// status lines (a double, so 1e10 cannot wrap on its way in).
fn http_status(status: f64) -> Option<u16> {
    (status.fract() == 0.0 && (100.0..=999.0).contains(&status)).then_some(status as u16)
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_set_status(r: u64, status: f64) -> c_int {
    setting_headers(r, |req, sent| {
        let Some(status) = http_status(status) else { return DECLINED };
        if sent {
            req.log(crate::log::Level::Error, format_args!("attempt to set ngx.status after sending out response headers"));
            return OK;
        }
        req.resp.status = status;
        OK
    })
}

/// ngx.exit(status): an HTTP status, 0 (ngx.OK: go on) or ngx.ERROR /
/// ngx.DECLINED; DECLINED for anything else (ngx.AGAIN, ngx.DONE, 65736).
#[no_mangle]
pub extern "C" fn halo_ffi_request_exit(r: u64, status: f64) -> c_int {
    responding(r, |run, _| {
        let code = match http_status(status) {
            Some(s) => c_int::from(s),
            None if status == 0.0 || status == f64::from(super::ERROR) || status == f64::from(DECLINED) => status as c_int,
            None => return DECLINED,
        };
        run.exit = Some(code);
        OK
    })
}

/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_method(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    // SAFETY: caller's contract.
    get_method(r).map_or_else(|rc| rc, |m| unsafe { m.out(data, len) })
}

/// ngx.req.get_method: the method, lent from the request (or static), which
/// outlives the handler's run.
pub fn get_method(r: u64) -> Result<Lent, c_int> {
    request_lent(r, |_, _, req| Ok(Lent::new(req.method().as_bytes())))
}

/// [`request`] for a call that lends bytes: Err(code) for no value.
#[inline]
fn request_lent(r: u64, f: impl for<'x, 'a> FnOnce(Phase, &mut Run, &'x mut RequestCtx<'a>) -> Result<Lent, c_int>) -> Result<Lent, c_int> {
    context::with_request(r, |kind, run, req| match kind {
        Kind::Request(phase) => f(phase, run, req),
        Kind::Timer => Err(BAD_CONTEXT),
    })
    .unwrap_or_else(|| Err(no_request(r)))
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
    // SAFETY: caller's contract.
    let name = unsafe { read_in(name, len) };
    // SAFETY: caller's contract.
    get_var(r, name).map_or_else(|rc| rc, |v| unsafe { v.out(value, value_len) })
}

/// ngx.var.NAME: its value, or Err(DECLINED) for no such variable (nil).
pub fn get_var(r: u64, name: &[u8]) -> Result<Lent, c_int> {
    request_lent(r, |_, _, req| {
        let Ok(name) = std::str::from_utf8(name) else { return Err(DECLINED) };
        // Variable names are case-insensitive in nginx (and nearly always lowercase).
        let name: Cow<'_, str> = if name.bytes().any(|c| c.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        // Bytes, not text: $binary_remote_addr and the request body may hold
        // NULs and non-UTF-8 bytes.
        match req.lookup_bytes(&name) {
            // A borrowed value lives in the request until a call changes it.
            Some(Cow::Borrowed(v)) => Ok(Lent::new(v)),
            Some(Cow::Owned(v)) => Ok(keep(v)),
            None => Err(DECLINED),
        }
    })
}

/// ngx.var.NAME = value: OK, DECLINED (no such variable), or ERROR (a
/// built-in that cannot be changed).
///
/// # Safety
/// `name` must be valid for `len` bytes, `value` NULL or valid for
/// `value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_var(r: u64, name: *const u8, len: usize, value: *const u8, value_len: usize) -> c_int {
    // SAFETY: caller's contract.
    let (name, value) = unsafe { (read_in(name, len), read_in(value, value_len)) };
    set_var(r, name, value)
}

/// ngx.var.NAME = value: OK, DECLINED (no such variable), or ERROR (a
/// built-in that cannot be changed).
pub fn set_var(r: u64, name: &[u8], value: &[u8]) -> c_int {
    request(r, |_, _, req| {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).into_owned();
        match req.assign(&name, value) {
            Ok(()) => OK,
            Err(true) => super::ERROR,
            Err(false) => DECLINED,
        }
    })
}

/// A header name and (None: unset) value from Lua.
type LuaField<'a> = (Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

/// A header name and value from Lua as they may be kept: `x_foo` names
/// X-Foo (as in lua-nginx-module), the name must be a token, the value has
/// CR/LF escaped (http::field). Err: the message of an ERROR. Borrowed
/// from the caller's bytes when there is nothing to change (the usual
/// case: no allocation).
fn lua_field<'a>(name: &'a [u8], value: Option<&'a [u8]>) -> Result<LuaField<'a>, &'static CStr> {
    field::check_name(name)?;
    let value = value.map(field::escape_value).transpose()?;
    let name = match name.contains(&b'_') {
        false => Cow::Borrowed(name),
        true => Cow::Owned(name.iter().map(|&c| if c == b'_' { b'-' } else { c }).collect()),
    };
    Ok((name, value))
}

/// [`lua_field`] on the caller's raw bytes (value NULL: None); Err: ERROR
/// with the message in `*err`.
///
/// # Safety
/// `name` must be valid for `name_len` bytes, `value` NULL or valid for
/// `value_len` bytes, `err` NULL or valid for a write.
unsafe fn lua_field_in<'a>(
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> Result<LuaField<'a>, c_int> {
    // SAFETY: caller's contract.
    let (name, value) = unsafe { (read_in(name, name_len), (!value.is_null()).then(|| read_in(value, value_len))) };
    // SAFETY: caller's contract.
    lua_field(name, value).map_err(|msg| unsafe { header_rc(Err(msg), err) })
}

/// An [`Err`] of the safe header calls as the FFI returns it: ERROR with
/// the message in `*err`.
///
/// # Safety
/// `err` must be NULL or valid for a write.
unsafe fn header_rc(rc: Result<c_int, &'static CStr>, err: *mut *const c_char) -> c_int {
    rc.unwrap_or_else(|msg| {
        // SAFETY: caller's contract.
        unsafe { set_err(err, msg) };
        super::ERROR
    })
}

/// # Safety
/// `name` must be valid for `name_len` bytes, `value` NULL or valid for
/// `value_len` bytes, `err` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_header(
    r: u64,
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> c_int {
    // SAFETY: caller's contract.
    let (name, value) = unsafe { (read_in(name, name_len), (!value.is_null()).then(|| read_in(value, value_len))) };
    // SAFETY: caller's contract.
    unsafe { header_rc(set_header(r, name, value), err) }
}

/// ngx.header.NAME = value (None: unset): a code, or Err(message) for a
/// name or value that cannot be sent.
pub fn set_header(r: u64, name: &[u8], value: Option<&[u8]>) -> Result<c_int, &'static CStr> {
    let mut bad = None;
    let rc = setting_headers(r, |req, sent| {
        let (name, value) = match lua_field(name, value) {
            Ok(f) => f,
            Err(msg) => {
                bad = Some(msg);
                return super::ERROR;
            }
        };
        if sent {
            req.log(crate::log::Level::Error, format_args!("attempt to set ngx.header.{} after sending out response headers", String::from_utf8_lossy(&name)));
            return OK;
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            req.resp.content_type = value.map(|v| Cow::Owned(String::from_utf8_lossy(&v).into_owned()));
            return OK;
        }
        req.resp.headers.remove(&*name);
        if let Some(v) = value {
            req.resp.headers.push(&*name, v);
        }
        OK
    });
    bad.map_or(Ok(rc), Err)
}

/// ngx.sleep: registers the wait; the Lua side yields on AGAIN.
#[no_mangle]
pub extern "C" fn halo_ffi_request_sleep(r: u64, seconds: f64) -> c_int {
    context::with_active(r, |kind, run| {
        if !matches!(kind, Kind::Timer | Kind::Request(Phase::Balancer)) && !matches!(kind, Kind::Request(p) if p.may_respond()) {
            return BAD_CONTEXT;
        }
        if !(seconds >= 0.0 && seconds.is_finite()) {
            return DECLINED;
        }
        run.pending = Some(Pending::Sleep(std::time::Duration::from_secs_f64(seconds)));
        AGAIN
    })
    .unwrap_or(NO_REQUEST)
}

/// One request header as ffi-headers/request.h's `halo_ffi_header_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Header {
    pub name: *const u8,
    pub name_len: usize,
    pub value: *const u8,
    pub value_len: usize,
}

impl Header {
    /// An entry to fill.
    pub const EMPTY: Header = Header { name: std::ptr::null(), name_len: 0, value: std::ptr::null(), value_len: 0 };

    /// The name and the value (None: the value is NULL, an argument
    /// without `=`), as lent by the call that filled this.
    pub fn lent(&self) -> (Lent, Option<Lent>) {
        let value = (!self.value.is_null()).then_some(Lent { ptr: self.value, len: self.value_len });
        (Lent { ptr: self.name, len: self.name_len }, value)
    }
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_header_count(r: u64) -> c_int {
    request(r, |_, _, req| req.request_header_count().min(c_int::MAX as usize) as c_int)
}

/// # Safety
/// `out` must be valid for writes of `max` headers.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_headers(r: u64, out: *mut Header, max: c_int, lower: c_int) -> c_int {
    // SAFETY: caller's contract.
    get_headers(r, unsafe { headers_out(out, max) }, lower != 0)
}

/// ngx.req.get_headers: fills `out` with the first request headers (names
/// lowercased when `lower`); how many, or a negative code. The strings live
/// in the request (lowered names in the scratch buffer) until the next call.
pub fn get_headers(r: u64, out: &mut [Header], lower: bool) -> c_int {
    let (ptr, max) = (out.as_mut_ptr(), out.len().min(c_int::MAX as usize) as c_int);
    let lower = c_int::from(lower);
    request(r, |_, _, req| {
        // SAFETY (both): a slice is valid for writes of its length.
        if req.header_edits.is_empty() {
            return unsafe { fill_headers(lower, ptr, max, req.req.header_bytes().map(|(n, v)| (n, Some(v)))) };
        }
        let pairs = req.request_headers().map(|(n, v)| (n.as_bytes(), Some(v.as_bytes())));
        unsafe { fill_headers(lower, ptr, max, pairs) }
    })
}

/// The caller's `out[..max]` as a slice (empty for NULL or max <= 0).
///
/// # Safety
/// `out` must be NULL or valid for reads and writes of `max` entries
/// (ffi.new zero-fills them, so they are initialised).
unsafe fn headers_out<'a>(out: *mut Header, max: c_int) -> &'a mut [Header] {
    match usize::try_from(max) {
        // SAFETY: caller's contract.
        Ok(n) if !out.is_null() => unsafe { std::slice::from_raw_parts_mut(out, n) },
        _ => &mut [],
    }
}

/// The phase of the running handler (see [`Phase`]), or a negative code.
#[no_mangle]
pub extern "C" fn halo_ffi_request_get_phase(r: u64) -> c_int {
    context::with_active(r, |kind, _| match kind {
        Kind::Request(phase) => phase as c_int,
        Kind::Timer => TIMER_PHASE,
    })
    .unwrap_or(NO_REQUEST)
}

/// get_phase's number for a timer context ("timer").
const TIMER_PHASE: c_int = 8;

/// ngx.ctx made a table for the request: the core releases it at the end.
#[no_mangle]
pub extern "C" fn halo_ffi_request_keep_ctx(r: u64) -> c_int {
    request(r, |_, _, req| {
        req.has_lua_ctx = true;
        OK
    })
}

/// The request's number in this worker (ngx.ctx's key), as a double so Lua
/// gets a plain number (exact below 2^53).
#[no_mangle]
pub extern "C" fn halo_ffi_request_id(r: u64) -> f64 {
    context::with_request(r, |_, _, req| req.id as f64).unwrap_or(f64::from(NO_REQUEST))
}

/// Decodes `src` into `run.args_scratch` (at most `max` arguments, 0 or
/// negative: all; see [`crate::api::args::Args::decode`]), points
/// `out[..n]` at the first `n`, sets `*truncated`; returns how many were
/// decoded, which may be more than `n`: the caller then asks again with
/// more room.
///
/// # Safety
/// `out` must be NULL or valid for writes of `n` entries; `truncated` NULL
/// or valid for a write.
unsafe fn fill_args(run: &mut Run, src: &[u8], out: *mut Header, n: c_int, max: c_int, truncated: *mut c_int) -> c_int {
    let cut = run.args_scratch.decode(src, max);
    if !truncated.is_null() {
        // SAFETY: non-null and valid for a write (caller's contract).
        unsafe { *truncated = c_int::from(cut) };
    }
    // SAFETY: forwarded caller contract; the bytes live in args_scratch
    // until the next call.
    unsafe { fill(out, n, run.args_scratch.iter()) };
    run.args_scratch.len().min(c_int::MAX as usize) as c_int
}

/// # Safety
/// `out` must be NULL or valid for writes of `n` entries; `truncated` NULL
/// or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_uri_args(r: u64, out: *mut Header, n: c_int, max: c_int, truncated: *mut c_int) -> c_int {
    // SAFETY: caller's contract.
    let (out, truncated) = unsafe { (headers_out(out, n), truncated.as_mut()) };
    let mut cut = 0;
    let rc = get_uri_args(r, out, max, &mut cut);
    if let Some(t) = truncated {
        *t = cut;
    }
    rc
}

/// ngx.req.get_uri_args: decodes the query string (at most `max`
/// arguments, 0 or negative: all) and fills `out` with the first; returns
/// how many were decoded, which may be more than `out` holds (ask again
/// with more room), or a negative code; `*truncated` says whether there
/// were more than `max`. The bytes live in the run's state until the next call.
pub fn get_uri_args(r: u64, out: &mut [Header], max: c_int, truncated: &mut c_int) -> c_int {
    let (ptr, n) = (out.as_mut_ptr(), out.len().min(c_int::MAX as usize) as c_int);
    request(r, |_, run, req| {
        let args = req.args.as_deref().unwrap_or("");
        // SAFETY: a slice is valid for writes of its length, `truncated` a
        // reference.
        unsafe { fill_args(run, args.as_bytes(), ptr, n, max, truncated) }
    })
}

/// # Safety
/// `out` must be NULL or valid for writes of `n` entries; `truncated` NULL
/// or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_post_args(r: u64, out: *mut Header, n: c_int, max: c_int, truncated: *mut c_int) -> c_int {
    request(r, |_, run, req| {
        let Some(body) = req.body.as_ref() else { return DECLINED };
        // In a temp file: ERROR (lua-nginx-module does not parse those either).
        let Some(body) = body.data() else { return super::ERROR };
        // SAFETY: forwarded caller contract.
        unsafe { fill_args(run, body, out, n, max, truncated) }
    })
}

/// ngx.req.read_body: OK when there is nothing (left) to read, else
/// registers the read (AGAIN; the Lua side yields until the body is in).
#[no_mangle]
pub extern "C" fn halo_ffi_request_read_body(r: u64) -> c_int {
    responding(r, |run, req| {
        if req.body_done || (req.req.content_length.unwrap_or(0) == 0 && !req.req.chunked) {
            // Read, if empty: set_body_data and init_body may follow (as
            // lua-nginx-module, which has a request body then).
            if req.body.is_none() && req.body_taken == 0 {
                req.body = Some(RequestBody::Memory(Vec::new()));
            }
            return OK;
        }
        run.pending = Some(Pending::ReadBody);
        AGAIN
    })
}

/// ngx.req.get_body_file: the temp file holding the body (DECLINED when the
/// body is in memory, or was not read).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_body_file(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        let Some(path) = req.body.as_ref().and_then(RequestBody::file_path) else { return DECLINED };
        // SAFETY: caller's contract; the path lives in the request's body.
        unsafe { lend(path.as_os_str().as_encoded_bytes(), data, len) }
    })
}

/// The request body, if it was read (DECLINED when there is none).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_body(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        // An empty body is nil, as in lua-nginx-module (no buffers).
        let Some(body) = req.body.as_ref().and_then(RequestBody::data).filter(|b| !b.is_empty()) else { return DECLINED };
        // SAFETY: caller's contract; the body lives in the request context.
        unsafe { lend(body, data, len) }
    })
}

/// ERROR with `msg` lent to the caller (kept until its next call).
///
/// # Safety
/// As [`lend`].
unsafe fn body_error(msg: impl Into<Vec<u8>>, err: *mut *const u8, err_len: *mut usize) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { keep(msg.into()).out(err, err_len) };
    super::ERROR
}

/// What lua-nginx-module raises when the body was neither read nor
/// discarded before Lua replaces it.
const NOT_READ: &str = "request body not read yet";
/// ... and for append_body / finish_body without init_body.
const NOT_INITIALIZED: &str = "request_body not initialized";

/// ngx.req.set_body_data: the body becomes `data`, in memory.
///
/// # Safety
/// `data` NULL or valid for `len` bytes; `err` and `err_len` valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_body_data(r: u64, data: *const u8, len: usize, err: *mut *const u8, err_len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        if req.body.is_none() {
            // SAFETY: caller's contract.
            return unsafe { body_error(NOT_READ, err, err_len) };
        }
        req.lua_body = None;
        // SAFETY: caller's contract.
        req.replace_body(RequestBody::Memory(unsafe { read_in(data, len) }.to_vec()));
        OK
    })
}

/// ngx.req.set_body_file: the body becomes the file `path` (removed at the
/// end of the request when `clean` is non-zero).
///
/// # Safety
/// `path` valid for `len` bytes; `err` and `err_len` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_body_file(
    r: u64,
    path: *const u8,
    len: usize,
    clean: c_int,
    err: *mut *const u8,
    err_len: *mut usize,
) -> c_int {
    request(r, |_, _, req| {
        if req.body.is_none() {
            // SAFETY: caller's contract.
            return unsafe { body_error(NOT_READ, err, err_len) };
        }
        // SAFETY: caller's contract.
        let path = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(unsafe { read_in(path, len) }));
        match TempFile::existing(path, clean != 0) {
            Ok(f) => {
                req.lua_body = None;
                req.replace_body(RequestBody::File(f));
                OK
            }
            // SAFETY: caller's contract.
            Err(e) => unsafe { body_error(e, err, err_len) },
        }
    })
}

/// ngx.req.init_body: starts a new, empty body with a buffer of `size`
/// bytes (negative: client_body_buffer_size; 0: straight to a file).
///
/// # Safety
/// `err` and `err_len` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_init_body(r: u64, size: i64, err: *mut *const u8, err_len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        if req.body.is_none() {
            // SAFETY: caller's contract.
            return unsafe { body_error(NOT_READ, err, err_len) };
        }
        // The old body goes now (its temp file too), as in lua-nginx-module.
        req.body = Some(RequestBody::Memory(Vec::new()));
        req.lua_body = Some(LuaBody::new(req.conf, usize::try_from(size).ok()));
        OK
    })
}

/// ngx.req.append_body: adds `data` to the body init_body started.
///
/// # Safety
/// `data` NULL or valid for `len` bytes; `err` and `err_len` valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_append_body(r: u64, data: *const u8, len: usize, err: *mut *const u8, err_len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        let Some(b) = req.lua_body.as_mut() else {
            // SAFETY: caller's contract.
            return unsafe { body_error(NOT_INITIALIZED, err, err_len) };
        };
        // SAFETY: caller's contract.
        if let Err(e) = b.append(unsafe { read_in(data, len) }) {
            req.log(crate::log::Level::Crit, format_args!("{e}"));
            // SAFETY: caller's contract.
            return unsafe { body_error("fail to write file", err, err_len) };
        }
        OK
    })
}

/// ngx.req.finish_body: the body init_body started is the request's body.
///
/// # Safety
/// `err` and `err_len` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_finish_body(r: u64, err: *mut *const u8, err_len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        let Some(b) = req.lua_body.take() else {
            // SAFETY: caller's contract.
            return unsafe { body_error(NOT_INITIALIZED, err, err_len) };
        };
        match b.finish() {
            Ok(body) => {
                req.replace_body(body);
                OK
            }
            Err(e) => {
                req.log(crate::log::Level::Crit, format_args!("{e}"));
                // SAFETY: caller's contract.
                unsafe { body_error("fail to write file", err, err_len) }
            }
        }
    })
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
    // SAFETY: caller's contract.
    let name = unsafe { read_in(name, len) };
    // SAFETY: caller's contract.
    get_resp_header(r, name).map_or_else(|rc| rc, |v| unsafe { v.out(value, value_len) })
}

/// Reading ngx.header.NAME: the value as set so far, Err(DECLINED) for none.
pub fn get_resp_header(r: u64, name: &[u8]) -> Result<Lent, c_int> {
    request_lent(r, |_, _, req| {
        let name = String::from_utf8_lossy(name).replace('_', "-");
        let found = if name.eq_ignore_ascii_case("content-type") {
            req.resp.content_type.as_deref().map(str::as_bytes)
        } else {
            req.resp.headers.get(&name)
        };
        // The value lives in the request until a call changes its headers.
        found.map(Lent::new).ok_or(DECLINED)
    })
}

/// ngx.arg[i]: in body_filter_by_lua, i = 1 is the body; in set_by_lua,
/// the directive's arguments. DECLINED for an index with no value.
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_arg(r: u64, i: c_int, data: *mut *const u8, len: *mut usize) -> c_int {
    request(r, |phase, run, _| {
        let value: &[u8] = match phase {
            Phase::BodyFilter if i == 1 => &run.arg_body,
            Phase::BodyFilter => return DECLINED,
            Phase::Set => match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| run.set_args.get(i)) {
                Some(a) => a.as_bytes(),
                None => return DECLINED,
            },
            _ => return BAD_CONTEXT,
        };
        // SAFETY: caller's contract; the value lives in the context for the run.
        unsafe { lend(value, data, len) }
    })
}

/// body_filter_by_lua's ngx.arg[2]: 1 at the end of the body, else 0.
#[no_mangle]
pub extern "C" fn halo_ffi_request_get_arg_eof(r: u64) -> c_int {
    request(r, |phase, run, _| if phase == Phase::BodyFilter { c_int::from(run.arg_eof) } else { BAD_CONTEXT })
}

/// Sets ngx.arg[1] (the body) in body_filter_by_lua.
///
/// # Safety
/// `data` must be NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_arg_body(r: u64, data: *const u8, len: usize) -> c_int {
    request(r, |phase, run, _| {
        if phase != Phase::BodyFilter {
            return BAD_CONTEXT;
        }
        run.arg_body.clear();
        // SAFETY: caller's contract.
        run.arg_body.extend_from_slice(unsafe { read_in(data, len) });
        OK
    })
}

/// Sets ngx.arg[2] (eof) in body_filter_by_lua.
#[no_mangle]
pub extern "C" fn halo_ffi_request_set_arg_eof(r: u64, eof: c_int) -> c_int {
    request(r, |phase, run, _| {
        if phase != Phase::BodyFilter {
            return BAD_CONTEXT;
        }
        run.arg_eof = eof != 0;
        OK
    })
}

/// ngx.exec(uri, args): records the internal redirect; the Lua side then
/// yields to end the handler.
///
/// # Safety
/// `uri` must be valid for `uri_len` bytes, `args` NULL or valid for
/// `args_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_exec(r: u64, uri: *const u8, uri_len: usize, args: *const u8, args_len: usize) -> c_int {
    responding(r, |run, _| {
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
        run.exec = Some(target);
        OK
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_http_version(r: u64) -> c_int {
    request(r, |_, _, req| 10 + c_int::from(req.req.version_minor))
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_start_time(r: u64) -> f64 {
    context::with_request(r, |_, _, req| {
        // The request's start as wall time: now minus how long it has run.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let started = now.saturating_sub(req.start.elapsed());
        (started.as_millis() as f64) / 1000.0
    })
    .unwrap_or(f64::from(NO_REQUEST))
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_is_internal(r: u64) -> c_int {
    request(r, |_, _, req| c_int::from(req.internal))
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_is_subrequest(r: u64) -> c_int {
    request(r, |_, _, req| c_int::from(req.depth > 0))
}

#[no_mangle]
pub extern "C" fn halo_ffi_request_resp_header_count(r: u64) -> c_int {
    request(r, |_, _, req| (req.resp.headers.len() + usize::from(req.resp.content_type.is_some())).min(c_int::MAX as usize) as c_int)
}

/// # Safety
/// `out` must be valid for writes of `max` entries.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_get_resp_headers(r: u64, out: *mut Header, max: c_int, lower: c_int) -> c_int {
    request(r, |_, _, req| {
        let resp = &req.resp;
        let ct = resp.content_type.as_deref().map(|v| (&b"Content-Type"[..], Some(v.as_bytes())));
        let pairs = ct.into_iter().chain(resp.headers.iter().map(|(n, v)| (n, Some(v))));
        // SAFETY: forwarded caller contract; the strings live in the request
        // until a call that changes headers.
        unsafe { fill_headers(lower, out, max, pairs) }
    })
}

/// ngx.send_headers: the head counts as sent from now on.
#[no_mangle]
pub extern "C" fn halo_ffi_request_send_headers(r: u64) -> c_int {
    responding(r, |_, req| {
        req.resp.headers_sent = true;
        OK
    })
}

/// ngx.headers_sent: 1 or 0.
#[no_mangle]
pub extern "C" fn halo_ffi_request_headers_sent(r: u64) -> c_int {
    request(r, |_, _, req| c_int::from(req.resp.headers_sent))
}

/// ngx.eof: no more output for this request.
#[no_mangle]
pub extern "C" fn halo_ffi_request_eof(r: u64) -> c_int {
    responding(r, |run, req| {
        req.resp.headers_sent = true;
        let first = !req.resp.eof;
        req.resp.eof = true;
        if run.streams && first {
            run.pending = Some(Pending::Flush { eof: true });
            return AGAIN;
        }
        OK
    })
}

/// ngx.flush: when the output streams, registers a flush (the Lua side
/// yields on AGAIN until the bytes are sent); OK when it is buffered.
#[no_mangle]
pub extern "C" fn halo_ffi_request_flush(r: u64) -> c_int {
    responding(r, |run, req| {
        if !run.streams || req.resp.eof {
            return OK;
        }
        req.resp.headers_sent = true;
        run.pending = Some(Pending::Flush { eof: false });
        AGAIN
    })
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
    request(r, |_, _, req| {
        // SAFETY: forwarded caller contract.
        let (name, value) = match unsafe { lua_field_in(name, len, value, value_len, err) } {
            Ok(f) => f,
            Err(rc) => return rc,
        };
        req.edit_header(&String::from_utf8_lossy(&name), value.map(|v| String::from_utf8_lossy(&v).into_owned()));
        OK
    })
}

/// ngx.req.add_header: appends a request header, keeping the others.
///
/// # Safety
/// `name` valid for `len` bytes, `value` for `value_len` (or NULL), `err`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_add_req_header(
    r: u64,
    name: *const u8,
    len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *const c_char,
) -> c_int {
    request(r, |_, _, req| {
        // SAFETY: forwarded caller contract.
        let (name, value) = match unsafe { lua_field_in(name, len, value, value_len, err) } {
            Ok(f) => f,
            Err(rc) => return rc,
        };
        let value = String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned();
        req.add_header(&String::from_utf8_lossy(&name), value);
        OK
    })
}

/// ngx.req.set_method: one of nginx's method names.
///
/// # Safety
/// `name` must be valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_method(r: u64, name: *const u8, len: usize) -> c_int {
    request(r, |_, _, req| {
        // SAFETY: caller's contract.
        let m = unsafe { read_in(name, len) };
        const METHODS: [&str; 14] =
            ["GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"];
        match METHODS.iter().find(|x| x.as_bytes() == m) {
            Some(x) => {
                req.method_override = Some(x);
                OK
            }
            None => DECLINED,
        }
    })
}

/// ngx.req.set_uri(uri): changes $uri (the jump form goes through
/// halo_ffi_request_exec).
///
/// # Safety
/// `uri` must be valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_set_uri(r: u64, uri: *const u8, len: usize) -> c_int {
    request(r, |_, _, req| {
        // SAFETY: caller's contract.
        let uri = String::from_utf8_lossy(unsafe { read_in(uri, len) }).into_owned();
        if !uri.starts_with('/') {
            return DECLINED;
        }
        req.uri = Cow::Owned(uri);
        OK
    })
}

/// ngx.req.raw_header(): the head as sent (DECLINED when not valid UTF-8).
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_request_raw_header(r: u64, data: *mut *const u8, len: *mut usize) -> c_int {
    request(r, |_, _, req| {
        let Some(raw) = req.req.raw_header() else { return DECLINED };
        // SAFETY: caller's contract; the head lives in the request.
        unsafe { lend(raw.as_bytes(), data, len) }
    })
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
    // SAFETY: caller's contract.
    let (name, value) = unsafe { (read_in(name, name_len), read_in(value, value_len)) };
    // SAFETY: caller's contract.
    unsafe { header_rc(add_header(r, name, value), err) }
}

/// One more value of response header `name`: as [`set_header`].
pub fn add_header(r: u64, name: &[u8], value: &[u8]) -> Result<c_int, &'static CStr> {
    let mut bad = None;
    let rc = setting_headers(r, |req, sent| {
        let (name, value) = match lua_field(name, Some(value)) {
            Ok(f) => f,
            Err(msg) => {
                bad = Some(msg);
                return super::ERROR;
            }
        };
        if !sent {
            req.resp.headers.push(&*name, value.as_deref().unwrap_or_default());
        }
        OK
    });
    bad.map_or(Ok(rc), Err)
}
