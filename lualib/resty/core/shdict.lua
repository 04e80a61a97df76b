-- resty.core.shdict: ngx.shared.DICT over ffi-headers/shdict.h. Each zone
-- of lua_shared_dict is an object { zone index } whose methods are shared
-- by all zones (as lua-resty-core patches the zones' one metatable).

local base = require "resty.core.base"
local ffi = require "ffi"

base.cdef "shdict"

local C = ffi.C
local ffi_new = ffi.new
local ffi_str = ffi.string
local type = type
local tostring = tostring
local tonumber = tonumber
local error = error
local setmetatable = setmetatable
local new_tab = base.new_tab
local FFI_OK = base.FFI_OK
local FFI_DECLINED = base.FFI_DECLINED

local c_get = C.halo_ffi_shdict_get
local c_store = C.halo_ffi_shdict_store
local c_incr = C.halo_ffi_shdict_incr
local c_get_ttl = C.halo_ffi_shdict_get_ttl
local c_set_expire = C.halo_ffi_shdict_set_expire
local c_flush_all = C.halo_ffi_shdict_flush_all
local c_flush_expired = C.halo_ffi_shdict_flush_expired
local c_get_keys = C.halo_ffi_shdict_get_keys
local c_capacity = C.halo_ffi_shdict_capacity
local c_free_space = C.halo_ffi_shdict_free_space
local c_push = C.halo_ffi_shdict_push
local c_pop = C.halo_ffi_shdict_pop
local c_llen = C.halo_ffi_shdict_llen

-- Shared in/out parameters: every call fills them before use.
local val = ffi_new("halo_shdict_val_t")
local is_stale = ffi_new("int[1]")
local forcible = ffi_new("int[1]")
local num = ffi_new("double[1]")
local init_num = ffi_new("double[1]")
local ttl_ms = ffi_new("double[1]")
local str_ptr = ffi_new("const unsigned char *[1]")
local errmsg = base.get_errmsg_ptr()
local size_ptr = base.get_size_ptr()

local T_NIL, T_BOOLEAN, T_NUMBER, T_STRING = 0, 1, 3, 4

local function check_zone(zone)
    if type(zone) ~= "table" then
        error("bad \"zone\" argument", 3)
    end
    local z = zone[1]
    if type(z) ~= "number" then
        error("bad \"zone\" argument", 3)
    end
    return z
end

-- The key as the C side wants it, or nil and the error to return.
local function check_key(key)
    if key == nil then
        return nil, "nil key"
    end
    if type(key) ~= "string" then
        key = tostring(key)
    end
    local n = #key
    if n == 0 then
        return nil, "empty key"
    end
    if n > 65535 then
        return nil, "key too long"
    end
    return key
end

-- Fills `val` from a Lua value; false for a type a dict cannot hold.
local function put_value(value)
    local t = type(value)
    if t == "string" then
        val.type = T_STRING
        val.str = value
        val.len = #value
    elseif t == "number" then
        val.type = T_NUMBER
        val.num = value
    elseif value == nil then
        val.type = T_NIL
    elseif t == "boolean" then
        val.type = T_BOOLEAN
        val.num = value and 1 or 0
    else
        return false
    end
    return true
end

-- The Lua value `val` holds after a get or pop.
local function read_value()
    local t = val.type
    if t == T_STRING then
        return ffi_str(val.str, val.len)
    elseif t == T_NUMBER then
        return tonumber(val.num)
    elseif t == T_BOOLEAN then
        return val.num ~= 0
    end
    return nil
end

local function store(zone, op, key, value, exptime, flags)
    local z = check_zone(zone)
    if not exptime then
        exptime = 0
    elseif exptime < 0 then
        error('bad "exptime" argument', 2)
    end
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    if not put_value(value) then
        return nil, "bad value type"
    end
    val.flags = flags or 0
    local rc = c_store(z, op, key, #key, val, exptime * 1000, errmsg, forcible)
    if rc == FFI_OK then
        return true, nil, forcible[0] == 1
    end
    return false, ffi_str(errmsg[0]), forcible[0] == 1
end

local function shdict_set(zone, key, value, exptime, flags)
    return store(zone, 0, key, value, exptime, flags)
end

local function shdict_safe_set(zone, key, value, exptime, flags)
    return store(zone, 4, key, value, exptime, flags)
end

local function shdict_add(zone, key, value, exptime, flags)
    return store(zone, 1, key, value, exptime, flags)
end

local function shdict_safe_add(zone, key, value, exptime, flags)
    return store(zone, 5, key, value, exptime, flags)
end

local function shdict_replace(zone, key, value, exptime, flags)
    return store(zone, 2, key, value, exptime, flags)
end

local function shdict_delete(zone, key)
    return store(zone, 0, key, nil)
end

local function get(zone, key, flags, stale)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    local rc = c_get(z, key, #key, stale, val, is_stale, errmsg)
    if rc == FFI_DECLINED then
        return nil
    end
    if rc ~= FFI_OK then
        return nil, ffi_str(errmsg[0])
    end
    local f = val.flags
    -- get(key, flags): the caller has this version already (OpenResty's
    -- "flags match" answer: no value, and true third).
    if flags ~= nil and f == flags then
        if stale == 1 then
            return nil, nil, is_stale[0] == 1, true
        end
        return nil, nil, true
    end
    local v = read_value()
    if stale == 1 then
        return v, f ~= 0 and f or nil, is_stale[0] == 1
    end
    if f ~= 0 then
        return v, f
    end
    return v
end

local function shdict_get(zone, key, flags)
    return get(zone, key, flags, 0)
end

local function shdict_get_stale(zone, key, flags)
    return get(zone, key, flags, 1)
end

local function shdict_incr(zone, key, value, init, init_ttl)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    if type(value) ~= "number" then
        value = tonumber(value)
    end
    num[0] = value
    local init_p
    if init then
        local t = type(init)
        if t ~= "number" then
            init = tonumber(init)
            if not init then
                error("bad init arg: number expected, got " .. t, 2)
            end
        end
        init_num[0] = init
        init_p = init_num
    end
    if init_ttl ~= nil then
        local t = type(init_ttl)
        if t ~= "number" then
            init_ttl = tonumber(init_ttl)
            if not init_ttl then
                error("bad init_ttl arg: number expected, got " .. t, 2)
            end
        end
        if init_ttl < 0 then
            error('bad "init_ttl" argument', 2)
        end
        if not init then
            error('must provide "init" when providing "init_ttl"', 2)
        end
    else
        init_ttl = 0
    end
    local rc = c_incr(z, key, #key, num, init_p, init_ttl * 1000, errmsg, forcible)
    if rc ~= FFI_OK then
        return nil, ffi_str(errmsg[0])
    end
    if not init then
        return tonumber(num[0])
    end
    return tonumber(num[0]), nil, forcible[0] == 1
end

local function shdict_ttl(zone, key)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    if c_get_ttl(z, key, #key, ttl_ms) ~= FFI_OK then
        return nil, "not found"
    end
    return tonumber(ttl_ms[0]) / 1000
end

local function shdict_expire(zone, key, exptime)
    local z = check_zone(zone)
    if not exptime then
        error('bad "exptime" argument', 2)
    end
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    if c_set_expire(z, key, #key, exptime * 1000) ~= FFI_OK then
        return nil, "not found"
    end
    return true
end

local function shdict_flush_all(zone)
    c_flush_all(check_zone(zone))
end

local function shdict_flush_expired(zone, max_count)
    local z = check_zone(zone)
    return tonumber(c_flush_expired(z, tonumber(max_count) or 0))
end

local function shdict_get_keys(zone, max_count)
    local z = check_zone(zone)
    if max_count == nil then
        max_count = 1024
    end
    local n = c_get_keys(z, tonumber(max_count) or 1024, str_ptr, size_ptr)
    local keys = new_tab(n > 0 and n or 0, 0)
    local p = str_ptr[0]
    local at = 0
    for i = 1, n do
        local len = p[at] + p[at + 1] * 256
        keys[i] = ffi_str(p + at + 2, len)
        at = at + 2 + len
    end
    return keys
end

local function shdict_capacity(zone)
    return c_capacity(check_zone(zone))
end

local function shdict_free_space(zone)
    return c_free_space(check_zone(zone))
end

local function push(zone, key, value, left)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    local t = type(value)
    if t ~= "string" and t ~= "number" then
        return nil, "bad value type"
    end
    put_value(value)
    local n = c_push(z, key, #key, left, val, errmsg)
    if n < 0 then
        return nil, ffi_str(errmsg[0])
    end
    return n
end

local function shdict_lpush(zone, key, value)
    return push(zone, key, value, 1)
end

local function shdict_rpush(zone, key, value)
    return push(zone, key, value, 0)
end

local function pop(zone, key, left)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    local rc = c_pop(z, key, #key, left, val, errmsg)
    if rc == FFI_DECLINED then
        return nil
    end
    if rc ~= FFI_OK then
        return nil, ffi_str(errmsg[0])
    end
    return read_value()
end

local function shdict_lpop(zone, key)
    return pop(zone, key, 1)
end

local function shdict_rpop(zone, key)
    return pop(zone, key, 0)
end

local function shdict_llen(zone, key)
    local z = check_zone(zone)
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    local n = c_llen(z, key, #key, errmsg)
    if n < 0 then
        return nil, ffi_str(errmsg[0])
    end
    return n
end

local methods = {
    get = shdict_get,
    get_stale = shdict_get_stale,
    set = shdict_set,
    safe_set = shdict_safe_set,
    add = shdict_add,
    safe_add = shdict_safe_add,
    replace = shdict_replace,
    delete = shdict_delete,
    incr = shdict_incr,
    ttl = shdict_ttl,
    expire = shdict_expire,
    flush_all = shdict_flush_all,
    flush_expired = shdict_flush_expired,
    get_keys = shdict_get_keys,
    capacity = shdict_capacity,
    free_space = shdict_free_space,
    lpush = shdict_lpush,
    rpush = shdict_rpush,
    lpop = shdict_lpop,
    rpop = shdict_rpop,
    llen = shdict_llen,
}
local mt = { __index = methods }

-- ngx.shared: one object per zone, by name (an unknown name is nil, as in
-- OpenResty).
local shared = new_tab(0, 4)
for i = 0, C.halo_ffi_shdict_count() - 1 do
    if C.halo_ffi_shdict_name(i, str_ptr, size_ptr) == FFI_OK then
        shared[ffi_str(str_ptr[0], size_ptr[0])] = setmetatable({ i }, mt)
    end
end
ngx.shared = shared

return {
    version = base.version,
    -- The zones' methods, which the lua_CFunction twin (core/src/lua/capi/)
    -- copies and partly replaces.
    methods = methods,
}
