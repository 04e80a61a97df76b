-- ngx.req: lua-resty-core's request module. add_header(name, value)
-- appends a request header, keeping the request's own of that name.

local base = require "resty.core.base"

base.allows_subsystem("http")

local add_req_header = require("resty.core.request").add_req_header

local _M = { version = base.version }

function _M.add_header(name, value)
    add_req_header(name, value)
end

return _M
