//! `halo_ffi_time_*` (ffi-headers/time.h): ngx.time, ngx.now and the date strings,
//! read from the worker's clock cache in [`crate::log::time`].

use std::os::raw::c_int;
use std::time::{Duration, UNIX_EPOCH};

use super::{read_in, write_out, DECLINED, ERROR, OK};
use crate::log::time;

/// The largest second an HTTP or cookie date can show (9999-12-31 23:59:59).
const MAX_SECS: i64 = 253_402_300_799;

/// Seconds since the epoch of the cached time, with millisecond precision as
/// nginx's `ngx.now()` (times before 1970 read as 0).
fn cached_since_epoch() -> Duration {
    time::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Cached time in seconds with millisecond precision (`ngx.now()`).
#[no_mangle]
pub extern "C" fn halo_ffi_time_now() -> f64 {
    time::ngx_now()
}

/// Cached time in whole seconds (`ngx.time()`).
#[no_mangle]
pub extern "C" fn halo_ffi_time_time() -> f64 {
    time::ngx_time()
}

/// Refreshes the clock cache (`ngx.update_time()`).
#[no_mangle]
pub extern "C" fn halo_ffi_time_update_time() {
    time::update()
}

/// The cached local time as "yyyy-mm-dd hh:mm:ss" (the error log's cached
/// "yyyy/mm/dd hh:mm:ss" with dashes).
fn local_datetime() -> String {
    time::err_log_time().replace('/', "-")
}

/// Local date "yyyy-mm-dd" (`ngx.today()`); returns bytes written or ERROR.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_today(buf: *mut u8, len: usize) -> c_int {
    let s = local_datetime();
    // SAFETY: forwarded caller contract.
    unsafe { write_out(buf, len, &s.as_bytes()[..10]) }
}

/// Local "yyyy-mm-dd hh:mm:ss" (`ngx.localtime()`); returns bytes written or ERROR.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_localtime(buf: *mut u8, len: usize) -> c_int {
    let s = local_datetime();
    // SAFETY: forwarded caller contract.
    unsafe { write_out(buf, len, s.as_bytes()) }
}

/// UTC "yyyy-mm-dd hh:mm:ss" (`ngx.utctime()`); returns bytes written or ERROR.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_utctime(buf: *mut u8, len: usize) -> c_int {
    let t = crate::log::time::utc_tm(cached_since_epoch().as_secs() as i64);
    let s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.mon, t.mday, t.hour, t.min, t.sec
    );
    // SAFETY: forwarded caller contract.
    unsafe { write_out(buf, len, s.as_bytes()) }
}

/// A Lua number of seconds as whole seconds within 1970..=9999 (`as` saturates
/// and maps NaN to 0, so no input is undefined behaviour).
fn clamp_secs(sec: f64) -> i64 {
    (sec as i64).clamp(0, MAX_SECS)
}

/// "Thu, 01 Jan 1970 00:00:00 GMT" for `sec` (`ngx.http_time(sec)`); returns
/// bytes written or ERROR.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_http_time(sec: f64, buf: *mut u8, len: usize) -> c_int {
    let t = UNIX_EPOCH + Duration::from_secs(clamp_secs(sec) as u64);
    let s = time::format_http_date(t);
    // SAFETY: forwarded caller contract.
    unsafe { write_out(buf, len, s.as_bytes()) }
}

/// Cookie `Expires` date for `sec` (`ngx.cookie_time(sec)`): "Thu, 01-Jan-70
/// 00:00:00 GMT", with a 4-digit year only after 2037 (as nginx, for old
/// clients). Returns bytes written or ERROR.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_cookie_time(sec: f64, buf: *mut u8, len: usize) -> c_int {
    let s = format_cookie_time(clamp_secs(sec));
    // SAFETY: forwarded caller contract.
    unsafe { write_out(buf, len, s.as_bytes()) }
}

