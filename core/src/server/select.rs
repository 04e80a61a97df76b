//! Virtual server selection: which `server {}` handles a request, from the
//! listening address it came on and its Host (nginx's
//! `ngx_http_find_virtual_server`).
//!
//! Among the servers listening on the address, in order of precedence:
//! 1. an exact `server_name`;
//! 2. the longest leading wildcard (`*.example.com`), which also matches
//!    deeper names such as `a.b.example.com`;
//! 3. the longest trailing wildcard (`www.example.*`);
//! 4. the first matching regex name, in config order;
//! 5. the default server of the address: the one whose `listen` there has
//!    `default_server`, else the first server listening there.
//!
//! Ties between servers (the same name in two servers) go to the first, as
//! nginx ignores the later "conflicting server name". A missing Host is
//! looked up as the empty name, so `server_name ""` catches such requests,
//! as in nginx.

use std::collections::HashSet;

// Looked up on every request: ahash, not SipHash (keys are config, not
// attacker-chosen... the Host is, but ahash is randomly keyed too).
use ahash::AHashMap as HashMap;
use std::net::SocketAddr;

use crate::conf::types::{Server, ServerName};

/// Select the server for a connection on `listen` with `host` (lowercase,
/// without port). None only when no server listens on `listen`.
///
/// This scans the servers; use [`ServerIndex`] on the request path.
pub fn select_server(servers: &[Server], listen: SocketAddr, host: Option<&str>) -> Option<usize> {
    let host = host.unwrap_or("");
    let candidates = || {
        servers
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.listen.iter().any(|l| l.addr == listen))
    };
    let default = candidates()
        .find(|(_, s)| {
            s.listen
                .iter()
                .any(|l| l.addr == listen && l.default_server)
        })
        .or_else(|| candidates().next())?
        .0;

    let names = || candidates().flat_map(|(i, s)| s.names.iter().map(move |n| (i, n)));

    if let Some((i, _)) = names().find(|(_, n)| matches!(n, ServerName::Exact(e) if e == host)) {
        return Some(i);
    }
    // Longest wildcard; `max_by_key` keeps the last maximum, so compare
    // with a strict `>` by hand to let the first server win ties.
    let longest = |want_front: bool| {
        let mut best: Option<(usize, usize)> = None;
        for (i, n) in names() {
            let len = match n {
                ServerName::WildcardFront(p) if want_front && front_matches(host, p) => p.len(),
                ServerName::WildcardBack(p) if !want_front && back_matches(host, p) => p.len(),
                _ => continue,
            };
            if best.is_none_or(|(_, l)| len > l) {
                best = Some((i, len));
            }
        }
        best.map(|(i, _)| i)
    };
    if let Some(i) = longest(true).or_else(|| longest(false)) {
        return Some(i);
    }
    if let Some((i, _)) =
        names().find(|(_, n)| matches!(n, ServerName::Regex(re) if re.is_match(host)))
    {
        return Some(i);
    }
    Some(default)
}

/// `*.example.com` (stored as ".example.com") matches any name below it.
fn front_matches(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() && host.ends_with(suffix)
}

/// `www.example.*` (stored as "www.example.") matches any name after it.
fn back_matches(host: &str, prefix: &str) -> bool {
    host.len() > prefix.len() && host.starts_with(prefix)
}

/// Per-address lookup tables, built once per configuration so that
/// selection costs a few hash lookups.
#[derive(Debug, Default)]
pub struct ServerIndex {
    addrs: HashMap<SocketAddr, AddrTable>,
}

/// The servers of one listening address, by name.
#[derive(Debug, Default)]
pub struct AddrTable {
    exact: HashMap<String, usize>,
    /// ".example.com" -> server.
    front: HashMap<String, usize>,
    /// "www.example." -> server.
    back: HashMap<String, usize>,
    /// (server index, index into its `names`), in config order.
    regex: Vec<(usize, usize)>,
    default: usize,
    /// Only one server listens here: no name to look up.
    single: bool,
}

