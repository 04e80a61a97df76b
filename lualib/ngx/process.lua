-- ngx.process: lua-resty-core's process module over ffi-headers/worker.h.
-- halo has no privileged agent yet: enable_privileged_agent answers nil and
-- a message, as OpenResty does when its nginx lacks the agent.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "worker"

local C = ffi.C
local c_type = C.halo_ffi_worker_process_type
local c_master_pid = C.halo_ffi_worker_master_pid
local c_graceful_exit = C.halo_ffi_worker_signal_graceful_exit
local tonumber = tonumber
local get_phase = ngx.get_phase

-- nginx's process type numbers, named as lua-resty-core names them.
local names = {
    [0] = "single",
    [1] = "master",
    [2] = "signaller",
    [3] = "worker",
    [4] = "helper",
    [99] = "privileged agent",
}

local _M = { version = base.version }

function _M.type()
    return names[tonumber(c_type())]
end

function _M.enable_privileged_agent()
    if get_phase() ~= "init" then
        return nil, "API disabled in the current context"
    end
    return nil, "privileged agent is not supported by halo yet"
end

-- The process exits gracefully, as on SIGQUIT.
function _M.signal_graceful_exit()
    c_graceful_exit()
end

function _M.get_master_pid()
    return tonumber(c_master_pid())
end

return _M
