-- resty.core.hash: ngx.md5, ngx.md5_bin, ngx.sha1_bin, ngx.hmac_sha1,
-- ngx.crc32_short and ngx.crc32_long over ffi-headers/hash.h.

local base = require "resty.core.base"
local ffi = require "ffi"
local as_string = base.as_string
local check_string = base.check_string

base.cdef "hash"

local C = ffi.C
local ffi_str = ffi.string
local ffi_new = ffi.new

local c_md5_bin = C.halo_ffi_hash_md5_bin
local c_md5 = C.halo_ffi_hash_md5
local c_sha1_bin = C.halo_ffi_hash_sha1_bin
local c_hmac_sha1 = C.halo_ffi_hash_hmac_sha1
local c_crc32 = C.halo_ffi_hash_crc32

-- Fixed-size results: one buffer each, allocated once.
local md5_buf = ffi_new("unsigned char[16]")
local md5_hex_buf = ffi_new("unsigned char[32]")
local sha_buf = ffi_new("unsigned char[20]")
local hmac_buf = ffi_new("unsigned char[20]")

local ngx = ngx

-- As lua-resty-core: nil and false hash as "", other values as tostring()
-- (base.as_string).

function ngx.md5_bin(s)
    s = as_string(s)
    c_md5_bin(s, #s, md5_buf)
    return ffi_str(md5_buf, 16)
end

function ngx.md5(s)
    s = as_string(s)
    c_md5(s, #s, md5_hex_buf)
    return ffi_str(md5_hex_buf, 32)
end

function ngx.sha1_bin(s)
    s = as_string(s)
    c_sha1_bin(s, #s, sha_buf)
    return ffi_str(sha_buf, 20)
end

-- ngx.hmac_sha1(key, str): strings or numbers, as lua-nginx-module's
-- luaL_checklstring.
function ngx.hmac_sha1(key, s)
    key = check_string(key, 1, "hmac_sha1")
    s = check_string(s, 2, "hmac_sha1")
    c_hmac_sha1(key, #key, s, #s, hmac_buf)
    return ffi_str(hmac_buf, 20)
end

local function crc32(s)
    s = as_string(s)
    return c_crc32(s, #s)
end

-- nginx's two CRC-32 functions differ only in speed on short and long
-- inputs; the result is the same.
ngx.crc32_short = crc32
ngx.crc32_long = crc32

return {
    version = base.version,
}
