//! Handlers as served run compiled: the JIT records their bodies into traces
//! (called from the pooled coroutine's loop, their FFI calls become native
//! calls), with no abort or stitch inside them. tests/handler_jit_recorder.lua
//! watches the worker's JIT from init_worker_by_lua.

mod common;
use common::*;

/// The recorder's counts for `source` (see tests/handler_jit_recorder.lua).
fn counts(report: &str) -> (u32, u32, u32, u32) {
    let first = report.lines().next().unwrap_or("");
    let n = |key: &str| -> u32 {
        let at = first.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {report:?}")) + key.len() + 1;
        first[at..].split(' ').next().unwrap().trim().parse().unwrap()
    };
    (n("started"), n("completed"), n("aborts"), n("stitches"))
}

#[test]
fn handler_bodies_are_compiled_as_served() {
    let p = Prefix::new();
    p.write_file("lua/handler_jit_recorder.lua", include_str!("handler_jit_recorder.lua"));
    let conf = http_conf(
        r#"
    lua_package_path "$prefix/lua/?.lua;;";
    init_worker_by_lua_block { require("handler_jit_recorder").start() }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location = /api { content_by_lua_block {
            local h = ngx.req.get_headers()
            ngx.ctx.n = (ngx.ctx.n or 0) + 1
            ngx.say(ngx.var.uri, " ", h["user-agent"], " ", ngx.ctx.n)
        } }
        location = /loop { content_by_lua_block {
            for i = 1, 200 do
                local h = ngx.req.get_headers()
                ngx.ctx.n = i
                ngx.say(ngx.var.uri, " ", h["user-agent"], " ", ngx.ctx.n)
            end
        } }
        location = /report { content_by_lua_block {
            ngx.print(require("handler_jit_recorder").report(ngx.req.get_uri_args().src))
        } }
    }"#,
    );
    let h = p.start(&conf);
    let mut c = h.connect();
    for _ in 0..300 {
        c.send("GET /api HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(c.read_response(false).text(), "/api t 1\n");
    }
    c.send("GET /loop HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.text().lines().count(), 200);
    assert!(r.text().ends_with("/loop t 200\n"));

    // The chunk names of the two handlers, as the error log would show them.
    let conf_text = std::fs::read_to_string(h.path().join("conf/nginx.conf")).unwrap();
    let line_of = |needle: &str| conf_text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, loops) in [("location = /api", false), ("location = /loop", true)] {
        let src = format!("=content_by_lua(nginx.conf:{})", line_of(needle));
        let report = h.get(&format!("/report?src={}", src.replace('=', "%3D").replace('(', "%28").replace(')', "%29").replace(':', "%3A"))).text();
        let (started, completed, aborts, stitches) = counts(&report);
        assert!(completed >= 1, "{needle} ({src}): no compiled trace holds the handler: {report}\n{}", h.error_log());
        assert_eq!((aborts, stitches), (0, 0), "{needle}: {report}");
        if loops {
            assert!(started >= 1, "{needle}: no trace starts in the handler's loop: {report}");
        }
    }
}
