//! The pure-Lua `ngx.*` API over FFI stays JIT-compiled: a hot loop calling it
//! compiles to a trace with no aborts and no stitching (which LuaJIT 2.1 does
//! around classic lua_CFunction calls, and which would hide the FFI's benefit).
//!
//! A control test proves the recorder would see both.

use std::path::Path;

use halo_core::lua::mlua::{self, Lua};
use halo_core::lua::new_vm;

/// Lua: `record(chunk_name, src)`, see the file's header.
const RECORDER: &str = include_str!("jit_recorder.lua");

/// Runs `src` (chunk `name`) under the recorder in a fresh VM; returns
/// (loop traces compiled in the chunk, stitch lines, abort lines).
fn run(name: &str, src: &str) -> (i64, String, String) {
    let lua: Lua = new_vm(Path::new("/tmp"), None, None).unwrap();
    let record: mlua::Function = lua.load(RECORDER).set_name("=recorder").eval().unwrap();
    record.call((name, src)).unwrap()
}

#[test]
fn ngx_api_loop_compiles_without_aborts_or_stitches() {
    let (compiled, stitches, aborts) = run(
        "=api_loop",
        r#"
        local acc, n = 0, 0
        local s
        for i = 1, 1000 do
            acc = acc + ngx.time() + ngx.now()
            s = ngx.http_time(i)
            n = n + #ngx.cookie_time(i) + #ngx.today() + #ngx.localtime() + #ngx.utctime()
            acc = acc + (ngx.parse_http_time(s) or 0)
            acc = acc + (ngx.worker.id() or 0) + ngx.worker.count() + ngx.worker.pid()
            if ngx.worker.exiting() then acc = acc + 1 end
            n = n + #ngx.config.prefix()
        end
        assert(acc > 0 and n > 0)
        "#,
    );
    assert!(aborts.is_empty(), "trace aborts:\n{aborts}");
    assert!(stitches.is_empty(), "stitched traces:\n{stitches}");
    assert!(compiled >= 1, "no loop trace compiled in the chunk");
}

#[test]
fn recorder_sees_stitches_and_aborts() {
    // os.time is a classic C function: LuaJIT 2.1 stitches around it.
    let (_, stitches, _) = run("=stitch", "local x = 0 for i = 1, 1000 do x = x + os.time() end");
    assert!(stitches.contains("from =stitch:1"), "expected a stitch, got: {stitches:?}");
    // Creating a closure is not compiled (NYI: FNEW): the trace aborts.
    let (_, _, aborts) = run("=abort", "local t = {} for i = 1, 1000 do t[i % 8] = function() return i end end");
    assert!(aborts.contains("at =abort:1"), "expected an abort, got: {aborts:?}");
    assert!(aborts.contains("FNEW"), "abort reason decoded with the embedded jit.vmdef: {aborts}");
}

#[test]
fn api_uses_luajit_fast_functions() {
    // mlua keeps LuaJIT's own pcall/error (a Rust replacement would stitch).
    let lua = new_vm(Path::new("/tmp"), None, None).unwrap();
    let s: String = lua.load("return tostring(pcall) .. ' ' .. tostring(error)").eval().unwrap();
    assert!(s.starts_with("function: builtin#") && s.contains(" function: builtin#"), "{s}");
}
