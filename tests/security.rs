//! Hostile input that targets other requests or the response itself: request smuggling
//! through control bytes and tabs in framing headers, response splitting through header
//! values set from Lua, statuses that would wrap, and answers that must not depend on how
//! the bytes are split into reads. nginx + lua-nginx-module is the oracle, except where a
//! branch on `is_nginx()` names a deliberate difference (README, "Differences").

mod common;
use common::*;
use std::time::Duration;

const CONF: &str = r#"
        location /x { return 200 "x\n"; }
        location /y { return 200 "smuggled\n"; }
        location /echo {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.say(ngx.req.get_method(), " ", ngx.var.request_uri, " ", ngx.var.http_x_a or "-",
                        " [", ngx.req.get_body_data() or "", "]")
            }
        }
        location / { return 200 "ok\n"; }
"#;

/// Sends `raw` on a new connection; returns every response received before the server
/// closed it.
fn responses_until_close(h: &Halo, raw: &[u8]) -> Vec<Response> {
    let mut c = h.connect();
    let _ = c.try_send(raw);
    let bytes = c.read_to_close();
    assert!(c.eof, "connection left open after {:?}", String::from_utf8_lossy(raw));
    parse_all(&bytes, false, true)
}

/// The one answer to `raw` is `status`, and nothing else follows it.
#[track_caller]
fn only_answer(h: &Halo, raw: &[u8], status: u16) {
    let rs = responses_until_close(h, raw);
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [status], "for {:?}", String::from_utf8_lossy(raw));
    assert!(!rs[0].text().contains("smuggled"));
}

