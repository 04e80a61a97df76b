//! `upstream NAME { ... }`: the typed config of a group of servers and how
//! it is read (nginx's ngx_http_upstream module and the balancing modules'
//! directives). The balancing itself is `crate::upstream`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::build::{atoi, dup, known, parse_time, slot_err, tmpl};
use super::parse::{ConfError, Directive};
use super::template::Template;

/// One `upstream {}` block, its servers expanded into peers at load.
#[derive(Debug)]
pub struct UpstreamConf {
    /// The name as written (names are compared case-insensitively).
    pub name: String,
    /// "file:line" of the `upstream` directive.
    pub origin: String,
    /// Every peer in config order: each `server` gives one peer per
    /// address (a host name resolved at load gives all its addresses,
    /// IPv4 first, as nginx). Backups are flagged, not moved.
    pub peers: Vec<PeerConf>,
    /// The balancing method (round robin unless a method directive says
    /// otherwise; the last one wins, where nginx warns "load balancing
    /// method redefined").
    pub method: Balance,
    /// `keepalive N`: idle connections each worker keeps to this group
    /// (None: no cache).
    pub keepalive: Option<usize>,
    /// `keepalive_requests N` (1000): requests over one kept connection.
    pub keepalive_requests: u64,
    /// `keepalive_timeout T` (60s): how long a kept connection may idle.
    pub keepalive_timeout: Duration,
    /// `balancer_keepalive N` (32): idle connections kept for the peers
    /// balancer_by_lua chose with ngx.balancer.enable_keepalive (a pool
    /// named by set_current_peer's `pool` option has its `pool_size`).
    pub balancer_keepalive: usize,
    /// `balancer_by_lua_block` / `_file`: Lua that picks each try's peer
    /// (ngx.balancer) instead of the method.
    pub balancer_by_lua: Option<Arc<super::LuaCode>>,
}

/// One peer: an address of a `server` line with that line's parameters.
#[derive(Debug, Clone)]
pub struct PeerConf {
    pub addr: PeerAddr,
    /// The address as text, what `$upstream_addr` shows: `127.0.0.1:80`,
    /// `[::1]:8080`, `unix:/run/app.sock`.
    pub name: Arc<str>,
    /// The `server` argument as written (`backend.local:8080`): shared by
    /// all the addresses of one name; the consistent hash's points hang on it.
    pub server: Arc<str>,
    /// `weight=N` (1).
    pub weight: u64,
    /// `max_fails=N` (1; 0 turns failure accounting off).
    pub max_fails: u64,
    /// `fail_timeout=T` (10s).
    pub fail_timeout: Duration,
    /// `max_conns=N` (0: no limit); counted per worker, as nginx without
    /// a `zone`.
    pub max_conns: u64,
    pub backup: bool,
    pub down: bool,
}

/// Where a peer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Inet(SocketAddr),
    /// `unix:/path`.
    Unix(Arc<Path>),
}

