//! ngx.socket.tcp against scriptable peers (tests/common/peers.rs): connect, send of
//! strings/numbers/nested tables, every receive pattern, receiveany, receiveuntil (plain,
//! inclusive, with a size), timeouts with partial data, refused/reset/closed errors, a line
//! longer than lua_socket_buffer_size, a socket used from another request, the keepalive
//! pool, unix-domain sockets and a name with no resolver. The expected bodies and error
//! strings are nginx + lua-nginx-module's (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::*;
use common::*;
use std::time::Duration;

/// A server whose `/t` runs `lua` (with `p` from tests/lua/t.lua and `PORT` the peer's port).
fn run(http_extra: &str, peer_port: u16, lua: &str) -> (Halo, Response) {
    let h = lua_server(
        http_extra,
        &format!(
            "location /t {{ content_by_lua_block {{\n local p = require(\"t\").p\n local PORT = {peer_port}\n{lua}\n }} }}"
        ),
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    (h, r)
}

#[test]
fn receive_patterns_and_receiveuntil() {
    let peer = TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"go\n".to_vec()),
        send("first line\r\nsecond\nABCDEFGHIJpart1--b--part2--b--tail"),
        Step::Close,
    ]));
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        p(sock:connect("127.0.0.1", PORT))
        p(sock:send("go\n"))
        p(sock:receive("*l"))
        p(sock:receive())
        p(sock:receive(4))
        p(sock:receive("6"))
        local plain = sock:receiveuntil("--b--")
        p(plain())
        local incl = sock:receiveuntil("--b--", { inclusive = true })
        p(incl())
        p(sock:receive("*a"))
        -- at EOF "*a" gives "", the others nil, "closed" (with "" as partial for "*l")
        p(sock:receive("*a"))
        p(sock:receive())
        p(sock:receive(1))
        p(sock:close())
        "#,
    );
    assert_eq!(
        r.text(),
        "1\n3\nfirst line\nsecond\nABCD\nEFGHIJ\npart1\npart2--b--\ntail\n\nnil closed \nnil closed\n1\n"
    );
}

#[test]
fn receiveuntil_iterator_with_a_size() {
    let peer = TcpPeer::start(Mode::Script(vec![send("abcdefg\r\n--xy--rest"), Step::Close]));
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", PORT))
        local reader = sock:receiveuntil("\r\n--xy--")
        while true do
            local data, err, partial = reader(3)
            p(data, err, partial)
            if not data then break end
        end
        p(sock:receive("*a"))
        local r2 = sock:receiveuntil("zz")
        p(r2())
        "#,
    );
    assert_eq!(r.text(), "abc nil nil\ndef nil nil\ng nil nil\nnil nil nil\nrest\nnil closed \n");
}

#[test]
fn receiveany_returns_what_has_arrived() {
    let peer = TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"go\n".to_vec()),
        send("abc"),
        Step::Sleep(Duration::from_millis(200)),
        send("defgh"),
        Step::Close,
    ]));
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", PORT))
        assert(sock:send("go\n"))
        p(sock:receiveany(10))
        ngx.sleep(0.3)
        p(sock:receiveany(2))
        p(sock:receiveany(10))
        p(sock:receiveany(10))
        "#,
    );
    assert_eq!(
        r.text(),
        "abc\nde\nfgh\nnil closed \n"
    );
}

#[test]
fn send_strings_numbers_and_nested_tables() {
    let peer = TcpPeer::start(Mode::Echo);
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", PORT))
        p(sock:send("plain\n"))
        p(sock:receive())
        p(sock:send(42))
        p(sock:send(1.5))
        p(sock:send({ "x", { 1, { 2.5, "y" } }, "\n" }))
        p(sock:receive())
        -- a boolean is sent as its name; inside a table it is an error
        p(pcall(sock.send, sock, true))
        p(pcall(sock.send, sock, { "a", false }))
        p(sock:send(""))
        sock:close()
        "#,
    );
    assert_eq!(
        r.text(),
        "6\nplain\n2\n3\n7\n421.5x12.5y\n\
         true 4\n\
         false bad argument #2 to '?' (bad data type boolean found)\n\
         0\n"
    );
    assert!(wait_until(Duration::from_secs(2), || peer.received_text() == "plain\n421.5x12.5y\ntrue"), "{:?}", peer.received_text());
}

