//! `cjson` and `cjson.safe`: halo's built-in (lua-cjson 2.1 as OpenResty's
//! fork ships it) and C modules loaded from `lua_package_cpath` through the
//! Lua C API the binary exports (Debian's lua-cjson, upstream 2.1.0).
//!
//! The behaviour tests run the same Lua on both servers: halo with no cjson
//! on its cpath (so the built-in answers), nginx with Debian's cjson.so (its
//! Lua module has no cjson of its own). Where OpenResty's fork differs from
//! upstream 2.1.0 (empty_array, array_mt, encode_escape_forward_slash,
//! T_INTEGER, "Infinity", precision 16) the test is halo-only.

mod common;
use common::*;

/// Debian's lua-cjson (`apt-get install lua-cjson`; .ci/run installs it).
const DEBIAN_CJSON: &str = "/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so";
const DEBIAN_CPATH: &str = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";

fn have_debian_cjson() -> bool {
    let ok = std::path::Path::new(DEBIAN_CJSON).exists();
    if !ok {
        eprintln!("skipped: {DEBIAN_CJSON} is absent (apt-get install -y lua-cjson)");
    }
    ok
}

/// Serves `script` (a Lua chunk returning a string) at /t with `cpath` as
/// lua_package_cpath, and returns the body. `files` are written first.
fn run_with(script: &str, cpath: &str, path: Option<&str>, files: &[(&str, &[u8])]) -> String {
    let p = Prefix::new();
    p.write_file("t.lua", script);
    for (name, data) in files {
        p.write_file(name, data);
    }
    let lua_path = path.map(|x| format!("    lua_package_path \"{x}\";\n")).unwrap_or_default();
    let h = p.start(&http_conf(&format!(
        r#"    lua_package_cpath "{cpath}";
{lua_path}    server {{
        listen 127.0.0.1:{{{{PORT}}}};
        location /t {{
            content_by_lua_block {{ ngx.print(dofile(ngx.config.prefix() .. "t.lua")) }}
        }}
    }}"#
    )));
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), h.logs());
    r.text()
}

/// Runs `script` where a cjson is found: halo's built-in (nothing on the
/// cpath), nginx's from Debian. None (skipped) on nginx without it.
fn run(script: &str) -> Option<String> {
    if is_nginx() {
        if !have_debian_cjson() {
            return None;
        }
        return Some(run_with(script, DEBIAN_CPATH, None, &[]));
    }
    Some(run_with(script, "/nonexistent/?.so", None, &[]))
}

