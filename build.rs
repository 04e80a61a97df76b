//! Exports the core's C ABI (`halo_ffi_*`, declared in ffi-headers/*.h) from the
//! binaries, tests and benches of this package, so that LuaJIT's `ffi.C` finds
//! the functions with dlsym; and LuaJIT's Lua C API (`lua_*`, `luaL_*`,
//! `luaopen_*`, `luaJIT_*`, listed in build/lua_api.rs), so that C modules
//! loaded from package.cpath resolve against the VM linked into the binary.
//!
//! Two link arguments per need:
//! - `--export-dynamic-symbol=<pattern>` puts matching symbols in .dynsym (and
//!   nothing else of the Rust code or its dependencies, unlike `-rdynamic`);
//! - `--undefined=<name>` for every function declared in a header or of the
//!   Lua API: only Lua or a dlopened module references them, so without it the
//!   linker would neither pull their object out of its archive nor keep their
//!   sections under --gc-sections.

use std::fs;
use std::path::Path;

#[path = "build/ffi_decls.rs"]
mod ffi_decls;
use ffi_decls::declared_functions;

#[path = "build/lua_api.rs"]
mod lua_api;

/// Functions the core defines under nginx's own names (not in ffi-headers/).
const NGINX_NAMES: &[&str] = &["ngx_hex_dump", "ngx_atoi"];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi-headers");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/ffi_decls.rs");
    println!("cargo:rerun-if-changed=build/lua_api.rs");
    // A directory: cargo rescans it, so new headers are picked up too.
    println!("cargo:rerun-if-changed=ffi-headers");
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=halo_ffi_*");
    // The classic lua_CFunctions of halo.capi, so JIT logs can name them.
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=halo_lua_*");
    // nginx functions Lua libraries call through ffi.C by nginx's name
    // (core/src/ffi/hash.rs): lua-resty-string uses ngx_hex_dump and ngx_atoi.
    for name in NGINX_NAMES {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={name}");
        println!("cargo:rustc-link-arg=-Wl,--undefined={name}");
    }
    for pattern in lua_api::LUA_API_PATTERNS {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={pattern}");
    }
    for name in lua_api::LUA_API {
        println!("cargo:rustc-link-arg=-Wl,--undefined={name}");
    }

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
