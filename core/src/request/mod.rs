//! One request's state on its way through the phases: its head (borrowed
//! from the connection), what rewrites and Lua changed, its body (`body`),
//! its variables (`vars`) and its response ([`Reply`]). The phases and the
//! FFI change it directly; nothing keeps a second copy.

use std::borrow::Cow;
use std::time::Instant;

use crate::conf::{LocConf, Server};
use crate::http::header_list::HeaderList;
use crate::http::request::Request;

pub mod body;
mod conn;
mod response;
mod vars;

pub use conn::ConnInfo;
pub use response::{output_buffer, recycle, Body, FileBody, Response};

use body::{LuaBody, RequestBody};

/// One request on its way through the phases.
pub struct RequestCtx<'a> {
    /// Unique among the worker's requests (ngx.ctx is keyed by it).
    pub id: u64,
    /// The request has an ngx.ctx table (released when it ends).
    pub has_lua_ctx: bool,
    /// The request body, once read for Lua (ngx.req.read_body,
    /// lua_need_request_body); None before, or when there is none.
    pub body: Option<RequestBody>,
    /// Nothing of the body is left on the connection: it was read (into
    /// `body`) or discarded.
    pub body_done: bool,
    /// Bytes of the body Lua read itself through ngx.req.socket().
    pub body_taken: u64,
    /// The body ngx.req.init_body started and append_body adds to, until
    /// finish_body makes it `body`.
    pub lua_body: Option<LuaBody>,
    /// ngx.req.socket(true): the handler speaks on the connection itself;
    /// it closes after the request.
    pub raw_socket: bool,
    /// ngx.req.set_header / clear_header / add_header: per edited name, the
    /// values that replace all of the request's headers of that name (None
    /// entries stand for none: a cleared name).
    pub header_edits: Vec<(String, Option<String>)>,
    /// ngx.req.set_method.
    pub method_override: Option<&'static str>,
    pub req: &'a Request,
    pub conn: &'a ConnInfo,
    pub server: &'a Server,
    /// The settings in force: the matched location's, or the server's.
    pub conf: &'a LocConf,
    /// $uri: starts as the normalized path, changed by rewrite/try_files.
    pub uri: Cow<'a, str>,
    pub args: Option<Cow<'a, str>>,
    /// GET after an error_page redirect of a non-HEAD request.
    pub method_get: bool,
    /// Regex captures of the last matching location or rewrite.
    pub captures: Vec<String>,
    /// `set` variables, in the order first set.
    pub set_vars: Vec<(String, String)>,
    /// `map` values read so far (index in `server.maps`, value; None
    /// while being evaluated, to catch a map that refers to itself).
    pub map_values: std::cell::RefCell<Vec<(usize, Option<String>)>>,
    /// Named captures of the map regexes matched so far: variables from
    /// then on, as in nginx.
    pub map_captures: std::cell::RefCell<Vec<(String, String)>>,
    /// Whether the request was redirected internally (`internal` locations
    /// are reachable then).
    pub internal: bool,
    /// 0 for a client's request; a subrequest's is its parent's plus one
    /// (ngx.location.capture).
    pub depth: u32,
    pub start: Instant,
    pub request_length: u64,
    /// The response as the phases and handlers make it.
    pub resp: Reply<'a>,
    /// The proxied server, once proxy_pass chose one ($upstream_addr,
    /// $upstream_status).
    pub upstream: Option<Upstream>,
    /// `$proxy_host` of a proxy_pass with variables, once evaluated (a
    /// static one's is in its config).
    pub proxy_host: Option<String>,
    /// What balancer_by_lua set for the try at hand (ngx.balancer).
    pub balancer: BalancerPick,
}

