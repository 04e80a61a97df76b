//! The proxy module's directives: `proxy_pass` (a location's content) and
//! the `proxy_*` settings inherited http -> server -> location.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::parse::Directive;
use super::template::Template;
use super::types::LocKind;
use super::ConfError;

/// `proxy_pass http://HOST[:PORT][/URI]`, resolved at load time (as nginx
/// resolves a static proxy_pass).
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// The URL as written (the `upstream: "..."` of error-log lines).
    pub url: String,
    /// `$proxy_host`: the host, and the port when it is not 80.
    pub host: String,
    /// The addresses the host stands for, in the resolver's order.
    pub addrs: Vec<SocketAddr>,
    /// The URI part (replaces the matched location prefix); None without one.
    pub uri: Option<String>,
    /// `proxy_pass http://NAME` naming an `upstream {}` block: its peers,
    /// chosen by its balancer (then `addrs` is empty).
    pub upstream: Option<std::sync::Arc<super::upstream::UpstreamConf>>,
}

/// The inheritable `proxy_*` settings.
#[derive(Debug, Clone)]
pub struct ProxyConf {
    /// `proxy_http_version 1.1`.
    pub http11: bool,
    /// `proxy_set_header` (a level with none inherits its parent's).
    pub set_headers: Vec<(String, Template)>,
    pub pass_request_headers: bool,
    pub pass_request_body: bool,
    /// `proxy_request_buffering`: the body read whole before the request
    /// goes (on), or sent as it arrives (off).
    pub request_buffering: bool,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// `proxy_buffering`: accepted; halo streams the response either way.
    pub buffering: bool,
    /// `proxy_buffer_size`: the most the upstream's response head may take
    /// (nginx's first buffer), a page by default.
    pub buffer_size: usize,
    /// `proxy_buffers NUMBER SIZE` and `proxy_busy_buffers_size`: checked
    /// and kept; halo streams the body through one read buffer either way.
    pub buffers: (usize, usize),
    pub busy_buffers_size: Option<usize>,
    /// Response headers not passed: nginx's defaults plus `proxy_hide_header`,
    /// minus `proxy_pass_header` (lowercase).
    pub hide_headers: Vec<String>,
    pub intercept_errors: bool,
    /// `proxy_ignore_client_abort`: a client's hang-up while the upstream
    /// works does not end the request (a client gone mid-response ends the
    /// proxying either way).
    pub ignore_client_abort: bool,
    /// The `proxy_hide_header` and `proxy_pass_header` lists in force (what
    /// an inner level without its own inherits).
    pub hide_list: Vec<String>,
    pub pass_list: Vec<String>,
    /// `proxy_next_upstream`: when a try's failure or answer moves on to
    /// the next peer (`NEXT_*` bits; 0 with `off`).
    pub next_upstream: u16,
    /// `proxy_next_upstream_tries`: the most tries, the first included (0:
    /// no limit).
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout`: no next try once this long passed
    /// since the first began (zero: no limit).
    pub next_upstream_timeout: Duration,
}

/// `proxy_next_upstream`'s conditions.
pub const NEXT_ERROR: u16 = 1;
pub const NEXT_TIMEOUT: u16 = 1 << 1;
pub const NEXT_INVALID_HEADER: u16 = 1 << 2;
pub const NEXT_NON_IDEMPOTENT: u16 = 1 << 3;
/// The statuses `proxy_next_upstream http_NNN` names, bit `1 << (4 + i)`.
pub const NEXT_STATUSES: &[u16] = &[500, 502, 503, 504, 403, 404, 429];

/// The `proxy_next_upstream` bit of a status, if it has one.
pub fn next_status_bit(status: u16) -> Option<u16> {
    NEXT_STATUSES.iter().position(|&s| s == status).map(|i| 1 << (4 + i))
}

/// Response headers nginx's proxy hides by default.
pub const HIDE_DEFAULT: &[&str] = &["date", "server", "x-pad", "x-accel-expires", "x-accel-redirect", "x-accel-limit-rate", "x-accel-buffering", "x-accel-charset"];

impl Default for ProxyConf {
    fn default() -> ProxyConf {
        ProxyConf {
            http11: false,
            set_headers: Vec::new(),
            pass_request_headers: true,
            pass_request_body: true,
            request_buffering: true,
            connect_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            buffering: true,
            buffer_size: 4096,
            buffers: (8, 4096),
            busy_buffers_size: None,
            hide_headers: HIDE_DEFAULT.iter().map(|s| s.to_string()).collect(),
            intercept_errors: false,
            ignore_client_abort: false,
            hide_list: Vec::new(),
            pass_list: Vec::new(),
            next_upstream: NEXT_ERROR | NEXT_TIMEOUT,
            next_upstream_tries: 0,
            next_upstream_timeout: Duration::ZERO,
        }
    }
}

/// One level's own `proxy_*` settings; None = not set here.
#[derive(Default)]
pub struct ProxyPartial {
    http11: Option<bool>,
    set_headers: Option<Vec<(String, Template)>>,
    pass_request_headers: Option<bool>,
    pass_request_body: Option<bool>,
    request_buffering: Option<bool>,
    connect_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    buffering: Option<bool>,
    buffer_size: Option<usize>,
    buffers: Option<(usize, usize)>,
    busy_buffers_size: Option<usize>,
    hide: Option<Vec<String>>,
    pass: Option<Vec<String>>,
    intercept_errors: Option<bool>,
    ignore_client_abort: Option<bool>,
    /// The conditions named at this level (the directive may repeat, as
    /// nginx's bitmask), and whether `off` was among them.
    next_upstream: Option<(u16, bool)>,
    next_upstream_tries: Option<u32>,
    next_upstream_timeout: Option<Duration>,
}

/// The directives this module handles (besides proxy_pass).
pub const DIRECTIVES: &[&str] = &[
    "proxy_http_version",
    "proxy_set_header",
    "proxy_pass_request_headers",
    "proxy_pass_request_body",
    "proxy_request_buffering",
    "proxy_connect_timeout",
    "proxy_send_timeout",
    "proxy_read_timeout",
    "proxy_buffering",
    "proxy_buffer_size",
    "proxy_buffers",
    "proxy_busy_buffers_size",
    "proxy_hide_header",
    "proxy_pass_header",
    "proxy_intercept_errors",
    "proxy_ignore_client_abort",
    "proxy_next_upstream",
    "proxy_next_upstream_tries",
    "proxy_next_upstream_timeout",
];

fn dup(d: &Directive) -> ConfError {
    ConfError::at(format!("\"{}\" directive is duplicate", d.name), d)
}

fn once<T>(d: &Directive, slot: &mut Option<T>, v: T) -> Result<(), ConfError> {
    if slot.is_some() {
        return Err(dup(d));
    }
    *slot = Some(v);
    Ok(())
}

fn flag(d: &Directive) -> Result<bool, ConfError> {
    match d.args[0].as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(ConfError::at(format!("invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"", d.name), d)),
    }
}

/// A size argument (nginx's `ngx_conf_set_size_slot`).
fn size(d: &Directive, arg: &str) -> Result<usize, ConfError> {
    super::build::parse_size(arg).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| ConfError::at(format!("\"{}\" directive invalid value", d.name), d))
}

fn time(d: &Directive) -> Result<Duration, ConfError> {
    super::build::parse_time(&d.args[0], false).ok_or_else(|| ConfError::at(format!("\"{}\" directive invalid value", d.name), d))
}

impl ProxyPartial {
    /// Handles `d` if it is one of [`DIRECTIVES`].
    pub fn directive(&mut self, d: &Directive) -> Result<(), ConfError> {
        match d.name.as_str() {
            "proxy_http_version" => {
                let v = match d.args[0].as_str() {
                    "1.0" => false,
                    "1.1" => true,
                    v => return Err(ConfError::at(format!("invalid value \"{v}\" in \"{}\" directive, it must be \"1.0\" or \"1.1\"", d.name), d)),
                };
                once(d, &mut self.http11, v)
            }
            "proxy_set_header" => {
                let v = Template::parse(&d.args[1]).map_err(|e| ConfError::at(e, d))?;
                self.set_headers.get_or_insert_with(Vec::new).push((d.args[0].clone(), v));
                Ok(())
            }
            "proxy_pass_request_headers" => once(d, &mut self.pass_request_headers, flag(d)?),
            "proxy_pass_request_body" => once(d, &mut self.pass_request_body, flag(d)?),
            "proxy_request_buffering" => once(d, &mut self.request_buffering, flag(d)?),
            "proxy_connect_timeout" => once(d, &mut self.connect_timeout, time(d)?),
            "proxy_send_timeout" => once(d, &mut self.send_timeout, time(d)?),
            "proxy_read_timeout" => once(d, &mut self.read_timeout, time(d)?),
            "proxy_buffering" => once(d, &mut self.buffering, flag(d)?),
            "proxy_buffer_size" => once(d, &mut self.buffer_size, size(d, &d.args[0])?),
            "proxy_busy_buffers_size" => once(d, &mut self.busy_buffers_size, size(d, &d.args[0])?),
            "proxy_buffers" => {
                let n = super::build::atoi(&d.args[0]).and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0);
                let each = size(d, &d.args[1]).ok().filter(|&s| s > 0);
                match n.zip(each) {
                    Some(v) => once(d, &mut self.buffers, v),
                    None => Err(ConfError::at(format!("\"{}\" directive invalid value", d.name), d)),
                }
            }
            "proxy_intercept_errors" => once(d, &mut self.intercept_errors, flag(d)?),
            "proxy_ignore_client_abort" => once(d, &mut self.ignore_client_abort, flag(d)?),
            "proxy_next_upstream" => {
                let (mut bits, mut off) = self.next_upstream.unwrap_or((0, false));
                for a in &d.args {
                    let bit = match a.as_str() {
                        "off" => {
                            off = true;
                            0
                        }
                        "error" => NEXT_ERROR,
                        "timeout" => NEXT_TIMEOUT,
                        "invalid_header" => NEXT_INVALID_HEADER,
                        "non_idempotent" => NEXT_NON_IDEMPOTENT,
                        v => match v.strip_prefix("http_").and_then(|n| n.parse::<u16>().ok()).and_then(next_status_bit) {
                            Some(b) => b,
                            None => return Err(ConfError::at(format!("invalid value \"{v}\""), d)),
                        },
                    };
                    bits |= bit;
                }
                self.next_upstream = Some((bits, off));
                Ok(())
            }
            "proxy_next_upstream_tries" => {
                let n = super::build::atoi(&d.args[0]).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| super::build::slot_err(d, "invalid number"))?;
                once(d, &mut self.next_upstream_tries, n)
            }
            "proxy_next_upstream_timeout" => once(d, &mut self.next_upstream_timeout, time(d)?),
            "proxy_hide_header" => {
                self.hide.get_or_insert_with(Vec::new).push(d.args[0].to_ascii_lowercase());
                Ok(())
            }
            "proxy_pass_header" => {
                self.pass.get_or_insert_with(Vec::new).push(d.args[0].to_ascii_lowercase());
                Ok(())
            }
            _ => unreachable!("{} is not a proxy directive", d.name),
        }
    }

    /// This level's settings over its parent's (array directives replace
    /// the parent's list when the level has any, as nginx merges them).
    pub fn merge(&self, parent: &ProxyConf) -> ProxyConf {
        let hide = self.hide.clone().unwrap_or_else(|| parent.hide_list.clone());
        let pass = self.pass.clone().unwrap_or_else(|| parent.pass_list.clone());
        let hide_headers = HIDE_DEFAULT
            .iter()
            .map(|s| s.to_string())
            .chain(hide.iter().cloned())
            .filter(|h| !pass.contains(h))
            .collect();
        ProxyConf {
            http11: self.http11.unwrap_or(parent.http11),
            set_headers: self.set_headers.clone().unwrap_or_else(|| parent.set_headers.clone()),
            pass_request_headers: self.pass_request_headers.unwrap_or(parent.pass_request_headers),
            pass_request_body: self.pass_request_body.unwrap_or(parent.pass_request_body),
            request_buffering: self.request_buffering.unwrap_or(parent.request_buffering),
            connect_timeout: self.connect_timeout.unwrap_or(parent.connect_timeout),
            send_timeout: self.send_timeout.unwrap_or(parent.send_timeout),
            read_timeout: self.read_timeout.unwrap_or(parent.read_timeout),
            buffering: self.buffering.unwrap_or(parent.buffering),
            buffer_size: self.buffer_size.unwrap_or(parent.buffer_size),
            buffers: self.buffers.unwrap_or(parent.buffers),
            busy_buffers_size: self.busy_buffers_size.or(parent.busy_buffers_size),
            hide_headers,
            intercept_errors: self.intercept_errors.unwrap_or(parent.intercept_errors),
            ignore_client_abort: self.ignore_client_abort.unwrap_or(parent.ignore_client_abort),
            hide_list: hide,
            pass_list: pass,
            // `off` wins over whatever goes with it, as nginx's merge.
            next_upstream: match self.next_upstream {
                Some((_, true)) => 0,
                Some((bits, false)) => bits,
                None => parent.next_upstream,
            },
            next_upstream_tries: self.next_upstream_tries.unwrap_or(parent.next_upstream_tries),
            next_upstream_timeout: self.next_upstream_timeout.unwrap_or(parent.next_upstream_timeout),
        }
    }
}

/// `proxy_pass URL` in a location of `kind`, with nginx's errors.
pub fn proxy_pass(d: &Directive, kind: LocKind, upstreams: &[std::sync::Arc<super::upstream::UpstreamConf>]) -> Result<ProxyPass, ConfError> {
    let url = d.args[0].as_str();
    if url.contains('$') {
        return Err(ConfError::at("proxy_pass with variables is not supported by halo yet", d));
    }
    let rest = if url.len() >= 7 && url[..7].eq_ignore_ascii_case("http://") {
        &url[7..]
    } else if url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://") {
        return Err(ConfError::at("https proxying is not supported by halo yet", d));
    } else {
        return Err(ConfError::at(format!("invalid URL prefix in \"{url}\""), d));
    };
    if rest.starts_with("unix:") {
        return Err(ConfError::at("proxy_pass to a unix: socket is not supported by halo yet", d));
    }
    let (authority, uri) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let upstream_err = |what: &str| ConfError::at(format!("{what} in upstream \"{rest}\""), d);
    if authority.is_empty() {
        return Err(upstream_err("no host"));
    }
    // [v6]:port, host:port, host.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some(end) = v6.find(']') else { return Err(upstream_err("invalid IPv6 address")) };
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(upstream_err("invalid host")),
        };
        (&authority[..end + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(upstream_err("invalid port")),
        },
    };
    if host.is_empty() {
        return Err(upstream_err("no host"));
    }
    if uri.is_some() && matches!(kind, LocKind::Regex | LocKind::Named) {
        return Err(ConfError::at(
            "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
            d,
        ));
    }
    // A name without a port may be an upstream block's (one defined before
    // this proxy_pass: halo reads the config in one pass).
    if !authority.contains(':') {
        if let Some(u) = upstreams.iter().find(|u| u.name.eq_ignore_ascii_case(host)) {
            return Ok(ProxyPass { url: url.to_string(), host: host.to_string(), addrs: Vec::new(), uri, upstream: Some(u.clone()) });
        }
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match (bare, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(_) => Vec::new(),
        },
    };
    if addrs.is_empty() {
        return Err(ConfError::at(format!("host not found in upstream \"{rest}\""), d));
    }
    let host = if port == 80 { host.to_string() } else { format!("{host}:{port}") };
    Ok(ProxyPass { url: url.to_string(), host, addrs, uri, upstream: None })
}
