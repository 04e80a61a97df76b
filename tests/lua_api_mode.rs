//! `lua_api_mode ffi | cfunction`: which binding of the hot ngx API a
//! scope's Lua handlers see. halo-only (nginx has no such directive; its
//! lua-nginx-module is the cfunction style, lua-resty-core the ffi one),
//! so every test here is skipped under the oracle. The API's behaviour in
//! both modes is what the other Lua test files check: CI runs them with
//! `HALO_TEST_API_MODE=cfunction` too (tests/common's with_api_mode).

mod common;
use common::*;

/// A handler's report of the binding it sees: what `debug.getinfo` says of
/// a few API functions ("C" for the twin, "Lua" for lualib's FFI wrappers)
/// and their results, which must agree.
const REPORT: &str = r#"
    local function kind(f) return debug.getinfo(f, "S").what end
    ngx.ctx.seen = (ngx.ctx.seen or "") .. "c"
    ngx.status = 201
    ngx.header["X-Mode"] = kind(ngx.say)
    ngx.say(kind(ngx.say), " ", kind(ngx.req.get_method), " ", kind(ngx.re.match), " ",
            kind(ngx.shared.d.incr), " ", kind(getmetatable(ngx.var).__index))
    ngx.say(ngx.req.get_method(), " ", ngx.var.uri, " ", ngx.status, " ", ngx.ctx.seen, " ",
            ngx.req.get_headers()["x-a"], " ", ngx.req.get_uri_args().q, " ",
            ngx.shared.d:incr("n", 1, 0), " ", ngx.re.match("ab12", "[0-9]+")[0], " ",
            ngx.md5("a"), " ", ngx.escape_uri("a b"), " ", ngx.encode_base64("ab"))
"#;

fn report_conf() -> String {
    let report = REPORT.replace('\n', " ");
    http_conf(&format!(
        r#"
    lua_shared_dict d 1m;
    server {{
        listen 127.0.0.1:{{{{PORT}}}};
        lua_api_mode cfunction;
        # A server{{}} handler runs in the locations' modes; ngx.ctx is one table.
        rewrite_by_lua_block {{ ngx.ctx.seen = "r" }}
        location /c {{ content_by_lua_block {{ {report} }} }}
        location /f {{
            lua_api_mode ffi;
            content_by_lua_block {{ {report} }}
        }}
    }}
    server {{
        listen 127.0.0.1:{{{{PORT2}}}};
        location / {{ content_by_lua_block {{ {report} }} }}
    }}
"#
    ))
}

#[test]
fn each_scope_sees_its_binding_with_the_same_answers() {
    if is_nginx() {
        return;
    }
    let h = Prefix::new().start(&report_conf());
    let get = |port: u16, path: &str| {
        let raw = format!("GET {path}?q=v HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: close\r\n\r\n");
        parse(&request(port, raw.as_bytes()))
    };
    let c = get(h.port, "/c");
    assert_eq!(c.status, 201, "{}", h.logs());
    assert_eq!(c.header("X-Mode"), Some("C"));
    let f = get(h.port, "/f");
    assert_eq!(f.header("X-Mode"), Some("Lua"));
    let d = get(h.ports[1], "/d");
    assert_eq!(d.header("X-Mode"), Some("Lua"), "the default is ffi");
    let answers = |r: &Response| r.text().lines().nth(1).unwrap_or_default().to_owned();
    let tail = "12 0cc175b9c0f1b6a831c399e269772661 a%20b YWI=";
    assert_eq!(c.text().lines().next(), Some("C C C C C"));
    assert_eq!(f.text().lines().next(), Some("Lua Lua Lua Lua Lua"));
    // One zone counter across the three: 1, 2, 3.
    assert_eq!(answers(&c), format!("GET /c 201 rc 1 v 1 {tail}"));
    assert_eq!(answers(&f), format!("GET /f 201 rc 1 v 2 {tail}"));
    assert_eq!(answers(&d), format!("GET /d 201 c 1 v 3 {tail}"));
}

#[test]
fn bad_values_are_config_errors_with_file_and_line() {
    if is_nginx() {
        return;
    }
    for (directive, msg) in [
        ("lua_api_mode jit;", "invalid value \"jit\" in \"lua_api_mode\" directive, it must be \"ffi\" or \"cfunction\""),
        ("lua_api_mode ffi cfunction;", "invalid number of arguments in \"lua_api_mode\" directive"),
        ("lua_api_mode ffi; lua_api_mode cfunction;", "\"lua_api_mode\" directive is duplicate"),
    ] {
        let p = Prefix::new();
        let conf = server_conf(&format!("        location / {{\n            {directive}\n        }}")).replace("{{PORT}}", &free_port().to_string());
        p.write_conf(&conf);
        let line = conf.lines().position(|l| l.contains("lua_api_mode")).unwrap() + 1;
        let out = p.cli(&["-t"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_contains(&err, &format!("[emerg] {msg} in {}:{line}", p.conf_path().display()));
    }
}
