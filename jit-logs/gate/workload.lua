-- The JIT gate's workload: each non-yielding API of lualib in a loop hot
-- enough to be compiled (LuaJIT's hotloop is 56 iterations). The gate then
-- checks that none of those traces aborted or stitched inside lualib/.
-- A new non-yielding API gets a loop here.

local N = 300
local _M = {}

local function sink(x)
    _M.last = x
end

-- Time, worker and config: allowed in every phase.
local function everywhere()
    local acc = 0
    for i = 1, N do
        acc = acc + ngx.time() + ngx.now()
        acc = acc + #ngx.http_time(i) + #ngx.cookie_time(i) + #ngx.today() + #ngx.localtime() + #ngx.utctime()
        acc = acc + (ngx.parse_http_time("Thu, 18 Nov 2010 11:27:35 GMT") or 0)
        acc = acc + (ngx.worker.id() or 0) + ngx.worker.count() + ngx.worker.pid()
        if ngx.worker.exiting() then acc = acc + 1 end
        acc = acc + #ngx.config.prefix() + ngx.config.ngx_lua_version + ngx.config.nginx_version
        if ngx.config.debug then acc = acc + 1 end
        acc = acc + #ngx.config.subsystem + #ngx.get_phase()
    end
    for _ = 1, N do
        ngx.update_time()
    end
    -- ngx.re: match, find and gsub with a string template (no request needed).
    local ctx = {}
    for _ = 1, N do
        local m = ngx.re.match("id=1234&x=y", "id=(?<id>\\d+)", "jo")
        acc = acc + #m[0] + #m.id
        local from, to = ngx.re.find("hello, 1234", "([0-9])([0-9]+)", "jo", nil, 2)
        acc = acc + from + to
        ctx.pos = 1
        from, to = ngx.re.find("a1b2", "[0-9]", "jo", ctx)
        acc = acc + to + ctx.pos
        local s, n = ngx.re.gsub("a.b.c", "\\.", "/", "jo")
        acc = acc + #s + n
        s, n = ngx.re.sub("hello, 1234", "([0-9])[0-9]", "[$1]")
        acc = acc + #s + n
    end
    for _ = 1, N do
        local m = ngx.re.match("hello, world", "(world)|(hello)", "i")
        if m[1] then acc = acc + 1 end
        acc = acc + #m[2]
    end
    -- ngx.re on PCRE-only patterns (the second engine): look-around,
    -- back-references; gsub with a template and a function; ngx.re.split.
    local re = require "ngx.re"
    local split_res = {}
    for _ = 1, N do
        local m = ngx.re.match("price: $42", "(?<=\\$)(?<n>\\d+)", "jo")
        acc = acc + #m[0] + #m.n
        local from, to = ngx.re.find("xyzabab", "(ab)\\1", "jo", nil, 1)
        acc = acc + from + to
        local s, n = ngx.re.gsub("foo1 foo2", "(?<=foo)(\\d)", "<$1>", "jo")
        acc = acc + #s + n
        s, n = ngx.re.gsub("aa bb", "(\\w)\\1", function(c) return c[1] end, "jo")
        acc = acc + #s + n
        local t = re.split("a,b;c", "[,;](?=\\w)", "jo", nil, nil, split_res)
        acc = acc + #t[1] + #t[3]
    end
    -- The string utilities: escaping, args, base64, digests, SQL quoting.
    local b64 = require "ngx.base64"
    local args = { a = "x y", b = true, c = { "1", 2 }, d = false }
    for i = 1, N do
        acc = acc + #ngx.escape_uri("a b/c?d=" .. i) + #ngx.escape_uri("plain") + #ngx.escape_uri(i, 0)
        acc = acc + #ngx.unescape_uri("a%20b+c%2F" .. i) + #ngx.quote_sql_str("it's \"" .. i)
        acc = acc + #ngx.encode_args(args)
        local t, err = ngx.decode_args("a=1&b=%20&c&a=" .. i, 3)
        acc = acc + #t.b + (err and 1 or 0)
        acc = acc + #ngx.encode_base64("hello" .. i) + #ngx.encode_base64("x", true)
        acc = acc + #(ngx.decode_base64("aGVsbG8=") or "") + #(ngx.decode_base64mime("aGVs\nbG8=") or "")
        acc = acc + #b64.encode_base64url("\255\254" .. i) + #(b64.decode_base64url("__79_A") or "")
        acc = acc + #ngx.md5(i) + #ngx.md5_bin("x") + #ngx.sha1_bin("x") + #ngx.hmac_sha1("k", i)
        acc = acc + ngx.crc32_short("hello") + ngx.crc32_long(i)
    end
    sink(acc)
end

-- Request reading APIs: every request phase.
local function request_reads()
    local acc = 0
    for _ = 1, N do
        acc = acc + #ngx.var.uri + #ngx.var.request_method + #(ngx.var.arg_a or "") + #ngx.var.remote_addr
        acc = acc + #ngx.req.get_method() + ngx.req.http_version() + ngx.req.start_time()
        if ngx.req.is_internal() then acc = acc + 1 end
        if ngx.is_subrequest then acc = acc + 1 end
        acc = acc + #ngx.req.raw_header()
    end
    for _ = 1, N do
        local h = ngx.req.get_headers()
        acc = acc + #h.host
    end
    local tab = {}
    for _ = 1, N do
        local args = ngx.req.get_uri_args()
        acc = acc + #args.a
        local cut, err = ngx.req.get_uri_args(1, tab)
        acc = acc + #cut.a + (err and 1 or 0)
    end
    for _ = 1, N do
        local c = ngx.ctx
        c.n = (c.n or 0) + 1
    end
    sink(acc)
end

-- ngx.shared.DICT: every method that does not yield, on each value type.
local function shared_dicts()
    local d = ngx.shared.gate
    local acc = 0
    for i = 1, N do
        d:set("s", "value", 0, 3)
        d:set("n", i)
        d:set("b", true)
        d:safe_set("e", "x", 10)
        d:add("a" .. (i % 4), i)
        d:safe_add("a0", 1)
        d:replace("n", i + 1)
        local v, flags = d:get("s")
        acc = acc + #v + flags + d:get("n")
        if d:get("b") then acc = acc + 1 end
        local sv, _, stale = d:get_stale("s")
        if not stale then acc = acc + #sv end
        acc = acc + d:incr("c", 1, 0) + d:incr("c", -1)
        acc = acc + d:ttl("e") + (d:expire("e", 10) and 1 or 0)
        d:delete("a3")
        acc = acc + d:lpush("l", "x") + d:rpush("l", 2) + d:llen("l")
        acc = acc + #d:lpop("l") + d:rpop("l")
        acc = acc + d:capacity() + d:free_space()
    end
    sink(acc)
end

-- The built-in resty.lrucache (the gate's paths hold no other copy).
local lru = require("resty.lrucache").new(64)
local function lrucache()
    local acc = 0
    for i = 1, N do
        lru:set(i % 100, i, 10)
        local v = lru:get((i - 1) % 100)
        if v then acc = acc + v end
        if i % 7 == 0 then lru:delete(i % 100) end
        acc = acc + lru:count()
    end
    sink(acc)
end

-- ngx.semaphore on its non-yielding path: a resource is always there, so
-- wait(0) takes it at once; post and count never yield.
local sema = require("ngx.semaphore").new(1)
local function semaphores()
    local acc = 0
    for i = 1, N do
        sema:post(1)
        local ok = sema:wait(0)
        if ok then acc = acc + 1 end
        acc = acc + sema:count()
        if i % 2 == 0 and sema:wait(0) then sema:post() end
    end
    sink(acc)
end

-- Cosockets on their non-yielding path: a response fetched from the
-- gate's own /lines (one read takes it all), then read line by line and
-- by receiveuntil from the socket's buffer. Once (the first request): the
-- connect and the first read yield, and a hot function that yields stitches
-- at the yield by nature; here they yield before the loops make them hot.
local cosockets_done = false
local function cosockets()
    if cosockets_done then
        return
    end
    cosockets_done = true
    -- The setup waits (connect, the first read): interpreted on purpose, so
    -- no trace records a yield whichever function a hot counter collides with.
    jit.off()
    local sock = ngx.socket.tcp()
    assert(sock:connect("127.0.0.1", tonumber(ngx.var.server_port)))
    assert(sock:send({ "GET /lines HTTP/1.0\r\n", "Host: localhost\r\n\r\n" }))
    ngx.sleep(0.05)
    local head = sock:receiveuntil("\r\n\r\n")
    assert(head())
    jit.on()
    local acc = 0
    for _ = 1, N do
        acc = acc + #sock:receive()
    end
    local crlf = sock:receiveuntil("\r\n")
    for _ = 1, N do
        acc = acc + #crlf()
    end
    for _ = 1, N do
        acc = acc + #sock:receive(6)
    end
    acc = acc + sock:getreusedtimes()
    sock:close()
    sink(acc)
end

-- balancer_by_lua*: ngx.balancer's calls in a loop, then the real peer
-- (the gate itself).
local balancer = require "ngx.balancer"
local pool_opts = { pool = "gate", pool_size = 4 }
function _M.balancer_phase()
    local acc = 0
    for i = 1, N do
        assert(balancer.set_current_peer("127.0.0.1", 1 + i % 100))
        assert(balancer.set_current_peer("127.0.0.1", 1 + i % 100, pool_opts))
        assert(balancer.enable_keepalive(10, 100))
        balancer.set_more_tries(0)
        if balancer.get_last_failure() then acc = acc + 1 end
        balancer.set_timeouts(1, 1, 1)
    end
    sink(acc)
    assert(balancer.set_current_peer("127.0.0.1", tonumber(ngx.var.server_port)))
end

function _M.set_phase()
    everywhere()
    local acc = 0
    for _ = 1, N do
        acc = acc + #ngx.var.uri
        if ngx.arg[1] == nil then acc = acc + 1 end
    end
    sink(acc)
    return "set"
end

function _M.rewrite_phase()
    everywhere()
    request_reads()
    for i = 1, N do
        ngx.req.set_header("X-Gate", i)
        ngx.req.clear_header("X-Gone")
        ngx.var.joined = "v"
        ngx.req.set_uri_args("a=1&b=2")
        ngx.req.set_uri("/gate")
        ngx.req.set_method(ngx.HTTP_GET)
    end
    local req = require "ngx.req"
    for i = 1, N do
        req.add_header("X-Added", i)
    end
end

function _M.access_phase()
    everywhere()
    request_reads()
end

function _M.content_phase()
    everywhere()
    request_reads()
    shared_dicts()
    lrucache()
    semaphores()
    cosockets()
    local acc = 0
    for _ = 1, N do
        -- The body was read before the handler: both return at once.
        ngx.req.read_body()
        acc = acc + #(ngx.req.get_body_data() or "")
        local post = ngx.req.get_post_args()
        if post.x then acc = acc + 1 end
        local _, err = ngx.req.get_post_args(1)
        if err then acc = acc + 1 end
    end
    for i = 1, N do
        ngx.status = 200
        acc = acc + ngx.status
        ngx.header["X-Loop"] = "v"
        ngx.header.x_other = i
        ngx.header.x_list = { "a", "b" }
        ngx.header.x_gone = nil
        acc = acc + #(ngx.header["X-Loop"] or "")
        if ngx.headers_sent then acc = acc + 1 end
    end
    for _ = 1, N do
        local h = ngx.resp.get_headers()
        acc = acc + #h["x-loop"]
    end
    for _ = 1, N do
        ngx.log(ngx.DEBUG, "below the error_log level: not written")
    end
    local resp = require "ngx.resp"
    local errlog = require "ngx.errlog"
    local process = require "ngx.process"
    for i = 1, N do
        resp.add_header("X-Added", i)
        errlog.raw_log(ngx.DEBUG, "below the error_log level: not written")
        if ngx.is_subrequest then acc = acc + 1 end
        acc = acc + #process.type() + errlog.get_sys_filter_level()
    end
    for _ = 1, N do
        ngx.send_headers()
    end
    -- (ngx.flush and ngx.eof yield to send the output: not here.)
    for i = 1, N do
        ngx.print("")
        ngx.say(i)
    end
    sink(acc)
end

function _M.header_filter_phase()
    everywhere()
    request_reads()
    for i = 1, N do
        ngx.header["X-Filter"] = i
        ngx.status = 200
    end
end

function _M.body_filter_phase()
    everywhere()
    local acc = 0
    for _ = 1, N do
        acc = acc + #ngx.arg[1]
        if ngx.arg[2] then acc = acc + 1 end
        ngx.arg[1] = ngx.arg[1]
    end
    sink(acc)
end

function _M.log_phase()
    everywhere()
    request_reads()
    shared_dicts()
    local acc = 0
    for _ = 1, N do
        acc = acc + #ngx.var.status + #ngx.var.body_bytes_sent
    end
    sink(acc)
end

return _M
