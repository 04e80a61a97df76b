//! The nginx.conf lexer and parser: text -> tree of `Directive`s.
//!
//! The lexer follows nginx's `ngx_conf_read_token` rule for rule, so that
//! configs split into the same arguments and fail with the same messages:
//! - an unquoted word ends at whitespace, `;` or `{` (not at `}` or `"`);
//!   `${` inside a word does not open a block;
//! - a quoted word ends at its closing quote, which must be followed by
//!   whitespace, `;`, `{` or `)` (so `if ($a = "x")` lexes as `($a`, `=`, `x`, `)`);
//! - `\"`, `\'`, `\\`, `\t`, `\r`, `\n` are unescaped in every word; any other
//!   backslash is kept with the character after it (regexes keep `\d`);
//! - `#` starts a comment only where a new word could start.
//!
//! A directive's line is the line of its terminating `;` or `{`, which is
//! where nginx reports errors about it. `*_by_lua_block` directives are read
//! like lua-nginx-module does: the raw Lua text up to the matching `}` becomes
//! their last argument, with braces inside Lua strings and comments ignored.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One directive as written: `name arg...;` or `name arg... { block }`.
/// `*_by_lua_block { lua }` directives carry the Lua source as their last
/// argument (after any arguments written before the `{`, as in
/// `set_by_lua_block $v { ... }`) and no block.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    /// Arguments with quotes removed and escapes processed.
    pub args: Vec<String>,
    /// The file it was read from, as shown in messages.
    pub file: std::sync::Arc<str>,
    /// The line of the directive's `;` or `{` (0 for `-g` directives).
    pub line: usize,
    /// The line of a block's closing `}` (where nginx reports errors found
    /// once the block is read); `line` for a directive without a block.
    pub end_line: usize,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// "file:line", as nginx names a place in its config ("command line"
    /// alone for `-g` directives, which have no line).
    pub fn origin(&self) -> String {
        if self.line == 0 {
            self.file.to_string()
        } else {
            format!("{}:{}", self.file, self.line)
        }
    }
}

/// A configuration error; Display reads like nginx: `unknown directive "foo" in /p/conf/nginx.conf:12`.
#[derive(Debug, Clone)]
pub struct ConfError {
    pub msg: String,
    /// "file:line", when the error has a place.
    pub origin: Option<String>,
}

impl ConfError {
    pub fn new(msg: impl Into<String>, origin: Option<String>) -> Self {
        ConfError {
            msg: msg.into(),
            origin,
        }
    }
    pub fn at(msg: impl Into<String>, d: &Directive) -> Self {
        ConfError {
            msg: msg.into(),
            origin: Some(d.origin()),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{} in {}", self.msg, o),
            None => write!(f, "{}", self.msg),
        }
    }
}

impl std::error::Error for ConfError {}

/// The name `parse_str` takes for `-g` text: nginx's "parameter" mode (no
/// blocks, no line numbers).
pub const COMMAND_LINE: &str = "command line";

/// How deep includes may nest before we call it a loop.
const MAX_INCLUDE_DEPTH: usize = 32;

/// A config file as it was read (what `-T` prints).
pub struct ConfFile {
    /// Its absolute path, as messages name it.
    pub name: Arc<str>,
    /// Its bytes as read.
    pub text: Vec<u8>,
}

/// Parse a config file, expanding `include` (globs, relative to the
/// directory of `path`) in place.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ConfError> {
    Ok(parse_file_read(path)?.0)
}

/// [`parse_file`], also returning every file read: `path` first, then each
/// included file where its `include` was met (a file included twice is
/// listed twice).
pub fn parse_file_read(path: &Path) -> Result<(Vec<Directive>, Vec<ConfFile>), ConfError> {
    let path = absolute(path);
    let conf_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let text = read_conf(&path, None)?;
    let name: Arc<str> = path.to_string_lossy().into();
    let (tree, included) = {
        let mut p = Parser::new(&text, name.clone(), &conf_dir, false, 0);
        (p.parse_block(false)?, p.read)
    };
    let mut files = vec![ConfFile { name, text }];
    files.extend(included);
    Ok((tree, files))
}