impl ServerIndex {
    /// Index `servers` by their listening addresses and names.
    pub fn new(servers: &[Server]) -> ServerIndex {
        let mut addrs: HashMap<SocketAddr, AddrTable> = HashMap::default();
        // Addresses whose default came from an explicit `default_server`.
        let mut explicit: HashSet<SocketAddr> = HashSet::new();
        // (address, server) pairs already indexed: a server listing the
        // same address twice is indexed once.
        let mut seen: HashSet<(SocketAddr, usize)> = HashSet::new();
        for (si, server) in servers.iter().enumerate() {
            for listen in &server.listen {
                let table = addrs.entry(listen.addr).or_insert_with(|| AddrTable {
                    default: si,
                    ..AddrTable::default()
                });
                if listen.default_server && explicit.insert(listen.addr) {
                    table.default = si;
                }
                if !seen.insert((listen.addr, si)) {
                    continue;
                }
                for (ni, name) in server.names.iter().enumerate() {
                    // `or_insert`: the first server keeps a conflicting name.
                    match name {
                        ServerName::Exact(n) => {
                            table.exact.entry(n.clone()).or_insert(si);
                        }
                        ServerName::WildcardFront(n) => {
                            table.front.entry(n.clone()).or_insert(si);
                        }
                        ServerName::WildcardBack(n) => {
                            table.back.entry(n.clone()).or_insert(si);
                        }
                        ServerName::Regex(_) => table.regex.push((si, ni)),
                    }
                }
            }
        }
        let mut count: HashMap<SocketAddr, usize> = HashMap::default();
        for (addr, _) in &seen {
            *count.entry(*addr).or_default() += 1;
        }
        for (addr, t) in addrs.iter_mut() {
            t.single = count.get(addr) == Some(&1);
        }
        ServerIndex { addrs }
    }

    /// Select the server for a connection on `listen` with `host`
    /// (lowercase, without port); `servers` must be the slice the index
    /// was built from. None only when no server listens on `listen`.
    pub fn select(
        &self,
        servers: &[Server],
        listen: SocketAddr,
        host: Option<&str>,
    ) -> Option<usize> {
        Some(self.addrs.get(&listen)?.select(servers, || host))
    }

    /// The servers listening on `listen`: a connection looks its address
    /// up once, then [`AddrTable::select`]s per request.
    pub fn table(&self, listen: SocketAddr) -> Option<&AddrTable> {
        self.addrs.get(&listen)
    }

    /// The default server for `listen`, if any server listens there.
    pub fn default_server(&self, listen: SocketAddr) -> Option<usize> {
        self.addrs.get(&listen).map(|t| t.default)
    }
}

impl AddrTable {
    /// The default server of the address.
    pub fn default_server(&self) -> usize {
        self.default
    }

