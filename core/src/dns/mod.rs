//! Asynchronous name resolution on the worker's event loop, for what
//! nginx's `resolver` serves: Lua cosockets connecting to a host name, and
//! `proxy_pass` with variables (`crate::proxy`).
//!
//! [`resolve`] answers, in order:
//!
//! 1. an IP literal (`127.0.0.1`, `::1`, `[::1]`) at once;
//! 2. `/etc/hosts` (`hosts`), read once per worker and kept, so `localhost`
//!    works without a `resolver`;
//! 3. the worker's cache (`cache`), by name and resolver;
//! 4. the configured servers over UDP (`query`): A and AAAA queries as the
//!    `ipv4=`/`ipv6=` flags ask (both by default, as nginx), each server in
//!    turn until one answers, within `resolver_timeout`.
//!
//! Errors read as nginx's resolver words them ([`ResolveError`]), since
//! cosockets hand them to Lua verbatim.

mod cache;
mod hosts;
mod query;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The resolver of one location: `resolver address ... [valid=time]
/// [ipv4=on|off] [ipv6=on|off]` with the `resolver_timeout` in force
/// there. Reached from a location's config as `LocConf::resolver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConf {
    /// The name servers, asked in this order (port 53 unless given).
    pub servers: Vec<SocketAddr>,
    /// `valid=`: how long answers are cached, instead of their TTL.
    pub valid: Option<Duration>,
    /// `ipv4=`: ask for A records (on by default).
    pub ipv4: bool,
    /// `ipv6=`: ask for AAAA records (on by default, as in nginx).
    pub ipv6: bool,
    /// `resolver_timeout`: the limit for one name's whole resolution.
    pub timeout: Duration,
}

impl ResolverConf {
    /// nginx's default `resolver_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Servers with nginx's defaults: TTLs honoured, A and AAAA, 30s.
    pub fn new(servers: Vec<SocketAddr>) -> ResolverConf {
        ResolverConf { servers, valid: None, ipv4: true, ipv6: true, timeout: Self::DEFAULT_TIMEOUT }
    }
}

/// Why a name has no address. The `Display` text is nginx's (and what
/// lua-nginx-module's cosockets return): `NAME could not be resolved
/// (CODE: TEXT)`, or `no resolver defined to resolve "NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// The name as asked.
    pub name: String,
    /// What went wrong.
    pub kind: ResolveErrorKind,
}

/// The kinds of [`ResolveError`], with nginx's state codes: DNS rcodes
/// 1 to 5, and 110 (ETIMEDOUT) for a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveErrorKind {
    /// No `resolver` (or one without addresses) where the name was asked.
    NoResolver,
    /// rcode 1: the server could not read the query.
    FormatError,
    /// rcode 2: the server failed.
    ServerFailure,
    /// rcode 3 (NXDOMAIN), or an answer without any address (as nginx).
    NotFound,
    /// rcode 4.
    Unimplemented,
    /// rcode 5.
    Refused,
    /// No server answered within `resolver_timeout`.
    TimedOut,
    /// Any other rcode.
    Other(u16),
}

impl ResolveErrorKind {
    /// nginx's state code: the rcode, or 110 for a timeout (None for
    /// [`ResolveErrorKind::NoResolver`]).
    pub fn code(self) -> Option<u16> {
        Some(match self {
            ResolveErrorKind::NoResolver => return None,
            ResolveErrorKind::FormatError => 1,
            ResolveErrorKind::ServerFailure => 2,
            ResolveErrorKind::NotFound => 3,
            ResolveErrorKind::Unimplemented => 4,
            ResolveErrorKind::Refused => 5,
            ResolveErrorKind::TimedOut => 110,
            ResolveErrorKind::Other(c) => c,
        })
    }

    /// `ngx_resolver_strerror`'s text for the code.
    pub fn text(self) -> &'static str {
        match self {
            ResolveErrorKind::NoResolver => "no resolver defined",
            ResolveErrorKind::FormatError => "Format error",
            ResolveErrorKind::ServerFailure => "Server failure",
            ResolveErrorKind::NotFound => "Host not found",
            ResolveErrorKind::Unimplemented => "Unimplemented",
            ResolveErrorKind::Refused => "Operation refused",
            ResolveErrorKind::TimedOut => "Operation timed out",
            ResolveErrorKind::Other(_) => "Unknown error",
        }
    }

    /// The kind of a reply's non-zero rcode.
    fn from_rcode(rcode: u16) -> ResolveErrorKind {
        match rcode {
            1 => ResolveErrorKind::FormatError,
            2 => ResolveErrorKind::ServerFailure,
            3 => ResolveErrorKind::NotFound,
            4 => ResolveErrorKind::Unimplemented,
            5 => ResolveErrorKind::Refused,
            c => ResolveErrorKind::Other(c),
        }
    }
}

impl ResolveError {
    fn new(name: &str, kind: ResolveErrorKind) -> ResolveError {
        ResolveError { name: name.to_string(), kind }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.code() {
            None => write!(f, "no resolver defined to resolve \"{}\"", self.name),
            Some(code) => write!(f, "{} could not be resolved ({code}: {})", self.name, self.kind.text()),
        }
    }
}

impl std::error::Error for ResolveError {}

/// An IP literal, with or without the brackets of an IPv6 address.
fn literal(name: &str) -> Option<IpAddr> {
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
    match bare {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => name.parse().ok(),
    }
}

/// The addresses of `name`: an IP literal, else `/etc/hosts`, else the
/// worker's cache, else `conf`'s servers (see the module docs for the
/// order). IPv4 addresses come before IPv6 ones. With `conf` given, hosts
/// entries of a family it turned off are skipped.
///
/// Concurrent lookups of one name that is not cached each send their own
/// queries (the last answer is the one cached); nothing is shared between
/// them, so dropping one (a cancelled cosocket) never affects another.
pub async fn resolve(conf: Option<&ResolverConf>, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    if let Some(ip) = literal(name) {
        return Ok(vec![ip]);
    }
    let (ipv4, ipv6) = conf.map_or((true, true), |c| (c.ipv4, c.ipv6));
    if let Some(addrs) = hosts::lookup(name) {
        let addrs: Vec<IpAddr> = addrs.into_iter().filter(|a| if a.is_ipv4() { ipv4 } else { ipv6 }).collect();
        if !addrs.is_empty() {
            return Ok(addrs);
        }
    }
    let conf = match conf {
        Some(c) if !c.servers.is_empty() => c,
        _ => return Err(ResolveError::new(name, ResolveErrorKind::NoResolver)),
    };
    let key = cache::Key::new(conf, name);
    let now = crate::rt::now();
    if let Some(hit) = cache::get(&key, now) {
        return hit.map_err(|kind| ResolveError::new(name, kind));
    }
    match query::lookup(conf, name).await {
        query::Outcome::Found { addrs, ttl } => {
            let ttl = conf.valid.unwrap_or(ttl);
            cache::put(key, Ok(addrs.clone()), crate::rt::now() + ttl);
            Ok(addrs)
        }
        query::Outcome::NotFound { ttl } => {
            let ttl = conf.valid.unwrap_or(ttl);
            cache::put(key, Err(ResolveErrorKind::NotFound), crate::rt::now() + ttl);
            Err(ResolveError::new(name, ResolveErrorKind::NotFound))
        }
        query::Outcome::Failed(kind) => Err(ResolveError::new(name, kind)),
    }
}

#[cfg(test)]
mod tests;
