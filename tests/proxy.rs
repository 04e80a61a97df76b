//! proxy_pass against a real upstream written here (a std TcpListener
//! answering per path): status, headers and bodies relayed (Content-Length,
//! chunked, close-delimited), nginx's URI rules, proxy_set_header, Host and
//! X-Forwarded-For, a POST body, HEAD, keep-alive reuse with
//! proxy_http_version 1.1, 502/504 with nginx's error-log lines, and the Lua
//! header/body filters over a proxied response, WebSocket upgrades tunnelled
//! both ways, proxy_next_upstream / _tries / _timeout over two-server
//! upstream blocks. Also run against nginx
//! (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The test upstream: counts accepted connections, answers by path.
struct Upstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                n.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(s));
            }
        });
        Upstream { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// One request: (head as text, body).
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            while buf.len() < i + 4 + len {
                let mut t = [0u8; 65536];
                let n = s.read(&mut t).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&t[..n]);
            }
            let body = buf[i + 4..i + 4 + len].to_vec();
            buf.drain(..i + 4 + len);
            return Some((head, body));
        }
        let mut t = [0u8; 65536];
        let n = s.read(&mut t).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&t[..n]);
    }
}

fn serve(mut s: TcpStream) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut s, &mut buf) {
        let line = head.lines().next().unwrap_or("").to_string();
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let keep = head.starts_with(line.as_str()) && line.ends_with("HTTP/1.1") && !head.to_ascii_lowercase().contains("connection: close");
        let conn = if keep { "" } else { "Connection: close\r\n" };
        let out: Vec<u8> = if path.contains("fixed") {
            format!("HTTP/1.1 200 Fine\r\nContent-Length: 5\r\nContent-Type: text/x-up\r\nX-Up: yes\r\nServer: upstream\r\n{conn}\r\nhello").into_bytes()
        } else if path.contains("chunked") {
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{conn}\r\n3\r\nabc\r\n3\r\ndef\r\n3\r\nghi\r\n0\r\n\r\n").into_bytes()
        } else if path.contains("close") {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nX-Close: 1\r\n\r\nuntil ");
            std::thread::sleep(Duration::from_millis(50));
            let _ = s.write_all(b"the end");
            return;
        } else if path.contains("slow") {
            std::thread::sleep(Duration::from_secs(3));
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec()
        } else if path.contains("reset") {
            let _ = socket_linger_zero(&s);
            return;
        } else if path.contains("garbage") {
            b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n".to_vec()
        } else if path.contains("widehead") {
            // A 6000-byte header: more than a 4k proxy_buffer_size holds.
            format!("HTTP/1.1 200 OK\r\nX-Wide: {}\r\nContent-Length: 4\r\n{conn}\r\nwide", "w".repeat(6000)).into_bytes()
        } else if path.contains("early") {
            return;
        } else if path.contains("short") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
            return;
        } else if path.contains("big") {
            let body: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{conn}\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            out
        } else if path.contains("moved") {
            format!("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n{conn}\r\n").into_bytes()
        } else if path.contains("missing") {
            format!("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n{conn}\r\nno such!\n").into_bytes()
        } else {
            let mut b = head.into_bytes();
            b.extend_from_slice(&body);
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{conn}\r\n", b.len()).into_bytes();
            out.extend_from_slice(&b);
            out
        };
        if s.write_all(&out).is_err() || !keep {
            return;
        }
    }
}

/// Close with a reset (SO_LINGER 0).
fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid linger struct on an open socket.
    let r = unsafe { libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&l as *const libc::linger).cast(), std::mem::size_of::<libc::linger>() as u32) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A server on {{PORT}} with `body` in it, UP replaced by the upstream's port.
fn server(up: &Upstream, http_extra: &str, body: &str) -> Halo {
    let body = body.replace("UP", &up.port.to_string());
    Halo::start(&format!("{http_extra}\n    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{body}\n    }}"))
}

fn req(h: &Halo, raw: &str) -> Response {
    h.get_response(raw)
}

