-- resty.core.output: ngx.print, ngx.say, ngx.send_headers, ngx.flush and
-- ngx.eof over ffi-headers/request.h.
-- Arguments are flattened as lua-nginx-module does: strings, numbers,
-- booleans, nil ("nil"), ngx.null ("null") and (nested) array tables.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local request = require("resty.core.phase").request
local c_write = C.halo_ffi_request_write
local type = type
local tostring = tostring
local error = error
local select = select
local concat = table.concat
local new_tab = base.new_tab
local ngx = ngx
local null = ngx.null
local disabled = require("resty.core.phase").disabled
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local FFI_DECLINED = base.FFI_DECLINED
local c_send_headers = C.halo_ffi_request_send_headers
local c_eof = C.halo_ffi_request_eof
local c_flush = C.halo_ffi_request_flush
local FFI_AGAIN = base.FFI_AGAIN
-- Yields to the core through any user coroutines (resty.core.coroutine).
local co_yield = require("resty.core.coroutine").api_yield

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
        -- Level 3: flatten, output, then the caller (ngx.say tail-calls output).
        error("bad argument to '" .. fname .. "' (string, number, boolean, nil, "
              .. "ngx.null, or array table expected, got " .. t .. ")", 3)
    end
    return n
end

local function output(fname, newline, ...)
    local r = request(3)
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
    local rc = c_write(r, s, #s)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc == FFI_DECLINED then
        return nil, "seen eof"
    end
    if newline then
        c_write(r, "\n", 1)
    end
    return 1
end

function ngx.send_headers()
    local r = request(3)
    if c_send_headers(r) == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
    return 1
end

-- A content handler's output streams: ngx.flush and ngx.eof send what there
-- is and wait until it is written (ngx.flush(false) waits too). Elsewhere
-- the output is sent when the handler ends and both return at once.
-- (Called, not tail-called, so error levels count the API's own frame.)
local function send(c_fn)
    local r = request(4)
    local rc = c_fn(r)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 3)
    elseif rc == FFI_AGAIN then
        co_yield()
    end
end

function ngx.flush()
    send(c_flush)
    return 1
end

function ngx.eof()
    send(c_eof)
    return 1
end

function ngx.print(...)
    return output("print", false, ...)
end

function ngx.say(...)
    return output("say", true, ...)
end

return {}
