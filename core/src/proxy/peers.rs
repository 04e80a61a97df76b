//! The peers a request's tries go to: a static proxy_pass's addresses in
//! order, or an `upstream {}` block's peers as its balancer picks them
//! (one `upstream::Balancer` per block and worker, as nginx keeps balancer
//! state per worker without a `zone`), each try's outcome reported back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::conf::proxy::ProxyPass;
use crate::conf::upstream::{PeerAddr, UpstreamConf};
use crate::request::PeerName;
use crate::upstream::{Balancer, Outcome, Peer, PickInput, TriedSet};

thread_local! {
    /// The worker's balancers, by their block (its address: a reload makes
    /// new blocks, and a new worker).
    static BALANCERS: RefCell<HashMap<usize, Balancer, ahash::RandomState>> = RefCell::new(HashMap::default());
}

fn with_balancer<R>(conf: &Arc<UpstreamConf>, f: impl FnOnce(&mut Balancer) -> R) -> R {
    BALANCERS.with(|b| {
        let mut b = b.borrow_mut();
        let key = Arc::as_ptr(conf) as usize;
        f(b.entry(key).or_insert_with(|| Balancer::new(conf.clone())))
    })
}

/// One try's destination.
pub struct Try {
    pub addr: PeerAddr,
    /// `$upstream_addr`'s entry for it.
    pub name: PeerName,
    peer: Option<Peer>,
}

impl Try {
    /// A peer balancer_by_lua chose (ngx.balancer.set_current_peer).
    pub fn chosen(addr: SocketAddr) -> Try {
        Try { addr: PeerAddr::Inet(addr), name: PeerName::Addr(addr), peer: None }
    }
}

/// The tries of one request.
pub enum Peers<'p> {
    Static(std::slice::Iter<'p, PeerAddr>),
    Balanced { conf: &'p Arc<UpstreamConf>, tried: TriedSet, left: usize, client_ip: Option<IpAddr>, key: Option<Vec<u8>> },
}

impl<'p> Peers<'p> {
    /// The tries `pass` allows: its addresses, or as many picks as its
    /// upstream has usable peers (nginx's `tries`). `key` is the evaluated
    /// `hash` key, if the block hashes.
    pub fn of(pass: &'p ProxyPass, client_ip: Option<IpAddr>, key: Option<Vec<u8>>) -> Peers<'p> {
        match &pass.upstream {
            Some(conf) => {
                let left = with_balancer(conf, |b| b.tries());
                Peers::Balanced { conf, tried: TriedSet::new(), left, client_ip, key }
            }
            None => Peers::Static(pass.addrs.iter()),
        }
    }

    /// The next try, or None when none is left ("no live upstreams").
    pub fn next(&mut self) -> Option<Try> {
        match self {
            Peers::Static(it) => it.next().map(|a| {
                let name = match a {
                    PeerAddr::Inet(ip) => PeerName::Addr(*ip),
                    PeerAddr::Unix(_) => PeerName::Name(a.to_string().into()),
                };
                Try { addr: a.clone(), name, peer: None }
            }),
            Peers::Balanced { conf, tried, left, client_ip, key } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let input = PickInput { client_ip: *client_ip, hash_key: key.as_deref() };
                let peer = with_balancer(conf, |b| b.pick(&input, tried))?;
                Some(Try { addr: peer.addr.clone(), name: PeerName::Name(peer.name.clone()), peer: Some(peer) })
            }
        }
    }

    /// Whether another try may follow this one.
    pub fn more(&self) -> bool {
        match self {
            Peers::Static(it) => it.len() > 0,
            Peers::Balanced { left, .. } => *left > 0,
        }
    }

    /// Reports how a try went to its balancer (passive health: max_fails /
    /// fail_timeout; least_conn's counts).
    pub fn done(&mut self, t: &Try, ok: bool) {
        if let (Peers::Balanced { conf, .. }, Some(peer)) = (self, &t.peer) {
            with_balancer(conf, |b| b.done(peer, if ok { Outcome::Ok } else { Outcome::Failed }));
        }
    }
}
