//! Asking the name servers: A and AAAA queries over UDP on the worker's
//! ring.
//!
//! Each try makes a connected UDP socket to one server, sends the queries
//! still unanswered (A and AAAA at once, as nginx does) and reads replies
//! until all are answered or the try's time is up; the next try goes to
//! the next server (round robin), with only the unanswered queries. One
//! try lasts `resolver_timeout / servers` (at most 5 s, nginx's resend
//! interval); the whole lookup lasts `resolver_timeout` at most.
//!
//! A reply counts only if it is a response with a query's id and that
//! query's question (name, type, class IN); anything else on the socket is
//! ignored. CNAME chains inside the answer section are followed (a
//! recursive server sends the chain and its addresses together); a chain
//! that ends without an address counts as "no address".
//!
//! Truncated replies (TC bit): there is no TCP fallback. The addresses a
//! truncated reply carries are used as given (A and AAAA sets of one name
//! fit 512 bytes but for very large sets); a truncated reply without any
//! address counts as a server failure for that query.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};

use super::{ResolveErrorKind, ResolverConf};
use crate::rt;

/// The longest one server is waited for before the next is asked.
const MAX_TRY: Duration = Duration::from_secs(5);
/// How long "no such name" is kept when the reply has no SOA to say.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The longest "no such name" is kept, whatever the SOA says.
const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Room for one reply (no EDNS is sent, so servers keep to 512 bytes).
const RECV_MAX: usize = 4096;
/// CNAMEs followed inside one answer.
const MAX_CHAIN: usize = 16;

/// What the servers said about a name.
pub(super) enum Outcome {
    /// Addresses (IPv4 first), and the smallest TTL along the way.
    Found { addrs: Vec<IpAddr>, ttl: Duration },
    /// NXDOMAIN, or no address of the families asked; cacheable for `ttl`.
    NotFound { ttl: Duration },
    /// A server error or a timeout: not cached.
    Failed(ResolveErrorKind),
}

/// One query's reply.
enum Reply {
    Addrs(Vec<IpAddr>, u32),
    /// NOERROR without an address; the negative TTL.
    NoData(Duration),
    NxDomain(Duration),
    Error(ResolveErrorKind),
}

struct Query {
    qtype: TYPE,
    id: u16,
    reply: Option<Reply>,
}

/// Ask `conf`'s servers for `name`'s A and/or AAAA records.
pub(super) async fn lookup(conf: &ResolverConf, name: &str) -> Outcome {
    let Ok(qname) = Name::new(name) else {
        return Outcome::Failed(ResolveErrorKind::NotFound);
    };
    let mut queries: Vec<Query> = [(conf.ipv4, TYPE::A), (conf.ipv6, TYPE::AAAA)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, qtype)| Query { qtype, id: 0, reply: None })
        .collect();
    let n = conf.servers.len().max(1);
    let deadline = rt::now() + conf.timeout;
    let per_try = (conf.timeout / n as u32).min(MAX_TRY);
    let mut next = 0;
    while rt::now() < deadline && queries.iter().any(|q| q.reply.is_none()) {
        let server = conf.servers[next % n];
        next += 1;
        let until = (rt::now() + per_try).min(deadline);
        if exchange(server, &qname, &mut queries, until).await.is_err() {
            // Refused or unreachable: nginx waits for the resend too, so a
            // dead server cannot make the loop spin.
            rt::sleep_until(until).await;
        }
    }
    combine(queries)
}

/// The lookup's result from its queries' replies: any addresses win; else
/// NXDOMAIN, a server error, a timeout, or "no address", in that order.
fn combine(queries: Vec<Query>) -> Outcome {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for q in &queries {
        if let Some(Reply::Addrs(a, t)) = &q.reply {
            addrs.extend_from_slice(a);
            ttl = ttl.min(*t);
        }
    }
    if !addrs.is_empty() {
        return Outcome::Found { addrs, ttl: Duration::from_secs(ttl.into()) };
    }
    if let Some(ttl) = queries.iter().find_map(|q| match q.reply {
        Some(Reply::NxDomain(t)) => Some(t),
        _ => None,
    }) {
        return Outcome::NotFound { ttl };
    }
    if let Some(kind) = queries.iter().find_map(|q| match q.reply {
        Some(Reply::Error(k)) => Some(k),
        _ => None,
    }) {
        return Outcome::Failed(kind);
    }
    if queries.iter().any(|q| q.reply.is_none()) {
        return Outcome::Failed(ResolveErrorKind::TimedOut);
    }
    let ttl = queries
        .iter()
        .filter_map(|q| match q.reply {
            Some(Reply::NoData(t)) => Some(t),
            _ => None,
        })
        .min()
        .unwrap_or(NEGATIVE_TTL);
    Outcome::NotFound { ttl }
}

