//! URI escaping and unescaping as lua-nginx-module does it (`ngx.escape_uri`,
//! `ngx.unescape_uri`), and `ngx.quote_sql_str`.

/// nginx's escape kinds (`NGX_ESCAPE_*`), the `type` of `ngx.escape_uri`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Escape {
    /// 0: a URI path: controls, space, `#`, `%`, `?` and bytes >= 0x7f.
    Uri = 0,
    /// 1: query arguments: as [`Escape::Uri`] plus `+`.
    Args = 1,
    /// 2 (the default): a URI component: all but ALPHA, DIGIT and `-._~!*'()`.
    UriComponent = 2,
    /// 3: HTML attribute: controls, space, `"#%'` and bytes >= 0x7f.
    Html = 3,
    /// 4: a Refresh header's URL: controls, space, `"'` and bytes >= 0x7f.
    Refresh = 4,
    /// 5: a memcached key: controls, space and `%` only.
    Memcached = 5,
    /// 6: mail auth: as memcached.
    MailAuth = 6,
}

impl Escape {
    /// The kind for `ngx.escape_uri`'s number, if it names one (0..=6).
    pub fn from_type(t: i32) -> Option<Escape> {
        Some(match t {
            0 => Escape::Uri,
            1 => Escape::Args,
            2 => Escape::UriComponent,
            3 => Escape::Html,
            4 => Escape::Refresh,
            5 => Escape::Memcached,
            6 => Escape::MailAuth,
            _ => return None,
        })
    }

    fn map(self) -> &'static [bool; 256] {
        match self {
            Escape::Uri => &URI,
            Escape::Args => &ARGS,
            Escape::UriComponent => &URI_COMPONENT,
            Escape::Html => &HTML,
            Escape::Refresh => &REFRESH,
            Escape::Memcached | Escape::MailAuth => &MEMCACHED,
        }
    }
}

/// Which bytes a kind escapes: controls (0x00-0x1f) always, `extra`, and,
/// when `high`, DEL and every byte from 0x80.
const fn escape_map(extra: &[u8], high: bool) -> [bool; 256] {
    let mut m = [false; 256];
    let mut i = 0;
    while i < 256 {
        m[i] = i < 0x20 || (high && i >= 0x7f);
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        m[extra[j] as usize] = true;
        j += 1;
    }
    m
}

/// Everything but the bytes a URI component keeps as they are.
const fn component_map() -> [bool; 256] {
    let keep = b"-._~!*'()";
    let mut m = [true; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_alphanumeric() {
            m[i] = false;
        }
        i += 1;
    }
    let mut j = 0;
    while j < keep.len() {
        m[keep[j] as usize] = false;
        j += 1;
    }
    m
}

static URI: [bool; 256] = escape_map(b" #%?", true);
static ARGS: [bool; 256] = escape_map(b" #%+?", true);
static URI_COMPONENT: [bool; 256] = component_map();
static HTML: [bool; 256] = escape_map(b" \"#%'", true);
static REFRESH: [bool; 256] = escape_map(b" \"'", true);
static MEMCACHED: [bool; 256] = escape_map(b" %", false);

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The length of `src` once escaped as `kind` (each escaped byte takes 3).
pub fn escaped_len(src: &[u8], kind: Escape) -> usize {
    let map = kind.map();
    src.len() + 2 * src.iter().filter(|&&c| map[c as usize]).count()
}

/// Escapes `src` as `kind` into `out` (appended): `%XX`, upper-case hex.
pub fn escape_into(src: &[u8], kind: Escape, out: &mut Vec<u8>) {
    let map = kind.map();
    for &c in src {
        if map[c as usize] {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 0xf) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// [`escape_into`] into a caller's buffer; returns the bytes written, or
/// None when `dst` is shorter than [`escaped_len`].
pub fn escape_to(src: &[u8], kind: Escape, dst: &mut [u8]) -> Option<usize> {
    let map = kind.map();
    let mut n = 0;
    for &c in src {
        if map[c as usize] {
            dst.get_mut(n..n + 3)?.copy_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 0xf) as usize]]);
            n += 3;
        } else {
            *dst.get_mut(n)? = c;
            n += 1;
        }
    }
    Some(n)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Unescapes a URI component as `ngx.unescape_uri` (and args decoding) do:
