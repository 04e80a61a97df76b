//! The phase engine: server rewrites, location search, location rewrites,
//! content (return, try_files, index, static files), then error_page and
//! add_header on the way out. Internal redirects (rewrite ... last,
//! try_files fallbacks, index, error_page) restart at the location search,
//! at most `MAX_REDIRECTS` times, as nginx's 10 URI changes.

use std::borrow::Cow;
use std::path::PathBuf;

use crate::conf::template::Template;
use crate::conf::{IfCond, Location, LocKind, RewriteFlag, RewriteOp};
use crate::http::response::error_page_body;
use crate::log::Level;

use super::location::{find_location, find_named};
use super::static_files::{self, FileBody, FileOutcome, FileRequest};
use super::vars::RequestCtx;

const MAX_REDIRECTS: u32 = 10;

/// A response body; `'a` is the configuration's lifetime, so a literal
/// `return` text is sent without a copy.
#[derive(Debug)]
pub enum Body<'a> {
    Empty,
    Bytes(Cow<'a, [u8]>),
    File(FileBody),
    /// To be produced by this content_by_lua* handler: the connection runs
    /// it (it may wait on the event loop), then calls `Engine::finalize`.
    Lua(std::sync::Arc<crate::conf::LuaCode>),
    /// The location (None: the server level) has rewrite_by_lua* or
    /// access_by_lua* handlers to run first: the connection runs them, then
    /// `Engine::content` unless one of them answered.
    LuaPhases(Option<&'a Location>),
    /// ngx.exec: an internal redirect to this URI (with `?args`) or @name.
    Exec(String),
}

/// What the phases decided to send.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub content_type: Option<Cow<'a, str>>,
    /// Content-Length to announce when the body is not in `body` (HEAD,
    /// files); None = length of `body`.
    pub content_length: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub body: Body<'a>,
    /// A status without a body of its own (nginx's "special response"):
    /// error_page applies, and the default HTML page is added.
    pub special: bool,
    /// Close the connection after this response.
    pub close: bool,
}

impl<'a> Response<'a> {
    /// A status whose body is the standard page (or an error_page).
    pub fn special(status: u16) -> Response<'a> {
        Response { status, content_type: None, content_length: None, headers: Vec::new(), body: Body::Empty, special: true, close: false }
    }

    /// A marker for the connection to resolve (Lua handlers, ngx.exec):
    /// no status of its own yet.
    pub fn pending(body: Body<'a>) -> Response<'a> {
        Response { special: false, body, ..Response::special(200) }
    }

    fn redirect(status: u16, location: String) -> Response<'a> {
        let mut r = Response::special(status);
        r.headers.push(("Location".into(), location));
        r
    }
}

/// Where a rewrite list left the request.
enum Flow<'a> {
    /// Go on to content in the current location.
    Continue,
    /// Search the location again (rewrite ... last, or a changed URI).
    Research,
    Respond(Response<'a>),
}

