//! ngx.location.capture and ngx.location.capture_multi: subrequests run
//! the target location's phases in the worker, their output captured; the
//! parent's handler waits while they run (concurrently for capture_multi).
//! Every test also passes against nginx + lua-nginx-module
//! (`HALO_TEST_BIN=/usr/sbin/nginx`).

mod common;
use common::*;
use std::time::{Duration, Instant};

const LOCATIONS: &str = r#"
        location /static/ { root html; }
        location = /ret { return 201 "made"; }
        location = /lua {
            content_by_lua_block {
                ngx.header["X-Sub"] = "yes"
                ngx.header["X-Multi"] = { "a", "b" }
                ngx.status = 202
                ngx.say("hello from ", ngx.var.uri)
            }
        }
        location ~ ^/sleep(\d) {
            content_by_lua_block { ngx.sleep(0.2) ngx.print("slept") }
        }
        location = /echo_body {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.print(ngx.req.get_method(), " ", ngx.req.get_body_data() or "nil",
                          " ", ngx.var.http_content_length or "nil")
            }
        }
        location = /args { content_by_lua_block { ngx.print(ngx.var.args) } }
        location = /vars {
            set $dog "$dog world";
            content_by_lua_block { ngx.print(ngx.var.dog) }
        }
        location = /ctx { content_by_lua_block { ngx.ctx.foo = "bar" ngx.print("ok") } }
        location = /int { internal; content_by_lua_block { ngx.print("inside") } }
        location = /is_sub {
            content_by_lua_block { ngx.print(tostring(ngx.is_subrequest), " ", tostring(ngx.req.is_internal())) }
        }
        location = /rec {
            content_by_lua_block {
                local ok, res = pcall(ngx.location.capture, "/rec")
                if not ok then ngx.print("err: ", res) return end
                ngx.print(res.body)
            }
        }
"#;

fn start(parent: &str) -> Halo {
    let h = Halo::server(&format!("{LOCATIONS}\n        location = /t {{ content_by_lua_block {{ {parent} }} }}"));
    h.write_file("html/static/f.txt", "file\n");
    h
}

fn body_of(parent: &str) -> String {
    let h = start(parent);
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    r.text()
}

#[test]
fn capture_of_a_lua_location() {
    let body = body_of(
        r#"local res = ngx.location.capture("/lua")
           ngx.say(res.status, "|", res.header["X-Sub"], "|", table.concat(res.header["X-Multi"], ","),
                   "|", res.body, "|", tostring(res.truncated), "|", res.header["Content-Type"])"#,
    );
    assert_eq!(body, "202|yes|a,b|hello from /lua\n|false|text/plain\n");
}

#[test]
fn capture_of_return_and_of_a_static_file() {
    let body = body_of(
        r#"local a = ngx.location.capture("/ret")
           local b = ngx.location.capture("/static/f.txt")
           local c = ngx.location.capture("/static/nope.txt")
           ngx.say(a.status, " ", a.body)
           ngx.say(b.status, " ", b.body, tonumber(b.header["Content-Length"]))
           ngx.say(c.status)"#,
    );
    assert_eq!(body, "201 made\n200 file\n5\n404\n");
}

#[test]
fn capture_multi_runs_concurrently() {
    let h = start(
        r#"local a, b = ngx.location.capture_multi({ { "/sleep1" }, { "/sleep2" } })
           ngx.say(a.status, a.body, " ", b.status, b.body)"#,
    );
    let t = Instant::now();
    let r = h.get("/t");
    let took = t.elapsed();
    assert_eq!(r.text(), "200slept 200slept\n", "{}", h.logs());
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_millis(380), "both sleeps at once: {took:?}");
}

#[test]
fn post_with_a_body() {
    let body = body_of(
        r#"local res = ngx.location.capture("/echo_body", { method = ngx.HTTP_POST, body = "hello" })
           ngx.say(res.body)"#,
    );
    assert_eq!(body, "POST hello 5\n");
}

#[test]
fn the_parents_body_is_forwarded_to_post() {
    let h = start(
        r#"ngx.req.read_body()
           local a = ngx.location.capture("/echo_body", { method = ngx.HTTP_POST })
           local b = ngx.location.capture("/echo_body")
           local c = ngx.location.capture("/echo_body", { always_forward_body = true })
           ngx.say(a.body, "|", b.body, "|", c.body)"#,
    );
    let r = h.get_response("POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody");
    assert_eq!(r.text(), "POST body 4|GET nil nil|GET body 4\n", "{}", h.logs());
}

