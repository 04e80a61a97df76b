//! The per-request CPU of the HTTP layer, without sockets: parsing a
//! request head and writing a response head. `cargo bench --bench http`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use halo_core::http::request::{parse_request, Limits};
use halo_core::http::response::{KeepAlive, ResponseHead, SERVER_VERSION};

/// What wrk sends.
const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
/// A browser-like request.
const BROWSER: &[u8] = b"GET /static/app.js?v=123 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nReferer: https://example.com/\r\nCookie: session=abcdef0123456789; theme=dark\r\nConnection: keep-alive\r\n\r\n";

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("parse_request/wrk", |b| b.iter(|| parse_request(black_box(WRK), &limits).unwrap()));
    c.bench_function("parse_request/browser", |b| b.iter(|| parse_request(black_box(BROWSER), &limits).unwrap()));
}

fn write_head(c: &mut Criterion) {
    let mut out = Vec::with_capacity(512);
    c.bench_function("response_head/hello", |b| {
        b.iter(|| {
            out.clear();
            ResponseHead {
                server: Some(SERVER_VERSION),
                content_type: Some("text/plain"),
                content_length: Some(6),
                keep_alive: KeepAlive::Yes,
                ..ResponseHead::new(200, "Sat, 21 Nov 2026 21:00:00 GMT")
            }
            .write(&mut out);
            black_box(&out);
        })
    });
}

criterion_group!(benches, parse, write_head);
criterion_main!(benches);