/// Per-request state of the engine beyond `RequestCtx`.
#[derive(Default)]
pub struct Engine {
    redirects: u32,
    error_page_done: bool,
    /// rewrite_by_lua* / access_by_lua* have run for this request.
    pub lua_phases_done: bool,
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

impl Engine {
    /// Run everything up to the response for a fresh request.
    pub fn run<'a>(&mut self, ctx: &mut RequestCtx<'a>) -> Response<'a> {
        let server = ctx.server;
        // Most servers have no rewrite directives of their own.
        let resp = if server.rewrites.is_empty() {
            self.find_and_serve(ctx)
        } else {
            match self.rewrites(ctx, &server.rewrites) {
                Flow::Respond(r) => r,
                Flow::Continue | Flow::Research => self.find_and_serve(ctx),
            }
        };
        self.finalize(ctx, resp)
    }

    /// Location search, location rewrites, content.
    fn find_and_serve<'a>(&mut self, ctx: &mut RequestCtx<'a>) -> Response<'a> {
        loop {
            let server = ctx.server;
            let Some(m) = find_location(&server.locations, &ctx.uri) else {
                ctx.conf = &server.conf;
                return self.content(ctx, None);
            };
            let loc = m.loc;
            match &loc.regex {
                Some(re) if !m.captures.is_empty() => set_captures(ctx, re, m.captures),
                _ => ctx.captures = m.captures,
            }
            ctx.conf = &loc.conf;
            if loc.internal && !ctx.internal {
                return Response::special(404);
            }
            match self.rewrites(ctx, &loc.rewrites) {
                Flow::Respond(r) => return r,
                Flow::Continue => return self.content(ctx, Some(loc)),
                Flow::Research => {
                    if let Some(r) = self.count_redirect(ctx) {
                        return r;
                    }
                }
            }
        }
    }

    fn count_redirect<'a>(&mut self, ctx: &RequestCtx<'a>) -> Option<Response<'a>> {
        self.redirects += 1;
        if self.redirects > MAX_REDIRECTS {
            ctx.log(Level::Error, format_args!("rewrite or internal redirection cycle while processing \"{}\"",
                ctx.uri
            ));
            return Some(Response::special(500));
        }
        None
    }

    /// ngx.exec: an internal redirect whose new location runs its Lua
    /// phases again.
    pub fn exec<'a>(&mut self, ctx: &mut RequestCtx<'a>, target: &str) -> Response<'a> {
        self.lua_phases_done = false;
        self.internal_redirect(ctx, target)
    }

    /// Jump to `uri` (may carry `?args`) or `@name`, as an internal redirect.
    fn internal_redirect<'a>(&mut self, ctx: &mut RequestCtx<'a>, target: &str) -> Response<'a> {
        if let Some(r) = self.count_redirect(ctx) {
            return r;
        }
        ctx.internal = true;
        if target.starts_with('@') {
            let Some(loc) = find_named(ctx.server, target) else {
                ctx.log(Level::Error, format_args!("named location \"{target}\" not found"));
                return Response::special(500);
            };
            ctx.conf = &loc.conf;
            return match self.rewrites(ctx, &loc.rewrites) {
                Flow::Respond(r) => r,
                Flow::Continue => self.content(ctx, Some(loc)),
                Flow::Research => self.find_and_serve(ctx),
            };
        }
        match target.split_once('?') {
            Some((u, a)) => {
                ctx.uri = Cow::Owned(u.to_string());
                ctx.args = Some(Cow::Owned(a.to_string()));
            }
            None => ctx.uri = Cow::Owned(target.to_string()),
        }
        self.find_and_serve(ctx)
    }

    /// The rewrite module: set, rewrite, return, if, in order.
    fn rewrites<'a>(&mut self, ctx: &mut RequestCtx<'a>, ops: &'a [RewriteOp]) -> Flow<'a> {
        let mut changed = false;
        for op in ops {
            match op {
                RewriteOp::Set { var, value } => {
                    let v = render(ctx, value);
                    ctx.set_var(var, v);
                }
                RewriteOp::SetByLua { var, code, args } => {
                    let args: Vec<String> = args.iter().map(|a| render(ctx, a)).collect();
                    let value = match ctx.lua {
                        Some(lua) => lua.run_set(ctx, code, args),
                        None => None,
                    };
                    match value {
                        Some(v) => ctx.set_var(var, v),
                        None => return Flow::Respond(Response::special(500)),
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
                        let mut loc = absolute_url(ctx, &new);
                        if let Some(a) = &ctx.args {
                            loc.push('?');
                            loc.push_str(a);
                        }
                        return Flow::Respond(Response::redirect(status, loc));
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

    fn condition(&mut self, ctx: &mut RequestCtx, cond: &IfCond) -> bool {
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
    fn ret<'a>(&mut self, ctx: &mut RequestCtx<'a>, code: u16, body: Option<&'a Template>) -> Response<'a> {
        let Some(t) = body else { return Response::special(code) };
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            let text = render(ctx, t);
            return Response::redirect(code, absolute_url(ctx, &text));
        }
        let body = match t.as_literal() {
            Some(lit) => Cow::Borrowed(lit.as_bytes()),
            None => Cow::Owned(render(ctx, t).into_bytes()),
        };
        let conf: &'a crate::conf::LocConf = ctx.conf;
        Response {
            status: code,
            content_type: Some(Cow::Borrowed(conf.default_type.as_str())),
            content_length: None,
            headers: Vec::new(),
            body: Body::Bytes(body),
            special: false,
            close: false,
        }
    }

    /// The content phase: try_files, index, static file.
    pub fn content<'a>(&mut self, ctx: &mut RequestCtx<'a>, loc: Option<&'a Location>) -> Response<'a> {
        if !self.lua_phases_done && (ctx.conf.rewrite_by_lua.is_some() || ctx.conf.access_by_lua.is_some()) {
            return Response::pending(Body::LuaPhases(loc));
        }
        if let Some(code) = &ctx.conf.content_by_lua {
            return Response::pending(Body::Lua(code.clone()));
        }
        if let Some(tries) = &ctx.conf.try_files {
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
                    return self.static_file(ctx, loc);
                }
            }
            let target = render(ctx, last);
            if let Some(code) = target.strip_prefix('=') {
                return Response::special(code.parse().unwrap_or(500));
            }
            return self.internal_redirect(ctx, &target);
        }
        self.static_file(ctx, loc)
    }

    fn static_file<'a>(&mut self, ctx: &mut RequestCtx<'a>, loc: Option<&'a Location>) -> Response<'a> {
        let method = ctx.method();
        let head = method == "HEAD";
        let post = method == "POST";
        if !matches!(method, "GET" | "HEAD" | "POST") {
            return Response::special(405);
        }
        let path = map_path(ctx, loc, &ctx.uri.clone());
        if ctx.uri.ends_with('/') {
            if let Some(index) = static_files::resolve_index(&path, &ctx.conf.index) {
                let name = index.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let target = format!("{}{}", ctx.uri, name);
                return self.internal_redirect(ctx, &target);
            }
            if static_files::is_dir(&path) {
                ctx.log(Level::Error, format_args!("directory index of \"{}\" is forbidden",
                    path.display()
                ));
                return Response::special(403);
            }
            ctx.log(Level::Error, format_args!("\"{}\" is not found (2: No such file or directory)", path.display()));
            return Response::special(404);
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
                Response::special(404)
            }
            FileOutcome::Forbidden => {
                ctx.log(Level::Error, format_args!("open() \"{}\" failed (13: Permission denied)", path.display()));
                Response::special(403)
            }
            FileOutcome::Error(e) => {
                ctx.log(Level::Crit, format_args!("open() \"{}\" failed ({e})", path.display()));
                Response::special(500)
            }
            FileOutcome::Directory => {
                let mut target = format!("{}/", ctx.uri);
                if let Some(a) = &ctx.args {
                    target.push('?');
                    target.push_str(a);
                }
                Response::redirect(301, absolute_url(ctx, &target))
            }
            FileOutcome::Response(f) => {
                if post {
                    return Response::special(405);
                }
                if f.status == 416 {
                    let mut r = Response::special(416);
                    r.headers = f.headers;
                    return r;
                }
                Response {
                    status: f.status,
                    content_type: (!f.content_type.is_empty()).then_some(Cow::Owned(f.content_type)),
                    content_length: (f.status != 304).then_some(f.content_length),
                    headers: f.headers,
                    body: f.body.map_or(Body::Empty, Body::File),
                    special: false,
                    close: false,
                }
            }
        }
    }

    /// error_page, the default error page body, add_header.
    #[inline]
    pub fn finalize<'a>(&mut self, ctx: &mut RequestCtx<'a>, resp: Response<'a>) -> Response<'a> {
        // Nothing to add to an ordinary response; a Lua handler's is
        // finalized once the handler has produced it.
        if (!resp.special && ctx.conf.add_header.is_empty())
            || matches!(resp.body, Body::Lua(_) | Body::LuaPhases(_) | Body::Exec(_))
        {
            return resp;
        }
        self.finalize_with(ctx, resp)
    }

    fn finalize_with<'a>(&mut self, ctx: &mut RequestCtx<'a>, mut resp: Response<'a>) -> Response<'a> {
        if resp.special && resp.status >= 300 && !self.error_page_done {
            let page = ctx.conf.error_page.iter().find(|p| p.codes.contains(&resp.status)).cloned();
            if let Some(page) = page {
                self.error_page_done = true;
                let original = resp.status;
                let target = render(ctx, &page.uri);
                if target.starts_with("http://") || target.starts_with("https://") {
                    let code = match page.overwrite {
                        Some(c) if c != 0 && matches!(c, 301 | 302 | 303 | 307 | 308) => c,
                        _ => 302,
                    };
                    resp = Response::redirect(code, target);
                } else {
                    if ctx.method() != "HEAD" {
                        ctx.method_get = true;
                    }
                    let mut r = self.internal_redirect(ctx, &target);
                    match page.overwrite {
                        None => r.status = original,
                        Some(0) => {}
                        Some(c) => r.status = c,
                    }
                    return self.finalize(ctx, r);
                }
            }
        }
        if resp.special && matches!(resp.body, Body::Empty) {
            if let Some(page) = error_page_body(resp.status, ctx.conf.server_tokens) {
                resp.body = Body::Bytes(Cow::Owned(page.into_bytes()));
                resp.content_type = Some(Cow::Borrowed("text/html"));
                resp.content_length = None;
            }
        }
        if !ctx.conf.add_header.is_empty() {
            let ok = matches!(resp.status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
            for h in ctx.conf.add_header.clone().iter().filter(|h| ok || h.always) {
                let v = render(ctx, &h.value);
                if !v.is_empty() {
                    resp.headers.push((h.name.clone(), v));
                }
            }
        }
        resp
    }
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

/// Relative redirects become absolute, as nginx's `absolute_redirect on`:
/// scheme, the request's host, and the port unless it is 80.
pub fn absolute_url(ctx: &RequestCtx, target: &str) -> String {
    if !target.starts_with('/') {
        return target.to_string();
    }
    let host = ctx.host();
    let port = ctx.conn.local().map(|a| a.port()).unwrap_or(80);
    if port == 80 {
        format!("http://{host}{target}")
    } else {
        format!("http://{host}:{port}{target}")
    }
}
