//! Cached time strings, refreshed once per event-loop iteration (as nginx's
//! `ngx_time_update`).
//!
//! The event loop calls [`update`] once per iteration; everything else reads the
//! cache. The cache is thread-local (workers are single-threaded), so there is no
//! locking. A thread that never called [`update`] gets the cache filled on first
//! use, and it then stays at that time until [`update`] is called.
//!
//! The formatting functions (`format_*`) take a [`SystemTime`] and are pure apart
//! from the local time zone; they are what the cache uses.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cached strings for one second.
struct Cache {
    now: SystemTime,
    /// Unix second the strings below were made for; `i64::MIN` = never.
    sec: i64,
    http_date: String,
    time_local: String,
    iso8601: String,
    err_log: String,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            now: UNIX_EPOCH,
            sec: i64::MIN,
            http_date: String::new(),
            time_local: String::new(),
            iso8601: String::new(),
            err_log: String::new(),
        })
    };
}

impl Cache {
    fn set(&mut self, now: SystemTime) {
        self.now = now;
        let sec = unix_secs(now);
        if sec == self.sec {
            return;
        }
        // The strings only change once a second: rebuild them then, not per call.
        self.sec = sec;
        let tm = local_tm(sec);
        self.http_date = format_http_date(now);
        self.time_local = fmt_time_local(&tm);
        self.iso8601 = fmt_iso8601(&tm);
        self.err_log = fmt_err_log(&tm);
    }
}

/// Runs `f` on the cache, filling it first if this thread never updated it.
fn with_cache<R>(f: impl FnOnce(&Cache) -> R) -> R {
    CACHE.with(|c| {
        if c.borrow().sec == i64::MIN {
            c.borrow_mut().set(SystemTime::now());
        }
        f(&c.borrow())
    })
}

/// Refreshes the cached time (call once per event-loop iteration).
pub fn update() {
    CACHE.with(|c| c.borrow_mut().set(SystemTime::now()));
}

/// The cached current time.
pub fn now() -> SystemTime {
    with_cache(|c| c.now)
}

/// The cached time in seconds with millisecond precision, as `ngx.now()`
/// (times before 1970 read as 0): what its FFI and CFunction forms return.
pub fn ngx_now() -> f64 {
    let d = now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_secs() as f64 + f64::from(d.subsec_millis()) / 1000.0
}

/// The cached time in whole seconds, as `ngx.time()`.
pub fn ngx_time() -> f64 {
    now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as f64
}

/// Appends the cached HTTP date ("Sat, 21 Nov 2026 21:00:00 GMT") to `out`
/// (for the `Date` header).
pub fn http_date(out: &mut Vec<u8>) {
    with_cache(|c| out.extend_from_slice(c.http_date.as_bytes()))
}

/// Calls `f` with the cached HTTP date, without copying it.
pub fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    with_cache(|c| f(&c.http_date))
}

/// `$time_local`: "21/Nov/2026:21:00:00 +0000" (local time).
pub fn time_local() -> String {
    with_cache(|c| c.time_local.clone())
}

/// `$time_iso8601`: "2026-11-21T21:00:00+00:00" (local time).
pub fn time_iso8601() -> String {
    with_cache(|c| c.iso8601.clone())
}

/// `$msec`: "1763758800.123" (seconds with milliseconds).
pub fn msec() -> String {
    format_msec(now())
}

/// The error-log timestamp "2026/11/21 21:00:00" (local time).
pub fn err_log_time() -> String {
    with_cache(|c| c.err_log.clone())
}

/// The largest time an HTTP date can show (9999-12-31 23:59:59).
const MAX_HTTP_SECS: u64 = 253_402_300_799;

/// Formats `t` as an IMF-fixdate ("Sat, 21 Nov 2026 21:00:00 GMT"). Times
/// before 1970 or after year 9999 are clamped (httpdate cannot show them).
pub fn format_http_date(t: SystemTime) -> String {
    let t = match t.duration_since(UNIX_EPOCH) {
        Err(_) => UNIX_EPOCH,
        Ok(d) if d.as_secs() > MAX_HTTP_SECS => UNIX_EPOCH + Duration::from_secs(MAX_HTTP_SECS),
        Ok(_) => t,
    };
    httpdate::fmt_http_date(t)
}