#[test]
fn get_through_proxy_status_headers_body_and_variables() {
    let up = Upstream::start();
    let h = server(
        &up,
        "log_format up '$upstream_addr $upstream_status $proxy_host';",
        "location / { access_log logs/up.log up; proxy_pass http://127.0.0.1:UP; }",
    );
    let r = h.get("/fixed");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("X-Up"), Some("yes"));
    // The upstream's reason phrase goes through, as nginx passes its status line.
    assert_eq!(r.reason, "Fine");
    assert_eq!(r.header("Content-Type"), Some("text/x-up"));
    assert_eq!(r.header("Content-Length"), Some("5"));
    // The upstream's Server is hidden; the proxy's own goes out.
    assert_ne!(r.header("Server"), Some("upstream"));
    assert_eq!(r.headers_all("Server").len(), 1);
    let r = h.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no such!\n");
    let line = format!("127.0.0.1:{0} 200 127.0.0.1:{0}", up.port);
    assert!(h.wait_log("logs/up.log", &line, Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
    assert!(h.wait_log("logs/up.log", &format!("127.0.0.1:{} 404", up.port), Duration::from_secs(3)));
}

#[test]
fn uri_replacement_with_and_without_a_uri_part() {
    let up = Upstream::start();
    let h = server(
        &up,
        "",
        "location /a/ { proxy_pass http://127.0.0.1:UP/echo/; }\n\
         location /b/ { proxy_pass http://127.0.0.1:UP; }\n\
         location /c/ { rewrite ^/c/(.*)$ /echo-rewritten/$1 break; proxy_pass http://127.0.0.1:UP; }",
    );
    let r = h.get("/a/x/y?k=v&w=1");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert!(r.text().starts_with("GET /echo/x/y?k=v&w=1 HTTP/1.0\r\n"), "{}", r.text());
    // Without a URI part, the client's URI goes as it was sent.
    let r = h.get("/b/some%20thing?q=1");
    assert!(r.text().starts_with("GET /b/some%20thing?q=1 HTTP/1.0\r\n"), "{}", r.text());
    // A URI changed by rewrite goes whole, with the args.
    let r = h.get("/c/zz?a=b");
    assert!(r.text().starts_with("GET /echo-rewritten/zz?a=b HTTP/1.0\r\n"), "{}", r.text());
}

#[test]
fn request_headers_set_dropped_inherited_host_and_forwarded_for() {
    let up = Upstream::start();
    let h = server(
        &up,
        "proxy_set_header X-Http from-http;",
        "location /own/ { proxy_set_header X-Uri $uri; proxy_set_header User-Agent \"\"; \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_pass http://127.0.0.1:UP; }\n\
         location /inherit/ { proxy_pass http://127.0.0.1:UP; }\n\
         location /nohdr/ { proxy_pass_request_headers off; proxy_pass http://127.0.0.1:UP; }",
    );
    let raw = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tester\r\nX-Forwarded-For: 10.1.1.1\r\nX-Client: c1\r\nConnection: close\r\nKeep-Alive: 5\r\n\r\n");
    let r = req(&h, &raw("/own/q"));
    let t = r.text();
    assert!(t.contains("X-Uri: /own/q\r\n"), "{t}");
    assert!(!t.to_ascii_lowercase().contains("user-agent"), "{t}");
    assert!(t.contains("X-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n"), "{t}");
    assert!(t.contains(&format!("Host: 127.0.0.1:{}\r\n", up.port)), "{t}");
    assert!(t.contains("Connection: close\r\n"), "{t}");
    assert!(t.contains("X-Client: c1\r\n"), "{t}");
    assert!(!t.contains("Keep-Alive"), "{t}");
    // A level with its own proxy_set_header inherits none of the parent's.
    assert!(!t.contains("X-Http"), "{t}");
    let t = req(&h, &raw("/inherit/q")).text();
    assert!(t.contains("X-Http: from-http\r\n"), "{t}");
    assert!(t.contains("User-Agent: tester\r\n"), "{t}");
    let t = req(&h, &raw("/nohdr/q")).text();
    assert!(!t.contains("X-Client"), "{t}");
    assert!(t.contains(&format!("Host: 127.0.0.1:{}\r\n", up.port)), "{t}");
}

#[test]
fn request_body_reaches_the_upstream() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_pass http://127.0.0.1:UP; }\nlocation /nobody/ { proxy_pass_request_body off; proxy_set_header Content-Length \"\"; proxy_pass http://127.0.0.1:UP; }");
    let r = req(&h, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\nname=value");
    let t = r.text();
    assert!(t.starts_with("POST /echo HTTP/1.0\r\n"), "{t}");
    assert!(t.contains("Content-Length: 10\r\n"), "{t}");
    assert!(t.ends_with("\r\n\r\nname=value"), "{t}");
    // A chunked body is read whole and sent with its length.
    let r = req(&h, "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let t = r.text();
    assert!(t.contains("Content-Length: 11\r\n"), "{t}");
    assert!(!t.to_ascii_lowercase().contains("transfer-encoding"), "{t}");
    assert!(t.ends_with("\r\n\r\nhello world"), "{t}");
    // A large body (past client_body_buffer_size: from the temp file).
    let big = "x".repeat(200_000);
    let r = req(&h, &format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len()));
    assert!(r.text().ends_with(&format!("\r\n\r\n{big}")), "{}", h.logs());
    let r = req(&h, "POST /nobody/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert!(r.text().ends_with("\r\n\r\n"), "{}", r.text());
    assert!(!r.text().contains("Content-Length"), "{}", r.text());
}

#[test]
fn chunked_and_close_delimited_responses_and_head() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_pass http://127.0.0.1:UP; }");
    let r = h.get("/chunked");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "abcdefghi");
    let r = h.get("/close");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "until the end");
    assert_eq!(r.header("X-Close"), Some("1"));
    let r = req(&h, "HEAD /fixed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("5"));
    assert!(r.body.is_empty());
    // HTTP/1.0 clients get a chunked upstream body until the close.
    let r = req(&h, "GET /chunked HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.text(), "abcdefghi");
    assert!(!r.chunked);
    // A proxied Location goes as the upstream sent it (no proxy_redirect yet).
    let r = h.get("/moved");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("/elsewhere"));
    // Keep-alive to the client across proxied responses of each kind.
    let mut c = h.connect();
    for p in ["/fixed", "/chunked", "/close", "/fixed"] {
        c.send(format!("GET {p} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        let r = c.read_response(false);
        assert_eq!(r.status, 200, "{p}");
    }
}

#[test]
fn keepalive_upstream_connections_are_reused() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_http_version 1.1; proxy_pass http://127.0.0.1:UP; }");
    for i in 0..10 {
        let r = h.get(if i % 2 == 0 { "/fixed" } else { "/chunked" });
        assert_eq!(r.status, 200, "{}", h.logs());
    }
    // nginx keeps upstream connections only with an upstream{} block's
    // `keepalive` (and Connection ""); halo keeps a static proxy_pass's with
    // HTTP/1.1 (README).
    if is_nginx() {
        assert_eq!(up.accepted(), 10);
    } else {
        assert_eq!(up.accepted(), 1, "{}", h.logs());
    }
}

#[test]
fn refused_connect_is_502_with_the_log_line() {
    let port = free_port();
    let h = Halo::server(&format!("location / {{ proxy_pass http://127.0.0.1:{port}; }}"));
    let r = h.get("/x?a=1");
    assert_eq!(r.status, 502);
    let line = format!(
        "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: localhost, request: \"GET /x?a=1 HTTP/1.1\", upstream: \"http://127.0.0.1:{port}/x?a=1\", host: \"localhost\""
    );
    assert!(h.wait_log("logs/error.log", &line, Duration::from_secs(3)), "{}", h.error_log());
}

#[test]
fn read_timeout_is_504() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_read_timeout 1s; proxy_pass http://127.0.0.1:UP; }");
    let r = h.get("/slow");
    assert_eq!(r.status, 504);
    assert!(
        h.wait_log("logs/error.log", "upstream timed out (110: Connection timed out) while reading response header from upstream", Duration::from_secs(3)),
        "{}",
        h.error_log()
    );
}

