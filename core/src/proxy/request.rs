//! The request sent upstream: nginx's URI rules and its header list.

use std::borrow::Cow;

use crate::api::uri::{escape_into, Escape};
use crate::conf::proxy::{ProxyConf, ProxyPass};
use crate::conf::{LocKind, Location};
use crate::request::RequestCtx;
use crate::conf::template::Template;

use super::upload::Upload;

/// Request headers never passed on (hop-by-hop, or made here).
fn dropped(name: &str) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let hop = match name.len() {
        2 => is("te"),
        4 => is("host"),
        6 => is("expect"),
        7 => is("trailer") || is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        14 => is("content-length"),
        17 => is("transfer-encoding"),
        _ => false,
    };
    hop || name.len() >= 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"proxy-")
}

/// The URI sent upstream, as nginx makes it: with a URI part in
/// proxy_pass, the matched location prefix is replaced by it (a URI a
/// rewrite changed so that the prefix no longer matches goes whole), or,
/// in a proxy_pass with variables, it is the whole URI as it is, args and
/// all; without one, the client's URI as sent when nothing changed it,
/// else the current `$uri` escaped; the args follow.
pub fn upstream_uri(ctx: &RequestCtx, loc: Option<&Location>, pass: &ProxyPass) -> String {
    if let (Some(_), Some(uri)) = (&pass.vars, &pass.uri) {
        return uri.clone();
    }
    let unchanged = !ctx.internal && matches!(ctx.uri, Cow::Borrowed(_)) && !matches!(ctx.args, Some(Cow::Owned(_)));
    let mut out = Vec::with_capacity(ctx.uri.len() + 16);
    match &pass.uri {
        None if unchanged => return ctx.req.request_uri().to_string(),
        None => escape_into(ctx.uri.as_bytes(), Escape::Uri, &mut out),
        Some(part) => {
            let prefix = loc.filter(|l| matches!(l.kind, LocKind::Prefix | LocKind::PrefixNoRegex | LocKind::Exact)).map(|l| l.pattern.as_str());
            match prefix.and_then(|p| ctx.uri.strip_prefix(p)) {
                Some(rest) => {
                    out.extend_from_slice(part.as_bytes());
                    escape_into(rest.as_bytes(), Escape::Uri, &mut out);
                }
                None => escape_into(ctx.uri.as_bytes(), Escape::Uri, &mut out),
            }
        }
    }
    if let Some(a) = ctx.args.as_deref().filter(|a| !a.is_empty()) {
        out.push(if out.contains(&b'?') { b'&' } else { b'?' });
        out.extend_from_slice(a.as_bytes());
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether the request asks the upstream to keep the connection: HTTP/1.1
/// and no `Connection` header set to something (halo keeps static
/// proxy_pass connections alive, as an upstream `keepalive` would).
pub fn keepalive(conf: &ProxyConf) -> bool {
    conf.http11 && !conf.set_headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.source() != "")
}

/// The request head: request line, proxy_set_header (an empty value drops
/// the header), nginx's defaults (`Host: $proxy_host`, `Connection: close`
/// unless kept alive, the body's Content-Length, or `Transfer-Encoding:
/// chunked` for a chunked body streamed), then the client's
/// headers that were not set here, minus hop-by-hop ones.
pub fn head(ctx: &mut RequestCtx, conf: &ProxyConf, proxy_host: &str, uri: &str, upload: &Upload) -> Vec<u8> {
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(ctx.method().as_bytes());
    h.push(b' ');
    h.extend_from_slice(uri.as_bytes());
    h.extend_from_slice(if conf.http11 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });
    let set = |name: &str| conf.set_headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    for (name, value) in &conf.set_headers {
        let v = render(ctx, value);
        if !v.is_empty() {
            push(&mut h, name, &v);
        }
    }
    if !set("host") {
        push(&mut h, "Host", proxy_host);
    }
    if !set("connection") && !keepalive(conf) {
        push(&mut h, "Connection", "close");
    }
    if conf.pass_request_body && upload.chunked() {
        if !set("transfer-encoding") {
            push(&mut h, "Transfer-Encoding", "chunked");
        }
    } else {
        let body_len = match upload {
            Upload::Buffered => ctx.body.as_ref().map_or(0, |b| b.len()),
            // What is left of the client's (ngx.req.socket may have read some).
            Upload::Streamed { .. } => ctx.req.content_length.unwrap_or(0).saturating_sub(ctx.body_taken),
        };
        if conf.pass_request_body && (body_len > 0 || ctx.req.content_length.is_some() || ctx.req.chunked) && !set("content-length") {
            push(&mut h, "Content-Length", itoa::Buffer::new().format(body_len));
        }
    }
    if conf.pass_request_headers {
        for (name, value) in ctx.request_headers() {
            // Without the body, its Content-Length still goes, as in nginx
            // (hence the usual `proxy_set_header Content-Length ""`).
            let length_kept = !conf.pass_request_body && name.eq_ignore_ascii_case("content-length");
            if (length_kept || !dropped(name)) && !set(name) {
                push(&mut h, name, value);
            }
        }
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// A template against the request, with its captures (as
/// `server::phases::render`, which this layer cannot call).
pub(super) fn render<'t>(ctx: &mut RequestCtx, t: &'t Template) -> Cow<'t, str> {
    if let Some(lit) = t.as_literal() {
        return Cow::Borrowed(lit);
    }
    let caps = std::mem::take(&mut ctx.captures);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let out = t.render(ctx, &refs);
    drop(refs);
    ctx.captures = caps;
    Cow::Owned(out)
}

fn push(h: &mut Vec<u8>, name: &str, value: &str) {
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(b": ");
    h.extend_from_slice(value.as_bytes());
    h.extend_from_slice(b"\r\n");
}
