-- resty.core.ctx: ngx.ctx, one table per request shared by all its phases
-- (rewrite, access, content, log). Tables are kept here by request number
-- and released by the core when the request ends (told by keep_ctx).

local base = require "resty.core.base"
local no_request = require("resty.core.phase").no_request
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_request_id = C.halo_ffi_request_id
local c_keep_ctx = C.halo_ffi_request_keep_ctx
local type = type
local tonumber = tonumber
local error = error
local new_tab = base.new_tab

local ngx = ngx
local ctxs = {}

local mt = getmetatable(ngx)
local index, newindex = mt.__index, mt.__newindex

mt.__index = function(t, key)
    if key == "ctx" then
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        local id = c_request_id(r)
        local c = ctxs[id]
        if c == nil then
            c = new_tab(0, 4)
            ctxs[id] = c
            c_keep_ctx(r)
        end
        return c
    end
    return index(t, key)
end

mt.__newindex = function(t, key, value)
    if key == "ctx" then
        local r = get_request()
        if r == 0 then
            no_request(2)
        end
        if type(value) ~= "table" then
            error("ctx should be a table while getting a " .. type(value), 2)
        end
        ctxs[c_request_id(r)] = value
        c_keep_ctx(r)
        return
    end
    return newindex(t, key, value)
end

local _M = {}

-- ngx.location.capture's ctx option: `c` is subrequest `id`'s ngx.ctx (the
-- core releases it when the subrequest ends).
function _M.set_sub(id, c)
    ctxs[tonumber(id)] = c
end

-- The tables by request number, for the lua_CFunction twin of ngx.ctx
-- (core/src/lua/capi/request.rs), so both modes share a request's ngx.ctx.
_M.ctxs = ctxs

function _M.release(id)
    ctxs[id] = nil
end

return _M
