-- resty.core.response: setting response headers through ngx.header, and
-- ngx.status, over ffi-headers/request.h.

local base = require "resty.core.base"
local no_request = require("resty.core.phase").no_request
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_is_subrequest = C.halo_ffi_request_is_subrequest
local c_set_header = C.halo_ffi_request_set_header
local c_get_status = C.halo_ffi_request_get_status
local c_set_status = C.halo_ffi_request_set_status
local c_get_resp_header = C.halo_ffi_request_get_resp_header
local c_add_header = C.halo_ffi_request_add_header
local ffi_str = ffi.string
local ffi_new = ffi.new
local value_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")
local type = type
local error = error
local tostring = tostring
local rawget = rawget
local rawset = rawset
local FFI_OK = base.FFI_OK
local FFI_ERROR = base.FFI_ERROR
local errmsg = base.get_errmsg_ptr()
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local disabled = require("resty.core.phase").disabled

local ngx = ngx

-- Raises the core's verdict on a header (a name that is not a token, a
-- NUL in the value: http/field.rs) as the caller's error.
local function check(r, rc)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 3)
    elseif rc == FFI_ERROR then
        error(ffi_str(errmsg[0]), 3)
    end
end

local function set_header(_, name, value)
    if type(name) ~= "string" then
        error("bad argument #1 to 'ngx.header' (string expected, got " .. type(name) .. ")", 2)
    end
    local r = get_request()
    if r == 0 then
        no_request(2)
    end
    -- ngx.header.content_type means Content-Type: the core turns '_' into
    -- '-' (string.gsub would not be JIT-compiled).
    local vt = type(value)
    if vt == "nil" then
        check(r, c_set_header(r, name, #name, nil, 0, errmsg))
        return
    end
    if vt == "table" then
        -- Several values: one header line each (Set-Cookie, say).
        check(r, c_set_header(r, name, #name, nil, 0, errmsg))
        for i = 1, #value do
            local v = tostring(value[i])
            check(r, c_add_header(r, name, #name, v, #v, errmsg))
        end
        return
    end
    if vt == "number" or vt == "boolean" then
        value = tostring(value)
    elseif vt ~= "string" then
        error("bad argument to 'ngx.header." .. name .. "' (string, number, boolean, nil or table expected, got " .. vt .. ")", 2)
    end
    check(r, c_set_header(r, name, #name, value, #value, errmsg))
end

-- ngx.resp.add_header(name, value): one more value (or several, from a
-- table) of a response header, after those already set.
local function add_resp_header(name, value)
    if type(name) ~= "string" then
        error("bad argument #1 to 'add_header' (string expected, got " .. type(name) .. ")", 3)
    end
    local r = get_request()
    if r == 0 then
        no_request(3)
    end
    local vt = type(value)
    if vt == "table" then
        for i = 1, #value do
            local v = tostring(value[i])
            check(r, c_add_header(r, name, #name, v, #v, errmsg))
        end
        return
    end
    if vt == "number" or vt == "boolean" then
        value = tostring(value)
    elseif vt ~= "string" then
        error("invalid header value", 3)
    end
    check(r, c_add_header(r, name, #name, value, #value, errmsg))
end

-- Reading ngx.header.X: the response header as set so far (one value).
local function get_header(_, name)
    if type(name) ~= "string" then
        error("bad argument #1 to 'ngx.header' (string expected, got " .. type(name) .. ")", 2)
    end
    local r = get_request()
    if r == 0 then
        no_request(2)
    end
    if c_get_resp_header(r, name, #name, value_out, len_out) == FFI_OK then
        return ffi_str(value_out[0], len_out[0])
    end
    return nil
end

ngx.header = setmetatable({}, { __index = get_header, __newindex = set_header })

-- ngx.status, ngx.headers_sent and ngx.is_subrequest are fields with
-- getters (ngx.status a setter too), as in lua-nginx-module.
local mt = getmetatable(ngx) or {}

local c_headers_sent = C.halo_ffi_request_headers_sent

mt.__index = function(t, key)
    if key == "headers_sent" then
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        return c_headers_sent(r) == 1
    end
    if key == "status" then
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        return c_get_status(r)
    end
    if key == "is_subrequest" then
        -- A field, true in a subrequest (ngx.location.capture).
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        return c_is_subrequest(r) == 1
    end
    return rawget(t, key)
end

mt.__newindex = function(t, key, value)
    if key == "status" then
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        if type(value) ~= "number" then
            error("bad argument to 'ngx.status' (number expected, got " .. type(value) .. ")", 2)
        end
        local rc = c_set_status(r, value)
        if rc == FFI_BAD_CONTEXT then
            error(disabled(r), 2)
        elseif rc ~= FFI_OK then
            error("invalid HTTP status code " .. tostring(value), 2)
        end
        return
    end
    rawset(t, key, value)
end

setmetatable(ngx, mt)

return {
    add_resp_header = add_resp_header,
}
