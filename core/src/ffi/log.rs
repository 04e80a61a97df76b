//! `halo_ffi_log_*` (ffi-headers/log.h): `ngx.log` and `print` at process level,
//! written to the error log ([`crate::log::error`]). Lua formats the message.

use std::os::raw::c_int;

use super::{read_in, ERROR, OK};
use crate::log::{error, Level};

/// nginx's level number for `level` (`ngx.EMERG` = 1 .. `ngx.DEBUG` = 8).
pub fn ngx_level(level: Level) -> c_int {
    match level {
        Level::Emerg => 1,
        Level::Alert => 2,
        Level::Crit => 3,
        Level::Error => 4,
        Level::Warn => 5,
        Level::Notice => 6,
        Level::Info => 7,
        Level::Debug => 8,
    }
}

/// The level for nginx's number `n`; `ngx.STDERR` (0, "always written") maps to
/// emerg, the one level that is never filtered. None when out of range.
pub fn from_ngx_level(n: c_int) -> Option<Level> {
    Some(match n {
        0 | 1 => Level::Emerg,
        2 => Level::Alert,
        3 => Level::Crit,
        4 => Level::Error,
        5 => Level::Warn,
        6 => Level::Notice,
        7 => Level::Info,
        8 => Level::Debug,
        _ => return None,
    })
}

/// The error log's threshold as an nginx level number.
#[no_mangle]
pub extern "C" fn halo_ffi_log_level() -> c_int {
    ngx_level(error::global().level())
}

/// Writes `msg` at nginx level `level`; OK, or ERROR for a bad level.
///
/// # Safety
/// `msg` must be NULL or valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_log_write(level: c_int, msg: *const u8, len: usize) -> c_int {
    let Some(level) = from_ngx_level(level) else {
        return ERROR;
    };
    // SAFETY: forwarded caller contract.
    let msg = unsafe { read_in(msg, len) };
    let msg = String::from_utf8_lossy(msg);
    // Inside a request, the line names it, as nginx's request log lines do.
    if crate::lua::context::with_current_request(|ctx| ctx.log(level, format_args!("{msg}"))).is_none() {
        error::log(level, None, &msg);
    }
    OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for n in 1..=8 {
            assert_eq!(ngx_level(from_ngx_level(n).unwrap()), n);
        }
        assert_eq!(from_ngx_level(0), Some(Level::Emerg));
        assert_eq!(from_ngx_level(9), None);
        assert_eq!(from_ngx_level(-1), None);
        // SAFETY: a bad level is rejected before `msg` is read.
        assert_eq!(unsafe { halo_ffi_log_write(9, std::ptr::null(), 0) }, ERROR);
        assert!((1..=8).contains(&halo_ffi_log_level()));
    }
}
