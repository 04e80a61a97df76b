//! ffi-headers/location.h: ngx.location.capture and capture_multi. The
//! call copies what each subrequest needs out of its parent into a
//! [`Spec`], starts them through the worker's runner (lua::subrequest) and
//! registers one wait for all of them; their outcomes land in the caller's
//! run, where the Lua side reads them after the resume.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use super::{read_in, AGAIN, BAD_CONTEXT, DECLINED, ERROR, OK};
use crate::log::Level;
use crate::lua::context::{self, Kind, Pending, Phase};
use crate::lua::subrequest::{self, Spec, MAX_DEPTH};
use crate::request::RequestCtx;

/// A borrowed string (`halo_ffi_str_t`).
#[repr(C)]
pub struct Str {
    pub data: *const u8,
    pub len: usize,
}

impl Str {
    /// # Safety
    /// `data` must be NULL or valid for `len` bytes.
    unsafe fn bytes<'a>(&self) -> Option<&'a [u8]> {
        // SAFETY: caller's contract.
        (!self.data.is_null()).then(|| unsafe { read_in(self.data, self.len) })
    }
}

/// One subrequest (`halo_ffi_subrequest_t`).
#[repr(C)]
pub struct Subrequest {
    pub uri: Str,
    pub args: Str,
    pub body: Str,
    pub vars: *const Str,
    pub nvars: c_int,
    pub method: c_int,
    pub flags: c_int,
}

const COPY_VARS: c_int = 1;
const SHARE_VARS: c_int = 2;
const FORWARD_BODY: c_int = 4;
const CTX: c_int = 8;

thread_local! {
    /// The last error text, valid until the next call.
    static ERR: RefCell<CString> = RefCell::new(CString::default());
}

fn fail(err: *mut *const c_char, msg: String) -> c_int {
    if !err.is_null() {
        ERR.with(|e| {
            let mut e = e.borrow_mut();
            *e = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            // SAFETY: `err` is non-null and valid for a write (header contract).
            unsafe { *err = e.as_ptr() };
        });
    }
    ERROR
}

/// nginx's method names for lua-nginx-module's ngx.HTTP_* numbers.
fn method_name(m: c_int) -> Option<&'static str> {
    Some(match m {
        0x0002 => "GET",
        0x0004 => "HEAD",
        0x0008 => "POST",
        0x0010 => "PUT",
        0x0020 => "DELETE",
        0x0040 => "MKCOL",
        0x0080 => "COPY",
        0x0100 => "MOVE",
        0x0200 => "OPTIONS",
        0x0400 => "PROPFIND",
        0x0800 => "PROPPATCH",
        0x1000 => "LOCK",
        0x2000 => "UNLOCK",
        0x4000 => "PATCH",
        0x8000 => "TRACE",
        _ => return None,
    })
}

/// nginx's ngx_http_parse_unsafe_uri: the path and the args after `?`;
/// None for an empty URI, one starting with `?` or `.`, a `..` segment or
/// a NUL.
fn split_safe_uri(uri: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    if uri.is_empty() || uri[0] == b'?' || uri[0] == b'.' {
        return None;
    }
    let (path, args) = match uri.iter().position(|&c| c == b'?') {
        Some(q) => (&uri[..q], Some(&uri[q + 1..])),
        None => (uri, None),
    };
    if path.contains(&0) {
        return None;
    }
    for (i, w) in path.windows(3).enumerate() {
        if w[0] == b'/' && w[1] == b'.' && w[2] == b'.' && (i + 3 == path.len() || path[i + 3] == b'/') {
            return None;
        }
    }
    Some((path, args))
}

