//! Every function declared in ffi-headers/*.h is exported by the `halo` binary
//! under that exact name (so LuaJIT's `ffi.C` finds it), so is LuaJIT's Lua C
//! API (for C modules on package.cpath), and nothing else of the core leaks
//! into the dynamic symbol table.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The header parser build.rs uses to keep these functions in the binary.
#[path = "../build/ffi_decls.rs"]
mod ffi_decls;
use ffi_decls::declared_functions;

/// The Lua C API list build.rs exports (the patterns are build.rs's only).
#[path = "../build/lua_api.rs"]
#[allow(dead_code)]
mod lua_api;

fn declared() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi-headers");
    let mut names = BTreeSet::new();
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "h") {
            for n in declared_functions(&fs::read_to_string(&p).unwrap()) {
                let fresh = names.insert(n.clone());
                assert!(fresh, "{n} declared twice (again in {})", p.display());
                let module = p.file_stem().unwrap().to_str().unwrap();
                assert!(
                    n.starts_with(&format!("halo_ffi_{module}_")),
                    "{n} in {module}.h: names are halo_ffi_<module>_<op>"
                );
            }
        }
    }
    names
}

/// Defined symbols in the binary's dynamic symbol table (`nm -D --defined-only`).
fn dynamic_symbols(bin: &str) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", bin])
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success(), "nm: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            (kind == "T").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn header_parser() {
    let h = "/* halo_ffi_x_commented(void); */\n// halo_ffi_x_line(void);\n\
             int halo_ffi_x_a(void);\ndouble *halo_ffi_x_b (int a,\n size_t b);\n\
             int my_halo_ffi_x_c(void);\nint halo_ffi_x_not_a_call;\n";
    assert_eq!(declared_functions(h), ["halo_ffi_x_a", "halo_ffi_x_b"]);
}

#[test]
fn every_declared_function_is_exported() {
    let declared = declared();
    assert!(declared.len() >= 10, "headers parsed: {declared:?}");
    let exported = dynamic_symbols(env!("CARGO_BIN_EXE_halo"));
    let missing: Vec<_> = declared.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "declared in ffi-headers/ but not exported by halo: {missing:?}");
    // Exported but undeclared: a Rust fn the headers (so Lua) do not know about.
    let extra: Vec<_> = exported.iter().filter(|n| n.starts_with("halo_ffi_") && !declared.contains(*n)).collect();
    assert!(extra.is_empty(), "exported but not declared in ffi-headers/: {extra:?}");
    // nginx's own helpers that lua-resty-string calls through ffi.C.
    for name in ["ngx_hex_dump", "ngx_atoi"] {
        assert!(exported.contains(name), "{name} not exported");
    }
}

#[test]
fn the_lua_c_api_is_exported_and_nothing_else() {
    let exported = dynamic_symbols(env!("CARGO_BIN_EXE_halo"));
    let missing: Vec<_> = lua_api::LUA_API.iter().filter(|n| !exported.contains(**n)).collect();
    assert!(missing.is_empty(), "Lua C API functions not exported by halo: {missing:?}");
    // Besides the ABI and the Lua API, no Rust or C function of the binary.
    let api = ["halo_ffi_", "halo_lua_", "lua_", "luaL_", "luaopen_", "luaJIT_"];
    let nginx = ["ngx_hex_dump", "ngx_atoi"];
    let other: Vec<_> = exported.iter().filter(|n| !api.iter().any(|p| n.starts_with(p)) && !nginx.contains(&n.as_str())).collect();
    assert!(other.is_empty(), "exported beyond the C ABI, the Lua API and nginx's helpers: {other:?}");
}
