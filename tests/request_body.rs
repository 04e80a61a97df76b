//! Request bodies for Lua: read when the handler asks (ngx.req.read_body) or before it
//! (lua_need_request_body), in memory up to client_body_buffer_size and in a temp file past
//! it (ngx.req.get_body_file), removed after the request unless client_body_in_file_only on;
//! errors while reading end the request with their status. A 100 MB upload streams to its
//! file without growing the worker by more than a few buffers.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

const CONF: &str = r#"
        client_body_temp_path body_temp;
        client_body_buffer_size 1k;
        client_max_body_size 200m;
        location = /unread { content_by_lua_block { ngx.say("data=", tostring(ngx.req.get_body_data())) } }
        location = /read {
            content_by_lua_block {
                ngx.req.read_body()
                local data, file = ngx.req.get_body_data(), ngx.req.get_body_file()
                local size = data and #data
                if file then
                    local f = assert(io.open(file, "rb"))
                    local all = f:read("*a")
                    f:close()
                    size = #all
                    data = all:sub(1, 8) .. "..." .. all:sub(-8)
                end
                ngx.say("in=", file and "file" or "memory", " size=", size, " data=", tostring(data), " file=", tostring(file))
            }
        }
        location = /big {
            content_by_lua_block {
                ngx.req.read_body()
                local file = ngx.req.get_body_file()
                local f = assert(io.open(file, "rb"))
                local head = f:read(8)
                local size = f:seek("end")
                f:close()
                ngx.say("in=file size=", size, " data=", head, "... file=", file)
            }
        }
        location = /access {
            access_by_lua_block { ngx.req.read_body() ngx.ctx.body = ngx.req.get_body_data() }
            content_by_lua_block { ngx.say("access read ", ngx.ctx.body) }
        }
        location = /need {
            lua_need_request_body on;
            content_by_lua_block { ngx.say("need ", ngx.req.get_body_data(), " ", ngx.var.request_body) }
        }
        location = /post {
            content_by_lua_block {
                ngx.req.read_body()
                local args, err = ngx.req.get_post_args()
                ngx.say(args and args.a or err)
            }
        }
        location = /small {
            client_max_body_size 10;
            content_by_lua_block { ngx.req.read_body() ngx.say("not reached") }
        }
        location = /keep {
            client_body_in_file_only on;
            content_by_lua_block { ngx.req.read_body() ngx.say(ngx.req.get_body_file()) }
        }
        location = /clean {
            client_body_in_file_only clean;
            content_by_lua_block { ngx.req.read_body() ngx.say(ngx.req.get_body_file()) }
        }
"#;

fn post(h: &Halo, path: &str, body: &[u8]) -> Response {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    h.get_response(raw)
}

#[test]
fn bodies_are_read_when_asked() {
    let h = Halo::server(CONF);
    assert_eq!(post(&h, "/unread", b"hello").text(), "data=nil\n");
    assert_eq!(post(&h, "/read", b"hello").text(), "in=memory size=5 data=hello file=nil\n");
    assert_eq!(post(&h, "/access", b"from access").text(), "access read from access\n");
    assert_eq!(post(&h, "/need", b"needed").text(), "need needed needed\n");
    assert_eq!(post(&h, "/post", b"a=1&b=2").text(), "1\n");
    // A chunked body, and a keep-alive connection that goes on after an unread body.
    let mut c = h.connect();
    c.send("POST /read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "in=memory size=5 data=abcde file=nil\n");
    c.send("POST /unread HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nskip");
    assert_eq!(c.read_response(false).text(), "data=nil\n");
    c.send("GET /unread HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "data=nil\n");
}

#[test]
fn large_bodies_go_to_a_temp_file_removed_after_the_request() {
    let h = Halo::server(CONF);
    let body: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = post(&h, "/read", &body);
    let text = r.text();
    assert!(text.starts_with("in=file size=5000 data=abcdefgh...") && text.contains(" file="), "{text}");
    let file = text.trim_end().rsplit(" file=").next().unwrap().to_string();
    assert!(file.starts_with(h.path().join("body_temp").to_str().unwrap()), "{file}");
    assert!(wait_until(Duration::from_secs(2), || !std::path::Path::new(&file).exists()), "{file} left behind");
    // Past the buffer, the body is not data (as nginx: get_body_data is nil, $request_body empty).
    let r = post(&h, "/post", &[&b"a=1&x="[..], &body[..]].concat());
    assert_eq!(r.text(), "request body in temp file not supported\n");

    // client_body_in_file_only: even a small body has a file; `on` keeps it, `clean` does not.
    let kept = post(&h, "/keep", b"tiny").text().trim().to_string();
    assert_eq!(std::fs::read(&kept).unwrap(), b"tiny");
    let cleaned = post(&h, "/clean", b"tiny").text().trim().to_string();
    assert!(cleaned.starts_with('/'), "{cleaned}");
    assert!(wait_until(Duration::from_secs(2), || !std::path::Path::new(&cleaned).exists()), "{cleaned} left behind");
}

#[test]
fn a_body_that_cannot_be_read_ends_the_request() {
    let h = Halo::server(CONF);
    let r = post(&h, "/small", b"more than ten bytes");
    assert_eq!(r.status, 413);
    assert!(!r.text().contains("not reached"));
    assert_contains(&h.error_log(), "client intended to send too large body: 19 bytes");
    // A bad chunk: 400.
    let r = h.get_response("POST /read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(r.status, 400);
}

/// The server's resident memory (VmRSS) in bytes.
fn rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

#[test]
fn a_100_mb_upload_streams_to_its_file() {
    let h = Halo::server(CONF);
    let pid = h.pid();
    // Warm up the handler and the buffers first.
    post(&h, "/read", &vec![b'x'; 4096]);
    let before = rss(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss(pid))
        })
    };
    const SIZE: usize = 100 << 20;
    let mut c = h.connect();
    c.stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    c.send(format!("POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n"));
    let chunk: Vec<u8> = (0..(1 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    let started = Instant::now();
    for _ in 0..(SIZE >> 20) {
        c.stream.write_all(&chunk).unwrap();
    }
    c.stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = c.read_response(false);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let text = r.text();
    assert!(text.starts_with(&format!("in=file size={SIZE} data=abcdefgh...")), "{text}");
    let grew = peak.saturating_sub(before);
    assert!(grew < 32 << 20, "the worker grew by {} MB during a 100 MB upload", grew >> 20);
    let file = text.trim_end().rsplit(" file=").next().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(5), || !std::path::Path::new(&file).exists()), "{file} left behind");
    eprintln!("100 MB upload in {:?}; worker RSS grew by {} KB", started.elapsed(), grew >> 10);
}
