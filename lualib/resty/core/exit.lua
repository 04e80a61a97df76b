-- resty.core.exit: ngx.exit and ngx.sleep. Both tell the core what to do,
-- then yield the handler's coroutine back to it: ngx.exit ends the handler
-- there; ngx.sleep is resumed by the event loop when the time is up.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local c_exit = C.halo_ffi_request_exit
local c_sleep = C.halo_ffi_request_sleep
local FFI_AGAIN = base.FFI_AGAIN
local FFI_DONE = base.FFI_DONE
local FFI_DECLINED = base.FFI_DECLINED
local FFI_ERROR = base.FFI_ERROR
local errmsg = base.get_errmsg_ptr()
local ffi_str = ffi.string
local tostring = tostring
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local disabled = require("resty.core.phase").disabled
local request = require("resty.core.phase").request
local context = require("resty.core.phase").context
local type = type
local error = error
-- Yields to the core through any user coroutines (resty.core.coroutine).
local co_yield = require("resty.core.coroutine").api_yield

function ngx.exit(status)
    if type(status) ~= "number" then
        error("bad argument #1 to 'exit' (number expected, got " .. type(status) .. ")", 2)
    end
    local r = request(3)
    local rc = c_exit(r, status)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc == FFI_DECLINED then
        if status == FFI_AGAIN or status == FFI_DONE then
            error("bad argument to 'ngx.exit': does not accept NGX_AGAIN or NGX_DONE", 2)
        end
        error("bad argument #1 to 'exit' (invalid status code " .. tostring(status) .. ")", 2)
    end
    return co_yield()
end

local c_set_header = C.halo_ffi_request_set_header
local c_headers_sent = C.halo_ffi_request_headers_sent
local redirect_ok = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

-- ngx.redirect(uri, status?): Location (made absolute by the core when it
-- starts with '/', as nginx's header filter does) and the status, then exit.
function ngx.redirect(uri, status)
    if type(uri) ~= "string" then
        error("bad argument #1 to 'redirect' (string expected, got " .. type(uri) .. ")", 2)
    end
    status = status or 302
    if not redirect_ok[status] then
        error("only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, "
              .. "ngx.HTTP_PERMANENT_REDIRECT, ngx.HTTP_SEE_OTHER, and "
              .. "ngx.HTTP_TEMPORARY_REDIRECT are allowed", 2)
    end
    local r = request(3)
    -- As lua-nginx-module: too late once the head may be on the wire.
    if c_headers_sent(r) == 1 then
        error("attempt to call ngx.redirect after sending out the headers", 2)
    end
    -- CR and LF in the target are escaped by the core, as in any header.
    local rc = c_set_header(r, "Location", 8, uri, #uri, errmsg)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc == FFI_ERROR then
        error(ffi_str(errmsg[0]), 2)
    end
    c_exit(r, status)
    return co_yield()
end

local c_exec = C.halo_ffi_request_exec
local encode_args = require("resty.core.string").encode_args

-- ngx.exec(uri, args?): internal redirect to uri ("/path" or "@name"),
-- args a string or a table; ends the handler.
function ngx.exec(uri, args)
    if type(uri) ~= "string" then
        error("bad argument #1 to 'exec' (string expected, got " .. type(uri) .. ")", 2)
    end
    if args == nil then
        args = ""
    elseif type(args) == "table" then
        args = encode_args(args)
    elseif type(args) ~= "string" then
        error("bad argument #2 to 'exec' (string or table expected, got " .. type(args) .. ")", 2)
    end
    local r = request(3)
    if c_headers_sent(r) == 1 then
        error("attempt to call ngx.exec after sending out response headers", 2)
    end
    local rc = c_exec(r, uri, #uri, args, #args)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc == FFI_DECLINED then
        error("bad argument #1 to 'exec' (a URI starting with '/' or '@' expected)", 2)
    end
    return co_yield()
end

function ngx.sleep(seconds)
    if type(seconds) ~= "number" then
        error("bad argument #1 to 'sleep' (number expected, got " .. type(seconds) .. ")", 2)
    end
    local r = context(3)
    local rc = c_sleep(r, seconds)
    if rc == FFI_AGAIN then
        return co_yield()
    end
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
    error("bad argument #1 to 'sleep' (a non-negative number of seconds expected)", 2)
end

return {}
