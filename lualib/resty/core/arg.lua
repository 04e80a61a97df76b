-- resty.core.arg: ngx.arg. In body_filter_by_lua*, ngx.arg[1] is the body
-- (halo passes the whole body at once) and ngx.arg[2] is true at its end;
-- both can be assigned. In set_by_lua*, ngx.arg[i] are the directive's
-- arguments.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local c_get_arg = C.halo_ffi_request_get_arg
local c_get_eof = C.halo_ffi_request_get_arg_eof
local c_set_body = C.halo_ffi_request_set_arg_body
local c_set_eof = C.halo_ffi_request_set_arg_eof
local ffi_str = ffi.string
local ffi_new = ffi.new
local type = type
local error = error
local tostring = tostring
local concat = table.concat
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local disabled = require("resty.core.phase").disabled

local data_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")

local request = require("resty.core.phase").request

local FFI_OK = base.FFI_OK

local function get(_, i)
    local r = request(3)
    if type(i) ~= "number" then
        return nil
    end
    local rc = c_get_arg(r, i, data_out, len_out)
    if rc == FFI_OK then
        return ffi_str(data_out[0], len_out[0])
    end
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
    if i == 2 then
        -- body_filter_by_lua's eof flag.
        local eof = c_get_eof(r)
        if eof >= 0 then
            return eof == 1
        end
    end
    return nil
end

local function set(_, i, v)
    local r = request(3)
    local rc
    if i == 1 then
        local t = type(v)
        if t == "table" then
            v = concat(v)
        elseif t == "nil" then
            v = ""
        elseif t ~= "string" then
            v = tostring(v)
        end
        rc = c_set_body(r, v, #v)
    elseif i == 2 then
        rc = c_set_eof(r, v and 1 or 0)
    else
        error("bad index " .. tostring(i) .. " for ngx.arg", 2)
    end
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
end

ngx.arg = setmetatable({}, { __index = get, __newindex = set })

return {}
