-- resty.core.time: ngx.time, ngx.now, ngx.update_time, ngx.today,
-- ngx.localtime, ngx.utctime, ngx.http_time, ngx.cookie_time,
-- ngx.parse_http_time over ffi-headers/time.h.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "time"

local C = ffi.C
local ffi_str = ffi.string
local ffi_new = ffi.new
local type = type
local error = error
local get_string_buf = base.get_string_buf
local FFI_OK = base.FFI_OK

local c_now = C.halo_ffi_time_now
local c_time = C.halo_ffi_time_time
local c_update_time = C.halo_ffi_time_update_time
local c_today = C.halo_ffi_time_today
local c_localtime = C.halo_ffi_time_localtime
local c_utctime = C.halo_ffi_time_utctime
local c_http_time = C.halo_ffi_time_http_time
local c_cookie_time = C.halo_ffi_time_cookie_time
local c_parse_http_time = C.halo_ffi_time_parse_http_time

-- Every date string fits in 32 bytes (the longest is 29).
local DATE_BUF = 32
local sec_out = ffi_new("double[1]")

local ngx = ngx

function ngx.now()
    return c_now()
end

function ngx.time()
    return c_time()
end

function ngx.update_time()
    c_update_time()
end

function ngx.today()
    local buf = get_string_buf(DATE_BUF)
    return ffi_str(buf, c_today(buf, DATE_BUF))
end

function ngx.localtime()
    local buf = get_string_buf(DATE_BUF)
    return ffi_str(buf, c_localtime(buf, DATE_BUF))
end

function ngx.utctime()
    local buf = get_string_buf(DATE_BUF)
    return ffi_str(buf, c_utctime(buf, DATE_BUF))
end

function ngx.http_time(sec)
    if type(sec) ~= "number" then
        error("bad argument #1 to 'http_time' (number expected, got "
              .. type(sec) .. ")", 2)
    end
    local buf = get_string_buf(DATE_BUF)
    return ffi_str(buf, c_http_time(sec, buf, DATE_BUF))
end

function ngx.cookie_time(sec)
    if type(sec) ~= "number" then
        error("bad argument #1 to 'cookie_time' (number expected, got "
              .. type(sec) .. ")", 2)
    end
    local buf = get_string_buf(DATE_BUF)
    return ffi_str(buf, c_cookie_time(sec, buf, DATE_BUF))
end

-- Returns the seconds, or nil when str is not an HTTP date.
function ngx.parse_http_time(str)
    if type(str) ~= "string" then
        error("bad argument #1 to 'parse_http_time' (string expected, got "
              .. type(str) .. ")", 2)
    end
    if c_parse_http_time(str, #str, sec_out) ~= FFI_OK then
        return nil
    end
    return sec_out[0]
end

return {
    version = base.version,
}
