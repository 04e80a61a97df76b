//! A request's phases, in order, as one async function ([`run`]): server
//! rewrites, location search, location rewrites, rewrite_by_lua*,
//! access_by_lua*, content, then error_page and add_header on the way out.
//! The header and body filters run as the response goes out
//! ([`header_filter`], [`body_filter`]), and log_by_lua* after it
//! ([`log`]). Internal redirects (ngx.exec, try_files fallbacks, index,
//! error_page) start the phases again at the server rewrites (a named
//! location at its own rewrites), at most `MAX_REDIRECTS` times, as nginx's
//! 10 URI changes.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::conf::template::Template;
use crate::conf::{IfCond, LocConf, Location, LocKind, LuaCode, RewriteFlag, RewriteOp};
use crate::http::response::error_page_body;
use crate::log::Level;
use crate::lua::context::Phase;
use crate::lua::handler::{LuaHandlers, Ran, Stream};
use crate::request::{Body, RequestCtx, Response};

use super::location::{find_location, find_named};
use super::static_files::{self, FileOutcome, FileRequest};

const MAX_REDIRECTS: u32 = 10;

/// Where a rewrite list left the request.
enum Flow<'a> {
    /// Go on to the next phase in the current location.
    Continue,
    /// Search the location again (rewrite ... last, or a changed URI).
    Research,
    Respond(Response<'a>),
}

/// Where the phases (re)start.
enum Start<'a> {
    /// A new URI: server rewrites, then the location search.
    Server,
    /// The location search (after `rewrite ... last`).
    Find,
    /// A named location (`@name`), at its rewrites.
    Named(&'a Location),
}

/// What the static content of a location came to.
enum Served<'a> {
    Done(Response<'a>),
    /// An internal redirect (index, a try_files fallback).
    Redirect(String),
}

/// What produces a location's content. `return` answers earlier, in the
/// rewrite directives.
enum Content<'a> {
    Lua(&'a Arc<LuaCode>),
    /// proxy_pass (the `proxy` module).
    Proxy(&'a crate::conf::proxy::ProxyPass),
    /// try_files, index, a file under root/alias.
    Static,
}

impl<'a> Content<'a> {
    fn of(conf: &'a LocConf) -> Content<'a> {
        match (&conf.content_by_lua, &conf.proxy_pass) {
            (Some(code), _) => Content::Lua(code),
            (None, Some(pass)) => Content::Proxy(pass),
            (None, None) => Content::Static,
        }
    }
}

/// Run the request's phases to its response: everything before the head
/// is written. `client` is the connection, for handlers that read the body
/// or stream their output.
pub async fn run<'a>(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'a>, client: &mut impl Stream) -> Response<'a> {
    let mut p = Phases { lua, redirects: 0 };
    let resp = p.phases(ctx, client, Start::Server).await;
    // (Most responses have no error page to look for: no future for them.)
    if resp.special && !ctx.conf.error_page.is_empty() {
        return p.finalize(ctx, client, resp).await;
    }
    decorate(ctx, resp)
}

/// The response to an error found outside the phases (a bad request head,
/// a body that could not be read): the status's page, through error_page.
pub async fn error_response<'a>(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'a>, client: &mut impl Stream, status: u16) -> Response<'a> {
    let mut p = Phases { lua, redirects: 0 };
    let resp = ctx.special(status);
    p.finalize(ctx, client, resp).await
}

/// The state of one request's trip through the phases.
struct Phases<'l> {
    lua: Option<&'l LuaHandlers>,
    redirects: u32,
}