/// Parses an HTTP date into `*sec` (`ngx.parse_http_time(str)`): OK, or DECLINED
/// for an invalid date, or ERROR when `sec` is NULL.
///
/// # Safety
/// `s` must be NULL or valid for reads of `len` bytes; `sec` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_time_parse_http_time(s: *const u8, len: usize, sec: *mut f64) -> c_int {
    if sec.is_null() {
        return ERROR;
    }
    // SAFETY: forwarded caller contract.
    let input = unsafe { read_in(s, len) };
    let Some(t) = std::str::from_utf8(input).ok().and_then(time::parse_http_date) else {
        return DECLINED;
    };
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // SAFETY: `sec` is non-null and valid for a write (caller's contract).
    unsafe { *sec = secs as f64 };
    OK
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn format_cookie_time(secs: i64) -> String {
    let t = crate::log::time::utc_tm(secs);
    let wday = WEEKDAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let mon = MONTHS[(t.mon - 1) as usize];
    if t.year > 2037 {
        format!("{wday}, {:02}-{mon}-{} {:02}:{:02}:{:02} GMT", t.mday, t.year, t.hour, t.min, t.sec)
    } else {
        format!(
            "{wday}, {:02}-{mon}-{:02} {:02}:{:02}:{:02} GMT",
            t.mday,
            t.year % 100,
            t.hour,
            t.min,
            t.sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn call(f: unsafe extern "C" fn(*mut u8, usize) -> c_int) -> String {
        let mut b = [0u8; 64];
        // SAFETY: `b` is valid for 64 bytes.
        let n = unsafe { f(b.as_mut_ptr(), b.len()) };
        assert!(n >= 0, "error {n}");
        String::from_utf8(b[..n as usize].to_vec()).unwrap()
    }

    fn call_sec(f: unsafe extern "C" fn(f64, *mut u8, usize) -> c_int, sec: f64) -> String {
        let mut b = [0u8; 64];
        // SAFETY: `b` is valid for 64 bytes.
        let n = unsafe { f(sec, b.as_mut_ptr(), b.len()) };
        assert!(n >= 0, "error {n}");
        String::from_utf8(b[..n as usize].to_vec()).unwrap()
    }

    fn parse(s: &str) -> Option<f64> {
        let mut out = -1.0;
        // SAFETY: pointers to live locals.
        match unsafe { halo_ffi_time_parse_http_time(s.as_ptr(), s.len(), &mut out) } {
            OK => Some(out),
            DECLINED => None,
            rc => panic!("rc {rc}"),
        }
    }

    #[test]
    fn now_and_time_follow_the_cache() {
        halo_ffi_time_update_time();
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let now = halo_ffi_time_now();
        let t = halo_ffi_time_time();
        assert!((sys - now).abs() < 2.0, "{sys} vs {now}");
        assert_eq!(t, now.floor());
        // Millisecond precision: no sub-millisecond digits.
        assert!(((now * 1000.0).round() - now * 1000.0).abs() < 1e-3);
        assert_eq!(halo_ffi_time_now(), now, "cached until update");
    }

    #[test]
    fn date_strings() {
        let today = call(halo_ffi_time_today);
        let local = call(halo_ffi_time_localtime);
        let utc = call(halo_ffi_time_utctime);
        assert_eq!(today.len(), 10);
        assert_eq!(local.len(), 19);
        assert_eq!(utc.len(), 19);
        assert!(local.starts_with(&today[..4]) || local.starts_with(&today), "{local} {today}");
        let b = utc.as_bytes();
        assert_eq!((b[4], b[7], b[10], b[13], b[16]), (b'-', b'-', b' ', b':', b':'), "{utc}");
        // Too small a buffer is an error, not an overflow.
        let mut small = [0u8; 5];
        // SAFETY: `small` is valid for 5 bytes.
        assert_eq!(unsafe { halo_ffi_time_localtime(small.as_mut_ptr(), 5) }, ERROR);
    }

    #[test]
    fn utc_breakdown() {
        let t = crate::log::time::utc_tm(1_795_294_800);
        assert_eq!((t.year, t.mon, t.mday, t.hour, t.min, t.sec), (2026, 11, 21, 21, 0, 0));
        let t = crate::log::time::utc_tm(1_709_210_096);
        assert_eq!((t.year, t.mon, t.mday, t.hour, t.min, t.sec), (2024, 2, 29, 12, 34, 56));
    }

    #[test]
    fn http_and_cookie_time() {
        assert_eq!(call_sec(halo_ffi_time_http_time, 0.0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(call_sec(halo_ffi_time_http_time, 1_290_079_655.7), "Thu, 18 Nov 2010 11:27:35 GMT");
        assert_eq!(call_sec(halo_ffi_time_http_time, -5.0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(call_sec(halo_ffi_time_http_time, f64::NAN), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(call_sec(halo_ffi_time_http_time, 1e300), "Fri, 31 Dec 9999 23:59:59 GMT");
        // The lua-nginx-module documentation's example.
        assert_eq!(call_sec(halo_ffi_time_cookie_time, 1_290_079_655.0), "Thu, 18-Nov-10 11:27:35 GMT");
        assert_eq!(call_sec(halo_ffi_time_cookie_time, 0.0), "Thu, 01-Jan-70 00:00:00 GMT");
        // 2040-01-01: 4-digit year after 2037.
        assert_eq!(call_sec(halo_ffi_time_cookie_time, 2_208_988_800.0), "Sun, 01-Jan-2040 00:00:00 GMT");
    }

    #[test]
    fn parse_http_time() {
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        assert_eq!(parse("Thu, 18 Nov 2010 11:27:35 GMT"), Some(1_290_079_655.0));
        assert_eq!(parse("Thursday, 18-Nov-10 11:27:35 GMT"), Some(1_290_079_655.0));
        assert_eq!(parse("Thu Nov 18 11:27:35 2010"), Some(1_290_079_655.0));
        assert_eq!(parse("nope"), None);
        assert_eq!(parse(""), None);
        let bad = [0xffu8, 0xfe];
        let mut out = 0.0;
        // SAFETY: pointers to live locals; NULL out-pointer is rejected.
        unsafe {
            assert_eq!(halo_ffi_time_parse_http_time(bad.as_ptr(), 2, &mut out), DECLINED);
            assert_eq!(halo_ffi_time_parse_http_time(bad.as_ptr(), 2, std::ptr::null_mut()), ERROR);
        }
    }
}
