-- resty.core.base64: ngx.encode_base64, ngx.decode_base64 and
-- ngx.decode_base64mime over ffi-headers/base64.h.

local base = require "resty.core.base"
local ffi = require "ffi"
local as_string = base.as_string

base.cdef "base64"

local C = ffi.C
local ffi_str = ffi.string
local type = type
local tostring = tostring
local error = error
local floor = math.floor
local get_string_buf = base.get_string_buf

local c_encode = C.halo_ffi_base64_encode
local c_decode = C.halo_ffi_base64_decode

local ngx = ngx

-- Room for encoding len bytes (with padding: enough without it too).
local function encoded_length(len)
    return floor((len + 2) / 3) * 4
end

local function decoded_length(len)
    return floor((len + 3) / 4) * 3
end

-- ngx.encode_base64(str, no_padding?): nil and false encode as "", other
-- values as tostring(value).
function ngx.encode_base64(s, no_padding)
    s = as_string(s)
    local flags = 0
    if no_padding then
        if no_padding ~= true then
            error("bad no_padding: boolean expected, got " .. type(no_padding), 2)
        end
        flags = 1
    end
    local slen = #s
    local dlen = encoded_length(slen)
    local dst = get_string_buf(dlen)
    return ffi_str(dst, c_encode(s, slen, flags, dst, dlen))
end

local function decode(s, mode)
    local slen = #s
    local dlen = decoded_length(slen)
    local dst = get_string_buf(dlen)
    local n = c_decode(s, slen, mode, dst, dlen)
    if n < 0 then
        return nil
    end
    return ffi_str(dst, n)
end

-- ngx.decode_base64(str): nil for invalid input.
function ngx.decode_base64(s)
    if type(s) ~= "string" then
        error("string argument only", 2)
    end
    return decode(s, 0)
end

-- ngx.decode_base64mime(str): as decode_base64, skipping bytes outside
-- the alphabet (line breaks).
function ngx.decode_base64mime(s)
    if type(s) ~= "string" then
        error("string argument only", 2)
    end
    return decode(s, 2)
end

return {
    version = base.version,
}
