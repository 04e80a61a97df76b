//! The proxy module's directives: `proxy_pass` (a location's content) and
//! the `proxy_*` settings inherited http -> server -> location.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::parse::Directive;
use super::template::Template;
use super::types::LocKind;
use super::upstream::{PeerAddr, UpstreamConf};
use super::build::{choice, flag};
use super::ConfError;

/// `proxy_pass http://HOST[:PORT][/URI]` (or `http://unix:PATH[:URI]`),
/// its host resolved at load time (as nginx resolves a static
/// proxy_pass); with variables, the URL is evaluated per request
/// (`crate::proxy` makes one of these from [`PassVars`] then).
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// The URL as written (the `upstream: "..."` of error-log lines).
    pub url: String,
    /// `$proxy_host`: the host, and the port when it is not 80.
    pub host: String,
    /// The addresses the host stands for, in the resolver's order.
    pub addrs: Vec<PeerAddr>,
    /// The URI part (replaces the matched location prefix); None without
    /// one. From variables, it replaces the whole request URI.
    pub uri: Option<String>,
    /// `proxy_pass http://NAME` naming an `upstream {}` block: its peers,
    /// chosen by its balancer (then `addrs` is empty).
    pub upstream: Option<Arc<UpstreamConf>>,
    /// The URL has variables.
    pub vars: Option<Arc<PassVars>>,
}

/// A proxy_pass URL with variables: its template and the `upstream {}`
/// blocks an evaluated host may name.
#[derive(Debug)]
pub struct PassVars {
    pub template: Template,
    pub upstreams: Vec<Arc<UpstreamConf>>,
}

/// One `proxy_redirect REDIRECT REPLACEMENT` (or `default`'s): what an
/// upstream's Location or Refresh URL starting with (or matching) the
/// pattern becomes.
#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub pattern: RedirectPattern,
    /// May have variables (and, after a regex, its captures).
    pub replacement: Template,
}

/// The left side of a [`RedirectRule`].
#[derive(Debug, Clone)]
pub enum RedirectPattern {
    /// A prefix, compared case-sensitively (may have variables).
    Prefix(Template),
    /// `~regex` / `~*regex` (matching anywhere): the whole URL is replaced,
    /// its captures at hand.
    Regex(regex::Regex),
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
    /// `proxy_redirect`: the rules Location and Refresh go through, the
    /// first that matches applies (empty: `off`, or none).
    pub redirects: Vec<RedirectRule>,
    /// `proxy_redirect off` is in force (a child inherits it).
    pub redirect_off: bool,
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
            redirects: Vec::new(),
            redirect_off: false,
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
    /// `proxy_redirect` rules written here; `off` makes it `Some(None)`.
    redirects: Option<Option<Vec<RedirectRule>>>,
    /// What `proxy_redirect default` stands for in this location: its
    /// proxy_pass's (pattern, replacement), Err for one with variables.
    pass_default: Option<Result<(String, String), ()>>,
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
    "proxy_redirect",
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
                let v = choice(d, &[("1.0", false), ("1.1", true)])?;
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
            "proxy_redirect" => self.redirect(d),
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
        // proxy_redirect: this level's rules, else the parent's, else (on)
        // the location's proxy_pass default.
        let redirect_off = match self.redirects {
            Some(None) => true,
            Some(Some(_)) => false,
            None => parent.redirect_off,
        };
        let mut redirects = match &self.redirects {
            _ if redirect_off => Vec::new(),
            Some(Some(r)) => r.clone(),
            _ => parent.redirects.clone(),
        };
        if !redirect_off && redirects.is_empty() {
            if let Some(Ok((from, to))) = &self.pass_default {
                redirects.push(RedirectRule { pattern: RedirectPattern::Prefix(Template::literal(from)), replacement: Template::literal(to) });
            }
        }
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
            redirects,
            redirect_off,
        }
    }

    /// The location's proxy_pass, for `proxy_redirect default` and the
    /// default rule: its URL (with a `/` when it has no URI part) becomes
    /// the location's prefix (or `/`); none with variables.
    pub fn set_pass(&mut self, pass: &ProxyPass, kind: LocKind, location: &str) {
        self.pass_default = Some(match (&pass.vars, &pass.uri) {
            (Some(_), _) => Err(()),
            // A regex or named location has no prefix to put back (nginx
            // empties it).
            (None, Some(_)) => Ok((pass.url.clone(), if matches!(kind, LocKind::Regex | LocKind::Named) { String::new() } else { location.to_string() })),
            (None, None) => Ok((format!("{}/", pass.url), "/".to_string())),
        });
    }

    /// `proxy_redirect default | off | REDIRECT REPLACEMENT`.
    fn redirect(&mut self, d: &Directive) -> Result<(), ConfError> {
        if matches!(self.redirects, Some(None)) {
            // After `off`, nginx ignores further ones.
            return Ok(());
        }
        let rule = match d.args.as_slice() {
            [a] if a == "off" => {
                self.redirects = Some(None);
                return Ok(());
            }
            [a] if a == "default" => {
                let (from, to) = match &self.pass_default {
                    Some(Ok(p)) => p.clone(),
                    Some(Err(())) => return Err(ConfError::at("\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables", d)),
                    None => return Err(ConfError::at("\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive", d)),
                };
                RedirectRule { pattern: RedirectPattern::Prefix(Template::literal(&from)), replacement: Template::literal(&to) }
            }
            [a] => return Err(ConfError::at(format!("invalid parameter \"{a}\""), d)),
            [from, to] => {
                let pattern = match from.strip_prefix('~') {
                    Some(re) => {
                        let (re, caseless) = match re.strip_prefix('*') {
                            Some(r) => (r, true),
                            None => (re, false),
                        };
                        RedirectPattern::Regex(super::build::compile_regex(d, re, caseless)?)
                    }
                    None => RedirectPattern::Prefix(Template::parse(from).map_err(|e| ConfError::at(e, d))?),
                };
                RedirectRule { pattern, replacement: Template::parse(to).map_err(|e| ConfError::at(e, d))? }
            }
            _ => return Err(ConfError::at(format!("invalid number of arguments in \"{}\" directive", d.name), d)),
        };
        self.redirects.get_or_insert(Some(Vec::new())).get_or_insert_with(Vec::new).push(rule);
        Ok(())
    }
}

