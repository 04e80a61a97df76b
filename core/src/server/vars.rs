//! nginx variables: what `$name` means for a request. `RequestCtx`
//! implements `Vars` with these, so templates (return, set, rewrite,
//! add_header, log_format) and later ngx.var share one definition.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use crate::conf::template::Vars;
use crate::conf::{LocConf, Server};
use crate::http::request::Request;
use crate::request::body::RequestBody;

/// What a request knows about its connection.
pub struct ConnInfo {
    pub fd: i32,
    /// The address of the listening socket it came in on.
    pub listen: SocketAddr,
    /// The error log's `*N`.
    pub number: u64,
    /// Requests served on this connection so far, this one included.
    pub requests: u64,
    peer: std::cell::OnceCell<Option<SocketAddr>>,
    local: std::cell::OnceCell<Option<SocketAddr>>,
}

impl ConnInfo {
    pub fn new(fd: i32, listen: SocketAddr, number: u64) -> ConnInfo {
        ConnInfo { fd, listen, number, requests: 0, peer: Default::default(), local: Default::default() }
    }
    /// The client's address (getpeername on first use: multishot accept
    /// does not return it).
    pub fn peer(&self) -> Option<SocketAddr> {
        *self.peer.get_or_init(|| crate::process::listen::peer_addr(self.fd, false))
    }
    /// The server side's address of this connection.
    pub fn local(&self) -> Option<SocketAddr> {
        *self.local.get_or_init(|| {
            if self.listen.ip().is_unspecified() {
                crate::process::listen::peer_addr(self.fd, true)
            } else {
                Some(self.listen)
            }
        })
    }
    /// $remote_addr as text.
    pub fn remote_addr(&self) -> String {
        self.peer().map(|a| a.ip().to_string()).unwrap_or_default()
    }
    /// $binary_remote_addr: the client's address in network order, 4
    /// bytes for IPv4, 16 for IPv6 (IPv4-mapped addresses stay 16, as in
    /// nginx); empty when the peer is unknown.
    pub fn binary_remote_addr(&self) -> Vec<u8> {
        match self.peer().map(|a| a.ip()) {
            Some(std::net::IpAddr::V4(ip)) => ip.octets().to_vec(),
            Some(std::net::IpAddr::V6(ip)) => ip.octets().to_vec(),
            None => Vec::new(),
        }
    }
}

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
    /// ngx.req.set_header / clear_header: per name (last edit only), the
    /// value that replaces all of the request's headers of that name, or
    /// None to remove them.
    pub header_edits: Vec<(String, Option<String>)>,
    /// ngx.req.set_method.
    pub method_override: Option<&'static str>,
    /// The worker's Lua handlers, for set_by_lua* (run inside the rewrite
    /// directives).
    pub lua: Option<&'a crate::lua::handler::LuaHandlers>,
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
    /// Whether the request was redirected internally (`internal` locations
    /// are reachable then).
    pub internal: bool,
    pub start: Instant,
    /// Filled once the response is known, for $status and the log.
    pub status: u16,
    pub body_bytes_sent: u64,
    pub bytes_sent: u64,
    pub request_length: u64,
    /// Response headers, for $sent_http_*.
    pub sent_headers: Vec<(String, String)>,
    pub sent_content_type: Option<Cow<'a, str>>,
}

impl<'a> RequestCtx<'a> {
    pub fn new(req: &'a Request, conn: &'a ConnInfo, server: &'a Server, request_length: u64) -> Self {
        RequestCtx {
            id: 0,
            has_lua_ctx: false,
            lua: None,
            body: None,
            body_done: false,
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
            internal: false,
            start: crate::rt::now(),
            status: 0,
            body_bytes_sent: 0,
            bytes_sent: 0,
            request_length,
            sent_headers: Vec::new(),
            sent_content_type: None,
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

    /// ngx.req.set_header (value Some) / clear_header (None).
    pub fn edit_header(&mut self, name: &str, value: Option<String>) {
        self.header_edits.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header_edits.push((name.to_string(), value));
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
            self.req.host(),
        );
        crate::log::error::log(level, Some(self.conn.number), &format!("{msg}{tail}"));
    }

    pub fn set_var(&mut self, name: &str, value: String) {
        match self.set_vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.set_vars.push((name.to_string(), value)),
        }
    }

