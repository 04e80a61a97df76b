//! A response's header lines, as spans of one byte buffer.
//!
//! Values are bytes, as in nginx: whatever Lua sets reaches the wire as it
//! is (CR and LF escaped by http::field), never re-encoded.
//!
//! A request sets a few headers and drops them all at its end: kept as one
//! buffer plus spans, reused from a per-thread pool, setting a header
//! copies its bytes and allocates nothing, and ending the request frees
//! nothing (two `String`s per header and a `Vec` cost about a hundred
//! instructions each to allocate and free).

use std::cell::RefCell;

type Span = (u32, u32);
/// A list's storage: the text and the lines' (name, value) spans.
type Storage = (Vec<u8>, Vec<(Span, Span)>);

/// Header lines in the order they were added; names keep their case.
pub struct HeaderList {
    text: Vec<u8>,
    lines: Vec<(Span, Span)>,
    /// Bytes of `text` no line refers to any more (removed or replaced).
    dead: usize,
}

thread_local! {
    /// Storage of dropped lists, for the next ones.
    static POOL: RefCell<Vec<Storage>> = const { RefCell::new(Vec::new()) };
}

/// Lists kept per thread: enough for the requests of a busy spell.
const POOL_MAX: usize = 64;
/// A list whose text grew beyond this is not kept.
const KEEP_MAX: usize = 16 * 1024;

impl HeaderList {
    /// An empty list (its storage from the pool when there is some).
    pub fn new() -> Self {
        let (text, lines) = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        HeaderList { text, lines, dead: 0 }
    }

    /// An empty list that is always there (for heads with no extra lines).
    pub fn none() -> &'static HeaderList {
        static NONE: HeaderList = HeaderList { text: Vec::new(), lines: Vec::new(), dead: 0 };
        &NONE
    }

    /// Bytes of the names and values (a bound: removed lines may count).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
        self.dead = 0;
    }

    fn at(&self, s: Span) -> &[u8] {
        &self.text[s.0 as usize..s.1 as usize]
    }

    /// Appends `s` to the text: its span.
    fn put(&mut self, s: &[u8]) -> Span {
        let a = self.text.len() as u32;
        self.text.extend_from_slice(s);
        (a, self.text.len() as u32)
    }

    /// The lines (name, value), in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator + '_ {
        self.lines.iter().map(|&(n, v)| (self.at(n), self.at(v)))
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Adds a line after the others.
    pub fn push(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let n = self.put(name.as_ref());
        let v = self.put(value.as_ref());
        self.lines.push((n, v));
    }

    /// Adds the lines `lines`, (name, value) spans of `text` (a head as
    /// httparse found them), copying `text` once.
    pub fn extend_spans(&mut self, text: &[u8], lines: &[(Span, Span)]) {
        let base = self.text.len() as u32;
        self.text.extend_from_slice(text);
        // (What `remove` counts dead for a line: from its name to its value's end.)
        let used: u32 = lines.iter().map(|&(n, v)| v.1 - n.0).sum();
        self.dead += text.len() - used as usize;
        self.lines.extend(lines.iter().map(|&((a, b), (c, d))| ((base + a, base + b), (base + c, base + d))));
    }

    /// Removes every line of `name` (ASCII case-insensitive).
    pub fn remove(&mut self, name: impl AsRef<[u8]>) {
        let name = name.as_ref();
        let text = &self.text;
        let mut dead = 0;
        self.lines.retain(|&(n, v)| {
            let keep = !text[n.0 as usize..n.1 as usize].eq_ignore_ascii_case(name);
            if !keep {
                dead += (v.1 - n.0) as usize;
            }
            keep
        });
        self.dead += dead;
        self.compact_if_sparse();
    }

    /// Replaces every line of `name` by one with `value`, at the end.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.remove(name.as_ref());
        self.push(name, value);
    }

    /// The index of the first line for which `f(name, value)` holds.
    pub fn position(&self, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Option<usize> {
        self.iter().position(|(n, v)| f(n, v))
    }

    /// The value of line `i` (a panic if there is none).
    pub fn value(&self, i: usize) -> &[u8] {
        self.at(self.lines[i].1)
    }

    /// Gives line `i` a new value.
    pub fn set_value(&mut self, i: usize, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let old = self.lines[i].1;
        self.dead += (old.1 - old.0) as usize;
        self.lines[i].1 = self.put(value);
        self.compact_if_sparse();
    }

    /// Adds the lines of `other` after these.
    pub fn extend(&mut self, other: &HeaderList) {
        for (n, v) in other.iter() {
            self.push(n, v);
        }
    }

    /// A handler that sets one header in a loop must not grow the text
    /// without bound: rewrite it once most of it is dead.
    fn compact_if_sparse(&mut self) {
        if self.dead <= 4096 || self.dead <= self.text.len() / 2 {
            return;
        }
        let mut text = Vec::with_capacity(self.text.len() - self.dead);
        for (n, v) in &mut self.lines {
            let a = text.len() as u32;
            text.extend_from_slice(&self.text[n.0 as usize..n.1 as usize]);
            let b = text.len() as u32;
            text.extend_from_slice(&self.text[v.0 as usize..v.1 as usize]);
            *n = (a, b);
            *v = (b, text.len() as u32);
        }
        self.text = text;
        self.dead = 0;
    }
}

