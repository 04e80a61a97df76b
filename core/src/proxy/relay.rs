//! The exchange with the upstream: the request out (`upload`), the
//! response head in (httparse), then the body streamed to the client as it
//! comes, through the header and body filters (the client's
//! `Stream::flush`, as `ngx.flush` streams).

use std::borrow::Cow;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::conf::proxy::{ProxyConf, RedirectPattern};
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::Method;
use crate::log::Level;
use crate::lua::handler::Stream;
use crate::request::{Body, RequestCtx, Response};
use crate::rt::{self, ops};

use super::upload::{self, SendError, Upload};
use super::{os, request, Failure, UpstreamConn};

/// Bytes asked of one recv of the head.
const HEAD_READ: usize = 4096;
/// Bytes asked of one recv of the body.
const BODY_READ: usize = 64 * 1024;

/// A response head read from the upstream, with what followed it.
pub struct Got<'t> {
    pub(super) status: u16,
    conn: UpstreamConn<'t>,
    buf: Vec<u8>,
    /// Where the body starts in `buf`.
    body_at: usize,
    /// The reason phrase's span in `buf`, if not empty.
    reason: Option<Span>,
    http11: bool,
    /// The header lines' (name, value) spans in `buf`.
    headers: Vec<(Span, Span)>,
    /// All of the request body went (else the connection is not reused).
    body_sent: bool,
}

/// Where some bytes are in `Got::buf`.
type Span = (u32, u32);

/// The span of `part`, a slice of `buf`.
fn span(buf: &[u8], part: &[u8]) -> Span {
    let at = part.as_ptr() as usize - buf.as_ptr() as usize;
    (at as u32, (at + part.len()) as u32)
}

fn at(buf: &[u8], s: Span) -> &[u8] {
    &buf[s.0 as usize..s.1 as usize]
}

enum Recv {
    /// This many bytes more.
    Data(usize),
    Eof,
    TimedOut,
    Error(i32),
}

async fn recv(fd: RawFd, buf: &mut Vec<u8>, max: usize, timeout: Duration) -> Recv {
    let b = std::mem::take(buf);
    match rt::race(ops::recv(fd, b, max, false), rt::sleep_until(rt::now() + timeout)).await {
        Ok((n, b)) => {
            *buf = b;
            match n {
                0 => Recv::Eof,
                n if n < 0 => Recv::Error(-n),
                n => Recv::Data(n as usize),
            }
        }
        Err(_) => Recv::TimedOut,
    }
}

/// Bytes to and from the upstream in one exchange ($upstream_bytes_*).
#[derive(Default)]
pub struct Io {
    pub sent: u64,
    pub received: u64,
}

/// Send the request and read the response head, counting the bytes into
/// `io`. Err: the failure, and whether a fresh connection may try again (a
/// pooled one the server had closed: nothing came back, and the body can
/// go again). The outer Err: the client hung up first (watched when
/// `watch`).
#[allow(clippy::too_many_arguments)]
pub async fn exchange<'t>(ctx: &mut RequestCtx<'_>, conn: UpstreamConn<'t>, head: &[u8], upload: &mut Upload, conf: &ProxyConf, client: &mut impl Stream, watch: bool, io: &mut Io) -> Result<Result<Got<'t>, (Failure, bool)>, ()> {
    let reused = conn.reused > 0 && upload.replayable();
    let sent = match upload {
        Upload::Buffered => {
            let sending = upload::send_buffered(ctx, conn.fd, head, conf, &mut io.sent);
            let sent = if watch { rt::race(sending, client.hangup()).await? } else { sending.await };
            sent.map(|()| true)
        }
        // Its reads see the client's close themselves (nginx watches for
        // it once the body is in).
        Upload::Streamed { first, chunked } => upload::send_streamed(ctx, conn.fd, head, first, *chunked, conf, client, &mut io.sent).await,
    };
    let body_sent = match sent {
        Ok(whole) => whole,
        Err(SendError::Upstream(Some(e))) => return Ok(Err((Failure::bad_gateway(format!("send() failed {} while sending request to upstream", os(e))), reused))),
        Err(SendError::Upstream(None)) => return Ok(Err((Failure::timed_out("sending request to upstream"), false))),
        Err(SendError::File(f)) => return Ok(Err((f, false))),
        Err(SendError::Client(status)) => return Ok(Err((Failure::client(status), false))),
    };
    let reading = read_head(conn, conf, reused, body_sent, &mut io.received);
    Ok(if watch { rt::race(reading, client.hangup()).await? } else { reading.await })
}

