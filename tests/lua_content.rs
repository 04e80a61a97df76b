//! content_by_lua* through the real binary: output, status, headers,
//! ngx.exit, ngx.var, ngx.req.get_method, errors and shared globals.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn say_and_print_flatten_their_arguments() {
    let h = Halo::server(
        r#"
        location = /say { content_by_lua_block { ngx.say("hello ", 42, " ", true, nil, ngx.null, {"a", {"b", 1}}) } }
        location = /print { content_by_lua_block { ngx.print("a") ngx.print("b", "c") } }"#,
    );
    let r = h.get("/say");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "hello 42 truenilnullab1\n");
    assert_eq!(h.get("/print").text(), "abc");
}

#[test]
fn bad_argument_to_say_is_a_500_naming_it() {
    let h = Halo::server(r#"        location = /t { content_by_lua_block { ngx.say(function() end) } }"#);
    assert_eq!(h.get("/t").status, 500);
    assert!(
        h.wait_log("logs/error.log", "bad argument to 'say'", Duration::from_secs(2)),
        "{}",
        h.error_log()
    );
}

#[test]
fn status_and_headers() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            ngx.status = 201
            ngx.header["X-Foo"] = "bar"
            ngx.header.x_num = 7
            ngx.header.content_type = "application/json"
            ngx.say('{"status":', ngx.status, '}')
        } }"#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-foo"), Some("bar"));
    assert_eq!(r.header("x-num"), Some("7"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "{\"status\":201}\n");
}

#[test]
fn exit_ends_the_handler() {
    let h = Halo::server(
        r#"
        location = /404 { content_by_lua_block { ngx.exit(404) ngx.say("not reached") } }
        location = /ok { content_by_lua_block { ngx.say("done") ngx.exit(200) ngx.say("not reached") } }
        location = /pcall { content_by_lua_block { pcall(ngx.exit, 403) ngx.say("not reached") } }"#,
    );
    let r = h.get("/404");
    assert_eq!(r.status, 404);
    assert_contains(&r.text(), "<center><h1>404 Not Found</h1></center>");
    let r = h.get("/ok");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "done\n");
    // ngx.exit yields, so even pcall cannot keep the handler going.
    assert_eq!(h.get("/pcall").status, 403);
}

#[test]
fn variables_and_method() {
    let h = Halo::server(
        r#"
        location /v { content_by_lua_block {
            ngx.say(ngx.var.uri, "|", ngx.var.arg_x, "|", ngx.var.http_x_test, "|", ngx.req.get_method(), "|", tostring(ngx.var.no_such_var))
        } }"#,
    );
    let r = h.get_response("POST /v/a?x=7 HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.text(), "/v/a|7|yes|POST|nil\n");
}

#[test]
fn error_in_handler_is_logged_with_chunk_name_and_answers_500() {
    let h = Halo::server(
        r#"
        location = /boom { content_by_lua_block {
            local s = "}" -- a brace inside a string
            error("boom")
        } }
        location = /after { content_by_lua_block { ngx.say("still serving") } }"#,
    );
    assert_eq!(h.get("/boom").status, 500);
    let log = h.error_log();
    let re = regex::Regex::new(r"\[error\] \d+#\d+: \*\d+ failed to run content_by_lua\*: content_by_lua\(nginx\.conf:\d+\):3: boom\nstack traceback:").unwrap();
    assert!(re.is_match(&log), "{log}");
    assert_contains(&log, "request: \"GET /boom HTTP/1.1\"");
    // The worker keeps serving.
    assert_eq!(h.get("/after").text(), "still serving\n");
}

#[test]
fn globals_are_shared_and_writing_one_warns() {
    let h = Halo::server(
        r#"        location = /g { content_by_lua_block { counter = (counter or 0) + 1 ngx.say(counter) } }
        location = /l { content_by_lua_block { local n = (n or 0) + 1 ngx.say(n) } }"#,
    );
    assert_eq!(h.get("/l").text(), "1\n");
    assert_eq!(h.get("/l").text(), "1\n");
    assert_eq!(h.get("/g").text(), "1\n");
    // As lua-nginx-module: handlers share _G, and a write logs a warning.
    assert_eq!(h.get("/g").text(), "2\n");
    let log = h.error_log();
    assert_contains(&log, "[warn]");
    assert_contains(&log, "writing a global Lua variable ('counter') which may lead to race conditions between concurrent requests, so prefer the use of 'local' variables");
    assert_contains(&log, "content_by_lua(nginx.conf:");
}

#[test]
fn content_by_lua_file_and_package_path() {
    let p = Prefix::new();
    p.write_file("lua/greet.lua", "local m = {} function m.hi(n) return 'hi ' .. n end return m\n");
    p.write_file("lua/handler.lua", "local greet = require 'greet'\nngx.say(greet.hi(ngx.var.arg_n))\n");
    let conf = http_conf(
        r#"
    lua_package_path "$prefix/lua/?.lua;;";
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location = /f { content_by_lua_file lua/handler.lua; }
    }"#,
    );
    let h = p.start(&conf);
    assert_eq!(h.get("/f?n=you").text(), "hi you\n");
}