#[test]
fn garbage_and_reset_are_502() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_pass http://127.0.0.1:UP; }");
    let r = h.get("/garbage");
    assert_eq!(r.status, 502);
    assert!(h.wait_log("logs/error.log", "upstream sent invalid header", Duration::from_secs(3)), "{}", h.error_log());
    let r = h.get("/reset");
    assert_eq!(r.status, 502);
    assert!(h.wait_log("logs/error.log", "(104: Connection reset by peer) while reading response header from upstream", Duration::from_secs(3)), "{}", h.error_log());
}

#[test]
fn a_head_over_proxy_buffer_size_is_502() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_buffer_size 4k; proxy_buffers 4 4k; proxy_busy_buffers_size 4k; proxy_pass http://127.0.0.1:UP; }\n\
         location /roomy/ { proxy_buffer_size 16k; proxy_buffers 4 16k; proxy_busy_buffers_size 16k; proxy_pass http://127.0.0.1:UP; }");
    let r = h.get("/widehead");
    assert_eq!(r.status, 502);
    assert!(h.wait_log("logs/error.log", "upstream sent too big header while reading response header from upstream", Duration::from_secs(3)), "{}", h.error_log());
    let r = h.get("/roomy/widehead");
    assert_eq!((r.status, r.header("x-wide").map(str::len), r.text().as_str()), (200, Some(6000), "wide"));
}