/// The response head (interim ones skipped), counting the bytes into
/// `received`; Err as `exchange`'s.
async fn read_head<'t>(conn: UpstreamConn<'t>, conf: &ProxyConf, reused: bool, body_sent: bool, received: &mut u64) -> Result<Got<'t>, (Failure, bool)> {
    let mut buf = Vec::with_capacity(HEAD_READ);
    loop {
        // A page at a time: most heads fit the first one.
        let max = conf.buffer_size.saturating_sub(buf.len()).clamp(1, HEAD_READ);
        match recv(conn.fd, &mut buf, max, conf.read_timeout).await {
            Recv::Data(n) => *received += n as u64,
            Recv::Eof => {
                let retry = reused && buf.is_empty();
                return Err((Failure::bad_gateway("upstream prematurely closed connection while reading response header from upstream"), retry));
            }
            Recv::TimedOut => return Err((Failure::timed_out("reading response header from upstream"), false)),
            Recv::Error(e) => {
                let retry = reused && buf.is_empty();
                return Err((Failure::bad_gateway(format!("recv() failed {} while reading response header from upstream", os(e))), retry));
            }
        }
        // Uninitialised slots: filling 100 headers first would cost more
        // than parsing the few there are.
        let mut hs = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
        let mut r = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut r, &buf, &mut hs) {
            Ok(httparse::Status::Complete(n)) => {
                let status = r.code.unwrap_or(502);
                // An interim response (100 Continue) is skipped.
                if (100..200).contains(&status) && status != 101 {
                    buf.drain(..n);
                    continue;
                }
                let http11 = r.version == Some(1);
                let reason = r.reason.filter(|r| !r.is_empty()).map(|r| span(&buf, r.as_bytes()));
                let headers = r.headers.iter().map(|h| (span(&buf, h.name.as_bytes()), span(&buf, h.value))).collect();
                return Ok(Got { conn, buf, body_at: n, status, reason, http11, headers, body_sent });
            }
            // The head must fit proxy_buffer_size, as nginx's first buffer.
            Ok(httparse::Status::Partial) if buf.len() >= conf.buffer_size => {
                return Err((Failure::invalid_header("upstream sent too big header while reading response header from upstream"), false));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::Status | httparse::Error::Version) => {
                return Err((Failure::invalid_header("upstream sent no valid HTTP/1.0 header while reading response header from upstream"), false));
            }
            Err(_) => return Err((Failure::invalid_header("upstream sent invalid header while reading response header from upstream"), false)),
        }
    }
}

/// Response headers not passed to the client (hop-by-hop; the length and
/// type are kept apart; Server and Date are always the proxy's own, even
/// with `proxy_pass_header`, since the head writer makes them).
fn hop_by_hop(name: &[u8]) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    match name.len() {
        2 => is("te"),
        4 => is("date"),
        6 => is("server"),
        7 => is("trailer") || is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        12 => is("content-type"),
        14 => is("content-length"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

/// Whether `value` holds `word` (lower case), in any case.
fn has_token(value: &[u8], word: &[u8]) -> bool {
    value.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word))
}

