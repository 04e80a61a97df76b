//! ngx.semaphore (lua-resty-core's API): counts, waits that yield only the
//! waiting coroutine, handoffs between requests, timers and light threads
//! of one worker, the contexts a wait is refused in, and the argument
//! errors. Every test also passes against nginx + lua-nginx-module.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn new_post_wait_and_count_in_one_request() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local s = semaphore.new()
            ngx.say(s:count())
            local s3 = semaphore.new(3)
            ngx.say(s3:count())
            ngx.say(tostring(s3:wait(0)), " ", s3:count())
            ngx.say(tostring(s3:post(2)), " ", s3:count())
            s:post()
            ngx.say(s:count())
            ngx.say(tostring(s:wait(1)), " ", s:count())
            local ok, err = s:wait(0)
            ngx.say(tostring(ok), " ", err, " ", s:count())
            ngx.say(type(semaphore.version))
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "0\n3\ntrue 2\ntrue 4\n1\ntrue 0\nnil timeout 0\nstring\n", "{}", h.logs());
}

#[test]
fn wait_zero_with_nothing_posted_times_out_at_once() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            ngx.update_time()
            local t0 = ngx.now()
            local ok, err = s:wait(0)
            ngx.update_time()
            ngx.say(tostring(ok), " ", err, " ", ngx.now() - t0 < 0.05, " ", s:count())
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "nil timeout true 0\n", "{}", h.logs());
}

#[test]
fn a_wait_times_out_after_its_timeout() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            ngx.update_time()
            local t0 = ngx.now()
            local ok, err = s:wait(0.2)
            ngx.update_time()
            local dt = ngx.now() - t0
            ngx.say(tostring(ok), " ", err, " ", dt >= 0.15 and dt < 1, " ", s:count())
            -- The timed-out waiter left the queue: a post is not lost on it.
            s:post()
            ngx.say(s:count(), " ", tostring(s:wait(0)))
        } }"#,
    );
    // lua-nginx-module: false (not nil) after a wait that blocked.
    assert_eq!(h.get("/t").text(), "false timeout true 0\n1 true\n", "{}", h.logs());
}

/// A semaphore made in init_worker_by_lua, waited on by one request and
/// posted by another.
const SHARED: &str = r#"
    init_worker_by_lua_block {
        package.loaded.shared_sem = require("ngx.semaphore").new()
    }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location = /wait { content_by_lua_block {
            local s = require "shared_sem"
            ngx.update_time()
            local t0 = ngx.now()
            local ok, err = s:wait(tonumber(ngx.var.arg_t) or 2)
            ngx.update_time()
            ngx.say(tostring(ok), " ", tostring(err), " ", ngx.now() - t0 < 1.5)
        } }
        location = /post { content_by_lua_block {
            local s = require "shared_sem"
            s:post(tonumber(ngx.var.arg_n) or 1)
            ngx.say("posted ", s:count())
        } }
        location = /count { content_by_lua_block { ngx.say(require("shared_sem"):count()) } }
        location = /abandon { content_by_lua_block {
            local s = require "shared_sem"
            ngx.thread.spawn(function() s:wait(5) end)
            ngx.say("waiting ", s:count())
            ngx.exit(200)
        } }
    }"#;

fn wait_count(h: &Halo, want: &str) {
    assert!(wait_until(Duration::from_secs(3), || h.get("/count").text() == want), "count never {want}: {}", h.logs());
}