#[test]
fn lua_filters_over_a_proxied_response() {
    let up = Upstream::start();
    let h = server(
        &up,
        "",
        "location / { proxy_pass http://127.0.0.1:UP;\n\
         header_filter_by_lua_block { ngx.header[\"X-Filtered\"] = ngx.var.upstream_status }\n\
         body_filter_by_lua_block { ngx.arg[1] = string.upper(ngx.arg[1]) } }",
    );
    let r = h.get("/fixed");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.header("X-Filtered"), Some("200"));
    assert_eq!(r.text(), "HELLO");
    let r = h.get("/chunked");
    assert_eq!(r.text(), "ABCDEFGHI");
}

#[test]
fn intercept_errors_uses_error_page() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_intercept_errors on; error_page 404 = @nf; proxy_pass http://127.0.0.1:UP; }\nlocation @nf { return 200 intercepted; }");
    let r = h.get("/missing");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "intercepted");
}

#[test]
fn early_close_is_502_and_a_short_body_is_cut() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_pass http://localhost:UP; }");
    let r = h.get("/early");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert!(
        h.wait_log("logs/error.log", "upstream prematurely closed connection while reading response header from upstream", Duration::from_secs(3)),
        "{}",
        h.error_log()
    );
    // The head went out with its length; the body stops short and the
    // connection closes.
    let mut c = h.connect();
    c.send("GET /short HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let err = c.try_read_response(false).unwrap_err();
    assert!(err.contains("Content-Length: 100") && err.contains("only this"), "{err}");
    assert!(h.wait_log("logs/error.log", "upstream prematurely closed connection while reading upstream", Duration::from_secs(3)), "{}", h.error_log());
}

#[test]
fn a_subrequest_to_a_proxied_location() {
    let up = Upstream::start();
    let h = server(
        &up,
        "",
        "location /p/ { proxy_pass http://127.0.0.1:UP/; }\n\
         location /cap { content_by_lua_block {\n\
           local r = ngx.location.capture(\"/p/fixed\")\n\
           local c = ngx.location.capture(\"/p/chunked\")\n\
           ngx.say(r.status, \" \", r.body, \" \", r.header[\"X-Up\"], \" \", c.body)\n\
         } }",
    );
    let r = h.get("/cap");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "200 hello yes abcdefghi\n");
}

