-- resty.core.base: what every lualib module shares (as in lua-resty-core):
-- declaring the C ABI from ffi-headers/, the return codes, reusable scratch
-- buffers and out-parameters, and table helpers.

local ffi = require "ffi"
local headers = require "halo.ffi_headers"   -- set by the core: name -> C text

local ffi_new = ffi.new
local error = error
local type = type
local tostring = tostring
local pcall = pcall

local ok, new_tab = pcall(require, "table.new")
if not ok then
    new_tab = function() return {} end
end

local clear_tab
ok, clear_tab = pcall(require, "table.clear")
if not ok then
    clear_tab = function(tab)
        for k in pairs(tab) do
            tab[k] = nil
        end
    end
end

local _M = new_tab(0, 32)

-- The lua-resty-core release whose API this layer follows (libraries check it).
_M.version = "0.1.30"
_M.new_tab = new_tab
_M.clear_tab = clear_tab

-- An argument as lua-resty-core's string utilities take it: nil and false
-- as "", anything else but a string through tostring().
function _M.as_string(s)
    if type(s) == "string" then
        return s
    end
    if not s then
        return ""
    end
    return tostring(s)
end

-- luaL_checklstring: a string, or a number as a string; else the error of
-- argument `n` of `fname`, blamed on the API function's caller.
function _M.check_string(s, n, fname)
    local t = type(s)
    if t == "string" then
        return s
    end
    if t ~= "number" then
        error("bad argument #" .. n .. " to '" .. fname .. "' (string expected, got " .. t .. ")", 3)
    end
    return tostring(s)
end

-- luaL_argerror as lua-nginx-module's C functions raise it: the argument
-- of the function at stack `level` (2: argerror's caller), named as its
-- caller called it, one less for a method call; no position in the text.
local getinfo = debug.getinfo

function _M.argerror(narg, msg, level)
    local ar = getinfo(level, "n")
    local name = ar and ar.name or "?"
    if ar and ar.namewhat == "method" then
        narg = narg - 1
        if narg == 0 then
            error("calling '" .. name .. "' on bad self (" .. msg .. ")", 0)
        end
    end
    error("bad argument #" .. narg .. " to '" .. name .. "' (" .. msg .. ")", 0)
end

local declared = {}

-- Declares ffi-headers/<name>.h with ffi.cdef, once per VM. The header text is
-- the one compiled into the core (preprocessor lines removed), so Lua and Rust
-- cannot disagree on a signature.
function _M.cdef(name)
    if declared[name] then
        return
    end
    local text = headers[name]
    if type(text) ~= "string" then
        error("no ffi header named '" .. tostring(name) .. "'", 2)
    end
    ffi.cdef(text)
    declared[name] = true
end

_M.cdef "base"

local C = ffi.C

-- Return codes (ffi-headers/base.h): enum constants need no symbol lookup.
_M.FFI_OK = C.HALO_FFI_OK
_M.FFI_ERROR = C.HALO_FFI_ERROR
_M.FFI_AGAIN = C.HALO_FFI_AGAIN
_M.FFI_BUSY = C.HALO_FFI_BUSY
_M.FFI_DONE = C.HALO_FFI_DONE
_M.FFI_DECLINED = C.HALO_FFI_DECLINED
_M.FFI_ABORT = C.HALO_FFI_ABORT
_M.FFI_NO_REQ_CTX = C.HALO_FFI_NO_REQUEST
_M.FFI_BAD_CONTEXT = C.HALO_FFI_BAD_CONTEXT

local str_buf_size = 4096
local str_buf
local size_ptr
local errmsg

-- A scratch char buffer of at least `size` bytes. Sizes up to the shared
-- buffer's size reuse one buffer: consume it before the next call (and never
-- across a yield). Larger sizes, or must_alloc, get a fresh one.
function _M.get_string_buf(size, must_alloc)
    if size > str_buf_size or must_alloc then
        return ffi_new("unsigned char[?]", size)
    end
    if not str_buf then
        str_buf = ffi_new("unsigned char[?]", str_buf_size)
    end
    return str_buf
end

function _M.get_string_buf_size()
    return str_buf_size
end

function _M.set_string_buf_size(size)
    if size <= 0 then
        return
    end
    if str_buf then
        str_buf = nil
    end
    str_buf_size = size
end

-- A shared size_t[1] out-parameter.
function _M.get_size_ptr()
    if not size_ptr then
        size_ptr = ffi_new("size_t[1]")
    end
    return size_ptr
end

-- A shared const char *[1] out-parameter for static error strings.
function _M.get_errmsg_ptr()
    if not errmsg then
        errmsg = ffi_new("const char *[1]")
    end
    return errmsg
end

-- Only the http subsystem exists in halo: as lua-resty-core, returns
-- nothing when "http" is among the names, else raises.
function _M.allows_subsystem(...)
    for i = 1, select("#", ...) do
        if select(i, ...) == "http" then
            return
        end
    end
    error("unsupported subsystem: http", 2)
end

-- The running handler's request handle, or nil outside a request (as
-- lua-resty-core's, for libraries that check `if not get_request()`).
do
    _M.cdef "request"
    -- A VM without the server's symbols (the tools' VM) has no request.
    local found, current = pcall(function() return C.halo_ffi_request_current end)
    if not found then
        current = function() return 0 end
    end
    function _M.get_request()
        local r = current()
        if r ~= 0 then
            return r
        end
        return nil
    end
end

-- lua-resty-core's free-list reference allocator: stores key in tb and
-- returns its integer slot, reusing slots freed into tb[0].
local FREE_LIST_REF = 0
function _M.ref_in_table(tb, key)
    if key == nil then
        return -1
    end
    local ref = tb[FREE_LIST_REF]
    if ref and ref ~= 0 then
        tb[FREE_LIST_REF] = tb[ref]
    else
        ref = #tb + 1
    end
    tb[ref] = key
    return ref
end

return _M