/// `proxy_redirect`: a Location (or Refresh's `url=`) the first matching
/// rule rewrites; None when no rule matches. A rewritten Location that is
/// relative becomes absolute, as nginx's header filter makes it.
fn rewrite_redirect(ctx: &mut RequestCtx, conf: &ProxyConf, name: &[u8], value: &[u8]) -> Option<String> {
    let location = match name.len() {
        8 if name.eq_ignore_ascii_case(b"location") => true,
        7 if name.eq_ignore_ascii_case(b"refresh") => false,
        _ => return None,
    };
    if conf.redirects.is_empty() {
        return None;
    }
    let value = String::from_utf8_lossy(value);
    let at = if location { 0 } else { value.to_ascii_lowercase().find("url=")? + 4 };
    let url = &value[at..];
    for rule in &conf.redirects {
        let (len, to) = match &rule.pattern {
            RedirectPattern::Prefix(p) => {
                let p = request::render(ctx, p);
                if !url.starts_with(&*p) {
                    continue;
                }
                (p.len(), request::render(ctx, &rule.replacement).into_owned())
            }
            RedirectPattern::Regex(re) => {
                let Some(caps) = re.captures(url) else { continue };
                let caps: Vec<&str> = caps.iter().map(|m| m.map_or("", |m| m.as_str())).collect();
                (url.len(), rule.replacement.render(ctx, &caps))
            }
        };
        let out = format!("{}{to}{}", &value[..at], &url[len..]);
        return Some(if location { ctx.absolute_url(&out) } else { out });
    }
    None
}

/// How the upstream's body ends.
enum Framing {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
}

