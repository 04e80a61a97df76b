-- resty.core.request: ngx.req.* over ffi-headers/request.h.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_get_method = C.halo_ffi_request_get_method
local ffi_str = ffi.string
local ffi_new = ffi.new
local error = error
local FFI_OK = base.FFI_OK

local data_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")

local ngx = ngx
ngx.req = ngx.req or {}

function ngx.req.get_method()
    local r = get_request()
    if r == 0 then
        error("no request found", 2)
    end
    if c_get_method(r, data_out, len_out) ~= FFI_OK then
        error("no request found", 2)
    end
    return ffi_str(data_out[0], len_out[0])
end

return {}
