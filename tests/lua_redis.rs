//! Clients over cosockets: the resty.redis fixture (tests/lua/resty/redis.lua, written
//! from lua-resty-redis's documented API) against a real redis-server, and the resty.http
//! fixture (tests/lua/resty/http.lua) against [`HttpUpstream`]. Connection reuse is
//! counted on the server side. Checked against nginx + lua-nginx-module.

mod common;
use common::peers::*;
use common::*;
use std::time::Duration;

fn redis_server(redis: &Redis, http_extra: &str, lua: &str) -> Halo {
    lua_server(
        http_extra,
        &format!(
            "location /t {{ content_by_lua_block {{\n local p = require(\"t\").p\n local redis = require \"resty.redis\"\n local PORT = {}\n{lua}\n }} }}",
            redis.port()
        ),
    )
}

#[test]
fn redis_commands_replies_and_errors() {
    let redis = Redis::start();
    let h = redis_server(
        &redis,
        "",
        r#"
        local red = redis:new()
        red:set_timeouts(1000, 1000, 1000)
        p(red:connect("127.0.0.1", PORT))
        p(red:set("dog", "an animal"))
        p(red:get("dog"))
        p(red:get("nokey") == ngx.null, type(red:get("nokey")))
        p(red:incr("n"), red:incr("n"), red:incrby("n", 40))
        p(red:del("dog", "nokey"))
        p(red:lpush("list", "a", "b"), red:rpush("list", 3))
        p(table.concat(red:lrange("list", 0, -1), ","))
        p(red:hmset("h", { f1 = "v1", f2 = 2 }))
        p(red:hmset("h2", "a", "1", "b", "2"))
        local all = red:hgetall("h")
        local hash = red:array_to_hash(all)
        p(#all, hash.f1, hash.f2)
        p(red:hget("h2", "b"))
        local mg = red:mget("n", "nokey", "h2")
        p(mg[1], mg[2] == ngx.null, mg[3] == ngx.null)
        p(red:incr("list"))
        p(red:nosuchcommand("x"))
        p(red:exists("n"), red:type("h"), red:ping())
        p(red:close())
        p(red:get("dog"))
        "#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(
        r.text(),
        "1\nOK\nan animal\ntrue userdata\n1 2 42\n1\n2 3\nb,a,3\nOK\nOK\n4 v1 2\n2\n42 true true\n\
         false WRONGTYPE Operation against a key holding the wrong kind of value\n\
         false ERR unknown command 'nosuchcommand', with args beginning with: 'x' \n\
         1 hash PONG\n1\nnil closed\n"
    );
    assert_eq!(redis.command(&["GET", "n"]), "42");
}

#[test]
fn redis_pipeline() {
    let redis = Redis::start();
    let h = redis_server(
        &redis,
        "",
        r#"
        local red = redis:new()
        red:set_timeout(1000)
        assert(red:connect("127.0.0.1", PORT))
        p(red:commit_pipeline())
        red:init_pipeline()
        p(red:set("cat", "Marry"))
        red:set("horse", "Bob")
        red:get("cat")
        red:get("horse")
        red:get("none")
        red:incr("cat")
        local res, err = red:commit_pipeline()
        p(#res, res[1], res[2], res[3], res[4], res[5] == ngx.null, res[6][1], res[6][2])
        red:init_pipeline(2)
        red:set("cat", "other")
        red:cancel_pipeline()
        p(red:get("cat"))
        p(red:commit_pipeline())
        "#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(
        r.text(),
        "nil no pipeline\ntrue\n6 OK OK Marry Bob true false ERR value is not an integer or out of range\nMarry\nnil no pipeline\n"
    );
}

#[test]
fn redis_unix_socket_and_read_reply() {
    let redis = Redis::start();
    let sock = redis.unix_socket();
    let h = redis_server(
        &redis,
        "",
        &format!(
            r#"
        local red = redis:new()
        red:set_timeout(1000)
        p(red:connect("unix:{sock}"))
        p(red:set("k", "via unix"))
        local sub = redis:new()
        sub:set_timeout(1000)
        assert(sub:connect("127.0.0.1", PORT))
        local res = sub:subscribe("chan")
        p(res[1], res[2], res[3])
        p(sub:set_keepalive())
        p(red:publish("chan", "hello"))
        res = sub:read_reply()
        p(res[1], res[2], res[3])
        p(red:get("k"))
        sub:close()
        red:close()
        "#,
            sock = sock.display()
        ),
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "1\nOK\nsubscribe chan 1\nnil subscribed state\n1\nmessage chan hello\nvia unix\n");
}

#[test]
fn redis_keepalive_pool_is_reused_across_requests() {
    let redis = Redis::start();
    let h = redis_server(
        &redis,
        "",
        r#"
        local red = redis:new()
        red:set_timeout(1000)
        assert(red:connect("127.0.0.1", PORT))
        local times = red:get_reused_times()
        local n = red:incr("hits")
        p(n, times)
        p(red:set_keepalive(10000, 4))
        "#,
    );
    let before = redis.total_connections();
    for i in 1..=20 {
        let r = h.get("/t");
        assert_eq!(r.text(), format!("{i} {}\n1\n", i - 1), "{}", h.logs());
    }
    assert_eq!(redis.total_connections(), before + 1, "20 requests used one pooled connection");
    assert_eq!(redis.connected_clients(), 2, "the pooled connection and the test's own");
}

#[test]
fn redis_round_trip_in_a_timer() {
    let redis = Redis::start();
    let h = lua_server(
        "lua_shared_dict results 1m;",
        &format!(
            r#"
        location /start {{ content_by_lua_block {{
            local ok, err = ngx.timer.at(0.05, function(premature, key)
                local redis = require "resty.redis"
                local red = redis:new()
                red:set_timeout(1000)
                local ok, err = red:connect("127.0.0.1", {port})
                if not ok then ngx.shared.results:set("r", "connect: " .. err) return end
                red:set(key, "from a timer")
                local v = red:get(key)
                red:set_keepalive()
                ngx.shared.results:set("r", v)
            end, "tk")
            ngx.say(ok, " ", err)
        }} }}
        location /result {{ content_by_lua_block {{
            ngx.say(ngx.shared.results:get("r"))
        }} }}"#,
            port = redis.port()
        ),
    );
    assert_eq!(h.get("/start").text(), "1 nil\n");
    assert!(
        wait_until(Duration::from_secs(3), || h.get("/result").text() == "from a timer\n"),
        "{}",
        h.logs()
    );
    assert_eq!(redis.command(&["GET", "tk"]), "from a timer");
}

#[test]
fn redis_connect_refused_and_timeouts() {
    let redis = Redis::start();
    let closed = free_port();
    let held = TcpPeer::start(Mode::Hold);
    let h = redis_server(
        &redis,
        "",
        &format!(
            r#"
        local red = redis:new()
        p(red:connect("127.0.0.1", {closed}))
        red = redis:new()
        red:set_timeout(100)
        assert(red:connect("127.0.0.1", {held}))
        p(red:get("x"))
        "#,
            closed = closed,
            held = held.port()
        ),
    );
    let r = h.get("/t");
    assert_eq!(r.text(), "nil connection refused\nnil timeout\n", "{}", h.logs());
}

fn http_server(up: &HttpUpstream, lua: &str) -> Halo {
    lua_server(
        "",
        &format!(
            "location /t {{ content_by_lua_block {{\n local p = require(\"t\").p\n local http = require \"resty.http\"\n local PORT = {}\n{lua}\n }} }}",
            up.port()
        ),
    )
}

#[test]
fn http_get_and_post_through_request_uri() {
    let up = HttpUpstream::start();
    let h = http_server(
        &up,
        r#"
        local httpc = http.new()
        local res, err = httpc:request_uri("http://127.0.0.1:" .. PORT .. "/get/path?a=1&b=two", {
            headers = { ["X-Test"] = "yes" },
        })
        if not res then ngx.say("error: ", err) return end
        p(res.status, res.reason, res.headers["x-method"], res.headers["X-Path"], res.headers["Content-Length"] ~= nil)
        p(type(res.headers["X-Multi"]), table.concat(res.headers["X-Multi"], ","))
        local first = res.body:match("^[^\n]*")
        p(first, res.body:find("\nX-Test: yes\n", 1, true) ~= nil, res.body:find("\nHost: 127.0.0.1:" .. PORT .. "\n", 1, true) ~= nil)
        httpc = http.new()
        res, err = httpc:request_uri("http://127.0.0.1:" .. PORT .. "/post", {
            method = "POST",
            body = "a=1&b=2",
            headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        })
        p(res.status, res.headers["X-Method"])
        p(res.body:find("\nContent-Length: 7\n", 1, true) ~= nil, res.body:sub(-9))
        res = httpc:request_uri("http://127.0.0.1:" .. PORT .. "/chunked/x", { method = "PUT", body = "chunky" })
        p(res.status, res.headers["Transfer-Encoding"], res.body:match("^[^\n]*"), res.body:sub(-8))
        res = httpc:request_uri("http://127.0.0.1:" .. PORT .. "/status/404")
        p(res.status, res.has_body)
        "#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(
        r.text(),
        "200 Whatever GET /get/path?a=1&b=two true\ntable a,b\nGET /get/path?a=1&b=two true true\n200 POST\ntrue \n\na=1&b=2\n200 chunked PUT /chunked/x \n\nchunky\n404 true\n"
    );
    // request_uri keeps the connection alive: every request went over the first one
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!((up.accepted(), up.requests()), (1, 4));
}

#[test]
fn http_streaming_request_and_keepalive_reuse() {
    let up = HttpUpstream::start();
    let h = http_server(
        &up,
        r#"
        local httpc = http.new()
        httpc:set_timeout(1000)
        p(httpc:connect{ scheme = "http", host = "127.0.0.1", port = PORT })
        p(httpc:get_reused_times())
        local res, err = httpc:request{ path = "/chunked/stream", headers = { ["X-N"] = "1" } }
        if not res then ngx.say("error: ", err) return end
        local n, total = 0, 0
        while true do
            local chunk, rerr = res.body_reader(5)
            if rerr then ngx.say("read error: ", rerr) break end
            if not chunk then break end
            n = n + 1
            total = total + #chunk
        end
        p(res.status, n > 1, total > 0)
        res = httpc:request{ method = "HEAD", path = "/head" }
        p(res.status, res.has_body, res:read_body())
        p(httpc:set_keepalive())
        "#,
    );
    for i in 0..20 {
        let r = h.get("/t");
        assert_eq!(r.text(), format!("1 nil\n{i}\n200 true true\n200 false \n1\n"), "{}", h.logs());
    }
    assert_eq!(up.accepted(), 1, "one upstream connection for 20 requests");
    assert_eq!(up.requests(), 40);
}

#[test]
fn http_connection_close_is_not_pooled() {
    let up = HttpUpstream::start();
    let h = http_server(
        &up,
        r#"
        local httpc = http.new()
        local res = assert(httpc:request_uri("http://127.0.0.1:" .. PORT .. "/close"))
        p(res.status, res.headers["Connection"], res.headers["X-Conn"])
        "#,
    );
    assert_eq!(h.get("/t").text(), "200 close 1\n");
    assert_eq!(h.get("/t").text(), "200 close 2\n");
    assert_eq!(up.accepted(), 2);
}
