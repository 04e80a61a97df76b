-- The gateway's logic, one function per phase (see conf/nginx.conf).

local lrucache = require "resty.lrucache"
local balancer = require "ngx.balancer"

local _M = {}

-- Routes by URI prefix: the peers to balance over (filled in by init),
-- whether a key is needed, and the requests per second a key may make.
local routes

local function peer(addr)
    local host, port = addr:match("^(.+):(%d+)$")
    return { host, tonumber(port) }
end

local keys = { ["demo-key"] = "demo", ["other-key"] = "other" }

local cache

-- peers: { a = "host:port", b = "host:port" }.
function _M.init(peers)
    routes = {
        { prefix = "/api/", peers = { peer(peers.a), peer(peers.b) }, key = true, rate = 5 },
        { prefix = "/public/", peers = { peer(peers.a) }, key = false },
    }
    cache = assert(lrucache.new(1000))
end

-- The route of a URI, matched once per URI and cached.
local function route_of(uri)
    local r = cache:get(uri)
    if r ~= nil then
        return r or nil
    end
    for _, candidate in ipairs(routes) do
        if uri:sub(1, #candidate.prefix) == candidate.prefix then
            r = candidate
            break
        end
    end
    cache:set(uri, r or false, 60)
    return r
end

function _M.access()
    local route = route_of(ngx.var.uri)
    if not route then
        return ngx.exit(404)
    end
    ngx.ctx.route = route
    if route.key then
        local consumer = keys[ngx.req.get_headers()["apikey"] or ""]
        if not consumer then
            ngx.header["WWW-Authenticate"] = 'apikey realm="gateway"'
            return ngx.exit(401)
        end
        ngx.ctx.consumer = consumer
        -- A fixed one-second window per consumer, shared by all workers.
        local limits = ngx.shared.limits
        local window = "rate:" .. consumer .. ":" .. ngx.time()
        local n = limits:incr(window, 1, 0, 2)
        if n and n > route.rate then
            return ngx.exit(429)
        end
    end
end

local turn = 0

function _M.balance()
    local peers = ngx.ctx.route.peers
    turn = turn + 1
    local peer = peers[turn % #peers + 1]
    if not balancer.get_last_failure() then
        balancer.set_more_tries(#peers - 1)
    end
    assert(balancer.set_current_peer(peer[1], peer[2]))
end

function _M.header_filter()
    ngx.header["X-Gateway"] = "halo"
    if ngx.ctx.consumer then
        ngx.header["X-Consumer"] = ngx.ctx.consumer
    end
end

function _M.log()
    local metrics = ngx.shared.metrics
    metrics:incr("status:" .. ngx.status, 1, 0)
    metrics:incr("upstream:" .. (ngx.var.upstream_addr or "-"), 1, 0)
end

function _M.metrics()
    local metrics = ngx.shared.metrics
    local names = metrics:get_keys(0)
    table.sort(names)
    for _, name in ipairs(names) do
        ngx.say(name, " ", metrics:get(name))
    end
end

return _M
