//! Directive tree -> typed `Config`, with every directive checked for its
//! context and arguments. STUB: to be written (helper A).

use std::path::Path;

use super::parse::{ConfError, Directive};
use super::types::Config;

/// Build the typed config. `prefix` and `conf_path` are absolute;
/// `globals` are the directives from `-g`, applied at main level.
pub fn build(prefix: &Path, conf_path: &Path, tree: Vec<Directive>, globals: Vec<Directive>) -> Result<Config, ConfError> {
    let _ = (prefix, conf_path, tree, globals);
    unimplemented!()
}

/// Read, parse and build in one step (what `-t`, start and reload call).
pub fn load(prefix: &Path, conf_path: &Path, globals: &str) -> Result<Config, ConfError> {
    let _ = (prefix, conf_path, globals);
    unimplemented!()
}
