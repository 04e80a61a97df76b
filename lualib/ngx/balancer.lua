-- ngx.balancer: lua-resty-core's balancer API for balancer_by_lua*, over
-- ffi-headers/balancer.h. Each call sets what the proxy's next try uses:
-- the peer, how many more tries, the timeouts. Beyond nginx, the handler
-- may wait (a cosocket lookup, ngx.sleep) before it picks.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "balancer"

local C = ffi.C
local c_set_peer = C.halo_ffi_balancer_set_current_peer
local c_more_tries = C.halo_ffi_balancer_set_more_tries
local c_last_failure = C.halo_ffi_balancer_get_last_failure
local c_set_timeouts = C.halo_ffi_balancer_set_timeouts
local c_enable_keepalive = C.halo_ffi_balancer_enable_keepalive
local FFI_OK = base.FFI_OK
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local phase = require "resty.core.phase"
local ffi_new = ffi.new
local ffi_str = ffi.string
local type = type
local error = error
local tostring = tostring
local match = string.match

local errmsg = base.get_errmsg_ptr()
local status_out = ffi_new("int[1]")
local states = { [1] = "failed", [2] = "next" }

local function request()
    return phase.request(3)
end

local function check(rc, r)
    if rc == FFI_BAD_CONTEXT then
        error(phase.disabled(r), 3)
    elseif rc < 0 then
        error("no request found", 3)
    end
end

local _M = { version = base.version }

-- set_current_peer(addr, port[, opts]) or set_current_peer("addr:port").
-- The third argument names the keep-alive pool enable_keepalive uses:
-- APISIX's table form { pool = name, pool_size = n }, or the host string
-- of current lua-resty-core (TLS's SNI, when halo has TLS).
function _M.set_current_peer(addr, port, opts)
    if type(addr) ~= "string" then
        error("bad argument #1 to 'set_current_peer' (string expected, got " .. type(addr) .. ")", 2)
    end
    local pool, pool_size
    if opts ~= nil then
        local t = type(opts)
        if t == "string" then
            pool = opts
        elseif t == "table" then
            pool = opts.pool
            pool_size = opts.pool_size
            if pool ~= nil and type(pool) ~= "string" then
                error("bad option 'pool' to 'set_current_peer' (string expected, got " .. type(pool) .. ")", 2)
            end
            if pool_size ~= nil then
                if type(pool_size) ~= "number" then
                    error("bad option 'pool_size' to 'set_current_peer' (number expected, got " .. type(pool_size) .. ")", 2)
                elseif pool_size < 1 then
                    error("bad option 'pool_size' to 'set_current_peer' (expected > 0)", 2)
                end
            end
        else
            error("bad argument #3 to 'set_current_peer' (table expected, got " .. t .. ")", 2)
        end
    end
    if port == nil then
        local a, p = match(addr, "^(.*):(%d+)$")
        if not a then
            return nil, "no port in addr"
        end
        addr, port = a, tonumber(p)
    end
    if type(port) ~= "number" then
        error("bad argument #2 to 'set_current_peer' (number expected, got " .. type(port) .. ")", 2)
    end
    local r = request()
    local rc = c_set_peer(r, addr, #addr, port, pool, pool and #pool or 0, pool_size or 0, errmsg)
    if rc == FFI_OK then
        return true
    elseif rc == base.FFI_ERROR then
        return nil, ffi_str(errmsg[0])
    end
    check(rc, r)
end

function _M.set_more_tries(count)
    if type(count) ~= "number" then
        error("bad argument #1 to 'set_more_tries' (number expected, got " .. type(count) .. ")", 2)
    end
    local r = request()
    check(c_more_tries(r, count), r)
    return true
end

-- The last try's state ("failed", "next") and status; nil on the first.
function _M.get_last_failure()
    local r = request()
    local rc = c_last_failure(r, status_out)
    check(rc, r)
    local state = states[rc]
    if not state then
        return nil
    end
    return state, status_out[0]
end

function _M.set_timeouts(connect, send, read)
    local r = request()
    check(c_set_timeouts(r, connect or -1, send or -1, read or -1), r)
    return true
end

-- Keep the try's connection after the response in set_current_peer's
-- pool: idle_timeout seconds (60; 0: no limit), max_requests requests
-- (100; 0: no limit), as lua-resty-core's.
-- enable_keepalive's argument n: v, its default when nil, or an error at
-- the caller's caller.
local function keepalive_arg(n, v, default)
    if v == nil then
        return default
    end
    if type(v) ~= "number" then
        error("bad argument #" .. n .. " to 'enable_keepalive' (number expected, got " .. type(v) .. ")", 3)
    end
    if v < 0 then
        error("bad argument #" .. n .. " to 'enable_keepalive' (expected >= 0)", 3)
    end
    return v
end

function _M.enable_keepalive(idle_timeout, max_requests)
    idle_timeout = keepalive_arg(1, idle_timeout, 60)
    max_requests = keepalive_arg(2, max_requests, 100)
    local r = request()
    local rc = c_enable_keepalive(r, idle_timeout, max_requests, errmsg)
    if rc == FFI_OK then
        return true
    elseif rc == base.FFI_ERROR then
        return nil, ffi_str(errmsg[0])
    end
    check(rc, r)
end

function _M.recreate_request()
    request()
    return true
end

function _M.set_upstream_tls()
    return nil, "set_upstream_tls is not supported by halo yet (no TLS)"
end

return _M