#[test]
fn a_client_gone_while_the_upstream_works_ends_the_request() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_read_timeout 10s; proxy_pass http://127.0.0.1:UP; }");
    {
        let mut c = h.connect();
        c.send("GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Logged at once, not when the upstream answers (3 s) or times out.
    assert!(
        h.wait_log("logs/error.log", "client prematurely closed connection, so upstream connection is closed too while sending request to upstream", Duration::from_secs(2)),
        "{}",
        h.error_log()
    );
    assert!(h.wait_log("logs/access.log", "\"GET /slow HTTP/1.1\" 499", Duration::from_secs(3)), "{}", h.access_log());
}

#[test]
fn a_large_body_streams_through() {
    let up = Upstream::start();
    let h = server(&up, "", "location / { proxy_http_version 1.1; proxy_pass http://127.0.0.1:UP; }");
    let want: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..2 {
        let r = h.get("/big");
        assert_eq!(r.status, 200, "{}", h.logs());
        assert_eq!(r.header("Content-Length"), Some("3000000"));
        assert!(r.body == want, "{} bytes", r.body.len());
    }
    if !is_nginx() {
        assert_eq!(up.accepted(), 1);
    }
}

#[test]
fn an_upstream_block_balances_its_servers_by_weight() {
    let (a, b) = (Upstream::start(), Upstream::start());
    let h = Halo::start(&format!(
        "upstream backend {{ server 127.0.0.1:{} weight=2; server 127.0.0.1:{}; }}\n\
         log_format up '$upstream_addr';\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ access_log logs/up.log up; proxy_pass http://backend; }}\n}}",
        a.port, b.port
    ));
    for _ in 0..6 {
        let r = h.get("/fixed");
        assert_eq!(r.status, 200, "{}", h.logs());
        assert_eq!(r.text(), "hello");
    }
    // HTTP/1.0 to the upstream: one connection per request, 4 to a, 2 to b.
    assert!(wait_until(Duration::from_secs(3), || a.accepted() == 4 && b.accepted() == 2), "a {} b {}", a.accepted(), b.accepted());
    assert!(h.wait_log("logs/up.log", &format!("127.0.0.1:{}", b.port), Duration::from_secs(3)));
}

#[test]
fn a_refused_peer_is_tried_then_the_next_one_answers() {
    let good = Upstream::start();
    let dead = free_port();
    let h = Halo::start(&format!(
        "upstream backend {{ server 127.0.0.1:{dead}; server 127.0.0.1:{}; }}\n\
         log_format up '$upstream_addr $upstream_status';\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ access_log logs/up.log up; proxy_pass http://backend; }}\n}}",
        good.port
    ));
    for _ in 0..4 {
        let r = h.get("/fixed");
        assert_eq!(r.status, 200, "{}", h.logs());
    }
    // The first request tried the dead peer, logged its failure, then the
    // good one: $upstream_addr lists both.
    assert!(h.wait_log("logs/up.log", &format!("127.0.0.1:{dead}, 127.0.0.1:{} ", good.port), Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
    assert!(h.error_log().contains("connect() failed (111: Connection refused) while connecting to upstream"));
    assert_eq!(good.accepted(), 4);
}

#[test]
fn every_peer_down_is_502() {
    let (d1, d2) = (free_port(), free_port());
    let h = Halo::start(&format!(
        "upstream backend {{ server 127.0.0.1:{d1}; server 127.0.0.1:{d2}; }}\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_pass http://backend; }}\n}}"
    ));
    assert_eq!(h.get("/x").status, 502);
    assert_eq!(h.get("/x").status, 502);
}

#[test]
fn balancer_by_lua_picks_the_peer_by_header() {
    let (a, b) = (Upstream::start(), Upstream::start());
    let h = Halo::start(&format!(
        "upstream backend {{\n server 0.0.0.1;\n balancer_by_lua_block {{\n\
             local balancer = require \"ngx.balancer\"\n\
             local port = ngx.var.http_x_peer == \"b\" and {} or {}\n\
             assert(balancer.set_current_peer(\"127.0.0.1\", port))\n\
         }}\n}}\n\
         log_format up '$upstream_addr';\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ access_log logs/up.log up; proxy_pass http://backend; }}\n}}",
        b.port, a.port
    ));
    for peer in ["a", "b", "b", "a", "b"] {
        let r = h.get_response(format!("GET /fixed HTTP/1.1\r\nHost: localhost\r\nX-Peer: {peer}\r\n\r\n"));
        assert_eq!(r.status, 200, "{}", h.logs());
    }
    assert!(wait_until(Duration::from_secs(3), || a.accepted() == 2 && b.accepted() == 3), "a {} b {}", a.accepted(), b.accepted());
}

#[test]
fn balancer_by_lua_is_called_again_for_the_next_try() {
    let good = Upstream::start();
    let dead = free_port();
    let h = Halo::start(&format!(
        "upstream backend {{\n server 0.0.0.1;\n balancer_by_lua_block {{\n\
             local balancer = require \"ngx.balancer\"\n\
             local state, status = balancer.get_last_failure()\n\
             ngx.log(ngx.ERR, \"balancer try: \", tostring(state), \" \", tostring(status))\n\
             if not state then\n\
                 balancer.set_more_tries(1)\n\
                 assert(balancer.set_current_peer(\"127.0.0.1\", {dead}))\n\
             else\n\
                 assert(balancer.set_current_peer(\"127.0.0.1\", {}))\n\
             end\n\
         }}\n}}\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_pass http://backend; }}\n}}",
        good.port
    ));
    let r = h.get("/fixed");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "hello");
    let log = h.error_log();
    assert!(log.contains("balancer try: nil nil"), "{log}");
    assert!(log.contains("balancer try: failed 502"), "{log}");
    assert!(log.contains("connect() failed (111: Connection refused) while connecting to upstream"), "{log}");
}

/// An upstream for Upgrade requests: a request with `Upgrade: websocket`
/// and `Connection: upgrade` to /ws gets a 101, then what it receives comes
/// back uppercased until the proxy closes (counted in `closed`); others get
/// a 403 with a body.
struct Upgrader {
    port: u16,
    closed: Arc<AtomicUsize>,
}

impl Upgrader {
    fn start() -> Upgrader {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let closed = Arc::new(AtomicUsize::new(0));
        let c = closed.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let Some((head, _)) = read_request(&mut s, &mut buf) else { return };
                    let lower = head.to_ascii_lowercase();
                    if !(head.starts_with("GET /ws") && lower.contains("\r\nupgrade: websocket\r\n") && lower.contains("\r\nconnection: upgrade\r\n")) {
                        let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\nConnection: close\r\n\r\nrefused\n");
                        return;
                    }
                    let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
                    let mut pending = buf;
                    loop {
                        if !pending.is_empty() {
                            let up = pending.to_ascii_uppercase();
                            if s.write_all(&up).is_err() {
                                break;
                            }
                            pending.clear();
                        }
                        let mut t = [0u8; 4096];
                        match s.read(&mut t) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => pending.extend_from_slice(&t[..n]),
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upgrader { port, closed }
    }
}

const WS_LOCATION: &str = "location / { proxy_pass http://127.0.0.1:UP; proxy_http_version 1.1; \
     proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; proxy_read_timeout 1s; }";

fn ws_server(up: &Upgrader) -> Halo {
    let body = WS_LOCATION.replace("UP", &up.port.to_string());
    Halo::start(&format!("server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{body}\n    }}"))
}

/// Read from `s` until `want` bytes came (or the stream ends).
fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let mut t = [0u8; 4096];
        match s.read(&mut t) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&t[..n]),
        }
    }
    got
}