/// The response to the client: the upstream's status and headers, then
/// its body streamed as it comes. A failure mid-body cuts the response
/// (the client's connection closes).
pub async fn respond<'a>(ctx: &mut RequestCtx<'a>, got: Got<'_>, conf: &ProxyConf, upstream: &super::Target<'_>, client: &mut impl Stream) -> Response<'a> {
    let Got { conn, mut buf, body_at, status, reason, http11, headers, body_sent } = got;
    // $upstream_status and $upstream_http_NAME read them.
    if let Some(u) = ctx.upstream.as_mut() {
        if let Some(t) = u.tries.last_mut() {
            t.status = status;
        }
        u.headers.extend_spans(&buf[..body_at], &headers);
    }
    // proxy_intercept_errors: an error_page for the status replaces the response.
    if conf.intercept_errors && status >= 300 && ctx.conf.error_page.iter().any(|p| p.codes.contains(&status)) {
        drop(conn);
        return ctx.special(status);
    }
    // An Upgrade request the upstream switched: a tunnel (nginx's upgraded
    // connection), when the client has a connection of its own.
    let upgrade = status == 101 && ctx.req.header("upgrade").is_some() && client.client_fd().is_some();
    let mut length = None;
    let mut chunked = false;
    let mut close = !http11;
    ctx.resp.status = status;
    ctx.resp.reason = reason.map(|r| (status, String::from_utf8_lossy(at(&buf, r)).into_owned()));
    ctx.resp.proxied = true;
    for &(name, value) in &headers {
        let (name, value) = (at(&buf, name), at(&buf, value));
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(n) => length = Some(n),
                None => {
                    super::log(ctx, Level::Error, "upstream sent invalid \"Content-Length\" header while reading response header from upstream", Some(upstream));
                    return ctx.special(502);
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = has_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(value, b"close");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            ctx.resp.content_type = Some(Cow::Owned(String::from_utf8_lossy(value).into_owned()));
        }
        // The upstream's Upgrade goes with its 101 (the head writer says
        // `Connection: upgrade`).
        let upgrade_header = upgrade && name.eq_ignore_ascii_case(b"upgrade");
        if hop_by_hop(name) && !upgrade_header || conf.hide_headers.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(name)) {
            continue;
        }
        if let Some(v) = rewrite_redirect(ctx, conf, name, value) {
            ctx.resp.headers.push(name, v.as_bytes());
            continue;
        }
        ctx.resp.headers.push(name, value);
    }
    if upgrade {
        return tunnel(ctx, conn, &buf[body_at..], conf, upstream, client).await;
    }
    let no_body = ctx.req.method == Method::Head || matches!(status, 204 | 304) || status < 200;
    let mut framing = if no_body {
        Framing::None
    } else if chunked {
        Framing::Chunked(ChunkedDecoder::new())
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    if chunked {
        length = None;
    }
    ctx.resp.length = if no_body && ctx.req.method != Method::Head { None } else { length };
    // (A connection with no pool is closed: no keep-alive to ask for.)
    let keep = conn.terms.is_some() && !close && body_sent && !matches!(framing, Framing::Close);
    let mut at = body_at;
    let cut = |ctx: &RequestCtx, msg: &str| {
        super::log(ctx, Level::Error, msg, Some(upstream));
        Response { close: true, ..Response::with_body(Body::Empty) }
    };
    loop {
        // What is buffered, and whether the body ends with it.
        let mut data = Vec::new();
        let done = match &mut framing {
            Framing::None => true,
            Framing::Length(left) => {
                let n = ((buf.len() - at) as u64).min(*left) as usize;
                data.extend_from_slice(&buf[at..at + n]);
                at += n;
                *left -= n as u64;
                *left == 0
            }
            Framing::Chunked(d) => match d.decode(&buf[at..], &mut data) {
                Ok((used, done)) => {
                    at += used;
                    done
                }
                Err(_) => return cut(ctx, "upstream sent invalid chunked response while reading upstream"),
            },
            Framing::Close => {
                data.extend_from_slice(&buf[at..]);
                at = buf.len();
                false
            }
        };
        if !data.is_empty() || done || !ctx.resp.headers_sent {
            ctx.resp.out = data;
            let ok = client.flush(ctx, done).await;
            ctx.resp.headers_sent = true;
            if !ok {
                // The client is gone: the upstream connection goes too.
                return Response { close: true, ..Response::with_body(Body::Empty) };
            }
        }
        if done {
            if keep && at == buf.len() {
                conn.keep();
            }
            return Response::with_body(Body::Empty);
        }
        buf.clear();
        at = 0;
        match recv(conn.fd, &mut buf, BODY_READ, conf.read_timeout).await {
            Recv::Data(n) => {
                if let Some(t) = super::current_try(ctx) {
                    t.bytes_received += n as u64;
                }
            }
            Recv::Eof if matches!(framing, Framing::Close) => {
                ctx.resp.out.clear();
                if !client.flush(ctx, true).await {
                    return Response { close: true, ..Response::with_body(Body::Empty) };
                }
                return Response::with_body(Body::Empty);
            }
            Recv::Eof => return cut(ctx, "upstream prematurely closed connection while reading upstream"),
            Recv::TimedOut => return cut(ctx, "upstream timed out (110: Connection timed out) while reading upstream"),
            Recv::Error(e) => return cut(ctx, &format!("recv() failed {} while reading upstream", os(e))),
        }
    }
}

/// The 101 head to the client, what the upstream sent after its head, then
/// bytes both ways until either side closes (proxy_read_timeout idle). The
/// upstream connection is closed after it, as the client's.
async fn tunnel<'a>(ctx: &mut RequestCtx<'a>, conn: UpstreamConn<'_>, after: &[u8], conf: &ProxyConf, upstream: &super::Target<'_>, client: &mut impl Stream) -> Response<'a> {
    let done = Response { close: true, ..Response::with_body(Body::Empty) };
    ctx.resp.length = None;
    ctx.resp.out.clear();
    let ok = client.flush(ctx, false).await;
    ctx.resp.headers_sent = true;
    if !ok || (!after.is_empty() && !client.write_raw(ctx, after).await) {
        return done;
    }
    if let Err(e) = client.tunnel(ctx, conn.fd, conf.read_timeout).await {
        let msg = if e == "timed out" { "upstream timed out (110: Connection timed out) while proxying upgraded connection".to_string() } else { format!("{e} while proxying upgraded connection") };
        super::log(ctx, Level::Error, &msg, Some(upstream));
    }
    drop(conn);
    done
}
