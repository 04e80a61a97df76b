//! nginx variables: what `$name` means for a request. `RequestCtx`
//! implements `Vars` with these, so templates (return, set, rewrite,
//! add_header, log_format) and ngx.var share one definition.

use std::borrow::Cow;
use std::fmt::Write;

use crate::conf::template::Vars;

use super::body::RequestBody;
use super::RequestCtx;

impl RequestCtx<'_> {
    /// Assign `$name` from Lua (ngx.var.NAME = value): `set` variables,
    /// `map` results (what later reads get, as nginx's cached value) and
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
        if let Some(i) = self.server.maps.iter().position(|m| m.var == name) {
            // A volatile map is evaluated at each read all the same.
            if self.server.maps[i].volatile {
                return Ok(());
            }
            let cache = self.map_values.get_mut();
            cache.retain(|(n, _)| *n != i);
            cache.push((i, Some(value)));
            return Ok(());
        }
        let prefixed = ["http_", "sent_http_", "upstream_http_", "arg_", "cookie_"].iter().any(|p| name.starts_with(p));
        Err(prefixed || self.lookup_bytes(name).is_some())
    }

    /// The value of `$name` as bytes (what ngx.var reads): `lookup`, except
    /// that variables whose values need not be text come out exact:
    /// $binary_remote_addr, and $request_body byte for byte.
    pub fn lookup_bytes(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        if !self.set_vars.iter().any(|(n, _)| n == name) {
            match name {
                "binary_remote_addr" => return Some(Cow::Owned(self.conn.binary_remote_addr())),
                // Not found when empty, as nginx (no buffers).
                "request_body" => return self.body.as_ref().and_then(RequestBody::data).filter(|d| !d.is_empty()).map(Cow::Borrowed),
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
        if let Some(i) = self.server.maps.iter().position(|m| m.var == name) {
            return self.map_value(i);
        }
        if let Some((_, v)) = self.map_captures.borrow().iter().find(|(n, _)| n == name) {
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
            "status" => format!("{:03}", self.resp.status),
            "body_bytes_sent" => self.resp.body_bytes_sent.to_string(),
            "bytes_sent" => self.resp.bytes_sent.to_string(),
            "connection" => self.conn.number.to_string(),
            "connection_requests" => self.conn.requests.to_string(),
            "pid" => std::process::id().to_string(),
            "msec" => crate::log::time::msec(),
            "time_local" => crate::log::time::time_local(),
            "time_iso8601" => crate::log::time::time_iso8601(),
            "content_type" => req.header("content-type")?.to_string(),
            "content_length" if self.header_edits.is_empty() => req.header("content-length")?.to_string(),
            "content_length" => self.request_headers().find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?.1.to_string(),
            "request_body" => String::from_utf8_lossy(self.body.as_ref().and_then(RequestBody::data).filter(|d| !d.is_empty())?).into_owned(),
            "document_root" => self.conf.root.render(&mut NoVars, &[]),
            "realpath_root" => {
                let root = self.conf.root.render(&mut NoVars, &[]);
                std::fs::canonicalize(&root).map(|p| p.to_string_lossy().into_owned()).unwrap_or(root)
            }
            "upstream_addr" => self.upstream_list(|t, out| write!(out, "{}", t.addr))?,
            "upstream_status" => self.upstream_list(|t, out| match t.status {
                0 => out.write_char('-'),
                s => write!(out, "{s}"),
            })?,
            "upstream_response_time" => self.upstream_list(|t, out| msecs(out, t, t.ended))?,
            "upstream_connect_time" => self.upstream_list(|t, out| msecs(out, t, t.connected))?,
            "upstream_header_time" => self.upstream_list(|t, out| msecs(out, t, t.header_read))?,
            "upstream_bytes_sent" => self.upstream_list(|t, out| write!(out, "{}", t.bytes_sent))?,
            "upstream_bytes_received" => self.upstream_list(|t, out| write!(out, "{}", t.bytes_received))?,
            "proxy_host" => match &self.proxy_host {
                Some(h) => h.clone(),
                None => self.conf.proxy_pass.as_ref().filter(|p| p.vars.is_none())?.host.clone(),
            },
            "proxy_add_x_forwarded_for" => {
                let me = self.conn.remote_addr();
                match self.request_headers().find(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for")) {
                    Some((_, v)) => format!("{v}, {me}"),
                    None => me,
                }
            }
            _ => return self.prefixed(name),
        })
    }

    /// The value of `map` number `i`: its source looked up, the value
    /// rendered (with the regex's captures); once per request unless
    /// `volatile`; a regex key's named captures become variables. A map
    /// whose value needs itself reads it as not found (nginx reports a
    /// "cycle while evaluating variable").
    fn map_value(&self, i: usize) -> Option<String> {
        let map = &self.server.maps[i];
        if let Some((_, v)) = self.map_values.borrow().iter().find(|(n, _)| *n == i) {
            return v.clone();
        }
        self.map_values.borrow_mut().push((i, None));
        let source = map.source.render(&mut ReadVars(self), &[]);
        let hit = map.find(&source);
        {
            let mut named = self.map_captures.borrow_mut();
            for (n, v) in hit.named {
                named.retain(|(o, _)| !o.eq_ignore_ascii_case(n));
                named.push((n.to_ascii_lowercase(), v));
            }
        }
        let caps: Vec<&str> = hit.captures.iter().map(String::as_str).collect();
        let value = hit.value.render(&mut ReadVars(self), &caps);
        let mut cache = self.map_values.borrow_mut();
        let at = cache.iter().position(|(n, _)| *n == i).expect("pushed above");
        if map.volatile {
            cache.remove(at);
        } else {
            cache[at].1 = Some(value.clone());
        }
        Some(value)
    }

    /// An `$upstream_*` list: each try by `one`, ", " between; None before
    /// the first try.
    fn upstream_list(&self, one: impl Fn(&super::UpstreamTry, &mut String) -> std::fmt::Result) -> Option<String> {
        let tries = &self.upstream.as_ref()?.tries;
        if tries.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, t) in tries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            one(t, &mut out).ok()?;
        }
        Some(out)
    }

    fn prefixed(&self, name: &str) -> Option<String> {
        if let Some(h) = name.strip_prefix("upstream_http_") {
            return header_var(self.upstream.as_ref()?.headers.iter(), h);
        }
        if let Some(h) = name.strip_prefix("http_") {
            return header_var(self.request_headers().map(|(n, v)| (n.as_bytes(), v.as_bytes())), h);
        }
        if let Some(h) = name.strip_prefix("sent_http_") {
            if h == "content_type" {
                return self.resp.content_type.as_deref().map(str::to_string);
            }
            return header_var(self.resp.headers.iter(), h);
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

/// Variables of a request read through a shared borrow (a map's source
/// and value, rendered inside `lookup`).
struct ReadVars<'r, 'c>(&'r RequestCtx<'c>);

impl Vars for ReadVars<'_, '_> {
    fn var(&mut self, name: &str) -> Option<String> {
        self.0.lookup(name)
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
fn header_var<'h>(headers: impl Iterator<Item = (&'h [u8], &'h [u8])>, var: &str) -> Option<String> {
    let same = |h: &[u8]| h.len() == var.len() && h.iter().zip(var.bytes()).all(|(&a, b)| {
        let a = if a == b'-' { b'_' } else { a.to_ascii_lowercase() };
        a == b
    });
    let mut out: Option<String> = None;
    for (_, v) in headers.filter(|(n, _)| same(n)) {
        let v = String::from_utf8_lossy(v);
        match &mut out {
            None => out = Some(v.into_owned()),
            Some(o) => {
                o.push_str(if var == "cookie" { "; " } else { ", " });
                o.push_str(&v);
            }
        }
    }
    out
}

/// A time of try `t` as nginx's `$upstream_*_time` shows it: seconds with
/// milliseconds since the try started ("0.012"), "-" when the try has no
/// status or never got there.
fn msecs(out: &mut String, t: &super::UpstreamTry, at: Option<std::time::Instant>) -> std::fmt::Result {
    match at.filter(|_| t.status != 0) {
        Some(at) => {
            let ms = at.saturating_duration_since(t.start).as_millis();
            write!(out, "{}.{:03}", ms / 1000, ms % 1000)
        }
        None => out.write_char('-'),
    }
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