/// The response head (up to the blank line) and what followed it.
fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            return (String::from_utf8_lossy(&got[..i + 4]).into_owned(), got[i + 4..].to_vec());
        }
        let mut t = [0u8; 4096];
        match s.read(&mut t) {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&got).into_owned(), Vec::new()),
            Ok(n) => got.extend_from_slice(&t[..n]),
        }
    }
}

#[test]
fn a_websocket_upgrade_is_tunnelled_both_ways() {
    let up = Upgrader::start();
    let h = ws_server(&up);
    let mut s = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Bytes sent with the head go through once the tunnel is up.
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly;").unwrap();
    let (head, mut rest) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}\n{}", h.logs());
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"), "{head}");
    rest.extend(read_n(&mut s, 6 - rest.len()));
    assert_eq!(rest, b"EARLY;");
    for msg in ["hello", "second message", &"x".repeat(100_000)] {
        s.write_all(msg.as_bytes()).unwrap();
        let got = read_n(&mut s, msg.len());
        assert_eq!(String::from_utf8_lossy(&got), msg.to_ascii_uppercase());
    }
    assert_eq!(up.closed.load(Ordering::SeqCst), 0);
    drop(s);
    // The client's close closes the upstream connection (never pooled).
    assert!(wait_until(Duration::from_secs(3), || up.closed.load(Ordering::SeqCst) == 1), "{}", h.logs());
}

#[test]
fn an_idle_tunnel_ends_after_proxy_read_timeout() {
    let up = Upgrader::start();
    let h = ws_server(&up);
    let mut s = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n").unwrap();
    let (head, _) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut s, 4), b"PING");
    // Nothing moves for proxy_read_timeout (1s): both sides are closed.
    let started = std::time::Instant::now();
    let mut t = [0u8; 16];
    assert_eq!(s.read(&mut t).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(wait_until(Duration::from_secs(3), || up.closed.load(Ordering::SeqCst) == 1), "{}", h.logs());
    assert!(h.wait_log("logs/error.log", "upstream timed out (110: Connection timed out) while proxying upgraded connection", Duration::from_secs(3)), "{}", h.error_log());
}

