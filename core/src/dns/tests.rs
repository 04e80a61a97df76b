//! The resolver on a real event loop (`rt::run`) against a fake DNS
//! server: a std UDP socket on 127.0.0.1 in a thread, answering with the
//! same wire-format crate.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use simple_dns::rdata::{RData, A, AAAA, CNAME, SOA};
use simple_dns::{Name, Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use super::*;

/// Run `fut` to completion on a fresh io_uring loop on this thread.
fn block_on<T: 'static>(fut: impl Future<Output = T> + 'static) -> T {
    let out: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let (o, done) = (out.clone(), out.clone());
    crate::rt::run(64, async move { *o.borrow_mut() = Some(fut.await) }, || {}, move || done.borrow().is_some())
        .expect("io_uring runtime");
    out.take().expect("future finished")
}

/// Resolve `name` with `conf` on a fresh loop.
fn resolve_with(conf: Option<ResolverConf>, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    let name = name.to_string();
    block_on(async move { resolve(conf.as_ref(), &name).await })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the fake server does with a query.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answer from the zone below.
    Answer,
    /// Never answer.
    Silent,
}

/// A fake DNS server. Its zone (names end in `.test`):
/// - `a.test`: A 10.0.0.1, AAAA fd00::1
/// - `v4.test`: A 10.0.0.2 only (AAAA: no data)
/// - `alias.test`: CNAME a.test, and a.test's A/AAAA records
/// - `fail.test`: SERVFAIL
/// - `noise.test`: first a reply with a wrong id, then one for another
///   question, then the right reply (A 10.0.0.3)
/// - anything else: NXDOMAIN with an SOA.
struct FakeDns {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDns {
    fn start(mode: Mode, ttl: u32) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
                q.fetch_add(1, Ordering::SeqCst);
                if mode == Mode::Silent {
                    continue;
                }
                for reply in answer(&buf[..n], ttl) {
                    sock.send_to(&reply, peer).unwrap();
                }
            }
        });
        FakeDns { addr, queries, stop, thread: Some(thread) }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn conf(&self) -> ResolverConf {
        ResolverConf::new(vec![self.addr])
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fake server's replies (in order) to one query.
fn answer(query: &[u8], ttl: u32) -> Vec<Vec<u8>> {
    let q = Packet::parse(query).expect("query parses");
    let question = q.questions[0].clone();
    let name = question.qname.to_string();
    let qtype = question.qtype;
    let mut p = Packet::new_reply(q.id());
    p.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
    p.questions.push(question.clone());
    let rr = |n: &str, rdata: RData<'static>| ResourceRecord::new(Name::new_unchecked(n).into_owned(), CLASS::IN, ttl, rdata);
    let a = |n: &str, s: &str| rr(n, RData::A(A { address: u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()) }));
    let aaaa = |n: &str, s: &str| rr(n, RData::AAAA(AAAA { address: u128::from(s.parse::<std::net::Ipv6Addr>().unwrap()) }));
    let want_a = qtype == QTYPE::TYPE(TYPE::A);
    let want_aaaa = qtype == QTYPE::TYPE(TYPE::AAAA);
    let mut pre = Vec::new();
    match name.as_str() {
        "a.test" | "alias.test" => {
            if name == "alias.test" {
                p.answers.push(rr("alias.test", RData::CNAME(CNAME(Name::new_unchecked("a.test").into_owned()))));
            }
            if want_a {
                p.answers.push(a("a.test", "10.0.0.1"));
            }
            if want_aaaa {
                p.answers.push(aaaa("a.test", "fd00::1"));
            }
        }
        "v4.test" => {
            if want_a {
                p.answers.push(a("v4.test", "10.0.0.2"));
            }
        }
        "noise.test" => {
            if want_a {
                p.answers.push(a("noise.test", "10.0.0.3"));
            }
            let mut wrong_id = p.clone();
            wrong_id.set_id(q.id().wrapping_add(1));
            wrong_id.answers = vec![a("noise.test", "192.0.2.1")];
            pre.push(wrong_id.build_bytes_vec().unwrap());
            let mut wrong_q = p.clone();
            wrong_q.questions[0].qname = Name::new_unchecked("other.test").into_owned();
            wrong_q.answers = vec![a("other.test", "192.0.2.2")];
            pre.push(wrong_q.build_bytes_vec().unwrap());
        }
        "fail.test" => *p.rcode_mut() = RCODE::ServerFailure,
        _ => {
            *p.rcode_mut() = RCODE::NameError;
            let soa = SOA {
                mname: Name::new_unchecked("ns.test").into_owned(),
                rname: Name::new_unchecked("admin.test").into_owned(),
                serial: 1,
                refresh: 60,
                retry: 60,
                expire: 60,
                minimum: 60,
            };
            p.name_servers.push(rr("test", RData::SOA(soa)));
        }
    }
    pre.push(p.build_bytes_vec().unwrap());
    pre
}

