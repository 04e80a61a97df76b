//! ngx.semaphore (`require "ngx.semaphore"`) through the real server: new/post/wait/count
//! in one request, a handoff between two requests, waits that time out, and light threads
//! woken in order. Checked against nginx + lua-nginx-module with lua-resty-core
//! (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::*;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn new_post_wait_count_in_one_request() {
    let h = lua_server(
        "",
        r#"location /t { content_by_lua_block {
            local p = require("t").p
            local semaphore = require "ngx.semaphore"
            local sema = semaphore.new()
            p(sema:count())
            sema:post(2)
            p(sema:count())
            p(sema:wait(0))
            p(sema:wait(1))
            p(sema:count())
            p(sema:wait(0))
            local s3 = semaphore.new(3)
            p(s3:count())
            p(pcall(semaphore.new, -1))
            p(pcall(sema.wait, sema, -1))
            p(pcall(sema.post, sema, 0))
            local t0 = ngx.now()
            p(sema:wait(0.1))
            p(ngx.now() - t0 >= 0.09)
        } }"#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(
        r.text(),
        // wait(0) on a zero count fails at once with nil; a wait that times out gives false
        "0\n2\ntrue\ntrue\n0\nnil timeout\n3\nfalse no negative number\nfalse no negative number\n\
         false positive number required\nfalse timeout\ntrue\n"
    );
}

#[test]
fn threads_waiting_on_a_semaphore_are_woken_in_order() {
    let h = lua_server(
        "",
        r#"location /t { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local sema = semaphore.new()
            local function waiter(name)
                local ok, err = sema:wait(1)
                ngx.say(name, " ", tostring(ok), " ", tostring(err))
            end
            local ts = {}
            for _, n in ipairs({ "a", "b", "c" }) do ts[#ts + 1] = ngx.thread.spawn(waiter, n) end
            ngx.say("count ", sema:count())
            sema:post(2)
            ngx.sleep(0.01)
            ngx.say("posted 2")
            sema:post(1)
            for _, t in ipairs(ts) do ngx.thread.wait(t) end
            ngx.say("count ", sema:count())
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "count -3\na true nil\nb true nil\nposted 2\nc true nil\ncount 0\n");
}

#[test]
fn a_handoff_between_two_requests() {
    // The semaphore lives in a module table, shared by the worker's requests: /wait blocks
    // on it (timeout 2s) until /post, a separate request, posts.
    let h = lua_server(
        "",
        r#"
        location /wait { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local stash = package.loaded["sema_stash"] or {}
            package.loaded["sema_stash"] = stash
            stash.sema = stash.sema or semaphore.new()
            local t0 = ngx.now()
            local ok, err = stash.sema:wait(2)
            ngx.say(tostring(ok), " ", tostring(err), " ", ngx.now() - t0 < 1.5)
        } }
        location /count { content_by_lua_block {
            local stash = package.loaded["sema_stash"]
            ngx.say(stash and stash.sema and stash.sema:count() or "none")
        } }
        location /post { content_by_lua_block {
            package.loaded["sema_stash"].sema:post(1)
            ngx.say("posted")
        } }"#,
    );
    let port = h.port;
    let waiter = std::thread::spawn(move || {
        parse(&request(port, b"GET /wait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).text()
    });
    assert!(wait_until(Duration::from_secs(2), || h.get("/count").text() == "-1\n"), "{}", h.logs());
    let t0 = Instant::now();
    assert_eq!(h.get("/post").text(), "posted\n");
    assert_eq!(waiter.join().unwrap(), "true nil true\n");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(h.get("/count").text(), "0\n");
}

#[test]
fn a_wait_that_times_out() {
    let h = lua_server(
        "",
        r#"location /t { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local sema = semaphore.new()
            local t0 = ngx.now()
            local ok, err = sema:wait(0.2)
            local dt = ngx.now() - t0
            ngx.say(tostring(ok), " ", err, " ", dt >= 0.19, " ", dt < 1, " ", sema:count())
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "false timeout true true 0\n");
}

#[test]
fn a_semaphore_in_a_timer() {
    let h = lua_server(
        "lua_shared_dict d 1m;",
        r#"
        location /t { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local sema = semaphore.new()
            ngx.timer.at(0.05, function()
                ngx.shared.d:set("timer", "posting")
                sema:post(1)
            end)
            local ok, err = sema:wait(2)
            ngx.say(tostring(ok), " ", tostring(err), " ", ngx.shared.d:get("timer"))
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "true nil posting\n");
}
