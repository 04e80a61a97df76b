-- An HTTP/1.1 client for the test suite, written for halo from the core of
-- lua-resty-http's documented public API (not its source). It uses only the
-- documented OpenResty cosocket API, so it runs on nginx + lua-nginx-module
-- and on halo. No TLS, no proxies.
--
--   local http = require "resty.http"
--   local httpc = http.new()
--   local res, err = httpc:request_uri("http://127.0.0.1:8080/x", { method = "POST", body = "b" })
--   -- or: httpc:connect{ scheme = "http", host = "127.0.0.1", port = 8080 }
--   --     local res = httpc:request{ path = "/x" }; local body = res:read_body()
--   --     httpc:set_keepalive()

local tcp = ngx.socket.tcp
local concat = table.concat
local type, tostring, tonumber, pairs, ipairs, setmetatable = type, tostring, tonumber, pairs, ipairs, setmetatable
local lower, upper, sub, find, match, gsub = string.lower, string.upper, string.sub, string.find, string.match, string.gsub

local _M = { _VERSION = "0.1-halo-test" }
local mt = { __index = _M }

-- A header table whose lookups ignore case: res.headers["content-type"] and
-- res.headers["Content-Type"] are the same. A repeated header's value is a
-- list of its values.
local function header_table()
    local norm = {}
    return setmetatable({}, {
        __index = function(t, k)
            local real = norm[lower(k)]
            if real then
                return rawget(t, real)
            end
        end,
        __newindex = function(t, k, v)
            local lk = lower(k)
            local real = norm[lk]
            if real then
                rawset(t, real, v)
            else
                norm[lk] = k
                rawset(t, k, v)
            end
        end,
    })
end

function _M.new(_)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ sock = sock, keepalive = true }, mt)
end

function _M.set_timeout(self, timeout)
    self.sock:settimeout(timeout)
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    self.sock:settimeouts(connect_timeout, send_timeout, read_timeout)
end

-- connect(host, port[, opts]) (the old form) or connect{ scheme, host, port,
-- pool, pool_size, backlog }.
function _M.connect(self, host_or_opts, port, opts)
    local sock = self.sock
    local host, scheme
    if type(host_or_opts) == "table" then
        local o = host_or_opts
        scheme = o.scheme or "http"
        host = o.host
        port = o.port
        opts = { pool = o.pool, pool_size = o.pool_size, backlog = o.backlog }
    else
        host = host_or_opts
        scheme = "http"
    end
    if scheme ~= "http" then
        return nil, "scheme " .. tostring(scheme) .. " is not supported by this client"
    end
    if not host then
        return nil, "no host"
    end
    self.host = host
    self.port = port
    self.keepalive = true
    local ok, err
    if sub(host, 1, 5) == "unix:" then
        if opts and (opts.pool or opts.pool_size or opts.backlog) then
            ok, err = sock:connect(host, opts)
        else
            ok, err = sock:connect(host)
        end
    else
        port = port or 80
        self.port = port
        if opts and (opts.pool or opts.pool_size or opts.backlog) then
            ok, err = sock:connect(host, port, opts)
        else
            ok, err = sock:connect(host, port)
        end
    end
    return ok, err
end

function _M.set_keepalive(self, ...)
    if not self.keepalive then
        return self.sock:close()
    end
    if self.unread_body then
        return nil, "response not fully read"
    end
    return self.sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    return self.sock:getreusedtimes()
end

function _M.close(self)
    return self.sock:close()
end

