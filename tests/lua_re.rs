//! ngx.re.match, find, gmatch, sub and gsub through the real binary: results
//! as lua-nginx-module documents them, options, errors (bad patterns,
//! unknown flags, PCRE-only constructs, bad arguments), init_by_lua (no
//! request), and the hot paths compiled by the JIT.

mod common;

use std::time::Duration;

use common::*;

/// `show(...)`: one line of the values, strings quoted, so nil, false and ""
/// are told apart; `tab(t, n)`: a match table's [0..n] and its other keys
/// (shown unquoted).
const PRELUDE: &str = r##"
local function fmt(v)
    if type(v) == "string" then return '"' .. v .. '"' end
    return tostring(v)
end
local function show(...)
    local out = {}
    for i = 1, select("#", ...) do out[i] = fmt((select(i, ...))) end
    ngx.say(table.concat(out, " "))
end
local function tab(t, n)
    if type(t) ~= "table" then return fmt(t) end
    local out = {}
    for i = 0, n do out[#out + 1] = fmt(t[i]) end
    local keys = {}
    for k in pairs(t) do if type(k) == "string" then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. fmt(t[k]) end
    local text = "{" .. table.concat(out, ",") .. "}"
    return setmetatable({}, { __tostring = function() return text end })
end
"##;

/// Serves `lua` (after the prelude) as the content handler of /t and returns
/// the response body, with the error log on failure.
fn run(lua: &str) -> String {
    let p = Prefix::new();
    p.write_file("lua/t.lua", format!("{PRELUDE}\n{lua}"));
    let h = p.start(&server_conf("        location = /t { content_by_lua_file lua/t.lua; }"));
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), h.error_log());
    r.text()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn match_groups_named_unmatched_and_ctx_pos() {
    let out = run(r##"
        show(tab(ngx.re.match("hello, 1234", "[0-9]+"), 1))
        show(tab(ngx.re.match("hello, 1234", "([0-9])(?<remaining>[0-9]+)"), 2))
        -- Unmatched groups are false, by number and by name.
        show(tab(ngx.re.match("hello, world", "(world)|(hello)|(?<named>howdy)"), 3))
        show(ngx.re.match("hello", "[0-9]+"))
        -- ctx.pos: where to start (1-based), then the position after the match.
        local ctx = { pos = 2 }
        show(tab(ngx.re.match("1234, hello", "[0-9]+", "", ctx), 0), ctx.pos)
        show(tab(ngx.re.match("1234, hello", "[a-z]+", "", ctx), 0), ctx.pos)
        show(ngx.re.match("1234, hello", "[0-9]", "", ctx), ctx.pos)
        ctx = {}
        show(tab(ngx.re.match("ab", "b", nil, ctx), 0), ctx.pos)
        -- res_table is filled and returned.
        local res = {}
        local m = ngx.re.match("k=v", "(\\w)=(\\w)", "", nil, res)
        show(m == res, tab(res, 2))
        -- Numbers are matched as text.
        show(tab(ngx.re.match(12345, "3(4)"), 1))
        -- Bytes, not characters, without u.
        show(tab(ngx.re.match("\0\255x", "\\xff(.)"), 1))
    "##);
    assert_eq!(
        lines(&out),
        [
            r#"{"1234",nil}"#,
            r#"{"1234","1","234",remaining="234"}"#,
            r#"{"hello",false,"hello",false,named=false}"#,
            "nil",
            r#"{"234"} 5"#,
            r#"{"hello"} 12"#,
            "nil 12",
            r#"{"b"} 3"#,
            r#"true {"k=v","k","v"}"#,
            r#"{"34","4"}"#,
            "{\"\u{FFFD}x\",\"x\"}",
        ],
        "{out}"
    );
}

#[test]
fn find_with_nth_and_ctx() {
    let out = run(r##"
        local s = "hello, 1234"
        local from, to, err = ngx.re.find(s, "([0-9]+)", "jo")
        show(from, to, err, s:sub(from, to))
        show(ngx.re.find(s, "([0-9])([0-9]+)", "jo", nil, 2))
        show(ngx.re.find(s, "([0-9])([0-9]+)", "jo", nil, 1))
        show(ngx.re.find(s, "([0-9])([0-9]+)", "", nil, 3))
        show(ngx.re.find(s, "(x)?[0-9]", "", nil, 1))
        show(ngx.re.find(s, "[0-9]", "", nil, -1))
        show(ngx.re.find(s, "z"))
        local ctx = { pos = 9 }
        local a, b = ngx.re.find(s, "[0-9]", "", ctx)
        show(a, b, ctx.pos)
        a, b = ngx.re.find(s, "[0-9]", "", ctx)
        show(a, b, ctx.pos)
    "##);
    assert_eq!(
        lines(&out),
        [
            r#"8 11 nil "1234""#,
            "9 11",
            "8 8",
            r#"nil nil "nth out of bound""#,
            "nil nil",
            "8 8",
            "nil",
            "9 9 10",
            "10 10 11",
        ],
        "{out}"
    );
}

#[test]
fn gmatch_loop() {
    let out = run(r##"
        local it, err = ngx.re.gmatch("hello, world!", "([a-z])[a-z]+", "i")
        show(type(it), err)
        while true do
            local m, err = it()
            if err then show("error", err) return end
            if not m then break end
            show(tab(m, 1))
        end
        show(it())
        for m in ngx.re.gmatch("a1b22c", "(?<d>\\d+)") do show(tab(m, 1)) end
        -- Empty matches advance one byte; the last one is at the end.
        local n = 0
        for m in ngx.re.gmatch("abc", "x*") do n = n + 1 end
        show(n)
        show(ngx.re.gmatch("x", "("))
    "##);
    assert_eq!(
        lines(&out),
        [
            r#""table" nil"#,
            r#"{"hello","h"}"#,
            r#"{"world","w"}"#,
            "nil",
            r#"{"1","1",d="1"}"#,
            r#"{"22","22",d="22"}"#,
            "4",
            r#"nil "failed to compile regex "(": unclosed group""#,
        ],
        "{out}"
    );
}

#[test]
fn sub_and_gsub_with_templates_and_functions() {
    let out = run(r##"
        show(ngx.re.sub("hello, 1234", "([0-9])[0-9]", "[$0][$1]"))
        show(ngx.re.sub("hello, 1234", "[0-9]", "${0}00"))
        show(ngx.re.sub("hello, 1234", "[0-9]", "$$"))
        show(ngx.re.gsub("hello, world", "([a-z])[a-z]+", "[$0,$1]", "i"))
        show(ngx.re.gsub("a-b", "(?<x>[a-z])", "<${x}>"))
        show(ngx.re.gsub("abc", "z", "y"))
        show(ngx.re.gsub("abc", "", "-"))
        show(ngx.re.gsub(123, "2", 9))
        -- A function gets the match table and returns the replacement.
        show(ngx.re.gsub("hello, world", "([a-z])[a-z]+", function(m) return "[" .. m[0] .. "," .. m[1] .. "]" end, "i"))
        show(ngx.re.sub("a1b2", "(?<d>[0-9])", function(m) return m.d * 2 end))
        -- The function may use ngx.re itself.
        show(ngx.re.gsub("x1 y2", "\\w+", function(m) return (ngx.re.gsub(m[0], "\\d", "#")) end))
        -- A bad template: nil, nil and the error (the reason is logged).
        show(ngx.re.sub("abc", "b", "$"))
        show(ngx.re.gsub("abc", "b", "${1"))
        show(ngx.re.sub("abc", "(", "x"))
    "##);
    assert_eq!(
        lines(&out),
        [
            r#""hello, [12][1]34" 1"#,
            r#""hello, 100234" 1"#,
            r#""hello, $234" 1"#,
            r#""[hello,h], [world,w]" 2"#,
            r#""<a>-<b>" 2"#,
            r#""abc" 0"#,
            r#""-a-b-c-" 4"#,
            r#""193" 1"#,
            r#""[hello,h], [world,w]" 2"#,
            r#""a2b2" 1"#,
            r#""x# y#" 2"#,
            r#"nil nil "failed to compile the replacement template""#,
            r#"nil nil "failed to compile the replacement template""#,
            r#"nil nil "failed to compile regex "(": unclosed group""#,
        ],
        "{out}"
    );
}

#[test]
fn options() {
    let out = run(r##"
        show(ngx.re.find("HELLO", "hello"), ngx.re.find("HELLO", "hello", "i"))
        show(ngx.re.find("a\nb", "^b$"), ngx.re.find("a\nb", "^b$", "m"))
        show(ngx.re.find("a\nb", "a.b"), ngx.re.find("a\nb", "a.b", "s"))
        show(ngx.re.find("ab", "a b # a comment", "x"))
        -- a: anchored at the start position (ctx.pos), not anywhere after it.
        show(ngx.re.find("xab", "ab", "a"), ngx.re.find("abx", "ab", "a"))
        show(ngx.re.find("xab", "ab", "a", { pos = 2 }))
        show(ngx.re.gsub("aab", "a", "-", "a"))
        -- u: characters, not bytes.
        show(ngx.re.find("é", "^.$"), ngx.re.find("é", "^.$", "u"), ngx.re.find("é", "^.$", "U"))
        -- o and the PCRE tuning letters are accepted.
        show(ngx.re.find("abc", "b", "ojdDJ"))
        for i = 1, 3 do show(ngx.re.find("abc", "c", "jo")) end
    "##);
    assert_eq!(
        lines(&out),
        [
            "nil 1 5",
            "nil 3 3",
            "nil 1 3",
            "1 2",
            "nil 1 2",
            "2 3",
            r#""--b" 2"#,
            "nil 1 1 2",
            "2 2",
            "3 3",
            "3 3",
            "3 3",
        ],
        "{out}"
    );
}

#[test]
fn bad_patterns_unknown_flags_and_bad_arguments() {
    let out = run(r##"
        show(ngx.re.match("abc", "(abc"))
        show(ngx.re.find("abc", "[z-a]"))
        -- PCRE constructs the regex crate lacks: a clear error, not an exception.
        show(ngx.re.match("foobar", "foo(?=bar)"))
        show(ngx.re.match("aa", "(a)\\1"))
        local function err(f, ...)
            local ok, e = pcall(f, ...)
            show(ok, e)
        end
        err(ngx.re.match, "abc", "b", "iz")
        err(ngx.re.find, "abc", "b", "q")
        err(ngx.re.gsub, "abc", "b", "x", "Z")
        err(ngx.re.match, {}, "b")
        err(ngx.re.find, "abc", nil)
        err(ngx.re.match, "abc", "b", 1)
        err(ngx.re.match, "abc", "b", nil, 5)
        err(ngx.re.find, "abc", "b", nil, nil, "2")
        err(ngx.re.gsub, "abc", "b", {})
        err(ngx.re.gmatch, true, "b")
        -- The caller is blamed.
        local ok, e = pcall(function() ngx.re.match(nil, "x") end)
        show(e:find("t.lua:%d+: bad argument #1 to 'match'") ~= nil)
    "##);
    assert_eq!(
        lines(&out),
        [
            r#"nil "failed to compile regex "(abc": unclosed group""#,
            r#"nil nil "failed to compile regex "[z-a]": invalid character class range, the start must be <= the end""#,
            r#"nil "failed to compile regex "foo(?=bar)": look-around, including look-ahead and look-behind, is not supported""#,
            r#"nil "failed to compile regex "(a)\1": backreferences are not supported""#,
            r#"false "unknown flag "z" (flags "iz")""#,
            r#"false "unknown flag "q" (flags "q")""#,
            r#"false "unknown flag "Z" (flags "Z")""#,
            r#"false "bad argument #1 to 'match' (string expected, got table)""#,
            r#"false "bad argument #2 to 'find' (string expected, got nil)""#,
            r#"false "bad argument #3 to 'match' (string expected, got number)""#,
            r#"false "bad argument #4 to 'match' (table expected, got number)""#,
            r#"false "bad argument #5 to 'find' (number expected, got string)""#,
            r#"false "bad argument #3 to 'gsub' (string or function expected, got table)""#,
            r#"false "bad argument #1 to 'gmatch' (string expected, got boolean)""#,
            "true",
        ],
        "{out}"
    );
}

#[test]
fn beyond_the_cache_bound_regexes_are_compiled_per_call() {
    // 1024 cached regexes per worker; later ones are temporary entries the
    // Lua side frees after each call (or when a gmatch iterator is done).
    let out = run(r##"
        for i = 1, 1100 do
            assert(ngx.re.find("x" .. i, "x" .. i .. "$"), i)
        end
        local ok = 0
        for round = 1, 3 do
            local m = ngx.re.match("a5", "a(?<d>\\d)" .. "|zz1" .. round)
            local from, to = ngx.re.find("a5", "(\\d)" .. "|zz2" .. round, "", nil, 1)
            local s, n = ngx.re.gsub("a5b6", "(\\d)" .. "|zz3" .. round, "<$1>")
            local f = ngx.re.gsub("a5b6", "\\d" .. "|zz4" .. round, function(m) return m[0] * 2 end)
            local it = ngx.re.gmatch("a5b6", "\\d" .. "|zz5" .. round)
            local g = it()[0] .. it()[0] .. tostring(it())
            local dropped = ngx.re.gmatch("a5b6", "\\d" .. "|zz6" .. round)
            dropped()
            dropped = nil
            collectgarbage()
            if m.d == "5" and from == 2 and to == 2 and s == "a<5>b<6>" and n == 2
               and f == "a10b12" and g == "56nil" then
                ok = ok + 1
            end
        end
        -- The same beyond-bound pattern twice in a row: each call compiles
        -- it anew (a freed temporary entry must never be reused by id).
        local again = 0
        for _ = 1, 2 do
            local m = ngx.re.match("k7", "k(\\d)|zz7")
            local from = ngx.re.find("q9", "9|zz8")
            if m and m[1] == "7" and from == 2 then again = again + 1 end
        end
        show(ok, again)
    "##);
    assert_eq!(out, "3 2\n");
}

#[test]
fn bad_template_reason_is_logged() {
    let p = Prefix::new();
    let h = p.start(&server_conf(
        r#"        location = /t { content_by_lua_block { ngx.say(select(3, ngx.re.sub("abc", "b", "a$x"))) } }"#,
    ));
    assert_eq!(h.get("/t").text(), "failed to compile the replacement template\n");
    assert!(
        h.wait_log("logs/error.log", r#"invalid capturing variable name found in "a$x""#, Duration::from_secs(2)),
        "{}",
        h.error_log()
    );
}

#[test]
fn works_in_init_by_lua_and_other_phases() {
    let conf = http_conf(
        r#"
    init_by_lua_block {
        local m = ngx.re.match("init 42", "(?<n>\\d+)", "jo")
        local s = ngx.re.gsub("a.b.c", "\\.", "/", "o")
        local from = ngx.re.find("xyz", "z")
        local bad = select(2, ngx.re.match("x", "(?<=x)y"))
        from_init = m.n .. " " .. s .. " " .. from .. " " .. tostring(bad ~= nil)
    }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location /p {
            set_by_lua_block $v { return (ngx.re.sub(ngx.var.uri, "^/p/", "")) }
            rewrite_by_lua_block { ngx.ctx.r = ngx.re.find(ngx.var.uri, "[0-9]+") }
            content_by_lua_block {
                -- The same patterns again: cached ids from init, inherited.
                local m = ngx.re.match("init 7", "(?<n>\\d+)", "jo")
                ngx.say(from_init, " | ", ngx.var.v, " ", ngx.ctx.r, " ", m.n)
            }
            log_by_lua_block { ngx.log(ngx.NOTICE, "log phase: ", (ngx.re.gsub(ngx.var.uri, "\\d", "N"))) }
        }
    }"#,
    );
    let h = Prefix::new().start(&conf);
    assert_eq!(h.get("/p/a12").text(), "42 a/b/c 3 true | a12 5 7\n");
    assert!(h.wait_log("logs/error.log", "log phase: /p/aNN", Duration::from_secs(2)), "{}", h.error_log());
}

#[test]
fn hot_regex_loops_are_jit_compiled() {
    let hot = r#"
        local acc = 0
        local ctx = {}
        for i = 1, 1000 do
            local m = ngx.re.match("id=1234&x=y", "id=(?<id>\\d+)", "jo")
            acc = acc + #m[0] + #m.id
            local from, to = ngx.re.find("hello, 1234", "([0-9]+)", "jo", nil, 1)
            acc = acc + from + to
            ctx.pos = 1
            from, to = ngx.re.find("a1b2", "[0-9]", "jo", ctx)
            acc = acc + to + ctx.pos
            local s, n = ngx.re.gsub("a.b.c", "\\.", "/", "jo")
            acc = acc + #s + n
            s, n = ngx.re.sub("hello, 1234", "([0-9])[0-9]", "[$1]")
            acc = acc + #s + n
        end
        assert(acc > 0)
        "#;
    // Side and function traces started inside the API can run on into the
    // loop and give up on unrolling its short inner loops (the groups of a
    // match); the loop itself then compiles, which is what counts (the JIT
    // gate checks the same: such aborts are recovered).
    let keep = r#"function(line)
            local ours = line:find("from @lualib/", 1, true)
            local shape = line:find("loop unroll limit reached", 1, true)
                or line:find("leaving loop in root trace", 1, true)
            return not (ours and shape)
        end"#;
    let r = record_hot_loops(&[("hot", hot, true)], keep);
    assert!(r.stitches.is_empty(), "stitched traces:\n{}", r.stitches);
    assert!(r.aborts.is_empty(), "trace aborts:\n{}", r.aborts);
    assert!(r.compiled >= 1, "no loop trace compiled");
}
