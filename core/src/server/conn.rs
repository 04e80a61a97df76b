//! One client connection: read requests, run the phases, write the
//! responses, until the client or a limit closes it.
//!
//! Pipelined requests already in the buffer are all answered before a
//! single send, so N requests read at once cost one write.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::conf::template::Escape;
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{parse_request_into, HeaderPolicy, Limits, Method, Request};
use crate::http::response::{error_page_body, write_chunk, KeepAlive, ResponseHead, LAST_CHUNK, SERVER_NAME, SERVER_VERSION};
use crate::log::Level;
use crate::rt::{self, ops, Deadline};

use super::phases;
use super::Worker;
use crate::request::body::BodyWriter;
use crate::request::{Body, ConnInfo, FileBody, RequestCtx, Response};

/// Bytes asked of one recv while reading heads, and while reading bodies.
const HEAD_READ: usize = 4096;
const BODY_READ: usize = 65536;
/// Bytes a client may send ahead while its proxied request waits, watched
/// for its close; past them it is not watched.
const HANGUP_KEEP: usize = 64 * 1024;
/// Flush queued pipelined responses past this size.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// How long a connection waits for its next request before it goes idle
/// (and lets its buffers go).
const BUSY_LINGER: Duration = Duration::from_secs(1);
/// Files up to this size are read into the output buffer in one go.
const FILE_INLINE: u64 = 1 << 20;

/// The connection's buffers: `inbuf[start..]` is unread input, `out` the
/// responses not yet handed to the kernel, `sending` the send in flight.
struct Io {
    fd: RawFd,
    inbuf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    sending: Option<Sending>,
    /// The buffer of the last completed send, reused for `out`.
    spare: Vec<u8>,
    /// The timeout of whatever the connection waits for.
    deadline: Deadline,
    /// The multishot receive (armed at the first read); None when the
    /// worker has no buffer ring.
    multi: Option<ops::RecvMulti>,
}

/// `op`'s output, or None when the worker starts shutting down first (with
/// `w`: only idle connections give way). `op` is pinned by the caller: an
/// async fn keeps a future argument beside its own state, which would double
/// every waiting connection's task.
async fn unless_shutdown<F: std::future::Future>(op: std::pin::Pin<&mut F>, w: Option<&Worker>) -> Option<F::Output> {
    match w {
        Some(w) => rt::race(op, w.shutdown.wait()).await.ok(),
        None => Some(op.await),
    }
}

/// A send submitted but not yet awaited.
struct Sending {
    op: ops::Op<Vec<u8>>,
    from: usize,
    deadline: Instant,
}

enum Read {
    Data,
    Eof,
    TimedOut,
    Shutdown,
    Error,
}

impl Io {
    fn pending(&self) -> &[u8] {
        &self.inbuf[self.start..]
    }

