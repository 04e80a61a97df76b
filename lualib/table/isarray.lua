-- table.isarray(t): whether t's keys are exactly 1..n (an empty table is an
-- array), as OpenResty's LuaJIT branch provides it.
local next = next
local type = type

return function(t)
    local n = 0
    for k in next, t do
        if type(k) ~= "number" then
            return false
        end
        n = n + 1
    end
    for i = 1, n do
        if t[i] == nil then
            return false
        end
    end
    return true
end