#[test]
fn read_timeout_returns_timeout_and_the_partial_data() {
    let peer = TcpPeer::start(Mode::Script(vec![send("abc"), Step::Hold]));
    let (h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        sock:settimeout(100)
        assert(sock:connect("127.0.0.1", PORT))
        local t0 = ngx.now()
        p(sock:receive(10))
        p(sock:receive("*l"))
        sock:settimeouts(1000, 1000, 50)
        p(sock:receive())
        local dt = ngx.now() - t0
        p(dt >= 0.2, dt < 1)
        -- a read timeout does not close the socket
        p(sock:send("still\n"))
        sock:close()
        "#,
    );
    assert_eq!(r.text(), "nil timeout abc\nnil timeout \nnil timeout \ntrue true\n6\n");
    assert_contains(&h.error_log(), "lua tcp socket read timed out");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let port = free_port();
    let (h, r) = run(
        "",
        port,
        r#"
        local sock = ngx.socket.tcp()
        p(sock:connect("127.0.0.1", PORT))
        p(sock:send("x"))
        p(sock:receive())
        "#,
    );
    assert_eq!(r.text(), "nil connection refused\nnil closed\nnil closed\n");
    assert_contains(&h.error_log(), "(111: Connection refused)");
}

#[test]
fn a_peer_that_resets_gives_connection_reset_by_peer() {
    let peer = TcpPeer::start(Mode::ResetAfter(4));
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", PORT))
        p(sock:send("ping"))
        p(sock:receive())
        p(sock:receive())
        "#,
    );
    assert_eq!(r.text(), "4\nnil connection reset by peer \nnil closed\n");
}

#[test]
fn a_closed_socket_says_closed() {
    let peer = TcpPeer::start(Mode::Echo);
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        p(sock:receive())
        p(sock:send("x"))
        p(sock:close())
        assert(sock:connect("127.0.0.1", PORT))
        p(sock:close())
        p(sock:close())
        p(sock:receive())
        p(sock:receive("*a"))
        p(sock:send("x"))
        p(sock:setkeepalive())
        p(sock:getreusedtimes())
        "#,
    );
    assert_eq!(
        r.text(),
        "nil closed\nnil closed\nnil closed\n1\nnil closed\nnil closed\nnil closed\nnil closed\nnil closed\nnil closed\n"
    );
}

#[test]
fn a_line_longer_than_lua_socket_buffer_size() {
    let peer = TcpPeer::start(Mode::LongLine(3000));
    let (h, r) = run(
        "lua_socket_buffer_size 1k;",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        sock:settimeout(500)
        assert(sock:connect("127.0.0.1", PORT))
        local line, err, partial = sock:receive("*l")
        p(line and #line, err, partial and #partial)
        local sock2 = ngx.socket.tcp()
        sock2:settimeout(500)
        assert(sock2:connect("127.0.0.1", PORT))
        local reader = sock2:receiveuntil("\n")
        local data, err2, partial2 = reader()
        p(data and #data, err2, partial2 and #partial2)
        "#,
    );
    assert_eq!(r.text(), "3000 nil nil\n3000 nil nil\n", "{}", h.error_log());
}

#[test]
fn a_socket_from_another_request_is_refused() {
    // /a connects, stashes the socket in a module table (shared by the worker's requests)
    // and sleeps; /b, meanwhile, uses it: "bad request". Once /a has ended its socket
    // was closed with it: "closed".
    let peer = TcpPeer::start(Mode::Echo);
    let h = lua_server(
        "",
        &format!(
            r#"
        location /a {{ content_by_lua_block {{
            local stash = package.loaded["stash"] or {{}}
            package.loaded["stash"] = stash
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {port}))
            stash.sock = sock
            ngx.sleep(tonumber(ngx.var.arg_sleep) or 0)
            ngx.say("stashed")
        }} }}
        location /b {{ content_by_lua_block {{
            local p = require("t").p
            local sock = package.loaded["stash"].sock
            p(pcall(sock.send, sock, "x\n"))
            p(pcall(sock.receive, sock))
            p(pcall(sock.setkeepalive, sock))
            p(pcall(sock.close, sock))
        }} }}"#,
            port = peer.port()
        ),
    );
    let port = h.port;
    let a = std::thread::spawn(move || parse(&request(port, b"GET /a?sleep=0.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
    assert!(wait_until(Duration::from_secs(3), || peer.accepted() == 1));
    let r = h.get("/b");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "false bad request\nfalse bad request\nfalse bad request\nfalse bad request\n");
    assert_eq!(a.join().unwrap().text(), "stashed\n");
    let r = h.get("/b");
    assert_eq!(r.text(), "true nil closed\ntrue nil closed\ntrue nil closed\ntrue nil closed\n");
}

#[test]
fn setkeepalive_puts_the_connection_in_the_pool_for_the_next_request() {
    let peer = TcpPeer::start(Mode::Echo);
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local p = require("t").p
            local sock = ngx.socket.tcp()
            p(sock:connect("127.0.0.1", {port}))
            p(sock:getreusedtimes())
            sock:send("hi\n")
            p(sock:receive())
            p(sock:setkeepalive(10000, 10))
            p(sock:send("x"))
        }} }}"#,
            port = peer.port()
        ),
    );
    assert_eq!(h.get("/t").text(), "1\n0\nhi\n1\nnil closed\n");
    assert_eq!(h.get("/t").text(), "1\n1\nhi\n1\nnil closed\n");
    assert_eq!(h.get("/t").text(), "1\n2\nhi\n1\nnil closed\n");
    assert_eq!(peer.accepted(), 1, "the pool served the later requests");
}

