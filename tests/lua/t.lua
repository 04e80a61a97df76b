-- Helpers for the tests' Lua code (not a library).
local _M = {}

-- ngx.say of every argument through tostring, separated by spaces (so nil
-- and false show).
function _M.p(...)
    local t = {}
    for i = 1, select("#", ...) do
        t[i] = tostring((select(i, ...)))
    end
    ngx.say(table.concat(t, " "))
end

return _M
