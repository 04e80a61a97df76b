-- resty.core.request: ngx.req.* over ffi-headers/request.h.

local base = require "resty.core.base"
local no_request = require("resty.core.phase").no_request
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local request = require("resty.core.phase").request
local ffi_request = require("resty.core.phase").ffi_request
local c_get_method = C.halo_ffi_request_get_method
local c_header_count = C.halo_ffi_request_header_count
local c_get_headers = C.halo_ffi_request_get_headers
local c_get_uri_args = C.halo_ffi_request_get_uri_args
local c_get_post_args = C.halo_ffi_request_get_post_args
local c_get_body = C.halo_ffi_request_get_body
local c_http_version = C.halo_ffi_request_http_version
local c_start_time = C.halo_ffi_request_start_time
local c_is_internal = C.halo_ffi_request_is_internal
local c_resp_header_count = C.halo_ffi_request_resp_header_count
local c_get_resp_headers = C.halo_ffi_request_get_resp_headers
local c_set_req_header = C.halo_ffi_request_set_req_header
local c_set_method = C.halo_ffi_request_set_method
local c_set_uri = C.halo_ffi_request_set_uri
local c_raw_header = C.halo_ffi_request_raw_header
local c_exec = C.halo_ffi_request_exec
local c_read_body = C.halo_ffi_request_read_body
local c_get_body_file = C.halo_ffi_request_get_body_file
local FFI_AGAIN = base.FFI_AGAIN
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local disabled = require("resty.core.phase").disabled
local tostring = tostring
local ffi_str = ffi.string
local ffi_new = ffi.new
local error = error
local type = type
local FFI_OK = base.FFI_OK
local FFI_ERROR = base.FFI_ERROR
local errmsg = base.get_errmsg_ptr()
local clear_tab = base.clear_tab
local str = require "resty.core.string"
local args_buffer = str.args_buffer
local args_table = str.args_table
local truncated_out = str.truncated_out
local encode_args = str.encode_args

local data_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")

local ngx = ngx
ngx.req = ngx.req or {}

function ngx.req.get_method()
    if c_get_method(ffi_request(3), data_out, len_out) ~= FFI_OK then
        no_request(2)
    end
    return ffi_str(data_out[0], len_out[0])
end

-- Header buffer, grown when a request has more headers than it holds.
local pairs_buf_size = 32
local pairs_buf = ffi_new("halo_ffi_header_t[?]", pairs_buf_size)

-- Up to `max` (name, value) pairs filled in by the core, as a table: name ->
-- value (true when the core gives no value), or a list for a repeated name.
-- nil when the core declines (no body for post args, say). Header fills take
-- `lower` (1: the core lowercases the names); argument fills do not.
local function pairs_table(r, fill, max, lower)
    if max > pairs_buf_size then
        pairs_buf_size = max
        pairs_buf = ffi_new("halo_ffi_header_t[?]", max)
    end
    local n
    if lower then
        n = fill(r, pairs_buf, max, lower)
    else
        n = fill(r, pairs_buf, max)
    end
    if n < 0 then
        return nil, n
    end
    return args_table(pairs_buf, n)
end

-- The max_headers / max_args argument: 100 by default, 0 for all.
local function limit(fname, max)
    if max == nil then
        return 100
    end
    if type(max) ~= "number" then
        error("bad argument #1 to '" .. fname .. "' (number expected, got " .. type(max) .. ")", 3)
    end
    return max
end

local lower, find, sub = string.lower, string.find, string.sub
local rawget = rawget
local setmetatable = setmetatable

-- h["X-Foo"] and h.x_foo find the "x-foo" entry, as lua-nginx-module's
-- header tables do (only on a miss, so plain lowercase lookups stay fast).
local headers_mt = {
    __index = function(t, key)
        if type(key) ~= "string" then
            return nil
        end
        key = lower(key)
        local i = find(key, "_", 1, true)
        while i do
            key = sub(key, 1, i - 1) .. "-" .. sub(key, i + 1)
            i = find(key, "_", i + 1, true)
        end
        return rawget(t, key)
    end,
}

-- Headers (request or response) as a table, at most `max` of them; names
-- normalised by headers_mt unless raw.
local function headers_table(fname, count, fill, max_headers, raw)
    local r = ffi_request(3)
    local max = limit(fname, max_headers)
    local n = count(r)
    if max > 0 and n > max then
        n = max
    end
    local t, err = pairs_table(r, fill, n, raw and 0 or 1)
    if t and not raw then
        setmetatable(t, headers_mt)
    end
    return t, err
