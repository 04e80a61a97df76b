-- table.isempty(t): whether t has no key at all, as OpenResty's LuaJIT
-- branch provides it.
local next = next

return function(t)
    return next(t) == nil
end