#[test]
fn unknown_lua_directive_context_is_a_config_error() {
    let p = Prefix::new();
    p.write_conf(&http_conf("    content_by_lua_block { ngx.say(1) }\n"));
    let out = p.cli(&["-t"]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&String::from_utf8_lossy(&out.stderr), "\"content_by_lua_block\" directive is not allowed here");
}

/// The request APIs called in a hot loop inside a real handler compile to a
/// trace: no abort, no stitch (tests/jit_recorder.lua watches jit.attach).
#[test]
fn request_api_loop_is_jit_compiled() {
    let hot = r#"
        local acc = 0
        -- Status and headers first: once output starts they count as sent.
        for i = 1, 1000 do
            acc = acc + #ngx.var.uri + #ngx.req.get_method()
            ngx.header["X-Loop"] = "v"
            ngx.header.x_other = i
            ngx.status = 200
            acc = acc + ngx.status + ngx.time() + ngx.now()
            local c = ngx.ctx
            c.n = (c.n or 0) + 1
        end
        for i = 1, 1000 do
            ngx.print("")
            ngx.say("x")
            acc = acc + ngx.ctx.n
        end
        assert(acc > 0)
        "#;
    // get_headers loops over the headers itself: its loop may abort the outer
    // trace once ("inner loop in root trace") until the inner one compiles.
    let hot_headers = r#"
        local n = 0
        for i = 1, 1000 do
            local h = ngx.req.get_headers()
            n = n + #h.host
        end
        assert(n > 0)
        "#;
    let r = record_hot_loops(&[("hot", hot, false), ("hot_headers", hot_headers, true)], "nil");
    assert!(r.stitches.is_empty(), "stitched traces:\n{}", r.stitches);
    assert!(r.aborts.is_empty(), "trace aborts:\n{}", r.aborts);
    assert!(r.compiled >= 1, "no loop trace compiled");
}