#[test]
fn a_refused_upgrade_is_a_normal_response() {
    let up = Upgrader::start();
    let h = ws_server(&up);
    // The upstream answers 403 to an Upgrade request it does not take.
    let r = req(&h, "GET /other HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    assert_eq!(r.status, 403, "{}", h.logs());
    assert_eq!(r.text(), "refused\n");
    // The client's connection goes on with the next request.
    let mut s = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /nows HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
    let (head, body) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let mut body = body;
    body.extend(read_n(&mut s, 8 - body.len()));
    assert_eq!(body, b"refused\n");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
    let (head, _) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s.write_all(b"abc").unwrap();
    assert_eq!(read_n(&mut s, 3), b"ABC");
}

/// An upstream that answers every request with `status` and a body naming
/// it, then closes; counts the requests and keeps their methods.
struct Fixed {
    port: u16,
    methods: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Fixed {
    fn start(status: u16) -> Fixed {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let methods = Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = methods.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let m = m.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let Some((head, _)) = read_request(&mut s, &mut buf) else { return };
                    m.lock().unwrap().push(head.split(' ').next().unwrap_or("").to_string());
                    let body = format!("{status} from {port}\n");
                    let _ = s.write_all(format!("HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
                });
            }
        });
        Fixed { port, methods }
    }

    fn requests(&self) -> usize {
        self.methods.lock().unwrap().len()
    }
}

/// A server with upstream blocks `NAME { server FIRST; server SECOND; }`
/// (one per location, so each starts at its first server) and `body`.
fn two_peer_server(blocks: &[(&str, u16, u16)], body: &str) -> Halo {
    let mut ups = String::new();
    for (name, a, b) in blocks {
        ups.push_str(&format!("upstream {name} {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}\n"));
    }
    Halo::start(&format!(
        "{ups}log_format up '$request_uri $upstream_addr $upstream_status';\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n access_log logs/up.log up;\n{body}\n}}"
    ))
}

#[test]
fn next_upstream_http_503_tries_the_next_server() {
    let (bad, good) = (Fixed::start(503), Fixed::start(200));
    let (bad2, good2) = (Fixed::start(503), Fixed::start(200));
    let h = two_peer_server(
        &[("b1", bad.port, good.port), ("b2", bad2.port, good2.port)],
        "location /next { proxy_next_upstream error timeout http_503; proxy_pass http://b1; }\n\
         location /default { proxy_pass http://b2; }",
    );
    let r = h.get("/next");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), format!("200 from {}\n", good.port));
    assert_eq!((bad.requests(), good.requests()), (1, 1));
    let line = format!("/next 127.0.0.1:{}, 127.0.0.1:{} 503, 200", bad.port, good.port);
    assert!(h.wait_log("logs/up.log", &line, Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
    // Without http_503 the answer is relayed as it is.
    let r = h.get("/default");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), format!("503 from {}\n", bad2.port));
    assert_eq!(good2.requests(), 0);
    assert!(h.wait_log("logs/up.log", &format!("/default 127.0.0.1:{} 503", bad2.port), Duration::from_secs(3)));
}

