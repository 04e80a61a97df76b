-- resty.core.socket: ngx.socket.tcp (also ngx.socket.stream and
-- ngx.socket.connect) and ngx.socket.udp, cosockets on the core's event
-- loop. A socket object
-- is a table holding the core's handle; each method calls the core, and on
-- HALO_FFI_AGAIN yields (through user coroutines) and calls again, which
-- then gives the outcome. Only the calling coroutine waits.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "socket"

local C = ffi.C
local c_new = C.halo_ffi_socket_tcp_new
local c_connect = C.halo_ffi_socket_tcp_connect
local c_send = C.halo_ffi_socket_tcp_send
local c_receive = C.halo_ffi_socket_tcp_receive
local c_receive_until = C.halo_ffi_socket_tcp_receive_until
local c_settimeouts = C.halo_ffi_socket_tcp_settimeouts
local c_setkeepalive = C.halo_ffi_socket_tcp_setkeepalive
local c_close = C.halo_ffi_socket_tcp_close
local c_reused = C.halo_ffi_socket_tcp_reused
local c_fd = C.halo_ffi_socket_tcp_fd
local c_setoption = C.halo_ffi_socket_tcp_setoption
local c_pool_opts = C.halo_ffi_socket_tcp_pool_opts
local c_errmsg = C.halo_ffi_socket_errmsg
local c_req_socket = C.halo_ffi_socket_req
local FFI_OK = base.FFI_OK
local FFI_AGAIN = base.FFI_AGAIN
local FFI_DONE = base.FFI_DONE
local FFI_ERROR = base.FFI_ERROR
local FFI_DECLINED = base.FFI_DECLINED
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local FFI_NO_REQ_CTX = base.FFI_NO_REQ_CTX
local phase = require "resty.core.phase"
local context = phase.context
local disabled = phase.disabled
local co_yield = require("resty.core.coroutine").api_yield
local ffi_new = ffi.new
local ffi_str = ffi.string
local type = type
local error = error
local tostring = tostring
local setmetatable = setmetatable
local concat = table.concat
local select = select
local tonumber = tonumber
local byte = string.byte
local sub = string.sub
local floor = math.floor

local handle_out = ffi_new("uint64_t[1]")
local data_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")
local err_out = ffi_new("const unsigned char *[1]")

local function errmsg()
    local n = c_errmsg(err_out)
    return ffi_str(err_out[0], n)
end

local argerror = base.argerror

-- A code other than OK/AGAIN/ERROR: misuse, raised at the method's caller.
local function raise(rc, r)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 3)
    end
    error("bad request", 3)
end

local methods = {}
local mt = { __index = methods }

local function check(self)
    if type(self) ~= "table" or self[1] == nil then
        argerror(1, "table expected, got " .. type(self), 3)
    end
    return self[1]
end

local function new_socket(datagram, meta)
    local r = context(4)
    local rc = c_new(r, datagram, handle_out)
    if rc ~= FFI_OK then
        raise(rc, r)
    end
    return setmetatable({ handle_out[0] }, meta)
end

local function tcp()
    return new_socket(0, mt)
end