/// The head a subrequest parses: the parent's request line and request
/// headers (Lua's edits applied), its own Content-Length for a body.
fn head_of(req: &RequestCtx<'_>, body: Option<&[u8]>) -> String {
    let mut head = String::with_capacity(256);
    head.push_str(req.req.request_line());
    head.push_str("\r\n");
    for (n, v) in req.request_headers() {
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    head
}

/// The spec of one subrequest of `req`, or the error text.
///
/// # Safety
/// `sr`'s pointers must be valid as location.h says.
unsafe fn spec_of(req: &mut RequestCtx<'_>, sr: &Subrequest) -> Result<Spec, String> {
    // SAFETY: caller's contract.
    let uri = unsafe { sr.uri.bytes() }.unwrap_or_default();
    let Some((path, uri_args)) = split_safe_uri(uri) else {
        return Err(format!("unsafe uri in argument #1: {}", String::from_utf8_lossy(uri)));
    };
    // SAFETY: caller's contract.
    let extra = unsafe { sr.args.bytes() }.filter(|a| !a.is_empty());
    let args = match (uri_args, extra) {
        (Some(a), Some(e)) => Some(format!("{}&{}", String::from_utf8_lossy(a), String::from_utf8_lossy(e))),
        (Some(a), None) if !a.is_empty() => Some(String::from_utf8_lossy(a).into_owned()),
        (None, Some(e)) => Some(String::from_utf8_lossy(e).into_owned()),
        _ => None,
    };
    let uri = String::from_utf8_lossy(path).into_owned();
    if req.depth >= MAX_DEPTH {
        req.log(Level::Error, format_args!("lua subrequests cycle while processing \"{uri}\""));
        return Err("failed to issue subrequest: -1".into());
    }
    let Some(method) = method_name(sr.method) else {
        req.log(Level::Error, format_args!("unsupported HTTP method: {}", sr.method));
        return Err("failed to adjust the subrequest: -1".into());
    };
    // As lua-nginx-module: the body option, else the parent's body, but
    // not for a method other than PUT and POST when the parent sent a
    // Content-Length (unless always_forward_body).
    // SAFETY: caller's contract.
    let body = match unsafe { sr.body.bytes() } {
        Some(b) => Some(b.to_vec()),
        None if sr.flags & FORWARD_BODY == 0 && !matches!(method, "PUT" | "POST") && req.content_length() > 0 => None,
        None => match &req.body {
            Some(crate::request::body::RequestBody::Memory(v)) => Some(v.clone()),
            Some(b) => b.file_path().and_then(|p| std::fs::read(p).ok()),
            None => None,
        },
    };
    let mut vars = Vec::new();
    if sr.flags & (COPY_VARS | SHARE_VARS) != 0 {
        vars.extend(req.set_vars.iter().cloned());
    }
    if sr.nvars > 0 && !sr.vars.is_null() {
        // SAFETY: caller's contract: `vars` holds `nvars` pairs.
        let pairs = unsafe { std::slice::from_raw_parts(sr.vars, 2 * sr.nvars as usize) };
        for pair in pairs.chunks(2) {
            // SAFETY: caller's contract.
            let (n, v) = unsafe { (pair[0].bytes().unwrap_or_default(), pair[1].bytes().unwrap_or_default()) };
            let name = String::from_utf8_lossy(n).to_ascii_lowercase();
            let builtin = req.lookup(&name).is_some() && !req.set_vars.iter().any(|(s, _)| *s == name);
            if builtin && !matches!(name.as_str(), "args" | "query_string") {
                req.log(Level::Error, format_args!("variable \"{name}\" not changeable"));
                return Err("failed to adjust the subrequest: 500".into());
            }
            vars.push((name, String::from_utf8_lossy(v).into_owned()));
        }
    }
    Ok(Spec {
        method,
        head: head_of(req, body.as_deref()),
        uri,
        args,
        body,
        vars,
        share_vars: sr.flags & SHARE_VARS != 0,
        server: std::ptr::from_ref(req.server) as usize,
        fd: req.conn.fd,
        listen: req.conn.listen,
        conn_number: req.conn.number,
        conn_requests: req.conn.requests,
        depth: req.depth + 1,
        custom_ctx: sr.flags & CTX != 0,
    })
}

/// # Safety
/// `srs` must be valid for `n` entries as location.h says, `ids` for `n`
/// writes, `err` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_location_capture(r: u64, srs: *const Subrequest, n: c_int, ids: *mut u64, err: *mut *const c_char) -> c_int {
    if srs.is_null() || ids.is_null() || n <= 0 {
        return DECLINED;
    }
    // SAFETY: caller's contract.
    let srs = unsafe { std::slice::from_raw_parts(srs, n as usize) };
    let res = context::with_request(r, |kind, run, req| {
        if !matches!(kind, Kind::Request(Phase::Rewrite | Phase::Access | Phase::Content)) {
            return BAD_CONTEXT;
        }
        let mut specs = Vec::with_capacity(srs.len());
        for sr in srs {
            // SAFETY: caller's contract.
            match unsafe { spec_of(req, sr) } {
                Ok(s) => specs.push(s),
                Err(e) => return fail(err, e),
            }
        }
        let mut futs = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let Some((id, fut)) = subrequest::start(spec) else { return fail(err, "no worker to run subrequests".into()) };
            // SAFETY: `ids` is valid for `n` writes (caller's contract).
            unsafe { *ids.add(i) = id };
            futs.push(fut);
        }
        run.subrequests.clear();
        run.pending = Some(Pending::Future(Box::pin(async move {
            let outs = subrequest::join_all(futs).await;
            context::with_run(r, |_, run| run.subrequests = outs);
        })));
        AGAIN
    });
    res.unwrap_or_else(|| super::request::no_request(r))
}

/// # Safety
/// The out-parameters must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_location_result(
    r: u64,
    i: c_int,
    status: *mut c_int,
    truncated: *mut c_int,
    body: *mut *const u8,
    body_len: *mut usize,
    content_length: *mut i64,
    nheaders: *mut c_int,
) -> c_int {
    context::with_active(r, |_, run| {
        let Some(o) = usize::try_from(i).ok().and_then(|i| run.subrequests.get(i)) else { return DECLINED };
        // SAFETY: caller's contract; the body lives in the run until finish.
        unsafe {
            *status = c_int::from(o.status);
            *truncated = c_int::from(o.truncated);
            *body = o.body.as_ptr();
            *body_len = o.body.len();
            *content_length = o.content_length;
            *nheaders = o.headers.len().min(c_int::MAX as usize) as c_int;
        }
        OK
    })
    .unwrap_or_else(|| super::request::no_request(r))
}

/// # Safety
/// `name` and `value` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_location_header(r: u64, i: c_int, j: c_int, name: *mut Str, value: *mut Str) -> c_int {
    context::with_active(r, |_, run| {
        let h = usize::try_from(i).ok().and_then(|i| run.subrequests.get(i)).and_then(|o| usize::try_from(j).ok().and_then(|j| o.headers.get(j)));
        let Some((n, v)) = h else { return DECLINED };
        // SAFETY: caller's contract; the strings live in the run until finish.
        unsafe {
            *name = Str { data: n.as_ptr(), len: n.len() };
            *value = Str { data: v.as_ptr(), len: v.len() };
        }
        OK
    })
    .unwrap_or_else(|| super::request::no_request(r))
}

#[no_mangle]
pub extern "C" fn halo_ffi_location_finish(r: u64) -> c_int {
    let res = context::with_request(r, |_, run, req| {
        for o in run.subrequests.drain(..) {
            for (n, v) in o.vars.into_iter().flatten() {
                req.set_var(&n, v);
            }
        }
        OK
    });
    res.unwrap_or_else(|| super::request::no_request(r))
}

