-- A tiny API: lists items with a label each. The label is made by a closure
-- created inside the loop, once per item: LuaJIT 2.1 cannot compile closure
-- creation (NYI: bytecode FNEW), so this loop never becomes a trace.
local _M = {}

local items = {}
for i = 1, 64 do
    items[i] = { id = i, name = "item-" .. i }
end

function _M.list()
    local out, n = {}, 0
    for i = 1, #items do
        local item = items[i]
        local label = function(prefix) return prefix .. item.name end
        n = n + #label("#")
        out[i] = item.id
    end
    ngx.say(#out, " items, ", n, " label bytes")
end

return _M
