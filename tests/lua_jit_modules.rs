//! LuaJIT's own jit/*.lua tools (jit.v, jit.dump, jit.p, jit.zone, jit.bc,
//! jit.vmdef and the disassemblers), embedded from the LuaJIT build (core/build.rs), work inside
//! a request handler of the real server. That they are the linked VM's own
//! copies is checked by lua::lualib's jit_modules_match_the_vendored_build.

mod common;

use common::*;

#[test]
fn jit_v_dump_and_vmdef_work_in_a_handler() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local jutil = require "jit.util"
            local v = require "jit.v"
            local dump = require "jit.dump"
            local p = require "jit.p"
            local zone = require "jit.zone"
            local bc = require "jit.bc"
            local vmdef = require "jit.vmdef"
            assert(type(p.start) == "function" and type(zone) == "table")
            assert(type(bc.line) == "function")

            -- LuaJIT keeps one handler per vmevent (jit.attach replaces), so
            -- jit.v and jit.dump run one after the other; the flush makes
            -- each start from trace 1 whatever ran in this worker before.
            local prefix = ngx.config.prefix()
            local s = 0
            jit.flush()
            v.on(prefix .. "logs/jitv.txt")
            for i = 1, 2000 do s = s + i % 7 end
            v.off()
            jit.flush()
            -- "m" disassembles: dump requires jit.dis_<arch> by name.
            dump.on("tbim", prefix .. "logs/jitdump.txt")
            for i = 1, 2000 do s = s + i % 5 end
            dump.off()

            -- Decode a closure-creating function's bytecode with vmdef.
            local function mk() return function() return s end end
            local ops = {}
            for pc = 1, jutil.funcinfo(mk).bytecodes - 1 do
                local ins = jutil.funcbc(mk, pc)
                local o = 6 * (ins % 256)
                ops[#ops + 1] = vmdef.bcnames:sub(o + 1, o + 6):gsub(" +$", "")
            end
            ngx.say(s, " ", table.concat(ops, ","))
        } }"#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    let body = r.text();
    // FNEW makes the closure, RET1 returns it; a function with child closures
    // closes its upvalues before returning (UCLO, lj_parse.c parse_return).
    assert_eq!(body, "10000 FNEW,UCLO,RET1\n");

    let v = h.prefix.read_file("logs/jitv.txt");
    assert!(
        v.lines().any(|l| l.starts_with("[TRACE   1 ") && l.contains(" loop]")),
        "jit.v wrote no loop trace 1:\n{v}\n{}",
        h.logs()
    );
    let d = h.prefix.read_file("logs/jitdump.txt");
    for part in ["---- TRACE 1 start", "---- TRACE 1 IR", "---- TRACE 1 mcode", "---- TRACE 1 stop"] {
        assert!(d.contains(part), "jit.dump lacks {part:?}:\n{d}");
    }
}