#[test]
fn dns_ip_literals_need_no_resolver() {
    assert_eq!(resolve_with(None, "127.0.0.1").unwrap(), vec![ip("127.0.0.1")]);
    assert_eq!(resolve_with(None, "::1").unwrap(), vec![ip("::1")]);
    assert_eq!(resolve_with(None, "[2001:db8::5]").unwrap(), vec![ip("2001:db8::5")]);
}

#[test]
fn dns_localhost_from_hosts_without_resolver() {
    let addrs = resolve_with(None, "localhost").unwrap();
    assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
    assert!(addrs[0].is_ipv4(), "IPv4 first: {addrs:?}");
    // ipv6=off leaves out ::1; a resolver that is never asked.
    let fake = FakeDns::start(Mode::Silent, 60);
    let conf = ResolverConf { ipv6: false, ..fake.conf() };
    assert!(resolve_with(Some(conf), "LOCALHOST").unwrap().iter().all(|a| a.is_ipv4()));
    assert_eq!(fake.queries(), 0);
}

#[test]
fn dns_hosts_file_parsing() {
    let map = hosts::parse("# comment\n10.1.1.1  web  Web.Local # trailing\n\nfe80::1%eth0 web\nbogus line\n");
    assert_eq!(map["web"], vec![ip("10.1.1.1"), ip("fe80::1")]);
    assert_eq!(map["web.local"], vec![ip("10.1.1.1")]);
    assert_eq!(map["localhost"], vec![ip("127.0.0.1"), ip("::1")], "localhost is always there");
    assert!(!map.contains_key("bogus"));
}

#[test]
fn dns_no_resolver_defined_text() {
    let e = resolve_with(None, "example.test").unwrap_err();
    assert_eq!(e.to_string(), "no resolver defined to resolve \"example.test\"");
    assert_eq!(e.kind, ResolveErrorKind::NoResolver);
    let e = resolve_with(Some(ResolverConf::new(Vec::new())), "example.test").unwrap_err();
    assert_eq!(e.to_string(), "no resolver defined to resolve \"example.test\"");
}

#[test]
fn dns_a_and_aaaa_answer() {
    let fake = FakeDns::start(Mode::Answer, 60);
    assert_eq!(resolve_with(Some(fake.conf()), "a.test").unwrap(), vec![ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(fake.queries(), 2, "one A and one AAAA query");
    // NOERROR without AAAA: the A records alone.
    assert_eq!(resolve_with(Some(fake.conf()), "v4.test").unwrap(), vec![ip("10.0.0.2")]);
}

#[test]
fn dns_address_families_follow_ipv4_and_ipv6_flags() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let v4 = ResolverConf { ipv6: false, ..fake.conf() };
    assert_eq!(resolve_with(Some(v4), "a.test").unwrap(), vec![ip("10.0.0.1")]);
    assert_eq!(fake.queries(), 1);
    let v6 = ResolverConf { ipv4: false, ..fake.conf() };
    assert_eq!(resolve_with(Some(v6), "a.test").unwrap(), vec![ip("fd00::1")]);
    assert_eq!(fake.queries(), 2);
}

#[test]
fn dns_cname_chain_in_answer() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let conf = ResolverConf { ipv6: false, ..fake.conf() };
    assert_eq!(resolve_with(Some(conf), "alias.test").unwrap(), vec![ip("10.0.0.1")]);
}

#[test]
fn dns_replies_with_wrong_id_or_question_are_ignored() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let conf = ResolverConf { ipv6: false, ..fake.conf() };
    assert_eq!(resolve_with(Some(conf), "noise.test").unwrap(), vec![ip("10.0.0.3")]);
}

