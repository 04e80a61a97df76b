//! Query-string arguments: `ngx.decode_args`, `ngx.req.get_uri_args` and
//! `ngx.req.get_post_args` all decode with [`Args::decode`].

use super::uri::unescape_to;

/// lua-nginx-module's default limit on decoded arguments (`max_args`).
pub const DEFAULT_MAX_ARGS: i32 = 100;

/// Where one argument lies in [`Args`]' buffer: name start and end, and
/// the value's (None for a bare name).
type Span = (usize, usize, Option<(usize, usize)>);

/// Decoded arguments, in order: names and values %-unescaped into one byte
/// buffer (reused from one decode to the next, so a decode allocates only
/// when it needs more room than the last).
#[derive(Default, Debug)]
pub struct Args {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

impl Args {
    /// Forgets the arguments, keeping the room.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    /// How many arguments were decoded.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no argument was decoded.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The arguments as (name, value) in order; value None for a name
    /// without `=`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.spans.iter().map(|&(ns, ne, v)| (&self.bytes[ns..ne], v.map(|(vs, ve)| &self.bytes[vs..ve])))
    }

    /// Appends `src` unescaped to the buffer; returns its span.
    fn push(&mut self, src: &[u8]) -> (usize, usize) {
        let start = self.bytes.len();
        self.bytes.resize(start + src.len(), 0);
        let n = unescape_to(src, &mut self.bytes[start..]);
        self.bytes.truncate(start + n);
        (start, start + n)
    }

    /// One `name[=value]` part; an empty name (after unescaping) is dropped.
    fn part(&mut self, part: &[u8]) {
        let mark = self.bytes.len();
        let (name, value) = match part.iter().position(|&c| c == b'=') {
            Some(i) => (&part[..i], Some(&part[i + 1..])),
            None => (part, None),
        };
        let (ns, ne) = self.push(name);
        if ns == ne {
            self.bytes.truncate(mark);
            return;
        }
        let value = value.map(|v| self.push(v));
        self.spans.push((ns, ne, value));
    }

    /// Decodes `a=1&b&c=%20` (replacing what was there), as lua-nginx-module:
    /// parts split on `&`, the name ends at the first `=`, `%XX` and `+`
    /// unescaped, parts with an empty name dropped. With `max > 0`, decoding
    /// stops after `max` parts ended by `&` (empty ones count) and returns
    /// true ("truncated"); `max <= 0` decodes everything.
    pub fn decode(&mut self, src: &[u8], max: i32) -> bool {
        self.clear();
        if src.is_empty() {
            return false;
        }
        let mut parts = src.split(|&c| c == b'&');
        let last = parts.next_back().unwrap_or_default();
        let mut count = 0;
        for part in parts {
            self.part(part);
            count += 1;
            if max > 0 && count == max {
                return true;
            }
        }
        if !last.is_empty() {
            self.part(last);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str, max: i32) -> (Vec<(String, Option<String>)>, bool) {
        let mut a = Args::default();
        let t = a.decode(s.as_bytes(), max);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (a.iter().map(|(k, v)| (text(k), v.map(text))).collect(), t)
    }

    fn pairs(v: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        v.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn decodes_as_lua_nginx_module() {
        assert_eq!(decode("a=1&b=2&c", 100), (pairs(&[("a", Some("1")), ("b", Some("2")), ("c", None)]), false));
        assert_eq!(decode("&&a=1&&", 100), (pairs(&[("a", Some("1"))]), false));
        assert_eq!(decode("=x&y=", 100), (pairs(&[("y", Some(""))]), false));
        assert_eq!(decode("a=b=c", 100), (pairs(&[("a", Some("b=c"))]), false));
        assert_eq!(decode("a+b=c+d&%41=%42", 100), (pairs(&[("a b", Some("c d")), ("A", Some("B"))]), false));
        assert_eq!(decode("", 100), (vec![], false));
    }

    #[test]
    fn max_args_truncates() {
        assert_eq!(decode("a=1&b=2&c=3", 2), (pairs(&[("a", Some("1")), ("b", Some("2"))]), true));
        assert!(!decode("a=1&b=2&c=3", 3).1);
        assert_eq!(decode("a=1&b=2&c=3", 0).0.len(), 3);
        assert_eq!(decode("a=1&b=2&c=3", -1).0.len(), 3);
        // A trailing '&' ends a part; empty parts count.
        assert!(decode("a=1&b=2&", 2).1);
        assert_eq!(decode("a=1&&b=2", 2), (pairs(&[("a", Some("1"))]), true));
    }
}