impl Phases<'_> {
    /// From `start` to the content's response, through internal redirects.
    async fn phases<'a>(&mut self, ctx: &mut RequestCtx<'a>, client: &mut impl Stream, mut start: Start<'a>) -> Response<'a> {
        loop {
            let loc = match start {
                Start::Named(loc) => {
                    ctx.conf = &loc.conf;
                    Some(loc)
                }
                Start::Server | Start::Find => {
                    let server = ctx.server;
                    // Most servers have no rewrite directives of their own.
                    if matches!(start, Start::Server) && !server.rewrites.is_empty() {
                        ctx.conf = &server.conf;
                        if let Flow::Respond(r) = self.rewrites(ctx, &server.rewrites) {
                            return r;
                        }
                    }
                    match find_location(&server.locations, &ctx.uri) {
                        Some(m) => {
                            let loc = m.loc;
                            match &loc.regex {
                                Some(re) if !m.captures.is_empty() => set_captures(ctx, re, m.captures),
                                _ => ctx.captures = m.captures,
                            }
                            ctx.conf = &loc.conf;
                            if loc.internal && !ctx.internal {
                                return ctx.special(404);
                            }
                            Some(loc)
                        }
                        None => {
                            ctx.conf = &server.conf;
                            None
                        }
                    }
                }
            };
            if let Some(loc) = loc {
                match self.rewrites(ctx, &loc.rewrites) {
                    Flow::Respond(r) => return r,
                    Flow::Continue => {}
                    Flow::Research => {
                        if let Some(r) = self.count_redirect(ctx) {
                            return r;
                        }
                        start = Start::Find;
                        continue;
                    }
                }
            }
            let conf = ctx.conf;
            // lua_need_request_body: the body is in before the handlers run.
            let lua_runs = conf.rewrite_by_lua.is_some() || conf.access_by_lua.is_some() || conf.content_by_lua.is_some();
            if lua_runs && conf.lua_need_request_body && !ctx.body_done {
                if let Err(status) = client.read_body(ctx).await {
                    let mut r = ctx.special(status);
                    r.close = true;
                    return r;
                }
            }
            let ran = match (self.lua, &conf.rewrite_by_lua, &conf.access_by_lua) {
                (Some(lua), rewrite, access) if rewrite.is_some() || access.is_some() => {
                    let mut ran = Ran::Next;
                    for (code, phase) in [(rewrite, Phase::Rewrite), (access, Phase::Access)] {
                        if let Some(code) = code {
                            ran = lua.run(ctx, code, phase, Some(&mut *client)).await;
                            if !matches!(ran, Ran::Next) {
                                break;
                            }
                        }
                    }
                    ran
                }
                _ => Ran::Next,
            };
            let target = match ran {
                Ran::Respond(r) => return r,
                Ran::Exec(target) => target,
                Ran::Next => match Content::of(conf) {
                    Content::Lua(code) => match self.lua {
                        Some(lua) => match lua.run(ctx, code, Phase::Content, Some(&mut *client)).await {
                            Ran::Respond(r) => return r,
                            Ran::Exec(target) => target,
                            // A content handler always answers.
                            Ran::Next => return ctx.special(500),
                        },
                        None => return ctx.special(500),
                    },
                    Content::Proxy(pass) => return crate::proxy::run(self.lua, ctx, loc, pass, &mut *client).await,
                    Content::Static => match static_content(ctx, loc) {
                        Served::Done(r) => return r,
                        Served::Redirect(target) => target,
                    },
                },
            };
            start = match self.redirect(ctx, &target) {
                Ok(s) => s,
                Err(r) => return r,
            };
        }
    }

    fn count_redirect<'a>(&mut self, ctx: &mut RequestCtx<'a>) -> Option<Response<'a>> {
        self.redirects += 1;
        if self.redirects > MAX_REDIRECTS {
            ctx.log(Level::Error, format_args!("rewrite or internal redirection cycle while processing \"{}\"", ctx.uri));
            return Some(ctx.special(500));
        }
        None
    }

    /// An internal redirect to `target`: a URI (may carry `?args`) or `@name`.
    fn redirect<'a>(&mut self, ctx: &mut RequestCtx<'a>, target: &str) -> Result<Start<'a>, Response<'a>> {
        if let Some(r) = self.count_redirect(ctx) {
            return Err(r);
        }
        ctx.internal = true;
        if target.starts_with('@') {
            return match find_named(ctx.server, target) {
                Some(loc) => Ok(Start::Named(loc)),
                None => {
                    ctx.log(Level::Error, format_args!("named location \"{target}\" not found"));
                    Err(ctx.special(500))
                }
            };
        }
        match target.split_once('?') {
            Some((u, a)) => {
                ctx.uri = Cow::Owned(u.to_string());
                ctx.args = Some(Cow::Owned(a.to_string()));
            }
            None => ctx.uri = Cow::Owned(target.to_string()),
        }
        Ok(Start::Server)
    }

    /// error_page (once per request: its page's own errors are not
    /// redirected again), then [`decorate`].
    async fn finalize<'a>(&mut self, ctx: &mut RequestCtx<'a>, client: &mut impl Stream, mut resp: Response<'a>) -> Response<'a> {
        let status = ctx.resp.status;
        let page = if resp.special && status >= 300 { ctx.conf.error_page.iter().find(|p| p.codes.contains(&status)) } else { None };
        if let Some(page) = page {
            let target = render(ctx, &page.uri);
            // The page replaces the response, headers and all.
            ctx.resp.headers.clear();
            if target.starts_with("http://") || target.starts_with("https://") {
                let code = match page.overwrite {
                    Some(c) if matches!(c, 301 | 302 | 303 | 307 | 308) => c,
                    _ => 302,
                };
                resp = ctx.redirect(code, target);
            } else {
                if ctx.method() != "HEAD" {
                    ctx.method_get = true;
                }
                resp = match self.redirect(ctx, &target) {
                    Ok(start) => self.phases(ctx, client, start).await,
                    Err(r) => r,
                };
                match page.overwrite {
                    None => ctx.resp.status = status,
                    Some(0) => {}
                    Some(c) => ctx.resp.status = c,
                }
            }
        }
        decorate(ctx, resp)
    }

    /// The rewrite module: set, rewrite, return, if, in order.
    fn rewrites<'a>(&self, ctx: &mut RequestCtx<'a>, ops: &'a [RewriteOp]) -> Flow<'a> {
        let mut changed = false;
        for op in ops {
            match op {
                RewriteOp::Set { var, value } => {
                    let v = render(ctx, value);
                    ctx.set_var(var, v);
                }
                RewriteOp::SetByLua { var, code, args } => {
                    let args: Vec<String> = args.iter().map(|a| render(ctx, a)).collect();
                    let value = match self.lua {
                        Some(lua) => lua.run_set(ctx, code, args),
                        None => None,
                    };
                    match value {
                        Some(v) => ctx.set_var(var, v),
                        None => return Flow::Respond(ctx.special(500)),
                    }
                }
                RewriteOp::Return { code, body } => return Flow::Respond(self.ret(ctx, *code, body.as_ref())),
                RewriteOp::Rewrite { regex, replacement, flag } => {
                    let Some(caps) = regex.captures(&ctx.uri) else { continue };
                    let caps = captures_of(&caps);
                    set_captures(ctx, regex, caps);
                    let mut new = render(ctx, replacement);
                    let redirect = matches!(flag, RewriteFlag::Redirect | RewriteFlag::Permanent)
                        || new.starts_with("http://")
                        || new.starts_with("https://");
                    // A '?' in the replacement sets the args; the old args
                    // follow unless it ends in '?'.
                    if let Some(q) = new.find('?') {
                        let mut a = new[q + 1..].to_string();
                        new.truncate(q);
                        if a.is_empty() {
                            ctx.args = None;
                        } else {
                            if let Some(old) = &ctx.args {
                                if !a.ends_with('?') {
                                    a.push('&');
                                    a.push_str(old);
                                }
                            }
                            ctx.args = Some(Cow::Owned(a.trim_end_matches('?').to_string()));
                        }
                    }
                    if redirect {
                        let status = if *flag == RewriteFlag::Permanent { 301 } else { 302 };
                        let mut loc = ctx.absolute_url(&new);
                        if let Some(a) = &ctx.args {
                            loc.push('?');
                            loc.push_str(a);
                        }
                        return Flow::Respond(ctx.redirect(status, loc));
                    }
                    ctx.uri = Cow::Owned(new);
                    match flag {
                        RewriteFlag::Last => return Flow::Research,
                        RewriteFlag::Break => return Flow::Continue,
                        _ => changed = true,
                    }
                }
                RewriteOp::If { cond, ops } => {
                    if self.condition(ctx, cond) {
                        match self.rewrites(ctx, ops) {
                            Flow::Continue => {}
                            other => return other,
                        }
                    }
                }
            }
        }
        if changed { Flow::Research } else { Flow::Continue }
    }

    fn condition(&self, ctx: &mut RequestCtx, cond: &IfCond) -> bool {
        match cond {
            IfCond::Var(t) => {
                let v = render(ctx, t);
                !(v.is_empty() || v == "0")
            }
            IfCond::Eq { lhs, rhs, negate } => (render(ctx, lhs) == render(ctx, rhs)) != *negate,
            IfCond::Match { lhs, regex, negate } => {
                let v = render(ctx, lhs);
                match regex.captures(&v) {
                    Some(caps) if !*negate => {
                        let caps = captures_of(&caps);
                        set_captures(ctx, regex, caps);
                        true
                    }
                    Some(_) => false,
                    None => *negate,
                }
            }
            IfCond::File { op, negate, path } => {
                let p = render(ctx, path);
                let md = std::fs::metadata(&p);
                let r = match op {
                    'f' => md.map(|m| m.is_file()).unwrap_or(false),
                    'd' => md.map(|m| m.is_dir()).unwrap_or(false),
                    'e' => md.is_ok(),
                    _ => md.map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0).unwrap_or(false),
                };
                r != *negate
            }
        }
    }


    /// `return code [text|url]`.
    fn ret<'a>(&self, ctx: &mut RequestCtx<'a>, code: u16, body: Option<&'a Template>) -> Response<'a> {
        let Some(t) = body else { return ctx.special(code) };
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            let text = render(ctx, t);
            let url = ctx.absolute_url(&text);
            return ctx.redirect(code, url);
        }
        let body = match t.as_literal() {
            Some(lit) => Cow::Borrowed(lit.as_bytes()),
            None => Cow::Owned(render(ctx, t).into_bytes()),
        };
        ctx.resp.status = code;
        if ctx.resp.content_type.is_none() {
            let conf: &'a LocConf = ctx.conf;
            ctx.resp.content_type = Some(Cow::Borrowed(conf.default_type.as_str()));
        }
        Response::with_body(Body::Bytes(body))
    }
}

