//! ffi-headers/socket.h: ngx.socket.tcp's methods over crate::cosocket.
//! Each call checks that the running context may use cosockets and owns
//! the socket (the run's entry context is the owner).

use std::cell::RefCell;
use std::os::raw::c_int;
use std::time::Duration;

use super::{lend, read_in, AGAIN, BAD_CONTEXT, DECLINED, DONE, ERROR, NO_REQUEST, OK};
use crate::cosocket::{self, Bad, Pattern, Received, Step, Target};
use crate::lua::context::{self, Kind, Pending, Phase};

thread_local! {
    /// The last error's text, lent by halo_ffi_socket_errmsg.
    static ERRMSG: RefCell<cosocket::Error> = const { RefCell::new(std::borrow::Cow::Borrowed("")) };
}

/// The caller's run (its entry context) if the running context `r` may
/// use cosockets; else the code to return.
fn owner(r: u64) -> Result<u64, c_int> {
    match context::active_root(r) {
        // The balancer too, beyond nginx: a lookup per try may wait.
        Some((Kind::Timer | Kind::Request(Phase::Rewrite | Phase::Access | Phase::Content | Phase::Balancer), root)) => Ok(root),
        Some(_) => Err(BAD_CONTEXT),
        None => Err(NO_REQUEST),
    }
}

/// Runs `f` with the caller's run if it may use sockets (see [`owner`]).
#[inline]
fn owned(r: u64, f: impl FnOnce(u64) -> c_int) -> c_int {
    match owner(r) {
        Ok(root) => f(root),
        Err(code) => code,
    }
}

/// ERROR, keeping `e` for halo_ffi_socket_errmsg.
fn fail(e: cosocket::Error) -> c_int {
    ERRMSG.with(|m| *m.borrow_mut() = e);
    ERROR
}

/// The code for a call that reached no socket of the caller's: one whose
/// run ended is closed; one of another running request is "bad request"
/// (NO_REQUEST: Lua raises it).
fn bad(b: Bad) -> c_int {
    match b {
        Bad::Gone => fail("closed".into()),
        Bad::Foreign => NO_REQUEST,
    }
}

/// Registers the wait on context `r`: the Lua side yields.
fn wait(r: u64, fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) -> c_int {
    context::with_run(r, |_, run| run.pending = Some(Pending::Future(fut)));
    AGAIN
}

/// Registers a request socket's I/O on context `r`: the Lua side yields.
fn client(r: u64, io: cosocket::ClientIo) -> c_int {
    context::with_run(r, |_, run| run.pending = Some(Pending::Client(io)));
    AGAIN
}

/// ngx.req.socket(raw): a socket over the request's client connection.
///
/// # Safety
/// `s` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_req(r: u64, raw: c_int, s: *mut u64) -> c_int {
    owned(r, |root| {
        let raw = raw != 0;
        let refused = context::with_request(r, |_, _, req| {
            if req.depth > 0 {
                return Some("attempt to read the request body in a subrequest");
            }
            if raw {
                return None;
            }
            if req.req.chunked {
                Some("chunked request bodies not supported yet")
            } else if req.body.is_some() || req.body_done {
                Some("request body already exists")
            } else if req.req.content_length.unwrap_or(0) == 0 {
                Some("no body")
            } else {
                None
            }
        });
        match refused {
            None => return NO_REQUEST,
            Some(Some(e)) => return fail(e.into()),
            Some(None) => {}
        }
        if s.is_null() {
            return DECLINED;
        }
        let h = cosocket::new_client(root, raw);
        context::on_close(root, Box::new(move || cosocket::release(h)));
        // SAFETY: non-null, valid for a write (caller's contract).
        unsafe { *s = h };
        OK
    })
}

/// # Safety
/// `data` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_errmsg(data: *mut *const u8) -> c_int {
    ERRMSG.with(|m| {
        let m = m.borrow();
        if !data.is_null() {
            // SAFETY: non-null, valid for a write (caller's contract); the
            // text stays in ERRMSG until the next failure.
            unsafe { *data = m.as_ptr() };
        }
        m.len() as c_int
    })
}

