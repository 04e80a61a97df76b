//! The nginx.conf lexer and parser: text -> tree of `Directive`s.
//! STUB: to be written (helper A).

use std::fmt;
use std::path::Path;

/// One directive as written: `name arg...;` or `name arg... { block }`.
/// `*_by_lua_block { lua }` directives carry the Lua source as their single
/// argument and no block.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    /// Arguments with quotes removed and escapes processed.
    pub args: Vec<String>,
    /// The file it was read from, as shown in messages.
    pub file: std::sync::Arc<str>,
    pub line: usize,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// "file:line", as nginx names a place in its config.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.file, self.line)
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
        ConfError { msg: msg.into(), origin }
    }
    pub fn at(msg: impl Into<String>, d: &Directive) -> Self {
        ConfError { msg: msg.into(), origin: Some(d.origin()) }
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

/// Parse a config file, expanding `include` (globs, relative to the
/// directory of `path`) in place.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ConfError> {
    let _ = path;
    unimplemented!()
}

/// Parse config text (used for `-g`); `file` names it in messages.
pub fn parse_str(text: &str, file: &str, conf_dir: &Path) -> Result<Vec<Directive>, ConfError> {
    let _ = (text, file, conf_dir);
    unimplemented!()
}
