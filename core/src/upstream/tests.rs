use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::conf::template::Template;
use crate::conf::types::{Balance, PeerAddr, PeerConf, UpstreamConf};

fn peer(n: u8, weight: u64) -> PeerConf {
    let addr: SocketAddr = format!("10.0.0.{n}:80").parse().unwrap();
    PeerConf {
        addr: PeerAddr::Inet(addr),
        name: Arc::from(addr.to_string()),
        server: Arc::from(format!("10.0.0.{n}")),
        weight,
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
        max_conns: 0,
        backup: false,
        down: false,
    }
}

fn group(peers: Vec<PeerConf>, method: Balance) -> Arc<UpstreamConf> {
    Arc::new(UpstreamConf {
        name: "u".into(),
        origin: "nginx.conf:1".into(),
        peers,
        method,
        keepalive: None,
        keepalive_requests: 1000,
        keepalive_timeout: Duration::from_secs(60),
        balancer_keepalive: 32,
        balancer_by_lua: None,
    })
}

/// A balancer on a clock the test moves.
fn clocked(conf: Arc<UpstreamConf>) -> (Balancer, Rc<Cell<Instant>>) {
    let now = Rc::new(Cell::new(Instant::now()));
    let c = now.clone();
    (Balancer::with_clock(conf, Box::new(move || c.get())), now)
}

/// One try that ends at once with `outcome`; the index picked.
fn once(b: &mut Balancer, input: &PickInput, outcome: Outcome) -> Option<usize> {
    let p = b.pick(input, &mut TriedSet::new())?;
    b.done(&p, outcome);
    Some(p.index)
}

fn hash_method(consistent: bool) -> Balance {
    Balance::Hash { key: Template::parse("$request_uri").unwrap(), consistent }
}