function methods.connect(self, ...)
    local n = select("#", ...) + 1
    if n < 2 or n > 4 then
        error("ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen " .. n, 0)
    end
    local host, port, opts = ...
    local s = check(self)
    if type(host) ~= "string" then
        argerror(2, "string expected, got " .. type(host), 2)
    end
    local path
    if sub(host, 1, 5) == "unix:" then
        path = sub(host, 6)
        if type(port) == "table" then
            opts = port
        end
        port = -1
    else
        port = tonumber(port)
        if not port then
            return nil, "missing the port number"
        end
        if port < 0 or port > 65535 or floor(port) ~= port then
            return nil, "bad port number: " .. tostring(port)
        end
    end
    local pool
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #4 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
        end
        pool = opts.pool
        if pool ~= nil and type(pool) ~= "string" then
            error("bad \"pool\" option type: " .. type(pool), 2)
        end
        local size = opts.pool_size
        if size ~= nil and (type(size) ~= "number" or size <= 0) then
            error("bad \"pool_size\" option value: " .. tostring(size), 2)
        end
        self.pool_size = size
        local backlog = opts.backlog
        if backlog ~= nil and (type(backlog) ~= "number" or backlog < 0) then
            error("bad \"backlog\" option value: " .. tostring(backlog), 2)
        end
        if backlog or self.backlog then
            self.backlog = backlog
            local rc = c_pool_opts(context(2), s, size or 0, backlog or -1)
            if rc ~= FFI_OK and rc ~= FFI_ERROR then
                raise(rc, context(2))
            end
        end
    end
    local target = path or host
    local r = context(2)
    local plen = pool and #pool or 0
    local rc = c_connect(r, s, target, #target, port, pool, plen)
    if rc == FFI_AGAIN then
        co_yield()
        rc = c_connect(r, s, target, #target, port, pool, plen)
    end
    if rc == FFI_OK then
        return 1
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

-- send's data: a string, a number, or (nested) array tables of them.
local flatten
flatten = function(t, parts, n)
    for i = 1, #t do
        local v = t[i]
        local ty = type(v)
        if ty == "string" then
            n = n + 1
            parts[n] = v
        elseif ty == "number" then
            n = n + 1
            parts[n] = tostring(v)
        elseif ty == "table" then
            local bad
            n, bad = flatten(v, parts, n)
            if bad then
                return n, bad
            end
        else
            return n, ty
        end
    end
    return n
end

function methods.send(self, data)
    local s = check(self)
    local ty = type(data)
    if ty == "number" or ty == "boolean" or ty == "nil" then
        data = tostring(data)
    elseif ty == "table" then
        local parts = {}
        local n, bad = flatten(data, parts, 0)
        if bad then
            argerror(2, "bad data type " .. bad .. " found", 2)
        end
        data = concat(parts, "", 1, n)
    elseif ty ~= "string" then
        argerror(2, "string, number, boolean, nil, or array table expected, got " .. ty, 2)
    end
    local r = context(2)
    local rc = c_send(r, s, data, #data)
    if rc == FFI_AGAIN then
        co_yield()
        rc = c_send(r, s, data, #data)
    end
    if rc >= 0 then
        return rc
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

-- After AGAIN: wait, then call again. The core waits until it can answer
-- (no retry loop here for a trace to start at); a request socket's wait
-- reads once, so it may take more rounds.
local function waited_receive(r, s, kind, n)
    co_yield()
    local rc = c_receive(r, s, kind, n, data_out, len_out)
    while rc == FFI_AGAIN do
        co_yield()
        rc = c_receive(r, s, kind, n, data_out, len_out)
    end
    return rc
end

local function waited_until(r, s, pattern, inclusive, limit)
    co_yield()
    local rc = c_receive_until(r, s, pattern, #pattern, inclusive, limit, data_out, len_out)
    while rc == FFI_AGAIN do
        co_yield()
        rc = c_receive_until(r, s, pattern, #pattern, inclusive, limit, data_out, len_out)
    end
    return rc
end

-- What a receive's code gives Lua: the data lent in data_out/len_out; nil
-- at receiveuntil's end; nil, err and the partial data (none when the
-- socket was closed already). Tail-called, so raise's level is its caller's.
local function received(rc, r)
    if rc == FFI_OK then
        return ffi_str(data_out[0], len_out[0])
    elseif rc == FFI_DONE then
        return nil
    elseif rc == FFI_ERROR then
        local err = errmsg()
        if data_out[0] == nil then
            return nil, err
        end
        return nil, err, ffi_str(data_out[0], len_out[0])
    end
    raise(rc, r)
end

-- One receive: data, or nil, err, partial.
local function receive(r, s, kind, n)
    local rc = c_receive(r, s, kind, n, data_out, len_out)
    if rc == FFI_AGAIN then
        rc = waited_receive(r, s, kind, n)
    end
    return received(rc, r)
end

function methods.receive(self, pattern)
    local s = check(self)
    local kind, n = 0, 0
    local ty = type(pattern)
    if ty == "string" and tonumber(pattern) then
        pattern = tonumber(pattern)
        ty = "number"
    end
    if ty == "number" then
        if pattern < 0 then
            argerror(2, "bad pattern argument", 2)
        end
        if pattern == 0 then
            return ""
        end
        kind, n = 2, pattern
    elseif ty == "string" then
        if pattern == "*a" or pattern == "a" then
            kind = 1
        elseif pattern ~= "*l" and pattern ~= "l" then
            argerror(2, "bad pattern argument", 2)
        end
    elseif pattern ~= nil then
        argerror(2, "bad pattern argument", 2)
    end
    return receive(context(2), s, kind, n)
end

function methods.receiveany(self, max)
    local s = check(self)
    if type(max) ~= "number" or max <= 0 then
        error("bad argument #2 to 'receiveany' (bad max argument)", 2)
    end
    return receive(context(2), s, 3, max)
end

function methods.receiveuntil(self, pattern, opts)
    local s = check(self)
    if type(pattern) ~= "string" then
        error("bad argument #2 to 'receiveuntil' (string expected, got " .. type(pattern) .. ")", 2)
    end
    if #pattern == 0 then
        return nil, "pattern is empty"
    end
    local inclusive = 0
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #3 to 'receiveuntil' (table expected, got " .. type(opts) .. ")", 2)
        end
        if opts.inclusive then
            inclusive = 1
        end
    end
    return function(size)
        if size ~= nil and (type(size) ~= "number" or size <= 0) then
            error("bad argument #1 to iterator (positive number expected)", 2)
        end
        local r = context(2)
        local limit = size and floor(size) or -1
        local rc = c_receive_until(r, s, pattern, #pattern, inclusive, limit, data_out, len_out)
        if rc == FFI_AGAIN then
            rc = waited_until(r, s, pattern, inclusive, limit)
        end
        return received(rc, r)
    end
end

local function timeout_arg(v, i, fname)
    if v == nil then
        return -1
    end
    if type(v) ~= "number" or v < 0 then
        error("bad argument #" .. i .. " to '" .. fname .. "' (non-negative number expected)", 3)
    end
    -- 0 means the lua_socket_*_timeout default, as lua-nginx-module.
    return v
end

function methods.settimeout(self, ms)
    local s = check(self)
    local t = timeout_arg(ms, 2, "settimeout")
    local r = context(2)
    local rc = c_settimeouts(r, s, t, t, t)
    if rc ~= FFI_OK and rc ~= FFI_ERROR then
        raise(rc, r)
    end
end

function methods.settimeouts(self, connect, send, read)
    local s = check(self)
    local r = context(2)
    local rc = c_settimeouts(r, s, timeout_arg(connect, 2, "settimeouts"),
                             timeout_arg(send, 3, "settimeouts"), timeout_arg(read, 4, "settimeouts"))
    if rc ~= FFI_OK and rc ~= FFI_ERROR then
        raise(rc, r)
    end
end

function methods.setkeepalive(self, timeout, size)
    local s = check(self)
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
        error("bad argument #2 to 'setkeepalive' (non-negative number expected)", 2)
    end
    if size ~= nil and (type(size) ~= "number" or size <= 0) then
        error("bad argument #3 to 'setkeepalive' (positive number expected)", 2)
    end
    size = size or self.pool_size
    local r = context(2)
    local rc = c_setkeepalive(r, s, timeout or -1, size or 0)
    if rc == FFI_OK then
        return 1
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

function methods.close(self)
    local s = check(self)
    local r = context(2)
    local rc = c_close(r, s)
    if rc == FFI_OK then
        return 1
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

-- A number the core gives for connected socket s (>= 0), else nil, "closed".
local function count_of(c_fn, s)
    local r = context(3)
    local rc = c_fn(r, s)
    if rc >= 0 then
        return rc
    elseif rc == FFI_DECLINED or rc == FFI_ERROR then
        return nil, "closed"
    end
    raise(rc, r)
end

function methods.getreusedtimes(self)
    return count_of(c_reused, check(self))
end

function methods.getfd(self)
    return count_of(c_fd, check(self))
end

local bool_options = { keepalive = true, reuseaddr = true, ["tcp-nodelay"] = true }

function methods.setoption(self, name, value)
    local s = check(self)
    if type(name) ~= "string" then
        error("bad argument #2 to 'setoption' (string expected, got " .. type(name) .. ")", 2)
    end
    local v
    if bool_options[name] then
        v = value and 1 or 0
    elseif type(value) == "number" then
        v = value
    else
        error("bad argument #3 to 'setoption' (number expected, got " .. type(value) .. ")", 2)
    end
    local r = context(2)
    local rc = c_setoption(r, s, name, #name, v)
    if rc == FFI_OK then
        return true
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

function methods.sslhandshake(self)
    check(self)
    return nil, "sslhandshake is not supported by halo yet (no TLS)"
end

-- ngx.socket.udp: setpeername, send, receive, settimeout, close.
local udp_methods = {}
local udp_mt = { __index = udp_methods }

local function udp()
    return new_socket(1, udp_mt)
end

function udp_methods.setpeername(self, host, port)
    local s = check(self)
    if type(host) ~= "string" then
        error("bad argument #2 to 'setpeername' (string expected, got " .. type(host) .. ")", 2)
    end
    local target = host
    if sub(host, 1, 5) == "unix:" then
        target = sub(host, 6)
        port = -1
    elseif type(port) ~= "number" then
        error("bad argument #3 to 'setpeername' (number expected, got " .. type(port) .. ")", 2)
    elseif port < 0 or port > 65535 or floor(port) ~= port then
        return nil, "bad port number: " .. tostring(port)
    end
    local r = context(2)
    local rc = c_connect(r, s, target, #target, port, nil, 0)
    if rc == FFI_AGAIN then
        co_yield()
        rc = c_connect(r, s, target, #target, port, nil, 0)
    end
    if rc == FFI_OK then
        return 1
    elseif rc == FFI_ERROR then
        return nil, errmsg()
    end
    raise(rc, r)
end

function udp_methods.send(self, data)
    local ok, err = methods.send(self, data)
    if not ok then
        return nil, err
    end
    return 1
end

function udp_methods.receive(self, size)
    local s = check(self)
    if size == nil then
        size = 65536
    elseif type(size) ~= "number" or size <= 0 then
        error("bad argument #2 to 'receive' (bad size argument)", 2)
    end
    local data, err = receive(context(2), s, 4, size)
    if data == nil then
        return nil, err
    end
    return data
end

udp_methods.settimeout = methods.settimeout
udp_methods.close = methods.close

-- ngx.req.socket(raw?): the request body as a read-only socket, or (raw)
-- the client connection both ways.
local req_methods = {
    receive = methods.receive,
    receiveany = methods.receiveany,
    receiveuntil = methods.receiveuntil,
    settimeout = methods.settimeout,
    settimeouts = methods.settimeouts,
}
local req_mt = { __index = req_methods }

function ngx.req.socket(raw)
    local r = phase.request(3)
    local rc = c_req_socket(r, raw and 1 or 0, handle_out)
    if rc == FFI_OK then
        return setmetatable({ handle_out[0] }, raw and mt or req_mt)
    elseif rc == FFI_ERROR then
        local err = errmsg()
        if err == "attempt to read the request body in a subrequest" then
            error(err, 2)
        end
        return nil, err
    end
    raise(rc, r)
end

local function connect(host, port, opts)
    local sock = tcp()
    local ok, err = sock:connect(host, port, opts)
    if not ok then
        return nil, err
    end
    return sock
end

ngx.socket = {
    tcp = tcp,
    stream = tcp,
    connect = connect,
    udp = udp,
}

return {}