end

-- ngx.req.get_headers(max_headers?, raw?): name -> value, or a list of
-- values for a repeated name; names lowercased unless raw. At most 100
-- headers by default (0 = all), as lua-nginx-module.
function ngx.req.get_headers(max_headers, raw)
    return headers_table("get_headers", c_header_count, c_get_headers, max_headers, raw)
end

-- The arguments `fill` decodes (the query string or the body), at most
-- max_args of them, through resty.core.string's buffer and table building
-- (the one decoder of ngx.decode_args, in the core).
local function collect_args(fname, fill, max_args, tab)
    local r = ffi_request(3)
    local max = limit(fname, max_args)
    if max < 0 then
        max = 100   -- as lua-resty-core: a negative limit is the default
    end
    local buf, size = args_buffer(0)
    local n = fill(r, buf, size, max, truncated_out)
    if n > size then
        buf, size = args_buffer(n)
        n = fill(r, buf, size, max, truncated_out)
    end
    if n < 0 then
        if n == FFI_ERROR then
            return nil, "request body in temp file not supported"
        end
        return nil, "request body not read"
    end
    if tab then
        clear_tab(tab)
    end
    local t = args_table(buf, n, tab)
    if truncated_out[0] ~= 0 then
        return t, "truncated"
    end
    return t
end

-- ngx.req.get_uri_args(max_args?, tab?): name -> value ("a=1"), true
-- ("a"), or a list for a repeated name; names and values %-decoded, '+' as
-- space. At most 100 arguments by default (0 = all), with a second result
-- "truncated" when there were more, as lua-nginx-module; `tab`, when
-- given, is cleared and filled instead of a new table.
function ngx.req.get_uri_args(max_args, tab)
    return collect_args("get_uri_args", c_get_uri_args, max_args, tab)
end

-- ngx.req.get_post_args(max_args?): the same for a form-encoded body.
function ngx.req.get_post_args(max_args)
    return collect_args("get_post_args", c_get_post_args, max_args, nil)
end

-- 1.0 or 1.1.
function ngx.req.http_version()
    return c_http_version(request(3)) / 10
end

function ngx.req.start_time()
    return c_start_time(ffi_request(3))
end

function ngx.req.is_internal()
    return c_is_internal(ffi_request(3)) == 1
end

ngx.resp = ngx.resp or {}

-- ngx.resp.get_headers(max_headers?, raw?): the response headers set so
-- far, shaped as ngx.req.get_headers' result.
function ngx.resp.get_headers(max_headers, raw)
    return headers_table("get_headers", c_resp_header_count, c_get_resp_headers, max_headers, raw)
end

-- ngx.req.raw_header(no_request_line?): the head as the client sent it.
function ngx.req.raw_header(no_request_line)
    local r = request(3)
    if c_raw_header(r, data_out, len_out) ~= FFI_OK then
        return nil
    end
    local raw = ffi_str(data_out[0], len_out[0])
    if no_request_line then
        local eol = raw:find("\n", 1, true)
        if eol then
            raw = raw:sub(eol + 1)
        end
    end
    return raw
end

