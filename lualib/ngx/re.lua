-- ngx.re: ngx.re.split and ngx.re.opt, as lua-resty-core's ngx.re module
-- (require "ngx.re"), over resty.core.regex's search.

local base = require "resty.core.base"
local regex = require "resty.core.regex"
local ffi = require "ffi"

local C = ffi.C
local FFI_OK = base.FFI_OK

local split_exec = regex.split_exec
local is_regex_cache_empty = regex.is_regex_cache_empty
local new_tab = base.new_tab
local sub = string.sub
local tostring = tostring
local type = type
local error = error

local _M = { version = base.version }

-- The ctx used when the caller gives none.
local own_ctx = {}

-- res, err = split(subject, regex, options?, ctx?, max?, res?): the pieces
-- of subject between the matches of regex, with each match's group 1 after
-- its piece. max > 0 caps the number of pieces (the last holds the rest);
-- without it, empty trailing pieces are dropped. An empty match splits
-- between characters but never right after a non-empty one. res is filled
-- and returned (a nil ends the pieces). ctx.pos (1-based) is where to
-- start; it is left as the 0-based offset of the next search.
function _M.split(subj, re, opts, ctx, max, res)
    subj = tostring(subj)
    if not ctx then
        ctx = own_ctx
        ctx.pos = 1
    elseif not ctx.pos then
        ctx.pos = 1
    end
    max = max or 0
    if not res then
        res = new_tab(max > 0 and max < 4 and max or 4, 0)
    elseif type(res) ~= "table" then
        error("res is not a table", 2)
    end

    local len = #subj
    if ctx.pos > len then
        res[1] = nil
        return res
    end

    -- piece: where the next piece starts (1-based); pos: the next search
    -- (0-based); empty_at: the last empty match's 1-based position.
    local piece = ctx.pos
    local pos = piece - 1
    local n = 0
    local count = 1
    local empty_at
    while max <= 0 or count < max do
        local from, to, cap = split_exec(subj, re, opts, pos < 0 and 0 or pos)
        if not from then
            if to then
                ctx.pos = pos
                return nil, to
            end
            break
        end
        -- The next search: past an empty match by one byte.
        pos = from == to and to + 1 or to
        from = from + 1
        to = to + 1
        if empty_at then
            piece = empty_at
        end
        if from == to then
            empty_at = from
        end
        if from > piece or not empty_at then
            count = count + 1
            n = n + 1
            res[n] = sub(subj, piece, from - 1)
            if cap then
                n = n + 1
                res[n] = cap
            end
            piece = to
            if piece > len then
                break
            end
        end
    end
    ctx.pos = pos

    if max <= 0 and piece > len then
        -- Without max, empty trailing pieces are dropped.
        while n > 0 and res[n] == "" do
            res[n] = nil
            n = n - 1
        end
    else
        n = n + 1
        res[n] = sub(subj, piece)
    end
    res[n + 1] = nil
    return res
end

-- opt(option, value): "jit_stack_size" (bytes) is the one option: the JIT
-- stack of PCRE2 searches, settable before any regex is cached with o.
function _M.opt(option, value)
    if option == "jit_stack_size" then
        if not is_regex_cache_empty() then
            error("changing jit stack size is not allowed when some "
                  .. "regexs have already been compiled and cached", 2)
        end
        -- A value that is not a number fails the FFI call, as in OpenResty.
        if C.halo_ffi_regex_set_jit_stack_size(value) ~= FFI_OK then
            error("PCRE jit stack allocation failed", 2)
        end
        return
    end
    error("unrecognized option name", 2)
end

return _M
