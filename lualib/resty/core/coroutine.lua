-- resty.core.coroutine: user coroutines that call yielding APIs. ngx.sleep,
-- ngx.exit and ngx.exec yield the handler's coroutine back to the core; when
-- they run inside a coroutine the handler made, that yield must pass through
-- it (and any coroutines around it) up to the handler's, and the wait's end
-- must come back down. API yields carry a sentinel; coroutine.resume and
-- coroutine.wrap forward them and re-enter, so user code sees plain calls.

local raw_create = coroutine.create
local raw_resume = coroutine.resume
local raw_yield = coroutine.yield
local raw_status = coroutine.status
local select = select
local error = error
local unpack = unpack

local API_YIELD = {}

local _M = {}

-- The lua_CFunction twin of ngx.exit (core/src/lua/capi/) yields it too.
_M.API_YIELD = API_YIELD

-- What the API modules call to wait for the core.
function _M.api_yield()
    return raw_yield(API_YIELD)
end

local function pack(...)
    return { n = select("#", ...), ... }
end

local function resume(co, ...)
    local res = pack(raw_resume(co, ...))
    while res[1] and res[2] == API_YIELD and raw_status(co) == "suspended" do
        -- An API inside co waits: suspend the coroutines above it too, up
        -- to the handler's, then go back into co when the wait is over.
        raw_yield(API_YIELD)
        res = pack(raw_resume(co))
    end
    return unpack(res, 1, res.n)
end

coroutine.resume = resume

coroutine.wrap = function(f)
    local co = raw_create(f)
    return function(...)
        local res = pack(resume(co, ...))
        if not res[1] then
            error(res[2], 2)
        end
        return unpack(res, 2, res.n)
    end
end

return _M
