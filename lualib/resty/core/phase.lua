-- resty.core.phase: ngx.get_phase, the running request for the other
-- modules, and the "API disabled" message they raise when the core answers
-- HALO_FFI_BAD_CONTEXT.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local get_context = C.halo_ffi_request_context
local c_get_phase = C.halo_ffi_request_get_phase
local error = error

local names = { "rewrite", "access", "content", "log", "header_filter", "body_filter", "set", "timer", "balancer" }

local _M = {}

-- The running handler's phase ("timer" in a timer); "init" outside any
-- (module loading).
function ngx.get_phase()
    local r = get_context()
    if r == 0 then
        return "init"
    end
    return names[c_get_phase(r)] or "unknown"
end

-- Raises what a request API says without a request, at `level` (counted
-- from the caller of this function, as error() counts): "no request
-- found", or in a timer lua-resty-core's "API disabled in the current
-- context" (the FFI-based API: ngx.var, ngx.ctx, ngx.header, ngx.status,
-- ngx.req.get_headers, ...).
local function no_request(level)
    if get_context() ~= 0 then
        error("API disabled in the current context", level + 1)
    end
    error("no request found", level + 1)
end
_M.no_request = no_request

-- The running handler's request handle for the FFI-based API; without
-- one, raises as no_request at `level` (counted from this function).
function _M.ffi_request(level)
    local r = get_request()
    if r == 0 then
        no_request(level)
    end
    return r
end

-- The same for the API lua-nginx-module has in C (ngx.say, ngx.exit,
-- ngx.req.read_body, ...): in a timer, "API disabled in the context of
-- ngx.timer".
function _M.request(level)
    local r = get_request()
    if r == 0 then
        local cx = get_context()
        if cx ~= 0 then
            error(_M.disabled(cx), level)
        end
        error("no request found", level)
    end
    return r
end

-- The running context's handle (a request's handler, a timer, a light
-- thread), for the APIs that work in all of them (sleep, threads,
-- sockets); raises "no request found" at `level` outside any.
function _M.context(level)
    local r = get_context()
    if r == 0 then
        error("no request found", level)
    end
    return r
end

-- "API disabled in the context of log_by_lua*", for request r (in a
-- timer: "... of ngx.timer").
function _M.disabled(r)
    local name = names[c_get_phase(r)] or "unknown"
    if name == "timer" then
        return "API disabled in the context of ngx.timer"
    end
    return "API disabled in the context of " .. name .. "_by_lua*"
end

return _M
