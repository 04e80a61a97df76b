//! Complex values: strings with `$var`, `${var}` and regex captures `$1`..`$9`,
//! compiled once at config time and rendered per request.
//!
//! The syntax follows nginx's `ngx_http_script_compile`:
//! - `$name` where name is `[A-Za-z0-9_]+` (the longest such run);
//! - `${name}` so that a variable can be followed by name characters (`${a}b`);
//! - `$1`..`$9`: a single digit after `$` is a regex capture (`$12` is capture 1
//!   then a literal `2`). `$0` (the whole match) is accepted too, an extension;
//!   `${1}` is also read as a capture.
//! - there is no escape for `$`: a `$` not followed by a valid name is an error,
//!   as in nginx.
//!
//! Variable names are lowercased at compile time (nginx variables are
//! case-insensitive).

use std::fmt;
use std::ops::Range;

/// Where a template finds variable values (the request, in the server).
pub trait Vars {
    /// The value of `$name` (name without `$`, lowercase as written), or
    /// None when the variable is unknown or not set.
    fn var(&mut self, name: &str) -> Option<String>;
}

/// How variable values are escaped in access-log lines (`log_format ... escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// `"`, `\`, bytes < 0x20 and >= 0x7f become `\xHH`; unset variables render as `-`.
    #[default]
    Default,
    /// JSON string content (`\"`, `\\`, `\n`, `\u001f`...); unset variables render as "".
    Json,
    /// Values as they are; unset variables render as "".
    None,
}

impl Escape {
    /// Parses the `escape=` parameter value of `log_format`.
    pub fn parse(s: &str) -> Option<Escape> {
        match s {
            "default" => Some(Escape::Default),
            "json" => Some(Escape::Json),
            "none" => Some(Escape::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Part {
    /// A byte range of the source text (no escapes exist, so literals are verbatim).
    Lit(Range<usize>),
    /// A variable name, lowercased.
    Var(Box<str>),
    /// A regex capture index.
    Cap(u8),
}

/// A compiled complex value.
#[derive(Debug, Clone)]
pub struct Template {
    src: Box<str>,
    parts: Box<[Part]>,
    /// True when there are no variables or captures: render is a copy of `src`.
    literal: bool,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    /// Compile `s`; errors say what is wrong (e.g. `invalid variable name`).
    ///
    /// Error texts are nginx's: `invalid variable name in "<s>"` and
    /// `the closing bracket in "<name>" variable is missing`.
    pub fn parse(s: &str) -> Result<Template, String> {
        let b = s.as_bytes();
        let invalid = || format!("invalid variable name in \"{s}\"");
        let mut parts = Vec::new();
        let mut lit_start = 0;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            if lit_start < i {
                parts.push(Part::Lit(lit_start..i));
            }
            i += 1;
            let Some(&c) = b.get(i) else { return Err(invalid()) };
            if c.is_ascii_digit() {
                parts.push(Part::Cap(c - b'0'));
                i += 1;
                lit_start = i;
                continue;
            }
            let bracket = c == b'{';
            if bracket {
                i += 1;
            }
            let start = i;
            while i < b.len() && is_name_byte(b[i]) {
                i += 1;
            }
            let name = &s[start..i];
            if bracket {
                if b.get(i) != Some(&b'}') {
                    return Err(format!("the closing bracket in \"{name}\" variable is missing"));
                }
                i += 1;
            }
            if name.is_empty() {
                return Err(invalid());
            }
            match name.as_bytes() {
                [d] if bracket && d.is_ascii_digit() => parts.push(Part::Cap(d - b'0')),
                _ => parts.push(Part::Var(name.to_ascii_lowercase().into_boxed_str())),
            }
            lit_start = i;
        }
        if lit_start < b.len() {
            parts.push(Part::Lit(lit_start..b.len()));
        }
        let literal = parts.iter().all(|p| matches!(p, Part::Lit(_)));
        Ok(Template { src: s.into(), parts: parts.into_boxed_slice(), literal })
    }

    /// A template without variables.
    pub fn literal(s: &str) -> Template {
        let parts: Box<[Part]> =
            if s.is_empty() { Box::new([]) } else { Box::new([Part::Lit(0..s.len())]) };
        Template { src: s.into(), parts, literal: true }
    }

    /// The text, when the template has no variables (fast path).
    pub fn as_literal(&self) -> Option<&str> {
        self.literal.then_some(&*self.src)
    }

    /// The source text as written in the configuration.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The variable names referenced (lowercased, in order, repeats included),
    /// so the caller can reject unknown variables at config time.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(n) => Some(&**n),
            _ => None,
        })
    }