#[test]
fn next_upstream_off_answers_the_first_failure() {
    let good = Fixed::start(200);
    let dead = free_port();
    let h = two_peer_server(&[("b1", dead, good.port), ("b2", dead, good.port)], "location /off { proxy_next_upstream off; proxy_pass http://b1; }\nlocation /on { proxy_pass http://b2; }");
    let r = h.get("/off");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert_eq!(good.requests(), 0);
    assert!(h.wait_log("logs/up.log", &format!("/off 127.0.0.1:{dead} 502"), Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
    // The default (error timeout) goes on to the next server.
    let r = h.get("/on");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert!(h.wait_log("logs/up.log", &format!("/on 127.0.0.1:{dead}, 127.0.0.1:{} 502, 200", good.port), Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
}

#[test]
fn next_upstream_tries_limits_the_tries() {
    let (bad, good) = (Fixed::start(503), Fixed::start(200));
    let dead = free_port();
    let h = two_peer_server(
        &[("b1", bad.port, good.port), ("b2", dead, good.port)],
        "location /status { proxy_next_upstream http_503; proxy_next_upstream_tries 1; proxy_pass http://b1; }\n\
         location /refused { proxy_next_upstream_tries 1; proxy_pass http://b2; }",
    );
    // The last try's answer is relayed, even one that would move on.
    let r = h.get("/status");
    assert_eq!(r.status, 503, "{}", h.logs());
    assert_eq!(r.text(), format!("503 from {}\n", bad.port));
    let r = h.get("/refused");
    assert_eq!(r.status, 502);
    assert_eq!(good.requests(), 0);
    assert!(h.wait_log("logs/up.log", &format!("/refused 127.0.0.1:{dead} 502"), Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
}

#[test]
fn a_post_is_retried_after_it_was_sent_only_with_non_idempotent() {
    let (bad, good) = (Fixed::start(503), Fixed::start(200));
    let (bad2, good2) = (Fixed::start(503), Fixed::start(200));
    let (early, good3) = (Upstream::start(), Fixed::start(200));
    let (early4, good4) = (Upstream::start(), Fixed::start(200));
    let h = two_peer_server(
        &[("b1", bad.port, good.port), ("b2", bad2.port, good2.port), ("b3", early.port, good3.port), ("b4", early4.port, good4.port)],
        "location /plain { proxy_next_upstream error timeout http_503; proxy_pass http://b1; }\n\
         location /nonidem { proxy_next_upstream error timeout http_503 non_idempotent; proxy_pass http://b2; }\n\
         location /early-plain { proxy_pass http://b3; }\n\
         location /early-nonidem { proxy_next_upstream error timeout non_idempotent; proxy_pass http://b4; }",
    );
    let post = |path: &str| req(&h, &format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"));
    let r = post("/plain");
    assert_eq!(r.status, 503, "{}", h.logs());
    assert_eq!(good.requests(), 0);
    assert_eq!(*bad.methods.lock().unwrap(), ["POST"]);
    let r = post("/nonidem");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), format!("200 from {}\n", good2.port));
    assert_eq!(*good2.methods.lock().unwrap(), ["POST"]);
    // An upstream that closes without an answer: 502 for a POST...
    let r = post("/early-plain");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert_eq!(good3.requests(), 0);
    // ... unless non_idempotent.
    let r = post("/early-nonidem");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(good4.requests(), 1);
    let line = format!("/early-nonidem 127.0.0.1:{}, 127.0.0.1:{} 502, 200", early4.port, good4.port);
    assert!(h.wait_log("logs/up.log", &line, Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
}

#[test]
fn balancer_by_lua_sees_a_status_that_moved_on() {
    let (bad, good) = (Fixed::start(503), Fixed::start(200));
    let h = Halo::start(&format!(
        "upstream backend {{\n server 0.0.0.1;\n balancer_by_lua_block {{\n\
             local balancer = require \"ngx.balancer\"\n\
             local state, status = balancer.get_last_failure()\n\
             ngx.log(ngx.ERR, \"balancer try: \", tostring(state), \" \", tostring(status))\n\
             if not state then\n\
                 balancer.set_more_tries(1)\n\
                 assert(balancer.set_current_peer(\"127.0.0.1\", {}))\n\
             else\n\
                 assert(balancer.set_current_peer(\"127.0.0.1\", {}))\n\
             end\n\
         }}\n}}\n\
         proxy_next_upstream error timeout http_503;\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_pass http://backend; }}\n}}",
        bad.port, good.port
    ));
    // proxy_next_upstream set at http level holds in the location.
    let r = h.get("/x");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), format!("200 from {}\n", good.port));
    let log = h.error_log();
    // nginx counts a 5xx that moved on as the peer's failure.
    assert!(log.contains("balancer try: failed 503"), "{log}");
}

#[test]
fn next_upstream_timeout_stops_the_tries() {
    let (slow, good) = (Upstream::start(), Fixed::start(200));
    let (slow2, good2) = (Upstream::start(), Fixed::start(200));
    let h = two_peer_server(
        &[("b1", slow.port, good.port), ("b2", slow2.port, good2.port)],
        "proxy_read_timeout 500ms;\n\
         location /slow-limited { proxy_next_upstream_timeout 300ms; proxy_pass http://b1; }\n\
         location /slow-unlimited { proxy_pass http://b2; }",
    );
    let r = h.get("/slow-limited");
    assert_eq!(r.status, 504, "{}", h.logs());
    assert_eq!(good.requests(), 0);
    let r = h.get("/slow-unlimited");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert!(h.wait_log("logs/up.log", &format!("/slow-unlimited 127.0.0.1:{}, 127.0.0.1:{} 504, 200", slow2.port, good2.port), Duration::from_secs(3)), "{}", h.prefix.read_file("logs/up.log"));
}
