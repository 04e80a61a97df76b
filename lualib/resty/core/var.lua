-- resty.core.var: ngx.var.NAME, read and written, over ffi-headers/request.h.

local base = require "resty.core.base"
local no_request = require("resty.core.phase").no_request
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_get_var = C.halo_ffi_request_get_var
local c_set_var = C.halo_ffi_request_set_var
local FFI_DECLINED = base.FFI_DECLINED
local ffi_str = ffi.string
local ffi_new = ffi.new
local type = type
local error = error
local tostring = tostring
local FFI_OK = base.FFI_OK

local value_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")

local function get(_, name)
    if type(name) ~= "string" then
        if type(name) == "number" then
            name = tostring(name)   -- ngx.var[1]: regex capture $1
        else
            error("bad variable name: " .. tostring(name), 2)
        end
    end
    local r = get_request()
    if r == 0 then
        no_request(2)
    end
    if c_get_var(r, name, #name, value_out, len_out) == FFI_OK then
        return ffi_str(value_out[0], len_out[0])
    end
    return nil
end

local function set(_, name, value)
    if type(name) ~= "string" then
        error("bad variable name: " .. tostring(name), 2)
    end
    local r = get_request()
    if r == 0 then
        no_request(2)
    end
    if value == nil then
        value = ""
    elseif type(value) ~= "string" then
        value = tostring(value)
    end
    local rc = c_set_var(r, name, #name, value, #value)
    if rc == FFI_OK then
        return
    end
    if rc == FFI_DECLINED then
        error("variable \"" .. name .. "\" not found for writing; maybe it is a built-in "
              .. "variable that is not changeable or you forgot to use \"set $" .. name
              .. " '';\" in the config file to define it first", 2)
    end
    error("variable \"" .. name .. "\" not changeable", 2)
end

ngx.var = setmetatable({}, { __index = get, __newindex = set })

return {}
