-- ngx.semaphore: lua-resty-core's semaphores between the light threads,
-- requests and timers of one worker. The core keeps them (a count and a
-- queue of waiters, ffi-headers/semaphore.h); a semaphore object is a table
-- holding the core's handle, freed by the core when Lua collects it. A wait
-- that must block yields the calling coroutine only.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "semaphore"

local C = ffi.C
local c_new = C.halo_ffi_semaphore_new
local c_free = C.halo_ffi_semaphore_free
local c_post = C.halo_ffi_semaphore_post
local c_count = C.halo_ffi_semaphore_count
local c_wait = C.halo_ffi_semaphore_wait
local c_result = C.halo_ffi_semaphore_wait_result
local FFI_OK = base.FFI_OK
local FFI_AGAIN = base.FFI_AGAIN
local FFI_DECLINED = base.FFI_DECLINED
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local phase = require "resty.core.phase"
local context = phase.context
local disabled = phase.disabled
local co_yield = require("resty.core.coroutine").api_yield
local sem_type = ffi.typeof("halo_ffi_semaphore_t")
local ffi_new = ffi.new
local ffi_gc = ffi.gc
local tonumber = tonumber
local type = type
local error = error
local setmetatable = setmetatable

local _M = { version = base.version }
local mt = { __index = _M }

function _M.new(n)
    n = tonumber(n) or 0
    if n < 0 then
        error("no negative number", 2)
    end
    local sem = ffi_new(sem_type)
    if c_new(n, sem) ~= FFI_OK then
        return nil, "no memory"
    end
    return setmetatable({ sem = ffi_gc(sem, c_free) }, mt)
end

local function check(self)
    if type(self) ~= "table" or type(self.sem) ~= "cdata" then
        error("not a semaphore instance", 3)
    end
    return self.sem.id
end

function _M.wait(self, seconds)
    local id = check(self)
    local r = context(3)
    -- As lua-resty-core: a non-number is an arithmetic error here.
    local ms = tonumber(seconds) * 1000
    if ms < 0 then
        error("no negative number", 2)
    end
    local rc = c_wait(r, id, ms)
    if rc == FFI_OK then
        return true
    elseif rc == FFI_DECLINED then
        return nil, "timeout"
    elseif rc == FFI_AGAIN then
        co_yield()
        if c_result(r) == FFI_OK then
            return true
        end
        -- As lua-nginx-module: false (not nil) once the wait blocked.
        return false, "timeout"
    elseif rc == FFI_BAD_CONTEXT then
        return nil, disabled(r)
    end
    return nil, "semaphore freed"
end

function _M.post(self, n)
    local id = check(self)
    local num = n and tonumber(n) or 1
    if num < 1 then
        error("positive number required", 2)
    end
    c_post(id, num)
    return true
end

function _M.count(self)
    return c_count(check(self))
end

return _M
