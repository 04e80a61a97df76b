-- halo.jit.capture: `lua_jit_log` records what LuaJIT's compiler does, as
-- JSON lines (the format is in jit-logs/README.md), one file per process.
--
-- It owns the VM's "trace", "texit" and "bc" hooks (jit.attach keeps one
-- handler per event) and passes every event on to handlers the user
-- attaches, so jit.v and the user's own jit.attach keep working. Locations
-- and abort reasons are decoded here, with the running VM's jit.vmdef:
-- bytecode numbers and message texts differ between LuaJIT builds.
--
-- The core calls start() in the master (before init_by_lua), worker_start()
-- in each worker after fork, and close() when a worker stops gracefully.

local ffi = require "ffi"
local jit = require "jit"
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"
local profile = require "jit.profile"
local bit = require "bit"

local funcinfo, funcbc, funck, traceinfo = jutil.funcinfo, jutil.funcbc, jutil.funck, jutil.traceinfo
local format, sub, byte, gsub, concat = string.format, string.sub, string.byte, string.gsub, table.concat
local type, pairs, tostring, pcall = type, pairs, tostring, pcall
local band = bit.band
local io_open = io.open

-- The name of bytecode op number `op` ("FNEW", ...), from the running VM's table.
local function bcname(op)
    return (gsub(sub(vmdef.bcnames, 6 * op + 1, 6 * op + 6), " +$", ""))
end

ffi.cdef [[
typedef struct {
    const char *dli_fname;
    void *dli_fbase;
    const char *dli_sname;
    void *dli_saddr;
} halo_dl_info;
int dladdr(const void *addr, halo_dl_info *info);
]]
local C = ffi.C
local dl_info = ffi.new("halo_dl_info")

local _M = {}

-- lj_traceerr.h's ids, by code (vmdef.traceerr has only the messages; the
-- numbering is the same in every 2.1 build).
local ERR_IDS = {
    [0] = "RECERR", "TRACEUV", "TRACEOV", "STACKOV", "SNAPOV", "BLACKL", "RETRY",
    "NYIBC", "LLEAVE", "LINNER", "LUNROLL", "BADTYPE", "CJITOFF", "CUNROLL",
    "DOWNREC", "NYIFFU", "NYIRETL", "STORENN", "NOMM", "IDXLOOP", "NYITMIX",
    "NOCACHE", "NYICONV", "NYICALL", "GFAIL", "PHIOV", "TYPEINS", "MCODEAL",
    "MCODEOV", "MCODELM", "SPILLOV", "BADRA", "NYIIR", "NYIPHI", "NYICOAL",
}

local BLACKLISTED_OPS = { IFORL = true, IITERL = true, ILOOP = true, IFUNCF = true, IFUNCV = true }

local EXIT_FLUSH_EVERY = 10000   -- side exits counted before an "exits" flush
local SAMPLE_FLUSH_EVERY = 200   -- profiler samples before a "samples" flush
local SAMPLE_MODE = "i10"        -- jit.profile: one sample per 10 ms of CPU

local dir, mode, out, out_pid
local role = "master"
local gen = 0
local traces = {}                -- tr -> { kind, parent, exit, loc } of the current generation
local exits, nexits = {}, 0      -- "gen tr exit" -> count
local samples, nsamples = {}, 0  -- "state\0loc" -> count
local sampled = false            -- a profiler sample landed since the last trace start
local toggling_profiler = false  -- jit.profile start/stop flush every trace
local user = {}                  -- event -> the user's handler
local protos = setmetatable({}, { __mode = "k" })  -- every prototype parsed while capturing
local orig_attach = jit.attach

-- JSON ---------------------------------------------------------------

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function jstr(s)
    return '"' .. gsub(s, '[%c"\\]', function(c)
        return ESC[c] or format("\\u%04x", byte(c))
    end) .. '"'
end

-- Locations ----------------------------------------------------------

local function cname(addr)
    -- SAFETY of the cast: addr is a function address LuaJIT gave us.
    if C.dladdr(ffi.cast("const void *", addr), dl_info) ~= 0 and dl_info.dli_sname ~= nil then
        return ffi.string(dl_info.dli_sname)
    end
    return format("C:%x", addr)
end

-- The LOC object of func at pc.
local function loc(func, pc)
    if not func then
        return '{"kind":"unknown"}'
    end
    local fi = funcinfo(func, pc)
    if fi.source then
        local chunk = sub(fi.source, 1, 1)
        if chunk == "@" then
            -- "$prefix/lua/?.lua" makes "/srv//lua/x.lua" ($prefix ends in '/').
            chunk = gsub(sub(fi.source, 2), "//+", "/")
        else
            chunk = chunk == "=" and sub(fi.source, 2) or fi.source
        end
        return format('{"kind":"lua","chunk":%s,"line":%d,"func":%d}', jstr(chunk),
                      fi.currentline or fi.linedefined or 0, fi.linedefined or 0)
    elseif fi.ffid and fi.ffid > 1 then
        return format('{"kind":"ffunc","name":%s}', jstr(vmdef.ffnames[fi.ffid] or tostring(fi.ffid)))
    elseif fi.addr then
        return format('{"kind":"cfunc","name":%s}', jstr(cname(fi.addr)))
    end
    return '{"kind":"unknown"}'