-- "http://host:port/path?query" -> { scheme, host, port, path, query }.
function _M.parse_uri(_, uri)
    local scheme, rest = match(uri, "^(%a[%w+.-]*)://(.*)$")
    if not scheme then
        return nil, "bad uri: " .. uri
    end
    scheme = lower(scheme)
    local authority, path = match(rest, "^([^/?#]*)(.*)$")
    local host, port = match(authority, "^%[(.-)%]:?(%d*)$")
    if not host then
        host, port = match(authority, "^([^:]*):?(%d*)$")
    end
    port = tonumber(port) or (scheme == "https" and 443 or 80)
    path = gsub(path, "#.*$", "")
    local query = ""
    local q = find(path, "?", 1, true)
    if q then
        query = sub(path, q + 1)
        path = sub(path, 1, q - 1)
    end
    if path == "" then
        path = "/"
    end
    return { scheme, host, port, path, query }
end

local function encode_query(q)
    if type(q) == "string" then
        return q
    end
    return ngx.encode_args(q)
end

-- Reads the body: Content-Length, chunked, or until close. Returns an
-- iterator function(max_chunk_size) -> chunk | nil (at the end), or nil, err.
local function body_reader(self, sock, length, chunked)
    local left = length
    local chunk_left = 0
    local done = false
    return function(max)
        if done then
            return nil
        end
        max = max or 65536
        if chunked then
            if chunk_left == 0 then
                local line, err = sock:receive("*l")
                if not line then
                    return nil, err
                end
                local size = tonumber(match(line, "^%s*(%x+)"), 16)
                if not size then
                    return nil, "bad chunk size: " .. line
                end
                if size == 0 then
                    -- trailers up to the empty line
                    repeat
                        line, err = sock:receive("*l")
                        if not line then
                            return nil, err
                        end
                    until line == ""
                    done = true
                    self.unread_body = false
                    return nil
                end
                chunk_left = size
            end
            local n = chunk_left < max and chunk_left or max
            local data, err = sock:receive(n)
            if not data then
                return nil, err
            end
            chunk_left = chunk_left - n
            if chunk_left == 0 then
                local crlf, cerr = sock:receive(2)
                if not crlf then
                    return nil, cerr
                end
            end
            return data
        elseif left then
            if left == 0 then
                done = true
                self.unread_body = false
                return nil
            end
            local n = left < max and left or max
            local data, err = sock:receive(n)
            if not data then
                return nil, err
            end
            left = left - n
            return data
        else
            local data, err, partial = sock:receive(max)
            if not data then
                if err == "closed" then
                    done = true
                    self.unread_body = false
                    if partial and partial ~= "" then
                        return partial
                    end
                    return nil
                end
                return nil, err
            end
            return data
        end
    end
end