-- ngx.req.set_header(name, value): replaces every request header of that
-- name (nil removes them), as later $http_* and get_headers() see them.
function ngx.req.set_header(name, value)
    if type(name) ~= "string" then
        error("bad argument #1 to 'set_header' (string expected, got " .. type(name) .. ")", 2)
    end
    local r = ffi_request(3)
    if type(value) == "table" then
        error("bad argument #2 to 'set_header' (several values are not supported yet)", 2)
    end
    if value ~= nil then
        value = tostring(value)
    end
    if c_set_req_header(r, name, #name, value, value and #value or 0, errmsg) == FFI_ERROR then
        error(ffi_str(errmsg[0]), 2)
    end
end

function ngx.req.clear_header(name)
    if type(name) ~= "string" then
        error("bad argument #1 to 'clear_header' (string expected, got " .. type(name) .. ")", 2)
    end
    if c_set_req_header(ffi_request(3), name, #name, nil, 0, errmsg) == FFI_ERROR then
        error(ffi_str(errmsg[0]), 2)
    end
end

local c_add_req_header = C.halo_ffi_request_add_req_header

-- ngx.req.add_header (lualib/ngx/req.lua): one more request header of the
-- name (several from a table), keeping those the request has.
local function add_req_header(name, value)
    local r = ffi_request(4)
    if name == nil then
        error("bad 'name' argument: string expected, got nil", 3)
    end
    if type(name) ~= "string" then
        name = tostring(name)
    end
    if value == nil then
        error("bad 'value' argument: string or table expected, got nil", 3)
    end
    if type(value) == "table" then
        for i = 1, #value do
            local v = tostring(value[i])
            if c_add_req_header(r, name, #name, v, #v, errmsg) == FFI_ERROR then
                error(ffi_str(errmsg[0]), 3)
            end
        end
        return
    end
    value = tostring(value)
    if c_add_req_header(r, name, #name, value, #value, errmsg) == FFI_ERROR then
        error(ffi_str(errmsg[0]), 3)
    end
end

local method_names = {
    [ngx.HTTP_GET] = "GET", [ngx.HTTP_HEAD] = "HEAD", [ngx.HTTP_POST] = "POST",
    [ngx.HTTP_PUT] = "PUT", [ngx.HTTP_DELETE] = "DELETE", [ngx.HTTP_MKCOL] = "MKCOL",
    [ngx.HTTP_COPY] = "COPY", [ngx.HTTP_MOVE] = "MOVE", [ngx.HTTP_OPTIONS] = "OPTIONS",
    [ngx.HTTP_PROPFIND] = "PROPFIND", [ngx.HTTP_PROPPATCH] = "PROPPATCH",
    [ngx.HTTP_LOCK] = "LOCK", [ngx.HTTP_UNLOCK] = "UNLOCK", [ngx.HTTP_PATCH] = "PATCH",
}

-- ngx.req.set_method(ngx.HTTP_POST)
function ngx.req.set_method(id)
    local name = method_names[id]
    if not name then
        error("bad argument #1 to 'set_method' (unsupported HTTP method: " .. tostring(id) .. ")", 2)
    end
    c_set_method(ffi_request(3), name, #name)
end

-- ngx.req.set_uri_args(args): a query string or a table of arguments.
function ngx.req.set_uri_args(args)
    if type(args) == "table" then
        args = encode_args(args)
    elseif type(args) ~= "string" then
        error("bad argument #1 to 'set_uri_args' (string or table expected, got " .. type(args) .. ")", 2)
    end
    request(3)
    ngx.var.args = args
end

local co_yield = require("resty.core.coroutine").api_yield

-- ngx.req.set_uri(uri, jump?): changes $uri; with jump (rewrite_by_lua only)
-- the location is searched again, as after `rewrite ... last`.
function ngx.req.set_uri(uri, jump)
    if type(uri) ~= "string" or uri == "" then
        error("bad argument #1 to 'set_uri' (non-empty string expected)", 2)
    end
    local r = request(3)
    if jump then
        if ngx.get_phase() ~= "rewrite" then
            error("API disabled in the context of " .. ngx.get_phase() .. "_by_lua* (jump is for rewrite_by_lua*)", 2)
        end
        if c_exec(r, uri, #uri, nil, 0) ~= FFI_OK then
            error("bad argument #1 to 'set_uri' (a URI starting with '/' expected)", 2)
        end
        return co_yield()
    end
    if c_set_uri(r, uri, #uri) ~= FFI_OK then
        error("bad argument #1 to 'set_uri' (a URI starting with '/' expected)", 2)
    end
end

-- ngx.req.read_body(): reads the body now (the handler waits on the event
-- loop), into memory or past client_body_buffer_size into a temp file. A body
-- that cannot be read ends the request with its status (413, 400, 408).
function ngx.req.read_body()
    local r = request(3)
    local rc = c_read_body(r)
    if rc == FFI_AGAIN then
        co_yield()
        return
    end
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    end
end

-- The core drops a body nobody read once the handlers are done.
function ngx.req.discard_body()
    request(3)
end

-- ngx.req.get_body_data(): the body when read into memory, else nil.
function ngx.req.get_body_data()
    if c_get_body(request(3), data_out, len_out) == FFI_OK then
        return ffi_str(data_out[0], len_out[0])
    end
    return nil
end

-- ngx.req.get_body_file(): the temp file holding the body, else nil.
function ngx.req.get_body_file()
    if c_get_body_file(request(3), data_out, len_out) == FFI_OK then
        return ffi_str(data_out[0], len_out[0])
    end
    return nil
end

local c_set_body_data = C.halo_ffi_request_set_body_data
local c_set_body_file = C.halo_ffi_request_set_body_file
local c_init_body = C.halo_ffi_request_init_body
local c_append_body = C.halo_ffi_request_append_body
local c_finish_body = C.halo_ffi_request_finish_body
local select = select
local floor = math.floor
local ceil = math.ceil
local tonumber = tonumber
local err_out = ffi_new("const unsigned char *[1]")
local err_len_out = ffi_new("size_t[1]")

-- What the core refused with (lua-nginx-module raises these), at the
-- caller of the API function.
local function body_failed()
    error(ffi_str(err_out[0], err_len_out[0]), 3)
end

-- The argument lua-nginx-module takes with luaL_checklstring: a string,
-- or a number as its text.
local function body_string(fname, i, v)
    local t = type(v)
    if t == "string" then
        return v
    end
    if t == "number" then
        return tostring(v)
    end
    error("bad argument #" .. i .. " to '" .. fname .. "' (string expected, got " .. t .. ")", 3)
end

-- ngx.req.set_body_data(data): the body becomes data (in memory), and the
-- Content-Length request header its length. The body must have been read
-- (ngx.req.read_body) first.
function ngx.req.set_body_data(...)
    local n = select("#", ...)
    if n ~= 1 then
        error("expecting 1 arguments but seen " .. n, 2)
    end
    local data = body_string("set_body_data", 1, (...))
    if c_set_body_data(ffi_request(3), data, #data, err_out, err_len_out) ~= FFI_OK then
        body_failed()
    end
end

-- ngx.req.set_body_file(path, auto_clean?): the body becomes the file
-- (removed at the end of the request with auto_clean), Content-Length its
-- size.
function ngx.req.set_body_file(...)
    local n = select("#", ...)
    if n ~= 1 and n ~= 2 then
        error("expecting 1 or 2 arguments but seen " .. n, 2)
    end
    local path, clean = ...
    path = body_string("set_body_file", 1, path)
    local r = ffi_request(3)
    if n == 2 and type(clean) ~= "boolean" then
        error("bad argument #2 to 'set_body_file' (boolean expected, got " .. type(clean) .. ")", 2)
    end
    if c_set_body_file(r, path, #path, clean and 1 or 0, err_out, err_len_out) ~= FFI_OK then
        body_failed()
    end
end

-- ngx.req.init_body(buffer_size?): starts a new, empty body that
-- append_body fills: in memory up to buffer_size (client_body_buffer_size
-- by default), then in a temp file.
function ngx.req.init_body(...)
    local n = select("#", ...)
    if n > 1 then
        error("expecting 0 or 1 argument but seen " .. n, 2)
    end
    local size = -1
    if n == 1 then
        local v = ...
        local num = tonumber(v)
        if num == nil or (type(v) ~= "number" and type(v) ~= "string") then
            error("bad argument #1 to 'init_body' (number expected, got " .. type(v) .. ")", 2)
        end
        num = num >= 0 and floor(num) or ceil(num)
        if num < 0 then
            error("bad size argument: " .. num, 2)
        end
        size = num
    end
    if c_init_body(ffi_request(3), size, err_out, err_len_out) ~= FFI_OK then
        body_failed()
    end
end

-- ngx.req.append_body(data): adds to the body init_body started.
function ngx.req.append_body(...)
    local n = select("#", ...)
    if n ~= 1 then
        error("expecting 1 arguments but seen " .. n, 2)
    end
    local data = body_string("append_body", 1, (...))
    if c_append_body(ffi_request(3), data, #data, err_out, err_len_out) ~= FFI_OK then
        body_failed()
    end
end

-- ngx.req.finish_body(): the body init_body started becomes the request's
-- body; Content-Length says its length.
function ngx.req.finish_body(...)
    local n = select("#", ...)
    if n ~= 0 then
        error("expecting 0 argument but seen " .. n, 2)
    end
    if c_finish_body(ffi_request(3), err_out, err_len_out) ~= FFI_OK then
        body_failed()
    end
end

return {
    add_req_header = add_req_header,
    -- For the lua_CFunction twin of get_headers (core/src/lua/capi/).
    headers_mt = headers_mt,
}