/// The static content phase: try_files, index, static file.
fn static_content<'a>(ctx: &mut RequestCtx<'a>, loc: Option<&'a Location>) -> Served<'a> {
    let Some(tries) = &ctx.conf.try_files else { return static_file(ctx, loc) };
    let (last, files) = tries.split_last().expect("try_files has at least two arguments");
    for t in files {
        let mut name = render(ctx, t);
        // As nginx: an argument written with a trailing slash tests
        // a directory, and the URI becomes the name without it (so
        // a directory without its slash gets the 301 later).
        let dir = t.source().ends_with('/');
        if dir && name.len() > 1 {
            name.pop();
        }
        let path = map_path(ctx, loc, &name);
        let ok = std::fs::metadata(&path).map(|m| if dir { m.is_dir() } else { m.is_file() }).unwrap_or(false);
        if ok {
            ctx.uri = Cow::Owned(name);
            return static_file(ctx, loc);
        }
    }
    let target = render(ctx, last);
    if let Some(code) = target.strip_prefix('=') {
        return Served::Done(ctx.special(code.parse().unwrap_or(500)));
    }
    Served::Redirect(target)
}

fn static_file<'a>(ctx: &mut RequestCtx<'a>, loc: Option<&'a Location>) -> Served<'a> {
    let method = ctx.method();
    let head = method == "HEAD";
    let post = method == "POST";
    if !matches!(method, "GET" | "HEAD" | "POST") {
        return Served::Done(ctx.special(405));
    }
    let path = map_path(ctx, loc, &ctx.uri.clone());
    if ctx.uri.ends_with('/') {
        if let Some(index) = static_files::resolve_index(&path, &ctx.conf.index) {
            let name = index.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let target = format!("{}{}", ctx.uri, name);
            return Served::Redirect(target);
        }
        if static_files::is_dir(&path) {
            ctx.log(Level::Error, format_args!("directory index of \"{}\" is forbidden",
                path.display()
            ));
            return Served::Done(ctx.special(403));
        }
        ctx.log(Level::Error, format_args!("\"{}\" is not found (2: No such file or directory)", path.display()));
        return Served::Done(ctx.special(404));
    }
    let req = ctx.req;
    let freq = FileRequest {
        head,
        if_modified_since: req.header("if-modified-since"),
        if_none_match: req.header("if-none-match"),
        range: req.header("range"),
        if_range: req.header("if-range"),
    };
    match static_files::open_file(&path, &freq, &ctx.conf.types, &ctx.conf.default_type) {
        FileOutcome::NotFound => {
            ctx.log(Level::Error, format_args!("open() \"{}\" failed (2: No such file or directory)", path.display()));
            Served::Done(ctx.special(404))
        }
        FileOutcome::Forbidden => {
            ctx.log(Level::Error, format_args!("open() \"{}\" failed (13: Permission denied)", path.display()));
            Served::Done(ctx.special(403))
        }
        FileOutcome::Error(e) => {
            ctx.log(Level::Crit, format_args!("open() \"{}\" failed ({e})", path.display()));
            Served::Done(ctx.special(500))
        }
        FileOutcome::Directory => {
            let mut target = format!("{}/", ctx.uri);
            if let Some(a) = &ctx.args {
                target.push('?');
                target.push_str(a);
            }
            let url = ctx.absolute_url(&target);
            Served::Done(ctx.redirect(301, url))
        }
        FileOutcome::Response(f) => {
            if post {
                return Served::Done(ctx.special(405));
            }
            ctx.resp.headers.extend(&f.headers);
            if f.status == 416 {
                return Served::Done(ctx.special(416));
            }
            ctx.resp.status = f.status;
            // As nginx's ngx_http_set_content_type: a type set before (by Lua) stays.
            if ctx.resp.content_type.is_none() && !f.content_type.is_empty() {
                ctx.resp.content_type = Some(Cow::Owned(f.content_type));
            }
            Served::Done(Response {
                content_length: (f.status != 304).then_some(f.content_length),
                ..Response::with_body(f.body.map_or(Body::Empty, Body::File))
            })
        }
    }
}


