-- ngx.errlog: lua-resty-core's error-log module over ffi-headers/log.h.
-- raw_log writes a message as given (no "[lua] file:line:" prefix);
-- get_sys_filter_level is the error_log threshold. Filtering and reading
-- back logs need lua_capture_error_log, which halo does not have yet: those
-- answer nil and a message, as OpenResty does without the directive.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "log"

local C = ffi.C
local c_level = C.halo_ffi_log_level
local c_write = C.halo_ffi_log_write
local type = type
local error = error
local tonumber = tonumber

local NO_CAPTURE = "lua_capture_error_log is not supported by halo yet"

local _M = { version = base.version }

-- raw_log(level, msg): msg at level, in the error log's own format.
function _M.raw_log(level, msg)
    if type(level) ~= "number" then
        error("bad argument #1 to 'raw_log' (must be a number)", 2)
    end
    if type(msg) ~= "string" then
        error("bad argument #2 to 'raw_log' (must be a string)", 2)
    end
    if level < 0 or level > 8 then
        error("bad log level", 2)
    end
    if level > c_level() then
        return
    end
    c_write(level, msg, #msg)
end

function _M.get_sys_filter_level()
    return tonumber(c_level())
end

function _M.set_filter_level(level)
    if not level then
        return nil, [[missing "level" argument]]
    end
    return nil, NO_CAPTURE
end

function _M.get_logs()
    return nil, NO_CAPTURE
end

return _M
