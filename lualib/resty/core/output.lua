-- resty.core.output: ngx.print and ngx.say over ffi-headers/request.h.
-- Arguments are flattened as lua-nginx-module does: strings, numbers,
-- booleans, nil ("nil"), ngx.null ("null") and (nested) array tables.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_write = C.halo_ffi_request_write
local type = type
local tostring = tostring
local error = error
local select = select
local concat = table.concat
local new_tab = base.new_tab
local ngx = ngx
local null = ngx.null

local function flatten(parts, n, v, fname)
    local t = type(v)
    if t == "string" then
        n = n + 1
        parts[n] = v
    elseif t == "number" or t == "boolean" then
        n = n + 1
        parts[n] = tostring(v)
    elseif t == "nil" then
        n = n + 1
        parts[n] = "nil"
    elseif v == null then
        n = n + 1
        parts[n] = "null"
    elseif t == "table" then
        for i = 1, #v do
            n = flatten(parts, n, v[i], fname)
        end
    else
        error("bad argument to '" .. fname .. "' (string, number, boolean, nil, "
              .. "ngx.null, or array table expected, got " .. t .. ")", 4)
    end
    return n
end

local function output(fname, newline, ...)
    local r = get_request()
    if r == 0 then
        error("no request found", 3)
    end
    local nargs = select("#", ...)
    local s
    if nargs == 1 and type((...)) == "string" then
        s = ...
    else
        local parts = new_tab(nargs, 0)
        local n = 0
        for i = 1, nargs do
            n = flatten(parts, n, (select(i, ...)), fname)
        end
        s = concat(parts, "", 1, n)
    end
    c_write(r, s, #s)
    if newline then
        c_write(r, "\n", 1)
    end
    return 1
end

function ngx.print(...)
    return output("print", false, ...)
end

function ngx.say(...)
    return output("say", true, ...)
end

return {}