end

-- Output -------------------------------------------------------------

local function file_name(ext)
    local id = ngx.worker.id()
    local who = (role == "worker" and id) and ("w" .. id) or "master"
    return format("%s/jit-%s-%d.%s", dir, who, ngx.worker.pid(), ext)
end

local function emit(line)
    local pid = ngx.worker.pid()
    if pid ~= out_pid then
        -- A new process (the first write, or the first after fork): its own
        -- file. The inherited handle of the parent is dropped unread; it
        -- holds no buffered bytes because every record is flushed.
        out_pid = pid
        out = io_open(file_name("jsonl"), "a")
        if not out then
            return
        end
        out:setvbuf("full")
        out:write(format('{"ev":"open","v":1,"pid":%d,"worker":%d,"role":"%s","time":%.3f,"luajit":%s,"arch":%s,"mode":"%s"}\n',
                         pid, ngx.worker.id() or -1, role, ngx.now(), jstr(jit.version), jstr(jit.arch), mode))
    end
    if out then
        out:write(line, "\n")
        out:flush()
    end
end

local function flush_exits()
    if nexits == 0 then
        return
    end
    for key, n in pairs(exits) do
        local g, tr, ex = key:match("^(%d+) (%d+) (%d+)$")
        emit(format('{"ev":"exits","gen":%s,"tr":%s,"exit":%s,"n":%d}', g, tr, ex, n))
    end
    exits, nexits = {}, 0
end

