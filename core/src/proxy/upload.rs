//! The request on its way upstream: the head, then the body, buffered
//! (read whole first: memory, or its temp file sent in pieces) or, with
//! `proxy_request_buffering off`, streamed: each piece sent as it comes
//! from the client, so only a read's worth is held at a time.

use std::os::fd::{AsRawFd, RawFd};

use crate::conf::proxy::ProxyConf;
use crate::http::response::{write_chunk, LAST_CHUNK};
use crate::lua::handler::Stream;
use crate::request::body::RequestBody;
use crate::request::RequestCtx;
use crate::rt::{self, ops};

use super::Failure;

/// Pieces of a request body read from its temp file.
const FILE_PIECE: usize = 64 * 1024;

/// How the body goes.
pub enum Upload {
    /// What `ctx.body` holds (none with `proxy_pass_request_body off`).
    Buffered,
    /// Streamed from the client: `first` came with the head (sent with
    /// it), the rest is read as it arrives; `chunked` (a chunked client
    /// body to an HTTP/1.1 upstream): sent as chunks.
    Streamed { first: Vec<u8>, chunked: bool },
}

impl Upload {
    /// Once part of a streamed body went, the request cannot be repeated
    /// (nginx's rule: no next upstream after sending began).
    pub fn replayable(&self) -> bool {
        matches!(self, Upload::Buffered)
    }

    /// The body goes chunked (`Transfer-Encoding: chunked`, no length).
    pub fn chunked(&self) -> bool {
        matches!(self, Upload::Streamed { chunked: true, .. })
    }
}

/// How the request's body will go, as nginx decides: read whole first
/// (`proxy_request_buffering on`; a body read already; a chunked body to an
/// HTTP/1.0 upstream, which needs its length; a body that came whole with
/// the head), else streamed. Err: the status the request ends with.
pub async fn prepare(ctx: &mut RequestCtx<'_>, conf: &ProxyConf, client: &mut impl Stream) -> Result<Upload, u16> {
    // (Most requests have none: nothing to read.)
    let has_body = ctx.req.chunked || ctx.req.content_length.is_some_and(|n| n > 0);
    if !conf.pass_request_body || ctx.body_done || !has_body {
        return Ok(Upload::Buffered);
    }
    if conf.request_buffering || (ctx.req.chunked && !conf.http11) {
        client.read_body(ctx).await?;
        return Ok(Upload::Buffered);
    }
    let first = client.read_body_part(ctx, false).await?;
    if ctx.body_done {
        ctx.body = Some(RequestBody::Memory(first));
        return Ok(Upload::Buffered);
    }
    Ok(Upload::Streamed { first, chunked: ctx.req.chunked })
}

/// Why sending failed.
pub enum SendError {
    /// A send to the upstream: its errno, or None on proxy_send_timeout.
    Upstream(Option<i32>),
    /// The body's temp file could not be read.
    File(Failure),
    /// Reading the client's body: the status the request ends with.
    Client(u16),
}

/// Send `head`, then `ctx.body` (none with `proxy_pass_request_body off`),
/// to `fd`, counting the bytes into `sent`.
pub async fn send_buffered(ctx: &RequestCtx<'_>, fd: RawFd, head: &[u8], conf: &ProxyConf, sent: &mut u64) -> Result<(), SendError> {
    let timeout = conf.send_timeout;
    let mut out = head.to_vec();
    match ctx.body.as_ref().filter(|_| conf.pass_request_body) {
        Some(RequestBody::Memory(data)) => {
            out.extend_from_slice(data);
            ops::send_all(fd, out, timeout, sent).await.map_err(SendError::Upstream)?;
        }
        Some(b @ RequestBody::File(_)) => {
            let path = b.file_path().expect("a file body has a path");
            let file = std::fs::File::open(path).map_err(|e| SendError::File(Failure::internal(format!("open() \"{}\" failed {}", path.display(), crate::log::error::os_error(&e)))))?;
            let mut buf = ops::send_all(fd, out, timeout, sent).await.map_err(SendError::Upstream)?;
            let mut off = 0u64;
            loop {
                buf.clear();
                let (n, b) = ops::read_at(file.as_raw_fd(), buf, FILE_PIECE, off).await;
                if n < 0 {
                    return Err(SendError::File(Failure::internal(format!("pread() \"{}\" failed {}", path.display(), super::os(-n)))));
                }
                if n == 0 {
                    break;
                }
                off += n as u64;
                buf = ops::send_all(fd, b, timeout, sent).await.map_err(SendError::Upstream)?;
            }
        }
        None => {
            ops::send_all(fd, out, timeout, sent).await.map_err(SendError::Upstream)?;
        }
    }
    Ok(())
}

/// Send `head` and `first` (as a chunk when `chunked`), then the rest of
/// the client's body as it arrives, to `fd`. Ok: whether all of it went
/// (it stops when the upstream answers or closes first: nginx sends no
/// more once the response head is in). The bytes are counted into `sent`.
#[allow(clippy::too_many_arguments)]
pub async fn send_streamed(ctx: &mut RequestCtx<'_>, fd: RawFd, head: &[u8], first: &mut Vec<u8>, chunked: bool, conf: &ProxyConf, client: &mut impl Stream, sent: &mut u64) -> Result<bool, SendError> {
    let mut out = head.to_vec();
    if chunked {
        write_chunk(&mut out, first);
    } else {
        out.extend_from_slice(first);
    }
    first.clear();
    loop {
        out = ops::send_all(fd, out, conf.send_timeout, sent).await.map_err(SendError::Upstream)?;
        out.clear();
        if ctx.body_done {
            return Ok(true);
        }
        let piece = match rt::race(client.read_body_part(ctx, true), ops::poll_readable(fd)).await {
            Ok(piece) => piece.map_err(SendError::Client)?,
            // The upstream answered or closed first.
            Err(_) => return Ok(false),
        };
        if chunked {
            write_chunk(&mut out, &piece);
        } else {
            out = piece;
        }
        if ctx.body_done && chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
    }
}

