-- halo.runner: how the core runs handlers. Each pooled coroutine runs
-- `loop`: it calls the handler it is resumed with, then yields `DONE` and
-- waits for the next one. The handler is thus called from a Lua frame, so a
-- trace can start in its body and return into the loop, and its FFI calls
-- become native calls; the coroutine is reused across requests. (A handler
-- that ends through ngx.exit or an error leaves its coroutine suspended or
-- dead: the core drops that one.)
--
-- `guard_globals` makes writes to undeclared globals log a warning once
-- init_by_lua* and init_worker_by_lua* are over, as OpenResty does: all
-- handlers share _G, and a global written by one request is seen by others.

local yield = coroutine.yield
local rawset = rawset
local getmetatable = getmetatable
local setmetatable = setmetatable
local traceback = debug.traceback
local tostring = tostring

local DONE = {}

local function loop(h)
    while true do
        h()
        h = yield(DONE)
    end
end

local function guard_globals()
    local mt = getmetatable(_G) or {}
    mt.__newindex = function(t, k, v)
        -- ngx.log is request-aware; the traceback says who wrote.
        ngx.log(ngx.WARN, "writing a global Lua variable ('", tostring(k),
                "') which may lead to race conditions between concurrent ",
                "requests, so prefer the use of 'local' variables\n", traceback("", 2))
        rawset(t, k, v)
    end
    setmetatable(_G, mt)
end

return { loop = loop, DONE = DONE, guard_globals = guard_globals }
