//! Running one subrequest (ngx.location.capture): a request of its own,
//! made from the owned [`Spec`] the FFI copied out of its parent (head,
//! body, variables, connection facts), through the target location's
//! phases, header and body filters, with its output kept in memory
//! ([`Sink`]) instead of sent. No log phase and no access log line, as
//! nginx's subrequests (without `log_subrequest`).

use std::borrow::Cow;
use std::rc::{Rc, Weak};

use crate::http::request::{parse_request_into, HeaderPolicy, Limits, Request};
use crate::lua::handler::{lua_head, Stream};
use crate::lua::subrequest::{Outcome, Running, Spec};
use crate::request::body::RequestBody;
use crate::request::{Body, ConnInfo, RequestCtx};

use super::{phases, Worker};

/// The worker's runner (lua::subrequest::set_runner): each subrequest gets
/// the worker's next request number, and runs when its future is polled.
pub fn runner(w: Weak<Worker>) -> impl Fn(Spec) -> Option<(u64, Running)> {
    move |spec| {
        let w = w.upgrade()?;
        let id = w.request_number();
        let fut: Running = Box::pin(run(w, id, spec));
        Some((id, fut))
    }
}

/// The subrequest's output, gathered instead of sent.
struct Sink<'w> {
    w: &'w Worker,
    out: Vec<u8>,
    /// The head was made (the first ngx.flush).
    head: bool,
    /// The body ended (ngx.eof, or a body filter's ngx.arg[2]).
    ended: bool,
}

impl Stream for Sink<'_> {
    async fn flush(&mut self, ctx: &mut RequestCtx<'_>, eof: bool) -> bool {
        let lua = self.w.lua.as_ref();
        if !self.head {
            self.head = true;
            lua_head(ctx, 0);
            phases::add_headers(ctx);
            phases::header_filter(lua, ctx, crate::request::Response::with_body(Body::Empty)).await;
        }
        if !self.ended {
            let chunk = std::mem::take(&mut ctx.resp.out);
            let (chunk, end) = phases::body_filter(lua, ctx, chunk, eof).await;
            self.out.extend_from_slice(&chunk);
            self.ended = eof || end;
        }
        true
    }

    async fn read_body(&mut self, _: &mut RequestCtx<'_>) -> Result<(), u16> {
        // The body is the spec's, in memory from the start.
        Ok(())
    }

    async fn read_body_part(&mut self, _: &mut RequestCtx<'_>, _: bool) -> Result<Vec<u8>, u16> {
        // As read_body: the whole body is in ctx.body already.
        Ok(Vec::new())
    }

    fn client_fd(&self) -> Option<std::os::fd::RawFd> {
        // The client's close is the parent's to watch.
        None
    }

    async fn hangup(&mut self) {
        std::future::pending::<()>().await
    }

    async fn read_raw(&mut self, _: &mut RequestCtx<'_>, _: usize, _: bool, _: std::time::Duration) -> Result<Vec<u8>, &'static str> {
        // ngx.req.socket refuses subrequests before it gets here.
        Err("closed")
    }

    async fn write_raw(&mut self, _: &mut RequestCtx<'_>, _: &[u8]) -> bool {
        false
    }

    async fn tunnel(&mut self, _: &mut RequestCtx<'_>, _: std::os::fd::RawFd, _: std::time::Duration) -> Result<(), &'static str> {
        // A subrequest has no connection of its own to upgrade.
        Err("no client connection")
    }
}

async fn run(w: Rc<Worker>, id: u64, spec: Spec) -> Outcome {
    let failed = Outcome { status: 500, content_length: -1, ..Outcome::default() };
    let Some(server) = w.cfg.http.servers.iter().find(|s| std::ptr::from_ref(*s) as usize == spec.server) else { return failed };
    let mut req = Request::default();
    let limits = Limits { header_buffer: 1 << 20, large_buffers: (16, 1 << 20) };
    if !matches!(parse_request_into(spec.head.as_bytes(), &limits, &HeaderPolicy { underscores_in_headers: true, ignore_invalid_headers: false }, &mut req), Ok(Some(_))) {
        crate::error_log!(crate::log::Level::Error, Some(spec.conn_number), "failed to make the head of subrequest \"{}\"", spec.uri);
        return failed;
    }
    let mut conn = ConnInfo::new(spec.fd, spec.listen, spec.conn_number);
    conn.requests = spec.conn_requests;
    let mut ctx = RequestCtx::new(&req, &conn, server, 0);
    ctx.id = id;
    ctx.depth = spec.depth;
    ctx.internal = true;
    ctx.method_override = Some(spec.method);
    ctx.uri = Cow::Owned(spec.uri);
    ctx.args = spec.args.map(Cow::Owned);
    ctx.body = spec.body.map(RequestBody::Memory);
    ctx.body_done = true;
    ctx.has_lua_ctx = spec.custom_ctx;
    for (name, value) in spec.vars {
        if ctx.assign(&name, value.clone()).is_err() {
            ctx.set_var(&name, value);
        }
    }
    let lua = w.lua.as_ref();
    let mut sink = Sink { w: &w, out: Vec::new(), head: false, ended: false };
    let resp = phases::run(lua, &mut ctx, &mut sink).await;
    let mut truncated = false;
    let mut content_length = -1;
    if sink.head {
        // The handler streamed (ngx.flush): the rest of its output.
        if !sink.ended {
            let rest = match resp.body {
                Body::Bytes(b) => b.into_owned(),
                _ => Vec::new(),
            };
            let (rest, _) = phases::body_filter(lua, &mut ctx, rest, true).await;
            sink.out.extend_from_slice(&rest);
        }
        truncated = resp.close;
    } else if resp.special {
        // As nginx: a special response's status and headers, no page.
        let resp = phases::header_filter(lua, &mut ctx, resp).await;
        drop(resp);
        ctx.resp.content_type = None;
    } else {
        let resp = phases::header_filter(lua, &mut ctx, resp).await;
        let body = match resp.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b.into_owned(),
            Body::File(f) => {
                use std::io::{Read, Seek};
                let mut file = f.file;
                let mut buf = Vec::with_capacity(f.len as usize);
                if file.seek(std::io::SeekFrom::Start(f.offset)).and_then(|_| file.take(f.len).read_to_end(&mut buf)).is_err() {
                    truncated = true;
                }
                buf
            }
        };
        // nginx knows the length of a file or a `return` text (not of a
        // Lua handler's output), unless a body filter may change it.
        let lua_content = ctx.conf.content_by_lua.is_some();
        if ctx.conf.body_filter_by_lua.is_none() {
            content_length = match resp.content_length {
                Some(n) => n as i64,
                None if !lua_content => body.len() as i64,
                None => -1,
            };
        }
        let (body, _) = phases::body_filter(lua, &mut ctx, body, true).await;
        sink.out = body;
    }
    if ctx.method() == "HEAD" {
        sink.out.clear();
    }
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = ctx.resp.headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    if let Some(ct) = &ctx.resp.content_type {
        headers.push((b"Content-Type".to_vec(), ct.as_bytes().to_vec()));
    }
    if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"content-length")) {
        content_length = -1;
    }
    let status = if ctx.resp.status == 0 { 200 } else { ctx.resp.status };
    let vars = spec.share_vars.then(|| std::mem::take(&mut ctx.set_vars));
    if ctx.has_lua_ctx {
        if let Some(lua) = lua {
            lua.request_done(ctx.id);
        }
    }
    Outcome { status, headers, content_length, body: sink.out, truncated, vars }
}
