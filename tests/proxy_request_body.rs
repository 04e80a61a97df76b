//! The request body on its way through proxy_pass: `proxy_request_buffering
//! off` sends it as it arrives (its Content-Length kept; a chunked body
//! chunked to an HTTP/1.1 upstream, read whole and sent with its length to
//! an HTTP/1.0 one), `on` (the default) reads it whole first; 413 over
//! client_max_body_size, a client that stops mid-body (client_body_timeout:
//! both connections closed), proxy_send_timeout, an upstream that answers
//! before the body's end (relayed; no more of the body goes), no next
//! upstream once part of a streamed body went. Real upstreams from common::peers. Also run against nginx
//! (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::*;
use common::*;
use std::time::Duration;

/// An upstream that reads until `END`, then answers `ok` and closes.
fn until_end() -> TcpPeer {
    TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"END".to_vec()),
        send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        Step::Close,
    ]))
}

fn proxy(up: u16, extra: &str) -> Halo {
    Halo::server(&format!("location / {{ {extra} proxy_pass http://127.0.0.1:{up}; }}"))
}

/// Whether `peer` got `needle` within 3 s.
fn peer_got(peer: &TcpPeer, needle: &str) -> bool {
    wait_until(Duration::from_secs(3), || peer.received_text().contains(needle))
}

#[test]
fn unbuffered_body_reaches_the_upstream_before_the_client_finished() {
    let up = until_end();
    let h = proxy(up.port(), "proxy_request_buffering off;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\n\r\nfirst");
    assert!(peer_got(&up, "first"), "the first part did not go upstream: {:?}", up.received_text());
    std::thread::sleep(Duration::from_millis(200));
    c.send("-second");
    assert!(peer_got(&up, "first-second"), "{:?}", up.received_text());
    c.send("-lastEND");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    let got = up.received_text();
    // Its length goes with it; the body as the client sent it.
    assert!(got.to_ascii_lowercase().contains("\r\ncontent-length: 20\r\n"), "{got}");
    assert!(!got.to_ascii_lowercase().contains("transfer-encoding"), "{got}");
    assert!(got.ends_with("\r\n\r\nfirst-second-lastEND"), "{got}");
}

#[test]
fn buffered_body_goes_only_when_whole() {
    let up = until_end();
    let h = proxy(up.port(), "");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nfirst");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up.accepted(), 0, "the upstream was reached before the body was read: {:?}", up.received_text());
    c.send("..END");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert!(up.received_text().ends_with("\r\n\r\nfirst..END"), "{:?}", up.received_text());
}

#[test]
fn unbuffered_chunked_body_goes_chunked_over_http11() {
    let up = TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"0\r\n\r\n".to_vec()),
        send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        Step::Close,
    ]));
    let h = proxy(up.port(), "proxy_request_buffering off; proxy_http_version 1.1;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert!(peer_got(&up, "hello"), "the first chunk did not go upstream: {:?}", up.received_text());
    std::thread::sleep(Duration::from_millis(200));
    c.send("6\r\n world\r\n0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    let got = up.received_text();
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{got}");
    assert!(!head.contains("content-length"), "{got}");
    // The chunks as re-framed: the same data, then the last chunk.
    assert_eq!(dechunk(body), "hello world", "{got}");
    assert!(body.ends_with("0\r\n\r\n"), "{got}");
}

/// The data of a complete chunked body.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

#[test]
fn unbuffered_chunked_body_to_http10_is_read_whole_and_sent_with_its_length() {
    let up = HttpUpstream::start();
    let h = proxy(up.port(), "proxy_request_buffering off;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(up.requests(), 0, "a request went before its length was known");
    c.send("6\r\n world\r\n0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    let echo = r.text().to_ascii_lowercase();
    assert!(echo.contains("\ncontent-length: 11\n"), "{echo}");
    assert!(!echo.contains("transfer-encoding"), "{echo}");
    assert!(echo.ends_with("\n\nhello world"), "{echo}");
}

#[test]
fn unbuffered_body_over_client_max_body_size_is_413() {
    let up = HttpUpstream::start();
    let h = proxy(up.port(), "proxy_request_buffering off; proxy_http_version 1.1; client_max_body_size 10;");
    // A Content-Length over the limit: refused before any upstream.
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_eq!(c.read_response(false).status, 413);
    assert_eq!(up.accepted(), 0);
    // A chunked body that grows past it.
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(200));
    c.send("14\r\n01234567890123456789\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 413);
    assert_eq!(up.requests(), 0, "the upstream answered a body over the limit");
}

#[test]
fn a_client_that_stops_mid_body_times_out_and_the_upstream_connection_closes() {
    let up = TcpPeer::start(Mode::Hold);
    let h = proxy(up.port(), "proxy_request_buffering off; client_body_timeout 1s;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\npart");
    assert!(peer_got(&up, "part"), "{:?}", up.received_text());
    assert!(c.closed_within(Duration::from_secs(4)), "the client's connection stayed open");
    // halo answers 408 before closing; nginx closes without a response (README).
    if !c.buf.is_empty() {
        assert_eq!(parse(&c.buf).status, 408);
    }
    assert!(wait_until(Duration::from_secs(3), || up.ended() == 1), "the upstream connection was left open");
    assert!(wait_until(Duration::from_secs(3), || h.access_log().contains("\"POST /up HTTP/1.1\" 408 ")), "{}", h.access_log());
}

#[test]
fn an_upstream_that_stops_reading_a_streamed_body_times_out_504() {
    let up = TcpPeer::start(Mode::Script(vec![Step::Stall]));
    let h = proxy(up.port(), "proxy_request_buffering off; proxy_send_timeout 1s; client_max_body_size 0;");
    let mut c = h.connect();
    // More than the socket buffers between the proxy and the upstream hold.
    let len = 256u64 << 20;
    c.send(format!("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n"));
    let mut writer = c.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let piece = vec![b'z'; 1 << 16];
        for _ in 0..len / piece.len() as u64 {
            if std::io::Write::write_all(&mut writer, &piece).is_err() {
                return;
            }
        }
    });
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(c.read_response(false).status, 504);
    assert!(t.elapsed() >= Duration::from_millis(900), "answered before proxy_send_timeout: {:?}", t.elapsed());
    assert!(wait_until(Duration::from_secs(3), || h.error_log().contains("upstream timed out (110: Connection timed out) while sending request to upstream")), "{}", h.error_log());
}

#[test]
fn unbuffered_requests_keep_the_client_connection() {
    let up = HttpUpstream::start();
    let h = proxy(up.port(), "proxy_request_buffering off; proxy_http_version 1.1;");
    let mut c = h.connect();
    for i in 0..2 {
        c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nfirst");
        std::thread::sleep(Duration::from_millis(100));
        c.send(format!("-las{i}"));
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with(&format!("\n\nfirst-las{i}")), "{}", r.text());
        assert!(!r.closes());
    }
}

