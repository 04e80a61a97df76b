-- resty.core.location: ngx.location.capture and ngx.location.capture_multi
-- (subrequests) over ffi-headers/location.h. The options are checked here
-- with lua-nginx-module's messages; the core copies what each subrequest
-- needs, runs them concurrently while the caller yields, and lends their
-- outcomes until halo_ffi_location_finish.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "location"

local C = ffi.C
local c_capture = C.halo_ffi_location_capture
local c_result = C.halo_ffi_location_result
local c_header = C.halo_ffi_location_header
local c_finish = C.halo_ffi_location_finish
local FFI_OK = base.FFI_OK
local FFI_AGAIN = base.FFI_AGAIN
local FFI_ERROR = base.FFI_ERROR
local FFI_BAD_CONTEXT = base.FFI_BAD_CONTEXT
local new_tab = base.new_tab
local errmsg = base.get_errmsg_ptr()
local phase = require "resty.core.phase"
local request = phase.request
local disabled = phase.disabled
local co_yield = require("resty.core.coroutine").api_yield
local encode_args = require("resty.core.string").encode_args
local set_ctx = require("resty.core.ctx").set_sub
local ffi_new = ffi.new
local ffi_str = ffi.string
local tostring = tostring
local tonumber = tonumber
local type = type
local error = error
local pairs = pairs
local select = select
local unpack = unpack
local format = string.format

local COPY_VARS = C.HALO_FFI_CAPTURE_COPY_VARS
local SHARE_VARS = C.HALO_FFI_CAPTURE_SHARE_VARS
local FORWARD_BODY = C.HALO_FFI_CAPTURE_FORWARD_BODY
local CTX = C.HALO_FFI_CAPTURE_CTX
local HTTP_GET = ngx.HTTP_GET

local status_out = ffi_new("int[1]")
local truncated_out = ffi_new("int[1]")
local body_out = ffi_new("const unsigned char *[1]")
local body_len_out = ffi_new("size_t[1]")
local cl_out = ffi_new("int64_t[1]")
local nheaders_out = ffi_new("int[1]")
local name_out = ffi_new("halo_ffi_str_t[1]")
local value_out = ffi_new("halo_ffi_str_t[1]")

local function set_str(s, v)
    s.data = v
    s.len = #v
end