/// `proxy_pass URL` in a location of `kind`, with nginx's errors: the
/// URL's syntax now, its host once the whole `http {}` is read
/// ([`resolve_pass`]), since an `upstream {}` it names may follow it.
pub fn proxy_pass(d: &Directive, kind: LocKind) -> Result<ProxyPass, ConfError> {
    let url = d.args[0].as_str();
    if url.contains('$') {
        let template = Template::parse(url).map_err(|e| ConfError::at(e, d))?;
        let vars = PassVars { template, upstreams: Vec::new() };
        return Ok(ProxyPass { url: url.to_string(), host: String::new(), addrs: Vec::new(), uri: None, upstream: None, vars: Some(Arc::new(vars)) });
    }
    let rest = strip_scheme(url).map_err(|e| ConfError::at(e, d))?;
    let parts = PassUrl::parse(rest).map_err(|e| ConfError::at(format!("{e} in upstream \"{rest}\""), d))?;
    if parts.uri.is_some() && matches!(kind, LocKind::Regex | LocKind::Named) {
        return Err(ConfError::at(
            "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
            d,
        ));
    }
    Ok(ProxyPass { url: url.to_string(), host: parts.proxy_host(), addrs: parts.literal_addr().into_iter().collect(), uri: parts.uri.map(str::to_string), upstream: None, vars: None })
}

/// The host of `pass` (read by [`proxy_pass`] from `d`) among the
/// `upstream {}` blocks, else resolved now (as nginx resolves a static
/// proxy_pass); a proxy_pass with variables keeps the blocks for its
/// per-request lookups.
pub fn resolve_pass(pass: &mut ProxyPass, d: &Directive, upstreams: &[Arc<UpstreamConf>]) -> Result<(), ConfError> {
    if let Some(vars) = &mut pass.vars {
        Arc::get_mut(vars).expect("a proxy_pass is resolved once").upstreams = upstreams.to_vec();
        return Ok(());
    }
    if !pass.addrs.is_empty() {
        return Ok(());
    }
    // (Its syntax was checked by proxy_pass.)
    let rest = strip_scheme(&pass.url).map_err(|e| ConfError::at(e, d))?;
    let parts = PassUrl::parse(rest).map_err(|e| ConfError::at(e, d))?;
    if let Some(u) = parts.block(upstreams) {
        pass.upstream = Some(u.clone());
        return Ok(());
    }
    pass.addrs = match (parts.host, parts.port.unwrap_or(80)).to_socket_addrs() {
        Ok(a) => a.map(PeerAddr::Inet).collect(),
        Err(_) => Vec::new(),
    };
    if pass.addrs.is_empty() {
        return Err(ConfError::at(format!("host not found in upstream \"{rest}\""), d));
    }
    Ok(())
}

