-- resty.core.request: ngx.req.* over ffi-headers/request.h.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "request"

local C = ffi.C
local get_request = C.halo_ffi_request_current
local c_get_method = C.halo_ffi_request_get_method
local c_header_count = C.halo_ffi_request_header_count
local c_get_headers = C.halo_ffi_request_get_headers
local c_get_uri_args = C.halo_ffi_request_get_uri_args
local c_get_post_args = C.halo_ffi_request_get_post_args
local c_get_body = C.halo_ffi_request_get_body
local FFI_DECLINED = base.FFI_DECLINED
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
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local tostring = tostring
local lower = string.lower
local new_tab = base.new_tab
local ffi_str = ffi.string
local ffi_new = ffi.new
local error = error
local type = type
local FFI_OK = base.FFI_OK

local data_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")

local ngx = ngx
ngx.req = ngx.req or {}

function ngx.req.get_method()
    local r = get_request()
    if r == 0 then
        error("no request found", 2)
    end
    if c_get_method(r, data_out, len_out) ~= FFI_OK then
        error("no request found", 2)
    end
    return ffi_str(data_out[0], len_out[0])
end

-- Header buffer, grown when a request has more headers than it holds.
local headers_buf_size = 32
local headers_buf = ffi_new("halo_ffi_header_t[?]", headers_buf_size)

-- ngx.req.get_headers(max_headers?, raw?): name -> value, or a list of
-- values for a repeated name; names lowercased unless raw. At most 100
-- headers by default (0 = all), as lua-nginx-module.
function ngx.req.get_headers(max_headers, raw)
    local r = get_request()
    if r == 0 then
        error("no request found", 2)
    end
    if max_headers == nil then
        max_headers = 100
    elseif type(max_headers) ~= "number" then
        error("bad argument #1 to 'get_headers' (number expected, got " .. type(max_headers) .. ")", 2)
    end
    local n = c_header_count(r)
    if max_headers > 0 and n > max_headers then
        n = max_headers
    end
    if n > headers_buf_size then
        headers_buf_size = n
        headers_buf = ffi_new("halo_ffi_header_t[?]", n)
    end
    n = c_get_headers(r, headers_buf, n)
    local t = new_tab(0, n)
    for i = 0, n - 1 do
        local h = headers_buf[i]
        local name = ffi_str(h.name, h.name_len)
        if not raw then
            name = lower(name)
        end
        local value = ffi_str(h.value, h.value_len)
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

local args_buf_size = 32
local args_buf = ffi_new("halo_ffi_header_t[?]", args_buf_size)

local function collect_args(fname, fill, max_args)
    local r = get_request()
    if r == 0 then
        error("no request found", 3)
    end
    if max_args == nil then
        max_args = 100
    elseif type(max_args) ~= "number" then
        error("bad argument #1 to '" .. fname .. "' (number expected, got " .. type(max_args) .. ")", 3)
    end
    local want = max_args > 0 and max_args or 65536
    if want > args_buf_size then
        args_buf_size = want
        args_buf = ffi_new("halo_ffi_header_t[?]", want)
    end
    local n = fill(r, args_buf, want)
    if n == FFI_DECLINED then
        return nil, "request body not read"
    end
    local t = new_tab(0, n)
    for i = 0, n - 1 do
        local a = args_buf[i]
        local name = ffi_str(a.name, a.name_len)
        local value = true
        if a.value ~= nil then
            value = ffi_str(a.value, a.value_len)
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

-- ngx.req.get_uri_args(max_args?): name -> value ("a=1"), true ("a"), or a
-- list for a repeated name; names and values %-decoded, '+' as space. At
-- most 100 arguments by default (0 = all), as lua-nginx-module.
function ngx.req.get_uri_args(max_args)
    return collect_args("get_uri_args", c_get_uri_args, max_args)
end

-- ngx.req.get_post_args(max_args?): the same for a form-encoded body.
function ngx.req.get_post_args(max_args)
    return collect_args("get_post_args", c_get_post_args, max_args)
end

local function req()
    local r = get_request()
    if r == 0 then
        error("no request found", 3)
    end
    return r
end

-- 1.0 or 1.1.
function ngx.req.http_version()
    return c_http_version(req()) / 10
end

function ngx.req.start_time()
    return c_start_time(req())
end

function ngx.req.is_internal()
    return c_is_internal(req()) == 1
end

-- halo has no subrequests (yet).
function ngx.is_subrequest()
    req()
    return false
end

ngx.resp = ngx.resp or {}

-- ngx.resp.get_headers(max_headers?, raw?): the response headers set so far.
function ngx.resp.get_headers(max_headers, raw)
    local r = req()
    if max_headers == nil then
        max_headers = 100
    elseif type(max_headers) ~= "number" then
        error("bad argument #1 to 'get_headers' (number expected, got " .. type(max_headers) .. ")", 2)
    end
    local n = c_resp_header_count(r)
    if max_headers > 0 and n > max_headers then
        n = max_headers
    end
    if n > headers_buf_size then
        headers_buf_size = n
        headers_buf = ffi_new("halo_ffi_header_t[?]", n)
    end
    n = c_get_resp_headers(r, headers_buf, n)
    local t = new_tab(0, n)
    for i = 0, n - 1 do
        local h = headers_buf[i]
        local name = ffi_str(h.name, h.name_len)
        if not raw then
            name = lower(name)
        end
        t[name] = ffi_str(h.value, h.value_len)
    end
    return t
end

-- ngx.req.raw_header(no_request_line?): the head as the client sent it.
function ngx.req.raw_header(no_request_line)
    local r = req()
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
    local r = req()
    if value == nil then
        c_set_req_header(r, name, #name, nil, 0)
        return
    end
    if type(value) == "table" then
        error("bad argument #2 to 'set_header' (several values are not supported yet)", 2)
    end
    value = tostring(value)
    c_set_req_header(r, name, #name, value, #value)
end

function ngx.req.clear_header(name)
    if type(name) ~= "string" then
        error("bad argument #1 to 'clear_header' (string expected, got " .. type(name) .. ")", 2)
    end
    c_set_req_header(req(), name, #name, nil, 0)
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
    c_set_method(req(), name, #name)
end

-- ngx.req.set_uri_args(args): a query string or a table of arguments.
function ngx.req.set_uri_args(args)
    if type(args) == "table" then
        args = base.encode_args(args)
    elseif type(args) ~= "string" then
        error("bad argument #1 to 'set_uri_args' (string or table expected, got " .. type(args) .. ")", 2)
    end
    req()
    ngx.var.args = args
end

local co_yield = require("resty.core.coroutine").api_yield

-- ngx.req.set_uri(uri, jump?): changes $uri; with jump (rewrite_by_lua only)
-- the location is searched again, as after `rewrite ... last`.
function ngx.req.set_uri(uri, jump)
    if type(uri) ~= "string" or uri == "" then
        error("bad argument #1 to 'set_uri' (non-empty string expected)", 2)
    end
    local r = req()
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

-- halo reads the body before the Lua phases run (as lua_need_request_body
-- on), so reading and discarding are already done.
function ngx.req.read_body()
end

function ngx.req.discard_body()
end

-- ngx.req.get_body_data(): the body, or nil without one.
function ngx.req.get_body_data()
    local r = get_request()
    if r == 0 then
        error("no request found", 2)
    end
    if c_get_body(r, data_out, len_out) == FFI_OK then
        return ffi_str(data_out[0], len_out[0])
    end
    return nil
end

return {}