/// Parses an HTTP date in any of the three formats of RFC 9110 (e.g. an
/// `If-Modified-Since` value); None when invalid.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// `$time_local` format for `t`: "21/Nov/2026:21:00:00 +0000" (local time).
pub fn format_time_local(t: SystemTime) -> String {
    fmt_time_local(&local_tm(unix_secs(t)))
}

/// `$time_iso8601` format for `t`: "2026-11-21T21:00:00+00:00" (local time).
pub fn format_iso8601(t: SystemTime) -> String {
    fmt_iso8601(&local_tm(unix_secs(t)))
}

/// Error-log format for `t`: "2026/11/21 21:00:00" (local time).
pub fn format_err_log_time(t: SystemTime) -> String {
    fmt_err_log(&local_tm(unix_secs(t)))
}

/// `$msec` format for `t`: "1763758800.123" (times before 1970 show as 0.000).
pub fn format_msec(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Whole seconds since the epoch, rounding down (also before 1970).
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// A broken-down time with its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tm {
    pub year: i64,
    /// 1..=12
    pub mon: u32,
    pub mday: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// Seconds east of UTC.
    pub gmtoff: i64,
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// UTC broken-down time (Howard Hinnant's days-to-civil algorithm).
pub(crate) fn utc_tm(secs: i64) -> Tm {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let mday = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let mon = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(mon <= 2);
    Tm { year, mon, mday, hour: rem / 3600, min: rem / 60 % 60, sec: rem % 60, gmtoff: 0 }
}

/// Local broken-down time via `localtime_r` (so TZ and /etc/localtime apply);
/// falls back to UTC if the C library cannot convert `secs`.
fn local_tm(secs: i64) -> Tm {
    // time_t is 64-bit on every target we build for.
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `libc::tm` is a valid value (integers and a null
    // `tm_zone` pointer); it is only an output buffer here.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers point to live locals for the duration of the call;
    // localtime_r is the reentrant variant and keeps no reference to them.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return utc_tm(secs);
    }
    Tm {
        year: i64::from(tm.tm_year) + 1900,
        mon: (tm.tm_mon + 1) as u32,
        mday: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        // A leap second (60) shows as 59, as the other formats cannot show it.
        sec: tm.tm_sec.min(59) as u32,
        gmtoff: tm.tm_gmtoff as i64,
    }
}

/// Offset as (sign, hours, minutes).
fn offset(tm: &Tm) -> (char, i64, i64) {
    let sign = if tm.gmtoff < 0 { '-' } else { '+' };
    let off = tm.gmtoff.abs() / 60;
    (sign, off / 60, off % 60)
}

fn fmt_time_local(tm: &Tm) -> String {
    let (sign, oh, om) = offset(tm);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} {sign}{oh:02}{om:02}",
        tm.mday,
        MONTHS[(tm.mon - 1) as usize],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec
    )
}

fn fmt_iso8601(tm: &Tm) -> String {
    let (sign, oh, om) = offset(tm);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{oh:02}:{om:02}",
        tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec
    )
}

