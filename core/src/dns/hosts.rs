//! `/etc/hosts`, read once per worker (on its first lookup) and kept for
//! the worker's life: a change to the file reaches the workers started
//! after it (a reload). nginx's own resolver never reads the file; halo
//! does, so `localhost` and local names work as they do for getaddrinfo.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::IpAddr;

const PATH: &str = "/etc/hosts";

thread_local! {
    static HOSTS: OnceCell<HashMap<String, Vec<IpAddr>>> = const { OnceCell::new() };
}

/// The addresses `/etc/hosts` gives `name` (IPv4 first, then IPv6, each
/// in file order), or None when it does not name it. `localhost` always
/// has 127.0.0.1 and ::1, even without a file that says so.
pub(super) fn lookup(name: &str) -> Option<Vec<IpAddr>> {
    let key = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    HOSTS.with(|h| {
        let map = h.get_or_init(|| parse(&std::fs::read_to_string(PATH).unwrap_or_default()));
        let mut addrs = map.get(&key).cloned()?;
        addrs.sort_by_key(|a| a.is_ipv6());
        Some(addrs)
    })
}

/// The hosts file's text as name (lowercased) -> addresses. Comments run
/// from `#` to the end of a line; an unparsable address skips its line.
pub(super) fn parse(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_ascii_whitespace();
        let Some(Ok(ip)) = fields.next().map(|a| a.split('%').next().unwrap_or(a).parse::<IpAddr>()) else {
            continue;
        };
        for name in fields {
            let v = map.entry(name.to_ascii_lowercase()).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
    }
    let local = map.entry("localhost".to_string()).or_default();
    if local.is_empty() {
        local.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        local.push(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    }
    map
}
