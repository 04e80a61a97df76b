-- resty.core.timer: ngx.timer.at, ngx.timer.every, running_count and
-- pending_count. The core counts timers and waits for them on the event
-- loop; the callbacks and their arguments stay here, by the timer's number,
-- until the core runs `dispatch` in the timer's own context (premature when
-- the worker is stopping).

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "timer"
base.cdef "request"

local C = ffi.C
local c_at = C.halo_ffi_timer_at
local c_current = C.halo_ffi_timer_current
local c_running = C.halo_ffi_timer_running_count
local c_pending = C.halo_ffi_timer_pending_count
local c_context = C.halo_ffi_request_context
local FFI_OK = base.FFI_OK
local FFI_BUSY = base.FFI_BUSY
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local ffi_new = ffi.new
local select = select
local type = type
local error = error
local unpack = unpack
local debug_getinfo = debug.getinfo

local argerror = base.argerror
local id_out = ffi_new("uint32_t[1]")

-- Timer number -> { f, every, n, args... }.
local jobs = {}

local function create(every, fname, nargs, delay, f, ...)
    if nargs < 2 then
        error("expecting at least 2 arguments but got " .. nargs, 0)
    end
    if type(delay) ~= "number" then
        argerror(1, "number expected, got " .. type(delay), 3)
    end
    if every and delay * 1000 < 1 then
        error("delay cannot be zero", 0)
    end
    if type(f) ~= "function" or debug_getinfo(f, "S").what == "C" then
        argerror(2, "Lua function expected", 3)
    end
    if delay < 0 then
        delay = 0
    end
    local rc = c_at(delay, every and 1 or 0, id_out)
    if rc == FFI_OK then
        local n = nargs - 2
        local job = { f, every, n, ... }
        jobs[id_out[0]] = job
        return 1
    elseif rc == FFI_BUSY then
        return nil, "too many pending timers"
    elseif rc == FFI_BAD_CONTEXT then
        -- No worker: init_by_lua* runs in the master.
        error("API disabled in the context of init_by_lua*", 3)
    end
    return nil, "process exiting"
end

ngx.timer = {
    -- (Not tail calls: argerror names the function its caller called.)
    at = function(...)
        local ok, err = create(false, "at", select("#", ...), ...)
        if ok then
            return ok
        end
        return nil, err
    end,
    every = function(...)
        local ok, err = create(true, "every", select("#", ...), ...)
        if ok then
            return ok
        end
        return nil, err
    end,
    running_count = function()
        return c_running()
    end,
    pending_count = function()
        return c_pending()
    end,
}

local _M = {}

-- The core's handler for a timer run: calls the callback with premature
-- and its arguments (a one-shot timer, or any premature run, is forgotten).
function _M.dispatch()
    local premature = c_current(c_context(), id_out)
    local id = id_out[0]
    local job = jobs[id]
    if not job then
        return
    end
    premature = premature == 1
    if premature or not job[2] then
        jobs[id] = nil
    end
    return job[1](premature, unpack(job, 4, job[3] + 3))
end

-- Timer `id` will not run (lua_max_running_timers were busy).
function _M.forget(id)
    jobs[id] = nil
end

return _M
