-- halo.jit.lint: static NYI detection for `halo jit lint`.
--
-- The running LuaJIT parses the file (load, never run) and this module walks
-- every prototype's bytecode with jit.util, so what is checked is exactly
-- what the JIT will see: no Lua parser of our own to drift from LuaJIT's.
--
--   local lint = require "halo.jit.lint"
--   local findings, err = lint.lint_source(src, "path/to/file.lua")
--
-- findings: an array of { file, line, rule, detail, in_loop, message },
-- sorted by line; err: "file:line: syntax error text" when src does not
-- parse. The rule ids (fnew-in-loop, uclo-in-loop, varg-in-loop,
-- pcall-in-loop, nyi-call) are the keys of core/src/jit/advice.rs for_lint.
--
-- Bytecode facts used (lj_bc.h, LuaJIT 2.1): op = ins & 0xff, A = ins>>8 & 0xff,
-- C = ins>>16 & 0xff, B = ins>>24, D = ins>>16; a jump targets pc+1+D-0x8000.
-- Every loop closes with a backward jump (FORL, ITERL, JMP of while/repeat,
-- backward goto), so [target, pc] of each backward jump is a loop body.

local jit = require "jit"
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"
local bit = require "bit"

local band, rshift = bit.band, bit.rshift
local funcinfo, funcbc, funck = jutil.funcinfo, jutil.funcbc, jutil.funck
local funcuvname = jutil.funcuvname
local traceinfo = jutil.traceinfo
local bcnames = vmdef.bcnames
local sub, byte, format, gsub = string.sub, string.byte, string.format, string.gsub
local dump = string.dump
local type, load, pairs, ipairs = type, load, pairs, ipairs
local sort, concat = table.sort, table.concat
local jit_attach, jit_status = jit.attach, jit.status

local _M = { version = "0.1" }

-- Operand modes from funcbc's second result (lj_bc.h BCMode): A in bits 0-2,
-- C/D in bits 7-10.
local BCM_DST, BCM_BASE = 1, 2
local BCM_JUMP = 13

-- With LJ_FR2 (64-bit GC refs, the default on x64/arm64) a call frame has an
-- extra slot: the first argument of CALL A is in A+2, not A+1. The flag is in
-- string.dump's header (BCDUMP_F_FR2 = 8), the one place the VM tells it.
local FR2 = band(byte(dump(function() end), 5), 8) ~= 0 and 1 or 0

-- The op name of instruction `ins` ("FNEW", "CALLM", ...).
local function opname(ins)
    local o = 6 * band(ins, 0xff)
    return (gsub(sub(bcnames, o + 1, o + 6), " +$", ""))
end

-- Whether this VM compiles unpack, or stitches around it (LuaJIT records it
-- only since upstream 52cdb12e, 2026-08). Asked of the VM itself rather than
-- hard-coded, so a LuaJIT bump changes the answer with it: a hot loop calling
-- unpack under jit.attach, looking for a trace that ends in a stitch.
-- Without a clear answer (JIT off, trace aborted) it counts as not compiled,
-- which is what every release before 2026-08 does.
local function probe_unpack_compiled()
    if not jit_status() then
        return false
    end
    local stitched, looped = false, false
    local function on_trace(what, tr)
        if what == "stop" then
            local lt = traceinfo(tr).linktype
            if lt == "stitch" then
                stitched = true
            elseif lt == "loop" then
                looped = true
            end
        end
    end
    local unpack = unpack
    local t, s = { 1, 2 }, 0
    jit_attach(on_trace, "trace")
    for _ = 1, 1000 do
        local a, b = unpack(t)
        s = s + a + b
    end
    jit_attach(on_trace)
    return looped and not stitched
end

_M.unpack_compiled = probe_unpack_compiled()

-- Library functions LuaJIT 2.1 never compiles (no LJLIB_REC recorder: the
-- trace stitches around them, or stops for error), by the name LuaJIT's
-- vmdef.ffnames gives them. Partial ones (string.find with patterns,
-- string.format %s of tables) are left out: they depend on run-time values.
local NYI = {
    ["error"] = true, ["setfenv"] = true, ["getfenv"] = true,
    ["load"] = true, ["loadfile"] = true, ["loadstring"] = true, ["dofile"] = true,
    ["print"] = true, ["collectgarbage"] = true, ["gcinfo"] = true, ["newproxy"] = true,
    ["string.dump"] = true, ["string.match"] = true, ["string.gmatch"] = true,
    ["string.gsub"] = true,
    ["table.sort"] = true, ["table.maxn"] = true, ["table.pack"] = true,
    ["math.frexp"] = true, ["math.modf"] = true, ["math.fmod"] = true,
    ["math.randomseed"] = true,
}
if not _M.unpack_compiled then
    NYI["unpack"] = true
    NYI["table.unpack"] = true  -- the same function in 5.2-compat builds