-- A boolean option: nil, or a boolean (else lua-nginx-module's error).
local function flag(opts, name, bit, level)
    local v = opts[name]
    if v == nil then
        return 0
    end
    if type(v) ~= "boolean" then
        error("Bad " .. name .. " option value", level)
    end
    return v and bit or 0
end

-- Fills srs[i] from query q ({uri, opts?}); `keep` anchors the strings and
-- arrays the C side reads during the call.
local function fill(srs, i, q, keep, ctxs)
    local n = #q
    if n ~= 1 and n ~= 2 then
        error(format("query argument %d expecting one or two arguments", i), 4)
    end
    local uri = q[1]
    local sr = srs[i]
    local method = HTTP_GET
    local flags = 0
    local opts = q[2]
    if n == 2 then
        if type(opts) ~= "table" then
            error(format("expecting table as the 2nd argument for subrequest %d, but got %s",
                         i, type(opts)), 4)
        end
        local args = opts.args
        local ta = type(args)
        if ta == "table" then
            args = encode_args(args)
        elseif ta == "number" then
            args = tostring(args)
        elseif ta ~= "nil" and ta ~= "string" then
            error("Bad args option value", 4)
        end
        if args then
            keep[#keep + 1] = args
            set_str(sr.args, args)
        end
        local vars = opts.vars
        if vars ~= nil then
            if type(vars) ~= "table" then
                error("Bad vars option value", 4)
            end
            local nv = 0
            for k, v in pairs(vars) do
                if type(k) ~= "string" then
                    error("attempt to use a non-string key in the \"vars\" option table", 4)
                end
                local tv = type(v)
                if tv ~= "string" and tv ~= "number" then
                    error("attempt to use bad variable value type " .. tv, 4)
                end
                nv = nv + 1
            end
            if nv > 0 then
                local arr = ffi_new("halo_ffi_str_t[?]", 2 * nv)
                local j = 0
                for k, v in pairs(vars) do
                    v = tostring(v)
                    keep[#keep + 1] = v
                    set_str(arr[j], k)
                    set_str(arr[j + 1], v)
                    j = j + 2
                end
                keep[#keep + 1] = arr
                sr.vars = arr
                sr.nvars = nv
            end
        end
        flags = flags + flag(opts, "share_all_vars", SHARE_VARS, 4)
        flags = flags + flag(opts, "copy_all_vars", COPY_VARS, 4)
        if opts.always_forward_body then
            flags = flags + FORWARD_BODY
        end
        local m = opts.method
        if m ~= nil then
            if type(m) ~= "number" then
                error("Bad http request method", 4)
            end
            method = m
        end
        local ctx = opts.ctx
        if ctx ~= nil then
            if type(ctx) ~= "table" then
                error("Bad ctx option value type " .. type(ctx) .. ", expected a Lua table", 4)
            end
            flags = flags + CTX
            ctxs[i] = ctx
        end
        local body = opts.body
        if body ~= nil then
            local tb = type(body)
            if tb == "number" then
                body = tostring(body)
            elseif tb ~= "string" then
                error("Bad http request body", 4)
            end
            keep[#keep + 1] = body
            -- (An empty body is a body: data must not be NULL.)
            sr.body.data = body
            sr.body.len = #body
        end
    end
    local tu = type(uri)
    if tu == "number" then
        uri = tostring(uri)
    elseif tu ~= "string" then
        error("bad argument #1 to 'capture' (string expected, got " .. tu .. ")", 4)
    end
    keep[#keep + 1] = uri
    set_str(sr.uri, uri)
    sr.method = method
    sr.flags = flags
end

local function result(r, i)
    local rc = c_result(r, i, status_out, truncated_out, body_out, body_len_out, cl_out, nheaders_out)
    if rc ~= FFI_OK then
        return nil
    end
    local nh = nheaders_out[0]
    local header = new_tab(0, nh + 2)
    for j = 0, nh - 1 do
        if c_header(r, i, j, name_out, value_out) == FFI_OK then
            local k = ffi_str(name_out[0].data, name_out[0].len)
            local v = ffi_str(value_out[0].data, value_out[0].len)
            local old = header[k]
            if k == "Content-Type" then
                header[k] = v
            elseif old == nil then
                header[k] = v
            elseif type(old) == "table" then
                old[#old + 1] = v
            else
                header[k] = { old, v }
            end
        end
    end
    local cl = tonumber(cl_out[0])
    if cl >= 0 then
        header["Content-Length"] = cl
    end
    return {
        status = status_out[0],
        header = header,
        body = ffi_str(body_out[0], body_len_out[0]),
        truncated = truncated_out[0] ~= 0,
    }
end

local function capture_multi(...)
    local n = select("#", ...)
    if n ~= 1 then
        error("only one argument is expected, but got " .. n, 2)
    end
    local reqs = ...
    if type(reqs) ~= "table" then
        error("bad argument #1 to 'capture_multi' (table expected, got " .. type(reqs) .. ")", 2)
    end
    local nreqs = #reqs
    if nreqs == 0 then
        error("at least one subrequest should be specified", 2)
    end
    local r = request(3)
    local srs = ffi_new("halo_ffi_subrequest_t[?]", nreqs)
    local ids = ffi_new("uint64_t[?]", nreqs)
    local keep = new_tab(nreqs * 2, 0)
    local ctxs = {}
    for i = 0, nreqs - 1 do
        local q = reqs[i + 1]
        if q == nil then
            error("only array-like tables are allowed", 2)
        end
        if type(q) ~= "table" then
            error(format("the query argument %d is not a table, but a %s", i, type(q)), 2)
        end
        fill(srs, i, q, keep, ctxs)
    end
    local rc = c_capture(r, srs, nreqs, ids, errmsg)
    if rc == FFI_BAD_CONTEXT then
        error(disabled(r), 2)
    elseif rc == FFI_ERROR then
        error(ffi_str(errmsg[0]), 2)
    elseif rc ~= FFI_AGAIN then
        error("no request found", 2)
    end
    for i, ctx in pairs(ctxs) do
        set_ctx(ids[i], ctx)
    end
    keep = nil
    co_yield()
    local res = new_tab(nreqs, 0)
    for i = 0, nreqs - 1 do
        res[i + 1] = result(r, i)
    end
    c_finish(r)
    return unpack(res, 1, nreqs)
end

local function capture(...)
    local n = select("#", ...)
    if n ~= 1 and n ~= 2 then
        error("expecting one or two arguments", 2)
    end
    local uri, opts = ...
    if n == 1 then
        return capture_multi({ { uri } })
    end
    return capture_multi({ { uri, opts } })
end

ngx.location = { capture = capture, capture_multi = capture_multi }

return {}