/// ngx.balancer's settings for a request's tries.
#[derive(Debug, Default, Clone)]
pub struct BalancerPick {
    /// set_current_peer: the try's peer (taken by the try).
    pub peer: Option<std::net::SocketAddr>,
    /// set_current_peer's third argument: the keep-alive pool's name (the
    /// `pool` option, or the host string) and its `pool_size` option.
    pub pool: Option<(String, Option<usize>)>,
    /// enable_keepalive: the try's connection is kept (idle timeout, zero:
    /// none; requests it may serve, zero: no limit).
    pub keepalive: Option<(std::time::Duration, u32)>,
    /// set_more_tries: tries after the first.
    pub more_tries: u32,
    /// get_last_failure: ("failed" | "next", status) of the last try.
    pub last_failure: Option<(&'static str, u16)>,
    /// set_timeouts: connect, send, read for the tries (None: the proxy's).
    pub timeouts: [Option<std::time::Duration>; 3],
}

impl BalancerPick {
    /// Forget the last try's peer and pool (nginx resets them before each
    /// run of the balancer).
    pub fn next_try(&mut self) {
        self.peer = None;
        self.pool = None;
        self.keepalive = None;
    }
}

/// What a request knows of the servers it was proxied to: one record per
/// try, rendered only when a variable reads them ($upstream_addr,
/// $upstream_status, $upstream_*_time, $upstream_bytes_* list every try,
/// ", " between, as nginx's), and the last response's header lines
/// ($upstream_http_NAME).
#[derive(Debug, Default)]
pub struct Upstream {
    /// (Most requests make one try: kept inline.)
    pub tries: smallvec::SmallVec<[UpstreamTry; 1]>,
    pub headers: HeaderList,
}

/// One try at a server.
#[derive(Debug)]
pub struct UpstreamTry {
    /// Its `$upstream_addr` entry.
    pub addr: PeerName,
    /// The response's status, or the one answered for a failed try (502,
    /// 504); 0 while neither is known.
    pub status: u16,
    pub start: Instant,
    /// When it connected (a kept connection: when taken), read the
    /// response head, was over; None until then (nginx's "-").
    pub connected: Option<Instant>,
    pub header_read: Option<Instant>,
    pub ended: Option<Instant>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl UpstreamTry {
    pub fn new(addr: PeerName, start: Instant) -> UpstreamTry {
        UpstreamTry { addr, status: 0, start, connected: None, header_read: None, ended: None, bytes_sent: 0, bytes_received: 0 }
    }

    /// The try is over at `now` (answered `status` unless one is known).
    pub fn end(&mut self, status: u16, now: Instant) {
        if self.status == 0 {
            self.status = status;
        }
        self.ended = Some(now);
    }
}

/// A peer as `$upstream_addr` shows it: an address, or an upstream
/// block's peer name (`unix:/path`); formatted only when shown.
#[derive(Debug, Clone)]
pub enum PeerName {
    Addr(std::net::SocketAddr),
    Name(std::sync::Arc<str>),
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerName::Addr(a) => a.fmt(f),
            PeerName::Name(n) => f.write_str(n),
        }
    }
}

/// The response of a request, the one copy that the phases, the FFI and
/// the writer share: what $status, $sent_http_* and ngx.header read.
#[derive(Default)]
pub struct Reply<'a> {
    /// 0 until a phase or handler sets it.
    pub status: u16,
    /// None: no Content-Type line (a Lua response gets default_type when
    /// its head is made).
    pub content_type: Option<Cow<'a, str>>,
    /// The other header lines, in the order they were added.
    pub headers: HeaderList,
    /// Output or ngx.send_headers happened: the head counts as sent, as in
    /// OpenResty (status and header changes are refused from then on).
    pub headers_sent: bool,
    /// Handler output not yet sent.
    pub out: Vec<u8>,
    /// ngx.eof was called: no more output.
    pub eof: bool,
    pub body_bytes_sent: u64,
    pub bytes_sent: u64,
    /// A streamed response's Content-Length, when it is known (a proxied
    /// one); None streams chunked (or until close for HTTP/1.0).
    pub length: Option<u64>,
    /// The head came from a proxied server: no default Content-Type.
    pub proxied: bool,
    /// The proxied server's status and reason phrase (sent while the status
    /// stays that one).
    pub reason: Option<(u16, String)>,
}