#[test]
fn smooth_weighted_round_robin_is_nginx_sequence() {
    let mut b = Balancer::new(group(vec![peer(1, 5), peer(2, 1), peer(3, 1)], Balance::RoundRobin));
    let seq: Vec<usize> = (0..14).map(|_| once(&mut b, &PickInput::default(), Outcome::Ok).unwrap()).collect();
    // a a b a c a a, twice.
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn round_robin_distribution_matches_weights_exactly() {
    let mut b = Balancer::new(group(vec![peer(1, 3), peer(2, 2), peer(3, 1), peer(4, 4)], Balance::RoundRobin));
    let mut count = [0usize; 4];
    for _ in 0..1000 {
        count[once(&mut b, &PickInput::default(), Outcome::Ok).unwrap()] += 1;
    }
    assert_eq!(count, [300, 200, 100, 400]);
    assert_eq!(b.tries(), 4);
}

#[test]
fn down_is_never_picked_and_not_a_try() {
    let mut ps = vec![peer(1, 1), peer(2, 1), peer(3, 1)];
    ps[1].down = true;
    let mut b = Balancer::new(group(ps, Balance::RoundRobin));
    for _ in 0..50 {
        assert_ne!(once(&mut b, &PickInput::default(), Outcome::Ok), Some(1));
    }
    assert_eq!(b.tries(), 2);
}

#[test]
fn tried_peers_are_skipped_then_none() {
    let mut b = Balancer::new(group(vec![peer(1, 1), peer(2, 1), peer(3, 1)], Balance::RoundRobin));
    let mut tried = TriedSet::new();
    let mut seen: Vec<usize> = (0..3).map(|_| b.pick(&PickInput::default(), &mut tried).unwrap().index).collect();
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(tried.len(), 3);
    assert!(b.pick(&PickInput::default(), &mut tried).is_none());
}

#[test]
fn backup_only_when_primaries_are_unavailable() {
    let mut ps = vec![peer(1, 1), peer(2, 1), peer(3, 1)];
    ps[2].backup = true;
    let (mut b, _) = clocked(group(ps, Balance::RoundRobin));
    for _ in 0..20 {
        assert_ne!(once(&mut b, &PickInput::default(), Outcome::Ok), Some(2));
    }
    assert_eq!(b.tries(), 3);
    // Both primaries fail once (max_fails=1): the backup takes over.
    let mut tried = TriedSet::new();
    for _ in 0..2 {
        let p = b.pick(&PickInput::default(), &mut tried).unwrap();
        assert!(p.index < 2);
        b.done(&p, Outcome::Failed);
    }
    let p = b.pick(&PickInput::default(), &mut tried).unwrap();
    assert_eq!(p.index, 2);
    b.done(&p, Outcome::Ok);
    for _ in 0..5 {
        assert_eq!(once(&mut b, &PickInput::default(), Outcome::Ok), Some(2));
    }
}

#[test]
fn max_fails_within_fail_timeout_skips_then_returns() {
    let mut ps = vec![peer(1, 1), peer(2, 1)];
    ps[0].max_fails = 2;
    ps[0].fail_timeout = Duration::from_secs(30);
    let (mut b, now) = clocked(group(ps, Balance::RoundRobin));
    let input = PickInput::default();
    // Fail peer 0 twice (its picks alternate with peer 1's).
    let mut fails = 0;
    while fails < 2 {
        let p = b.pick(&input, &mut TriedSet::new()).unwrap();
        let failed = p.index == 0;
        b.done(&p, if failed { Outcome::Failed } else { Outcome::Ok });
        fails += failed as usize;
    }
    assert!(!b.is_available(0));
    assert!(!b.is_available(2), "no such peer");
    for _ in 0..20 {
        assert_eq!(once(&mut b, &input, Outcome::Ok), Some(1));
    }
    now.set(now.get() + Duration::from_secs(29));
    assert_eq!(once(&mut b, &input, Outcome::Ok), Some(1));
    // The window is over: peer 0 is tried again, and its success clears it.
    now.set(now.get() + Duration::from_secs(2));
    assert!(b.is_available(0));
    let picks: Vec<usize> = (0..10).map(|_| once(&mut b, &input, Outcome::Ok).unwrap()).collect();
    assert!(picks.contains(&0), "{picks:?}");
    assert_eq!(b.peers[0].fails, 0);
}

#[test]
fn one_failure_after_recheck_disables_again() {
    let mut ps = vec![peer(1, 1), peer(2, 1)];
    ps[0].fail_timeout = Duration::from_secs(10);
    let (mut b, now) = clocked(group(ps, Balance::RoundRobin));
    let p = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_eq!(p.index, 0);
    assert!(b.done(&p, Outcome::Failed), "max_fails=1: disabled by one failure");
    assert!(!b.is_available(0));
    now.set(now.get() + Duration::from_secs(11));
    assert!(b.is_available(0));
    let mut tried = TriedSet::new();
    tried.insert(1);
    let p = b.pick(&PickInput::default(), &mut tried).unwrap();
    assert_eq!(p.index, 0);
    assert!(b.done(&p, Outcome::Failed));
    assert!(!b.is_available(0));
}

#[test]
fn every_peer_unavailable_is_none() {
    let mut ps = vec![peer(1, 1), peer(2, 1), peer(3, 1)];
    ps[2].down = true;
    ps[1].backup = true;
    let (mut b, _) = clocked(group(ps, Balance::RoundRobin));
    let mut tried = TriedSet::new();
    while let Some(p) = b.pick(&PickInput::default(), &mut tried) {
        b.done(&p, Outcome::Failed);
    }
    assert!(once(&mut b, &PickInput::default(), Outcome::Ok).is_none());
    for m in [Balance::IpHash, hash_method(false), hash_method(true), Balance::LeastConn, Balance::Random { two: true }] {
        let mut ps = vec![peer(1, 1), peer(2, 1)];
        ps[0].down = true;
        ps[1].down = true;
        let mut b = Balancer::new(group(ps, m));
        let input = PickInput { client_ip: Some("1.2.3.4".parse().unwrap()), hash_key: Some(b"k") };
        assert!(b.pick(&input, &mut TriedSet::new()).is_none());
        assert_eq!(b.tries(), 0);
    }
}

#[test]
fn single_peer_is_not_taken_out() {
    let (mut b, _) = clocked(group(vec![peer(1, 1)], Balance::RoundRobin));
    for _ in 0..5 {
        assert_eq!(once(&mut b, &PickInput::default(), Outcome::Failed), Some(0));
    }
}

#[test]
fn max_conns_limits_active() {
    let mut ps = vec![peer(1, 1), peer(2, 1)];
    ps[0].max_conns = 1;
    ps[1].max_conns = 1;
    let mut b = Balancer::new(group(ps, Balance::RoundRobin));
    let a = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    let c = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_ne!(a.index, c.index);
    assert!(b.pick(&PickInput::default(), &mut TriedSet::new()).is_none());
    b.done(&a, Outcome::Ok);
    assert_eq!(b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap().index, a.index);
}

fn ip(s: &str) -> PickInput<'static> {
    PickInput { client_ip: Some(s.parse::<IpAddr>().unwrap()), hash_key: None }
}

