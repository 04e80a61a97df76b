//! The worker's cache of answers: by name and resolver, until the answer's
//! TTL (or the resolver's `valid=`) runs out. Negative answers (NXDOMAIN,
//! or no address) are kept too, for the SOA's negative TTL; failures and
//! timeouts are not kept.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{ResolveErrorKind, ResolverConf};

/// Past this many entries, expired ones are swept on the next insert (and
/// everything goes if none had expired).
const MAX_ENTRIES: usize = 4096;

/// A name as one resolver sees it: two locations with different servers or
/// address families do not share answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    name: String,
    servers: Vec<SocketAddr>,
    ipv4: bool,
    ipv6: bool,
}

impl Key {
    pub(super) fn new(conf: &ResolverConf, name: &str) -> Key {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        Key { name, servers: conf.servers.clone(), ipv4: conf.ipv4, ipv6: conf.ipv6 }
    }
}

type Answer = Result<Vec<IpAddr>, ResolveErrorKind>;

thread_local! {
    static CACHE: RefCell<HashMap<Key, (Answer, Instant)>> = RefCell::new(HashMap::new());
}

/// The cached answer for `key`, unless it expired by `now`.
pub(super) fn get(key: &Key, now: Instant) -> Option<Answer> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        match c.get(key) {
            Some((answer, until)) if *until > now => Some(answer.clone()),
            Some(_) => {
                c.remove(key);
                None
            }
            None => None,
        }
    })
}

/// Keep `answer` for `key` until `until`.
pub(super) fn put(key: Key, answer: Answer, until: Instant) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_ENTRIES {
            let now = crate::rt::now();
            c.retain(|_, (_, t)| *t > now);
            if c.len() >= MAX_ENTRIES {
                c.clear();
            }
        }
        c.insert(key, (answer, until));
    });
}