impl<'a> RequestCtx<'a> {
    pub fn new(req: &'a Request, conn: &'a ConnInfo, server: &'a Server, request_length: u64) -> Self {
        RequestCtx {
            id: 0,
            has_lua_ctx: false,
            body: None,
            body_done: false,
            body_taken: 0,
            lua_body: None,
            raw_socket: false,
            header_edits: Vec::new(),
            method_override: None,
            req,
            conn,
            server,
            conf: &server.conf,
            uri: Cow::Borrowed(req.path()),
            args: req.args().map(Cow::Borrowed),
            method_get: false,
            captures: Vec::new(),
            set_vars: Vec::new(),
            map_values: Default::default(),
            map_captures: Default::default(),
            internal: false,
            depth: 0,
            start: crate::rt::now(),
            request_length,
            resp: Reply::default(),
            upstream: None,
            proxy_host: None,
            balancer: BalancerPick::default(),
        }
    }

    /// $request_method after error_page redirects.
    pub fn method(&self) -> &str {
        if self.method_get {
            "GET"
        } else {
            self.method_override.unwrap_or_else(|| self.req.method_str())
        }
    }

    /// The request headers with Lua's edits applied, in order (edited
    /// names last).
    pub fn request_headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        let edits = &self.header_edits;
        self.req
            .headers()
            .filter(move |(n, _)| !edits.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)))
            .chain(edits.iter().filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v))))
    }

    /// How many headers [`RequestCtx::request_headers`] yields.
    pub fn request_header_count(&self) -> usize {
        if self.header_edits.is_empty() {
            self.req.header_count()
        } else {
            self.request_headers().count()
        }
    }

    /// ngx.req.set_header (value Some) / clear_header (None).
    pub fn edit_header(&mut self, name: &str, value: Option<String>) {
        self.header_edits.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header_edits.push((name.to_string(), value));
    }

    /// ngx.req.add_header: one more header of the name. The first edit of a
    /// name copies the request's own headers of it, so they stay.
    pub fn add_header(&mut self, name: &str, value: String) {
        let name = name.to_string();
        if !self.header_edits.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            let own: Vec<_> = self
                .req
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(n, v)| (n.to_string(), Some(v.to_string())))
                .collect();
            if own.is_empty() {
                // Marks the name as edited even with no own headers.
                self.header_edits.push((name.clone(), None));
            }
            self.header_edits.extend(own);
        }
        self.header_edits.push((name, Some(value)));
    }

    /// Lua replaced the body (ngx.req.set_body_data, set_body_file,
    /// finish_body): the old one goes (its temp file removed unless kept),
    /// and Content-Length says the new length, as lua-nginx-module sets it.
    pub fn replace_body(&mut self, body: RequestBody) {
        let len = body.len();
        self.body = Some(body);
        self.edit_header("Content-Length", Some(len.to_string()));
    }

    /// The request's Content-Length as it stands (after Lua's edits), 0
    /// without one.
    pub fn content_length(&self) -> u64 {
        if self.header_edits.is_empty() {
            return self.req.content_length.unwrap_or(0);
        }
        self.request_headers()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// $host: the Host (or absolute-URI host), else the server's name.
    pub fn host(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.req.host().unwrap_or(self.server.primary_name.as_str()))
    }

    /// Write an error-log line about this request, with nginx's trailing
    /// `, client: ..., server: ..., request: "...", host: "..."`.
    pub fn log(&self, level: crate::log::Level, msg: std::fmt::Arguments) {
        if !crate::log::error::enabled(level) {
            return;
        }
        let tail = crate::log::error::request_context(
            &self.conn.remote_addr(),
            &self.server.primary_name,
            Some(self.req.request_line()),
            // nginx's is the Host header as sent, port and all.
            self.req.header("host"),
        );
        crate::log::error::log(level, Some(self.conn.number), &format!("{msg}{tail}"));
    }

    pub fn set_var(&mut self, name: &str, value: String) {
        match self.set_vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.set_vars.push((name.to_string(), value)),
        }
    }

}
