//! HTTP/1.x connection handling: keep-alive, pipelining, request bodies, 100-continue, HEAD,
//! absolute-form targets, standard headers and error pages. nginx is the oracle.

mod common;
use common::*;
use std::time::{Duration, Instant, SystemTime};

fn server(extra: &str) -> Halo {
    Halo::server(&format!(
        r#"
        {extra}
        location / {{ return 200 "uri=$uri\n"; }}
        location = /hello {{ return 200 "hello\n"; }}
        location = /post {{ return 200 "ok"; }}
        "#
    ))
}

const GET_HELLO: &str = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let h = server("");
    let mut c = h.connect();
    for i in 0..5 {
        c.send(format!("GET /k{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("uri=/k{i}\n"));
        assert!(!r.closes(), "response {i} closes the connection: {:?}", r.headers);
    }
    assert!(!c.closed_within(Duration::from_millis(200)), "server closed a keep-alive connection");
}

#[test]
fn keepalive_requests_limit_closes_connection() {
    let h = server("keepalive_requests 3;");
    let mut c = h.connect();
    for i in 0..3 {
        c.send(GET_HELLO);
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.closes(), i == 2, "request {i}: {:?}", r.headers);
    }
    assert!(c.closed_within(Duration::from_secs(3)), "connection not closed after keepalive_requests");
}

#[test]
fn keepalive_timeout_closes_idle_connection() {
    let h = server("keepalive_timeout 1s;");
    let mut c = h.connect();
    c.send(GET_HELLO);
    assert_eq!(c.read_response(false).status, 200);
    let t = Instant::now();
    assert!(c.closed_within(Duration::from_secs(4)), "idle connection not closed");
    assert!(t.elapsed() >= Duration::from_millis(700), "closed too early: {:?}", t.elapsed());
}

#[test]
fn connection_close_request_header() {
    let h = server("");
    let mut c = h.connect();
    c.send("GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(3)));
}

#[test]
fn http10_closes_by_default() {
    let h = server("");
    let mut c = h.connect();
    c.send("GET /hello HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(3)));
}

#[test]
fn http10_keep_alive() {
    let h = server("");
    let mut c = h.connect();
    c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").map(|v| v.to_ascii_lowercase()), Some("keep-alive".into()));
    c.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "uri=/again\n");
    c.send("GET /last HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "uri=/last\n");
    assert!(c.closed_within(Duration::from_secs(3)));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let h = server("");
    let mut c = h.connect();
    let mut all = String::new();
    for i in 0..20 {
        all.push_str(&format!("GET /p{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    }
    c.send(all);
    for i in 0..20 {
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("uri=/p{i}\n"));
    }
}

#[test]
fn pipelined_requests_split_at_odd_places() {
    let h = server("");
    let mut c = h.connect();
    let all = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHo".to_string();
    c.send(all);
    std::thread::sleep(Duration::from_millis(50));
    c.send("st: localhost\r\n\r\nGET /c HTTP/1.1\r\nHost: localhost\r\n\r\n");
    for p in ["/a", "/b", "/c"] {
        assert_eq!(c.read_response(false).text(), format!("uri={p}\n"));
    }
}

#[test]
fn post_with_content_length_body_is_consumed() {
    let h = server("");
    let mut c = h.connect();
    let body = "x".repeat(5000);
    c.send(format!("POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    // The body was read (or discarded): the next request on the connection parses cleanly.
    c.send(GET_HELLO);
    assert_eq!(c.read_response(false).text(), "hello\n");
}

#[test]
fn post_body_sent_after_a_pause_is_consumed() {
    let h = server("");
    let mut c = h.connect();
    c.send("POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234");
    std::thread::sleep(Duration::from_millis(100));
    c.send("56789");
    c.send(GET_HELLO);
    let r = c.read_response(false);
    assert_eq!(r.text(), "ok");
    assert_eq!(c.read_response(false).text(), "hello\n");
}

#[test]
fn post_with_chunked_body_is_consumed() {
    let h = server("");
    let mut c = h.connect();
    c.send(
        "POST /post HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    c.send(GET_HELLO);
    assert_eq!(c.read_response(false).text(), "hello\n");
}

#[test]
fn expect_100_continue() {
    let h = server("");
    let mut c = h.connect();
    c.send("POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    // The interim response comes before we send the body.
    let interim = c.read_response(false);
    assert_eq!(interim.status, 100);
    assert_eq!(interim.version, 1);
    c.send("data");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    c.send(GET_HELLO);
    assert_eq!(c.read_response(false).text(), "hello\n");
}

#[test]
fn head_request_has_headers_but_no_body() {
    let h = server("");
    let mut c = h.connect();
    c.send("HEAD /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("6"));
    // Nothing follows the headers: the next response starts right away.
    c.send(GET_HELLO);
    let r = c.read_response(false);
    assert_eq!(r.text(), "hello\n");
    assert!(c.buf.is_empty());
}

#[test]
fn absolute_form_target_picks_host_from_uri() {
    let h = Halo::start(
        r#"
    server { listen 127.0.0.1:{{PORT}}; server_name localhost; return 200 "localhost $uri $host"; }
    server { listen 127.0.0.1:{{PORT}}; server_name other.test; return 200 "other $uri $host"; }
"#,
    );
    // The host in the request target wins over the Host header.
    let r = h.get_response("GET http://other.test/abs/path?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "other /abs/path other.test");
}

#[test]
fn date_and_server_headers() {
    let h = server("");
    let r = h.get("/hello");
    let server = r.header("server").expect("no Server header");
    assert!(server.starts_with(&prog()), "Server: {server}");
    let date = httpdate::parse_http_date(r.header("date").expect("no Date header")).expect("bad Date");
    let skew = SystemTime::now().duration_since(date).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(5), "Date is off by {skew:?}");
}

#[test]
fn server_tokens_off_hides_version() {
    let h = server("server_tokens off;");
    let r = h.get("/hello");
    assert_eq!(r.header("server"), Some(prog().as_str()));
    let r = h.get_response("GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn nginx_style_html_error_page() {
    let h = Halo::server("        root html;");
    let r = h.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.reason, "Not Found");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let body = r.text();
    assert_contains(&body, "<head><title>404 Not Found</title></head>");
    assert_contains(&body, "<center><h1>404 Not Found</h1></center>");
    assert_contains(&body, &format!("<hr><center>{}", prog()));
    // An error response keeps the connection alive when the request allows it.
    let mut c = h.connect();
    c.send("GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).status, 404);
    c.send("GET /missing2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).status, 404);
}

#[test]
fn status_line_reason_phrases() {
    let h = Halo::server(
        r#"
        location /a { return 201 "c"; }
        location /b { return 403; }
        location /c { return 503; }
        "#,
    );
    let r = h.get("/a");
    assert_eq!((r.status, r.reason.as_str()), (201, "Created"));
    let r = h.get("/b");
    assert_eq!((r.status, r.reason.as_str()), (403, "Forbidden"));
    let r = h.get("/c");
    assert_eq!((r.status, r.reason.as_str()), (503, "Service Temporarily Unavailable"));
}

#[test]
fn many_concurrent_connections() {
    let h = server("");
    let port = h.port;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                for i in 0..25 {
                    c.send(format!("GET /t{t}/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
                    assert_eq!(c.read_response(false).text(), format!("uri=/t{t}/{i}\n"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