-- Reads a status line and header fields. Returns version, status, reason,
-- headers or nil, err.
local function read_head(sock)
    local line, err = sock:receive("*l")
    if not line then
        return nil, err
    end
    local rversion, status, reason = match(line, "^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
    if not status then
        return nil, "bad status line: " .. line
    end
    local rheaders = header_table()
    while true do
        line, err = sock:receive("*l")
        if not line then
            return nil, err
        end
        if line == "" then
            break
        end
        local name, value = match(line, "^([^:%s]+)%s*:%s*(.-)%s*$")
        if name then
            local prev = rheaders[name]
            if prev == nil then
                rheaders[name] = value
            elseif type(prev) == "table" then
                prev[#prev + 1] = value
            else
                rheaders[name] = { prev, value }
            end
        end
    end
    return rversion, tonumber(status), reason, rheaders
end

-- request{ method, path, query, headers, body, version } on a connected
-- client. Returns res{ status, reason, headers, has_body, body_reader,
-- read_body, read_trailers } or nil, err.
function _M.request(self, params)
    params = params or {}
    local sock = self.sock
    local method = upper(params.method or "GET")
    local path = params.path or "/"
    local query = params.query and encode_query(params.query) or ""
    if query ~= "" then
        path = path .. "?" .. query
    end
    local version = params.version or 1.1
    local body = params.body
    if type(body) == "table" then
        body = concat(body)
    end

    local headers = header_table()
    if params.headers then
        for k, v in pairs(params.headers) do
            headers[k] = v
        end
    end
    if not headers["Host"] then
        local host = self.host or "localhost"
        if sub(host, 1, 5) == "unix:" then
            host = "localhost"
        elseif self.port and self.port ~= 80 then
            host = host .. ":" .. self.port
        end
        headers["Host"] = host
    end
    if not headers["User-Agent"] then
        headers["User-Agent"] = "halo-test-http/" .. _M._VERSION
    end
    if body and not headers["Content-Length"] and not headers["Transfer-Encoding"] then
        headers["Content-Length"] = #body
    end
    if version == 1.0 and not headers["Connection"] then
        headers["Connection"] = "keep-alive"
    end

    local out = { method, " ", path, " HTTP/", version == 1.0 and "1.0" or "1.1", "\r\n" }
    for k, v in pairs(headers) do
        if type(v) == "table" then
            for _, vv in ipairs(v) do
                out[#out + 1] = k .. ": " .. tostring(vv) .. "\r\n"
            end
        else
            out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
        end
    end
    out[#out + 1] = "\r\n"
    if body then
        out[#out + 1] = body
    end
    local bytes, err = sock:send(concat(out))
    if not bytes then
        return nil, err
    end

    -- The status line and the header fields (interim 1xx responses skipped).
    local rversion, status, reason, rheaders
    repeat
        rversion, status, reason, rheaders = read_head(sock)
        if not rversion then
            return nil, status
        end
    until status >= 200 or status == 101

    local conn = lower(tostring(rheaders["Connection"] or ""))
    if rversion == "1.0" then
        self.keepalive = find(conn, "keep-alive", 1, true) ~= nil
    else
        self.keepalive = not find(conn, "close", 1, true)
    end

    local has_body = not (method == "HEAD" or status == 204 or status == 304)
    local length = tonumber(rheaders["Content-Length"] or "")
    local te = lower(tostring(rheaders["Transfer-Encoding"] or ""))
    local chunked = find(te, "chunked", 1, true) ~= nil
    if has_body and length == 0 and not chunked then
        has_body = false
    end
    if has_body and not chunked and not length then
        self.keepalive = false -- the body ends when the connection closes
    end

    local res = { status = status, reason = reason, headers = rheaders, has_body = has_body }
    if has_body then
        self.unread_body = true
        res.body_reader = body_reader(self, sock, length, chunked)
    else
        self.unread_body = false
    end
    res.read_body = function(r)
        if not r.has_body then
            return ""
        end
        local parts = {}
        while true do
            local chunk, rerr = r.body_reader()
            if rerr then
                return nil, rerr
            end
            if not chunk then
                break
            end
            parts[#parts + 1] = chunk
        end
        return concat(parts)
    end
    res.read_trailers = function() end
    return res
end

-- One whole request: connect, request, read the body, then keep the
-- connection alive (params.keepalive ~= false) or close it. params: method,
-- path, query, headers, body, version, keepalive, keepalive_timeout,
-- keepalive_pool.
function _M.request_uri(self, uri, params)
    params = params or {}
    local parsed, err = self:parse_uri(uri)
    if not parsed then
        return nil, err
    end
    local scheme, host, port, path, query = parsed[1], parsed[2], parsed[3], parsed[4], parsed[5]
    local ok
    ok, err = self:connect{ scheme = scheme, host = host, port = port }
    if not ok then
        return nil, err
    end
    local req = {}
    for k, v in pairs(params) do
        req[k] = v
    end
    req.path = params.path or path
    if not params.query and query ~= "" then
        req.query = query
    end
    local res
    res, err = self:request(req)
    if not res then
        self:close()
        return nil, err
    end
    local body
    body, err = res:read_body()
    if not body then
        self:close()
        return nil, err
    end
    res.body = body
    if params.keepalive == false then
        self:close()
    else
        self:set_keepalive(params.keepalive_timeout, params.keepalive_pool)
    end
    return res
end

return _M
