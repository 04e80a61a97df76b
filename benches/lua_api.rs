//! The same API call three ways, in a LuaJIT loop of 1000 calls: `ngx.now()`
//! over FFI (lualib/resty/core/time.lua: the loop compiles to machine code
//! that calls the C function directly), `halo.capi.now()` as a classic
//! lua_CFunction (the trace stitches around every call), and an mlua
//! closure (a Rust callback through mlua's trampoline). All three return the
//! same cached time. `cargo bench --bench lua_api`; the ratios are what the
//! README quotes for "FFI vs lua_CFunction". Then ngx.shared.DICT get, set
//! and incr in the same kind of loop, and the string utilities.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use halo_core::lua::mlua::{Function, Lua};
use halo_core::lua::new_vm;

/// A Lua function running `call` 1000 times in a loop (hot: it compiles).
fn looper(lua: &Lua, call: &str) -> Function {
    lua.load(format!("local f = {call}\nreturn function() local s = 0 for i = 1, 1000 do s = s + f() end return s end"))
        .eval()
        .unwrap()
}

fn calls(c: &mut Criterion) {
    let lua = new_vm(Path::new("/tmp"), None, None).unwrap();
    let closure = lua.create_function(|_, ()| Ok(halo_core::ffi::time::halo_ffi_time_now())).unwrap();
    lua.globals().set("rust_now", closure).unwrap();
    let mut g = c.benchmark_group("now_x1000");
    for (name, call) in [("ffi", "ngx.now"), ("lua_cfunction", "require('halo.capi').now"), ("mlua_closure", "rust_now")] {
        let f = looper(&lua, call);
        // Warm up past the JIT's hot counters so the loop is compiled.
        for _ in 0..100 {
            f.call::<f64>(()).unwrap();
        }
        g.bench_function(name, |b| b.iter(|| f.call::<f64>(()).unwrap()));
    }
    g.finish();
}

/// ngx.shared.DICT get / set / incr over FFI, 1000 calls per iteration in
/// a compiled loop, on a zone mapped as the server maps it.
fn shdict(c: &mut Criterion) {
    halo_core::shdict::configure(&[("bench".into(), 4 << 20)]).unwrap();
    let lua = new_vm(Path::new("/tmp"), None, None).unwrap();
    lua.load("ngx.shared.bench:set('k', 'a value of some length') ngx.shared.bench:set('n', 0)").exec().unwrap();
    let mut g = c.benchmark_group("shdict_x1000");
    for (name, body) in [
        ("get", "s = s + #d:get('k')"),
        ("set", "d:set('k', 'a value of some length')"),
        ("incr", "s = s + d:incr('n', 1)"),
    ] {
        let f: Function = lua
            .load(format!("local d = ngx.shared.bench\nreturn function() local s = 0 for i = 1, 1000 do {body} end return s end"))
            .eval()
            .unwrap();
        for _ in 0..100 {
            f.call::<f64>(()).unwrap();
        }
        g.bench_function(name, |b| b.iter(|| f.call::<f64>(()).unwrap()));
    }
    g.finish();
}

/// The string utilities over FFI, 1000 calls per iteration in a compiled
/// loop, on a 32-byte input.
fn utilities(c: &mut Criterion) {
    let lua = new_vm(Path::new("/tmp"), None, None).unwrap();
    let mut g = c.benchmark_group("utilities_x1000");
    for (name, call) in [
        ("md5", "ngx.md5(s)"),
        ("sha1_bin", "ngx.sha1_bin(s)"),
        ("crc32_short", "ngx.crc32_short(s)"),
        ("encode_base64", "ngx.encode_base64(s)"),
        ("decode_base64", "ngx.decode_base64('aGFsbyBpcyBhIHByb2dyYW1tYWJsZSBzZXJ2ZXIh')"),
        ("escape_uri", "ngx.escape_uri(s)"),
        ("unescape_uri", "ngx.unescape_uri('a%20b%2Fc%3Fd%3De%26f%23g+h%25i')"),
    ] {
        let f: Function = lua
            .load(format!("local s = 'halo is a/programmable server?!'\nreturn function() local n = 0 for i = 1, 1000 do local r = {call} n = n + (type(r) == 'string' and #r or r) end return n end"))
            .eval()
            .unwrap();
        for _ in 0..100 {
            f.call::<f64>(()).unwrap();
        }
        g.bench_function(name, |b| b.iter(|| f.call::<f64>(()).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, calls, shdict, utilities);
criterion_main!(benches);