#[test]
fn ip_hash_is_stable_per_slash_24_and_spreads() {
    let mut b = Balancer::new(group((1..=4).map(|n| peer(n, 1)).collect(), Balance::IpHash));
    let mut used = HashMap::new();
    for net in 0..64 {
        let first = once(&mut b, &ip(&format!("192.168.{net}.1")), Outcome::Ok).unwrap();
        for host in [2, 100, 254] {
            assert_eq!(once(&mut b, &ip(&format!("192.168.{net}.{host}")), Outcome::Ok), Some(first));
        }
        *used.entry(first).or_insert(0) += 1;
    }
    assert_eq!(used.len(), 4, "{used:?}");
    assert!(used.values().all(|&n| n >= 5), "{used:?}");
    // nginx's hash for 10.0.0.x: ((89*113+10)*113+0)%6271*113+0 ... % 4.
    let mut h: u64 = 89;
    for b in [10u64, 0, 0] {
        h = (h * 113 + b) % 6271;
    }
    assert_eq!(once(&mut b, &ip("10.0.0.7"), Outcome::Ok), Some((h % 4) as usize));
    // A failed peer moves its clients elsewhere, a tried one too.
    let mut tried = TriedSet::new();
    let first = b.pick(&ip("10.0.0.7"), &mut tried).unwrap();
    let second = b.pick(&ip("10.0.0.7"), &mut tried).unwrap();
    assert_ne!(first.index, second.index);
}

fn key(k: &str) -> PickInput<'_> {
    PickInput { client_ip: None, hash_key: Some(k.as_bytes()) }
}

#[test]
fn hash_is_stable_per_key_and_matches_nginx() {
    let mut b = Balancer::new(group((1..=3).map(|n| peer(n, 1)).collect(), hash_method(false)));
    let mut used = HashMap::new();
    for k in 0..300 {
        let k = format!("/item/{k}");
        let i = once(&mut b, &key(&k), Outcome::Ok).unwrap();
        assert_eq!(once(&mut b, &key(&k), Outcome::Ok), Some(i));
        *used.entry(i).or_insert(0) += 1;
        let want = ((crc32fast::hash(k.as_bytes()) >> 16) & 0x7fff) % 3;
        assert_eq!(i, want as usize);
    }
    assert!(used.values().all(|&n| n > 50), "{used:?}");
    // No key: round robin.
    let seq: Vec<usize> = (0..3).map(|_| once(&mut b, &PickInput::default(), Outcome::Ok).unwrap()).collect();
    assert_eq!(seq.len(), 3);
}

#[test]
fn consistent_hash_moves_few_keys_when_a_server_is_added() {
    let mut three = Balancer::new(group((1..=3).map(|n| peer(n, 1)).collect(), hash_method(true)));
    let mut four = Balancer::new(group((1..=4).map(|n| peer(n, 1)).collect(), hash_method(true)));
    let (mut moved, mut to_new) = (0, 0);
    let n = 2000;
    for k in 0..n {
        let k = format!("key-{k}");
        let a = once(&mut three, &key(&k), Outcome::Ok).unwrap();
        assert_eq!(once(&mut three, &key(&k), Outcome::Ok), Some(a));
        let b = once(&mut four, &key(&k), Outcome::Ok).unwrap();
        if a != b {
            moved += 1;
            to_new += (b == 3) as usize;
        }
    }
    // About a quarter move, all of them to the new server.
    assert_eq!(moved, to_new);
    assert!(moved > n / 8 && moved < n * 2 / 5, "{moved}");
    // The plain hash moves most keys.
    let mut p3 = Balancer::new(group((1..=3).map(|n| peer(n, 1)).collect(), hash_method(false)));
    let mut p4 = Balancer::new(group((1..=4).map(|n| peer(n, 1)).collect(), hash_method(false)));
    let plain_moved = (0..n)
        .filter(|k| {
            let k = format!("key-{k}");
            once(&mut p3, &key(&k), Outcome::Ok) != once(&mut p4, &key(&k), Outcome::Ok)
        })
        .count();
    assert!(plain_moved > n / 2, "{plain_moved}");
}