end

-- Whole libraries that are not compiled, with their compiled exceptions.
local NYI_LIB = { coroutine = true, os = true, io = true, debug = true }
local COMPILED = { ["io.write"] = true, ["io.flush"] = true, ["debug.getmetatable"] = true }

-- String methods called as s:name(...) that are never compiled.
local NYI_METHOD = { gsub = true, match = true, gmatch = true }

-- Whether the global path `name` ("string.gsub", "os.time") is not compiled.
local function is_nyi(name)
    if NYI[name] then
        return true
    end
    -- Only "lib.fn": io.stdout.write and the like are not library calls.
    local lib = name:match("^([%a_][%w_]*)%.[%a_][%w_]*$")
    return lib ~= nil and NYI_LIB[lib] == true and not COMPILED[name]
end

local MESSAGE = {
    ["fnew-in-loop"] = "closure created inside a loop (FNEW is not compiled)",
    ["uclo-in-loop"] = "upvalues closed inside a loop (UCLO is not compiled)",
    ["varg-in-loop"] = "varargs with a variable count inside a loop of a vararg function (VARG is not compiled there)",
}

-- Adds a finding for `fn` at `pc`.
local function add(ctx, fn, pc, rule, detail, in_loop, message)
    local n = #ctx.findings + 1
    ctx.findings[n] = {
        file = ctx.file,
        line = funcinfo(fn, pc).currentline or funcinfo(fn).linedefined,
        rule = rule,
        detail = detail,
        in_loop = in_loop,
        message = message,
    }
end

