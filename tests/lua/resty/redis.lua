-- A Redis client for the test suite, written for halo from lua-resty-redis's
-- documented public API (not its source). It uses only the documented
-- OpenResty cosocket API, so it runs on nginx + lua-nginx-module and on halo.
--
--   local redis = require "resty.redis"
--   local red = redis:new()
--   red:set_timeout(1000)
--   local ok, err = red:connect("127.0.0.1", 6379)   -- or red:connect("unix:/path")
--   red:set("k", "v"); local v = red:get("k")         -- every command is a method
--   red:init_pipeline(); red:get("a"); red:get("b"); local res = red:commit_pipeline()
--   red:set_keepalive(10000, 100)

local tcp = ngx.socket.tcp
local null = ngx.null
local concat = table.concat
local type, tostring, tonumber, select, setmetatable, pairs = type, tostring, tonumber, select, setmetatable, pairs
local sub, byte = string.sub, string.byte

local _M = { _VERSION = "0.1-halo-test" }
local mt = { __index = _M }

-- Every lower-case name not defined below is a Redis command: red:get(...),
-- red:hmset(...), red:lpush(...). Instance state lives in "_"-prefixed fields,
-- which this never turns into commands.
setmetatable(_M, {
    __index = function(t, name)
        if type(name) ~= "string" or not name:match("^%l[%l%d_]*$") then
            return nil
        end
        local f = function(self, ...)
            return self:_command(name, ...)
        end
        rawset(t, name, f)
        return f
    end,
})

function _M.new(_)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ _sock = sock, _reqs = false, _subscribed = false }, mt)
end

function _M.set_timeout(self, timeout)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeout(timeout)
    return 1
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeouts(connect_timeout, send_timeout, read_timeout)
    return 1
end

-- connect(host, port[, opts]) or connect("unix:/path"[, opts]).
-- opts: pool, pool_size, backlog. (ssl is not supported here.)
function _M.connect(self, host, port_or_opts, opts)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    local unix = type(host) == "string" and sub(host, 1, 5) == "unix:"
    if unix and type(port_or_opts) == "table" then
        opts = port_or_opts
    end
    local copts
    if opts then
        if opts.ssl then
            return nil, "ssl is not supported by this client"
        end
        copts = { pool = opts.pool, pool_size = opts.pool_size, backlog = opts.backlog }
        if copts.pool == nil and copts.pool_size == nil and copts.backlog == nil then
            copts = nil
        end
    end
    self._subscribed = false
    if unix then
        if copts then
            return sock:connect(host, copts)
        end
        return sock:connect(host)
    end
    if copts then
        return sock:connect(host, port_or_opts, copts)
    end
    return sock:connect(host, port_or_opts)
end

function _M.set_keepalive(self, ...)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    if self._subscribed then
        return nil, "subscribed state"
    end
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    return sock:getreusedtimes()
end

function _M.close(self)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    return sock:close()
end

-- The request in RESP: an array of bulk strings.
local function encode(args, n)
    local out = { "*", n, "\r\n" }
    for i = 1, n do
        local a = args[i]
        if type(a) ~= "string" then
            a = tostring(a)
        end
        out[#out + 1] = "$"
        out[#out + 1] = #a
        out[#out + 1] = "\r\n"
        out[#out + 1] = a
        out[#out + 1] = "\r\n"
    end
    return concat(out)
end

-- One reply. Returns the value, or nil + err on a socket error, or
-- false + err for a Redis error reply.
local function read_reply(sock)
    local line, err = sock:receive("*l")
    if not line then
        return nil, err
    end
    local kind = byte(line)
    local rest = sub(line, 2)
    if kind == 43 then -- "+"
        return rest
    elseif kind == 36 then -- "$"
        local n = tonumber(rest)
        if not n then
            return nil, "bad reply"
        end
        if n < 0 then
            return null
        end
        local data, rerr = sock:receive(n + 2)
        if not data then
            return nil, rerr
        end
        return sub(data, 1, n)
    elseif kind == 58 then -- ":"
        return tonumber(rest)
    elseif kind == 42 then -- "*"
        local n = tonumber(rest)
        if not n then
            return nil, "bad reply"
        end
        if n < 0 then
            return null
        end
        local vals = {}
        for i = 1, n do
            local v, verr = read_reply(sock)
            if v == nil then
                return nil, verr
            end
            if v == false then
                vals[i] = { false, verr }
            else
                vals[i] = v
            end
        end
        return vals
    elseif kind == 45 then -- "-"
        return false, rest
    end
    return nil, "bad reply"
end

function _M.read_reply(self)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    local res, err = read_reply(sock)
    return res, err
end

function _M._command(self, name, ...)
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    local n = select("#", ...)
    local args = { name, ... }
    n = n + 1
    -- hmset key {field = value, ...}
    if name == "hmset" and n == 3 and type(args[3]) == "table" then
        local t = args[3]
        args = { name, args[2] }
        n = 2
        for k, v in pairs(t) do
            args[n + 1] = k
            args[n + 2] = v
            n = n + 2
        end
    end
    local req = encode(args, n)
    local reqs = self._reqs
    if reqs then
        reqs[#reqs + 1] = req
        return true
    end
    local bytes, err = sock:send(req)
    if not bytes then
        return nil, err
    end
    if name == "subscribe" or name == "psubscribe" then
        self._subscribed = true
    end
    return read_reply(sock)
end

function _M.init_pipeline(self, _n)
    self._reqs = {}
end

function _M.cancel_pipeline(self)
    self._reqs = false
end

function _M.commit_pipeline(self)
    local reqs = self._reqs
    if not reqs then
        return nil, "no pipeline"
    end
    self._reqs = false
    local sock = self._sock
    if not sock then
        return nil, "not initialized"
    end
    local bytes, err = sock:send(reqs)
    if not bytes then
        return nil, err
    end
    local vals = {}
    for i = 1, #reqs do
        local res, rerr = read_reply(sock)
        if res == nil then
            return nil, rerr
        end
        if res == false then
            vals[i] = { false, rerr }
        else
            vals[i] = res
        end
    end
    return vals
end

-- {k1, v1, k2, v2} -> {k1 = v1, k2 = v2} (for hgetall and friends).
function _M.array_to_hash(self, t)
    if t == nil then
        t = self
    end
    local h = {}
    for i = 1, #t, 2 do
        h[t[i]] = t[i + 1]
    end
    return h
end

-- red:add_commands("foo", "bar") is documented as deprecated: every command
-- is a method already.
function _M.add_commands(...)
end

return _M