local function flush_samples()
    if nsamples == 0 then
        return
    end
    local parts = {}
    for key, n in pairs(samples) do
        local state, where, fname = key:match("^(.)(.-)%z(.*)$")
        local l = '{"kind":"unknown"}'
        local chunk, line = where:match("^(.*):(%d+)$")
        if chunk then
            chunk, fname = gsub(chunk, "//+", "/"), gsub(fname, "//+", "/")
            l = format('{"kind":"lua","chunk":%s,"line":%s,"name":%s}', jstr(chunk), line, jstr(fname))
        elseif where ~= "" then
            l = format('{"kind":"ffunc","name":%s}', jstr(where))
        end
        parts[#parts + 1] = format('{"state":"%s","loc":%s,"n":%d}', state, l, n)
    end
    emit(format('{"ev":"samples","interval_ms":10,"counts":[%s]}', concat(parts, ",")))
    samples, nsamples = {}, 0
end

-- Hooks --------------------------------------------------------------

local function trace_common(tr, t)
    return format('"gen":%d,"tr":%d,"kind":"%s","parent":%d,"exit":%d,"loc":%s',
                  gen, tr, t.kind, t.parent, t.exit, t.loc)
end

local function on_trace(what, tr, func, pc, otr, oex)
    if what == "start" then
        sampled = false
        local t = { kind = "root", parent = 0, exit = 0, loc = loc(func, pc) }
        if otr then
            t.parent, t.exit = otr, oex
            t.kind = oex == -1 and "stitch" or "side"
        end
        traces[tr] = t
        emit(format('{"ev":"start",%s}', trace_common(tr, t)))
    elseif what == "stop" then
        local t = traces[tr] or { kind = "root", parent = 0, exit = 0, loc = '{"kind":"unknown"}' }
        local info = traceinfo(tr) or {}
        local ltype = info.linktype or "none"
        local callee = ltype == "stitch" and format(',"callee":%s', loc(func, pc)) or ""
        emit(format('{"ev":"stop",%s,"link":"%s","target":%d,"nins":%d,"nexit":%d%s}',
                    trace_common(tr, t), ltype, info.link or 0, info.nins or 0, info.nexit or 0, callee))
    elseif what == "abort" then
        local t = traces[tr] or { kind = "root", parent = 0, exit = 0, loc = '{"kind":"unknown"}' }
        local code, reason, nyi = -1, nil, ""
        if type(otr) == "number" then
            code = otr
            local fmt = vmdef.traceerr[otr] or "?"
            local info = oex
            if fmt == "NYI: bytecode %s" and type(info) == "number" then
                info = bcname(info)
                nyi = format(',"nyi":%s', jstr(info))
            elseif type(info) == "function" then
                info = funcinfo(info).loc or "?"
            end
            local ok, r = pcall(format, fmt, info)
            reason = ok and r or fmt
        else
            reason = tostring(otr)
        end
        emit(format('{"ev":"abort",%s,"at":%s,"code":%d,"id":"%s","reason":%s%s,"profiler":%s}',
                    trace_common(tr, t), loc(func, pc), code, ERR_IDS[code] or "ERROR", jstr(reason), nyi,
                    tostring(sampled and code == 0)))
    elseif what == "flush" then
        flush_exits()
        gen = gen + 1
        traces = {}
        emit(format('{"ev":"flush","gen":%d,"cause":"%s"}', gen, toggling_profiler and "profiler" or "jit"))
    end
    local h = user.trace
    if h then
        h(what, tr, func, pc, otr, oex)
    end
end

local function on_texit(tr, ex, ...)
    local key = gen .. " " .. tr .. " " .. ex
    exits[key] = (exits[key] or 0) + 1
    nexits = nexits + 1
    if nexits >= EXIT_FLUSH_EVERY then
        flush_exits()
    end
    local h = user.texit
    if h then
        h(tr, ex, ...)
    end
end

local function on_bc(proto)
    protos[proto] = true
    local h = user.bc
    if h then
        h(proto)
    end
end

local dumpstack = profile.dumpstack

local function on_sample(thread, n, vmstate)
    sampled = true
    -- "pl": chunk:line; "pF": chunk:function-name (as its caller names it).
    local key = vmstate .. dumpstack(thread, "pl", 1) .. "\0" .. dumpstack(thread, "pF", 1)
    samples[key] = (samples[key] or 0) + n
    nsamples = nsamples + n
    if nsamples >= SAMPLE_FLUSH_EVERY then
        flush_samples()
    end
end

local OWNED = { trace = on_trace, texit = on_texit, bc = on_bc }

-- jit.attach as the user sees it: handlers of the events halo owns are kept
-- here and called from halo's own; other events go to LuaJIT directly.
local function attach(fn, event)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'attach' (function expected, got " .. type(fn) .. ")", 2)
    end
    if event == nil then
        for ev, h in pairs(user) do
            if h == fn then
                user[ev] = nil
            end
        end
        return orig_attach(fn)
    end
    if OWNED[event] then
        user[event] = fn
        return
    end
    return orig_attach(fn, event)
end

-- Blacklist scan -----------------------------------------------------

-- Blacklisting makes no event of its own: the JIT rewrites the penalised
-- bytecode (FORL -> IFORL ...). Find those in every function we know of.
local function scan_proto(p, seen, found)
    if seen[p] then
        return
    end
    seen[p] = true
    local fi = funcinfo(p)
    if not fi.source then
        return
    end
    for pc = 0, fi.bytecodes or 0 do
        local ins = funcbc(p, pc)
        if not ins then
            break
        end
        local name = bcname(band(ins, 0xff))
        if BLACKLISTED_OPS[name] then
            found[#found + 1] = format('{"ev":"blacklist","site":%s,"op":"%s"}', loc(p, pc), name)
        end
    end
    for i = 1, fi.gcconsts or 0 do
        local k = funck(p, -i)
        if type(k) == "proto" then
            scan_proto(k, seen, found)
        end
    end
end

local function scan_blacklist()
    local seen, found = {}, {}
    for p in pairs(protos) do
        scan_proto(p, seen, found)
    end
    -- Modules loaded before capture started (lualib) are found through
    -- package.loaded.
    for _, m in pairs(package.loaded) do
        if type(m) == "function" then
            scan_proto(m, seen, found)
        elseif type(m) == "table" then
            for _, v in pairs(m) do
                if type(v) == "function" then
                    scan_proto(v, seen, found)
                end
            end
        end
    end
    for i = 1, #found do
        emit(found[i])
    end
end

-- Text logs beside (verbose / dump) -----------------------------------

local function start_text_log()
    if mode == "verbose" then
        require("jit.v").on(file_name("v.log"))
    elseif mode == "dump" then
        require("jit.dump").on("tbimT", file_name("dump.log"))
    end
end

-- API ----------------------------------------------------------------

--- Start capturing into `log_dir` (made by the core) in `log_mode`
--- ("events", "verbose" or "dump"). Called in the master, or in the only
--- process with master_process off.
function _M.start(log_dir, log_mode)
    dir, mode = log_dir, log_mode
    jit.attach = attach
    for ev, h in pairs(OWNED) do
        orig_attach(h, ev)
    end
    start_text_log()
end

--- In a worker just forked: new files (the pid changed), the profiler's
--- timer (interval timers are not inherited through fork).
function _M.worker_start()
    if not dir then
        return
    end
    role = "worker"
    -- New files: after fork the pid differs anyway; with master_process off
    -- the same process goes on as worker 0. The old handle is closed here
    -- rather than left to a finalizer, which would abort a recording trace.
    -- Side exits counted so far belong to the process that counted them:
    -- written to its file when it goes on as worker 0 (master_process off),
    -- dropped when they are a copy inherited from the master.
    if out_pid == ngx.worker.pid() then
        flush_exits()
    end
    if out then
        out:close()
    end
    out, out_pid = nil, nil
    exits, nexits, samples, nsamples = {}, 0, {}, 0
    start_text_log()
    toggling_profiler = true
    profile.stop()
    profile.start(SAMPLE_MODE, on_sample)
    toggling_profiler = false
end

--- The worker stops: write what is still counted, then the blacklist scan.
function _M.close()
    if not dir then
        return
    end
    toggling_profiler = true
    profile.stop()
    toggling_profiler = false
    -- Nothing runs after this but the scan, which is not worth compiling
    -- (its traces would only clutter the log).
    jit.off()
    flush_exits()
    flush_samples()
    scan_blacklist()
    emit(format('{"ev":"close","time":%.3f}', ngx.now()))
end

return _M
