//! A 1 GB response and a 256 MB request body streamed through proxy_pass,
//! and a 1 GB request body with proxy_request_buffering off, with the
//! proxy's RSS growing by less than 32 MB: none is held whole in memory
//! (a buffered request body goes to the temp file past
//! client_body_buffer_size, an unbuffered one upstream as it arrives, the
//! response to the client as it comes).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const GB: u64 = 1 << 30;

fn rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap()
}

/// An upstream that answers GET with `n` bytes and POST by counting the
/// body it read ("got N").
fn upstream(n: u64) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if head.starts_with("post") {
                    let len: u64 = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                    let mut left = len;
                    let mut buf = vec![0u8; 1 << 16];
                    while left > 0 {
                        let k = s.read(&mut buf[..(left.min(1 << 16)) as usize]).unwrap_or(0);
                        if k == 0 {
                            break;
                        }
                        left -= k as u64;
                    }
                    let body = format!("got {}", len - left);
                    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    return;
                }
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'x'; 1 << 16];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    if s.write_all(&chunk[..k]).is_err() {
                        return;
                    }
                    left -= k as u64;
                }
            });
        }
    });
    port
}

#[test]
fn a_gigabyte_each_way_streams_through_in_bounded_memory() {
    if is_nginx() {
        // (The RSS bound is halo's; nginx streams too, with its own buffers.)
        return;
    }
    let up = upstream(GB);
    let h = Halo::server(&format!("client_max_body_size 0; location / {{ proxy_pass http://127.0.0.1:{up}; }}"));
    let pid = h.pid();
    // Warm up, then measure.
    assert_eq!(h.get("/").status, 200);
    let before = rss_kb(pid);

    let mut c = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(b"GET /big HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut peak = before;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        if total % (64 << 20) < n as u64 {
            peak = peak.max(rss_kb(pid));
        }
    }
    assert!(total > GB, "got {total} bytes");

    peak = peak.max(upload(h.port, 256 << 20, Some(pid)));
    assert!(peak - before < 32 * 1024, "RSS grew from {before} kB to {peak} kB");
}

#[test]
fn a_gigabyte_upload_streams_unbuffered_in_bounded_memory() {
    let up = upstream(0);
    let h = Halo::server(&format!("client_max_body_size 0; location / {{ proxy_request_buffering off; proxy_pass http://127.0.0.1:{up}; }}"));
    // (The RSS bound is halo's; nginx streams the body through its own buffer.)
    let pid = (!is_nginx()).then(|| h.pid());
    assert_eq!(h.get("/").status, 200);
    let before = pid.map_or(0, rss_kb);
    let peak = upload(h.port, GB, pid);
    if pid.is_some() {
        assert!(peak - before < 32 * 1024, "RSS grew from {before} kB to {peak} kB");
    }
}

/// POSTs `len` bytes through the proxy on `port` and checks the upstream
/// got them all; the peak RSS of `pid` seen meanwhile (0 without one).
fn upload(port: u16, len: u64, pid: Option<i32>) -> u64 {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(c, "POST /up HTTP/1.0\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n").unwrap();
    let chunk = vec![b'y'; 1 << 16];
    let mut sent = 0u64;
    let mut peak = 0;
    while sent < len {
        c.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
        if sent.is_multiple_of(32 << 20) {
            peak = peak.max(pid.map_or(0, rss_kb));
        }
    }
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.ends_with(&format!("got {len}")), "{out}");
    peak.max(pid.map_or(0, rss_kb))
}
