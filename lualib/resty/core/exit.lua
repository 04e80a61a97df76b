-- resty.core.exit: ngx.exit. It records the status, then yields the
-- handler's coroutine back to the core, which ends the handler there.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_exit = C.halo_ffi_request_exit
local type = type
local error = error
-- Saved at load time, before user code can replace coroutine.yield.
local co_yield = coroutine.yield

function ngx.exit(status)
    if type(status) ~= "number" then
        error("bad argument #1 to 'exit' (number expected, got " .. type(status) .. ")", 2)
    end
    local r = get_request()
    if r == 0 then
        error("no request found", 2)
    end
    c_exit(r, status)
    return co_yield()
end

return {}
