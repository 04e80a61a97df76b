-- resty.core.config: the ngx.config table. Versions are those of the
-- OpenResty release whose API halo follows (libraries compare them).

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "config"

local C = ffi.C
local ffi_str = ffi.string
local ffi_new = ffi.new
local tonumber = tonumber
local c_prefix = C.halo_ffi_config_prefix

local data_out = ffi_new("const char *[1]")
local len_out = ffi_new("size_t[1]")

local config = ngx.config
if not config then
    config = base.new_tab(0, 8)
    ngx.config = config
end

config.subsystem = "http"
config.debug = false
config.nginx_version = 1027001      -- nginx 1.27.1
config.ngx_lua_version = 10027      -- lua-nginx-module 0.10.27

-- The server prefix, with a trailing slash.
function config.prefix()
    c_prefix(data_out, len_out)
    return ffi_str(data_out[0], tonumber(len_out[0]))
end

-- nginx returns its ./configure arguments; halo has none.
function config.nginx_configure()
    return ""
end

return {
    version = base.version,
}
