//! nginx.conf: lexing and parsing into a directive tree (`parse`), complex
//! values with `$variables` (`template`), `upstream {}` blocks (`upstream`), `map {}` tables (`map`), and the typed configuration the
//! server runs on (`types`, built by `build`).

pub mod parse;
pub mod template;
pub mod types;
pub mod build;
pub mod mime;
pub mod proxy;
pub mod upstream;
pub mod map;

pub use parse::{ConfError, Directive};
pub use types::*;
