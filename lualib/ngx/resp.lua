-- ngx.resp: lua-resty-core's response module. add_header(name, value)
-- appends a response header, keeping earlier values of that name.

local base = require "resty.core.base"

base.allows_subsystem("http")

local add_resp_header = require("resty.core.response").add_resp_header

local _M = { version = base.version }

function _M.add_header(name, value)
    add_resp_header(name, value, 2)
end

return _M