impl std::fmt::Display for PeerAddr {
    /// As `$upstream_addr` shows it: `127.0.0.1:80`, `[::1]:8080`,
    /// `unix:/run/app.sock`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => a.fmt(f),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The balancing method of a group.
#[derive(Debug)]
pub enum Balance {
    /// Smooth weighted round robin (the default).
    RoundRobin,
    /// `hash KEY [consistent]`: KEY is evaluated per request by the caller.
    Hash { key: Template, consistent: bool },
    /// `ip_hash`.
    IpHash,
    /// `least_conn`.
    LeastConn,
    /// `random [two [least_conn]]`.
    Random { two: bool },
}

impl UpstreamConf {
    /// The `hash` key to evaluate for each request (None for the other
    /// methods): its bytes go to the balancer's `PickInput::hash_key`.
    pub fn hash_key(&self) -> Option<&Template> {
        match &self.method {
            Balance::Hash { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl Balance {
    /// nginx's NGX_HTTP_UPSTREAM_BACKUP flag: whether `backup` servers may
    /// be declared after this method.
    fn allows_backup(&self) -> bool {
        matches!(self, Balance::RoundRobin | Balance::LeastConn)
    }
}

/// The directives inside `upstream {}`: (name, min args, max args).
const UPSTREAM_DIRECTIVES: &[(&str, usize, usize)] = &[
    ("server", 1, usize::MAX),
    ("hash", 1, 2),
    ("ip_hash", 0, 0),
    ("least_conn", 0, 0),
    ("random", 0, 2),
    ("keepalive", 1, 1),
    ("keepalive_requests", 1, 1),
    ("keepalive_timeout", 1, 1),
    ("balancer_by_lua_block", 1, 1),
    ("balancer_by_lua_file", 1, 1),
    ("balancer_keepalive", 1, 1),
];

/// `ngx_conf_handler`'s checks for a directive inside `upstream {}`.
fn check(d: &Directive) -> Result<(), ConfError> {
    let Some(&(_, lo, hi)) = UPSTREAM_DIRECTIVES.iter().find(|(n, _, _)| *n == d.name) else {
        let msg = if known(&d.name) {
            format!("\"{}\" directive is not allowed here", d.name)
        } else {
            format!("unknown directive \"{}\"", d.name)
        };
        return Err(ConfError::at(msg, d));
    };
    if d.block.is_some() {
        return Err(ConfError::at(format!("directive \"{}\" is not terminated by \";\"", d.name), d));
    }
    if !(lo..=hi).contains(&d.args.len()) {
        return Err(ConfError::at(format!("invalid number of arguments in \"{}\" directive", d.name), d));
    }
    Ok(())
}

/// Read one `upstream NAME { ... }` (already checked for context and
/// arguments). `existing` are the groups read so far, for nginx's
/// "duplicate upstream".
pub(super) fn upstream_block(d: &Directive, existing: &[Arc<UpstreamConf>], lua_code: &dyn Fn(&Directive) -> super::LuaCode) -> Result<UpstreamConf, ConfError> {
    let name = &d.args[0];
    if existing.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
        return Err(ConfError::at(format!("duplicate upstream \"{name}\""), d));
    }
    let mut method = Balance::RoundRobin;
    let mut peers = Vec::new();
    let mut servers = 0usize;
    let mut keepalive = None;
    let mut keepalive_requests = None;
    let mut keepalive_timeout = None;
    let mut balancer_keepalive = None;
    let mut balancer_by_lua = None;
    for c in d.block.as_deref().unwrap_or(&[]) {
        check(c)?;
        match c.name.as_str() {
            "server" => {
                server(c, &method, &mut peers)?;
                servers += 1;
            }
            "hash" => {
                let consistent = match c.args.get(1).map(String::as_str) {
                    None => false,
                    Some("consistent") => true,
                    Some(x) => return Err(ConfError::at(format!("invalid parameter \"{x}\""), c)),
                };
                method = Balance::Hash { key: tmpl(c, &c.args[0])?, consistent };
            }
            "ip_hash" => method = Balance::IpHash,
            "least_conn" => method = Balance::LeastConn,
            "random" => {
                let mut two = false;
                if let Some(a) = c.args.first() {
                    if a != "two" {
                        return Err(ConfError::at(format!("invalid parameter \"{a}\""), c));
                    }
                    two = true;
                }
                if let Some(a) = c.args.get(1) {
                    if a != "least_conn" {
                        return Err(ConfError::at(format!("invalid parameter \"{a}\""), c));
                    }
                }
                method = Balance::Random { two };
            }
            "keepalive" => {
                if keepalive.is_some() {
                    return Err(dup(c));
                }
                let n = atoi(&c.args[0]).filter(|&n| n > 0).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                    ConfError::at(format!("invalid value \"{}\" in \"keepalive\" directive", c.args[0]), c)
                })?;
                keepalive = Some(n);
            }
            "keepalive_requests" => {
                if keepalive_requests.is_some() {
                    return Err(dup(c));
                }
                keepalive_requests = Some(atoi(&c.args[0]).ok_or_else(|| slot_err(c, "invalid number"))?);
            }
            "keepalive_timeout" => {
                if keepalive_timeout.is_some() {
                    return Err(dup(c));
                }
                keepalive_timeout = Some(parse_time(&c.args[0], false).ok_or_else(|| slot_err(c, "invalid value"))?);
            }
            "balancer_by_lua_block" | "balancer_by_lua_file" => {
                if balancer_by_lua.is_some() {
                    return Err(ConfError::at("balancer_by_lua* is duplicate", c));
                }
                balancer_by_lua = Some(Arc::new(lua_code(c)));
            }
            "balancer_keepalive" => {
                if balancer_keepalive.is_some() {
                    return Err(dup(c));
                }
                let n = atoi(&c.args[0]).filter(|&n| n > 0).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                    ConfError::at(format!("invalid value \"{}\" in \"balancer_keepalive\" directive", c.args[0]), c)
                })?;
                balancer_keepalive = Some(n);
            }
            _ => unreachable!("{} checked but not handled", c.name),
        }
    }
    if servers == 0 {
        // Reported once the block is read: at its closing brace.
        let origin = if d.end_line == 0 { d.file.to_string() } else { format!("{}:{}", d.file, d.end_line) };
        return Err(ConfError::new("no servers are inside upstream", Some(origin)));
    }
    // ngx_http_upstream_init_round_robin: some primary address is needed.
    if !peers.iter().any(|p: &PeerConf| !p.backup) {
        return Err(ConfError::at(format!("no servers in upstream \"{name}\""), d));
    }
    Ok(UpstreamConf {
        name: name.clone(),
        origin: d.origin(),
        peers,
        method,
        keepalive,
        keepalive_requests: keepalive_requests.unwrap_or(1000),
        keepalive_timeout: keepalive_timeout.unwrap_or(Duration::from_secs(60)),
        balancer_keepalive: balancer_keepalive.unwrap_or(32),
        balancer_by_lua,
    })
}