/// # Safety
/// `s` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_new(r: u64, datagram: c_int, s: *mut u64) -> c_int {
    owned(r, |root| {
        if s.is_null() {
            return DECLINED;
        }
        let h = cosocket::new(root, datagram != 0);
        context::on_close(root, Box::new(move || cosocket::release(h)));
        // SAFETY: non-null, valid for a write (caller's contract).
        unsafe { *s = h };
        OK
    })
}

/// # Safety
/// `host` and `pool` must be NULL or valid for their lengths.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_connect(r: u64, s: u64, host: *const u8, host_len: usize, port: c_int, pool: *const u8, pool_len: usize) -> c_int {
    owned(r, |root| {
        // SAFETY (both): forwarded caller contract.
        let host = unsafe { read_in(host, host_len) };
        let pool = (!pool.is_null()).then(|| unsafe { read_in(pool, pool_len) });
        let pool = match pool.map(std::str::from_utf8).transpose() {
            Ok(p) => p,
            Err(_) => return fail("bad pool name".into()),
        };
        let target = if port < 0 {
            Target::Unix(host)
        } else {
            match std::str::from_utf8(host) {
                Ok(h) => Target::Inet(h, port as u16),
                Err(_) => return fail("bad host name".into()),
            }
        };
        // The request's location's resolver; a timer's is the http level's.
        let resolver = context::with_request(r, |_, _, req| req.conf.resolver.clone()).unwrap_or_else(cosocket::http_resolver);
        match cosocket::connect(s, root, r, target, pool, resolver) {
            Ok(Step::Ready(Ok(()))) => OK,
            Ok(Step::Ready(Err(e))) => fail(e),
            Ok(Step::Wait(f)) => wait(r, f),
            Ok(Step::Client(io)) => client(r, io),
            Err(b) => bad(b),
        }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_pool_opts(r: u64, s: u64, pool_size: c_int, backlog: c_int) -> c_int {
    owned(r, |root| {
        let size = usize::try_from(pool_size).ok().filter(|&n| n > 0).unwrap_or_else(|| cosocket::settings().pool_size);
        cosocket::set_pool_limit(s, root, size, usize::try_from(backlog).ok()).map_or_else(bad, |()| OK)
    })
}

/// # Safety
/// `data` must be NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_send(r: u64, s: u64, data: *const u8, len: usize) -> c_int {
    owned(r, |root| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { read_in(data, len) };
        match cosocket::send(s, root, r, data) {
            Ok(Step::Ready(Ok(n))) => n.min(c_int::MAX as usize) as c_int,
            Ok(Step::Ready(Err(e))) => fail(e),
            Ok(Step::Wait(f)) => wait(r, f),
            Ok(Step::Client(io)) => client(r, io),
            Err(b) => bad(b),
        }
    })
}

/// The common part of the receives: lends the data (or the partial data
/// with the error).
///
/// # Safety
/// `data` and `len` must be NULL or valid for a write.
unsafe fn receive(r: u64, s: u64, pattern: Pattern<'_>, data: *mut *const u8, len: *mut usize) -> c_int {
    owned(r, |root| {
        let got = cosocket::receive(s, root, r, pattern, |got| match got {
            // SAFETY (all): forwarded caller contract; the bytes stay in the
            // socket until its next call.
            Received::Data(d) => unsafe { lend(d, data, len) },
            Received::Done => DONE,
            Received::Failed(e, partial) => {
                unsafe { lend(partial, data, len) };
                fail(e)
            }
            Received::Closed => {
                if !data.is_null() {
                    // SAFETY: non-null, valid for a write: no partial data.
                    unsafe { *data = std::ptr::null() };
                }
                fail("closed".into())
            }
        });
        match got {
            Ok(Step::Ready(code)) => code,
            Ok(Step::Wait(f)) => wait(r, f),
            Ok(Step::Client(io)) => client(r, io),
            Err(b) => bad(b),
        }
    })
}