/// `%XX` with two hex digits becomes the byte, `+` a space, and anything
/// else, a lone or malformed `%` included, stays as it is. Writes into
/// `dst` (never longer than `src`) and returns the length.
pub fn unescape_to(src: &[u8], dst: &mut [u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < src.len() && n < dst.len() {
        let c = src[i];
        i += 1;
        dst[n] = match c {
            b'+' => b' ',
            b'%' => match (src.get(i).copied().and_then(hex_val), src.get(i + 1).copied().and_then(hex_val)) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            c => c,
        };
        n += 1;
    }
    n
}

/// [`unescape_to`] appending to a vector.
pub fn unescape_into(src: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + src.len(), 0);
    let n = unescape_to(src, &mut out[start..]);
    out.truncate(start + n);
}

/// The byte `quote_sql_str` puts after a backslash for `c`, if it escapes it.
/// Bytes of multi-byte UTF-8 sequences (>= 0x80) are never escaped.
fn sql_escape(c: u8) -> Option<u8> {
    Some(match c {
        b'\0' => b'0',
        0x08 => b'b',
        b'\t' => b't',
        b'\r' => b'r',
        b'\n' => b'n',
        b'\\' => b'\\',
        b'\'' => b'\'',
        b'"' => b'"',
        0x1a => b'Z',
        _ => return None,
    })
}

/// The length of `quote_sql_str(src)`: the quotes and one backslash per
/// escaped byte.
pub fn quoted_sql_len(src: &[u8]) -> usize {
    2 + src.len() + src.iter().filter(|&&c| sql_escape(c).is_some()).count()
}

/// `ngx.quote_sql_str`: `src` in single quotes, with NUL, backspace, tab,
/// CR, LF, `\`, `'`, `"` and Ctrl-Z backslash-escaped (MySQL's escapes).
/// Returns the bytes written, or None when `dst` is too short.
pub fn quote_sql_to(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut put = |b: u8| -> Option<()> {
        *dst.get_mut(n)? = b;
        n += 1;
        Some(())
    };
    put(b'\'')?;
    for &c in src {
        match sql_escape(c) {
            Some(e) => {
                put(b'\\')?;
                put(e)?;
            }
            None => put(c)?,
        }
    }
    put(b'\'')?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8], kind: Escape) -> String {
        let mut v = Vec::new();
        escape_into(s, kind, &mut v);
        assert_eq!(v.len(), escaped_len(s, kind));
        let mut buf = vec![0; v.len()];
        assert_eq!(escape_to(s, kind, &mut buf), Some(v.len()));
        assert_eq!(buf, v);
        String::from_utf8(v).unwrap()
    }

    fn unesc(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        unescape_into(s.as_bytes(), &mut v);
        v
    }

    #[test]
    fn escapes_as_nginx() {
        assert_eq!(esc(b"a b&c=d/e?f", Escape::UriComponent), "a%20b%26c%3Dd%2Fe%3Ff");
        assert_eq!(esc(b"-._~!*'()", Escape::UriComponent), "-._~!*'()");
        assert_eq!(esc(b"a b&c=d/e?f#+", Escape::Uri), "a%20b&c=d/e%3Ff%23+");
        assert_eq!(esc(b"a+b", Escape::Args), "a%2Bb");
        assert_eq!(esc(b"\"'%\x7f\xe4", Escape::Html), "%22%27%25%7F%E4");
        let mut v = Vec::new();
        escape_into(b"% \x01\xff~", Escape::Memcached, &mut v);
        assert_eq!(v, b"%25%20%01\xff~");
        assert_eq!(escape_to(b"a b", Escape::Uri, &mut [0; 4]), None);
    }

    #[test]
    fn unescapes_as_nginx() {
        assert_eq!(unesc("b%20r56+7"), b"b r56 7");
        assert_eq!(unesc("%41%4"), b"A%4");
        assert_eq!(unesc("%zz%"), b"%zz%");
        assert_eq!(unesc("%%41"), b"%A");
        assert_eq!(unesc("%3f?x"), b"??x");
        assert_eq!(unesc("%e4%BD%a0"), "你".as_bytes());
        assert_eq!(unesc("%00"), b"\0");
    }

    #[test]
    fn quotes_sql() {
        let q = |s: &[u8]| {
            let mut b = vec![0; quoted_sql_len(s)];
            let n = quote_sql_to(s, &mut b).unwrap();
            assert_eq!(n, b.len());
            b
        };
        assert_eq!(q(b""), b"''");
        assert_eq!(q(b"a'b\"c\\d\r\n\x1ae\0f\t\x08"), b"'a\\'b\\\"c\\\\d\\r\\n\\Ze\\0f\\t\\b'");
        assert_eq!(q("’".as_bytes()), "'’'".as_bytes());
        assert_eq!(quote_sql_to(b"ab", &mut [0; 3]), None);
    }
}