    fn compact(&mut self) {
        if self.start == self.inbuf.len() {
            self.inbuf.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Read more input (appended to inbuf) before `deadline`; an idle
    /// connection also gives up when the worker shuts down.
    async fn read(&mut self, max: usize, deadline: Instant, w: Option<&Worker>) -> Read {
        self.compact();
        if let Some(multi) = self.multi.as_mut() {
            let res = {
                let op = std::pin::pin!(self.deadline.run(deadline, multi.next_into(&mut self.inbuf)));
                unless_shutdown(op, w).await
            };
            let Some(res) = res else { return Read::Shutdown };
            return match res {
                Err(_) => Read::TimedOut,
                Ok(0) => Read::Eof,
                // Out of provided buffers: this read is a plain recv.
                Ok(n) if n == -libc::ENOBUFS => {
                    crate::error_log!(Level::Info, None, "all receive buffers of the worker are in use: reading with a plain recv");
                    // Boxed: a rare path, kept out of every waiting connection's future.
                    Box::pin(self.read_once(max, deadline, w)).await
                }
                Ok(n) if n < 0 => Read::Error,
                Ok(_) => Read::Data,
            };
        }
        // Boxed, as above: only workers without a buffer ring come here.
        Box::pin(self.read_once(max, deadline, w)).await
    }

    /// One single-shot recv (no buffer ring, or its buffers ran out).
    async fn read_once(&mut self, max: usize, deadline: Instant, w: Option<&Worker>) -> Read {
        let buf = std::mem::take(&mut self.inbuf);
        // An idle keep-alive connection has just been answered: its next
        // request cannot be there yet.
        let poll_first = w.is_some();
        let res = {
            let op = std::pin::pin!(self.deadline.run(deadline, ops::recv(self.fd, buf, max, poll_first)));
            unless_shutdown(op, w).await
        };
        let Some(res) = res else { return Read::Shutdown };
        match res {
            Err(_) => Read::TimedOut,
            Ok((n, buf)) => {
                self.inbuf = buf;
                match n {
                    0 => Read::Eof,
                    n if n < 0 => Read::Error,
                    _ => Read::Data,
                }
            }
        }
    }

    /// Hand `out` to the kernel without waiting for it (after the previous
    /// send completed); false if the client is gone or too slow.
    async fn flush(&mut self, timeout: Duration) -> bool {
        if !self.settle().await {
            return false;
        }
        if self.out.is_empty() {
            return true;
        }
        let buf = std::mem::replace(&mut self.out, std::mem::take(&mut self.spare));
        self.sending = Some(Sending { op: ops::send(self.fd, buf, 0), from: 0, deadline: rt::now() + timeout });
        true
    }

    /// Wait until everything handed to the kernel is sent.
    async fn settle(&mut self) -> bool {
        while let Some(mut s) = self.sending.take() {
            match self.deadline.run(s.deadline, &mut s.op).await {
                Ok((n, buf)) if n > 0 => {
                    let from = s.from + n as usize;
                    if from < buf.len() {
                        self.sending = Some(Sending { op: ops::send(self.fd, buf, from), from, deadline: s.deadline });
                    } else {
                        self.spare = buf;
                        self.spare.clear();
                    }
                }
                _ => return false,
            }
        }
        true
    }
}

/// What a connection keeps between its requests, and all it holds while
/// idle: no read or write buffer, no request head then (nginx frees them
/// too), so an idle keep-alive connection costs under 1 KB (benches/idle).
struct ConnState {
    io: Io,
    conn: ConnInfo,
    /// When the head being read must be complete.
    head_deadline: Option<Instant>,
    /// When a keep-alive wait that began in the busy spell ends.
    idle_until: Option<Instant>,
    /// The last request's location's settings.
    keepalive_timeout: Duration,
    send_timeout: Duration,
}

/// Serve one accepted connection until it closes.
pub async fn serve(w: &Rc<Worker>, fd: RawFd, listen: SocketAddr) {
    // The servers of this address, looked up once per connection.
    let Some(servers) = w.servers.table(listen) else { return };
    let dsrv = &w.cfg.http.servers[servers.default_server()];
    let io = Io { fd, inbuf: Vec::new(), start: 0, out: Vec::new(), sending: None, spare: Vec::new(), deadline: Deadline::new(), multi: ops::RecvMulti::new(fd) };
    let mut st = ConnState {
        io,
        conn: ConnInfo::new(fd, listen, w.conn_number()),
        head_deadline: None,
        idle_until: None,
        keepalive_timeout: dsrv.conf.keepalive_timeout,
        send_timeout: dsrv.conf.send_timeout,
    };
    loop {
        if st.io.pending().is_empty() && !idle(w, &mut st, dsrv).await {
            break;
        }
        // Busy: the requests (and the reads within them) run in a future
        // of their own, which an idle connection does not hold.
        if !Box::pin(serve_requests(w, &mut st, servers, dsrv)).await {
            break;
        }
    }
    // What was handed to the kernel goes out before the socket closes.
    st.io.settle().await;
}

/// Between requests (or before the first): the last response goes out,
/// the buffers go, and the connection waits for the next request's first
/// bytes. false: it ends (timeout, close, or the worker shutting down).
async fn idle(w: &Worker, st: &mut ConnState, dsrv: &crate::conf::Server) -> bool {
    // A new connection is always served, even while shutting down.
    let keepalive = st.conn.requests > 0;
    if keepalive && (w.shutdown.is_set() || st.keepalive_timeout.is_zero()) {
        return false;
    }
    if !st.io.settle().await {
        return false;
    }
    let io = &mut st.io;
    io.inbuf = Vec::new();
    io.start = 0;
    io.out = Vec::new();
    io.spare = Vec::new();
    // client_header_timeout covers the whole head, as nginx's.
    let deadline = if keepalive {
        st.idle_until.take().unwrap_or_else(|| rt::now() + st.keepalive_timeout)
    } else {
        *st.head_deadline.get_or_insert_with(|| rt::now() + dsrv.client_header_timeout)
    };
    match io.read(HEAD_READ, deadline, keepalive.then_some(w)).await {
        Read::Data => true,
        Read::TimedOut if !keepalive => {
            crate::error_log!(Level::Info, Some(st.conn.number), "client timed out (110: Connection timed out) while reading client request headers, client: {}", st.conn.remote_addr());
            false
        }
        _ => false,
    }
}

/// Serve the requests that arrive until the connection goes idle (true) or
/// must close (false).
async fn serve_requests(w: &Rc<Worker>, st: &mut ConnState, servers: &super::select::AddrTable, dsrv: &crate::conf::Server) -> bool {
    let cfg = &w.cfg;
    let limits = Limits { header_buffer: dsrv.client_header_buffer_size, large_buffers: dsrv.large_client_header_buffers };
    let policy = HeaderPolicy { underscores_in_headers: dsrv.underscores_in_headers, ignore_invalid_headers: dsrv.ignore_invalid_headers };
    let ConnState { io, conn, head_deadline, idle_until, keepalive_timeout, send_timeout } = st;
    // One request head for the busy spell: parsing reuses its buffers.
    let req = &mut Request::default();
    loop {
        // Nothing buffered (the usual end of a batch): no head to look for.
        let parsed = match io.pending() {
            [] => Ok(None),
            pending => parse_request_into(pending, &limits, &policy, req),
        };
        let head_len = match parsed {
            Ok(Some(n)) => n,
            Ok(None) => {
                if !io.out.is_empty() && !io.flush(*send_timeout).await {
                    return false;
                }
                if io.pending().is_empty() {
                    // Between requests. A client that came back for another
                    // request waits here a little (one that keeps sending
                    // stays in this spell, buffers and parse state warm);
                    // others, and this one after the wait, go idle.
                    if conn.requests < 2 {
                        return true;
                    }
                    if w.shutdown.is_set() || keepalive_timeout.is_zero() {
                        return false;
                    }
                    let until = rt::now() + *keepalive_timeout;
                    *idle_until = Some(until);
                    return match io.read(HEAD_READ, until.min(rt::now() + BUSY_LINGER), Some(&**w)).await {
                        Read::Data => {
                            *idle_until = None;
                            continue;
                        }
                        Read::TimedOut => true,
                        _ => false,
                    };
                }
                // A head in part: read the rest.
                let deadline = *head_deadline.get_or_insert_with(|| rt::now() + dsrv.client_header_timeout);
                match io.read(HEAD_READ, deadline, None).await {
                    Read::Data => continue,
                    Read::TimedOut => {
                        crate::error_log!(Level::Info, Some(conn.number), "client timed out (110: Connection timed out) while reading client request headers, client: {}", conn.remote_addr());
                        send_error(io, 408, dsrv.conf.server_tokens, *send_timeout).await;
                        return false;
                    }
                    _ => return false,
                }
            }
            Err(e) => {
                let req = Request::unparsed(io.pending());
                conn.requests += 1;
                let mut ctx = RequestCtx::new(&req, conn, dsrv, io.pending().len() as u64);
                ctx.log(Level::Info, format_args!("{} while reading client request headers", e.reason));
                // The rest of the input is not a request: no body to read.
                ctx.body_done = true;
                let mut client = Client { w, io: &mut *io, body_ok: false, head: None, reader: None };
                let resp = phases::error_response(w.lua.as_ref(), &mut ctx, &mut client, e.status).await;
                if client.send(&mut ctx, resp).await.is_some() {
                    io.flush(*send_timeout).await;
                    lingering_close(io).await;
                }
                access_log(w, &mut ctx);
                return false;
            }
        };
        io.start += head_len;
        conn.requests += 1;
        *head_deadline = None;
        let server_idx = servers.select(&cfg.http.servers, || req.host());
        let server = &cfg.http.servers[server_idx];
        let mut ctx = RequestCtx::new(req, conn, server, head_len as u64);
        ctx.id = w.request_number();
        server_name_captures(&mut ctx);
        // The request's whole life: its phases, the response, the log.
        let mut client = Client { w, io: &mut *io, body_ok: true, head: None, reader: None };
        let resp = phases::run(w.lua.as_ref(), &mut ctx, &mut client).await;
        let keep = client.send(&mut ctx, resp).await;
        phases::log(w.lua.as_ref(), &mut ctx).await;
        access_log(w, &mut ctx);
        // The location's settings from here on (the handlers may have moved the request).
        *keepalive_timeout = ctx.conf.keepalive_timeout;
        *send_timeout = ctx.conf.send_timeout;
        match keep {
            None => return false,
            Some(false) => {
                io.flush(*send_timeout).await;
                lingering_close(io).await;
                return false;
            }
            Some(true) => {}
        }
        if io.out.len() > OUT_HIGH_WATER && !io.flush(*send_timeout).await {
            return false;
        }
    }
}

/// Whether the connection may take another request after this one, as far
/// as the request and the configuration go (the response may still say no).
fn may_keep_alive(w: &Worker, ctx: &RequestCtx<'_>, body_ok: bool) -> bool {
    body_ok
        && !ctx.raw_socket
        && ctx.req.keep_alive
        && ctx.conn.requests < ctx.conf.keepalive_requests
        && !ctx.conf.keepalive_timeout.is_zero()
        && !w.shutdown.is_set()
}

/// The client of one request, as the phases and handlers reach it: its
/// body, and the response going out, whole ([`Client::send`]) or as a
/// content handler produces it (ngx.flush: the head at the first flush,
/// then the body chunked on HTTP/1.1, or ended by closing on HTTP/1.0).
struct Client<'s> {
    w: &'s Worker,
    io: &'s mut Io,
    /// The request body was read or dropped whole (the connection can be reused).
    body_ok: bool,
    /// Set when a streamed head is out.
    head: Option<Streamed>,
    /// A body being read piece by piece (`read_body_part`), not yet whole.
    reader: Option<BodyReader>,
}

/// How a streamed response was started.
#[derive(Clone, Copy)]
struct Streamed {
    chunked: bool,
    /// HEAD, 204, 304, 1xx: no body at all.
    head_only: bool,
    /// Whether the head said keep-alive.
    keep: bool,
    /// The body was ended (ngx.eof, or a body filter's ngx.arg[2]).
    ended: bool,
    /// A send failed: the client is gone.
    broken: bool,
}

impl Client<'_> {
    /// The body could not be read: the connection is not reused; the
    /// status the request ends with (400 when the client left mid-body,
    /// as nginx logs it).
    fn body_failed(&mut self, e: BodyError) -> u16 {
        self.body_ok = false;
        match e {
            BodyError::Status(s) => s,
            BodyError::Closed => 400,
        }
    }