/// # Safety
/// `data` and `len` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_receive(r: u64, s: u64, kind: c_int, n: usize, data: *mut *const u8, len: *mut usize) -> c_int {
    let pattern = match kind {
        0 => Pattern::Line,
        1 => Pattern::All,
        2 => Pattern::Bytes(n),
        3 => Pattern::Any(n),
        4 => Pattern::Datagram(n),
        _ => return DECLINED,
    };
    // SAFETY: forwarded caller contract.
    unsafe { receive(r, s, pattern, data, len) }
}

/// # Safety
/// `pattern` must be valid for `pattern_len` bytes; `data` and `len` NULL
/// or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_receive_until(
    r: u64,
    s: u64,
    pattern: *const u8,
    pattern_len: usize,
    inclusive: c_int,
    size: std::os::raw::c_long,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    // SAFETY: forwarded caller contract.
    let pattern = unsafe { read_in(pattern, pattern_len) };
    if pattern.is_empty() {
        return DECLINED;
    }
    let size = usize::try_from(size).ok();
    // SAFETY: forwarded caller contract.
    unsafe { receive(r, s, Pattern::Until { pattern, inclusive: inclusive != 0, size }, data, len) }
}

fn millis(ms: f64) -> Option<Duration> {
    (ms >= 0.0 && ms.is_finite()).then(|| Duration::from_secs_f64(ms / 1000.0))
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_settimeouts(r: u64, s: u64, connect_ms: f64, send_ms: f64, read_ms: f64) -> c_int {
    owned(r, |root| {
        // 0 is the lua_socket_*_timeout default, as lua-nginx-module has it.
        let st = cosocket::settings();
        let pick = |ms: f64, default: Duration| millis(ms).map(|d| if d.is_zero() { default } else { d });
        let (c, se, re) = (pick(connect_ms, st.connect_timeout), pick(send_ms, st.send_timeout), pick(read_ms, st.read_timeout));
        cosocket::set_timeouts(s, root, c, se, re).map_or_else(bad, |()| OK)
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_setkeepalive(r: u64, s: u64, timeout_ms: f64, size: c_int) -> c_int {
    owned(r, |root| {
        let size = usize::try_from(size).ok().filter(|&n| n > 0);
        match cosocket::set_keepalive(s, root, millis(timeout_ms), size) {
            Ok(Ok(())) => OK,
            Ok(Err(e)) => fail(e),
            Err(b) => bad(b),
        }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_close(r: u64, s: u64) -> c_int {
    owned(r, |root| {
        match cosocket::close(s, root) {
            Ok(Ok(())) => OK,
            Ok(Err(e)) => fail(e),
            Err(b) => bad(b),
        }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_reused(r: u64, s: u64) -> c_int {
    owned(r, |root| {
        match cosocket::reused_times(s, root) {
            Ok(Some(n)) => n.min(c_int::MAX as u32) as c_int,
            Ok(None) => DECLINED,
            Err(b) => bad(b),
        }
    })
}

#[no_mangle]
pub extern "C" fn halo_ffi_socket_tcp_fd(r: u64, s: u64) -> c_int {
    owned(r, |root| {
        match cosocket::fd(s, root) {
            Ok(Some(fd)) => fd,
            Ok(None) => DECLINED,
            Err(b) => bad(b),
        }
    })
}

/// # Safety
/// `name` must be valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_socket_tcp_setoption(r: u64, s: u64, name: *const u8, len: usize, value: c_int) -> c_int {
    owned(r, |root| {
        // SAFETY: forwarded caller contract.
        let name = String::from_utf8_lossy(unsafe { read_in(name, len) });
        match cosocket::set_option(s, root, &name, value) {
            Ok(Ok(())) => OK,
            Ok(Err(e)) => fail(e),
            Err(b) => bad(b),
        }
    })
}
