-- resty.core.regex: ngx.re.match, ngx.re.find, ngx.re.gmatch, ngx.re.sub,
-- ngx.re.gsub over ffi-headers/regex.h (the Rust regex crate, byte regexes;
-- PCRE2 for the patterns it cannot run, e.g. look-around, back-references).
-- Works in every phase, init_by_lua included: no request is needed.
--
-- Options: i (caseless), m (multi-line), s (dot matches newline), x
-- (extended), u and U (UTF-8; without them the regex works on bytes, as PCRE
-- without PCRE_UTF8), a (anchored at the start position), o (compile once).
-- Every compiled regex is cached by the core (up to 1024 per worker, as
-- lua_regex_cache_max_entries), so o changes nothing. D (duplicate group
-- names) and J (JavaScript compatibility) compile with PCRE2. j (PCRE JIT:
-- PCRE2 patterns are always JIT-compiled) and d (DFA: longest-leftmost
-- matching, not done) are accepted and ignored.
--
-- The hot path is one table lookup (options, then pattern -> id) and one FFI
-- call per search; gsub with a string template is one FFI call in all.

local base = require "resty.core.base"
local ffi = require "ffi"
local bit = require "bit"

base.cdef "regex"

local C = ffi.C
local c_compile = C.halo_ffi_regex_compile
local c_exec = C.halo_ffi_regex_exec
local c_ncaptures = C.halo_ffi_regex_ncaptures
local c_capture_name = C.halo_ffi_regex_capture_name
local c_sub = C.halo_ffi_regex_sub
local c_free = C.halo_ffi_regex_free

local ffi_str = ffi.string
local ffi_new = ffi.new
local ffi_gc = ffi.gc
local bor = bit.bor
local band = bit.band
local byte = string.byte
local sub = string.sub
local concat = table.concat
local type = type
local tostring = tostring
local error = error
local setmetatable = setmetatable
local new_tab = base.new_tab
local FFI_OK = base.FFI_OK

local F_CASELESS = C.HALO_FFI_REGEX_CASELESS
local F_MULTILINE = C.HALO_FFI_REGEX_MULTILINE
local F_DOTALL = C.HALO_FFI_REGEX_DOTALL
local F_EXTENDED = C.HALO_FFI_REGEX_EXTENDED
local F_UTF8 = C.HALO_FFI_REGEX_UTF8
local F_ANCHORED = C.HALO_FFI_REGEX_ANCHORED
local F_DUPNAMES = C.HALO_FFI_REGEX_DUPNAMES
local F_JAVASCRIPT = C.HALO_FFI_REGEX_JAVASCRIPT
local FFI_ERROR = base.FFI_ERROR

-- Out-parameters and the capture buffer, allocated once.
local str_out = ffi_new("const unsigned char *[1]")
local len_out = ffi_new("size_t[1]")
local temp_out = ffi_new("int[1]")
local caps_size = 64
local caps = ffi_new("int[?]", caps_size)

