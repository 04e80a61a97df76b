-- table.nkeys(t): how many keys t has (array part included), as OpenResty's
-- LuaJIT branch provides it (lua-resty-balancer and Kong require it).
local next = next

return function(t)
    local n = 0
    for _ in next, t do
        n = n + 1
    end
    return n
end