/// Parse config text (used for `-g`); `file` names it in messages. With
/// `file` = [`COMMAND_LINE`] the text is read as nginx reads `-g`: block
/// directives are refused and errors carry no line number.
pub fn parse_str(text: &str, file: &str, conf_dir: &Path) -> Result<Vec<Directive>, ConfError> {
    let param = file == COMMAND_LINE;
    Parser::new(text.as_bytes(), file.into(), conf_dir, param, 0).parse_top()
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// `(2: No such file or directory)`, nginx's way of showing an errno.
pub(crate) fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            // std's Display is "<strerror> (os error N)"; keep the strerror part.
            let s = e.to_string();
            let desc = s
                .rsplit_once(" (os error")
                .map(|(d, _)| d.to_string())
                .unwrap_or(s);
            format!("({code}: {desc})")
        }
        None => format!("({e})"),
    }
}

fn read_conf(path: &Path, origin: Option<String>) -> Result<Vec<u8>, ConfError> {
    std::fs::read(path).map_err(|e| {
        ConfError::new(
            format!("open() \"{}\" failed {}", path.display(), errno_text(&e)),
            origin,
        )
    })
}

/// What one call of the lexer found, as in `ngx_conf_read_token`.
enum Token {
    /// Words terminated by `;`.
    Semicolon(Vec<String>),
    /// Words terminated by `{`.
    BlockStart(Vec<String>),
    /// A `}` with no words before it.
    BlockEnd,
    /// End of input with nothing pending.
    Eof,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    file: Arc<str>,
    conf_dir: &'a Path,
    /// `-g` text: no blocks, no line numbers.
    param: bool,
    depth: usize,
    /// The files its includes read, in order.
    read: Vec<ConfFile>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a [u8], file: Arc<str>, conf_dir: &'a Path, param: bool, depth: usize) -> Self {
        Parser {
            src,
            pos: 0,
            line: 1,
            file,
            conf_dir,
            param,
            depth,
            read: Vec::new(),
        }
    }

    fn origin(&self) -> String {
        if self.param {
            self.file.to_string()
        } else {
            format!("{}:{}", self.file, self.line)
        }
    }

    fn err(&self, msg: impl Into<String>) -> ConfError {
        ConfError::new(msg, Some(self.origin()))
    }

    fn parse_top(mut self) -> Result<Vec<Directive>, ConfError> {
        self.parse_block(false)
    }

    /// Directives up to the end of input (`in_block` false) or up to the
    /// `}` closing the current block.
    fn parse_block(&mut self, in_block: bool) -> Result<Vec<Directive>, ConfError> {
        let mut out = Vec::new();
        loop {
            match self.read_token()? {
                Token::Eof => {
                    if in_block {
                        return Err(self.err("unexpected end of file, expecting \"}\""));
                    }
                    return Ok(out);
                }
                Token::BlockEnd => {
                    if !in_block {
                        return Err(self.err("unexpected \"}\""));
                    }
                    return Ok(out);
                }
                Token::Semicolon(mut args) => {
                    let name = args.remove(0);
                    if name == "include" {
                        self.include(&args, &mut out)?;
                        continue;
                    }
                    if name.ends_with("_by_lua_block") {
                        return Err(self.err(format!("directive \"{name}\" has no opening \"{{\"")));
                    }
                    out.push(self.directive(name, args, None));
                }
                Token::BlockStart(mut args) => {
                    if self.param {
                        return Err(self.err("block directives are not supported in -g option"));
                    }
                    let name = args.remove(0);
                    if name == "include" {
                        return Err(self.err("directive \"include\" is not terminated by \";\""));
                    }
                    if name.ends_with("_by_lua_block") {
                        let line = self.line;
                        let lua = self.read_lua_block()?;
                        args.push(lua);
                        out.push(Directive {
                            name,
                            args,
                            file: self.file.clone(),
                            line,
                            end_line: self.line,
                            block: None,
                        });
                    } else {
                        let line = self.line;
                        let block = self.parse_block(true)?;
                        out.push(Directive {
                            name,
                            args,
                            file: self.file.clone(),
                            line,
                            end_line: self.line,
                            block: Some(block),
                        });
                    }
                }
            }
        }
    }

    fn directive(
        &self,
        name: String,
        args: Vec<String>,
        block: Option<Vec<Directive>>,
    ) -> Directive {
        let line = if self.param { 0 } else { self.line };
        Directive {
            name,
            args,
            file: self.file.clone(),
            line,
            end_line: line,
            block,
        }
    }

    /// `include PATTERN;`: parse each matching file and splice its
    /// directives in place (nginx's `ngx_conf_include`).
    fn include(&mut self, args: &[String], out: &mut Vec<Directive>) -> Result<(), ConfError> {
        if args.len() != 1 {
            return Err(self.err("invalid number of arguments in \"include\" directive"));
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.err(format!("too deeply nested \"include\" of \"{}\"", args[0])));
        }
        let pattern = self.conf_dir.join(&args[0]);
        let pattern_s = pattern.to_string_lossy().into_owned();
        let files: Vec<PathBuf> = if pattern_s.contains(['*', '?', '[']) {
            // glob(3) semantics, as nginx: `*` does not match a leading dot,
            // and a pattern matching nothing is not an error.
            let opts = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            let paths = glob::glob_with(&pattern_s, opts)
                .map_err(|e| self.err(format!("glob() \"{pattern_s}\" failed ({e})")))?;
            let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            v.sort();
            v
        } else {
            vec![pattern]
        };
        for f in files {
            let text = read_conf(&f, Some(self.origin()))?;
            let name: Arc<str> = f.to_string_lossy().into();
            let (tree, included) = {
                let mut p = Parser::new(&text, name.clone(), self.conf_dir, false, self.depth + 1);
                (p.parse_block(false)?, p.read)
            };
            out.extend(tree);
            self.read.push(ConfFile { name, text });
            self.read.extend(included);
        }
        Ok(())
    }

    /// One statement's words, per `ngx_conf_read_token`.
    fn read_token(&mut self) -> Result<Token, ConfError> {
        let mut args: Vec<String> = Vec::new();
        let mut last_space = true;
        let mut need_space = false;
        let mut sharp_comment = false;
        let mut quoted = false;
        let mut s_quoted = false;
        let mut d_quoted = false;
        let mut variable = false;
        let mut start = self.pos;

        loop {
            if self.pos >= self.src.len() {
                if !args.is_empty() || !last_space {
                    if self.param {
                        return Err(self.err("unexpected end of parameter, expecting \";\""));
                    }
                    return Err(self.err("unexpected end of file, expecting \";\" or \"}\""));
                }
                return Ok(Token::Eof);
            }
            let ch = self.src[self.pos];
            self.pos += 1;

            if ch == b'\n' {
                self.line += 1;
                if sharp_comment {
                    sharp_comment = false;
                }
            }
            if sharp_comment {
                continue;
            }
            if quoted {
                quoted = false;
                continue;
            }
            if need_space {
                if is_space(ch) {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                match ch {
                    b';' => return Ok(Token::Semicolon(args)),
                    b'{' => return Ok(Token::BlockStart(args)),
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => return Err(self.err(format!("unexpected \"{}\"", ch as char))),
                }
            }

            if last_space {
                start = self.pos - 1;
                if is_space(ch) {
                    continue;
                }
                match ch {
                    b';' | b'{' => {
                        if args.is_empty() {
                            return Err(self.err(format!("unexpected \"{}\"", ch as char)));
                        }
                        return Ok(if ch == b'{' {
                            Token::BlockStart(args)
                        } else {
                            Token::Semicolon(args)
                        });
                    }
                    b'}' => {
                        if !args.is_empty() {
                            return Err(self.err("unexpected \"}\""));
                        }
                        return Ok(Token::BlockEnd);
                    }
                    b'#' => {
                        sharp_comment = true;
                        continue;
                    }
                    b'\\' => {
                        quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'"' => {
                        start += 1;
                        d_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'\'' => {
                        start += 1;
                        s_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'$' => {
                        variable = true;
                        last_space = false;
                        continue;
                    }
                    _ => {
                        last_space = false;
                        continue;
                    }
                }
            }

            // Inside a word.
            if ch == b'{' && variable {
                continue;
            }
            variable = false;
            if ch == b'\\' {
                quoted = true;
                continue;
            }
            if ch == b'$' {
                variable = true;
                continue;
            }
            let found = if d_quoted {
                if ch == b'"' {
                    d_quoted = false;
                    need_space = true;
                    true
                } else {
                    false
                }
            } else if s_quoted {
                if ch == b'\'' {
                    s_quoted = false;
                    need_space = true;
                    true
                } else {
                    false
                }
            } else if is_space(ch) || ch == b';' || ch == b'{' {
                last_space = true;
                true
            } else {
                false
            };
            if found {
                args.push(unescape(&self.src[start..self.pos - 1]));
                if ch == b';' {
                    return Ok(Token::Semicolon(args));
                }
                if ch == b'{' {
                    return Ok(Token::BlockStart(args));
                }
            }
        }
    }

    /// The raw Lua text after a `*_by_lua_block {`, up to its matching `}`
    /// (consumed, not included). Braces inside Lua strings, long brackets
    /// and comments do not count.
    fn read_lua_block(&mut self) -> Result<String, ConfError> {
        let start = self.pos;
        let start_line = self.line;
        let src = self.src;
        let mut level = 1usize;
        while self.pos < src.len() {
            let ch = src[self.pos];
            match ch {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'{' => {
                    level += 1;
                    self.pos += 1;
                }
                b'}' => {
                    level -= 1;
                    self.pos += 1;
                    if level == 0 {
                        return Ok(String::from_utf8_lossy(&src[start..self.pos - 1]).into_owned());
                    }
                }
                b'-' if src.get(self.pos + 1) == Some(&b'-') => {
                    self.pos += 2;
                    if let Some(eqs) = long_bracket_open(&src[self.pos..]) {
                        self.skip_long_bracket(eqs)?;
                    } else {
                        while self.pos < src.len() && src[self.pos] != b'\n' {
                            self.pos += 1;
                        }
                    }
                }
                b'[' => {
                    if let Some(eqs) = long_bracket_open(&src[self.pos..]) {
                        self.skip_long_bracket(eqs)?;
                    } else {
                        self.pos += 1;
                    }
                }
                b'"' | b'\'' => {
                    self.pos += 1;
                    // A short string ends at its quote; an unescaped newline
                    // ends it too (a Lua syntax error, reported by Lua later),
                    // so a stray quote cannot swallow the rest of the file.
                    while self.pos < src.len() {
                        let c = src[self.pos];
                        if c == b'\\' && self.pos + 1 < src.len() {
                            if src[self.pos + 1] == b'\n' {
                                self.line += 1;
                            }
                            self.pos += 2;
                            continue;
                        }
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                        if c == ch {
                            break;
                        }
                    }
                }
                _ => self.pos += 1,
            }
        }
        self.line = start_line;
        Err(self.err("unexpected end of file, expecting terminating characters for lua code block"))
    }

    /// Skip a long bracket `[==[ ... ]==]` starting at `self.pos` with `eqs`
    /// equal signs.
    fn skip_long_bracket(&mut self, eqs: usize) -> Result<(), ConfError> {
        let close: Vec<u8> = std::iter::once(b']')
            .chain(std::iter::repeat_n(b'=', eqs))
            .chain(std::iter::once(b']'))
            .collect();
        let body_start = self.pos + eqs + 2;
        let rest = &self.src[body_start..];
        match rest.windows(close.len()).position(|w| w == close.as_slice()) {
            Some(i) => {
                let end = body_start + i + close.len();
                self.line += self.src[self.pos..end].iter().filter(|&&c| c == b'\n').count();
                self.pos = end;
                Ok(())
            }
            None => Err(self.err(format!(
                "Lua code block missing the closing long bracket \"{}\", the inlined Lua code may be too long",
                String::from_utf8_lossy(&close)
            ))),
        }
    }
}

/// `[`, `=`*n, `[` at the start of `s`: Some(n).
fn long_bracket_open(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let eqs = s[1..].iter().take_while(|&&c| c == b'=').count();
    (s.get(1 + eqs) == Some(&b'[')).then_some(eqs)
}

fn is_space(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

/// nginx's escape processing when a word is copied out.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'"' | b'\'' | b'\\' => {
                    out.push(raw[i + 1]);
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn p(s: &str) -> Vec<Directive> {
        parse_str(s, "/t/nginx.conf", Path::new("/t")).unwrap()
    }

    fn perr(s: &str) -> String {
        parse_str(s, "/t/nginx.conf", Path::new("/t"))
            .unwrap_err()
            .to_string()
    }

    /// (name, args) of each top-level directive.
    fn flat(ds: &[Directive]) -> Vec<(String, Vec<String>)> {
        ds.iter()
            .map(|d| (d.name.clone(), d.args.clone()))
            .collect()
    }

    fn args(s: &str) -> Vec<String> {
        p(s).remove(0).args
    }

    /// A fresh empty directory under the system temp dir.
    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "halo-parse-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn simple_and_nested() {
        let ds = p("worker_processes 2;\nhttp {\n  server { listen 80; }\n}\n");
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].name, "worker_processes");
        assert_eq!(ds[0].args, vec!["2"]);
        assert_eq!(ds[0].line, 1);
        assert!(ds[0].block.is_none());
        let http = &ds[1];
        assert_eq!(http.line, 2);
        let srv = &http.block.as_ref().unwrap()[0];
        assert_eq!(srv.name, "server");
        assert_eq!(srv.line, 3);
        let listen = &srv.block.as_ref().unwrap()[0];
        assert_eq!(
            (listen.name.as_str(), listen.args.clone()),
            ("listen", vec!["80".to_string()])
        );
        assert_eq!(listen.origin(), "/t/nginx.conf:3");
    }

    #[test]
    fn line_is_that_of_terminator() {
        let ds = p("log_format main\n  'a'\n  'b';\n");
        assert_eq!(ds[0].line, 3);
        assert_eq!(ds[0].args, vec!["main", "a", "b"]);
    }

    #[test]
    fn comments() {
        let ds = p("# top\na 1; # trailing { } ;\nb x#y; # more\n");
        assert_eq!(
            flat(&ds),
            vec![
                ("a".into(), vec!["1".into()]),
                ("b".into(), vec!["x#y".into()])
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(args(r#"a "x y" 'p q' "" '';"#), vec!["x y", "p q", "", ""]);
        assert_eq!(
            args(r#"a "q\"d" 'q\'s' "b\\s" "t\tn\nr\r";"#),
            vec!["q\"d", "q's", "b\\s", "t\tn\nr\r"]
        );
        // Other backslashes stay, as regexes need them.
        assert_eq!(args(r"a ^/\d+\.html$ '\w';"), vec![r"^/\d+\.html$", r"\w"]);
        // An escaped space or `;` does not end the word, but nginx keeps
        // the backslash (only \" \' \\ \t \r \n are unescaped).
        assert_eq!(args(r"a x\ y \;;"), vec![r"x\ y", r"\;"]);
        assert_eq!(args(r"a \tx\\;"), vec!["\tx\\"]);
        // A quote inside an unquoted word is an ordinary character.
        assert_eq!(args(r#"a b"c d;"#), vec![r#"b"c"#, "d"]);
        // Quoted text may span lines.
        assert_eq!(args("a \"x\ny\";"), vec!["x\ny"]);
        // `#` and braces inside quotes are text.
        assert_eq!(args(r##"a "#{}" ';';"##), vec!["#{}", ";"]);
    }

    #[test]
    fn variables_kept() {
        assert_eq!(
            args("return 200 $host${uri}x;"),
            vec!["200", "$host${uri}x"]
        );
        assert_eq!(args("set $a \"${b}c\";"), vec!["$a", "${b}c"]);
    }

    #[test]
    fn word_ends_at_semicolon_and_brace_not_at_close_brace() {
        let ds = p("a b;c d;server{x y;}");
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[2].name, "server");
        assert_eq!(
            perr("a b}"),
            "unexpected end of file, expecting \";\" or \"}\" in /t/nginx.conf:1"
        );
    }

    #[test]
    fn if_lexing() {
        assert_eq!(
            args(r#"if ($http_x = "a b") { }"#),
            vec!["($http_x", "=", "a b", ")"]
        );
        assert_eq!(args("if ($a = b) { }"), vec!["($a", "=", "b)"]);
        assert_eq!(args("if ($a) { }"), vec!["($a)"]);
        assert_eq!(args("if ( -f $x ) { }"), vec!["(", "-f", "$x", ")"]);
        assert_eq!(
            args(r#"if ($a ~ "^x{2}$") { }"#),
            vec!["($a", "~", "^x{2}$", ")"]
        );
    }

    #[test]
    fn quoted_needs_space_after() {
        assert_eq!(perr("a \"x\"y;"), "unexpected \"y\" in /t/nginx.conf:1");
        assert_eq!(args("a \"x\";"), vec!["x"]);
        assert_eq!(p("a \"x\"{}")[0].args, vec!["x"]);
    }

    #[test]
    fn structural_errors() {
        assert_eq!(perr("}"), "unexpected \"}\" in /t/nginx.conf:1");
        assert_eq!(perr("a;\n}\n"), "unexpected \"}\" in /t/nginx.conf:2");
        assert_eq!(perr("a b }"), "unexpected \"}\" in /t/nginx.conf:1");
        assert_eq!(
            perr("http {\n"),
            "unexpected end of file, expecting \"}\" in /t/nginx.conf:2"
        );
        assert_eq!(
            perr("a b"),
            "unexpected end of file, expecting \";\" or \"}\" in /t/nginx.conf:1"
        );
        assert_eq!(
            perr("a \"b"),
            "unexpected end of file, expecting \";\" or \"}\" in /t/nginx.conf:1"
        );
        assert_eq!(perr("\n;"), "unexpected \";\" in /t/nginx.conf:2");
        assert_eq!(perr("{"), "unexpected \"{\" in /t/nginx.conf:1");
        assert_eq!(
            perr("include {}"),
            "directive \"include\" is not terminated by \";\" in /t/nginx.conf:1"
        );
        assert_eq!(
            perr("include a b;"),
            "invalid number of arguments in \"include\" directive in /t/nginx.conf:1"
        );
    }

    #[test]
    fn empty_input() {
        assert!(p("").is_empty());
        assert!(p("  # only a comment").is_empty());
    }

    #[test]
    fn command_line_mode() {
        let ds = parse_str(
            "daemon off; master_process off;",
            COMMAND_LINE,
            Path::new("/t"),
        )
        .unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].origin(), "command line");
        let e = parse_str("daemon off", COMMAND_LINE, Path::new("/t")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected end of parameter, expecting \";\" in command line"
        );
        let e = parse_str("events {}", COMMAND_LINE, Path::new("/t")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "block directives are not supported in -g option in command line"
        );
        assert!(parse_str("", COMMAND_LINE, Path::new("/t"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn lua_block_braces_in_strings_and_comments() {
        let src = r#"location / {
    content_by_lua_block {
        local t = { a = "}", b = '{', c = "\"}" }
        -- a comment with } and {
        local s = [[ } ]] .. [==[ ]] } ]==]
        --[[ long } comment ]]
        --[=[ another ]] } ]=]
        if t then ngx.say("{") end
    }
    return 200;
}
"#;
        let ds = p(src);
        let inner = ds[0].block.as_ref().unwrap();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[0].name, "content_by_lua_block");
        assert_eq!(inner[0].line, 2);
        assert!(inner[0].block.is_none());
        assert_eq!(inner[0].args.len(), 1);
        let lua = &inner[0].args[0];
        assert!(
            lua.starts_with("\n        local t = { a = \"}\""),
            "{lua:?}"
        );
        assert!(lua.ends_with("ngx.say(\"{\") end\n    "), "{lua:?}");
        assert_eq!(inner[1].name, "return");
        assert_eq!(inner[1].line, 10);
    }

    #[test]
    fn lua_block_with_args_and_nested_tables() {
        let ds = p("set_by_lua_block $v { return ({1, {2}})[1] }\nx;");
        assert_eq!(ds[0].args, vec!["$v", " return ({1, {2}})[1] "]);
        assert_eq!(ds[1].line, 2);
    }

    #[test]
    fn lua_block_text_verbatim() {
        // No escape processing or comment stripping inside Lua.
        let ds = p("init_by_lua_block {a = '\\n' # not a comment\n}");
        assert_eq!(ds[0].args, vec!["a = '\\n' # not a comment\n"]);
    }

    #[test]
    fn lua_block_errors() {
        assert_eq!(
            perr("http {\ninit_by_lua_block {\n local a = {\n"),
            "unexpected end of file, expecting terminating characters for lua code block in /t/nginx.conf:2"
        );
        assert_eq!(
            perr("init_by_lua_block { local s = [==[ x ]] }"),
            "Lua code block missing the closing long bracket \"]==]\", the inlined Lua code may be too long in /t/nginx.conf:1"
        );
        assert_eq!(
            perr("content_by_lua_block 'x';"),
            "directive \"content_by_lua_block\" has no opening \"{\" in /t/nginx.conf:1"
        );
    }

    #[test]
    fn lua_brackets_not_long() {
        // `a[b[1]]` is not a long string; `[=x` neither.
        let ds = p("init_by_lua_block { local x = a[b[1]] local y = t[ [=[}]=] ] }");
        assert_eq!(ds[0].args[0], " local x = a[b[1]] local y = t[ [=[}]=] ] ");
    }

    #[test]
    fn include_glob_and_relative() {
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b 1;\n\nb 2;").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1;").unwrap();
        std::fs::write(dir.join("conf.d/.hidden.conf"), "hidden 1;").unwrap();
        std::fs::write(dir.join("conf.d/c.txt"), "c 1;").unwrap();
        std::fs::write(dir.join("mime.types"), "types { text/html html; }").unwrap();
        std::fs::write(
            dir.join("nginx.conf"),
            "first;\nhttp {\n include mime.types;\n include conf.d/*.conf;\n include none/*.conf;\n last;\n}\n",
        )
        .unwrap();
        let ds = parse_file(&dir.join("nginx.conf")).unwrap();
        assert_eq!(ds[0].name, "first");
        let http = ds[1].block.as_ref().unwrap();
        let names: Vec<&str> = http.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["types", "a", "b", "b", "last"]);
        let b_file = dir.join("conf.d/b.conf").to_string_lossy().into_owned();
        assert_eq!(http[2].origin(), format!("{b_file}:1"));
        assert_eq!(http[3].origin(), format!("{b_file}:3"));
        assert_eq!(&*http[4].file, dir.join("nginx.conf").to_string_lossy());
        assert_eq!(http[4].line, 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn include_missing_file_and_error_in_included() {
        let dir = temp_dir();
        let main = dir.join("nginx.conf");
        std::fs::write(&main, "a;\ninclude nope.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "open() \"{}\" failed (2: No such file or directory) in {}:2",
                dir.join("nope.conf").display(),
                main.display()
            )
        );
        std::fs::write(dir.join("bad.conf"), "x;\n}\n").unwrap();
        std::fs::write(&main, "http {\ninclude bad.conf;\n}\n").unwrap();
        let e = parse_file(&main).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("unexpected \"}}\" in {}:2", dir.join("bad.conf").display())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn include_absolute_and_loop() {
        let dir = temp_dir();
        let inc = dir.join("inc.conf");
        std::fs::write(&inc, "z 9;").unwrap();
        let ds = parse_str(
            &format!("include {};", inc.display()),
            "x",
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(ds[0].name, "z");
        std::fs::write(dir.join("self.conf"), "include self.conf;").unwrap();
        let e = parse_file(&dir.join("self.conf")).unwrap_err();
        assert!(e.msg.starts_with("too deeply nested \"include\""), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_main_file() {
        let e = parse_file(Path::new("/nonexistent-halo/nginx.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "open() \"/nonexistent-halo/nginx.conf\" failed (2: No such file or directory)"
        );
        assert!(e.origin.is_none());
    }
}
