//! Fuzzes the HTTP/1.x request-head parser (`parse_request_into`).
//!
//! Input layout: byte 0 picks the configuration (bits 0-1: one of four
//! `Limits`; bit 2: `underscores_in_headers on`; bit 3:
//! `ignore_invalid_headers off`), bytes 1-2 (big-endian) pick a split point
//! `k = value % (len + 1)` in the rest, which is the bytes received.
//! Byte 0 = '0' (0x30) is nginx's default configuration.
//!
//! Checks, beyond "no panic":
//! - `Ok(Some(n))` has `n <= buf.len()`;
//! - parsing the same bytes again into the same (reused) `Request`, and
//!   into a fresh one (`parse_request_with`), gives the same answer and the
//!   same request;
//! - segmentation: the bytes received so far, `buf[..k]`, must not be
//!   answered differently from what the whole buffer implies:
//!   whole `Ok(Some(n))` with `k < n` -> prefix `Ok(None)` (the head is not
//!   there yet, and it is a valid one, so no error either);
//!   whole `Ok(Some(n))` with `k >= n` -> prefix gives the same `Some(n)`
//!   and the same request (bytes after the head do not matter);
//!   whole `Ok(None)` -> prefix `Ok(None)` (an incomplete head that is
//!   still within the limits had no error in its first `k` bytes);
//!   whole `Err` -> nothing asserted (which error is met first may depend
//!   on how much has arrived);
//! - pipelining: after `Ok(Some(n))`, `buf[n..]` parsed into the reused
//!   `Request` (as a keep-alive connection does) gives the same as a fresh
//!   parse;
//! - `raw_header()`, when present, is the head as sent: `buf[..n]`.
//!
//! A check can be turned off to keep fuzzing past a known failure:
//! `HALO_FUZZ_SKIP=segment,raw,reuse,pipeline` (comma-separated);
//! `segment-cr` keeps the segmentation check but not for a prefix that
//! ends in CR (a cut between the CR and LF of a line);
//! `segment-incomplete` drops only the whole-`Ok(None)` rule.

#![no_main]

use std::sync::OnceLock;

use halo_core::http::request::{
    parse_request_into, parse_request_with, HeaderPolicy, HttpError, Limits, Request,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: [Limits; 4] = [
    // nginx's defaults.
    Limits {
        header_buffer: 1024,
        large_buffers: (4, 8192),
    },
    // Small buffers, so the fuzzer reaches the limits.
    Limits {
        header_buffer: 64,
        large_buffers: (2, 128),
    },
    Limits {
        header_buffer: 32,
        large_buffers: (4, 32),
    },
    // header buffer larger than the large buffers.
    Limits {
        header_buffer: 256,
        large_buffers: (1, 64),
    },
];

/// Everything the public API shows of a parsed request.
#[derive(Debug, PartialEq, Eq)]
struct View {
    method: String,
    version_minor: u8,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
    line: String,
    uri: String,
    path: String,
    args: Option<String>,
    host: Option<String>,
    headers: Vec<(String, String)>,
    raw: Option<String>,
}

fn view(r: &Request) -> View {
    View {
        method: r.method_str().to_owned(),
        version_minor: r.version_minor,
        content_length: r.content_length,
        chunked: r.chunked,
        keep_alive: r.keep_alive,
        expect_continue: r.expect_continue,
        line: r.request_line().to_owned(),
        uri: r.request_uri().to_owned(),
        path: r.path().to_owned(),
        args: r.args().map(str::to_owned),
        host: r.host().map(str::to_owned),
        headers: r
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        raw: r.raw_header().map(str::to_owned),
    }
}

type Answer = Result<Option<(usize, View)>, HttpError>;

fn into(buf: &[u8], limits: &Limits, policy: &HeaderPolicy, req: &mut Request) -> Answer {
    parse_request_into(buf, limits, policy, req).map(|o| o.map(|n| (n, view(req))))
}

fn fresh(buf: &[u8], limits: &Limits, policy: &HeaderPolicy) -> Answer {
    parse_request_with(buf, limits, policy).map(|o| o.map(|(r, n)| (n, view(&r))))
}

fn skip(check: &str) -> bool {
    static SKIP: OnceLock<Vec<String>> = OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("HALO_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .iter()
    .any(|s| s == check)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let cfg = data[0];
    let limits = LIMITS[usize::from(cfg & 3)];
    let policy = HeaderPolicy {
        underscores_in_headers: cfg & 4 != 0,
        ignore_invalid_headers: cfg & 8 == 0,
    };
    let split = usize::from(u16::from_be_bytes([data[1], data[2]]));
    let buf = &data[3..];
    let k = split % (buf.len() + 1);

    let mut req = Request::default();
    let whole = into(buf, &limits, &policy, &mut req);
    if let Ok(Some((n, v))) = &whole {
        assert!(
            *n <= buf.len(),
            "head length {n} > buffer length {}",
            buf.len()
        );
        if !skip("raw") {
            // As nginx's: the head from the request line on (CR and LF bytes
            // before it are skipped).
            let from = buf.iter().take_while(|&&c| c == b'\r' || c == b'\n').count().min(*n);
            if let Ok(head) = std::str::from_utf8(&buf[from..*n]) {
                assert_eq!(
                    v.raw.as_deref(),
                    Some(head),
                    "raw_header() is not the head as sent"
                );
            } else {
                assert_eq!(v.raw, None, "raw_header() of a non-UTF-8 head");
            }
        }
    }

    if !skip("reuse") {
        let again = into(buf, &limits, &policy, &mut req);
        assert_eq!(whole, again, "second parse into the reused Request differs");
        let new = fresh(buf, &limits, &policy);
        assert_eq!(whole, new, "parse into a fresh Request differs");
    }

    if !skip("segment") && !(skip("segment-cr") && buf[..k].last() == Some(&b'\r')) {
        let prefix = fresh(&buf[..k], &limits, &policy);
        match &whole {
            Ok(Some((n, _))) if k < *n => assert!(
                matches!(prefix, Ok(None)),
                "prefix of {k} bytes of a valid {n}-byte head: {prefix:?} (want Ok(None))"
            ),
            Ok(Some(_)) => assert_eq!(
                prefix, whole,
                "prefix of {k} bytes still holding the whole head answers differently"
            ),
            Ok(None) if !skip("segment-incomplete") => assert!(
                matches!(prefix, Ok(None)),
                "prefix of {k} bytes of an incomplete head: {prefix:?} (want Ok(None))"
            ),
            Ok(None) | Err(_) => {}
        }
    }

    if !skip("pipeline") {
        if let Ok(Some((n, _))) = &whole {
            let rest = &buf[*n..];
            let reused = into(rest, &limits, &policy, &mut req);
            let new = fresh(rest, &limits, &policy);
            assert_eq!(
                reused, new,
                "pipelined request parsed into the reused Request differs"
            );
        }
    }
});
