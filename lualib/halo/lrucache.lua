-- halo's own resty.lrucache: a per-worker LRU cache with the API of
-- lua-resty-lrucache (new, get, set, delete, count, capacity, get_keys,
-- flush_all), found only when no resty/lrucache.lua is on package.path (an
-- operator's copy wins). `resty.lrucache.pureffi` is the same cache: its
-- keys must be strings there; here any key works.

local ngx_now = ngx.now
local setmetatable = setmetatable
local type = type

local _M = { _VERSION = "0.13" }
local mt = { __index = _M }

-- Nodes are tables on a doubly linked list, most recently used first.
local function unlink(self, node)
    local prev, nxt = node.prev, node.next
    if prev then prev.next = nxt else self.head = nxt end
    if nxt then nxt.prev = prev else self.tail = prev end
    node.prev, node.next = nil, nil
end

local function push_head(self, node)
    local head = self.head
    node.next = head
    node.prev = nil
    if head then head.prev = node else self.tail = node end
    self.head = node
end

function _M.new(size)
    if type(size) ~= "number" or size < 1 then
        return nil, "size too small"
    end
    return setmetatable({ size = size, n = 0, index = {}, head = nil, tail = nil }, mt)
end

function _M.get(self, key)
    local node = self.index[key]
    if not node then
        return nil
    end
    local expire = node.expire
    if expire and expire < ngx_now() then
        self.index[key] = nil
        unlink(self, node)
        self.n = self.n - 1
        return nil, node.value, node.flags
    end
    if self.head ~= node then
        unlink(self, node)
        push_head(self, node)
    end
    return node.value, nil, node.flags
end

function _M.set(self, key, value, ttl, flags)
    local index = self.index
    local node = index[key]
    if node then
        unlink(self, node)
    elseif self.n >= self.size then
        -- Full: the least recently used node is reused for the new key.
        node = self.tail
        index[node.key] = nil
        unlink(self, node)
    else
        node = {}
        self.n = self.n + 1
    end
    node.key = key
    node.value = value
    node.expire = (ttl and ttl > 0) and ngx_now() + ttl or nil
    node.flags = type(flags) == "number" and flags or 0
    index[key] = node
    push_head(self, node)
end

function _M.delete(self, key)
    local node = self.index[key]
    if not node then
        return false
    end
    self.index[key] = nil
    unlink(self, node)
    self.n = self.n - 1
    return true
end

function _M.count(self)
    return self.n
end

function _M.capacity(self)
    return self.size
end

function _M.get_keys(self, max_count, res)
    if not max_count or max_count == 0 then
        max_count = self.n
    end
    res = res or {}
    local i = 0
    local node = self.head
    while node and i < max_count do
        i = i + 1
        res[i] = node.key
        node = node.next
    end
    res[i + 1] = nil
    return res
end

function _M.flush_all(self)
    self.index = {}
    self.head, self.tail, self.n = nil, nil, 0
end

return _M
