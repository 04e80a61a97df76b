//! ngx.req.socket (the body as a cosocket, and the raw connection),
//! ngx.on_abort with lua_check_client_abort, and ngx.socket.udp, through the
//! real binary. Each test also passes on nginx + lua-nginx-module.

mod common;

use common::peers::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

#[test]
fn the_request_body_through_ngx_req_socket() {
    let h = lua_server(
        "",
        r#"
        location /t { content_by_lua_block {
            local sock, err = ngx.req.socket()
            if not sock then ngx.say("failed: ", err) return end
            for i = 1, 3 do
                local data, err, part = sock:receive(5)
                if data then ngx.say("received: ", data) else ngx.say("failed to receive: ", err, " [", part, "]") end
            end
        } }
        location /lines { content_by_lua_block {
            local sock = assert(ngx.req.socket())
            local until_b = sock:receiveuntil("--b")
            ngx.say(until_b())
            ngx.say(sock:receive())
            ngx.say(sock:receive())
        } }"#,
    );
    let r = h.get_response("POST /t HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(r.text(), "received: hello\nreceived:  worl\nfailed to receive: closed [d]\n");
    let r = h.get_response("GET /t HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.text(), "failed: no body\n");
    let r = h.get_response("POST /lines HTTP/1.1\r\nHost: localhost\r\nContent-Length: 17\r\n\r\npart--bline\nlast\n");
    assert_eq!(r.text(), "part\nline\nlast\n");
}

#[test]
fn the_body_arriving_in_pieces() {
    let h = lua_server(
        "",
        r#"
        location /t { content_by_lua_block {
            local sock = assert(ngx.req.socket())
            sock:settimeout(2000)
            ngx.say(sock:receive(10))
        } }"#,
    );
    let mut c = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    c.write_all(b"POST /t HTTP/1.0\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"def").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"ghij").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.ends_with("abcdefghij\n"), "{out}");
}

#[test]
fn a_raw_request_socket_speaks_both_ways() {
    let h = lua_server(
        "",
        r#"
        location /raw { content_by_lua_block {
            ngx.status = 101
            ngx.header["Upgrade"] = "echo"
            ngx.send_headers()
            ngx.flush(true)
            local sock = assert(ngx.req.socket(true))
            local line = sock:receive()
            sock:send("echo: " .. line .. "\n")
        } }"#,
    );
    let mut c = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /raw HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    c.write_all(b"ping\n").unwrap();
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "echo: ping\n");
}

#[test]
fn on_abort_runs_its_callback_when_the_client_goes() {
    let h = lua_server(
        "lua_check_client_abort on;",
        r#"
        location /t { content_by_lua_block {
            local ok, err = ngx.on_abort(function()
                ngx.log(ngx.ERR, "client went away")
                ngx.exit(499)
            end)
            ngx.log(ngx.ERR, "on_abort: ", tostring(ok), " ", tostring(err))
            ngx.log(ngx.ERR, "again: ", select(2, ngx.on_abort(function() end)))
            ngx.sleep(3)
            ngx.log(ngx.ERR, "slept to the end")
        } }"#,
    );
    let mut c = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    c.write_all(b"GET /t HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert!(h.wait_log("logs/error.log", "on_abort: 1 nil", Duration::from_secs(2)), "{}", h.logs());
    drop(c);
    assert!(h.wait_log("logs/error.log", "client went away", Duration::from_secs(2)), "{}", h.logs());
    assert!(h.wait_log("logs/access.log", "\" 499 ", Duration::from_secs(2)), "{}", h.access_log());
    let log = h.error_log();
    assert!(log.contains("again: duplicate call"), "{log}");
    assert!(!log.contains("slept to the end"), "{log}");
}

#[test]
fn on_abort_needs_lua_check_client_abort() {
    let h = lua_server(
        "",
        r#"
        location /t { content_by_lua_block {
            ngx.say(ngx.on_abort(function() end))
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "nillua_check_client_abort is off\n");
}

#[test]
fn udp_cosocket_round_trip() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        let mut reply = buf[..n].to_vec();
        reply.extend_from_slice(b"-pong");
        peer.send_to(&reply, from).unwrap();
    });
    let h = lua_server(
        "",
        &format!(
            r#"
        location /t {{ content_by_lua_block {{
            local p = require("t").p
            local u = ngx.socket.udp()
            u:settimeout(300)
            p(u:setpeername("127.0.0.1", {port}))
            p(u:send("ping"))
            p(u:receive())
            p(u:receive())
            p(u:close())
        }} }}"#
        ),
    );
    assert_eq!(h.get("/t").text(), "1\n1\nping-pong\nnil timeout\n1\n");
    echo.join().unwrap();
}
