-- record(chunk_name, src, allow_inner): runs src with jit.attach("trace")
-- collecting events; returns the number of loop traces compiled in the
-- chunk, then one line per stitch and per abort. allow_inner leaves out
-- "inner loop in root trace" aborts, for APIs that loop inside (the
-- outer trace is retried once the inner loop has its own trace). Used by tests/lua_jit.rs (in a bare VM) and
-- tests/common/mod.rs record_hot_loops (inside a request handler of the real server).

local jutil = require "jit.util"
local vmdef = require "jit.vmdef"   -- text of abort reasons (embedded in halo)

local function where(func, pc)
    local fi = jutil.funcinfo(func, pc)
    return (fi.source or "?") .. ":" .. tostring(fi.currentline or fi.linedefined or "?"), fi.source
end

local function reason(code, info)
    local fmt = vmdef.traceerr[code]
    if not fmt then
        return "trace error " .. tostring(code) .. " (" .. tostring(info) .. ")"
    end
    if type(info) == "function" then
        info = where(info)
    elseif fmt:find("bytecode", 1, true) and type(info) == "number" then
        info = vmdef.bcnames:sub(6 * info + 1, 6 * info + 6)
    end
    local ok, s = pcall(string.format, fmt, info)
    return ok and s or fmt
end

-- A function called from the loop can get hot before the loop does; a trace
-- started in it then aborts when it returns into the loop's frame, with one
-- of these (lj_traceerr.h, stable in 2.1), and the loop compiles on its own.
-- Only such aborts of traces started outside the chunk are left out; so is
-- RECERR for such traces (e.g. a finalizer ran during their recording).
local RECERR = 0    -- "error thrown or hook called during recording"
local LLEAVE = 8    -- "leaving loop in root trace"
local NYIRETL = 16  -- "NYI: return to lower frame"
local LINNER = 9    -- "inner loop in root trace"
assert(vmdef.traceerr[LLEAVE] == "leaving loop in root trace")
assert(vmdef.traceerr[NYIRETL] == "NYI: return to lower frame")

return function(chunk_name, src, allow_inner)
    local starts, compiled, stitches, aborts = {}, 0, {}, {}
    local function on_trace(what, tr, func, pc, otr, oex)
        if what == "start" then
            local loc, source = where(func, pc)
            starts[tr] = { loc = loc, source = source }
        elseif what == "stop" then
            local ti = jutil.traceinfo(tr)
            local st = starts[tr] or { loc = "?" }
            if ti.linktype == "stitch" then
                stitches[#stitches + 1] = "trace " .. tr .. " from " .. st.loc .. " stitched"
            elseif ti.linktype == "loop" and st.source == chunk_name then
                compiled = compiled + 1
            end
        elseif what == "abort" then
            local st = starts[tr] or { loc = "?" }
            local callee_first = (otr == LLEAVE or otr == NYIRETL or otr == RECERR) and st.source ~= chunk_name
            if not callee_first and not (allow_inner and otr == LINNER) then
                aborts[#aborts + 1] = "trace " .. tr .. " from " .. st.loc .. " aborted at "
                    .. where(func, pc) .. ": " .. reason(otr, oex)
            end
        end
    end
    jit.on()
    jit.flush()
    jit.attach(on_trace, "trace")
    local f = assert(load(src, chunk_name))
    local ok, err = pcall(f)
    jit.attach(on_trace)
    assert(ok, err)
    return compiled, table.concat(stitches, "\n"), table.concat(aborts, "\n")
end