    /// The highest regex capture index referenced, if any (to check it
    /// against the capture count of the regex it goes with).
    pub fn max_capture(&self) -> Option<usize> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Cap(n) => Some(*n as usize),
                _ => None,
            })
            .max()
    }

    /// Render with variables and regex captures (caps[0] = whole match;
    /// a missing capture renders as "").
    pub fn render(&self, vars: &mut dyn Vars, caps: &[&str]) -> String {
        if self.literal {
            return self.src.to_string();
        }
        let mut out = String::new();
        self.render_into(vars, caps, &mut out);
        out
    }

    /// Like [`render`](Self::render), appending to `out`. Unknown or unset
    /// variables render as "".
    pub fn render_into(&self, vars: &mut dyn Vars, caps: &[&str], out: &mut String) {
        if self.literal {
            out.push_str(&self.src);
            return;
        }
        for p in self.parts.iter() {
            match p {
                Part::Lit(r) => out.push_str(&self.src[r.clone()]),
                Part::Var(name) => {
                    if let Some(v) = vars.var(name) {
                        out.push_str(&v);
                    }
                }
                Part::Cap(n) => out.push_str(caps.get(*n as usize).copied().unwrap_or("")),
            }
        }
    }

    /// Render for the access log: literal text is copied as is, variable values
    /// are escaped per `escape`, and (with [`Escape::Default`] only) a variable
    /// that is None renders as `-`, as nginx's `log_format` does.
    pub fn render_escaped(
        &self,
        vars: &mut dyn Vars,
        caps: &[&str],
        escape: Escape,
        out: &mut Vec<u8>,
    ) {
        if self.literal {
            out.extend_from_slice(self.src.as_bytes());
            return;
        }
        for p in self.parts.iter() {
            match p {
                Part::Lit(r) => out.extend_from_slice(&self.src.as_bytes()[r.clone()]),
                Part::Var(name) => match vars.var(name) {
                    Some(v) => escape_into(escape, v.as_bytes(), out),
                    None if escape == Escape::Default => out.push(b'-'),
                    None => {}
                },
                Part::Cap(n) => {
                    let v = caps.get(*n as usize).copied().unwrap_or("");
                    escape_into(escape, v.as_bytes(), out);
                }
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

/// Appends `v` to `out` escaped as nginx's access log does for `escape`.
pub fn escape_into(escape: Escape, v: &[u8], out: &mut Vec<u8>) {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    match escape {
        Escape::None => out.extend_from_slice(v),
        Escape::Default => {
            // ngx_http_log_escape: copy runs of safe bytes in one go.
            let mut start = 0;
            for (i, &c) in v.iter().enumerate() {
                if !(0x20..0x7f).contains(&c) || c == b'"' || c == b'\\' {
                    out.extend_from_slice(&v[start..i]);
                    out.extend_from_slice(&[
                        b'\\',
                        b'x',
                        HEX_UPPER[(c >> 4) as usize],
                        HEX_UPPER[(c & 0xf) as usize],
                    ]);
                    start = i + 1;
                }
            }
            out.extend_from_slice(&v[start..]);
        }
        Escape::Json => {
            // ngx_escape_json: only `"`, `\` and control bytes; UTF-8 and 0x7f pass.
            let mut start = 0;
            for (i, &c) in v.iter().enumerate() {
                let short = match c {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'\n' => b'n',
                    b'\r' => b'r',
                    b'\t' => b't',
                    0x08 => b'b',
                    0x0c => b'f',
                    0..=0x1f => 0,
                    _ => continue,
                };
                out.extend_from_slice(&v[start..i]);
                if short != 0 {
                    out.extend_from_slice(&[b'\\', short]);
                } else {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX_LOWER[(c >> 4) as usize]);
                    out.push(HEX_LOWER[(c & 0xf) as usize]);
                }
                start = i + 1;
            }
            out.extend_from_slice(&v[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>, Vec<String>);

    impl Vars for Map {
        fn var(&mut self, name: &str) -> Option<String> {
            self.1.push(name.to_string());
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn vars(pairs: &[(&'static str, &'static str)]) -> Map {
        Map(pairs.iter().copied().collect(), Vec::new())
    }

    fn render(t: &str, pairs: &[(&'static str, &'static str)], caps: &[&str]) -> String {
        Template::parse(t).unwrap().render(&mut vars(pairs), caps)
    }

    #[test]
    fn literals() {
        let t = Template::parse("/var/www/html").unwrap();
        assert_eq!(t.as_literal(), Some("/var/www/html"));
        assert_eq!(t.render(&mut vars(&[]), &[]), "/var/www/html");
        assert_eq!(Template::parse("").unwrap().as_literal(), Some(""));
        let l = Template::literal("a$b");
        assert_eq!(l.as_literal(), Some("a$b"));
        assert_eq!(l.render(&mut vars(&[("b", "X")]), &[]), "a$b");
        assert_eq!(Template::literal("").render(&mut vars(&[]), &[]), "");
        assert!(Template::parse("$a").unwrap().as_literal().is_none());
        assert!(Template::parse("$1").unwrap().as_literal().is_none());
    }

    #[test]
    fn variables_and_braces() {
        let p = [("host", "example.com"), ("uri", "/x"), ("a", "A")];
        assert_eq!(render("http://$host$uri?q", &p, &[]), "http://example.com/x?q");
        assert_eq!(render("${a}b", &p, &[]), "Ab");
        assert_eq!(render("$ab", &p, &[]), "");
        assert_eq!(render("${host}:${uri}", &p, &[]), "example.com:/x");
        assert_eq!(render("$a-$a.", &p, &[]), "A-A.");
        // Names are case-insensitive: lowercased at compile time.
        assert_eq!(render("$HOST", &p, &[]), "example.com");
        // Unknown variables render as "".
        assert_eq!(render("[$nope]", &p, &[]), "[]");
        // render_into appends.
        let mut s = String::from(">");
        Template::parse("$a").unwrap().render_into(&mut vars(&p), &[], &mut s);
        assert_eq!(s, ">A");
        let mut s = String::from(">");
        Template::parse("lit").unwrap().render_into(&mut vars(&p), &[], &mut s);
        assert_eq!(s, ">lit");
    }

    #[test]
    fn variables_listed() {
        let t = Template::parse("$a ${B} $1 $a_b $a").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["a", "b", "a_b", "a"]);
        assert_eq!(t.max_capture(), Some(1));
        assert_eq!(Template::parse("x").unwrap().variables().count(), 0);
        assert_eq!(Template::parse("$3$9").unwrap().max_capture(), Some(9));
        assert_eq!(Template::parse("$a").unwrap().max_capture(), None);
        assert_eq!(t.source(), "$a ${B} $1 $a_b $a");
        assert_eq!(t.to_string(), "$a ${B} $1 $a_b $a");
    }

    #[test]
    fn captures() {
        let caps = ["/img/a.png", "img", "a.png"];
        assert_eq!(render("/static/$1/$2", &[], &caps), "/static/img/a.png");
        assert_eq!(render("$0", &[], &caps), "/img/a.png");
        // Only one digit is a capture: `$12` is `$1` then "2".
        assert_eq!(render("$12", &[], &caps), "img2");
        // Missing captures render as "".
        assert_eq!(render("[$5]", &[], &caps), "[]");
        assert_eq!(render("[$1]", &[], &[]), "[]");
        assert_eq!(render("${2}x", &[], &caps), "a.pngx");
    }

    #[test]
    fn errors() {
        let e = Template::parse("abc$").unwrap_err();
        assert_eq!(e, "invalid variable name in \"abc$\"");
        assert!(Template::parse("$ x").unwrap_err().starts_with("invalid variable name"));
        assert!(Template::parse("$-").unwrap_err().starts_with("invalid variable name"));
        assert!(Template::parse("a$/b").unwrap_err().starts_with("invalid variable name"));
        assert!(Template::parse("${}").unwrap_err().starts_with("invalid variable name"));
        assert_eq!(
            Template::parse("${host").unwrap_err(),
            "the closing bracket in \"host\" variable is missing"
        );
        assert_eq!(
            Template::parse("${ho st}").unwrap_err(),
            "the closing bracket in \"ho\" variable is missing"
        );
        assert!(Template::parse("${").unwrap_err().contains("closing bracket"));
    }

    #[test]
    fn non_ascii_literals() {
        let p = [("v", "ü")];
        assert_eq!(render("é$v€", &p, &[]), "éü€");
    }

    fn esc(e: Escape, v: &str) -> String {
        let mut out = Vec::new();
        escape_into(e, v.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escape_default() {
        assert_eq!(esc(Escape::Default, "plain /text?a=1"), "plain /text?a=1");
        assert_eq!(esc(Escape::Default, "a\"b\\c"), "a\\x22b\\x5Cc");
        assert_eq!(esc(Escape::Default, "\n\t\x7f\x1f"), "\\x0A\\x09\\x7F\\x1F");
        assert_eq!(esc(Escape::Default, "é"), "\\xC3\\xA9");
        assert_eq!(esc(Escape::Default, ""), "");
    }

    #[test]
    fn escape_json() {
        assert_eq!(esc(Escape::Json, "plain"), "plain");
        assert_eq!(esc(Escape::Json, "a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(esc(Escape::Json, "\n\r\t\x08\x0c"), "\\n\\r\\t\\b\\f");
        assert_eq!(esc(Escape::Json, "\x01\x1f\x7f"), "\\u0001\\u001f\x7f");
        assert_eq!(esc(Escape::Json, "é"), "é");
    }

    #[test]
    fn escape_none_and_parse() {
        assert_eq!(esc(Escape::None, "a\"\n"), "a\"\n");
        assert_eq!(Escape::parse("json"), Some(Escape::Json));
        assert_eq!(Escape::parse("default"), Some(Escape::Default));
        assert_eq!(Escape::parse("none"), Some(Escape::None));
        assert_eq!(Escape::parse("xml"), None);
    }

    fn log(t: &str, e: Escape, pairs: &[(&'static str, &'static str)], caps: &[&str]) -> String {
        let mut out = b"#".to_vec();
        Template::parse(t).unwrap().render_escaped(&mut vars(pairs), caps, e, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn render_escaped_log() {
        let p = [("request", "GET /\"x\" HTTP/1.1"), ("empty", ""), ("status", "200")];
        let f = "\"$request\" $status \"$http_referer\" [$empty]";
        assert_eq!(
            log(f, Escape::Default, &p, &[]),
            "#\"GET /\\x22x\\x22 HTTP/1.1\" 200 \"-\" []"
        );
        assert_eq!(log(f, Escape::Json, &p, &[]), "#\"GET /\\\"x\\\" HTTP/1.1\" 200 \"\" []");
        assert_eq!(log(f, Escape::None, &p, &[]), "#\"GET /\"x\" HTTP/1.1\" 200 \"\" []");
        // Literal text is never escaped; captures are escaped like values.
        assert_eq!(log("\"lit\"\n", Escape::Default, &p, &[]), "#\"lit\"\n");
        assert_eq!(log("a\"$1\"", Escape::Default, &[], &["", "q\""]), "#a\"q\\x22\"");
        assert_eq!(log("[$2]", Escape::Default, &[], &[]), "#[]");
    }

    #[test]
    fn send_sync_clone() {
        fn check<T: Clone + std::fmt::Debug + Send + Sync>() {}
        check::<Template>();
        let t = Template::parse("a$b").unwrap();
        let u = t.clone();
        assert_eq!(u.render(&mut vars(&[("b", "B")]), &[]), "aB");
    }
}