-- Loop bodies of `fn` as a list of {first_pc, last_pc}, and the set of jump
-- targets (where straight-line register tracking has to forget).
local function loops_and_targets(fn, nbc)
    local loops, targets = {}, {}
    for pc = 1, nbc - 1 do
        local ins, m = funcbc(fn, pc)
        if band(m, 15 * 128) == BCM_JUMP * 128 then
            local target = pc + 1 + rshift(ins, 16) - 0x8000
            -- A jump to the next instruction (UCLO before a return) joins
            -- no other path: registers stay known there.
            if target ~= pc + 1 then
                targets[target] = true
            end
            if target <= pc then
                loops[#loops + 1] = { target, pc }
            end
        end
    end
    return loops, targets
end

local function in_loops(loops, pc)
    for i = 1, #loops do
        local l = loops[i]
        if pc >= l[1] and pc <= l[2] then
            return true
        end
    end
    return false
end

-- Forgets what registers >= a hold (calls and other multi-slot writes).
local function clear_from(regs, a)
    for r in pairs(regs) do
        if r >= a then
            regs[r] = nil
        end
    end
end

-- Checks the call at `pc` whose function is in register `a`.
local function check_call(ctx, fn, pc, regs, a, in_loop)
    local v = regs[a]
    if not v then
        return
    end
    if v.method then
        add(ctx, fn, pc, "nyi-call", v.method, in_loop,
            format("%s is not compiled (the trace stitches)%s; probably: method call :%s on a string",
                v.method, in_loop and ", inside a loop" or "", sub(v.method, 8)))
        return
    end
    local name = v.g
    if not name then
        return
    end
    if (name == "pcall" or name == "xpcall") and in_loop then
        add(ctx, fn, pc, "pcall-in-loop", name, true, name .. " inside a loop")
    elseif is_nyi(name) then
        if name == "getfenv" then
            -- getfenv(0) is compiled (the thread's environment).
            local arg = regs[a + 1 + FR2]
            if arg and arg.k == 0 then
                return
            end
        end
        add(ctx, fn, pc, "nyi-call", name, in_loop,
            format("%s is not compiled (%s)%s", name,
                name == "error" and "the trace stops" or "the trace stitches",
                in_loop and ", inside a loop" or ""))
    end
end

-- VARG at `pc` wants all varargs (B = 0). That is compiled when the values
-- feed select('#', ...) or select(n, ...) with n >= 0; anything else ({...},
-- f(...), return ...) aborts a trace that starts in this function.
local function varg_is_nyi(fn, pc, regs)
    local nxt = funcbc(fn, pc + 1)
    if not nxt or opname(nxt) ~= "CALLM" then
        return true
    end
    local a = band(rshift(nxt, 8), 0xff)
    local f = regs[a]
    -- `local select = select` (lua-resty-core style) makes it an upvalue:
    -- trusting the name here can only hide a finding, never invent one.
    if not (f and (f.g == "select" or f.uv == "select")) then
        return true
    end
    local n = regs[a + 1 + FR2]
    return n ~= nil and type(n.k) == "number" and n.k < 0
end

-- Walks one prototype (not its children).
local function walk_proto(ctx, fn)
    local fi = funcinfo(fn)
    local nbc = fi.bytecodes
    local loops, targets = loops_and_targets(fn, nbc)
    -- What a register holds, straight-line only: {g = "string.gsub"} (a
    -- global or a field path of one), {method = "string.gsub"} (s:gsub),
    -- {uv = "name"} (an upvalue, used only to recognise select),
    -- {k = constant}. Forgotten at every jump target.
    local regs = {}
    local prev_op, prev_a, prev_d
    for pc = 1, nbc - 1 do
        if targets[pc] then
            regs = {}
        end
        local ins, m = funcbc(fn, pc)
        local op = opname(ins)
        local a = band(rshift(ins, 8), 0xff)
        local d = rshift(ins, 16)
        local ma = band(m, 7)

        if op == "FNEW" then
            if in_loops(loops, pc) then
                add(ctx, fn, pc, "fnew-in-loop", "FNEW", true, MESSAGE["fnew-in-loop"])
            end
            regs[a] = nil
        elseif op == "UCLO" then
            if in_loops(loops, pc) then
                add(ctx, fn, pc, "uclo-in-loop", "UCLO", true, MESSAGE["uclo-in-loop"])
            end
        elseif op == "VARG" then
            -- B - 1 is the result count; 0 means "all of them".
            if rshift(ins, 24) == 0 and in_loops(loops, pc) and varg_is_nyi(fn, pc, regs) then
                add(ctx, fn, pc, "varg-in-loop", "VARG", true, MESSAGE["varg-in-loop"])
            end
            clear_from(regs, a)
        elseif op == "GGET" then
            regs[a] = { g = funck(fn, -d - 1) }
        elseif op == "TGETS" then
            local b, key = rshift(ins, 24), funck(fn, -band(d, 0xff) - 1)
            -- obj:key(...) compiles to MOV A+1+FR2, obj; TGETS A, obj, "key"
            -- (lj_parse.c bcemit_method), which tells it from a plain
            -- field call like ngx.re.match(s, p).
            local method = prev_op == "MOV" and prev_a == a + 1 + FR2 and prev_d == b
            local obj = regs[b]
            if method then
                regs[a] = NYI_METHOD[key] and { method = "string." .. key } or nil
            elseif obj and obj.g then
                regs[a] = { g = obj.g .. "." .. key }
            else
                regs[a] = nil
            end
        elseif op == "UGET" then
            regs[a] = { uv = funcuvname(fn, d) }
        elseif op == "MOV" then
            regs[a] = regs[d]
        elseif op == "KSTR" then
            regs[a] = { k = funck(fn, -d - 1) }
        elseif op == "KSHORT" then
            regs[a] = { k = d >= 0x8000 and d - 0x10000 or d }
        elseif op == "KNUM" then
            regs[a] = { k = funck(fn, d) }
        elseif op == "CALL" or op == "CALLM" or op == "CALLT" or op == "CALLMT" then
            check_call(ctx, fn, pc, regs, a, in_loops(loops, pc))
            clear_from(regs, a)
        elseif ma == BCM_BASE then
            clear_from(regs, a)
        elseif ma == BCM_DST then
            regs[a] = nil
        end
        prev_op, prev_a, prev_d = op, a, d
    end
end

-- Walks `fn` and every prototype nested in it (child protos are its GC
-- constants of type "proto").
local function walk(ctx, fn)
    walk_proto(ctx, fn)
    if funcinfo(fn).children then
        for i = -1, -funcinfo(fn).gcconsts, -1 do
            local k = funck(fn, i)
            if type(k) == "proto" then
                walk(ctx, k)
            end
        end
    end
end

-- Lints Lua source `src`, named `file` in findings and errors. Returns the
-- findings (possibly empty), or nil and "file:line: message" when it does
-- not parse.
function _M.lint_source(src, file)
    -- luaL_loadfile skips a #! line; keep its newline so lines still match.
    if byte(src, 1) == 35 then -- '#'
        src = gsub(src, "^[^\n]*", "", 1)
    end
    local fn, err = load(src, "@" .. file, "t")
    if not fn then
        return nil, err
    end
    local ctx = { file = file, findings = {} }
    walk(ctx, fn)

    -- One finding per (line, rule, detail): a line with two closures is one
    -- thing to fix. in_loop if any of them is.
    local seen, out = {}, {}
    for _, f in ipairs(ctx.findings) do
        local key = concat({ f.line, f.rule, f.detail }, "\0")
        local prev = seen[key]
        if prev then
            prev.in_loop = prev.in_loop or f.in_loop
        else
            seen[key] = f
            out[#out + 1] = f
        end
    end
    sort(out, function(x, y)
        if x.line ~= y.line then
            return x.line < y.line
        end
        if x.rule ~= y.rule then
            return x.rule < y.rule
        end
        return x.detail < y.detail
    end)
    return out
end

return _M
