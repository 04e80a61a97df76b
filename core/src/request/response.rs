//! What a request's phases produce: the body and how to send it. The
//! status and headers are the request's own ([`super::Reply`]).

use std::borrow::Cow;
use std::cell::Cell;
use std::fs::File;

use super::RequestCtx;

/// The part of an open file to send.
#[derive(Debug)]
pub struct FileBody {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

/// A response body; `'a` is the configuration's lifetime, so a literal
/// `return` text is sent without a copy.
#[derive(Debug)]
pub enum Body<'a> {
    Empty,
    Bytes(Cow<'a, [u8]>),
    File(FileBody),
}

/// What the phases decided to send, beside `ctx.resp`'s status and headers.
#[derive(Debug)]
pub struct Response<'a> {
    /// Content-Length to announce when the body is not in `body` (HEAD,
    /// files); None = length of `body`.
    pub content_length: Option<u64>,
    pub body: Body<'a>,
    /// A status without a body of its own (nginx's "special response"):
    /// error_page applies, and the default HTML page is added.
    pub special: bool,
    /// Close the connection after this response.
    pub close: bool,
}

impl<'a> Response<'a> {
    /// A response with this body (the status is already in the request).
    pub fn with_body(body: Body<'a>) -> Response<'a> {
        Response { content_length: None, body, special: false, close: false }
    }
}

impl<'a> RequestCtx<'a> {
    /// Answer `status` with its standard page (or an error_page).
    pub fn special(&mut self, status: u16) -> Response<'a> {
        self.resp.status = status;
        Response { special: true, ..Response::with_body(Body::Empty) }
    }

    /// Answer a redirect to `location` (already absolute).
    pub fn redirect(&mut self, status: u16, location: String) -> Response<'a> {
        self.resp.headers.set("Location", location);
        self.special(status)
    }
}

impl RequestCtx<'_> {
    /// A relative redirect made absolute, as nginx's `absolute_redirect on`:
    /// scheme, the request's host, and the port unless it is 80.
    pub fn absolute_url(&self, target: &str) -> String {
        if !target.starts_with('/') {
            return target.to_string();
        }
        let host = self.host();
        let port = self.conn.local().map(|a| a.port()).unwrap_or(80);
        if port == 80 {
            format!("http://{host}{target}")
        } else {
            format!("http://{host}:{port}{target}")
        }
    }
}

thread_local! {
    /// The output buffer of the worker's last response, emptied.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Buffers larger than this are not kept for the next response.
const SPARE_MAX: usize = 64 * 1024;

/// A buffer for a response's output: the last one sent, so that a worker
/// does not allocate (and grow) one per request.
pub fn output_buffer() -> Vec<u8> {
    SPARE.with(Cell::take)
}

/// Gives back an output buffer whose bytes were copied out.
pub fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() <= SPARE_MAX {
        buf.clear();
        SPARE.with(|s| s.set(buf));
    }
}