#[test]
fn an_upstream_answer_before_the_body_ends_is_relayed_and_the_body_stops() {
    let up = TcpPeer::start(Mode::Script(vec![
        Step::ReadUntil(b"first".to_vec()),
        send("HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope"),
        Step::Hold,
    ]));
    let h = proxy(up.port(), "proxy_request_buffering off; proxy_http_version 1.1;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nfirst");
    let r = c.read_response(false);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "nope");
    let _ = c.try_send("-more");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!up.received_text().contains("-more"), "{:?}", up.received_text());
}

#[test]
fn expect_100_continue_with_buffering_off() {
    let up = HttpUpstream::start();
    let h = proxy(up.port(), "proxy_request_buffering off;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.read_response(false).status, 100);
    c.send("hello");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    let echo = r.text().to_ascii_lowercase();
    assert!(echo.ends_with("\n\nhello"), "{echo}");
    assert!(!echo.contains("expect"), "{echo}");
}

#[test]
fn a_client_that_hangs_up_mid_body_is_400_and_the_upstream_connection_closes() {
    let up = TcpPeer::start(Mode::Hold);
    let h = proxy(up.port(), "proxy_request_buffering off;");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\npart");
    assert!(peer_got(&up, "part"), "{:?}", up.received_text());
    drop(c);
    assert!(wait_until(Duration::from_secs(3), || up.ended() == 1), "the upstream connection was left open");
    // Logged 400, as nginx does for a body cut short (buffered too).
    assert!(wait_until(Duration::from_secs(3), || h.access_log().contains("\"POST /up HTTP/1.1\" 400 ")), "{}", h.access_log());
    let h = proxy(up.port(), "");
    let mut c = h.connect();
    c.send("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\npart");
    std::thread::sleep(Duration::from_millis(100));
    drop(c);
    assert!(wait_until(Duration::from_secs(3), || h.access_log().contains("\"POST /up HTTP/1.1\" 400 ")), "{}", h.access_log());
    assert_eq!(up.accepted(), 1);
}

/// An `upstream {}` of a peer that resets the connection after the request
/// head, then `good`.
fn reset_then(good: u16, extra: &str) -> (TcpPeer, Halo) {
    let bad = TcpPeer::start(Mode::ResetAfter(16));
    let h = Halo::start(&format!(
        "upstream two {{ server 127.0.0.1:{}; server 127.0.0.1:{good}; }}
         server {{ listen {{{{PORT}}}}; location / {{ {extra} proxy_pass http://two; }} }}",
        bad.port()
    ));
    (bad, h)
}

/// A PUT (which may be repeated) whose body comes in two parts.
fn put_in_two_parts(h: &Halo) -> Response {
    let mut c = h.connect();
    c.send("PUT /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nfirst");
    std::thread::sleep(Duration::from_millis(300));
    // (The proxy may have given up already.)
    let _ = c.try_send("-last");
    c.read_response(false)
}

#[test]
fn a_streamed_body_is_not_sent_to_the_next_upstream() {
    let good = HttpUpstream::start();
    let (bad, h) = reset_then(good.port(), "proxy_request_buffering off;");
    assert_eq!(put_in_two_parts(&h).status, 502);
    assert_eq!(bad.accepted(), 1);
    assert_eq!(good.accepted(), 0, "the next upstream was tried");
}

#[test]
fn a_buffered_body_goes_to_the_next_upstream() {
    let good = HttpUpstream::start();
    let (bad, h) = reset_then(good.port(), "");
    let r = put_in_two_parts(&h);
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("\n\nfirst-last"), "{}", r.text());
    assert_eq!(bad.accepted(), 1);
}

#[test]
fn an_unbuffered_request_moves_on_when_nothing_was_sent() {
    let good = HttpUpstream::start();
    let refused = free_port();
    let h = Halo::start(&format!(
        "upstream two {{ server 127.0.0.1:{refused}; server 127.0.0.1:{}; }}
         server {{ listen {{{{PORT}}}}; location / {{ proxy_request_buffering off; proxy_pass http://two; }} }}",
        good.port()
    ));
    let r = put_in_two_parts(&h);
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("\n\nfirst-last"), "{}", r.text());
}

#[test]
fn proxy_request_buffering_takes_on_or_off() {
    let p = Prefix::new();
    let conf = server_conf("location / { proxy_request_buffering maybe; proxy_pass http://127.0.0.1:1; }");
    p.write_conf(&conf.replace("{{PORT}}", &free_port().to_string()));
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_contains(&err, "invalid value \"maybe\" in \"proxy_request_buffering\" directive, it must be \"on\" or \"off\"");
}
