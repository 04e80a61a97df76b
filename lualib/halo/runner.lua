-- halo.runner: how the core runs handlers. Each pooled coroutine runs
-- `loop`: it calls the handler whose number it is resumed with, then yields
-- `DONE` and waits for the next one. The handler is thus called from a Lua frame, so a
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

-- Compiled handlers by number: a resume passes the number (a plain integer
-- costs the core nothing to push), the loop looks the handler up here.
local handlers = {}
local free = {}

local function register(f)
    local i = free[#free]
    if i then
        free[#free] = nil
    else
        i = #handlers + 1
    end
    handlers[i] = f
    return i
end

-- lua_code_cache off: each request's handler is dropped after its run.
local function unregister(i)
    handlers[i] = false
    free[#free + 1] = i
end

local function loop(i)
    while true do
        handlers[i]()
        i = yield(DONE)
    end
end

-- Light threads (resty.core.thread) by key, their context's slot, while
-- they run: ngx.thread.spawn puts its new one here, the core takes its
-- coroutine and, when it ends, says so (with the error if it failed).
local threads = {}

local function take_thread(key)
    return threads[key].co
end

local function thread_ended(key, err)
    local t = threads[key]
    if t then
        threads[key] = nil
        t.dead = true
        if err and not t.res then
            t.res = { false, err, n = 2 }
        end
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

return {
    loop = loop, DONE = DONE, handlers = handlers, register = register, unregister = unregister,
    guard_globals = guard_globals, threads = threads, take_thread = take_thread,
    thread_ended = thread_ended,
}