/// One try: send the unanswered queries to `server`, read replies until
/// each has one or `until` passes. An error is the socket's.
async fn exchange(server: SocketAddr, qname: &Name<'_>, queries: &mut [Query], until: Instant) -> io::Result<()> {
    let sock = connect(server)?;
    let fd = sock.as_raw_fd();
    for q in queries.iter_mut().filter(|q| q.reply.is_none()) {
        q.id = next_id();
        let bytes = build_query(q.id, qname, q.qtype).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (res, _) = rt::ops::send(fd, bytes, 0).await;
        if res < 0 {
            return Err(io::Error::from_raw_os_error(-res));
        }
    }
    let mut buf = Vec::with_capacity(RECV_MAX);
    while queries.iter().any(|q| q.reply.is_none()) {
        buf.clear();
        match rt::race(rt::ops::recv(fd, buf, RECV_MAX, true), rt::sleep_until(until)).await {
            Err(()) => return Ok(()),
            Ok((res, b)) => {
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                buf = b;
            }
        }
        take_reply(&buf, qname, queries);
    }
    Ok(())
}

/// A query for `qname`'s `qtype` records, recursion desired.
fn build_query(id: u16, qname: &Name<'_>, qtype: TYPE) -> simple_dns::Result<Vec<u8>> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(qname.clone(), QTYPE::TYPE(qtype), QCLASS::CLASS(CLASS::IN), false));
    p.build_bytes_vec()
}

/// Give the datagram in `buf` to the query it answers, if any.
fn take_reply(buf: &[u8], qname: &Name<'_>, queries: &mut [Query]) {
    let Ok(p) = Packet::parse(buf) else { return };
    if !p.has_flags(PacketFlag::RESPONSE) {
        return;
    }
    let Some(q) = queries.iter_mut().find(|q| q.reply.is_none() && q.id == p.id()) else { return };
    let [question] = &p.questions[..] else { return };
    if question.qname != *qname
        || question.qtype != QTYPE::TYPE(q.qtype)
        || question.qclass != QCLASS::CLASS(CLASS::IN)
    {
        return;
    }
    q.reply = Some(reply_of(&p, qname, q.qtype));
}

/// What a matching reply says for `qtype`.
fn reply_of(p: &Packet<'_>, qname: &Name<'_>, qtype: TYPE) -> Reply {
    match p.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Reply::NxDomain(negative_ttl(p)),
        RCODE::FormatError => return Reply::Error(ResolveErrorKind::FormatError),
        RCODE::ServerFailure => return Reply::Error(ResolveErrorKind::ServerFailure),
        RCODE::NotImplemented => return Reply::Error(ResolveErrorKind::Unimplemented),
        RCODE::Refused => return Reply::Error(ResolveErrorKind::Refused),
        other => return Reply::Error(ResolveErrorKind::from_rcode(other as u16)),
    }
    // The names that lead to the addresses: qname and its CNAME chain.
    let mut names: Vec<&Name<'_>> = vec![qname];
    let mut ttl = u32::MAX;
    loop {
        let before = names.len();
        for rr in &p.answers {
            if let RData::CNAME(target) = &rr.rdata {
                if names.contains(&&rr.name) && !names.contains(&&target.0) {
                    names.push(&target.0);
                    ttl = ttl.min(rr.ttl);
                }
            }
        }
        if names.len() == before || names.len() > MAX_CHAIN {
            break;
        }
    }
    let mut addrs = Vec::new();
    for rr in &p.answers {
        if rr.class != CLASS::IN || !names.contains(&&rr.name) {
            continue;
        }
        let ip = match (&rr.rdata, qtype) {
            (RData::A(a), TYPE::A) => IpAddr::V4(Ipv4Addr::from(a.address)),
            (RData::AAAA(a), TYPE::AAAA) => IpAddr::V6(Ipv6Addr::from(a.address)),
            _ => continue,
        };
        if !addrs.contains(&ip) {
            addrs.push(ip);
            ttl = ttl.min(rr.ttl);
        }
    }
    if !addrs.is_empty() {
        return Reply::Addrs(addrs, ttl);
    }
    if p.has_flags(PacketFlag::TRUNCATION) {
        return Reply::Error(ResolveErrorKind::ServerFailure);
    }
    Reply::NoData(negative_ttl(p))
}

/// RFC 2308's negative TTL: the SOA's TTL or its MINIMUM, the smaller,
/// capped at `MAX_NEGATIVE_TTL`.
fn negative_ttl(p: &Packet<'_>) -> Duration {
    let soa = p.name_servers.iter().find_map(|rr| match &rr.rdata {
        RData::SOA(soa) => Some(rr.ttl.min(soa.minimum)),
        _ => None,
    });
    soa.map_or(NEGATIVE_TTL, |t| Duration::from_secs(t.into())).min(MAX_NEGATIVE_TTL)
}

/// A fresh query id: SipHash of a counter under this thread's random keys.
fn next_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static STATE: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
    }
    STATE.with(|(s, n)| {
        n.set(n.get() + 1);
        s.hash_one(n.get()) as u16
    })
}

/// A UDP socket connected to `server` (so the kernel drops datagrams from
/// anyone else), blocking: io_uring waits on it.
fn connect(server: SocketAddr) -> io::Result<OwnedFd> {
    let domain = if server.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the fd is owned at once below.
    let raw = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (storage, len) = rt::sockaddr::to_sockaddr(&server);
    // SAFETY: storage holds a valid sockaddr of length len.
    if unsafe { libc::connect(raw, &storage as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