/// `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N]
/// [backup] [down]`: parameters first, then the address, as nginx.
fn server(d: &Directive, method: &Balance, peers: &mut Vec<PeerConf>) -> Result<(), ConfError> {
    let invalid = |a: &str| ConfError::at(format!("invalid parameter \"{a}\""), d);
    let (mut weight, mut max_fails, mut max_conns) = (1u64, 1u64, 0u64);
    let mut fail_timeout = Duration::from_secs(10);
    let (mut backup, mut down) = (false, false);
    // ngx_atoi refuses what does not fit ngx_int_t.
    let int = |s: &str| atoi(s).filter(|&n| n <= i64::MAX as u64);
    for a in &d.args[1..] {
        if let Some(v) = a.strip_prefix("weight=") {
            weight = int(v).filter(|&n| n > 0).ok_or_else(|| invalid(a))?;
        } else if let Some(v) = a.strip_prefix("max_fails=") {
            max_fails = int(v).ok_or_else(|| invalid(a))?;
        } else if let Some(v) = a.strip_prefix("max_conns=") {
            max_conns = int(v).ok_or_else(|| invalid(a))?;
        } else if let Some(v) = a.strip_prefix("fail_timeout=") {
            fail_timeout = parse_time(v, true).ok_or_else(|| invalid(a))?;
        } else if a == "backup" {
            if !method.allows_backup() {
                return Err(ConfError::at("balancing method does not support parameter \"backup\"", d));
            }
            backup = true;
        } else if a == "down" {
            down = true;
        } else {
            return Err(invalid(a));
        }
    }
    let url = &d.args[0];
    let addrs = parse_address(url).map_err(|e| ConfError::at(format!("{e} in upstream \"{url}\""), d))?;
    let server: Arc<str> = Arc::from(url.as_str());
    for addr in addrs {
        let name: Arc<str> = Arc::from(addr.to_string());
        peers.push(PeerConf {
            addr,
            name,
            server: server.clone(),
            weight,
            max_fails,
            fail_timeout,
            max_conns,
            backup,
            down,
        });
    }
    Ok(())
}

