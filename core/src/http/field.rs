//! Header fields that come from Lua (`ngx.header`, `ngx.redirect`,
//! `ngx.req.set_header`): what may reach the wire. A name is a token or an
//! error; a value has CR and LF escaped as `%0D` / `%0A`, as lua-nginx-module
//! escapes them, so no value can end its line and start another (response
//! splitting); a NUL is an error.

use std::borrow::Cow;
use std::ffi::CStr;

/// The error for a name that is not a token (NUL-terminated: the FFI hands
/// these texts to Lua as they are).
pub const INVALID_NAME: &CStr = c"invalid header name";
/// The error for a value holding a NUL byte.
pub const INVALID_VALUE: &CStr = c"invalid header value (NUL byte)";

/// RFC 9110 token bytes: letters, digits and ``!#$%&'*+-.^_`|~``.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        c += 1;
    }
    t
};

/// Checks a header name: a non-empty token.
pub fn check_name(name: &[u8]) -> Result<(), &'static CStr> {
    if !name.is_empty() && name.iter().all(|&c| TOKEN[c as usize]) {
        Ok(())
    } else {
        Err(INVALID_NAME)
    }
}

/// A header value as it may be written: CR and LF escaped, NUL an error.
pub fn escape_value(value: &[u8]) -> Result<Cow<'_, [u8]>, &'static CStr> {
    // Nearly every value is clean: one scan, no copy.
    let Some(first) = value.iter().position(|&c| matches!(c, b'\r' | b'\n' | 0)) else {
        return Ok(Cow::Borrowed(value));
    };
    let mut out = Vec::with_capacity(value.len() + 8);
    out.extend_from_slice(&value[..first]);
    for &c in &value[first..] {
        match c {
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            0 => return Err(INVALID_VALUE),
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name(b"X-Foo_1").is_ok());
        assert!(check_name(b"!#$%&'*+-.^_`|~").is_ok());
        for bad in [&b""[..], b"a b", b"a:b", b"a\r\nb", b"a\0", b"a\tb", b"a(b)", b"\xc3\xa9", b"a/b"] {
            assert_eq!(check_name(bad), Err(INVALID_NAME), "{bad:?}");
        }
    }

    #[test]
    fn values() {
        assert!(matches!(escape_value(b"plain value\t1"), Ok(Cow::Borrowed(_))));
        let v = escape_value(b"/home\r\nSet-Cookie: a=b").unwrap();
        assert_eq!(&*v, b"/home%0D%0ASet-Cookie: a=b");
        assert_eq!(&*escape_value(b"\n\r").unwrap(), b"%0A%0D");
        assert_eq!(escape_value(b"a\r\0"), Err(INVALID_VALUE));
        // Other control bytes cannot end a line: kept, as nginx keeps them.
        assert_eq!(&*escape_value(b"a\x0bb").unwrap(), b"a\x0bb");
    }
}