/// Lua helpers prepended to each script: `p(...)` collects a line.
const PRELUDE: &str = r##"
local cjson = require "cjson"
local safe = require "cjson.safe"
local out = {}
local function p(...)
    local t = {}
    for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
    out[#out + 1] = table.concat(t, " ")
end
"##;

fn script(body: &str) -> String {
    format!("{PRELUDE}\n{body}\nreturn table.concat(out, \"\\n\") .. \"\\n\"")
}

fn check(body: &str, expected: &str) {
    if let Some(got) = run(&script(body)) {
        assert_eq!(got, expected, "script:\n{body}");
    }
}

fn check_halo(body: &str, expected: &str) {
    if is_nginx() {
        eprintln!("skipped on nginx: OpenResty-fork behaviour of halo's built-in cjson");
        return;
    }
    let got = run_with(&script(body), "/nonexistent/?.so", None, &[]);
    assert_eq!(got, expected, "script:\n{body}");
}

#[test]
fn encode_values() {
    check(
        r#"
        p(cjson.encode({1, 2, 3}), cjson.encode({}), cjson.encode({a = {b = {c = 1}}}))
        p(cjson.encode("a/b\n\t\"\\\1\127é"), cjson.encode(true), cjson.encode(nil), cjson.encode(cjson.null))
        p(cjson.encode(0.1), cjson.encode(1/3), cjson.encode(1e15), cjson.encode(-0.0), cjson.encode(42))
        p(cjson.encode(123456789012345), cjson.encode(2^53), cjson.encode(-1.5e-7), cjson.encode(100))
        p(cjson.encode({a = cjson.null}), cjson.encode({[1.5] = 1}), cjson.encode({[-1] = "x"}))
        p(cjson.encode({[1] = 1, [2] = 2, [4] = 4}), cjson.encode({{}, {{}}}))
        "#,
        concat!(
            "[1,2,3] {} {\"a\":{\"b\":{\"c\":1}}}\n",
            "\"a\\/b\\n\\t\\\"\\\\\\u0001\\u007fé\" true null null\n",
            "0.1 0.33333333333333 1e+15 -0 42\n",
            "1.2345678901234e+14 9.007199254741e+15 -1.5e-07 100\n",
            "{\"a\":null} {\"1.5\":1} {\"-1\":\"x\"}\n",
            "[1,2,null,4] [{},[{}]]\n",
        ),
    );
}

#[test]
fn decode_values_and_round_trips() {
    check(
        r#"
        local t = cjson.decode('{"a":[1,2.5,"x",true,false,null],"b":{}}')
        p(t.a[1], t.a[2], t.a[3], t.a[4], t.a[5], t.a[6] == cjson.null, #t.a, next(t.b))
        p(cjson.null == ngx.null, type(cjson.null))
        p(cjson.decode('"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\"\\\\"') == "é😀/\b\f\n\r\t\"\\")
        p(cjson.decode('12345678901234567890'), cjson.decode('1e400'), cjson.decode('-0'), cjson.decode(' 12 '))
        p(cjson.decode(42), cjson.decode('[]')[1], cjson.decode('0x10'), cjson.decode('[1]\0ignored')[1])
        local v = {s = "é\0x", n = {1, {2, {3}}}, e = {}, f = 0.5}
        local back = cjson.decode(cjson.encode(v))
        p(back.s == v.s, back.n[2][2][1], back.f, cjson.encode(back.e))
        "#,
        concat!(
            "1 2.5 x true false true 6 nil\n",
            "true userdata\n",
            "true\n",
            "1.2345678901235e+19 inf -0 12\n",
            "42 nil 16 1\n",
            "true 3 0.5 {}\n",
        ),
    );
}

#[test]
fn errors_name_the_problem_and_its_position() {
    check(
        r#"
        p(pcall(cjson.encode, {[1] = 1, [20] = 2}))
        p(pcall(cjson.encode, function() end))
        p(pcall(cjson.encode, {[true] = 1}))
        p(pcall(cjson.decode, "x"))
        p(pcall(cjson.decode, '{"a":1.5 2.5}'))
        p(pcall(cjson.decode, '[1,2'))
        p(pcall(cjson.decode, '[1,]'))
        p(pcall(cjson.decode, '{"a" "b"}'))
        p(pcall(cjson.decode, '{"a":}'))
        p(pcall(cjson.decode, '"\\x"'))
        p(pcall(cjson.decode, '"\\ud800"'))
        p(pcall(cjson.decode, '"abc'))
        p(pcall(cjson.decode, '[1] x'))
        p(pcall(cjson.decode, ''))
        p(pcall(cjson.decode, 'nul'))
        p(pcall(cjson.decode, '-'))
        p(pcall(cjson.decode, '\0a'))
        p(pcall(cjson.decode))
        p(pcall(cjson.decode, nil))
        p(pcall(cjson.encode))
        -- Called from Lua, the message carries the caller's position.
        local ok, e = pcall(function() local v = cjson.decode("[") return v end)
        p(ok, e:match("^[^:]+:%d+: Expected value but found T_END at character 2$") ~= nil)
        "#,
        concat!(
            "false Cannot serialise table: excessively sparse array\n",
            "false Cannot serialise function: type not supported\n",
            "false Cannot serialise boolean: table key must be a number or string\n",
            "false Expected value but found invalid token at character 1\n",
            "false Expected comma or object end but found T_NUMBER at character 10\n",
            "false Expected comma or array end but found T_END at character 5\n",
            "false Expected value but found T_ARR_END at character 4\n",
            "false Expected colon but found T_STRING at character 6\n",
            "false Expected value but found T_OBJ_END at character 6\n",
            "false Expected value but found invalid escape code at character 2\n",
            "false Expected value but found invalid unicode escape code at character 2\n",
            "false Expected value but found unexpected end of string at character 5\n",
            "false Expected the end but found invalid token at character 5\n",
            "false Expected value but found T_END at character 1\n",
            "false Expected value but found invalid token at character 1\n",
            "false Expected value but found invalid number at character 1\n",
            "false JSON parser does not support UTF-16 or UTF-32\n",
            "false bad argument #1 to '?' (expected 1 argument)\n",
            "false bad argument #1 to '?' (string expected, got nil)\n",
            "false bad argument #1 to '?' (expected 1 argument)\n",
            "false true\n",
        ),
    );
}

#[test]
fn safe_returns_nil_and_the_error() {
    check(
        r#"
        p(safe.decode("x"))
        p(safe.decode('{"a":1,}'))
        p(safe.decode(nil))
        p(safe.encode(function() end))
        p(safe.encode({[1] = 1, [100] = 1}))
        p(safe.decode('[1,"2"]')[2], safe.encode({x = {1}}))
        -- A wrong argument count still raises.
        p(pcall(safe.decode))
        p(safe.new ~= cjson.new, safe.new().decode("x"))
        p(cjson.new().decode("[7]")[1], pcall(cjson.new().decode, "x"))
        "#,
        concat!(
            "nil Expected value but found invalid token at character 1\n",
            "nil Expected object key string but found T_OBJ_END at character 8\n",
            "nil bad argument #1 to '?' (string expected, got nil)\n",
            "nil Cannot serialise function: type not supported\n",
            "nil Cannot serialise table: excessively sparse array\n",
            "2 {\"x\":[1]}\n",
            "false bad argument #1 to '?' (expected 1 argument)\n",
            "true nil Expected value but found invalid token at character 1\n",
            "7 false Expected value but found invalid token at character 1\n",
        ),
    );
}

#[test]
fn settings() {
    // The fork allows a precision up to 16 and says "Infinity"; upstream
    // 2.1.0 (nginx's cjson here) stops at 14 and says "Inf".
    let (max_precision, inf) = if is_nginx() { ("14", "Inf") } else { ("16", "Infinity") };
    check(
        r#"
        p(cjson.encode_max_depth(), cjson.decode_max_depth(), cjson.encode_number_precision())
        p(cjson.encode_keep_buffer(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers())
        p(cjson.encode_sparse_array())
        p(pcall(cjson.encode_number_precision, 0))
        p(pcall(cjson.encode_number_precision, "x"))
        p(pcall(cjson.encode_invalid_numbers, "maybe"))
        p(pcall(cjson.encode_max_depth, 1, 2))
        p(pcall(cjson.encode_max_depth, 0))
        -- Each instance has its own settings.
        local c = cjson.new()
        p(c.encode_number_precision(3), c.encode(1.23456), cjson.encode(1.23456))
        p(c.encode_number_precision("5"), c.encode(1.23456))
        p(c.encode_invalid_numbers("null"), c.encode(1/0), c.encode({0/0}))
        p(c.encode_invalid_numbers(false), pcall(c.encode, 1/0))
        p(c.decode_invalid_numbers(false), pcall(c.decode, "NaN"))
        p(pcall(c.decode, "+1"))
        p(pcall(c.decode, "012"))
        p(cjson.decode("+1"), cjson.decode("012"))
        p(c.encode_sparse_array(true), c.encode({[1] = 1, [20] = 2}):len())
        p(c.encode_sparse_array(false, 0), #c.decode(c.encode({[1] = 1, [20] = 2})))
        p(c.encode_sparse_array(nil, 2, 30), #c.decode(c.encode({[1] = 1, [20] = 2})))
        p(c.encode_sparse_array(false, 2, 10))
        p(c.encode_keep_buffer(false), c.encode({1}), c.encode_keep_buffer("on"))
        "#,
        &format!(concat!(
            "1000 1000 14\n",
            "true false true\n",
            "false 2 10\n",
            "false bad argument #1 to '?' (expected integer between 1 and {max_precision})\n",
            "false bad argument #1 to '?' (number expected, got string)\n",
            "false bad argument #1 to '?' (invalid option 'maybe')\n",
            "false bad argument #2 to '?' (found too many arguments)\n",
            "false bad argument #1 to '?' (expected integer between 1 and 2147483647)\n",
            "3 1.23 1.23456\n",
            "5 1.2346\n",
            "null null [null]\n",
            "false false Cannot serialise number: must not be NaN or {inf}\n",
            "false false Expected value but found invalid token at character 1\n",
            "false Expected value but found invalid token at character 1\n",
            "false Expected value but found invalid number at character 1\n",
            "1 12\n",
            "true 14\n",
            "false 20\n",
            "false 20\n",
            "false 2 10\n",
            "false [1] true\n",
        ), max_precision = max_precision, inf = inf),
    );
}

#[test]
fn nesting_limits() {
    check(
        r#"
        local deep = string.rep("[", 1001) .. string.rep("]", 1001)
        p(pcall(cjson.decode, deep))
        p(#cjson.decode(string.rep("[", 1000) .. string.rep("]", 1000)))
        local t = {}
        local cur = t
        for _ = 1, 1000 do cur[1] = {} cur = cur[1] end
        p(pcall(cjson.encode, t))
        p(#cjson.encode(t[1]))
        local c = cjson.new()
        c.encode_max_depth(2) c.decode_max_depth(2)
        p(pcall(c.encode, {{{1}}}))
        p(pcall(c.decode, '[[[1]]]'))
        p(pcall(c.decode, '{"a":{"b":{}}}'))
        p(c.encode({{1}}), #c.decode('[[1]]'))
        -- A limit beyond what the Lua stack allows still fails cleanly.
        c.decode_max_depth(100000)
        local ok, e = pcall(c.decode, string.rep("[", 100000))
        p(ok, e:match("^Found too many nested data structures %(%d+%) at character %d+$") ~= nil)
        c.encode_max_depth(100000)
        for _ = 1, 99000 do cur[1] = {} cur = cur[1] end
        ok, e = pcall(c.encode, t)
        p(ok, e:match("^Cannot serialise, excessive nesting %(%d+%)$") ~= nil)
        "#,
        concat!(
            "false Found too many nested data structures (1001) at character 1001\n",
            "1\n",
            "false Cannot serialise, excessive nesting (1001)\n",
            "2000\n",
            "false Cannot serialise, excessive nesting (3)\n",
            "false Found too many nested data structures (3) at character 3\n",
            "false Found too many nested data structures (3) at character 11\n",
            "[[1]] 1\n",
            "false true\n",
            "false true\n",
        ),
    );
}

/// OpenResty's additions and its fork's wording (not in upstream 2.1.0).
#[test]
fn openresty_fork_additions() {
    check_halo(
        r#"
        p(cjson._NAME, cjson._VERSION, safe._VERSION)
        p(type(cjson.empty_array), cjson.encode(cjson.empty_array), cjson.encode({a = cjson.empty_array}))
        p(cjson.encode(setmetatable({}, cjson.empty_array_mt)), cjson.encode(setmetatable({1, 2}, cjson.empty_array_mt)),
            cjson.encode(setmetatable({a = 1}, cjson.empty_array_mt)))
        p(cjson.encode(setmetatable({}, cjson.array_mt)), cjson.encode(setmetatable({1, 2, a = 1}, cjson.array_mt)))
        p(cjson.array_mt == safe.array_mt, cjson.empty_array_mt == cjson.new().empty_array_mt, cjson.empty_array == safe.empty_array)
        p(cjson.decode_array_with_array_mt(true), getmetatable(cjson.decode("[]")) == cjson.array_mt)
        p(cjson.encode(cjson.decode("[]")), cjson.encode(cjson.decode('{"a":[]}')), getmetatable(cjson.decode("{}")))
        p(cjson.decode_array_with_array_mt(false), cjson.encode(cjson.decode("[]")))
        p(cjson.encode_escape_forward_slash(), cjson.encode("a/b"))
        p(cjson.encode_escape_forward_slash(false), cjson.encode("a/b"), safe.encode("/"))
        p(cjson.encode_escape_forward_slash(true), cjson.encode("a/b"))
        p(cjson.encode_number_precision(16), cjson.encode(2^53), cjson.encode(0.1))
        cjson.encode_number_precision(14)
        p(cjson.encode_invalid_numbers(true), cjson.encode({1/0, -1/0, 0/0}), cjson.encode_invalid_numbers())
        cjson.encode_invalid_numbers(false)
        p(pcall(cjson.encode, 0/0))
        p(pcall(cjson.decode, '{"a":1 2}'))
        p(cjson.encode_skip_unsupported_value_types(true), cjson.encode({1, print, 2}), cjson.encode({a = print, b = 1}))
        p(cjson.encode_skip_unsupported_value_types(false), pcall(cjson.encode, {print}))
        p(cjson.decode("Infinity"), cjson.decode("-Infinity"), cjson.decode("NaN") ~= cjson.decode("NaN"))
        local c = cjson.new()
        p(c.encode_empty_table_as_object(false), c.encode({}), c.encode({a = {}}))
        p(c.encode_empty_table_as_object("on"), c.encode({}), cjson.encode({}))
        "#,
        concat!(
            "cjson 2.1.0.11 2.1.0.11\n",
            "userdata [] {\"a\":[]}\n",
            "[] [1,2] []\n",
            "[] [1,2]\n",
            "true true true\n",
            "true true\n",
            "[] {\"a\":[]} nil\n",
            "false {}\n",
            "true \"a\\/b\"\n",
            "false \"a/b\" \"/\"\n",
            "true \"a\\/b\"\n",
            "16 9007199254740992 0.1\n",
            "true [Infinity,-Infinity,NaN] true\n",
            "false Cannot serialise number: must not be NaN or Infinity\n",
            "false Expected comma or object end but found T_INTEGER at character 8\n",
            "true [1,2] {\"b\":1}\n",
            "false false Cannot serialise function: type not supported\n",
            "inf -inf true\n",
            "false [] {\"a\":[]}\n",
            "true {} {}\n",
        ),
    );
}

/// Debian's cjson.so (upstream 2.1.0, a C module built for Lua 5.1) loads
/// into halo through the exported Lua C API, and wins over the built-in.
#[test]
fn a_c_module_on_the_cpath_loads_and_wins_over_the_built_in() {
    if !have_debian_cjson() {
        return;
    }
    let body = script(
        r#"
        p(cjson._VERSION, safe._VERSION, cjson.empty_array)
        p(cjson.encode({a = {1, 2, "x/y"}}), cjson.decode('[1,"a",null]')[3] == ngx.null)
        p(safe.decode("x"))
        "#,
    );
    let debian = "2.1.0 2.1.0 nil\n{\"a\":[1,2,\"x\\/y\"]} true\nnil Expected value but found invalid token at character 1\n";
    assert_eq!(run_with(&body, DEBIAN_CPATH, None, &[]), debian);

    // A copy in the prefix, found through $prefix.
    let so = std::fs::read(DEBIAN_CJSON).unwrap();
    assert_eq!(run_with(&body, "$prefix/lib/?.so", None, &[("lib/cjson.so", &so)]), debian);

    if !is_nginx() {
        // Nothing on the cpath: the built-in.
        let got = run_with(&body, "/nonexistent/?.so", None, &[]);
        assert!(got.starts_with("2.1.0.11 2.1.0.11 userdata: 0x"), "{got}");
    }
}

/// A cjson.lua on lua_package_path wins too (the Lua searcher comes first).
#[test]
fn a_lua_module_named_cjson_wins_over_the_built_in() {
    if is_nginx() && !have_debian_cjson() {
        return;
    }
    let got = run_with(
        r#"return require("cjson")._VERSION .. " " .. type(require("cjson.safe").decode)"#,
        if is_nginx() { DEBIAN_CPATH } else { "/nonexistent/?.so" },
        Some("$prefix/lua/?.lua;;"),
        &[("lua/cjson.lua", b"return { _VERSION = 'mine' }")],
    );
    assert_eq!(got, "mine function");
}

/// With an empty cpath and a failing require, the message lists the
/// searchers' reasons; the built-in adds none for other names.
#[test]
fn unknown_modules_still_fail_with_the_searchers_reasons() {
    if is_nginx() {
        return;
    }
    let got = run_with(
        r#"local ok, e = pcall(require, "cjson.nope") return tostring(ok) .. " " .. tostring(e:find("no file '/nonexistent/cjson/nope.so'", 1, true) ~= nil)"#,
        "/nonexistent/?.so",
        None,
        &[],
    );
    assert_eq!(got, "false true");
}