/// nginx's `ngx_parse_url` for an upstream server (default port 80, host
/// names resolved now). The error is nginx's `u->err`.
pub fn parse_address(url: &str) -> Result<Vec<PeerAddr>, &'static str> {
    if url.len() >= 5 && url[..5].eq_ignore_ascii_case("unix:") {
        let path = &url[5..];
        if path.is_empty() {
            return Err("no path in the unix domain socket");
        }
        // sizeof(sun_path) - 1.
        if path.len() > 107 {
            return Err("too long path in the unix domain socket");
        }
        return Ok(vec![PeerAddr::Unix(Arc::from(Path::new(path)))]);
    }
    let port_of = |p: &str| atoi(p).filter(|&n| (1..=65535).contains(&n)).map(|n| n as u16).ok_or("invalid port");
    if let Some(rest) = url.strip_prefix('[') {
        let Some(end) = rest.find(']') else { return Err("invalid host") };
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        let port = match after {
            "" => 80,
            a => match a.strip_prefix(':') {
                Some(p) => port_of(p)?,
                None => return Err("invalid host"),
            },
        };
        let ip: std::net::Ipv6Addr = host.parse().map_err(|_| "invalid IPv6 address")?;
        return Ok(vec![PeerAddr::Inet(SocketAddr::new(IpAddr::V6(ip), port))]);
    }
    if url.contains(['/', '?']) {
        return Err("invalid host");
    }
    let (host, port) = match url.find(':') {
        Some(i) => (&url[..i], port_of(&url[i + 1..])?),
        None => (url, 80),
    };
    if host.is_empty() {
        return Err("no host");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![PeerAddr::Inet(SocketAddr::new(ip, port))]);
    }
    let found: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|_| "host not found")?.collect();
    // ngx_inet_resolve_host: IPv4 addresses first, then IPv6, each once.
    let mut out: Vec<SocketAddr> = Vec::new();
    for sa in found.iter().filter(|a| a.is_ipv4()).chain(found.iter().filter(|a| a.is_ipv6())) {
        if !out.contains(sa) {
            out.push(*sa);
        }
    }
    if out.is_empty() {
        return Err("host not found");
    }
    Ok(out.into_iter().map(PeerAddr::Inet).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let one = |s: &str| parse_address(s).unwrap().remove(0);
        assert_eq!(one("10.0.0.1"), PeerAddr::Inet("10.0.0.1:80".parse().unwrap()));
        assert_eq!(one("10.0.0.1:8080"), PeerAddr::Inet("10.0.0.1:8080".parse().unwrap()));
        assert_eq!(one("[::1]"), PeerAddr::Inet("[::1]:80".parse().unwrap()));
        assert_eq!(one("[::1]:81"), PeerAddr::Inet("[::1]:81".parse().unwrap()));
        assert_eq!(one("unix:/tmp/a.sock"), PeerAddr::Unix(Arc::from(Path::new("/tmp/a.sock"))));
        assert!(parse_address("localhost:82").unwrap().contains(&PeerAddr::Inet("127.0.0.1:82".parse().unwrap())));
        assert_eq!(parse_address("10.0.0.1:0"), Err("invalid port"));
        assert_eq!(parse_address("10.0.0.1:"), Err("invalid port"));
        assert_eq!(parse_address("10.0.0.1:65536"), Err("invalid port"));
        assert_eq!(parse_address("[::1"), Err("invalid host"));
        assert_eq!(parse_address("http://a"), Err("invalid host"));
        assert_eq!(parse_address(":80"), Err("no host"));
        assert_eq!(parse_address("unix:"), Err("no path in the unix domain socket"));
        assert_eq!(parse_address("no-such-host.invalid"), Err("host not found"));
    }
}

#[cfg(test)]
mod build_tests {
    use std::path::Path;

    use super::*;
    use crate::conf::{build, parse};

    fn http(text: &str) -> crate::conf::types::Http {
        let file = "/p/conf/nginx.conf";
        let tree = parse::parse_str(&format!("events {{}}\nhttp {{\n{text}\n}}\n"), file, Path::new("/p/conf")).unwrap();
        build::build(Path::new("/p"), Path::new(file), tree, Vec::new()).unwrap_or_else(|e| panic!("{e}")).http
    }

    #[test]
    fn typed_config_and_lookup() {
        let h = http(
            "upstream Backend {\n  server 10.0.0.1:81 weight=3 max_fails=2 fail_timeout=5s;\n  server localhost:82 backup;\n  server unix:/run/a.sock down max_conns=7;\n  least_conn;\n  keepalive 8;\n}\nupstream plain { server 10.0.0.2; hash $remote_addr consistent; }",
        );
        assert_eq!(h.upstreams.len(), 2);
        let u = h.upstream("backend").expect("case-insensitive lookup");
        assert_eq!(u.origin, "/p/conf/nginx.conf:3");
        assert!(matches!(u.method, Balance::LeastConn));
        assert_eq!((u.keepalive, u.keepalive_requests, u.keepalive_timeout), (Some(8), 1000, Duration::from_secs(60)));
        let p = &u.peers[0];
        assert_eq!((&*p.name, &*p.server, p.weight, p.max_fails, p.fail_timeout), ("10.0.0.1:81", "10.0.0.1:81", 3, 2, Duration::from_secs(5)));
        assert!(!p.backup && !p.down);
        let local: Vec<_> = u.peers.iter().filter(|p| &*p.server == "localhost:82").collect();
        assert!(!local.is_empty() && local.iter().all(|p| p.backup));
        assert!(local.iter().any(|p| &*p.name == "127.0.0.1:82"));
        let unix = u.peers.last().unwrap();
        assert_eq!((&*unix.name, unix.down, unix.max_conns, unix.weight, unix.max_fails), ("unix:/run/a.sock", true, 7, 1, 1));
        let plain = h.upstream("plain").unwrap();
        assert_eq!(&*plain.peers[0].name, "10.0.0.2:80");
        assert!(matches!(plain.method, Balance::Hash { consistent: true, .. }));
        assert!(plain.hash_key().is_some() && u.hash_key().is_none());
        assert!(h.upstream("nope").is_none());
    }
}