/// The default page of a special response, and add_header.
fn decorate<'a>(ctx: &mut RequestCtx<'a>, mut resp: Response<'a>) -> Response<'a> {
    // Nothing to add to an ordinary response, most of the time.
    if !resp.special && ctx.conf.add_header.is_empty() {
        return resp;
    }
    if resp.special && matches!(resp.body, Body::Empty) {
        if let Some(page) = error_page_body(ctx.resp.status, ctx.conf.server_tokens) {
            resp.body = Body::Bytes(Cow::Owned(page.into_bytes()));
            ctx.resp.content_type = Some(Cow::Borrowed("text/html"));
            resp.content_length = None;
        }
    }
    add_headers(ctx);
    resp
}

/// add_header of the location, for the statuses it applies to.
pub fn add_headers(ctx: &mut RequestCtx<'_>) {
    if ctx.conf.add_header.is_empty() {
        return;
    }
    let ok = matches!(ctx.resp.status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
    let conf = ctx.conf;
    for h in conf.add_header.iter().filter(|h| ok || h.always) {
        let v = render(ctx, &h.value);
        if !v.is_empty() {
            ctx.resp.headers.push(&h.name, &v);
        }
    }
}

/// header_filter_by_lua* over the head about to be written; after an
/// error, the response becomes a 500 page (its body replaces `resp`'s).
pub async fn header_filter<'a>(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'a>, resp: Response<'a>) -> Response<'a> {
    let (Some(lua), Some(code)) = (lua, ctx.conf.header_filter_by_lua.as_ref()) else { return resp };
    if lua.run_header_filter(ctx, code).await {
        return resp;
    }
    // (error_page does not apply here: the phases are over.)
    let resp = ctx.special(500);
    decorate(ctx, resp)
}

/// body_filter_by_lua* over one chunk of the body (`eof` on the last):
/// the chunk to send, and whether the body ends with it.
pub async fn body_filter(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'_>, chunk: Vec<u8>, eof: bool) -> (Vec<u8>, bool) {
    match (lua, ctx.conf.body_filter_by_lua.as_ref()) {
        (Some(lua), Some(code)) => lua.run_body_filter(ctx, code, chunk, eof).await,
        _ => (chunk, eof),
    }
}

/// log_by_lua*, after the response is out; then the request's ngx.ctx goes.
pub async fn log(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'_>) {
    let Some(lua) = lua else { return };
    if let Some(code) = ctx.conf.log_by_lua.as_ref() {
        lua.run(ctx, code, Phase::Log, None::<&mut crate::lua::handler::Buffered>).await;
    }
    if ctx.has_lua_ctx {
        lua.request_done(ctx.id);
    }
}

/// Render a template against the request.
pub fn render(ctx: &mut RequestCtx, t: &Template) -> String {
    if let Some(lit) = t.as_literal() {
        return lit.to_string();
    }
    let caps = std::mem::take(&mut ctx.captures);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let out = t.render(ctx, &refs);
    drop(refs);
    ctx.captures = caps;
    out
}

/// Keep a regex match's captures as `$1`.. and its named groups as
/// variables, as nginx does for location, rewrite, if and server_name
/// regexes.
pub fn set_captures(ctx: &mut RequestCtx, re: &regex::Regex, caps: Vec<String>) {
    for (i, name) in re.capture_names().enumerate() {
        if let (Some(name), Some(v)) = (name, caps.get(i)) {
            ctx.set_var(name, v.clone());
        }
    }
    ctx.captures = caps;
}

fn captures_of(caps: &regex::Captures) -> Vec<String> {
    caps.iter().map(|m| m.map_or(String::new(), |m| m.as_str().to_string())).collect()
}

/// The file a URI maps to: root + uri, or alias + the rest after the
/// location prefix (a regex location's alias is the full path already).
fn map_path(ctx: &mut RequestCtx, loc: Option<&Location>, uri: &str) -> PathBuf {
    if let (Some(alias), Some(loc)) = (ctx.conf.alias.clone(), loc) {
        let base = render(ctx, &alias);
        return match loc.kind {
            LocKind::Regex => PathBuf::from(base),
            _ => {
                let rest = uri.strip_prefix(loc.pattern.as_str()).unwrap_or(uri);
                PathBuf::from(format!("{base}{rest}"))
            }
        };
    }
    let root = ctx.conf.root.clone();
    let mut p = render(ctx, &root);
    p.push_str(uri);
    PathBuf::from(p)
}

