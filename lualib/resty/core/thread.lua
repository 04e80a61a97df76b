-- resty.core.thread: ngx.thread.spawn, wait and kill. A light thread is a
-- coroutine (what spawn returns, as in OpenResty) with its own context in
-- the core, which schedules the threads of a run on the event loop: spawn
-- runs the new thread until it first waits, then comes back; wait parks the
-- caller until one of the threads has ended.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "thread"

local C = ffi.C
local c_spawn = C.halo_ffi_thread_spawn
local c_wait = C.halo_ffi_thread_wait
local c_kill = C.halo_ffi_thread_kill
local FFI_OK = base.FFI_OK
local FFI_AGAIN = base.FFI_AGAIN
local FFI_DONE = base.FFI_DONE
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local phase = require "resty.core.phase"
local context = phase.context
local disabled = phase.disabled
local co_yield = require("resty.core.coroutine").api_yield
local threads = require("halo.runner").threads
local co_create = coroutine.create
local traceback = debug.traceback
local ffi_new = ffi.new
local tonumber = tonumber
local select = select
local unpack = unpack
local type = type
local error = error
local setmetatable = setmetatable

local out = ffi_new("uint64_t[1]")
local handles = ffi_new("uint64_t[?]", 16)
local handles_size = 16

-- What the core needs to know of each thread, by its coroutine.
local info = setmetatable({}, { __mode = "k" })

local function pack(...)
    return { n = select("#", ...), ... }
end

local _M = {}

local function spawn(f, ...)
    if type(f) ~= "function" then
        error("bad argument #1 to 'spawn' (function expected, got " .. type(f) .. ")", 2)
    end
    local r = context(3)
    local rc = c_spawn(r, out)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc ~= FFI_AGAIN then
        error("no request found", 2)
    end
    local handle = out[0]
    local key = tonumber(handle % 4294967296ULL)
    local t = { handle = handle }
    local n = select("#", ...)
    local args = n > 0 and { ... } or nil
    local co = co_create(function()
        -- The error value itself is what wait() returns (a table stays a
        -- table); the core logs the text as "lua user thread aborted".
        local ok, err = xpcall(function()
            if args then
                t.res = pack(true, f(unpack(args, 1, n)))
            else
                t.res = pack(true, f())
            end
        end, function(e)
            t.res = { false, e, n = 2 }
            if type(e) == "string" then
                return traceback(e, 2)
            end
            return e
        end)
        if not ok then
            error(err, 0)
        end
    end)
    t.co = co
    info[co] = t
    threads[key] = t
    co_yield()
    t.co = nil
    return co
end

local function thread_of(co, i, fname)
    local t = type(co) == "thread" and info[co]
    if not t then
        error("bad argument #" .. i .. " to '" .. fname .. "' (coroutine expected, got "
              .. type(co) .. ")", 3)
    end
    return t
end

local function wait(...)
    local n = select("#", ...)
    if n == 0 then
        error("at least one coroutine should be specified", 2)
    end
    local r = context(3)
    while true do
        for i = 1, n do
            local t = thread_of(select(i, ...), i, "wait")
            if t.dead then
                local res = t.res
                if not res or t.waited then
                    return nil, "already waited or killed"
                end
                t.waited = true
                t.res = nil
                return unpack(res, 1, res.n)
            end
        end
        if n > handles_size then
            handles_size = n
            handles = ffi_new("uint64_t[?]", n)
        end
        for i = 1, n do
            handles[i - 1] = info[select(i, ...)].handle
        end
        local rc = c_wait(r, handles, n)
        if rc == FFI_AGAIN then
            co_yield()
        elseif rc == FFI_BAD_CONTEXT then
            error(disabled(r), 2)
        elseif rc ~= FFI_OK then
            error("only the parent coroutine can wait on the thread", 2)
        end
        -- One ended (FFI_OK: in the meantime): the loop finds it.
    end
end

local function kill(co)
    local t = thread_of(co, 1, "kill")
    local r = context(3)
    if t.waited then
        return nil, "already waited or killed"
    end
    if t.dead then
        return nil, "already terminated"
    end
    local rc = c_kill(r, t.handle)
    if rc == FFI_OK then
        t.dead = true
        t.waited = true
        return 1
    elseif rc == FFI_DONE then
        return nil, "already terminated"
    elseif rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
    return nil, "killer not parent"
end

ngx.thread = { spawn = spawn, wait = wait, kill = kill }

-- A light thread waiting in the core counts as running, as in OpenResty.
local raw_status = coroutine.status
coroutine.status = function(co)
    local t = info[co]
    if t and not t.dead then
        local st = raw_status(co)
        if st == "suspended" then
            return "running"
        end
        return st
    end
    return raw_status(co)
end

local c_on_abort = C.halo_ffi_thread_on_abort
local c_wait_abort = C.halo_ffi_thread_wait_abort
local FFI_DECLINED = base.FFI_DECLINED
local FFI_BUSY = base.FFI_BUSY

-- ngx.on_abort(callback): with lua_check_client_abort on, a thread that
-- waits for the client to close its connection and then runs callback
-- (which usually calls ngx.exit(499)); the run does not wait for it.
function ngx.on_abort(f)
    if type(f) ~= "function" then
        error("bad argument #1 to 'on_abort' (function expected, got " .. type(f) .. ")", 2)
    end
    local r = phase.request(3)
    local rc = c_on_abort(r)
    if rc == FFI_DECLINED then
        return nil, "lua_check_client_abort is off"
    elseif rc == FFI_BUSY then
        return nil, "duplicate call"
    elseif rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc ~= FFI_OK then
        error("no request found", 2)
    end
    spawn(function()
        c_wait_abort(context(2))
        co_yield()
        return f()
    end)
    return 1
end

return _M