#[test]
fn a_pooled_connection_the_peer_closed_is_not_reused() {
    // Each connection answers one line, then the peer closes it.
    let peer = TcpPeer::start(Mode::Script(vec![Step::ReadUntil(b"\n".to_vec()), send("hi\n"), Step::Sleep(Duration::from_millis(50)), Step::Close]));
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local p = require("t").p
            local sock = ngx.socket.tcp()
            p(sock:connect("127.0.0.1", {port}))
            p(sock:getreusedtimes())
            sock:send("x\n")
            p(sock:receive())
            p(sock:setkeepalive(10000, 10))
        }} }}"#,
            port = peer.port()
        ),
    );
    assert_eq!(h.get("/t").text(), "1\n0\nhi\n1\n");
    // The peer has closed the pooled connection by now: a new one is made.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.get("/t").text(), "1\n0\nhi\n1\n");
    assert_eq!(peer.accepted(), 2);
}

#[test]
fn a_backlog_pool_queues_connects_beyond_its_size() {
    let peer = TcpPeer::start(Mode::Echo);
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local function conn(name, hold, timeout)
            local s = ngx.socket.tcp()
            if timeout then s:settimeouts(timeout, 1000, 1000) end
            local ok, err = s:connect("127.0.0.1", PORT, { pool = "bk", pool_size = 1, backlog = 1 })
            if not ok then return name .. " " .. err end
            local reused = s:getreusedtimes()
            ngx.sleep(hold)
            s:setkeepalive()
            return name .. " ok " .. reused
        end
        local a = ngx.thread.spawn(conn, "a", 0.3)
        local b = ngx.thread.spawn(conn, "b", 0)
        local c = ngx.thread.spawn(conn, "c", 0)
        p(select(2, ngx.thread.wait(a)))
        p(select(2, ngx.thread.wait(b)))
        p(select(2, ngx.thread.wait(c)))
        -- One connection is open (idle) now: a second waits and times out.
        local s = ngx.socket.tcp()
        assert(s:connect("127.0.0.1", PORT, { pool = "bk", pool_size = 1, backlog = 1 }))
        local d = ngx.thread.spawn(conn, "d", 0, 100)
        p(select(2, ngx.thread.wait(d)))
        "#,
    );
    assert_eq!(r.text(), "a ok 0\nb ok 1\nc too many waiting connect operations\nd timeout\n");
    assert_eq!(peer.accepted(), 1);
}