#[test]
fn consistent_hash_points_are_ketama() {
    let conf = group(vec![peer(1, 1)], hash_method(true));
    let points = hash::Points::new(&conf, &[0]);
    // crc32("10.0.0.1" \0 "" prev_le) for the first point, prev = 0.
    let mut h = crc32fast::Hasher::new();
    h.update(b"10.0.0.1\0");
    h.update(&0u32.to_le_bytes());
    let first = h.finalize();
    assert!(points.contains(first));
    assert_eq!(points.len(), 160);
}

#[test]
fn consistent_hash_skips_a_failed_server() {
    let (mut b, _) = clocked(group((1..=3).map(|n| peer(n, 1)).collect(), hash_method(true)));
    let i = once(&mut b, &key("/a"), Outcome::Failed).unwrap();
    let j = once(&mut b, &key("/a"), Outcome::Ok).unwrap();
    assert_ne!(i, j);
    assert_eq!(once(&mut b, &key("/a"), Outcome::Ok), Some(j));
}

#[test]
fn least_conn_prefers_fewer_active() {
    let mut b = Balancer::new(group((1..=3).map(|n| peer(n, 1)).collect(), Balance::LeastConn));
    let a = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    let c = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    let d = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    let mut all = [a.index, c.index, d.index];
    all.sort();
    assert_eq!(all, [0, 1, 2]);
    b.done(&c, Outcome::Ok);
    // c's peer has 0 active, the others 1.
    for _ in 0..5 {
        let p = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
        assert_eq!(p.index, c.index);
        b.done(&p, Outcome::Ok);
    }
    assert_eq!(b.active(a.index), 1);
    // By weight: weight 2 with 1 active ties weight 1 with 0... then wins.
    let mut b = Balancer::new(group(vec![peer(1, 2), peer(2, 1)], Balance::LeastConn));
    let p0 = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_eq!(p0.index, 0);
    let p1 = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_eq!(p1.index, 1);
    let p2 = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_eq!(p2.index, 0);
}

#[test]
fn random_respects_weights_tried_and_down() {
    let mut ps = vec![peer(1, 3), peer(2, 1), peer(3, 1)];
    ps[2].down = true;
    for two in [false, true] {
        let mut b = Balancer::new(group(ps.clone(), Balance::Random { two }));
        let mut count = [0usize; 3];
        for _ in 0..4000 {
            count[once(&mut b, &PickInput::default(), Outcome::Ok).unwrap()] += 1;
        }
        assert_eq!(count[2], 0);
        if !two {
            assert!(count[0] > 2600 && count[0] < 3400, "{count:?}");
        }
        let mut tried = TriedSet::new();
        tried.insert(0);
        assert_eq!(b.pick(&PickInput::default(), &mut tried).unwrap().index, 1);
        assert!(b.pick(&PickInput::default(), &mut tried).is_none());
    }
}

