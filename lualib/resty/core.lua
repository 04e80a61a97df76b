-- resty.core: loads every API module, filling the global ngx table. The core
-- requires it when it creates a VM; requiring it again (as OpenResty configs
-- often do in init_by_lua) is harmless.

local base = require "resty.core.base"

require "resty.core.consts"
require "resty.core.time"
require "resty.core.worker"
require "resty.core.config"
require "resty.core.log"
require "resty.core.phase"
require "resty.core.coroutine"
require "resty.core.output"
require "resty.core.exit"
require "resty.core.request"
require "resty.core.var"
require "resty.core.response"
require "resty.core.ctx"
require "resty.core.arg"
require "resty.core.regex"
require "resty.core.shdict"
require "resty.core.string"
require "resty.core.hash"
require "resty.core.base64"
require "resty.core.thread"
require "resty.core.timer"
require "resty.core.socket"
require "resty.core.location"
-- Last: it checks what the others defined.
require "resty.core.unsupported"

return {
    version = base.version,
}