#[test]
fn sleep_waits_on_the_event_loop_while_others_are_served() {
    let h = Halo::server(
        r#"
        location = /slow { content_by_lua_block {
            local t0 = ngx.now()
            ngx.say("before")
            ngx.sleep(0.6)
            ngx.update_time()
            ngx.say("after ", ngx.now() - t0 >= 0.5)
        } }
        location = /fast { content_by_lua_block { ngx.say("fast") } }"#,
    );
    let port = h.port;
    let slow = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let r = parse(&request(port, b"GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(150));
    let t = std::time::Instant::now();
    assert_eq!(h.get("/fast").text(), "fast\n");
    assert!(t.elapsed() < Duration::from_millis(300), "fast request waited {:?}", t.elapsed());
    let (r, took) = slow.join().unwrap();
    assert_eq!(r.text(), "before\nafter true\n");
    assert!(took >= Duration::from_millis(550), "slept only {took:?}");
}

#[test]
fn concurrent_sleeping_handlers_keep_their_own_locals() {
    let h = Halo::server(
        r#"
        location = /g { content_by_lua_block {
            local mine = ngx.var.arg_v
            ngx.sleep(0.2)
            ngx.say(mine)
        } }"#,
    );
    let port = h.port;
    let a = std::thread::spawn(move || parse(&request(port, b"GET /g?v=a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")));
    std::thread::sleep(Duration::from_millis(50));
    let b = parse(&request(port, b"GET /g?v=b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
    assert_eq!(a.join().unwrap().text(), "a\n");
    assert_eq!(b.text(), "b\n");
}

#[test]
fn sleep_rejects_bad_arguments() {
    let h = Halo::server(
        r#"
        location = /s { content_by_lua_block { ngx.sleep("x") } }
        location = /n { content_by_lua_block { ngx.sleep(-1) } }"#,
    );
    assert_eq!(h.get("/s").status, 500);
    assert_eq!(h.get("/n").status, 500);
    let log = h.error_log();
    assert_contains(&log, "bad argument #1 to 'sleep' (number expected, got string)");
    assert_contains(&log, "bad argument #1 to 'sleep' (a non-negative number of seconds expected)");
}

#[test]
fn get_headers_and_log_with_request_context() {
    let h = Halo::server(
        r#"
        location = /h { content_by_lua_block {
            local hs = ngx.req.get_headers()
            ngx.log(ngx.WARN, "agent=", hs["user-agent"])
            local raw = ngx.req.get_headers(0, true)
            ngx.say(hs.host, "|", hs["x-multi"][1], ",", hs["x-multi"][2], "|", raw["X-Multi"][2], "|", hs["X-Multi"][2], hs.x_multi[1], "|", tostring(raw.x_multi))
            local two = ngx.req.get_headers(2)
            local n = 0 for _ in pairs(two) do n = n + 1 end
            ngx.say(n)
        } }"#,
    );
    let r = h.get_response("GET /h HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t/1\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n");
    assert_eq!(r.text(), "localhost|a,b|b|ba|nil\n2\n");
    assert!(h.wait_log("logs/error.log", "agent=t/1", Duration::from_secs(2)), "{}", h.error_log());
    let log = h.error_log();
    let line = log.lines().find(|l| l.contains("agent=t/1")).unwrap();
    let re = regex::Regex::new(r#"\[warn\] \d+#\d+: \*\d+ \[lua\] content_by_lua\(nginx\.conf:\d+\):3: agent=t/1, client: 127\.0\.0\.1, server: localhost, request: "GET /h HTTP/1\.1", host: "localhost"$"#).unwrap();
    assert!(re.is_match(line), "{line}");
}

#[test]
fn rewrite_access_and_log_phases() {
    let h = Halo::server(
        r#"
        access_by_lua_block {
            if ngx.var.arg_token ~= "ok" then
                return ngx.exit(403)
            end
        }
        log_by_lua_block {
            ngx.log(ngx.NOTICE, "logged ", ngx.var.uri, " ", ngx.var.status, " in ", ngx.get_phase())
        }
        location /p {
            rewrite_by_lua_block { if ngx.var.arg_early then ngx.say("early from ", ngx.get_phase()) return ngx.exit(200) end }
            content_by_lua_block { ngx.say("content in ", ngx.get_phase()) }
        }
        location /static { root html; }
        location /sleepy {
            access_by_lua_block { ngx.sleep(0.05) }
            content_by_lua_block { ngx.say("after access sleep") }
        }"#,
    );
    h.write_file("html/static/x.txt", "static\n");
    // access_by_lua (inherited from the server) denies without the token.
    assert_eq!(h.get("/p").status, 403);
    assert_eq!(h.get("/static/x.txt").status, 403);
    assert_eq!(h.get("/p?token=ok").text(), "content in content\n");
    assert_eq!(h.get("/static/x.txt?token=ok").text(), "static\n");
    // rewrite_by_lua runs first and may answer the request itself.
    assert_eq!(h.get("/p?token=ok&early=1").text(), "early from rewrite\n");
    assert_eq!(h.get("/sleepy?token=ok").text(), "after access sleep\n");
    assert!(h.wait_log("logs/error.log", "logged /p 200 in log", Duration::from_secs(2)), "{}", h.error_log());
    assert_contains(&h.error_log(), "logged /p 403 in log");
}

#[test]
fn output_apis_are_disabled_in_the_log_phase() {
    let h = Halo::server(
        r#"
        location /l {
            content_by_lua_block { ngx.say("ok") }
            log_by_lua_block { ngx.say("too late") }
        }"#,
    );
    assert_eq!(h.get("/l").text(), "ok\n");
    assert!(
        h.wait_log("logs/error.log", "failed to run log_by_lua*: log_by_lua(nginx.conf:", Duration::from_secs(2)),
        "{}",
        h.error_log()
    );
    assert_contains(&h.error_log(), "):1: API disabled in the context of log_by_lua*\nstack traceback:");
}

#[test]
fn ctx_is_shared_by_the_phases_of_one_request_only() {
    let h = Halo::server(
        r#"
        location /c {
            rewrite_by_lua_block { ngx.ctx.trail = "rewrite" }
            access_by_lua_block { ngx.ctx.trail = ngx.ctx.trail .. ">access" }
            content_by_lua_block {
                ngx.ctx.trail = ngx.ctx.trail .. ">content"
                ngx.say(ngx.ctx.trail, " ", tostring(ngx.ctx.leftover))
                ngx.ctx.leftover = "x"
            }
            log_by_lua_block { ngx.log(ngx.NOTICE, "trail=", ngx.ctx.trail, ">log") }
        }"#,
    );
    assert_eq!(h.get("/c").text(), "rewrite>access>content nil\n");
    // A new request starts with an empty ngx.ctx.
    assert_eq!(h.get("/c").text(), "rewrite>access>content nil\n");
    assert!(h.wait_log("logs/error.log", "trail=rewrite>access>content>log", Duration::from_secs(2)), "{}", h.error_log());
}

#[test]
fn init_and_init_worker_by_lua() {
    let conf = http_conf(
        r#"
    init_by_lua_block {
        greeting = "hello from init"
        package.loaded.shared = { count = 0 }
    }
    init_worker_by_lua_block {
        package.loaded.shared.worker = ngx.worker.id()
    }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location /i { content_by_lua_block {
            local shared = require "shared"
            ngx.say(greeting, " ", shared.worker, " ", ngx.get_phase())
        } }
    }"#,
    );
    let h = Prefix::new().start(&conf);
    assert_eq!(h.get("/i").text(), "hello from init 0 content\n");
}

#[test]
fn init_by_lua_error_stops_the_start() {
    let p = Prefix::new();
    let conf = http_conf("    init_by_lua_block { error(\"bad init\") }\n").replace("{{PORT}}", &free_port().to_string());
    p.write_conf(&conf);
    let out = p.cli(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&String::from_utf8_lossy(&out.stderr), "init_by_lua error: init_by_lua(nginx.conf:");
    assert_contains(&String::from_utf8_lossy(&out.stderr), "bad init");
}

#[test]
fn workers_inherit_init_by_lua_and_reload_runs_it_again() {
    let conf = |v: &str| {
        format!(
            "master_process on;\nworker_processes 2;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\nevents {{ worker_connections 1024; }}\nhttp {{\n    init_by_lua_block {{ version = \"{v}\" }}\n    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        location / {{ content_by_lua_block {{ ngx.say(version, \" \", ngx.worker.count()) }} }}\n    }}\n}}\n"
        )
    };
    let h = Halo::start_full(&conf("v1"));
    assert_eq!(h.get("/").text(), "v1 2\n");
    h.rewrite_conf(&conf("v2"));
    let out = h.prefix.cli(&["-s", "reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(wait_until(Duration::from_secs(10), || h.get("/").text() == "v2 2\n"), "{}", h.logs());
}

#[test]
fn uri_args_and_redirect() {
    let h = Halo::server(
        r#"
        location = /args { content_by_lua_block {
            local a = ngx.req.get_uri_args()
            ngx.say(a.x, "|", a.sp, "|", tostring(a.flag), "|", a.m[1], ",", a.m[2], "|", a["k e"], "|", tostring(a.none))
            local one = ngx.req.get_uri_args(1)
            local n = 0 for _ in pairs(one) do n = n + 1 end
            ngx.say(n)
        } }
        location = /r { content_by_lua_block { ngx.redirect("/target?a=1", 301) } }
        location = /bad { content_by_lua_block { ngx.redirect("/x", 200) } }"#,
    );
    let r = h.get("/args?x=1&sp=a+b%21&flag&m=1&m=2&k%20e=v");
    assert_eq!(r.text(), "1|a b!|true|1,2|v|nil\n1\n");
    let r = h.get("/r");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/target?a=1", h.port).as_str()));
    assert_eq!(h.get("/bad").status, 500);
    assert_contains(&h.error_log(), "only ngx.HTTP_MOVED_TEMPORARILY");
}

#[test]
fn header_and_body_filters() {
    let h = Halo::server(
        r#"
        header_filter_by_lua_block {
            ngx.header["X-Filtered"] = ngx.get_phase()
            ngx.header["X-Seen-Type"] = ngx.header.content_type
            if ngx.status == 404 then ngx.status = 410 end
        }
        location /b {
            content_by_lua_block { ngx.header["X-From"] = "content" ngx.say("hello world") }
            body_filter_by_lua_block {
                ngx.arg[1] = string.upper(ngx.arg[1]) .. (ngx.arg[2] and "[eof]" or "")
            }
        }
        location /f {
            root html;
            body_filter_by_lua_block { ngx.arg[1] = "<" .. ngx.arg[1] .. ">" }
        }
        location /missing { return 404; }
        location /bad {
            content_by_lua_block { ngx.say("x") }
            header_filter_by_lua_block { ngx.say("no output here") }
        }"#,
    );
    h.write_file("html/f/x.txt", "file");
    let r = h.get("/b");
    assert_eq!(r.header("x-filtered"), Some("header_filter"));
    assert_eq!(r.header("x-seen-type"), Some("text/plain"));
    assert_eq!(r.header("x-from"), Some("content"));
    assert_eq!(r.text(), "HELLO WORLD\n[eof]");
    assert_eq!(r.header("content-length"), Some("17"));
    assert_eq!(h.get("/f/x.txt").text(), "<file>");
    assert_eq!(h.get("/missing").status, 410);
    assert_eq!(h.get("/bad").status, 500);
    assert_contains(&h.error_log(), "API disabled in the context of header_filter_by_lua*");
}

#[test]
fn exit_worker_by_lua_runs_on_graceful_stop() {
    let conf = http_conf(
        r#"
    exit_worker_by_lua_block { ngx.log(ngx.NOTICE, "bye from worker ", ngx.worker.id(), " exiting=", ngx.worker.exiting()) }
    server {
        listen 127.0.0.1:{{PORT}};
        location / { content_by_lua_block { ngx.say("up") } }
    }"#,
    );
    let mut h = Prefix::new().start(&conf);
    assert_eq!(h.get("/").text(), "up\n");
    h.signal(libc::SIGQUIT);
    assert_eq!(h.wait_exit(Duration::from_secs(5)), Some(0), "{}", h.logs());
    assert_contains(&h.error_log(), "bye from worker 0 exiting=true");
}

#[test]
fn set_by_lua_sets_a_variable_in_the_rewrite_directives() {
    let h = Halo::server(
        r#"
        location /s {
            set $a "from-set";
            set_by_lua_block $sum { return 1 + 1 }
            set_by_lua $joined 'return ngx.arg[1] .. "+" .. ngx.arg[2] .. tostring(ngx.arg[3])' $a $arg_q;
            set_by_lua_block $phase { return ngx.get_phase() }
            return 200 "$sum $joined $phase\n";
        }
        location /bad {
            set_by_lua_block $x { ngx.say("no") }
            return 200 "unreachable";
        }"#,
    );
    assert_eq!(h.get("/s?q=z").text(), "2 from-set+znil set\n");
    assert_eq!(h.get("/bad").status, 500);
    assert_contains(&h.error_log(), "API disabled in the context of set_by_lua*");
}

#[test]
fn request_body_in_lua() {
    let h = Halo::server(
        r#"
        client_max_body_size 1k;
        location /b { content_by_lua_block {
            ngx.req.read_body()
            local data = ngx.req.get_body_data()
            local args = ngx.req.get_post_args()
            ngx.say(tostring(data), "|", tostring(args and args.name), "|", ngx.var.request_body or "-")
        } }"#,
    );
    let r = h.get_response("POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nname=halo&x=%21");
    assert_eq!(r.text(), "name=halo&x=%21|halo|name=halo&x=%21\n");
    let r = h.get_response("POST /b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nname\r\n5\r\n=rust\r\n0\r\n\r\n");
    assert_eq!(r.text(), "name=rust|rust|name=rust\n");
    assert_eq!(h.get("/b").text(), "nil|nil|-\n");
    let big = format!("POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n{}", "a".repeat(2000));
    assert_eq!(h.get_response(&big).status, 413);
}

#[test]
fn writing_variables() {
    let h = Halo::server(
        r#"
        location /w {
            set $who "nobody";
            rewrite_by_lua_block { ngx.var.who = "lua" ngx.var.args = "x=9" }
            content_by_lua_block {
                local ok, err = pcall(function() ngx.var.uri = "/no" end)
                local ok2, err2 = pcall(function() ngx.var.undeclared = "v" end)
                ngx.say(ngx.var.who, " ", ngx.var.arg_x, " ", ok, " ", err:match('not changeable') ~= nil, " ", err2:match('not found for writing') ~= nil)
            }
        }"#,
    );
    assert_eq!(h.get("/w?x=1").text(), "lua 9 false true true\n");
}

#[test]
fn exec_redirects_internally() {
    let h = Halo::server(
        r#"
        location /from {
            content_by_lua_block { ngx.exec("/to", { a = 1, b = "x y" }) ngx.say("not reached") }
        }
        location /to { content_by_lua_block { ngx.say("to ", ngx.var.uri, "?", ngx.var.args, " internal") } }
        location /named { access_by_lua_block { ngx.exec("@fallback") } }
        location @fallback { content_by_lua_block { ngx.say("fallback for ", ngx.var.uri) } }
        location /static-target { rewrite_by_lua_block { ngx.exec("/file.txt") } }
        location /loop { content_by_lua_block { ngx.exec("/loop") } }"#,
    );
    h.write_file("html/file.txt", "a file\n");
    // Table arguments come in the table's traversal order, as in OpenResty.
    let text = h.get("/from").text();
    assert!(["to /to?a=1&b=x%20y internal\n", "to /to?b=x%20y&a=1 internal\n"].contains(&text.as_str()), "{text}");
    assert_eq!(h.get("/named").text(), "fallback for /named\n");
    assert_eq!(h.get("/static-target").text(), "a file\n");
    assert_eq!(h.get("/loop").status, 500);
    assert_contains(&h.error_log(), "rewrite or internal redirection cycle");
}

#[test]
fn request_and_response_getters() {
    let h = Halo::server(
        r#"
        location /g { content_by_lua_block {
            ngx.header["X-One"] = "1"
            ngx.header.content_type = "text/x-test"
            local rh = ngx.resp.get_headers()
            local age = ngx.now() - ngx.req.start_time()
            ngx.say(ngx.req.http_version(), " ", tostring(ngx.req.is_internal()), " ", tostring(ngx.is_subrequest),
                    " ", rh["x-one"], " ", rh["content-type"], " ", age >= 0 and age < 5)
        } }
        location /i { content_by_lua_block { ngx.exec("/internal") } }
        location /internal { content_by_lua_block { ngx.say(tostring(ngx.req.is_internal())) } }"#,
    );
    assert_eq!(h.get("/g").text(), "1.1 false false 1 text/x-test true\n");
    let r = h.get_response("GET /g HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert!(r.text().starts_with("1 false"), "{}", r.text());
    assert_eq!(h.get("/i").text(), "true\n");
}

#[test]
fn yielding_apis_work_inside_user_coroutines() {
    let h = Halo::server(
        r#"
        location /co { content_by_lua_block {
            local gen = coroutine.wrap(function()
                for i = 1, 3 do
                    ngx.sleep(0.01)
                    coroutine.yield(i)
                end
            end)
            local got = {}
            for _ = 1, 3 do got[#got + 1] = gen() end
            local co = coroutine.create(function(a)
                ngx.sleep(0.01)
                local b = coroutine.yield(a + 1)
                ngx.sleep(0.01)
                return b * 2
            end)
            local ok1, v1 = coroutine.resume(co, 1)
            local ok2, v2 = coroutine.resume(co, 10)
            ngx.say(table.concat(got, ","), " ", tostring(ok1), v1, " ", tostring(ok2), v2, " ", coroutine.status(co))
            coroutine.wrap(function() ngx.exit(202) end)()
            ngx.say("not reached")
        } }"#,
    );
    let r = h.get("/co");
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "1,2,3 true2 true20 dead\n");
}

#[test]
fn lua_code_cache_off_rereads_files() {
    let p = Prefix::new();
    p.write_file("lua/h.lua", "ngx.say('one')\n");
    let conf = http_conf(
        r#"
    lua_code_cache off;
    lua_need_request_body on;
    server {
        listen 127.0.0.1:{{PORT}};
        location = /h { content_by_lua_file lua/h.lua; }
    }"#,
    );
    let h = p.start(&conf);
    assert_eq!(h.get("/h").text(), "one\n");
    h.write_file("lua/h.lua", "ngx.say('two')\n");
    assert_eq!(h.get("/h").text(), "two\n");
}

#[test]
fn unsupported_lua_switches_are_refused() {
    let p = Prefix::new();
    p.write_conf(&http_conf("    rewrite_by_lua_no_postpone on;\n"));
    let out = p.cli(&["-t"]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&String::from_utf8_lossy(&out.stderr), "\"rewrite_by_lua_no_postpone on\" is not supported");
}

#[test]
fn headers_sent_flush_and_eof() {
    let h = Halo::server(
        r#"
        location /s { content_by_lua_block {
            local before = ngx.headers_sent
            ngx.header["X-Early"] = "yes"
            ngx.say("body")
            local after = ngx.headers_sent
            ngx.status = 500
            ngx.header["X-Late"] = "no"
            ngx.flush(true)
            ngx.eof()
            local ok, err = ngx.say("after eof")
            ngx.log(ngx.NOTICE, "state ", tostring(before), " ", tostring(after), " ", tostring(ok), " ", err)
        } }"#,
    );
    let r = h.get("/s");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-early"), Some("yes"));
    assert_eq!(r.header("x-late"), None);
    assert_eq!(r.text(), "body\n");
    assert!(h.wait_log("logs/error.log", "state false true nil seen eof", Duration::from_secs(2)), "{}", h.error_log());
    let log = h.error_log();
    assert_contains(&log, "attempt to set ngx.status after sending out response headers");
    assert_contains(&log, "attempt to set ngx.header.X-Late after sending out response headers");
}

/// ngx.flush sends the head and the output so far while the handler goes on
/// (chunked, keep-alive); ngx.eof ends the response and the handler goes on
/// working; HTTP/1.0 gets the body ended by the close; HEAD gets the head.
#[test]
fn flush_streams_output_while_the_handler_runs() {
    let h = Halo::server(
        r#"
        location /stream { content_by_lua_block {
            ngx.say("first")
            ngx.flush(true)
            ngx.sleep(1)
            ngx.say("second")
        } }
        location /eof { content_by_lua_block {
            ngx.say("done")
            ngx.eof()
            ngx.sleep(0.2)
            ngx.log(ngx.NOTICE, "work after eof")
        } }"#,
    );
    let mut c = h.connect();
    let t0 = std::time::Instant::now();
    c.send("GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    while !String::from_utf8_lossy(&c.buf).contains("first\n") {
        assert!(c.fill().unwrap() > 0, "closed early");
    }
    let first = t0.elapsed();
    assert!(first < Duration::from_millis(800), "the first part waited for the handler's end: {first:?}");
    let r = c.read_response(false);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(r.text(), "first\nsecond\n");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(!r.closes(), "{:?}", r.headers);

    // The same connection goes on; ngx.eof answers before the handler ends.
    c.send("GET /eof HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.text(), "done\n");
    assert!(h.wait_log("logs/error.log", "work after eof", Duration::from_secs(2)), "{}", h.error_log());

    let mut c = h.connect();
    c.send("GET /stream HTTP/1.0\r\n\r\n");
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.contains("\r\nConnection: close\r\n") && !raw.contains("chunked"), "{raw}");
    assert!(raw.ends_with("\r\n\r\nfirst\nsecond\n"), "{raw:?}");

    let mut c = h.connect();
    c.send("HEAD /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    c.send("GET /eof HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "done\n", "nothing but the head was sent for HEAD");
}

/// Once the head may be on the wire, ngx.exec and ngx.redirect are errors
/// (lua-nginx-module's wording), not a second response.
#[test]
fn exec_and_redirect_after_output_are_errors() {
    let h = Halo::server(
        r#"
        location /exec { content_by_lua_block { ngx.say("a") ngx.flush() ngx.exec("/other") } }
        location /redir { content_by_lua_block { ngx.send_headers() ngx.redirect("/other") } }
        location /other { return 200 "other\n"; }"#,
    );
    let mut c = h.connect();
    c.send("GET /exec HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.ends_with("\r\n\r\n2\r\na\n\r\n"), "one cut response: {raw:?}");
    assert!(!raw.contains("other"), "{raw:?}");
    assert!(h.wait_log("logs/error.log", "attempt to call ngx.exec after sending out response headers", Duration::from_secs(2)), "{}", h.error_log());

    let r = h.get("/redir");
    assert_eq!(r.status, 200, "the head already counted as sent");
    assert!(h.wait_log("logs/error.log", "attempt to call ngx.redirect after sending out the headers", Duration::from_secs(2)), "{}", h.error_log());
}

/// body_filter_by_lua runs on the output as it streams: ngx.flush still
/// sends, chunk by chunk, with ngx.arg[2] true only on the last.
#[test]
fn body_filter_runs_per_chunk() {
    let h = Halo::server(
        r#"
        location /f {
            content_by_lua_block { ngx.say("a") ngx.flush(true) ngx.say("b") }
            body_filter_by_lua_block {
                ngx.arg[1] = string.upper(ngx.arg[1]) .. (ngx.arg[2] and "|" or "")
            }
        }"#,
    );
    let r = h.get("/f");
    assert_eq!(r.text(), "A\nB\n|");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn request_setters() {
    let h = Halo::server(
        r#"
        location /set {
            rewrite_by_lua_block {
                ngx.req.set_header("X-Added", "1")
                ngx.req.set_header("User-Agent", "replaced")
                ngx.req.clear_header("X-Drop")
                ngx.req.set_method(ngx.HTTP_POST)
                ngx.req.set_uri_args({ b = 2, a = "x y" })
            }
            content_by_lua_block {
                local h = ngx.req.get_headers()
                ngx.say(h["x-added"], " ", h["user-agent"], " ", tostring(h["x-drop"]), " ", ngx.var.http_x_added,
                        " ", ngx.req.get_method(), " ", ngx.var.args, " ", ngx.var.uri)
            }
        }
        location /jump {
            rewrite_by_lua_block { ngx.req.set_uri("/target", true) }
        }
        location /target { content_by_lua_block { ngx.say("jumped to ", ngx.var.uri, " ", ngx.var.args) } }
        location /nojump {
            rewrite_by_lua_block { ngx.req.set_uri("/elsewhere") }
            content_by_lua_block { ngx.say("uri now ", ngx.var.uri) }
        }"#,
    );
    let r = h.get_response("GET /set?old=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: orig\r\nX-Drop: d\r\n\r\n");
    // A table's arguments come in its traversal order, as in OpenResty.
    let text = r.text();
    assert!(
        ["1 replaced nil 1 POST a=x%20y&b=2 /set\n", "1 replaced nil 1 POST b=2&a=x%20y /set\n"].contains(&text.as_str()),
        "{text}"
    );
    assert_eq!(h.get("/jump?k=v").text(), "jumped to /target k=v\n");
    assert_eq!(h.get("/nojump").text(), "uri now /elsewhere\n");
}

#[test]
fn raw_header_multi_value_headers_and_print() {
    let h = Halo::server(
        r#"
        location /m { content_by_lua_block {
            ngx.header["Set-Cookie"] = { "a=1", "b=2" }
            print("printed ", 42)
            ngx.print(ngx.req.raw_header(true))
        } }"#,
    );
    let r = h.get_response("GET /m HTTP/1.1\r\nHost: localhost\r\nX-Raw: yes\r\n\r\n");
    assert_eq!(r.headers_all("set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(r.text(), "Host: localhost\r\nX-Raw: yes\r\n\r\n");
    assert!(h.wait_log("logs/error.log", "[notice]", Duration::from_secs(2)));
    assert_contains(&h.error_log(), "[lua] content_by_lua(nginx.conf:");
    assert_contains(&h.error_log(), "printed 42");
}

/// Which APIs each phase allows: the same probes run in every phase and log
/// "name=ok" or "name=disabled" (OpenResty's "API disabled in the context of").
#[test]
fn api_availability_by_phase() {
    let probe = r#"
        local function try(name, f)
            local ok, err = pcall(f)
            local r = ok and "ok" or (tostring(err):find("API disabled in the context of", 1, true) and "disabled" or ("error:" .. tostring(err)))
            return name .. "=" .. r
        end
        local res = {
            try("var", function() return ngx.var.uri end),
            try("method", function() return ngx.req.get_method() end),
            try("ctx", function() ngx.ctx.x = 1 end),
            try("header", function() ngx.header["X-Probe"] = "1" end),
            try("status", function() ngx.status = 200 end),
            try("print", function() ngx.print("") end),
            try("sleep", function() ngx.sleep(0) end),
        }
        ngx.log(ngx.NOTICE, "probe ", ngx.get_phase(), ": ", table.concat(res, " "))
    "#;
    let conf = format!(
        r#"
        location /p {{
            set_by_lua_block $ignored {{ {probe} return "" }}
            rewrite_by_lua_block {{ {probe} }}
            access_by_lua_block {{ {probe} }}
            content_by_lua_block {{ {probe} ngx.say("done") }}
            header_filter_by_lua_block {{ {probe} }}
            body_filter_by_lua_block {{ {probe} }}
            log_by_lua_block {{ {probe} }}
        }}"#
    );
    let h = Halo::server(&conf);
    assert_eq!(h.get("/p").text(), "done\n");
    assert!(h.wait_log("logs/error.log", "probe log:", Duration::from_secs(2)), "{}", h.error_log());
    let log = h.error_log();
    let line = |phase: &str| {
        let needle = format!("probe {phase}: ");
        let l = log.lines().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no probe for {phase}:\n{log}"));
        let start = l.find(&needle).unwrap() + needle.len();
        l[start..].split(", client:").next().unwrap().to_string()
    };
    let all_ok = "var=ok method=ok ctx=ok header=ok status=ok print=ok sleep=ok";
    assert_eq!(line("rewrite"), all_ok);
    assert_eq!(line("access"), all_ok);
    assert_eq!(line("content"), all_ok);
    assert_eq!(line("set"), "var=ok method=ok ctx=ok header=disabled status=disabled print=disabled sleep=disabled");
    assert_eq!(line("header_filter"), "var=ok method=ok ctx=ok header=ok status=ok print=disabled sleep=disabled");
    assert_eq!(line("body_filter"), "var=ok method=ok ctx=ok header=disabled status=disabled print=disabled sleep=disabled");
    assert_eq!(line("log"), "var=ok method=ok ctx=ok header=disabled status=disabled print=disabled sleep=disabled");
}