-- options string -> pattern -> id, for cached ids only.
local ids = new_tab(0, 8)
-- id -> number of groups; id -> { index, name, index, name, ... } or false.
local ncaps_of = new_tab(64, 0)
local names_of = new_tab(64, 0)
-- id -> true when compiled with D: a name's value is the list of its matches.
local dup_of = new_tab(64, 0)
-- options string -> flags, for valid option strings (at most 64 of them).
local flags_of = new_tab(0, 8)
local nflags = 0
-- Whether a regex was compiled with o (ngx.re.opt's "cache is not empty");
-- a table, so the lua_CFunction twin (core/src/lua/capi/) sets it too.
local cache_state = { o_cached = false }

local ngx = ngx
ngx.re = ngx.re or new_tab(0, 5)

-- Parses an options string: its flags, or nil and the error message
-- lua-resty-core raises for an unknown letter.
local function parse_opts(opts)
    local flags = 0
    for i = 1, #opts do
        local c = byte(opts, i)
        if c == 105 then          -- i
            flags = bor(flags, F_CASELESS)
        elseif c == 109 then      -- m
            flags = bor(flags, F_MULTILINE)
        elseif c == 115 then      -- s
            flags = bor(flags, F_DOTALL)
        elseif c == 120 then      -- x
            flags = bor(flags, F_EXTENDED)
        elseif c == 117 or c == 85 then   -- u, U
            flags = bor(flags, F_UTF8)
        elseif c == 97 then       -- a
            flags = bor(flags, F_ANCHORED)
        elseif c == 68 then       -- D
            flags = bor(flags, F_DUPNAMES)
        elseif c == 74 then       -- J
            flags = bor(flags, F_JAVASCRIPT)
        elseif c == 111 or c == 106 or c == 100 then
            -- o (always cached), j, d: nothing to do
        else
            return nil, 'unknown flag "' .. sub(opts, i, i) .. '" (flags "' .. opts .. '")'
        end
    end
    return flags
end

-- Frees a temporary regex (a finalizer: its box was dropped unused).
local function free_box(box)
    c_free(box[0])
end

-- The slow path of get_regex: parse the options, compile, learn the groups.
-- Returns id, temp; or nil, err (compile error); or nil, err, true (bad
-- option: raise it).
local function compile(regex, opts)
    local flags = flags_of[opts]
    if not flags then
        local err
        flags, err = parse_opts(opts)
        if not flags then
            return nil, err, true
        end
        if nflags < 64 then
            flags_of[opts] = flags
            nflags = nflags + 1
        end
    end
    local id = c_compile(regex, #regex, flags, temp_out, str_out, len_out)
    if id < 0 then
        return nil, ffi_str(str_out[0], len_out[0])
    end
    if temp_out[0] == 0 and not cache_state.o_cached and opts:find("o", 1, true) then
        cache_state.o_cached = true
    end
    local ncap = c_ncaptures(id)
    local names = false
    for i = 1, ncap do
        if c_capture_name(id, i, str_out, len_out) == FFI_OK then
            if not names then
                names = {}
            end
            names[#names + 1] = i
            names[#names + 1] = ffi_str(str_out[0], len_out[0])
        end
    end
    ncaps_of[id] = ncap
    names_of[id] = names
    dup_of[id] = band(flags, F_DUPNAMES) ~= 0
    if temp_out[0] ~= 0 then
        return id, true
    end
    local by_pat = ids[opts]
    if not by_pat then
        by_pat = new_tab(0, 8)
        ids[opts] = by_pat
    end
    by_pat[regex] = id
    return id, false
end

-- The id of regex compiled with opts, and whether it is temporary (to free
-- after use); see compile for the failures.
local function get_regex(regex, opts)
    local by_pat = ids[opts]
    if by_pat then
        local id = by_pat[regex]
        if id then
            return id, false
        end
    end
    return compile(regex, opts)
end

-- The error of a failed search: PCRE2's code as lua-nginx-module words it.
local function exec_error(rc)
    if rc == FFI_ERROR then
        return "failed to run regex"
    end
    return "pcre_exec() failed: " .. rc
end

local function arg_error(fname, n, expected, v)
    error("bad argument #" .. n .. " to '" .. fname .. "' (" .. expected
          .. " expected, got " .. type(v) .. ")", 3)
end

-- The arguments every function takes: subject (#1; a number becomes text,
-- as in OpenResty), regex (#2) and the options (#opts_n, default ""); errors
-- are blamed on the caller of fname.
local function check_args(fname, subj, regex, opts, opts_n)
    if type(subj) ~= "string" then
        if type(subj) ~= "number" then
            error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(subj) .. ")", 3)
        end
        subj = tostring(subj)
    end
    if type(regex) ~= "string" then
        error("bad argument #2 to '" .. fname .. "' (string expected, got " .. type(regex) .. ")", 3)
    end
    if opts == nil then
        opts = ""
    elseif type(opts) ~= "string" then
        error("bad argument #" .. opts_n .. " to '" .. fname .. "' (string expected, got " .. type(opts) .. ")", 3)
    end
    return subj, opts
end

-- Makes room for n ints in the capture buffer.
local function grow_caps(n)
    caps_size = n
    caps = ffi_new("int[?]", n)
end

-- The match table for the last exec: [0] the whole match, [1..ncap] the
-- groups (false when unmatched), named groups also by name.
local function collect(subj, id, rc, res)
    local ncap = ncaps_of[id]
    if not res then
        local names = names_of[id]
        res = new_tab(ncap, names and #names / 2 or 0)
    end
    local j = 0
    for i = 0, ncap do
        local from = -1
        if i < rc then
            from = caps[j]
        end
        if from >= 0 then
            res[i] = sub(subj, from + 1, caps[j + 1])
        else
            res[i] = false
        end
        j = j + 2
    end
    local names = names_of[id]
    if names then
        if dup_of[id] then
            -- As lua-resty-core: each name holds its matched groups, in order
            -- (unmatched ones are left out).
            for k = 1, #names, 2 do
                local cap = res[names[k]]
                if cap then
                    local name = names[k + 1]
                    local list = res[name]
                    if list then
                        list[#list + 1] = cap
                    else
                        res[name] = { cap }
                    end
                end
            end
        else
            for k = 1, #names, 2 do
                res[names[k + 1]] = res[names[k]]
            end
        end
    end
    return res
end

-- The 0-based start offset from ctx.pos (1-based).
local function start_of(ctx)
    if ctx then
        local pos = ctx.pos
        if pos and pos > 0 then
            return pos - 1
        end
    end
    return 0
end

-- captures, err = ngx.re.match(subject, regex, options?, ctx?, res_table?)
function ngx.re.match(subj, regex, opts, ctx, res)
    subj, opts = check_args("match", subj, regex, opts, 3)
    if ctx ~= nil and type(ctx) ~= "table" then
        arg_error("match", 4, "table", ctx)
    end
    if res ~= nil and type(res) ~= "table" then
        arg_error("match", 5, "table", res)
    end
    local id, temp, raise = get_regex(regex, opts)
    if not id then
        if raise then
            error(temp, 2)
        end
        return nil, temp
    end
    local n = (ncaps_of[id] + 1) * 2
    if n > caps_size then
        grow_caps(n)
    end
    local rc = c_exec(id, subj, #subj, start_of(ctx), caps, n)
    if rc <= 0 then
        if temp then
            c_free(id)
        end
        if rc == 0 then
            return nil
        end
        return nil, exec_error(rc)
    end
    if ctx then
        ctx.pos = caps[1] + 1
    end
    res = collect(subj, id, rc, res)
    if temp then
        c_free(id)
    end
    return res
end

-- from, to, err = ngx.re.find(subject, regex, options?, ctx?, nth?)
function ngx.re.find(subj, regex, opts, ctx, nth)
    subj, opts = check_args("find", subj, regex, opts, 3)
    if ctx ~= nil and type(ctx) ~= "table" then
        arg_error("find", 4, "table", ctx)
    end
    if nth == nil then
        nth = 0
    elseif type(nth) ~= "number" then
        arg_error("find", 5, "number", nth)
    elseif nth < 0 then
        nth = 0
    end
    local id, temp, raise = get_regex(regex, opts)
    if not id then
        if raise then
            error(temp, 2)
        end
        return nil, nil, temp
    end
    local ncap = ncaps_of[id]
    -- Only the pairs up to nth: the whole match alone is the fast search.
    local n = 2
    if nth > 0 then
        n = ((nth < ncap and nth or ncap) + 1) * 2
        if n > caps_size then
            grow_caps(n)
        end
    end
    local rc = c_exec(id, subj, #subj, start_of(ctx), caps, n)
    if temp then
        c_free(id)
    end
    if rc <= 0 then
        if rc == 0 then
            return nil
        end
        return nil, nil, exec_error(rc)
    end
    if ctx then
        ctx.pos = caps[1] + 1
    end
    if nth > ncap then
        return nil, nil, "nth out of bound"
    end
    local from = caps[nth * 2]
    if from < 0 then
        return nil, nil
    end
    return from + 1, caps[nth * 2 + 1]
end

-- ngx.re.gmatch's iterator: a callable table, as in lua-resty-core.
local function gmatch_done(self)
    self.pos = nil
    local box = self.box
    if box then
        self.box = nil
        ffi_gc(box, nil)
        c_free(box[0])
    end
end

local function gmatch_next(self)
    local pos = self.pos
    if not pos then
        return nil
    end
    local id = self.id
    local subj = self.subj
    local n = (ncaps_of[id] + 1) * 2
    if n > caps_size then
        grow_caps(n)
    end
    local rc = c_exec(id, subj, self.len, pos, caps, n)
    if rc <= 0 then
        gmatch_done(self)
        if rc == 0 then
            return nil
        end
        return nil, exec_error(rc)
    end
    local from, to = caps[0], caps[1]
    local res = collect(subj, id, rc, nil)
    if to == from then
        -- An empty match: go on one byte further.
        to = to + 1
        if to > self.len then
            gmatch_done(self)
            return res
        end
    end
    self.pos = to
    return res
end

local gmatch_mt = { __call = gmatch_next }

-- iterator, err = ngx.re.gmatch(subject, regex, options?)
function ngx.re.gmatch(subj, regex, opts)
    subj, opts = check_args("gmatch", subj, regex, opts, 3)
    local id, temp, raise = get_regex(regex, opts)
    if not id then
        if raise then
            error(temp, 2)
        end
        return nil, temp
    end
    local box
    if temp then
        -- Freed when the iterator is exhausted, or else collected.
        box = ffi_gc(ffi_new("int[1]", id), free_box)
    end
    return setmetatable({ id = id, subj = subj, len = #subj, pos = 0, box = box }, gmatch_mt)
end

-- sub/gsub with a function: the loop runs here, calling func with each
-- match table; the pieces are joined at the end.
local function sub_func(subj, id, func, global)
    local len = #subj
    local n = (ncaps_of[id] + 1) * 2
    local pos, copied, count = 0, 0, 0
    local parts, np = {}, 0
    while true do
        if n > caps_size then
            grow_caps(n)
        end
        local rc = c_exec(id, subj, len, pos, caps, n)
        if rc < 0 then
            return nil, nil, exec_error(rc)
        end
        if rc == 0 then
            break
        end
        count = count + 1
        local from, to = caps[0], caps[1]
        -- func may run other ngx.re calls: collect before calling it.
        local m = collect(subj, id, rc, nil)
        if from > copied then
            np = np + 1
            parts[np] = sub(subj, copied + 1, from)
        end
        np = np + 1
        parts[np] = tostring(func(m))
        copied = to
        pos = to
        if to == from then
            pos = pos + 1
            if pos > len then
                break
            end
        end
        if not global then
            break
        end
    end
    if count == 0 then
        return subj, 0
    end
    if copied < len then
        np = np + 1
        parts[np] = sub(subj, copied + 1)
    end
    return concat(parts, "", 1, np), count
end

local function sub_args(fname, replace)
    local rt = type(replace)
    if rt == "number" then
        replace = tostring(replace)
    elseif rt ~= "string" and rt ~= "function" then
        error("bad argument #3 to '" .. fname .. "' (string or function expected, got " .. rt .. ")", 3)
    end
    return replace
end

local function re_sub(subj, id, temp, replace, global)
    if type(replace) == "function" then
        local box
        if temp then
            box = ffi_gc(ffi_new("int[1]", id), free_box)
        end
        local s, n, err = sub_func(subj, id, replace, global)
        if box then
            ffi_gc(box, nil)
            c_free(id)
        end
        if err then
            return nil, nil, err
        end
        return s, n
    end
    local n = c_sub(id, subj, #subj, replace, #replace, global and 1 or 0, str_out, len_out)
    if temp then
        c_free(id)
    end
    if n > 0 then
        return ffi_str(str_out[0], len_out[0]), n
    end
    if n == 0 then
        return subj, 0
    end
    if n ~= FFI_ERROR then
        return nil, nil, exec_error(n)
    end
    -- As lua-resty-core: the reason goes to the error log.
    ngx.log(ngx.ERR, "failed to compile the replacement template: ", ffi_str(str_out[0], len_out[0]))
    return nil, nil, "failed to compile the replacement template"
end

-- newstr, n, err = ngx.re.sub(subject, regex, replace, options?)
function ngx.re.sub(subj, regex, replace, opts)
    subj, opts = check_args("sub", subj, regex, opts, 4)
    replace = sub_args("sub", replace)
    local id, temp, raise = get_regex(regex, opts)
    if not id then
        if raise then
            error(temp, 2)
        end
        return nil, nil, temp
    end
    return re_sub(subj, id, temp, replace, false)
end

-- newstr, n, err = ngx.re.gsub(subject, regex, replace, options?)
function ngx.re.gsub(subj, regex, replace, opts)
    subj, opts = check_args("gsub", subj, regex, opts, 4)
    replace = sub_args("gsub", replace)
    local id, temp, raise = get_regex(regex, opts)
    if not id then
        if raise then
            error(temp, 2)
        end
        return nil, nil, temp
    end
    return re_sub(subj, id, temp, replace, true)
end

-- For ngx.re.split (lualib/ngx/re.lua): the match of regex in subj from
-- 0-based offset pos: its 0-based from and (exclusive) to, and group 1's
-- text (nil when the regex has no groups or it is unmatched); nil when no
-- match; nil, err for a bad regex or a failed search; raises for bad options.
local function split_exec(subj, regex, opts, pos)
    local id, temp, raise = get_regex(regex, opts or "")
    if not id then
        if raise then
            error(temp, 3)
        end
        return nil, temp
    end
    local n = ncaps_of[id] > 0 and 4 or 2
    if n > caps_size then
        grow_caps(n)
    end
    local rc = c_exec(id, subj, #subj, pos, caps, n)
    if temp then
        c_free(id)
    end
    if rc <= 0 then
        if rc == 0 then
            return nil
        end
        return nil, exec_error(rc)
    end
    local cap
    if rc > 1 and caps[2] >= 0 then
        cap = sub(subj, caps[2] + 1, caps[3])
    end
    return caps[0], caps[1], cap
end

return {
    version = base.version,
    split_exec = split_exec,
    -- Whether no regex was compiled with o yet (ngx.re.opt checks it).
    is_regex_cache_empty = function() return not cache_state.o_cached end,
    cache_state = cache_state,
}