    /// ngx.req.socket(true) in use: the handler owns the wire from now on
    /// (no head or body of halo's follows) and the connection closes after.
    fn take_over(&mut self, ctx: &mut RequestCtx<'_>) {
        ctx.raw_socket = true;
        ctx.resp.headers_sent = true;
        let head = self.head.get_or_insert(Streamed { chunked: false, head_only: true, keep: false, ended: true, broken: false });
        // A head streamed before (the usual 101) said keep-alive: no more.
        head.keep = false;
        head.ended = true;
    }

    /// Send the response the phases made (or end the one that streamed):
    /// header and body filters, the head, the body. Whether the connection
    /// may take another request; None when it failed.
    async fn send<'a>(&mut self, ctx: &mut RequestCtx<'a>, mut resp: Response<'a>) -> Option<bool> {
        if let Some(s) = self.head.take() {
            return Some(self.end_stream(ctx, s, resp).await);
        }
        let lua = self.w.lua.as_ref();
        // A body that was streamed in part is not read further: the
        // connection closes after the response, as nginx's.
        if self.reader.take().is_some() {
            self.body_ok = false;
            resp.close = true;
        }
        // What is left of the body is read and dropped (or refused).
        // Most requests have none: skip making the future.
        if self.body_ok && !ctx.body_done && (ctx.req.content_length.unwrap_or(0) > 0 || ctx.req.chunked) {
            if let Err(e) = read_body(self.io, ctx, None).await {
                self.body_ok = false;
                if let BodyError::Status(status) = e {
                    resp = phases::error_response(lua, ctx, self, status).await;
                }
                resp.close = true;
            }
        }
        if ctx.conf.header_filter_by_lua.is_some() {
            resp = phases::header_filter(lua, ctx, resp).await;
        }
        if ctx.conf.body_filter_by_lua.is_some() {
            resp = self.filter_whole(ctx, resp).await?;
        }
        let keep = !resp.close
            && !matches!(ctx.resp.status, 400 | 408 | 413 | 414 | 431 | 494 | 500 | 501 | 505)
            && may_keep_alive(self.w, ctx, self.body_ok);
        if let Some(f) = write_response(self.io, ctx, resp, keep) {
            if !send_file(self.io, f, ctx.conf.send_timeout).await {
                return None;
            }
        }
        Some(keep)
    }

    /// body_filter_by_lua* over a body that is not streamed: one chunk, the
    /// last. None when a file body cannot be read.
    async fn filter_whole<'a>(&mut self, ctx: &mut RequestCtx<'a>, mut resp: Response<'a>) -> Option<Response<'a>> {
        let body = match std::mem::replace(&mut resp.body, Body::Empty) {
            Body::Bytes(b) => b.into_owned(),
            Body::File(f) => {
                use std::io::{Read, Seek};
                let mut file = f.file;
                let mut buf = Vec::with_capacity(f.len as usize);
                if file.seek(std::io::SeekFrom::Start(f.offset)).and_then(|_| file.take(f.len).read_to_end(&mut buf)).is_err() {
                    ctx.log(Level::Error, format_args!("body_filter_by_lua*: reading the file failed"));
                    return None;
                }
                buf
            }
            Body::Empty => return Some(resp),
        };
        let (body, _) = phases::body_filter(self.w.lua.as_ref(), ctx, body, true).await;
        resp.body = Body::Bytes(std::borrow::Cow::Owned(body));
        resp.content_length = None;
        Some(resp)
    }

    /// The handler ended after streaming: the rest of its output, then the
    /// end of the body, unless it failed (the body stays cut: the client
    /// sees an unfinished chunked body, as from OpenResty). Whether the
    /// connection stays.
    async fn end_stream(&mut self, ctx: &mut RequestCtx<'_>, mut s: Streamed, resp: Response<'_>) -> bool {
        if resp.close {
            return false;
        }
        let rest = match resp.body {
            Body::Bytes(b) => b.into_owned(),
            _ => Vec::new(),
        };
        if !s.ended {
            let (rest, _) = phases::body_filter(self.w.lua.as_ref(), ctx, rest, true).await;
            send_part(self.io, ctx, &mut s, &rest, true);
        }
        s.keep && !s.broken
    }
}

