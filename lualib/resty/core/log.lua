-- resty.core.log: ngx.log(level, ...) and the global print(...) at process
-- level, written to the error log over ffi-headers/log.h. Messages read
-- "[lua] file.lua:12: func(): text" exactly as lua-nginx-module formats them.
--
-- Not a hot path in OpenResty either (there it is a lua_CFunction); the level
-- check comes first, so disabled levels cost one FFI call.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "log"

local C = ffi.C
local c_level = C.halo_ffi_log_level
local c_write = C.halo_ffi_log_write
local getinfo = debug.getinfo
local getmetatable = debug.getmetatable   -- raw, like luaL_callmeta
local type = type
local tostring = tostring
local select = select
local error = error
local concat = table.concat
local floor = math.floor
local byte, sub = string.byte, string.sub
local null = ngx.null

local NOTICE = 6

-- The message for caller frame `ar` and the values `...`, converted as
-- lua-nginx-module does: nil, booleans and ngx.null by name, tables through
-- __tostring; anything else is an error blamed on the caller of `fname`.
-- The file name of a chunk's short_src, without its directories.
local function basename(src)
    for i = #src, 1, -1 do
        local c = byte(src, i)
        if c == 47 or c == 92 then   -- '/' or '\'
            return sub(src, i + 1)
        end
    end
    return src
end

local function format(fname, ar, ...)
    local src = ar.short_src or ""
    local line = ar.currentline
    if not line or line <= 0 then
        line = ar.linedefined
    end
    local parts = { "[lua] ", basename(src), ":", tostring(line), ": " }
    local n = 5
    if ar.namewhat ~= "" and ar.what == "Lua" then
        n = n + 1
        parts[n] = tostring(ar.name) .. "(): "
    end
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local t = type(v)
        local s
        if t == "string" then
            s = v
        elseif t == "number" then
            s = tostring(v)
        elseif t == "nil" then
            s = "nil"
        elseif t == "boolean" then
            s = v and "true" or "false"
        elseif t == "table" then
            local mt = getmetatable(v)
            if not (mt and mt.__tostring) then
                error("bad argument #" .. i .. " to '" .. fname
                      .. "' (expected table to have __tostring metamethod)", 3)
            end
            s = tostring(v)
        elseif v == null then
            s = "null"
        else
            error("bad argument #" .. i .. " to '" .. fname
                  .. "' (string, number, boolean, or nil expected, got "
                  .. t .. ")", 3)
        end
        n = n + 1
        parts[n] = s
    end
    return concat(parts, "", 1, n)
end

function ngx.log(level, ...)
    if type(level) ~= "number" then
        error("bad argument #1 to 'log' (number expected, got "
              .. type(level) .. ")", 2)
    end
    if not (level >= 0 and level < 9) then
        error("bad argument #1 to 'log' (bad log level: "
              .. tostring(level) .. ")", 2)
    end
    level = floor(level)
    if level > c_level() then
        return
    end
    -- Level 2: the function that called ngx.log.
    local msg = format("log", getinfo(2, "Snl"), ...)
    c_write(level, msg, #msg)
end

-- print(...) is ngx.log(ngx.NOTICE, ...).
function print(...)   -- luacheck: ignore (global on purpose)
    if NOTICE > c_level() then
        return
    end
    local msg = format("print", getinfo(2, "Snl"), ...)
    c_write(NOTICE, msg, #msg)
end

return {
    version = base.version,
}
