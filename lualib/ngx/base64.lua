-- ngx.base64: base64url (RFC 4648 section 5, no padding) over
-- ffi-headers/base64.h, as lua-resty-core's: misuse returns nil and an
-- error string rather than raising.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "base64"

local C = ffi.C
local ffi_str = ffi.string
local type = type
local floor = math.floor
local get_string_buf = base.get_string_buf

local c_encode = C.halo_ffi_base64_encode
local c_decode = C.halo_ffi_base64_decode

local URL = 2   -- halo_ffi_base64_encode's flags for the URL alphabet
local URL_MODE = 1   -- and halo_ffi_base64_decode's mode

local _M = { version = base.version }

function _M.encode_base64url(s)
    if type(s) ~= "string" then
        return nil, "must provide a string"
    end
    local slen = #s
    local dlen = floor((slen + 2) / 3) * 4
    local dst = get_string_buf(dlen)
    return ffi_str(dst, c_encode(s, slen, URL, dst, dlen))
end

function _M.decode_base64url(s)
    if type(s) ~= "string" then
        return nil, "must provide a string"
    end
    local slen = #s
    local dlen = floor((slen + 3) / 4) * 3
    local dst = get_string_buf(dlen)
    local n = c_decode(s, slen, URL_MODE, dst, dlen)
    if n < 0 then
        return nil, "invalid input"
    end
    return ffi_str(dst, n)
end

return _M
