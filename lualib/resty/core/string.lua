-- resty.core.string: ngx.escape_uri, ngx.unescape_uri, ngx.encode_args,
-- ngx.decode_args and ngx.quote_sql_str over ffi-headers/string.h (the
-- semantics live in core/src/api/). Also the argument buffer and table
-- building that ngx.req.get_uri_args / get_post_args share.

local base = require "resty.core.base"
local ffi = require "ffi"
local as_string = base.as_string
local check_string = base.check_string

base.cdef "request"   -- halo_ffi_header_t
base.cdef "string"

local C = ffi.C
local ffi_str = ffi.string
local ffi_new = ffi.new
local type = type
local tostring = tostring
local tonumber = tonumber
local error = error
local pairs = pairs
local concat = table.concat
local new_tab = base.new_tab
local get_string_buf = base.get_string_buf

local c_escaped_length = C.halo_ffi_string_escaped_length
local c_escape_uri = C.halo_ffi_string_escape_uri
local c_unescape_uri = C.halo_ffi_string_unescape_uri
local c_decode_args = C.halo_ffi_string_decode_args
local c_quoted_sql_length = C.halo_ffi_string_quoted_sql_length
local c_quote_sql_str = C.halo_ffi_string_quote_sql_str

-- nginx's NGX_ESCAPE_URI_COMPONENT and the last kind ngx.escape_uri takes.
local ESCAPE_URI_COMPONENT = 2
local ESCAPE_MAIL_AUTH = 6
local MAX_ARGS = 100

local _M = { version = base.version }

local ngx = ngx

-- Escapes a string (the caller converted it) as kind `esc`.
local function escape(s, esc)
    local slen = #s
    local dlen = c_escaped_length(s, slen, esc)
    if dlen == slen then
        return s
    end
    local dst = get_string_buf(dlen)
    return ffi_str(dst, c_escape_uri(s, slen, esc, dst, dlen))
end

-- ngx.escape_uri(str, type?): nil and false escape as "", other values as
-- tostring(value), as lua-resty-core.
function ngx.escape_uri(s, esc_type)
    s = as_string(s)
    if esc_type == nil then
        esc_type = ESCAPE_URI_COMPONENT
    else
        if type(esc_type) ~= "number" then
            error("\"type\" is not a number", 2)
        end
        if not (esc_type >= 0 and esc_type <= ESCAPE_MAIL_AUTH) then
            error("\"type\" " .. esc_type .. " out of range", 2)
        end
    end
    return escape(s, esc_type)
end

-- ngx.unescape_uri(str): "%XX" decoded, '+' as a space.
function ngx.unescape_uri(s)
    s = as_string(s)
    local slen = #s
    local dst = get_string_buf(slen)
    return ffi_str(dst, c_unescape_uri(s, slen, dst, slen))
end

-- The (name, value) buffer the core fills with decoded arguments, grown
-- to hold at least n entries. Returns the buffer and its size.
local args_buf_size = 32
local args_buf = ffi_new("halo_ffi_header_t[?]", args_buf_size)

local function args_buffer(n)
    if n > args_buf_size then
        args_buf_size = n
        args_buf = ffi_new("halo_ffi_header_t[?]", n)
    end
    return args_buf, args_buf_size
end
_M.args_buffer = args_buffer

-- The first n arguments of buf as OpenResty's table: name -> value (true
-- for a bare name), a list of values for a repeated name. Fills `tab` when
-- given, else a new table.
local function args_table(buf, n, tab)
    local t = tab or new_tab(0, n)
    for i = 0, n - 1 do
        local p = buf[i]
        local name = ffi_str(p.name, p.name_len)
        local value = true
        if p.value ~= nil then
            value = ffi_str(p.value, p.value_len)
        end
        local old = t[name]
        if old == nil then
            t[name] = value
        elseif type(old) == "table" then
            old[#old + 1] = value
        else
            t[name] = { old, value }
        end
    end
    return t
end
_M.args_table = args_table

local truncated_out = ffi_new("int[1]")
_M.truncated_out = truncated_out

-- ngx.decode_args(str, max_args?): the arguments of a query string as a
-- table; at most max_args (100 by default; 0 or less: all), with a second
-- result "truncated" when the limit cut the list.
function ngx.decode_args(s, max)
    s = check_string(s, 1, "decode_args")
    if max == nil then
        max = MAX_ARGS
    elseif type(max) ~= "number" then
        local m = tonumber(max)
        if not m then
            error("bad argument #2 to 'decode_args' (number expected, got " .. type(max) .. ")", 2)
        end
        max = m
    end
    local slen = #s
    local buf, size = args_buffer(0)
    local n = c_decode_args(s, slen, buf, size, max, truncated_out)
    if n > size then
        buf, size = args_buffer(n)
        n = c_decode_args(s, slen, buf, size, max, truncated_out)
    end
    local t = args_table(buf, n)
    if truncated_out[0] ~= 0 then
        return t, "truncated"
    end
    return t
end

local ARG_KEY_ERR = "attempt to use a non-string key in the \"args\" option table"

-- One value of encode_args as "name=value" (or nil to skip it); `ek` is
-- the escaped name.
local function arg_part(ek, v)
    local tv = type(v)
    if tv == "string" then
        return ek .. "=" .. escape(v, ESCAPE_URI_COMPONENT)
    elseif tv == "number" then
        return ek .. "=" .. escape(tostring(v), ESCAPE_URI_COMPONENT)
    elseif tv == "boolean" then
        if v then
            return ek
        end
        return nil
    end
    error("attempt to use " .. tv .. " as query arg value", 3)
end

-- A table of query arguments as a string, as OpenResty's encode_args (and
-- set_uri_args with a table): name=value, a bare name for true, nothing
-- for false, one name=value per element of a list; names and values
-- escaped as URI components. The order is the table's traversal order.
local function encode_args(t)
    local parts = new_tab(8, 0)
    local n = 0
    for k, v in pairs(t) do
        if type(k) ~= "string" then
            error(ARG_KEY_ERR, 2)
        end
        local ek = escape(k, ESCAPE_URI_COMPONENT)
        if type(v) == "table" then
            for _, e in pairs(v) do
                local part = arg_part(ek, e)
                if part then
                    n = n + 1
                    parts[n] = part
                end
            end
        else
            local part = arg_part(ek, v)
            if part then
                n = n + 1
                parts[n] = part
            end
        end
    end
    return concat(parts, "&", 1, n)
end
_M.encode_args = encode_args

function ngx.encode_args(t)
    if type(t) ~= "table" then
        error("bad argument #1 to 'encode_args' (table expected, got " .. type(t) .. ")", 2)
    end
    return encode_args(t)
end

-- ngx.quote_sql_str(str): a MySQL string literal. Numbers are converted.
function ngx.quote_sql_str(s)
    s = check_string(s, 1, "quote_sql_str")
    local slen = #s
    local dlen = c_quoted_sql_length(s, slen)
    local dst = get_string_buf(dlen)
    return ffi_str(dst, c_quote_sql_str(s, slen, dst, dlen))
end

return _M
