//! `halo_ffi_config_*` (ffi-headers/config.h): the parts of `ngx.config` only the
//! core knows (the prefix); the constants live in lualib/resty/core/config.lua.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::RwLock;

use super::lend;

/// The prefix as handed to Lua. Leaked on purpose: Lua borrows it across the
/// call, so it must never be freed; it is set once per process (again only if
/// it changes), so the leak is bounded.
static PREFIX: RwLock<&'static [u8]> = RwLock::new(b"");

/// Sets the server prefix `ngx.config.prefix()` returns; a trailing '/' is
/// added as nginx shows it ("/usr/local/halo/").
pub fn set_prefix(prefix: &Path) {
    let mut p = prefix.as_os_str().as_encoded_bytes().to_vec();
    if !p.is_empty() && !p.ends_with(b"/") {
        p.push(b'/');
    }
    let mut cur = PREFIX.write().unwrap_or_else(|e| e.into_inner());
    if *cur != p.as_slice() {
        *cur = Box::leak(p.into_boxed_slice());
    }
}

/// The prefix as `ngx.config.prefix()` returns it.
pub fn prefix() -> &'static [u8] {
    *PREFIX.read().unwrap_or_else(|e| e.into_inner())
}

/// Borrows the prefix into `*data`/`*len`; OK, or ERROR for NULL pointers.
///
/// # Safety
/// `data` and `len` must each be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_ffi_config_prefix(data: *mut *const u8, len: *mut usize) -> c_int {
    // SAFETY: the caller's contract above; the prefix is 'static.
    unsafe { lend(prefix(), data, len) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{ERROR, OK};

    fn get() -> String {
        let (mut d, mut l) = (std::ptr::null(), 0usize);
        // SAFETY: pointers to live locals; the result is 'static.
        unsafe {
            assert_eq!(halo_ffi_config_prefix(&mut d, &mut l), OK);
            String::from_utf8(std::slice::from_raw_parts(d, l).to_vec()).unwrap()
        }
    }

    #[test]
    fn prefix_gets_a_trailing_slash() {
        set_prefix(Path::new("/usr/local/halo"));
        assert_eq!(get(), "/usr/local/halo/");
        set_prefix(Path::new("/srv/h/"));
        assert_eq!(get(), "/srv/h/");
        assert_eq!(prefix(), b"/srv/h/");
        // SAFETY: NULL pointers are rejected, not written.
        assert_eq!(unsafe { halo_ffi_config_prefix(std::ptr::null_mut(), std::ptr::null_mut()) }, ERROR);
    }
}