fn fmt_err_log(tm: &Tm) -> String {
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21 21:00:00.123 UTC.
    const T: u64 = 1_795_294_800;

    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(T * 1000 + 123)
    }

    #[test]
    fn utc_breakdown() {
        let tm = utc_tm(T as i64);
        assert_eq!((tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec), (2026, 11, 21, 21, 0, 0));
        let tm = utc_tm(0);
        assert_eq!((tm.year, tm.mon, tm.mday, tm.hour), (1970, 1, 1, 0));
        // 2024-02-29 12:34:56 (leap day).
        let tm = utc_tm(1_709_210_096);
        assert_eq!((tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec), (2024, 2, 29, 12, 34, 56));
        // Before 1970: 1969-12-31 23:59:59.
        let tm = utc_tm(-1);
        assert_eq!((tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn formats_utc() {
        let tm = utc_tm(T as i64);
        assert_eq!(fmt_time_local(&tm), "21/Nov/2026:21:00:00 +0000");
        assert_eq!(fmt_iso8601(&tm), "2026-11-21T21:00:00+00:00");
        assert_eq!(fmt_err_log(&tm), "2026/11/21 21:00:00");
    }

    #[test]
    fn formats_with_offset() {
        // 21:00 UTC seen at UTC-05:30 and UTC+09:00.
        let tm = Tm { gmtoff: -(5 * 3600 + 30 * 60), ..utc_tm(T as i64 - (5 * 3600 + 30 * 60)) };
        assert_eq!(fmt_time_local(&tm), "21/Nov/2026:15:30:00 -0530");
        assert_eq!(fmt_iso8601(&tm), "2026-11-21T15:30:00-05:30");
        let tm = Tm { gmtoff: 9 * 3600, ..utc_tm(T as i64 + 9 * 3600) };
        assert_eq!(fmt_time_local(&tm), "22/Nov/2026:06:00:00 +0900");
        assert_eq!(fmt_err_log(&tm), "2026/11/22 06:00:00");
    }

    #[test]
    fn local_matches_utc_plus_offset() {
        for secs in [0, T as i64, 1_709_210_096, 1_720_000_000] {
            let l = local_tm(secs);
            assert_eq!(Tm { gmtoff: l.gmtoff, ..utc_tm(secs + l.gmtoff) }, l);
        }
        // The public functions use local time: same shape whatever TZ is.
        let s = format_time_local(fixed());
        assert_eq!(s.len(), "21/Nov/2026:21:00:00 +0000".len());
        assert!(s.contains("/2026:") || s.contains("/Nov/"), "{s}");
        let l = local_tm(T as i64);
        assert_eq!(format_time_local(fixed()), fmt_time_local(&l));
        assert_eq!(format_iso8601(fixed()), fmt_iso8601(&l));
        assert_eq!(format_err_log_time(fixed()), fmt_err_log(&l));
    }

    #[test]
    fn msec_and_http_date() {
        assert_eq!(format_msec(fixed()), "1795294800.123");
        assert_eq!(format_msec(UNIX_EPOCH + Duration::from_millis(5)), "0.005");
        assert_eq!(format_http_date(fixed()), "Sat, 21 Nov 2026 21:00:00 GMT");
        assert_eq!(format_http_date(UNIX_EPOCH - Duration::from_secs(10)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(UNIX_EPOCH + Duration::from_secs(MAX_HTTP_SECS + 1000)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn parse_dates() {
        let want = Some(UNIX_EPOCH + Duration::from_secs(T));
        assert_eq!(parse_http_date("Sat, 21 Nov 2026 21:00:00 GMT"), want);
        assert_eq!(parse_http_date("Saturday, 21-Nov-26 21:00:00 GMT"), want);
        assert_eq!(parse_http_date("Sat Nov 21 21:00:00 2026"), want);
        assert_eq!(parse_http_date(" Sat, 21 Nov 2026 21:00:00 GMT "), want);
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
        let t = parse_http_date(&format_http_date(fixed())).unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(T));
    }

    #[test]
    fn unix_secs_rounds_down() {
        assert_eq!(unix_secs(fixed()), T as i64);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }

    #[test]
    fn cache() {
        // Each test runs on its own thread, so this cache is ours alone.
        let first = now();
        assert_eq!(now(), first, "no refresh without update()");
        let mut d = Vec::new();
        http_date(&mut d);
        assert_eq!(String::from_utf8(d).unwrap(), format_http_date(first));
        assert_eq!(with_http_date(|s| s.len()), 29);
        assert_eq!(time_local(), format_time_local(first));
        assert_eq!(time_iso8601(), format_iso8601(first));
        assert_eq!(err_log_time(), format_err_log_time(first));
        assert_eq!(msec(), format_msec(first));
        std::thread::sleep(Duration::from_millis(2));
        update();
        assert!(now() > first);
        // Strings follow the cached time.
        assert_eq!(time_local(), format_time_local(now()));
        assert_eq!(msec(), format_msec(now()));
        // A fixed time in the cache rebuilds the strings for a new second.
        CACHE.with(|c| c.borrow_mut().set(fixed()));
        assert_eq!(with_http_date(str::to_owned), "Sat, 21 Nov 2026 21:00:00 GMT");
        assert_eq!(msec(), "1795294800.123");
    }
}