impl crate::lua::handler::Stream for Client<'_> {
    async fn flush(&mut self, ctx: &mut RequestCtx<'_>, eof: bool) -> bool {
        if self.head.is_none() {
            if !ctx.resp.proxied {
                crate::lua::handler::lua_head(ctx, 0);
            }
            phases::add_headers(ctx);
            let lua = self.w.lua.as_ref();
            // A failing filter makes the status 500; its page has no place in a
            // stream, so only the head changes.
            phases::header_filter(lua, ctx, Response::with_body(Body::Empty)).await;
            let head_only = is_head_only(ctx, ctx.resp.status);
            // A known length goes out as it is, unless a body filter may
            // change the body (lua-nginx-module clears it then).
            let length = ctx.resp.length.filter(|_| ctx.conf.body_filter_by_lua.is_none());
            let chunked = !head_only && length.is_none() && ctx.req.version_minor >= 1;
            // A body the handler did not read is not read after a stream:
            // such a response closes the connection.
            let body_left = !ctx.body_done && (ctx.req.content_length.unwrap_or(0) > 0 || ctx.req.chunked);
            let keep = (chunked || head_only || length.is_some()) && !body_left && may_keep_alive(self.w, ctx, self.body_ok);
            ctx.resp.bytes_sent = write_head(self.io, ctx, length, chunked, keep);
            self.head = Some(Streamed { chunked, head_only, keep, ended: false, broken: false });
        }
        let mut s = self.head.expect("the head was just written");
        if !s.ended {
            let chunk = std::mem::take(&mut ctx.resp.out);
            let (chunk, end) = phases::body_filter(self.w.lua.as_ref(), ctx, chunk, eof).await;
            send_part(self.io, ctx, &mut s, &chunk, eof || end);
        }
        // A proxied body's last part is not waited for: only the log phase
        // follows it, and the connection's next send or close waits. (Lua's
        // is: its handler may go on after ngx.eof, and the wait is what
        // gets the send submitted before it does.)
        let last = s.ended && ctx.resp.proxied;
        let ok = self.io.flush(ctx.conf.send_timeout).await && (last || self.io.settle().await);
        s.broken |= !ok;
        self.head = Some(s);
        ok
    }

    fn client_fd(&self) -> Option<RawFd> {
        Some(self.io.fd)
    }

    async fn hangup(&mut self) {
        let io = &mut *self.io;
        // The connection's multishot receive is armed already: waiting on
        // it costs no operation (a poll would cost one, and its cancel).
        if let Some(multi) = io.multi.as_mut() {
            while io.inbuf.len() - io.start < HANGUP_KEEP {
                match multi.next_into(&mut io.inbuf).await {
                    n if n > 0 => continue,
                    n if n == -libc::ENOBUFS => break,
                    _ => return,
                }
            }
            if io.inbuf.len() - io.start >= HANGUP_KEEP {
                // It keeps sending: not gone (nginx's peek would see data too).
                return std::future::pending().await;
            }
        }
        let revents = ops::poll_readable(io.fd).await;
        if revents < 0 || revents & i32::from(libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
        std::future::pending::<()>().await
    }

    async fn read_raw(&mut self, ctx: &mut RequestCtx<'_>, max: usize, body: bool, timeout: Duration) -> Result<Vec<u8>, &'static str> {
        let length = ctx.req.content_length.unwrap_or(0);
        let left = if body { length.saturating_sub(ctx.body_taken) } else { u64::MAX };
        if !body {
            self.take_over(ctx);
        }
        if left == 0 {
            ctx.body_done = true;
            return Err("closed");
        }
        if self.io.pending().is_empty() {
            match self.io.read(max.max(1), rt::now() + timeout, None).await {
                Read::Data => {}
                Read::TimedOut => return Err("timeout"),
                _ => {
                    self.body_ok = false;
                    return Err("closed");
                }
            }
        }
        let avail = self.io.pending();
        let n = (avail.len() as u64).min(left).min(max as u64) as usize;
        let data = avail[..n].to_vec();
        self.io.start += n;
        if body {
            ctx.body_taken += n as u64;
            ctx.request_length += n as u64;
            ctx.body_done = ctx.body_taken >= length;
        }
        Ok(data)
    }

    async fn write_raw(&mut self, ctx: &mut RequestCtx<'_>, data: &[u8]) -> bool {
        self.take_over(ctx);
        self.io.out.extend_from_slice(data);
        self.io.flush(ctx.conf.send_timeout).await && self.io.settle().await
    }

    async fn tunnel(&mut self, ctx: &mut RequestCtx<'_>, peer: RawFd, idle: Duration) -> Result<(), &'static str> {
        self.take_over(ctx);
        self.body_ok = false;
        // What was queued for the client goes first; the peer's bytes then go
        // straight to the socket, beside the client's read.
        if !(self.io.flush(idle).await && self.io.settle().await) {
            return Ok(());
        }
        let fd = self.io.fd;
        loop {
            // The client's bytes (what it sent after its head first) to the peer.
            if !self.io.pending().is_empty() {
                let data = self.io.pending().to_vec();
                self.io.start = self.io.inbuf.len();
                if ops::send_all(peer, data, idle, &mut 0).await.is_err() {
                    return Ok(());
                }
            }
            // One read of the client, kept while the peer's bytes are relayed
            // (never dropped in flight, so nothing it got is lost); the idle
            // timeout is the race's, renewed by each piece from the peer.
            let read = {
                let mut client = std::pin::pin!(self.io.read(TUNNEL_READ, rt::now() + idle + Duration::from_secs(86_400), None));
                loop {
                    let res = rt::race(client.as_mut(), rt::race(ops::poll_readable(peer), rt::sleep_until(rt::now() + idle))).await;
                    match res {
                        Ok(read) => break read,
                        Err(Err(_)) => return Err("timed out"),
                        Err(Ok(_)) => {
                            let (n, buf) = ops::recv(peer, Vec::with_capacity(TUNNEL_READ), TUNNEL_READ, false).await;
                            if n <= 0 {
                                return Ok(());
                            }
                            ctx.resp.body_bytes_sent += buf.len() as u64;
                            ctx.resp.bytes_sent += buf.len() as u64;
                            if ops::send_all(fd, buf, idle, &mut 0).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            };
            match read {
                Read::Data => {}
                Read::TimedOut => return Err("timed out"),
                _ => return Ok(()),
            }
        }
    }

    async fn read_body(&mut self, ctx: &mut RequestCtx<'_>) -> Result<(), u16> {
        if ctx.body_done || !self.body_ok {
            return Ok(());
        }
        read_body_into(self.io, ctx).await.map_err(|e| self.body_failed(e))
    }

    async fn read_body_part(&mut self, ctx: &mut RequestCtx<'_>, wait: bool) -> Result<Vec<u8>, u16> {
        if ctx.body_done {
            return Ok(Vec::new());
        }
        if self.reader.is_none() {
            // (The connection was taken over, or its body failed before.)
            if !self.body_ok {
                return Err(500);
            }
            match BodyReader::new(ctx, true) {
                Ok(Some(r)) => self.reader = Some(r),
                Ok(None) => return Ok(Vec::new()),
                Err(e) => return Err(self.body_failed(e)),
            }
        }
        // The reader stays in place while it waits: a read given up (the
        // proxy's upstream answered first) leaves the body unfinished.
        let reader = self.reader.as_mut().expect("made above");
        let mut piece = Vec::new();
        match reader.next(self.io, ctx, &mut piece, wait).await {
            Ok(done) => {
                if done {
                    self.reader = None;
                }
                Ok(piece)
            }
            Err(e) => {
                self.reader = None;
                Err(self.body_failed(e))
            }
        }
    }
}

/// Bytes asked of one read in a tunnel (an upgraded proxied connection).
const TUNNEL_READ: usize = 64 * 1024;


/// Queue a streamed body part (and its end if `eof`).
fn send_part(io: &mut Io, ctx: &mut RequestCtx<'_>, s: &mut Streamed, data: &[u8], eof: bool) {
    if s.head_only || s.ended || s.broken {
        return;
    }
    let before = io.out.len();
    if !data.is_empty() {
        if s.chunked {
            write_chunk(&mut io.out, data);
        } else {
            io.out.extend_from_slice(data);
        }
        ctx.resp.body_bytes_sent += data.len() as u64;
    }
    if eof {
        if s.chunked {
            io.out.extend_from_slice(LAST_CHUNK);
        }
        s.ended = true;
    }
    ctx.resp.bytes_sent += (io.out.len() - before) as u64;
}

/// Named groups of a matching `server_name ~regex` become variables.
fn server_name_captures(ctx: &mut RequestCtx) {
    if !ctx.server.has_regex_name {
        return;
    }
    let Some(host) = ctx.req.host() else { return };
    for name in &ctx.server.names {
        if let crate::conf::ServerName::Regex(re) = name {
            if let Some(caps) = re.captures(host) {
                let caps = caps.iter().map(|m| m.map_or(String::new(), |m| m.as_str().to_string())).collect();
                super::phases::set_captures(ctx, re, caps);
                return;
            }
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy)]
enum BodyError {
    /// Answer this status (and close): 413, 400, 408, or 500 when the
    /// temp file failed.
    Status(u16),
    /// The client closed the connection.
    Closed,
}

/// Read the body into `ctx.body`: memory, or a temp file past
/// client_body_buffer_size (request/body.rs).
async fn read_body_into(io: &mut Io, ctx: &mut RequestCtx<'_>) -> Result<(), BodyError> {
    let mut writer = BodyWriter::new(ctx.conf);
    read_body(io, ctx, Some(&mut writer)).await?;
    match writer.finish().await {
        Ok(body) => {
            ctx.body = Some(body);
            Ok(())
        }
        Err(e) => {
            ctx.log(Level::Crit, format_args!("{e}"));
            Err(BodyError::Status(500))
        }
    }
}

/// Consume the request body (Content-Length or chunked), into `writer`, or
/// dropped without one. Nothing of the body is left on the connection
/// after Ok (`ctx.body_done`).
async fn read_body(io: &mut Io, ctx: &mut RequestCtx<'_>, mut writer: Option<&mut BodyWriter>) -> Result<(), BodyError> {
    let Some(mut reader) = BodyReader::new(ctx, writer.is_some())? else { return Ok(()) };
    let mut sink = Vec::new();
    loop {
        let done = reader.next(io, ctx, &mut sink, true).await?;
        if let Some(w) = writer.as_deref_mut() {
            if let Err(e) = w.push(&sink).await {
                ctx.log(Level::Crit, format_args!("{e}"));
                return Err(BodyError::Status(500));
            }
        }
        sink.clear();
        if done {
            return Ok(());
        }
    }
}

/// A request body being read off the connection piece by piece
/// (Content-Length or chunked, decoded): 413 over client_max_body_size,
/// 400 for a bad chunk, 408 on client_body_timeout.
struct BodyReader {
    decoder: Option<ChunkedDecoder>,
    /// Bytes of a Content-Length body still to come.
    left: u64,
    max: u64,
    /// `100 Continue` went out.
    continued: bool,
    /// The bytes are wanted (a Content-Length body being discarded is not
    /// copied).
    keep: bool,
}

impl BodyReader {
    /// The reader of the request's body; None when there is none left
    /// (`ctx.body_done` set). 413 for a Content-Length over the limit.
    fn new(ctx: &mut RequestCtx<'_>, keep: bool) -> Result<Option<BodyReader>, BodyError> {
        let req: &Request = ctx.req;
        let length = req.content_length.unwrap_or(0);
        // (What Lua read through ngx.req.socket() is gone already.)
        let left = length.saturating_sub(ctx.body_taken);
        if !req.chunked && left == 0 {
            ctx.body_done = true;
            return Ok(None);
        }
        let max = ctx.conf.client_max_body_size;
        if max > 0 && length > max {
            ctx.log(Level::Error, format_args!("client intended to send too large body: {length} bytes"));
            return Err(BodyError::Status(413));
        }
        Ok(Some(BodyReader { decoder: req.chunked.then(ChunkedDecoder::new), left, max, continued: false, keep }))
    }

    /// The next piece of the body into `sink`: what is buffered, after one
    /// read within client_body_timeout when nothing is and `wait`. A piece
    /// may be empty (chunk framing only). Ok(true) at the body's end
    /// (`ctx.body_done` set).
    async fn next(&mut self, io: &mut Io, ctx: &mut RequestCtx<'_>, sink: &mut Vec<u8>, wait: bool) -> Result<bool, BodyError> {
        if wait && io.pending().is_empty() {
            if ctx.req.expect_continue && ctx.req.version_minor == 1 && !self.continued {
                self.continued = true;
                io.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                if !io.flush(ctx.conf.send_timeout).await {
                    return Err(BodyError::Closed);
                }
            }
            match io.read(BODY_READ, rt::now() + ctx.conf.client_body_timeout, None).await {
                Read::Data => {}
                Read::TimedOut => {
                    ctx.log(Level::Info, format_args!("client timed out (110: Connection timed out) while reading client request body"));
                    return Err(BodyError::Status(408));
                }
                Read::Eof => {
                    // (A body being discarded may end so, unremarked.)
                    if self.keep {
                        ctx.log(Level::Info, format_args!("client prematurely closed connection"));
                    }
                    return Err(BodyError::Closed);
                }
                _ => return Err(BodyError::Closed),
            }
        }
        let avail = io.pending();
        let done = if let Some(d) = self.decoder.as_mut() {
            match d.decode(avail, sink) {
                Ok((used, done)) => {
                    io.start += used;
                    ctx.request_length += used as u64;
                    if self.max > 0 && d.total() > self.max {
                        ctx.log(Level::Error, format_args!("client intended to send too large chunked body: {} bytes", d.total()));
                        return Err(BodyError::Status(413));
                    }
                    done
                }
                Err(e) => {
                    ctx.log(Level::Info, format_args!("{}", e.reason));
                    return Err(BodyError::Status(400));
                }
            }
        } else {
            let used = (avail.len() as u64).min(self.left) as usize;
            if self.keep {
                sink.extend_from_slice(&avail[..used]);
            }
            io.start += used;
            self.left -= used as u64;
            ctx.request_length += used as u64;
            self.left == 0
        };
        ctx.body_done = done;
        Ok(done)
    }
}

/// Queue the response in `io.out`; a file body is streamed by the caller
/// (`send_file`), which is async, so the common case makes no future.
fn write_response<'a>(io: &mut Io, ctx: &mut RequestCtx<'a>, resp: Response<'a>, keep: bool) -> Option<FileBody> {
    let status = ctx.resp.status;
    let head_only = is_head_only(ctx, status);
    let content_length = match (&resp.body, resp.content_length) {
        (Body::Empty, None) if matches!(status, 204 | 304) || status < 200 => None,
        (Body::Empty, cl) => Some(cl.unwrap_or(0)),
        (Body::Bytes(b), _) => Some(b.len() as u64),
        (Body::File(f), cl) => cl.or(Some(f.len)),
    };
    let head_len = write_head(io, ctx, content_length, false, keep);
    let mut sent_body = 0u64;
    let mut file = None;
    if !head_only {
        match resp.body {
            Body::Empty => {}
            Body::Bytes(b) => {
                io.out.extend_from_slice(&b);
                sent_body = b.len() as u64;
                if let std::borrow::Cow::Owned(buf) = b {
                    crate::request::recycle(buf);
                }
            }
            Body::File(f) => {
                // Counted as sent; send_file says if it was not.
                sent_body = f.len;
                file = Some(f);
            }
        }
    }
    ctx.resp.body_bytes_sent = sent_body;
    ctx.resp.bytes_sent = head_len + sent_body;
    file
}

/// A response without a body: to HEAD, and statuses that have none.
#[inline]
fn is_head_only(ctx: &RequestCtx<'_>, status: u16) -> bool {
    ctx.req.method == Method::Head || matches!(status, 204 | 304) || status < 200
}

/// Queue the head of the request's response; returns its length.
#[inline]
fn write_head(io: &mut Io, ctx: &mut RequestCtx<'_>, content_length: Option<u64>, chunked: bool, keep: bool) -> u64 {
    let server_tokens = ctx.conf.server_tokens;
    let before = io.out.len();
    let resp = &ctx.resp;
    crate::log::time::with_http_date(|date| {
        ResponseHead {
            status: resp.status,
            // The upstream's phrase, unless the status changed since.
            reason: resp.reason.as_ref().filter(|(s, _)| *s == resp.status).map(|(_, r)| r.as_str()),
            server: Some(if server_tokens { SERVER_VERSION } else { SERVER_NAME }),
            date,
            content_type: resp.content_type.as_deref(),
            content_length,
            // Last-Modified, Location and the rest go out in the order the
            // phases added them, after Connection.
            last_modified: None,
            location: None,
            chunked,
            // A 101 says `Connection: upgrade`, as nginx's header filter.
            keep_alive: if resp.status == 101 {
                KeepAlive::Upgrade
            } else if keep {
                KeepAlive::Yes
            } else {
                KeepAlive::No
            },
            keep_alive_timeout: None,
            extra: &resp.headers,
        }
        .write(&mut io.out)
    });
    (io.out.len() - before) as u64
}

/// Append (small) or stream (large) a file range; false on failure.
async fn send_file(io: &mut Io, f: FileBody, send_timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let fd = f.file.as_raw_fd();
    let mut off = f.offset;
    let end = f.offset + f.len;
    while off < end {
        if f.len > FILE_INLINE && !io.out.is_empty() && !io.flush(send_timeout).await {
            return false;
        }
        let want = (end - off).min(FILE_INLINE) as usize;
        let buf = std::mem::take(&mut io.out);
        let (n, buf) = ops::read_at(fd, buf, want, off).await;
        io.out = buf;
        if n <= 0 {
            crate::error_log!(Level::Crit, None, "read() of file failed ({})", std::io::Error::from_raw_os_error(-n.min(-1)));
            return false;
        }
        off += n as u64;
    }
    true
}

async fn send_error(io: &mut Io, status: u16, server_tokens: bool, send_timeout: Duration) {
    let body = error_page_body(status, server_tokens).unwrap_or_default();
    crate::log::time::with_http_date(|date| {
        ResponseHead {
            server: Some(if server_tokens { SERVER_VERSION } else { SERVER_NAME }),
            content_type: Some("text/html"),
            content_length: Some(body.len() as u64),
            ..ResponseHead::new(status, date)
        }
        .write(&mut io.out)
    });
    io.out.extend_from_slice(body.as_bytes());
    io.flush(send_timeout).await;
}

/// Before closing on a client that may still be sending, stop writing and
/// drain its input for a moment, so the response is not lost to a reset
/// (nginx's lingering_close).
async fn lingering_close(io: &mut Io) {
    if !io.settle().await {
        return;
    }
    // SAFETY: shutdown(2) on the connection's own socket.
    unsafe { libc::shutdown(io.fd, libc::SHUT_WR) };
    let deadline = rt::now() + Duration::from_secs(2);
    for _ in 0..64 {
        io.inbuf.clear();
        io.start = 0;
        match io.read(BODY_READ, deadline, None).await {
            Read::Data => {}
            _ => return,
        }
    }
}

/// Write the access_log lines of the request's location.
#[inline]
fn access_log(w: &Worker, ctx: &mut RequestCtx) {
    if !ctx.conf.access_log.is_empty() {
        write_access_log(w, ctx);
    }
}

fn write_access_log(w: &Worker, ctx: &mut RequestCtx) {
    let conf = ctx.conf;
    let mut line = Vec::with_capacity(256);
    for log in &conf.access_log {
        let Some(fmt) = conf.log_formats.get(&log.format) else { continue };
        line.clear();
        fmt.render_escaped(ctx, &[], Escape::Default, &mut line);
        line.push(b'\n');
        w.access_logs.borrow_mut().write(&log.path, &line);
    }
}