#[test]
fn control_bytes_in_framing_headers_smuggle_nothing() {
    let h = Halo::server(CONF);
    let inner = "GET /y HTTP/1.1\r\nHost: a\r\n\r\n";
    let cl = format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {}\x0b\r\n\r\n{inner}", inner.len());
    only_answer(&h, cl.as_bytes(), 400);
    let te = format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\nContent-Length: {}\r\n\r\n{inner}", inner.len());
    only_answer(&h, te.as_bytes(), 501);
    only_answer(&h, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: evil\x01\r\n\r\n", 400);
    // Every control byte that can stand in a value, in each framing header.
    for c in (1u8..0x20).filter(|c| ![b'\t', b'\r', b'\n'].contains(c)).chain([0x7f]) {
        let c = c as char;
        let cl = format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {}{c}\r\n\r\n{inner}", inner.len());
        only_answer(&h, cl.as_bytes(), 400);
        let te = format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked{c}\r\n\r\n0\r\n\r\n{inner}");
        only_answer(&h, te.as_bytes(), 501);
        only_answer(&h, format!("GET /x HTTP/1.1\r\nHost: a{c}\r\n\r\n").as_bytes(), 400);
    }
    // Elsewhere such a byte is kept in the value (nginx does the same).
    let r = h.get_response("GET /echo HTTP/1.1\r\nHost: a\r\nX-A: 1\x0b2\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "GET /echo 1\x0b2 []\n");
}

#[test]
fn tabs_around_framing_values_are_rejected() {
    let h = Halo::server(CONF);
    only_answer(&h, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 501);
    only_answer(&h, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", 501);
    only_answer(&h, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:\t2\r\n\r\nab", 400);
    only_answer(&h, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\t\r\n\r\nab", 400);
    only_answer(&h, b"GET /x HTTP/1.1\r\nHost:\ta\r\n\r\n", 400);
}

/// The header lines of the raw response to `path` (Connection: close).
fn raw_head(h: &Halo, path: &str) -> String {
    let bytes = h.request(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

/// No line of the head starts a forged header, and the head has no bare CR or LF.
#[track_caller]
fn no_forged_line(head: &str) {
    for line in head.split("\r\n") {
        assert!(!line.to_ascii_lowercase().starts_with("set-cookie"), "forged header line in {head:?}");
        assert!(!line.contains('\r') && !line.contains('\n'), "bare CR/LF in {head:?}");
    }
}

#[test]
fn lua_header_values_cannot_split_the_response() {
    let h = Halo::server(
        r#"
        location /value { content_by_lua_block { ngx.header["X-A"] = ngx.req.get_uri_args().v ngx.say("ok") } }
        location /table { content_by_lua_block { ngx.header["X-A"] = { "first", ngx.req.get_uri_args().v } ngx.say("ok") } }
        location /type { content_by_lua_block { ngx.header.content_type = ngx.req.get_uri_args().v ngx.say("ok") } }
        location /redirect { content_by_lua_block { return ngx.redirect(ngx.req.get_uri_args().v) } }
        location /req {
            content_by_lua_block {
                ngx.req.set_header("X-A", ngx.req.get_uri_args().v)
                ngx.say(ngx.var.http_x_a)
            }
        }
        location /name {
            content_by_lua_block {
                local ok, err = pcall(function() ngx.header["X-A\r\nSet-Cookie: x"] = "1" end)
                ngx.say(ok and "set" or err)
            }
        }
        location /nul {
            content_by_lua_block {
                local ok, err = pcall(function() ngx.header["X-A"] = "a\0b" end)
                ngx.say(ok and "set" or err)
            }
        }
        "#,
    );
    let forged = "v=%2Fhome%0D%0ASet-Cookie:%20session=evil%0d%0a%0d%0a<html>";
    let escaped = "/home%0D%0ASet-Cookie: session=evil%0D%0A%0D%0A<html>";
    for path in ["/value", "/table", "/type", "/redirect"] {
        let head = raw_head(&h, &format!("{path}?{forged}"));
        no_forged_line(&head);
        // lua-nginx-module 0.10.2x refuses such a redirect target (500, "unsafe byte");
        // halo escapes it, as the issue of its security review asks (README).
        if !(is_nginx() && path == "/redirect") {
            assert!(head.contains(escaped), "{path}: {head:?}");
        }
    }
    let r = h.get(&format!("/req?{forged}"));
    assert_eq!(r.text(), format!("{escaped}\n"));

    // Names that are not tokens (halo refuses them; lua-nginx-module escapes them).
    let head = raw_head(&h, "/name");
    no_forged_line(&head);
    let r = h.get("/name");
    if !is_nginx() {
        assert_contains(&r.text(), "invalid header name");
        assert_contains(&h.get("/nul").text(), "invalid header value");
    }
}

#[test]
fn statuses_never_wrap() {
    let h = Halo::server(
        r#"
        location /exit { content_by_lua_block { ngx.exit(tonumber(ngx.var.arg_s)) } }
        location /status {
            content_by_lua_block {
                local ok = pcall(function() ngx.status = tonumber(ngx.var.arg_s) end)
                ngx.say(ok and "set" or "refused")
            }
        }
        location /redirect { content_by_lua_block { ngx.redirect("/x", tonumber(ngx.var.arg_s)) } }
        "#,
    );
    // nginx sends nothing at all for these (the connection just closes): halo answers
    // 500, as an uncaught Lua error does (README, "Differences").
    let wrapping: &[&str] = if is_nginx() { &[] } else { &["1e10", "65736", "65536", "4294967496", "-2", "99.5", "1000"] };
    for s in wrapping {
        let r = h.get(&format!("/exit?s={s}"));
        assert_eq!(r.status, 500, "ngx.exit({s}): {r:?}");
        let r = h.get(&format!("/status?s={s}"));
        assert_eq!((r.status, r.text().as_str()), (200, "refused\n"), "ngx.status = {s}");
        let r = h.get(&format!("/redirect?s={s}"));
        assert_eq!(r.status, 500, "ngx.redirect(url, {s}): {r:?}");
    }
    assert_eq!(h.get("/exit?s=404").status, 404);
    assert_eq!(h.get("/exit?s=299").status, 299);
    let r = h.get("/status?s=201");
    assert_eq!((r.status, r.text().as_str()), (201, "set\n"));
    assert_eq!(h.get("/redirect?s=301").status, 301);
}

/// Fifty requests of every kind: valid ones with and without bodies, and each kind of
/// error. Each asks for the close, so that its whole answer is what arrives before it.
fn fifty_requests() -> Vec<Vec<u8>> {
    let mut v: Vec<String> = vec![
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET /x?a=1&b=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET / HTTP/1.0\r\n\r\n".into(),
        "GET /echo HTTP/1.0\r\nX-A: v\r\n\r\n".into(),
        "GET http://a/echo?q HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.1\nHost: a\nConnection: close\n\n".into(),
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET /a/../echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET /%65cho HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A:   spaced   \r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: 1\x0b2\r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.1\r\nHost: a\r\nnocolon\r\nX-A: after\r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.1\r\nHost: a\r\nX@Odd: 1\r\nConnection: close\r\n\r\n".into(),
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".into(),
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n".into(),
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n0\r\nTrailer: t\r\n\r\n".into(),
        "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        "GET /echo HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET /echo  HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: A.Example.COM.\r\nConnection: close\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n".into(),
        "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
        // Errors.
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(),
        "GET / HTTP/3.1\r\nHost: a\r\n\r\n".into(),
        "GET / HTTP/0.9\r\nHost: a\r\n\r\n".into(),
        "GET / FTP/1.1\r\nHost: a\r\n\r\n".into(),
        "get / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        "GET / HTTP/1.1\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost:\ta\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nX: fold\r\n continued\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nX: bare\rcr\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: a\r\nX: n\x00ul\r\n\r\n".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\x0b\r\n\r\nhello".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n".into(),
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n".into(),
        "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".into(),
        "GET /../x HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        "GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
    ];
    v.truncate(50);
    assert_eq!(v.len(), 50);
    v.into_iter().map(String::into_bytes).collect()
}

/// What arrived before the close, with the Date line removed (it changes by the second).
fn answer(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\r\n")
}

fn answer_to(port: u16, parts: &[&[u8]]) -> String {
    let mut c = Conn::new(port);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // Long enough for the first part to be read on its own.
            std::thread::sleep(Duration::from_millis(2));
        }
        if c.try_send(p).is_err() {
            break;
        }
    }
    answer(&c.read_to_close())
}

#[test]
fn answers_do_not_depend_on_segmentation() {
    let h = Halo::server(&format!("client_header_timeout 3s;\nclient_body_timeout 3s;\n{CONF}"));
    let requests = fifty_requests();
    let port = h.port;
    std::thread::scope(|s| {
        let chunks: Vec<&[Vec<u8>]> = requests.chunks(13).collect();
        for chunk in chunks {
            s.spawn(move || {
                for req in chunk {
                    let whole = answer_to(port, &[req]);
                    assert!(whole.starts_with("HTTP/1.1 "), "no answer to {:?}", String::from_utf8_lossy(req));
                    for k in 1..req.len() {
                        let split = answer_to(port, &[&req[..k], &req[k..]]);
                        assert_eq!(split, whole, "{:?} split at {k}", String::from_utf8_lossy(req));
                    }
                }
            });
        }
    });
}