#[test]
fn a_cosocket_inside_a_user_coroutine() {
    let peer = TcpPeer::start(Mode::Echo);
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local co = coroutine.wrap(function(line)
            local s = ngx.socket.tcp()
            assert(s:connect("127.0.0.1", PORT))
            s:send(line .. "\n")
            coroutine.yield(s:receive())
            s:send("again\n")
            coroutine.yield(s:receive())
            s:close()
            return "end"
        end)
        p(co("first"))
        p(co())
        p(co())
        "#,
    );
    assert_eq!(r.text(), "first\nagain\nend\n");
}

#[test]
fn setkeepalive_with_unread_data_is_refused() {
    let peer = TcpPeer::start(Mode::Echo);
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", PORT))
        sock:send("one\ntwo\n")
        p(sock:receive())
        ngx.sleep(0.1)
        p(sock:receive(1))
        p(sock:setkeepalive())
        "#,
    );
    assert_eq!(r.text(), "one\nt\nnil unread data in buffer\n");
}

#[test]
fn named_pools_are_separate() {
    let peer = TcpPeer::start(Mode::Echo);
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {port}, {{ pool = ngx.var.arg_pool }}))
            ngx.say(sock:getreusedtimes())
            assert(sock:setkeepalive())
        }} }}"#,
            port = peer.port()
        ),
    );
    assert_eq!(h.get("/t?pool=a").text(), "0\n");
    assert_eq!(h.get("/t?pool=b").text(), "0\n");
    assert_eq!(h.get("/t?pool=a").text(), "1\n");
    assert_eq!(h.get("/t?pool=b").text(), "1\n");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(peer.accepted(), 2);
}

#[test]
fn unix_domain_socket() {
    let prefix = Prefix::new();
    let path = prefix.path().join("peer.sock");
    let peer = TcpPeer::start_unix(&path, Mode::Echo);
    let conf = lua_conf(
        1024,
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local p = require("t").p
            local sock = ngx.socket.tcp()
            p(sock:connect("unix:{path}"))
            p(sock:getreusedtimes())
            p(sock:send("over unix\n"))
            p(sock:receive())
            p(sock:setkeepalive())
            local bad = ngx.socket.tcp()
            p(bad:connect("unix:{path}.missing"))
        }} }}"#,
            path = path.display()
        ),
    );
    let h = prefix.start(&conf);
    let r = h.get("/t");
    assert_eq!(r.text(), "1\n0\n10\nover unix\n1\nnil no such file or directory\n", "{}", h.logs());
    assert_eq!(h.get("/t").text(), "1\n1\n10\nover unix\n1\nnil no such file or directory\n");
    assert_eq!(peer.accepted(), 1);
}

#[test]
fn a_name_without_a_resolver() {
    let (_h, r) = run(
        "",
        0,
        r#"
        local sock = ngx.socket.tcp()
        p(sock:connect("example.invalid", 80))
        p(sock:connect("localhost", 80))
        "#,
    );
    // A deliberate difference (README): halo reads /etc/hosts before asking a
    // resolver, so `localhost` needs none (nothing listens on its port 80).
    let localhost = if is_nginx() { "nil no resolver defined to resolve \"localhost\"\n" } else { "nil connection refused\n" };
    assert_eq!(
        r.text(),
        format!("nil no resolver defined to resolve \"example.invalid\"\n{localhost}")
    );
}

#[test]
fn bad_connect_arguments() {
    let (_h, r) = run(
        "",
        0,
        r#"
        local sock = ngx.socket.tcp()
        p(pcall(sock.connect, sock, "127.0.0.1", 70000))
        p(pcall(sock.connect, sock, "127.0.0.1", "x"))
        p(pcall(sock.connect, sock))
        "#,
    );
    assert_eq!(
        r.text(),
        "true nil bad port number: 70000\ntrue nil missing the port number\nfalse ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen 1\n"
    );
}

#[test]
fn receiveuntil_at_eof_bad_patterns_and_ngx_socket_connect() {
    let peer = TcpPeer::start(Mode::Script(vec![send("no boundary here"), Step::Close]));
    let (_h, r) = run(
        "",
        peer.port(),
        r#"
        local sock, err = ngx.socket.connect("127.0.0.1", PORT)
        p(type(sock), err)
        p(pcall(sock.receive, sock, "*x"))
        p(pcall(sock.receiveuntil, sock, ""))
        local reader = sock:receiveuntil("--end--")
        p(reader())
        p(reader())
        p(sock:receive())
        "#,
    );
    assert_eq!(
        r.text(),
        "table nil\nfalse bad argument #2 to '?' (bad pattern argument)\ntrue nil pattern is empty\n\
         nil closed no boundary here\nnil closed\nnil closed\n"
    );
}

