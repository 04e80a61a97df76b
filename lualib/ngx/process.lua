-- ngx.process: lua-resty-core's process module over ffi-headers/worker.h.
-- enable_privileged_agent (init_by_lua only) makes the master start one
-- more process, of type "privileged agent", with the workers.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "worker"

local C = ffi.C
local c_type = C.halo_ffi_worker_process_type
local c_master_pid = C.halo_ffi_worker_master_pid
local c_graceful_exit = C.halo_ffi_worker_signal_graceful_exit
local c_enable_agent = C.halo_ffi_worker_enable_privileged_agent
local tonumber = tonumber
local type = type
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

-- `connections` is checked as lua-resty-core checks it, then ignored: the
-- agent accepts no client connections.
function _M.enable_privileged_agent(connections)
    if get_phase() ~= "init" then
        return nil, "API disabled in the current context"
    end

    connections = connections or 512

    if type(connections) ~= "number" or connections < 0 then
        return nil, "bad 'connections' argument: " ..
            "number expected and greater than 0"
    end

    c_enable_agent(connections)
    return true
end

-- The process exits gracefully, as on SIGQUIT.
function _M.signal_graceful_exit()
    c_graceful_exit()
end

function _M.get_master_pid()
    return tonumber(c_master_pid())
end

return _M