impl Default for HeaderList {
    fn default() -> Self {
        HeaderList::new()
    }
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        if self.text.capacity() > KEEP_MAX || (self.text.capacity() == 0 && self.lines.capacity() == 0) {
            return;
        }
        let mut text = std::mem::take(&mut self.text);
        let mut lines = std::mem::take(&mut self.lines);
        text.clear();
        lines.clear();
        // A thread being torn down has no pool left: the storage is freed.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_MAX {
                p.push((text, lines));
            }
        });
    }
}

impl std::fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v)))).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut h = HeaderList::new();
        for (n, v) in iter {
            h.push(n, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(h: &HeaderList) -> Vec<(String, String)> {
        h.iter().map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())).collect()
    }

    #[test]
    fn push_set_remove_keep_order() {
        let mut h = HeaderList::new();
        h.push("X-A", "1");
        h.push("Set-Cookie", "a=1");
        h.push("Set-Cookie", "b=2");
        h.set("x-a", "2");
        assert_eq!(lines(&h), [("Set-Cookie".into(), "a=1".into()), ("Set-Cookie".into(), "b=2".into()), ("x-a".into(), "2".into())]);
        assert_eq!(h.get("SET-COOKIE"), Some(&b"a=1"[..]));
        h.remove("set-cookie");
        assert_eq!(lines(&h), [("x-a".to_string(), "2".to_string())]);
        let i = h.position(|n, _| n == b"x-a").unwrap();
        h.set_value(i, "3");
        assert_eq!(h.value(0), b"3");
        // Bytes stay bytes.
        h.push("X-Bin", b"\xff\x00");
        assert_eq!(h.get("x-bin"), Some(&b"\xff\x00"[..]));
    }

    #[test]
    fn setting_in_a_loop_stays_small() {
        let mut h = HeaderList::new();
        h.push("Keep", "me");
        for i in 0..100_000 {
            h.set("X-Loop", format!("value {i}"));
        }
        assert!(h.text.len() < 16 * 1024, "{}", h.text.len());
        assert_eq!(lines(&h), [("Keep".into(), "me".into()), ("X-Loop".into(), "value 99999".into())]);
    }

    #[test]
    fn spans_of_a_head_become_lines() {
        let head = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nSet-Cookie: b=2\r\n\r\n";
        // The (name, value) spans of line "NAME: VALUE".
        let line = |name: &str, value: &str| {
            let l = format!("{name}: {value}");
            let i = head.windows(l.len()).position(|w| w == l.as_bytes()).unwrap() as u32;
            let v = i + name.len() as u32 + 2;
            ((i, i + name.len() as u32), (v, v + value.len() as u32))
        };
        let mut h = HeaderList::new();
        h.push("First", "0");
        h.extend_spans(head, &[line("X-A", "1"), line("Set-Cookie", "b=2")]);
        assert_eq!(lines(&h), [("First".into(), "0".into()), ("X-A".into(), "1".into()), ("Set-Cookie".into(), "b=2".into())]);
        // Removing and compacting keep the others right.
        h.remove("x-a");
        h.dead = 5000;
        h.text.resize(12_000, b'-');
        h.compact_if_sparse();
        assert_eq!(lines(&h), [("First".into(), "0".into()), ("Set-Cookie".into(), "b=2".into())]);
    }

    #[test]
    fn storage_comes_back_from_the_pool() {
        let mut h = HeaderList::new();
        h.push("X", "y");
        let p = h.text.as_ptr();
        drop(h);
        let h = HeaderList::new();
        assert!(h.is_empty());
        assert_eq!(h.text.as_ptr(), p);
    }
}