    /// The server for `host()` (lowercase, without port) on this address;
    /// `servers` must be the slice the index was built from. `host` is only
    /// called when several servers share the address.
    pub fn select<'h>(&self, servers: &[Server], host: impl FnOnce() -> Option<&'h str>) -> usize {
        let t = self;
        // One server here: no name to look up.
        if t.single {
            return t.default;
        }
        let host = host().unwrap_or("");
        if let Some(&i) = t.exact.get(host) {
            return i;
        }
        if !t.front.is_empty() {
            // Suffixes from the longest: ".b.example.com", ".example.com", ...
            // (never the whole host: it must have a label before the dot).
            for (pos, _) in host.match_indices('.').filter(|&(p, _)| p > 0) {
                if let Some(&i) = t.front.get(&host[pos..]) {
                    return i;
                }
            }
        }
        if !t.back.is_empty() {
            // Prefixes from the longest: "www.example.", "www.", ...
            for (pos, _) in host
                .rmatch_indices('.')
                .filter(|&(p, _)| p + 1 < host.len())
            {
                if let Some(&i) = t.back.get(&host[..=pos]) {
                    return i;
                }
            }
        }
        for &(si, ni) in &t.regex {
            if let Some(ServerName::Regex(re)) = servers.get(si).and_then(|s| s.names.get(ni)) {
                if re.is_match(host) {
                    return si;
                }
            }
        }
        t.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::types::Listen;
    use crate::server::location::tests::default_loc_conf;
    use regex::Regex;
    use std::time::Duration;

    fn listen(addr: &str, default_server: bool) -> Listen {
        Listen {
            addr: addr.parse().unwrap(),
            default_server,
            reuseport: false,
            backlog: 511,
        }
    }

    /// Names in nginx spelling: "a.com", "*.a.com", "www.a.*", "~re".
    fn server(listens: Vec<Listen>, names: &[&str]) -> Server {
        let names = names
            .iter()
            .map(|n| {
                if let Some(re) = n.strip_prefix('~') {
                    ServerName::Regex(Regex::new(re).unwrap())
                } else if let Some(s) = n.strip_prefix('*') {
                    ServerName::WildcardFront(s.to_owned())
                } else if let Some(p) = n.strip_suffix('*') {
                    ServerName::WildcardBack(p.to_owned())
                } else {
                    ServerName::Exact((*n).to_owned())
                }
            })
            .collect::<Vec<_>>();
        Server {
            has_regex_name: names.iter().any(|n| matches!(n, ServerName::Regex(_))),
            listen: listens,
            names,
            primary_name: String::new(),
            rewrites: Vec::new(),
            locations: Vec::new(),
            named: std::collections::HashMap::new(),
            conf: default_loc_conf(),
            client_header_timeout: Duration::from_secs(60),
            client_header_buffer_size: 1024,
            large_client_header_buffers: (4, 8192),
            underscores_in_headers: false,
            ignore_invalid_headers: true,
            maps: Vec::new().into(),
        }
    }

    /// Run both implementations and check they agree.
    fn sel(servers: &[Server], addr: &str, host: Option<&str>) -> Option<usize> {
        let addr: SocketAddr = addr.parse().unwrap();
        let a = select_server(servers, addr, host);
        let b = ServerIndex::new(servers).select(servers, addr, host);
        assert_eq!(a, b, "scan and index disagree for {addr} {host:?}");
        a
    }

    const A: &str = "0.0.0.0:8080";
    const B: &str = "127.0.0.1:9090";

    fn sample() -> Vec<Server> {
        vec![
            server(vec![listen(A, false)], &["first.com"]), // 0
            server(vec![listen(A, false)], &["example.com", "www.example.com"]), // 1
            server(vec![listen(A, false)], &["*.example.com"]), // 2
            server(vec![listen(A, false)], &["*.sub.example.com"]), // 3
            server(vec![listen(A, false)], &["www.example.*"]), // 4
            server(vec![listen(A, false)], &["www.*"]),     // 5
            server(
                vec![listen(A, false)],
                &["~^(\\w+)\\.regex\\.org$", "~\\.org$"],
            ), // 6
            server(vec![listen(A, true), listen(B, false)], &["default.com"]), // 7
            server(vec![listen(B, false)], &["example.com"]), // 8
        ]
    }

    #[test]
    fn exact_names() {
        let s = sample();
        assert_eq!(sel(&s, A, Some("example.com")), Some(1));
        assert_eq!(sel(&s, A, Some("www.example.com")), Some(1));
        assert_eq!(sel(&s, A, Some("first.com")), Some(0));
        // Same name on another address: only that address's servers count.
        assert_eq!(sel(&s, B, Some("example.com")), Some(8));
    }

    #[test]
    fn leading_wildcards_longest_wins() {
        let s = sample();
        assert_eq!(sel(&s, A, Some("a.example.com")), Some(2));
        assert_eq!(sel(&s, A, Some("a.b.example.com")), Some(2));
        assert_eq!(sel(&s, A, Some("x.sub.example.com")), Some(3));
        assert_eq!(sel(&s, A, Some("y.x.sub.example.com")), Some(3));
        // "sub.example.com" is below *.example.com, not *.sub.example.com.
        assert_eq!(sel(&s, A, Some("sub.example.com")), Some(2));
    }

    #[test]
    fn leading_wildcard_beats_trailing() {
        let s = sample();
        // www.example.org: no leading wildcard; trailing www.example.*.
        assert_eq!(sel(&s, A, Some("www.example.org")), Some(4));
        // www.x.example.com: *.example.com wins over www.*.
        assert_eq!(sel(&s, A, Some("www.x.example.com")), Some(2));
    }

    #[test]
    fn trailing_wildcards_longest_wins() {
        let s = sample();
        assert_eq!(sel(&s, A, Some("www.example.net")), Some(4));
        assert_eq!(sel(&s, A, Some("www.example.co.uk")), Some(4));
        assert_eq!(sel(&s, A, Some("www.other.net")), Some(5));
        // The wildcard needs something after the dot.
        assert_eq!(sel(&s, A, Some("www.")), Some(7));
    }

    #[test]
    fn regex_in_config_order_then_default() {
        let s = sample();
        assert_eq!(sel(&s, A, Some("foo.regex.org")), Some(6));
        assert_eq!(sel(&s, A, Some("plain.org")), Some(6));
        assert_eq!(sel(&s, A, Some("nothing.net")), Some(7));
        assert_eq!(sel(&s, A, None), Some(7));
        assert_eq!(sel(&s, A, Some("")), Some(7));
    }

    #[test]
    fn wildcards_do_not_match_the_bare_domain() {
        let s = vec![
            server(vec![listen(A, false)], &["default"]),
            server(vec![listen(A, false)], &["*.example.com", "www.example.*"]),
        ];
        assert_eq!(sel(&s, A, Some("example.com")), Some(0));
        assert_eq!(sel(&s, A, Some(".example.com")), Some(0));
        assert_eq!(sel(&s, A, Some("www.example.")), Some(0));
    }

    #[test]
    fn default_is_first_without_default_server() {
        let s = sample();
        // On B, server 7 comes first and nobody has default_server.
        assert_eq!(sel(&s, B, Some("unknown")), Some(7));
        assert_eq!(sel(&s, B, None), Some(7));
    }

    #[test]
    fn default_server_flag_only_counts_on_its_address() {
        let s = vec![
            server(vec![listen(A, false), listen(B, true)], &["a"]),
            server(vec![listen(A, true), listen(B, false)], &["b"]),
        ];
        assert_eq!(sel(&s, A, Some("zzz")), Some(1));
        assert_eq!(sel(&s, B, Some("zzz")), Some(0));
        assert_eq!(
            ServerIndex::new(&s).default_server(A.parse().unwrap()),
            Some(1)
        );
    }

    #[test]
    fn unknown_address() {
        let s = sample();
        assert_eq!(sel(&s, "0.0.0.0:1", Some("example.com")), None);
        // Addresses are compared as configured, not as "covers".
        assert_eq!(sel(&s, "127.0.0.1:8080", Some("example.com")), None);
        assert_eq!(sel(&[], A, None), None);
    }

    #[test]
    fn empty_server_name_catches_missing_host() {
        let s = vec![
            server(vec![listen(A, true)], &["main"]),
            server(vec![listen(A, false)], &[""]),
        ];
        assert_eq!(sel(&s, A, None), Some(1));
        assert_eq!(sel(&s, A, Some("main")), Some(0));
        assert_eq!(sel(&s, A, Some("other")), Some(0));
    }

    #[test]
    fn conflicting_names_first_server_wins() {
        let s = vec![
            server(vec![listen(A, false)], &["dup.com", "*.dup.com"]),
            server(vec![listen(A, false)], &["dup.com", "*.dup.com"]),
        ];
        assert_eq!(sel(&s, A, Some("dup.com")), Some(0));
        assert_eq!(sel(&s, A, Some("x.dup.com")), Some(0));
    }

    #[test]
    fn nameless_servers_and_duplicate_listens() {
        let s = vec![
            server(vec![listen(A, false), listen(A, false)], &[]),
            server(vec![listen(A, false)], &["~^r"]),
        ];
        assert_eq!(sel(&s, A, Some("x")), Some(0));
        assert_eq!(sel(&s, A, Some("rx")), Some(1));
    }

    #[test]
    fn ipv6_addresses() {
        let v6 = "[::]:80";
        let s = vec![
            server(vec![listen(A, false)], &["a"]),
            server(vec![listen(v6, false)], &["a"]),
        ];
        assert_eq!(sel(&s, v6, Some("a")), Some(1));
        assert_eq!(sel(&s, A, Some("a")), Some(0));
    }
}