/// The URL after `http://`. https is not built yet (TLS to upstreams).
pub fn strip_scheme(url: &str) -> Result<&str, String> {
    if url.len() >= 7 && url[..7].eq_ignore_ascii_case("http://") {
        Ok(&url[7..])
    } else if url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://") {
        Err("https proxying is not supported by halo yet".to_string())
    } else {
        Err(format!("invalid URL prefix in \"{url}\""))
    }
}

/// The parts of a proxy_pass URL after its scheme, as nginx's
/// `ngx_parse_url` with a URI part reads them: `HOST[:PORT][URI]`,
/// `[V6][:PORT][URI]` or `unix:PATH[:URI]`.
#[derive(Debug)]
pub struct PassUrl<'u> {
    /// The host as written (an IPv6 one without its brackets), or the
    /// socket's path.
    pub host: &'u str,
    /// The port written (None: 80).
    pub port: Option<u16>,
    pub unix: bool,
    /// The URI part, from the first `/` or `?` (`:` after a socket path).
    pub uri: Option<&'u str>,
    /// The host was an `[IPv6]` one.
    bracketed: bool,
}

impl<'u> PassUrl<'u> {
    /// The parts of `rest`; the error is nginx's `u->err`.
    pub fn parse(rest: &'u str) -> Result<PassUrl<'u>, &'static str> {
        if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case("unix:") {
            let (path, uri) = match rest[5..].split_once(':') {
                Some((p, u)) => (p, Some(u).filter(|u| !u.is_empty())),
                None => (&rest[5..], None),
            };
            super::upstream::parse_address(&rest[..5 + path.len()])?;
            return Ok(PassUrl { host: path, port: None, unix: true, uri, bracketed: false });
        }
        let (authority, uri) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if authority.is_empty() {
            return Err("no host");
        }
        let (host, port, bracketed) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else { return Err("invalid IPv6 address") };
            let port = match &v6[end + 1..] {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or("invalid host")?),
            };
            (&v6[..end], port, true)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p), false),
                None => (authority, None, false),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|&n| n > 0).ok_or("invalid port")?),
        };
        if host.is_empty() {
            return Err("no host");
        }
        if bracketed && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address");
        }
        Ok(PassUrl { host, port, unix: false, uri, bracketed })
    }

    /// `$proxy_host`: the host, with the port unless it is 80 (`localhost`
    /// for a unix socket, as nginx).
    pub fn proxy_host(&self) -> String {
        let host = if self.bracketed { format!("[{}]", self.host) } else { self.host.to_string() };
        match self.port {
            _ if self.unix => "localhost".to_string(),
            Some(p) if p != 80 => format!("{host}:{p}"),
            _ => host,
        }
    }

    /// The address when it needs no lookup: a unix socket or an IP literal.
    pub fn literal_addr(&self) -> Option<PeerAddr> {
        if self.unix {
            return Some(PeerAddr::Unix(Arc::from(std::path::Path::new(self.host))));
        }
        let ip: IpAddr = self.host.parse().ok()?;
        Some(PeerAddr::Inet(SocketAddr::new(ip, self.port.unwrap_or(80))))
    }

    /// The `upstream {}` block it names: a name without a port (compared
    /// case-insensitively, as nginx).
    pub fn block<'b>(&self, upstreams: &'b [Arc<UpstreamConf>]) -> Option<&'b Arc<UpstreamConf>> {
        if self.unix || self.port.is_some() || self.bracketed {
            return None;
        }
        upstreams.iter().find(|u| u.name.eq_ignore_ascii_case(self.host))
    }
}
