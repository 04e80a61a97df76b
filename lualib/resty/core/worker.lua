-- resty.core.worker: ngx.worker.id, count, pid, exiting over
-- ffi-headers/worker.h.

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "worker"

local C = ffi.C
local c_id = C.halo_ffi_worker_id
local c_count = C.halo_ffi_worker_count
local c_pid = C.halo_ffi_worker_pid
local c_exiting = C.halo_ffi_worker_exiting

local worker = ngx.worker
if not worker then
    worker = base.new_tab(0, 4)
    ngx.worker = worker
end

-- The worker's number (0 .. count-1), or nil outside a worker process.
function worker.id()
    local id = c_id()
    if id < 0 then
        return nil
    end
    return id
end

function worker.count()
    return c_count()
end

function worker.pid()
    return c_pid()
end

function worker.exiting()
    return c_exiting() == 1
end

return {
    version = base.version,
}