#[test]
fn a_full_pool_closes_the_extra_connections() {
    // Three connections at once from one request, pool_size 2: two are kept, the third
    // is closed; the next request's three connects reuse two and open one.
    let peer = TcpPeer::start(Mode::Echo);
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local socks, reused = {{}}, {{}}
            for i = 1, 3 do
                socks[i] = ngx.socket.tcp()
                assert(socks[i]:connect("127.0.0.1", {port}, {{ pool = "small", pool_size = 2 }}))
                reused[i] = socks[i]:getreusedtimes()
            end
            for i = 1, 3 do assert(socks[i]:setkeepalive(10000)) end
            ngx.say(table.concat(reused, " "))
        }} }}"#,
            port = peer.port()
        ),
    );
    assert_eq!(h.get("/t").text(), "0 0 0\n");
    assert_eq!(h.get("/t").text(), "1 1 0\n");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(peer.accepted(), 4);
}

#[test]
fn send_timeout_when_the_peer_does_not_read() {
    let peer = TcpPeer::start(Mode::Script(vec![Step::Stall]));
    let (h, r) = run(
        "",
        peer.port(),
        r#"
        local sock = ngx.socket.tcp()
        sock:settimeouts(1000, 100, 1000)
        assert(sock:connect("127.0.0.1", PORT))
        local big = string.rep("x", 64 * 1024 * 1024)
        p(sock:send(big))
        p(sock:send("more"))
        "#,
    );
    assert_eq!(r.text(), "nil timeout\nnil closed\n");
    assert_contains(&h.error_log(), "lua tcp socket write timed out");
}

#[test]
fn cosockets_by_phase() {
    let peer = TcpPeer::start(Mode::Echo);
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{
            rewrite_by_lua_block {{
                local sock = ngx.socket.tcp()
                assert(sock:connect("127.0.0.1", {port}))
                sock:send("rewrite\n")
                ngx.ctx.seen = sock:receive()
                sock:setkeepalive()
            }}
            access_by_lua_block {{
                local sock = ngx.socket.tcp()
                assert(sock:connect("127.0.0.1", {port}))
                sock:send("access\n")
                ngx.ctx.seen = ngx.ctx.seen .. "," .. sock:receive() .. "," .. sock:getreusedtimes()
                sock:setkeepalive()
            }}
            content_by_lua_block {{ ngx.say(ngx.ctx.seen) }}
            header_filter_by_lua_block {{
                local ok, err = pcall(function()
                    local sock = ngx.socket.tcp()
                    return sock:connect("127.0.0.1", {port})
                end)
                ngx.header["X-HF"] = tostring(ok) .. " " .. tostring(err):gsub("^[^\n]-:%d+: ", "")
                local ok2, err2 = pcall(ngx.sleep, 0.01)
                ngx.header["X-HF-Sleep"] = tostring(ok2) .. " " .. tostring(err2):gsub("^[^\n]-:%d+: ", "")
            }}
            log_by_lua_block {{
                local ok, err = pcall(function()
                    local sock = ngx.socket.tcp()
                    return sock:connect("127.0.0.1", {port})
                end)
                ngx.log(ngx.ERR, "log phase: ", tostring(ok), " ", (tostring(err):gsub("^[^\n]-:%d+: ", "")))
            }}
        }}"#,
            port = peer.port()
        ),
    );
    let r = h.get("/t");
    assert_eq!(r.text(), "rewrite,access,1\n", "{}", h.logs());
    assert_eq!(r.header("x-hf"), Some("false API disabled in the context of header_filter_by_lua*"));
    assert_eq!(r.header("x-hf-sleep"), Some("false API disabled in the context of header_filter_by_lua*"));
    assert!(
        h.wait_log("logs/error.log", "log phase: false API disabled in the context of log_by_lua*", Duration::from_secs(2)),
        "{}",
        h.logs()
    );
}
