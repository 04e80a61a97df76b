-- Installed by init_worker_by_lua in tests/lua_handler_jit.rs: records, for
-- each chunk, which traces recorded its bytecode and how they ended, so that
-- a test can tell whether handlers as served run compiled.
--   require("handler_jit_recorder").start()   -- in init_worker_by_lua
--   require("handler_jit_recorder").report(source) -- in a later request
-- report: "started=N completed=N aborts=N stitches=N" for traces that
-- recorded bytecode of `source`, plus one line per abort and stitch inside it.

local jutil = require "jit.util"

local _M = {}
local traces = {}   -- tr -> { sources = {source = true}, start = source, last = source }

local function source_of(func)
    return jutil.funcinfo(func).source
end

local function on_record(tr, func, pc, depth)
    local t = traces[tr]
    if not t then
        t = { sources = {} }
        traces[tr] = t
    end
    -- (Builtins and C functions have no source.)
    local src = source_of(func) or "[C]"
    t.sources[src] = true
    t.last = src
    t.last_line = jutil.funcinfo(func, pc).currentline
end

local results = { }

local function on_trace(what, tr, func, pc, otr, oex)
    if what == "start" then
        traces[tr] = { sources = {}, start = source_of(func) or "[C]" }
    elseif what == "stop" then
        local t = traces[tr]
        if t then
            t.done = true
            t.link = jutil.traceinfo(tr).linktype
            results[#results + 1] = t
        end
    elseif what == "abort" then
        local t = traces[tr]
        if t then
            t.aborted = true
            t.abort_at = func and source_of(func) or "[C]"
            t.abort_line = func and jutil.funcinfo(func, pc).currentline
            t.reason = otr
            results[#results + 1] = t
        end
    end
end

function _M.start()
    jit.attach(on_record, "record")
    jit.attach(on_trace, "trace")
end

function _M.report(source)
    local started, completed, aborts, stitches, lines = 0, 0, 0, 0, {}
    for _, t in ipairs(results) do
        if t.sources[source] then
            if t.start == source then
                started = started + 1
            end
            if t.done then
                completed = completed + 1
                if t.link == "stitch" and t.last == source then
                    stitches = stitches + 1
                    lines[#lines + 1] = "stitch at " .. source .. ":" .. tostring(t.last_line)
                end
            elseif t.aborted and t.abort_at == source then
                aborts = aborts + 1
                lines[#lines + 1] = "abort at " .. source .. ":" .. tostring(t.abort_line) .. " (" .. tostring(t.reason) .. ")"
            end
        end
    end
    if completed == 0 then
        -- Say what was seen, for the failure message.
        local seen = {}
        for _, t in ipairs(results) do
            for s in pairs(t.sources) do seen[s] = true end
        end
        for s in pairs(seen) do lines[#lines + 1] = "seen: " .. s end
        for _, t in ipairs(results) do
            if t.sources[source] then
                lines[#lines + 1] = string.format("trace from %s done=%s link=%s aborted=%s at %s:%s (%s)", tostring(t.start),
                    tostring(t.done), tostring(t.link), tostring(t.aborted), tostring(t.abort_at), tostring(t.abort_line), tostring(t.reason))
            end
        end
        lines[#lines + 1] = "traces: " .. #results
    end
    return string.format("started=%d completed=%d aborts=%d stitches=%d\n%s", started, completed, aborts,
        stitches, table.concat(lines, "\n"))
end

return _M
