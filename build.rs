//! Exports the core's C ABI (`halo_ffi_*`, declared in ffi-headers/*.h) from the
//! binaries, tests and benches of this package, so that LuaJIT's `ffi.C` finds
//! the functions with dlsym.
//!
//! Two link arguments per need:
//! - `--export-dynamic-symbol=halo_ffi_*` puts matching symbols in .dynsym (and
//!   nothing else: LuaJIT's own `lua_*` stay private, unlike `-rdynamic`);
//! - `--undefined=<name>` for every function declared in a header: only Lua
//!   references them, so without it the linker would neither pull their object
//!   out of the halo-core rlib nor keep their sections under --gc-sections.

use std::fs;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi-headers");
    println!("cargo:rerun-if-changed=build.rs");
    // A directory: cargo rescans it, so new headers are picked up too.
    println!("cargo:rerun-if-changed=ffi-headers");
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=halo_ffi_*");

    let mut headers: Vec<_> = fs::read_dir(&dir)
        .expect("ffi-headers/")
        .map(|e| e.expect("ffi-headers/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .collect();
    headers.sort();
    for h in headers {
        let text = fs::read_to_string(&h).unwrap_or_else(|e| panic!("{}: {e}", h.display()));
        for name in declared_functions(&text) {
            println!("cargo:rustc-link-arg=-Wl,--undefined={name}");
        }
    }
}

/// Names of the `halo_ffi_*` functions declared in a header: identifiers with
/// that prefix followed by `(`, outside comments. (tests/ffi_exports.rs has the
/// same parser; a build script cannot share code with tests.)
fn declared_functions(text: &str) -> Vec<String> {
    let code = strip_comments(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("halo_ffi_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let preceded_by_ident = rest[..i].chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded_by_ident && tail[end..].trim_start().starts_with('(') {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                rest = rest[b + 2..].find("*/").map_or("", |e| &rest[b + 2 + e + 2..]);
                out.push(' ');
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |e| &rest[l + e..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}