/// Picks nginx 1.22 made for these keys over `server 127.0.0.1:9001;
/// server 127.0.0.1:9002; server 127.0.0.1:9003 weight=2;` (a proxy_pass
/// to each server's port, which answered its digit).
#[test]
fn hash_picks_match_nginx() {
    const KEYS: &[&str] = &[
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "key-1",
        "key-2", "/item/7", "x", "y", "z",
    ];
    let peers = || {
        (1..=3u8)
            .map(|n| {
                let addr: SocketAddr = format!("127.0.0.1:900{n}").parse().unwrap();
                PeerConf { server: Arc::from(addr.to_string()), name: Arc::from(addr.to_string()), addr: PeerAddr::Inet(addr), weight: if n == 3 { 2 } else { 1 }, ..peer(n, 1) }
            })
            .collect::<Vec<_>>()
    };
    for (consistent, want) in [(true, "12332333231333231331221322"), (false, "33223313123321331233123133")] {
        let mut b = Balancer::new(group(peers(), hash_method(consistent)));
        let got: String = KEYS.iter().map(|k| char::from(b'1' + once(&mut b, &key(k), Outcome::Ok).unwrap() as u8)).collect();
        assert_eq!(got, want, "consistent={consistent}");
    }
}

#[test]
fn ip_hash_ipv6_and_no_ip_are_stable() {
    let mut b = Balancer::new(group((1..=4).map(|n| peer(n, 1)).collect(), Balance::IpHash));
    let v6 = once(&mut b, &ip("2001:db8::1"), Outcome::Ok).unwrap();
    for _ in 0..5 {
        assert_eq!(once(&mut b, &ip("2001:db8::1"), Outcome::Ok), Some(v6));
    }
    let none = once(&mut b, &PickInput::default(), Outcome::Ok).unwrap();
    // nginx's pseudo address: three zero bytes.
    let mut h: u64 = 89;
    for _ in 0..3 {
        h = (h * 113) % 6271;
    }
    assert_eq!(none, (h % 4) as usize);
    assert_eq!(b.tries(), 4);
}

#[test]
fn least_conn_falls_back_to_backups() {
    let mut ps = vec![peer(1, 1), peer(2, 1), peer(3, 1)];
    ps[2].backup = true;
    ps[0].max_conns = 1;
    ps[1].max_conns = 1;
    let mut b = Balancer::new(group(ps, Balance::LeastConn));
    assert_eq!(b.tries(), 3);
    let a = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    let c = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert!(a.index < 2 && c.index < 2 && a.index != c.index);
    let d = b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap();
    assert_eq!(d.index, 2);
    b.done(&a, Outcome::Ok);
    assert_eq!(b.pick(&PickInput::default(), &mut TriedSet::new()).unwrap().index, a.index);
}

/// nginx 1.22's ip_hash picks (client addresses set with realip) over
/// `server :9001; server :9002 weight=3; server :9003; server :9004 down;`,
/// and least_conn's over weights 1, 2, 1 with sequential requests (all
/// ties: smooth round robin).
#[test]
fn ip_hash_and_least_conn_picks_match_nginx() {
    let mut ps: Vec<PeerConf> = (1..=4).map(|n| peer(n, 1)).collect();
    ps[1].weight = 3;
    ps[3].down = true;
    let mut b = Balancer::new(group(ps, Balance::IpHash));
    let clients = [
        "10.0.0.1", "10.0.1.1", "10.0.2.1", "192.168.7.9", "172.16.5.4", "8.8.8.8", "1.2.3.4", "100.64.3.2", "203.0.113.9",
        "198.51.100.1", "2001:db8::1", "2001:db8::2",
    ];
    let got: String = clients.iter().map(|c| char::from(b'1' + once(&mut b, &ip(c), Outcome::Ok).unwrap() as u8)).collect();
    assert_eq!(got, "232333231122");
    let mut b = Balancer::new(group(vec![peer(1, 1), peer(2, 2), peer(3, 1)], Balance::LeastConn));
    let got: String = (0..8).map(|_| char::from(b'1' + once(&mut b, &PickInput::default(), Outcome::Ok).unwrap() as u8)).collect();
    assert_eq!(got, "21322132");
}

#[test]
fn tried_set_past_64_peers() {
    let mut t = TriedSet::new();
    assert!(t.is_empty());
    for i in [3, 63, 64, 130] {
        t.insert(i);
    }
    assert!([3, 63, 64, 130].iter().all(|&i| t.contains(i)));
    assert!(![0, 62, 65, 129, 131, 500].iter().any(|&i| t.contains(i)));
    assert_eq!(t.len(), 4);
    assert!(!t.is_empty());
}
