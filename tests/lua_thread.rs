//! Light threads (ngx.thread.spawn / wait / kill) and subrequests (ngx.location.capture /
//! capture_multi) through the real server. Checked against nginx + lua-nginx-module
//! (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::*;
use common::*;
use std::time::{Duration, Instant};

fn t_server(http_extra: &str, lua: &str, more: &str) -> Halo {
    lua_server(
        http_extra,
        &format!("location /t {{ content_by_lua_block {{\n local p = require(\"t\").p\n{lua}\n }} }}\n{more}"),
    )
}

#[test]
fn spawned_threads_interleave_by_their_sleeps() {
    let h = t_server(
        "",
        r#"
        local function worker(name, delay)
            ngx.say(name, " start")
            ngx.sleep(delay)
            ngx.say(name, " end")
            return name
        end
        local a = ngx.thread.spawn(worker, "a", 0.2)
        local b = ngx.thread.spawn(worker, "b", 0.1)
        ngx.say("main spawned ", type(a), " ", coroutine.status(a))
        p(ngx.thread.wait(a))
        p(ngx.thread.wait(b))
        "#,
        "",
    );
    assert_eq!(h.get("/t").text(), "a start\nb start\nmain spawned thread running\nb end\na end\ntrue a\ntrue b\n");
}

#[test]
fn wait_returns_the_values_of_the_first_thread_to_finish() {
    let h = t_server(
        "",
        r#"
        local slow = ngx.thread.spawn(function() ngx.sleep(0.2) return "slow", 1 end)
        local fast = ngx.thread.spawn(function() ngx.sleep(0.05) return "fast", 2, nil, true end)
        local now = ngx.thread.spawn(function() return end)
        p(ngx.thread.wait(slow, fast))
        p(ngx.thread.wait(slow))
        p(ngx.thread.wait(now))
        p(pcall(ngx.thread.wait, slow))
        "#,
        "",
    );
    assert_eq!(h.get("/t").text(), "true fast 2 nil true\ntrue slow 1\ntrue\ntrue nil already waited or killed\n");
}

#[test]
fn wait_on_a_thread_that_errored() {
    let h = t_server(
        "",
        r#"
        local t = ngx.thread.spawn(function() ngx.sleep(0.01) error("boom") end)
        local ok, err = ngx.thread.wait(t)
        p(ok, (tostring(err):gsub("^.-:%d+: ", "")))
        local t2 = ngx.thread.spawn(function() error({ code = 7 }) end)
        local ok2, err2 = ngx.thread.wait(t2)
        p(ok2, type(err2), type(err2) == "table" and err2.code)
        "#,
        "",
    );
    let r = h.get("/t");
    assert_eq!(r.text(), "false boom\nfalse table 7\n", "{}", h.logs());
    assert_contains(&h.error_log(), "lua user thread aborted: runtime error:");
}

#[test]
fn kill_a_sleeping_thread() {
    let h = t_server(
        "",
        r#"
        local t = ngx.thread.spawn(function()
            ngx.sleep(0.3)
            ngx.say("should not run")
        end)
        ngx.sleep(0.05)
        p(ngx.thread.kill(t))
        p(ngx.thread.kill(t))
        p(ngx.thread.wait(t))
        local done = ngx.thread.spawn(function() return 1 end)
        p(ngx.thread.kill(done))
        ngx.sleep(0.4)
        ngx.say("main end")
        "#,
        "",
    );
    let t0 = Instant::now();
    assert_eq!(
        h.get("/t").text(),
        "1\nnil already waited or killed\nnil already waited or killed\nnil already terminated\nmain end\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_response_waits_for_running_threads() {
    let h = t_server(
        "",
        r#"
        ngx.thread.spawn(function()
            ngx.sleep(0.2)
            ngx.say("thread done")
        end)
        ngx.say("entry done")
        "#,
        "",
    );
    let t0 = Instant::now();
    assert_eq!(h.get("/t").text(), "entry done\nthread done\n");
    assert!(t0.elapsed() >= Duration::from_millis(190));
}

#[test]
fn ngx_exit_in_a_thread_ends_the_request() {
    let h = t_server(
        "",
        r#"
        local other = ngx.thread.spawn(function()
            ngx.sleep(0.5)
            ngx.say("never")
        end)
        ngx.thread.spawn(function()
            ngx.sleep(0.05)
            ngx.say("exiting from a thread")
            ngx.exit(ngx.HTTP_OK)
        end)
        ngx.sleep(1)
        ngx.say("entry never gets here")
        "#,
        r#"location /x { content_by_lua_block {
            ngx.thread.spawn(function() ngx.exit(403) end)
            ngx.say("not sent")
        } }"#,
    );
    let t0 = Instant::now();
    assert_eq!(h.get("/t").text(), "exiting from a thread\n");
    assert!(t0.elapsed() < Duration::from_millis(900), "took {:?}", t0.elapsed());
    assert_eq!(h.get("/x").status, 403);
}