#[test]
fn dns_cache_hit_sends_no_query() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let conf = fake.conf();
    let (first, second, third) = block_on(async move {
        let a = resolve(Some(&conf), "a.test").await;
        let b = resolve(Some(&conf), "a.test").await;
        // Case and a trailing dot name the same entry.
        let c = resolve(Some(&conf), "A.Test.").await;
        (a, b, c)
    });
    assert_eq!(first.unwrap(), vec![ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(second.unwrap(), vec![ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(third.unwrap(), vec![ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(fake.queries(), 2, "the second and third lookups come from the cache");
}

#[test]
fn dns_cache_entry_expires_with_ttl() {
    let fake = FakeDns::start(Mode::Answer, 1);
    let conf = ResolverConf { ipv6: false, ..fake.conf() };
    let counts = fake.queries.clone();
    let (before, after) = block_on(async move {
        resolve(Some(&conf), "a.test").await.unwrap();
        resolve(Some(&conf), "a.test").await.unwrap();
        let before = counts.load(Ordering::SeqCst);
        crate::rt::sleep_until(crate::rt::now() + Duration::from_millis(1100)).await;
        resolve(Some(&conf), "a.test").await.unwrap();
        (before, counts.load(Ordering::SeqCst))
    });
    assert_eq!((before, after), (1, 2), "a query again once the 1s TTL ran out");
}

#[test]
fn dns_valid_overrides_ttl() {
    let fake = FakeDns::start(Mode::Answer, 0);
    let conf = ResolverConf { ipv6: false, valid: Some(Duration::from_secs(60)), ..fake.conf() };
    block_on(async move {
        resolve(Some(&conf), "a.test").await.unwrap();
        resolve(Some(&conf), "a.test").await.unwrap();
    });
    assert_eq!(fake.queries(), 1, "TTL 0, but valid=60s keeps the answer");
}

#[test]
fn dns_nxdomain_text_and_negative_cache() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let conf = fake.conf();
    let (e1, e2) = block_on(async move {
        let a = resolve(Some(&conf), "nope.test").await;
        let b = resolve(Some(&conf), "nope.test").await;
        (a.unwrap_err(), b.unwrap_err())
    });
    assert_eq!(e1.to_string(), "nope.test could not be resolved (3: Host not found)");
    assert_eq!(e2, e1);
    assert_eq!(fake.queries(), 2, "NXDOMAIN is cached");
}

#[test]
fn dns_server_failure_text() {
    let fake = FakeDns::start(Mode::Answer, 60);
    let e = resolve_with(Some(fake.conf()), "fail.test").unwrap_err();
    assert_eq!(e.to_string(), "fail.test could not be resolved (2: Server failure)");
}

#[test]
fn dns_timeout_text() {
    let fake = FakeDns::start(Mode::Silent, 60);
    let conf = ResolverConf { timeout: Duration::from_millis(300), ..fake.conf() };
    let start = Instant::now();
    let e = resolve_with(Some(conf), "slow.test").unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.to_string(), "slow.test could not be resolved (110: Operation timed out)");
    assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(2), "{took:?}");
    assert!(fake.queries() >= 2, "A and AAAA were sent");
}

#[test]
fn dns_falls_back_to_next_server() {
    let dead = FakeDns::start(Mode::Silent, 60);
    let good = FakeDns::start(Mode::Answer, 60);
    let conf = ResolverConf { timeout: Duration::from_secs(2), ..ResolverConf::new(vec![dead.addr, good.addr]) };
    let start = Instant::now();
    assert_eq!(resolve_with(Some(conf), "a.test").unwrap(), vec![ip("10.0.0.1"), ip("fd00::1")]);
    let took = start.elapsed();
    assert_eq!(dead.queries(), 2);
    assert_eq!(good.queries(), 2);
    // One try is resolver_timeout / servers: 1s for the silent one.
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(1900), "{took:?}");
}

#[test]
fn dns_refused_port_is_a_timeout_not_a_spin() {
    // Nobody listens there: the connected socket gets ECONNREFUSED.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let conf = ResolverConf { timeout: Duration::from_millis(300), ..ResolverConf::new(vec![port]) };
    let e = resolve_with(Some(conf), "a.test").unwrap_err();
    assert_eq!(e.kind, ResolveErrorKind::TimedOut);
}

#[test]
fn dns_error_texts() {
    let e = |kind| ResolveError { name: "h".into(), kind }.to_string();
    assert_eq!(e(ResolveErrorKind::FormatError), "h could not be resolved (1: Format error)");
    assert_eq!(e(ResolveErrorKind::Unimplemented), "h could not be resolved (4: Unimplemented)");
    assert_eq!(e(ResolveErrorKind::Refused), "h could not be resolved (5: Operation refused)");
    assert_eq!(e(ResolveErrorKind::Other(9)), "h could not be resolved (9: Unknown error)");
}