#[test]
fn one_request_posts_what_another_waits_for() {
    let h = Halo::start(SHARED);
    let port = h.port;
    let started = Instant::now();
    let a = std::thread::spawn(move || {
        let mut c = Conn::new(port);
        c.send("GET /wait?t=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.read_response(false).text()
    });
    wait_count(&h, "-1\n");
    assert_eq!(h.get("/post").text(), "posted 0\n");
    assert_eq!(a.join().unwrap(), "true nil true\n", "{}", h.logs());
    assert!(started.elapsed() < Duration::from_millis(1800), "the waiter was woken by the post, not its timeout");
    // Nothing left over; a post with nobody waiting adds to the count.
    assert_eq!(h.get("/count").text(), "0\n");
    assert_eq!(h.get("/post?n=2").text(), "posted 2\n");
    assert_eq!(h.get("/wait?t=0").text(), "true nil true\n");
    assert_eq!(h.get("/wait?t=0").text(), "true nil true\n");
    assert_eq!(h.get("/wait?t=0").text(), "nil timeout true\n");
}

#[test]
fn a_request_that_ends_while_waiting_drops_its_wait() {
    let h = Halo::start(SHARED);
    assert_eq!(h.get("/abandon").text(), "waiting -1\n", "{}", h.logs());
    // The aborted thread's wait is gone: the count is back, and a post
    // reaches the next waiter rather than the dead one.
    wait_count(&h, "0\n");
    let port = h.port;
    let a = std::thread::spawn(move || {
        let mut c = Conn::new(port);
        c.send("GET /wait?t=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.read_response(false).text()
    });
    wait_count(&h, "-1\n");
    assert_eq!(h.get("/post").text(), "posted 0\n");
    assert_eq!(a.join().unwrap(), "true nil true\n", "{}", h.logs());
}

#[test]
fn waiters_are_granted_in_order_one_post_at_a_time() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            local order = {}
            local function w(name)
                local ok, err = s:wait(2)
                order[#order + 1] = name .. ":" .. tostring(ok)
            end
            local a = ngx.thread.spawn(w, "a")
            local b = ngx.thread.spawn(w, "b")
            ngx.say(s:count())
            s:post(1)
            ngx.say(s:count())
            ngx.thread.wait(a)
            ngx.say(table.concat(order, ","), " ", s:count())
            s:post(1)
            ngx.thread.wait(b)
            ngx.say(table.concat(order, ","), " ", s:count())
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "-2\n-1\na:true -1\na:true,b:true 0\n", "{}", h.logs());
}

#[test]
fn a_timer_posts_to_a_waiting_request() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            local ok, err = ngx.timer.at(0.05, function() s:post() end)
            assert(ok, err)
            ngx.update_time()
            local t0 = ngx.now()
            ok, err = s:wait(2)
            ngx.update_time()
            ngx.say(tostring(ok), " ", tostring(err), " ", ngx.now() - t0 < 1)
        } }
        location = /in_timer { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            local done = require("ngx.semaphore").new()
            local got
            ngx.timer.at(0, function()
                got = { s:wait(2) }
                done:post()
            end)
            ngx.sleep(0.05)
            s:post()
            ngx.say(tostring(done:wait(2)), " ", tostring(got and got[1]))
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "true nil true\n", "{}", h.logs());
    assert_eq!(h.get("/in_timer").text(), "true true\n", "{}", h.logs());
}

#[test]
fn a_light_thread_waits_while_the_entry_thread_posts() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local s = require("ngx.semaphore").new()
            local function sem_wait()
                ngx.say("enter waiting")
                local ok, err = s:wait(1)
                if not ok then
                    ngx.say("err: ", err)
                else
                    ngx.say("wait success")
                end
            end
            ngx.thread.spawn(sem_wait)
            ngx.say("back in main thread")
            if s:post() then
                ngx.say("sem post ok")
            end
            ngx.sleep(0.01)
            ngx.say("main thread end")
        } }"#,
    );
    assert_eq!(
        h.get("/t").text(),
        "enter waiting\nback in main thread\nsem post ok\nwait success\nmain thread end\n",
        "{}",
        h.logs()
    );
}

#[test]
fn wait_is_disabled_in_log_and_header_filter() {
    let h = Halo::server(
        r#"
        location = /t {
            content_by_lua_block { ngx.say("body") }
            header_filter_by_lua_block {
                local s = require("ngx.semaphore").new(1)
                local ok, err = s:wait(0)
                ngx.header["X-Wait"] = tostring(ok) .. " " .. tostring(err)
                -- post and count work there.
                s:post()
                ngx.header["X-Count"] = s:count()
            }
            log_by_lua_block {
                local s = require("ngx.semaphore").new(1)
                local ok, err = s:wait(1)
                ngx.log(ngx.WARN, "log wait: ", tostring(ok), " ", tostring(err))
            }
        }"#,
    );
    let r = h.get("/t");
    assert_eq!(r.text(), "body\n");
    assert_eq!(r.header("x-wait"), Some("nil API disabled in the context of header_filter_by_lua*"), "{}", h.logs());
    assert_eq!(r.header("x-count"), Some("2"));
    assert!(
        h.wait_log("logs/error.log", "log wait: nil API disabled in the context of log_by_lua*", Duration::from_secs(3)),
        "{}",
        h.logs()
    );
}

#[test]
fn bad_arguments_raise_lua_resty_cores_errors() {
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local function try(f)
                local ok, err = pcall(f)
                ngx.say(tostring(ok), " ", (tostring(err):gsub("^.*:%d+: ", "")))
            end
            local s = semaphore.new()
            try(function() return semaphore.new(-1) end)
            try(function() return s:wait("x") end)
            try(function() return s:wait(-1) end)
            try(function() return s:post(0) end)
            try(function() return s.wait({}, 1) end)
            try(function() return s.post(nil) end)
            try(function() return s.count("x") end)
            -- Not numbers: new as 0, post as 1.
            ngx.say(semaphore.new("x"):count(), " ", tostring(s:post("x")), " ", s:count())
        } }"#,
    );
    assert_eq!(
        h.get("/t").text(),
        "false no negative number\n\
         false attempt to perform arithmetic on a nil value\n\
         false no negative number\n\
         false positive number required\n\
         false not a semaphore instance\n\
         false not a semaphore instance\n\
         false not a semaphore instance\n\
         0 true 1\n",
        "{}",
        h.logs()
    );
}