#[test]
fn threads_share_a_cosocket_peer_in_parallel() {
    // Two threads each talk to their own connection at the same time: the whole request
    // takes about as long as the slower one, not the sum.
    let peer = TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"\n".to_vec()),
        Step::Sleep(Duration::from_millis(300)),
        send("done\n"),
        Step::Close,
    ]));
    let h = t_server(
        "",
        &format!(
            r#"
        local function ask(i)
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {port}))
            sock:send("q" .. i .. "\n")
            return (sock:receive())
        end
        local t1 = ngx.thread.spawn(ask, 1)
        local t2 = ngx.thread.spawn(ask, 2)
        p(ngx.thread.wait(t1))
        p(ngx.thread.wait(t2))
        "#,
            port = peer.port()
        ),
        "",
    );
    let t0 = Instant::now();
    assert_eq!(h.get("/t").text(), "true done\ntrue done\n");
    assert!(t0.elapsed() < Duration::from_millis(550), "took {:?}", t0.elapsed());
    assert_eq!(peer.accepted(), 2);
}

#[test]
fn capture_a_location() {
    let h = t_server(
        "",
        r#"
        local res = ngx.location.capture("/sub?x=1", { args = { y = "two" } })
        p(res.status, res.header["X-Sub"], res.truncated, res.body)
        res = ngx.location.capture("/sub", { method = ngx.HTTP_POST, body = "the body", args = "z=3" })
        p(res.status, res.header["X-Sub"], res.truncated, res.body)
        res = ngx.location.capture("/missing")
        p(res.status)
        res = ngx.location.capture("/teapot")
        p(res.status, res.body)
        "#,
        r#"
        location /sub { content_by_lua_block {
            ngx.req.read_body()
            ngx.header["X-Sub"] = "yes"
            ngx.print(ngx.req.get_method(), " ", ngx.var.args, " ", ngx.req.get_body_data() or "-")
        } }
        location /teapot { content_by_lua_block { ngx.status = 418 ngx.print("short and stout") } }
        location /missing { return 404; }"#,
    );
    let r = h.get("/t");
    assert_eq!(
        r.text(),
        "200 yes false GET x=1&y=two -\n200 yes false POST z=3 the body\n404\n418 short and stout\n",
        "{}",
        h.logs()
    );
}

#[test]
fn capture_multi_runs_subrequests_in_parallel() {
    let h = t_server(
        "",
        r#"
        local a, b = ngx.location.capture_multi({
            { "/slow", { args = "n=a" } },
            { "/slow", { args = "n=b", method = ngx.HTTP_PUT, body = "B" } },
        })
        p(a.status, a.body, a.truncated)
        p(b.status, b.body, b.truncated)
        "#,
        r#"
        location /slow { content_by_lua_block {
            ngx.req.read_body()
            ngx.sleep(0.2)
            ngx.print(ngx.var.arg_n, ":", ngx.req.get_method(), ":", ngx.req.get_body_data() or "")
        } }"#,
    );
    let t0 = Instant::now();
    assert_eq!(h.get("/t").text(), "200 a:GET: false\n200 b:PUT:B false\n");
    assert!(t0.elapsed() < Duration::from_millis(380), "took {:?}", t0.elapsed());
}
