-- resty.core.unsupported: OpenResty API halo does not have yet fails with
-- "<name> is not supported by halo yet", not nil or "attempt to index a nil
-- value". Loaded last: a name of the lists below that some module already
-- defines is left alone, so nothing here shadows existing API. Names
-- OpenResty lacks too stay nil, as there.
--
-- Only misses reach these __index functions: the API itself is plain fields
-- (or the magic keys before them), so hot paths do not change.

local error = error
local pcall = pcall
local rawget = rawget
local getmetatable = getmetatable
local setmetatable = setmetatable
local type = type
local pairs = pairs

local ngx = ngx

-- OpenResty's names, per table (lua-nginx-module's README and
-- lua-resty-core): fields and functions.
local api = {
    ngx = {
        "location", "socket", "timer", "thread", "on_abort", "run_worker_thread",
        "arg", "var", "ctx", "header", "req", "resp", "shared", "config", "worker", "re",
        "get_phase", "sleep", "exit", "exec", "redirect", "send_headers", "print", "say",
        "log", "flush", "eof", "escape_uri", "unescape_uri", "encode_args", "decode_args",
        "encode_base64", "decode_base64", "decode_base64mime", "crc32_short", "crc32_long",
        "hmac_sha1", "md5", "md5_bin", "sha1_bin", "quote_sql_str", "today", "time", "now",
        "update_time", "localtime", "utctime", "cookie_time", "http_time", "parse_http_time",
    },
    ["ngx.req"] = {
        "socket", "set_body_data", "set_body_file", "init_body", "append_body", "finish_body",
        "is_internal", "start_time", "http_version", "raw_header", "get_method", "set_method",
        "set_uri", "set_uri_args", "get_uri_args", "get_post_args", "get_headers", "set_header",
        "clear_header", "read_body", "discard_body", "get_body_data", "get_body_file",
    },
    ["ngx.resp"] = { "get_headers" },
    ["ngx.socket"] = { "tcp", "udp", "stream", "connect" },
    ["ngx.timer"] = { "at", "every", "running_count", "pending_count" },
    ["ngx.thread"] = { "spawn", "wait", "kill" },
    ["ngx.worker"] = { "exiting", "pid", "pids", "count", "id" },
    ["ngx.config"] = { "subsystem", "debug", "prefix", "nginx_version", "nginx_configure",
                       "ngx_lua_version" },
    ["ngx.re"] = { "match", "find", "gmatch", "sub", "gsub" },
}

-- lua-resty-core's (and OpenResty's bundled) modules halo lacks.
local modules = {
    "ngx.ssl", "ngx.ssl.session", "ngx.ssl.clienthello",
    "ngx.ssl.proxysslcert", "ngx.ssl.proxysslverify", "ngx.ocsp",
    "ngx.pipe", "ngx.upstream",
}

local function exists(t, key)
    local ok, v = pcall(function() return t[key] end)
    -- A magic key that raises outside a request (ngx.status) exists.
    return not ok or v ~= nil
end

-- Makes t's misses of `names` raise; `prefix` is t's own name.
local function guard(t, prefix, names)
    local missing = {}
    local any = false
    for i = 1, #names do
        local key = names[i]
        if not exists(t, key) then
            missing[key] = prefix .. "." .. key .. " is not supported by halo yet"
            any = true
        end
    end
    if not any then
        return
    end
    local mt = getmetatable(t)
    if not mt then
        setmetatable(t, {
            __index = function(_, key)
                local msg = missing[key]
                if msg then
                    error(msg, 2)
                end
                return nil
            end,
        })
        return
    end
    local old = mt.__index
    if type(old) == "function" then
        -- The missing names were absent when guarded (and __index only
        -- runs for absent keys), so they are checked first and the rest is
        -- a tail call: a trace that starts in `old` then returns straight to
        -- the indexing code, not into a frame below it (NYI in LuaJIT).
        mt.__index = function(tb, key)
            local msg = missing[key]
            if msg then
                error(msg, 2)
            end
            return old(tb, key)
        end
    end
end

guard(ngx, "ngx", api.ngx)
for name, names in pairs(api) do
    if name ~= "ngx" then
        local t = rawget(ngx, name:sub(5))
        if type(t) == "table" then
            guard(t, name, names)
        end
    end
end

-- require "ngx.balancer": a searcher right after the embedded modules', so
-- a lua-resty-core copy on package.path (Debian's, say) is not loaded
-- against a C ABI it does not match.
local unsupported_modules = {}
for i = 1, #modules do
    unsupported_modules[modules[i]] = true
end

local loaders = package.loaders
local function searcher(name)
    if unsupported_modules[name] then
        return function()
            -- Level 3: the caller of require.
            error(name .. " is not supported by halo yet", 3)
        end
    end
    return "\n\tno unsupported module '" .. name .. "'"
end
table.insert(loaders, 3, searcher)

return {}