#[test]
fn args_in_the_uri_and_as_a_table() {
    let body = body_of(
        r#"ngx.say(ngx.location.capture("/args?a=1", { args = { b = "x y" } }).body)
           ngx.say(ngx.location.capture("/args", { args = "c=3" }).body)
           ngx.say(ngx.location.capture("/args?d=4").body)"#,
    );
    assert_eq!(body, "a=1&b=x%20y\nc=3\nd=4\n");
}

#[test]
fn vars_and_copied_and_shared_vars() {
    let h = Halo::server(&format!(
        "{LOCATIONS}\n        location = /t {{ set $dog hello; content_by_lua_block {{
            local a = ngx.location.capture(\"/vars\", {{ vars = {{ dog = \"hi\" }} }})
            local b = ngx.location.capture(\"/vars\", {{ copy_all_vars = true }})
            ngx.say(a.body, \"|\", b.body, \"|\", ngx.var.dog)
            local c = ngx.location.capture(\"/vars\", {{ share_all_vars = true }})
            ngx.say(c.body, \"|\", ngx.var.dog)
        }} }}"
    ));
    let r = h.get("/t");
    assert_eq!(r.text(), "hi world|hello world|hello\nhello world|hello world\n", "{}", h.logs());
}

#[test]
fn ctx_option_is_the_subrequests_ngx_ctx() {
    let body = body_of(
        r#"local c = {}
           local res = ngx.location.capture("/ctx", { ctx = c })
           ngx.say(res.body, " ", c.foo, " ", tostring(ngx.ctx.foo))"#,
    );
    assert_eq!(body, "ok bar nil\n");
}

#[test]
fn internal_locations_are_for_subrequests_only() {
    let h = start(r#"local res = ngx.location.capture("/int") ngx.say(res.status, " ", res.body)"#);
    assert_eq!(h.get("/t").text(), "200 inside\n");
    assert_eq!(h.get("/int").status, 404);
}

#[test]
fn is_subrequest_inside_one() {
    let h = start(
        r#"local res = ngx.location.capture("/is_sub")
           ngx.say(tostring(ngx.is_subrequest), " ", res.body)"#,
    );
    assert_eq!(h.get("/t").text(), "false true true\n");
    assert_eq!(h.get("/is_sub").text(), "false false");
}

#[test]
fn errors_for_bad_uris_and_options() {
    let body = body_of(
        r#"local function try(...)
               local ok, err = pcall(...)
               ngx.say(ok, " ", (tostring(err):gsub("^.-:%d+: ", "")))
           end
           try(ngx.location.capture, "/../x")
           try(ngx.location.capture, "/lua", { method = "GET" })
           try(ngx.location.capture, "/lua", { vars = 1 })
           try(ngx.location.capture, "/lua", { ctx = 1 })
           try(ngx.location.capture_multi, {})
           try(ngx.location.capture)"#,
    );
    assert_eq!(
        body,
        "false unsafe uri in argument #1: /../x\n\
         false Bad http request method\n\
         false Bad vars option value\n\
         false Bad ctx option value type number, expected a Lua table\n\
         false at least one subrequest should be specified\n\
         false expecting one or two arguments\n"
    );
}

#[test]
fn nesting_is_limited() {
    let h = start(r#"ngx.print(ngx.location.capture("/rec").body)"#);
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert!(r.text().starts_with("err: "), "{}", r.text());
    assert!(r.text().contains("failed to issue subrequest"), "{}", r.text());
    assert!(h.error_log().contains("subrequests cycle while processing \"/rec\""), "{}", h.error_log());
}

#[test]
fn capture_is_disabled_in_log_by_lua() {
    let h = Halo::server(&format!(
        "{LOCATIONS}\n        location = /t {{ content_by_lua_block {{ ngx.say(\"hi\") }}
            log_by_lua_block {{
                local ok, err = pcall(ngx.location.capture, \"/lua\")
                ngx.log(ngx.ERR, \"capture: \", err)
            }} }}"
    ));
    assert_eq!(h.get("/t").text(), "hi\n");
    assert!(
        wait_until(Duration::from_secs(3), || h.error_log().contains("API disabled in the context of log_by_lua*")),
        "{}",
        h.error_log()
    );
}