    /// Assign `$name` from Lua (ngx.var.NAME = value): `set` variables and
    /// $args are writable; Err(true) for a built-in that is not, Err(false)
    /// for a variable that does not exist (nginx wants it declared by `set`).
    pub fn assign(&mut self, name: &str, value: String) -> Result<(), bool> {
        if name == "args" || name == "query_string" {
            self.args = (!value.is_empty()).then_some(Cow::Owned(value));
            return Ok(());
        }
        if let Some(slot) = self.set_vars.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
            return Ok(());
        }
        let prefixed = ["http_", "sent_http_", "arg_", "cookie_"].iter().any(|p| name.starts_with(p));
        Err(prefixed || self.lookup_bytes(name).is_some())
    }

    /// The value of `$name` as bytes (what ngx.var reads): `lookup`, except
    /// that variables whose values need not be text come out exact:
    /// $binary_remote_addr, and $request_body byte for byte.
    pub fn lookup_bytes(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        if !self.set_vars.iter().any(|(n, _)| n == name) {
            match name {
                "binary_remote_addr" => return Some(Cow::Owned(self.conn.binary_remote_addr())),
                "request_body" => return self.body.as_ref().and_then(RequestBody::data).map(Cow::Borrowed),
                _ => {}
            }
        }
        self.lookup(name).map(|v| Cow::Owned(v.into_bytes()))
    }

    /// The value of `$name`, or None if unknown / not set.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.set_vars.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        let req = self.req;
        Some(match name {
            "uri" | "document_uri" => self.uri.to_string(),
            "request_uri" => req.request_uri().to_string(),
            "args" | "query_string" => self.args.as_deref().unwrap_or_default().to_string(),
            "is_args" => if self.args.is_some() { "?" } else { "" }.to_string(),
            "host" => self.host().into_owned(),
            "hostname" => hostname(),
            "remote_addr" => self.conn.remote_addr(),
            // Not text, so not in templates (`Vars` values are strings);
            // ngx.var reads it through `lookup_bytes`.
            "binary_remote_addr" => return None,
            "remote_port" => self.conn.peer().map(|a| a.port().to_string()).unwrap_or_default(),
            "remote_user" => return None,
            "server_addr" => self.conn.local().map(|a| a.ip().to_string()).unwrap_or_default(),
            "server_port" => self.conn.local().map(|a| a.port().to_string()).unwrap_or_default(),
            "server_name" => self.server.primary_name.clone(),
            "server_protocol" => format!("HTTP/1.{}", req.version_minor),
            "scheme" => "http".to_string(),
            "https" => String::new(),
            "request_method" => self.method().to_string(),
            "request" => req.request_line().to_string(),
            "request_length" => self.request_length.to_string(),
            "request_time" => {
                let d = self.start.elapsed();
                format!("{}.{:03}", d.as_secs(), d.subsec_millis())
            }
            "status" => format!("{:03}", self.status),
            "body_bytes_sent" => self.body_bytes_sent.to_string(),
            "bytes_sent" => self.bytes_sent.to_string(),
            "connection" => self.conn.number.to_string(),
            "connection_requests" => self.conn.requests.to_string(),
            "pid" => std::process::id().to_string(),
            "msec" => crate::log::time::msec(),
            "time_local" => crate::log::time::time_local(),
            "time_iso8601" => crate::log::time::time_iso8601(),
            "content_type" => req.header("content-type")?.to_string(),
            "content_length" => req.header("content-length")?.to_string(),
            "request_body" => String::from_utf8_lossy(self.body.as_ref().and_then(RequestBody::data)?).into_owned(),
            "document_root" => self.conf.root.render(&mut NoVars, &[]),
            "realpath_root" => {
                let root = self.conf.root.render(&mut NoVars, &[]);
                std::fs::canonicalize(&root).map(|p| p.to_string_lossy().into_owned()).unwrap_or(root)
            }
            _ => return self.prefixed(name),
        })
    }

    fn prefixed(&self, name: &str) -> Option<String> {
        if let Some(h) = name.strip_prefix("http_") {
            return header_var(self.request_headers(), h);
        }
        if let Some(h) = name.strip_prefix("sent_http_") {
            if h == "content_type" {
                return self.sent_content_type.as_deref().map(str::to_string);
            }
            return header_var(self.sent_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), h);
        }
        if let Some(a) = name.strip_prefix("arg_") {
            return arg(self.args.as_deref()?, a).map(str::to_string);
        }
        if let Some(c) = name.strip_prefix("cookie_") {
            return self.request_headers().filter(|(n, _)| n.eq_ignore_ascii_case("cookie")).find_map(|(_, v)| cookie(v, c)).map(str::to_string);
        }
        if let Ok(n) = name.parse::<usize>() {
            return self.captures.get(n).cloned();
        }
        None
    }
}

impl Vars for RequestCtx<'_> {
    fn var(&mut self, name: &str) -> Option<String> {
        self.lookup(name)
    }
}

/// For templates that cannot mention request variables.
pub struct NoVars;

impl Vars for NoVars {
    fn var(&mut self, _: &str) -> Option<String> {
        None
    }
}

/// `$http_x_forwarded_for`: header names compare with '-' as '_', any
/// case; several headers of the name are joined as nginx does (", ", or
/// "; " for cookies).
fn header_var<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>, var: &str) -> Option<String> {
    let same = |h: &str| h.len() == var.len() && h.bytes().zip(var.bytes()).all(|(a, b)| {
        let a = if a == b'-' { b'_' } else { a.to_ascii_lowercase() };
        a == b
    });
    let mut out: Option<String> = None;
    for (_, v) in headers.filter(|(n, _)| same(n)) {
        match &mut out {
            None => out = Some(v.to_string()),
            Some(o) => {
                o.push_str(if var == "cookie" { "; " } else { ", " });
                o.push_str(v);
            }
        }
    }
    out
}

/// The raw value of query argument `name` (first match, case-insensitive
/// as in nginx).
pub fn arg<'s>(args: &'s str, name: &str) -> Option<&'s str> {
    args.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn cookie<'s>(header: &'s str, name: &str) -> Option<&'s str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
