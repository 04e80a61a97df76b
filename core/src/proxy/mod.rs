//! The reverse proxy: `proxy_pass http://ADDRESS[:port][/uri]` as a
//! location's content (with variables, its target is made per request:
//! `target`). One request's trip: choose a peer ([`peers`]), take
//! an idle connection to it or open one (`connect`, `pool`), send the
//! request (`request`), read the response head and stream the body to the
//! client through the header and body filters (`relay`).
//!
//! The peers (`peers`): a static proxy_pass's addresses in order, or an
//! `upstream {}` block's as its balancer picks them; a try that fails
//! before anything reached the client, or answers a status it lists, goes
//! to the next peer as `proxy_next_upstream` says (a method that cannot be
//! repeated only when the upstream never got the request, unless
//! `non_idempotent`), within `proxy_next_upstream_tries` / `_timeout`.
//! An upstream's 101 to an Upgrade request becomes a tunnel (`relay`).

mod connect;
mod peers;
pub mod pool;
mod relay;
mod request;
mod target;
mod upload;

use std::fmt::{self, Display};

use crate::conf::proxy::{ProxyPass, NEXT_ERROR, NEXT_INVALID_HEADER, NEXT_NON_IDEMPOTENT, NEXT_TIMEOUT};
use crate::conf::upstream::PeerAddr;
use crate::conf::Location;
use crate::lua::handler::{LuaHandlers, Stream};
use crate::request::{RequestCtx, Response, Upstream, UpstreamTry};
use crate::rt;

pub use connect::UpstreamConn;
use peers::Peers;

/// How one try at the upstream failed (before anything went to the
/// client): the status to answer and the error-log line's text.
#[derive(Debug)]
pub struct Failure {
    pub status: u16,
    pub msg: String,
    /// Its proxy_next_upstream condition (`NEXT_ERROR`, `NEXT_TIMEOUT`,
    /// `NEXT_INVALID_HEADER`); 0 for the client's own failure.
    pub kind: u16,
    /// The error-log level (error but for what nginx deems critical).
    pub level: crate::log::Level,
}

impl Failure {
    fn bad_gateway(msg: impl Into<String>) -> Failure {
        Failure { status: 502, msg: msg.into(), kind: NEXT_ERROR, level: crate::log::Level::Error }
    }

    fn invalid_header(msg: &str) -> Failure {
        Failure { status: 502, msg: msg.to_string(), kind: NEXT_INVALID_HEADER, level: crate::log::Level::Error }
    }

    fn internal(msg: String) -> Failure {
        Failure { status: 500, msg, kind: NEXT_ERROR, level: crate::log::Level::Error }
    }

    /// Reading the client's body failed (its status: 408, 413, 400):
    /// no other try, the peer not blamed, logged where it happened.
    fn client(status: u16) -> Failure {
        Failure { status, msg: String::new(), kind: 0, level: crate::log::Level::Error }
    }

    fn timed_out(what: &str) -> Failure {
        Failure { status: 504, msg: format!("upstream timed out (110: Connection timed out) while {what}"), kind: NEXT_TIMEOUT, level: crate::log::Level::Error }
    }
}

/// A try's upstream as the error log names it, `http://ADDR/uri`
/// (`http://unix:/path:/uri`, as nginx separates a socket's path): made
/// only when a line is written.
pub struct Target<'u> {
    addr: &'u PeerAddr,
    uri: &'u str,
}

impl Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.addr {
            PeerAddr::Unix(_) => write!(f, "http://{}:{}", self.addr, self.uri),
            PeerAddr::Inet(_) => write!(f, "http://{}{}", self.addr, self.uri),
        }
    }
}

/// Proxy the request to `pass`'s server: the response, already streamed
/// to `client` when it came from the upstream; a special response (502,
/// 504, ...) when nothing reached the client.
pub async fn run<'a>(lua: Option<&LuaHandlers>, ctx: &mut RequestCtx<'a>, loc: Option<&'a Location>, pass: &'a ProxyPass, client: &mut impl Stream) -> Response<'a> {
    let mut conf = ctx.conf.proxy.clone();
    let mut upload = match upload::prepare(ctx, &conf, client).await {
        Ok(u) => u,
        Err(status) => return client_failed(ctx, status),
    };
    // A streamed body cannot go again once sending began.
    let replayable = upload.replayable();
    let evaluated;
    let pass = match &pass.vars {
        Some(vars) => match target::evaluate(ctx, vars).await {
            Ok(p) => {
                ctx.proxy_host = Some(p.host.clone());
                evaluated = p;
                &evaluated
            }
            Err(f) => {
                log(ctx, f.level, &f.msg, None);
                return ctx.special(f.status);
            }
        },
        None => pass,
    };
    let uri = request::upstream_uri(ctx, loc, pass);
    let head = request::head(ctx, &conf, &pass.host, &uri, &upload);
    let key = pass.upstream.as_ref().and_then(|u| u.hash_key()).map(|t| request::render(ctx, t).into_owned().into_bytes());
    let mut peers = Peers::of(pass, ctx.conn.peer().map(|a| a.ip()), key);
    // proxy_next_upstream: which failures and answers move on to the next
    // peer; a method that cannot be repeated only before the request was
    // sent, unless non_idempotent.
    let idempotent = !matches!(ctx.method(), "POST" | "LOCK" | "PATCH");
    let started = rt::now();
    // One record per try ($upstream_addr, $upstream_status, ...).
    let u = ctx.upstream.get_or_insert_with(Upstream::default);
    u.tries.clear();
    u.headers.clear();
    let mut last_failure = None;
    // balancer_by_lua: Lua picks each try's peer (the block's balancer when
    // it sets none); 1 + set_more_tries tries.
    let lua_balancer = lua.zip(pass.upstream.as_ref().and_then(|u| u.balancer_by_lua.clone()));
    let mut tries = 0usize;
    'tries: loop {
        let try_start = rt::now();
        let t = match &lua_balancer {
            Some((lua, code)) => {
                if tries > ctx.balancer.more_tries as usize {
                    break;
                }
                ctx.balancer.next_try();
                if !lua.run_balancer(ctx, code).await {
                    return ctx.special(500);
                }
                conf = balancer_timeouts(conf, ctx);
                match ctx.balancer.peer.take() {
                    Some(addr) => peers::Try::chosen(addr),
                    None => match peers.next() {
                        Some(t) => t,
                        None => break,
                    },
                }
            }
            None => match peers.next() {
                Some(t) => t,
                None => break,
            },
        };
        tries += 1;
        let more = match &lua_balancer {
            Some(_) => tries <= ctx.balancer.more_tries as usize,
            None => peers.more(),
        } && (conf.next_upstream_tries == 0 || tries < conf.next_upstream_tries as usize);
        // Whether a try that ended by `kind` (after the request was `sent`)
        // goes on to the next peer.
        let next_ok = |conf: &crate::conf::proxy::ProxyConf, kind: u16, sent: bool| {
            let need = kind | if sent && !idempotent { NEXT_NON_IDEMPOTENT } else { 0 };
            more && (replayable || !sent) && conf.next_upstream & need == need && (conf.next_upstream_timeout.is_zero() || rt::now().saturating_duration_since(started) < conf.next_upstream_timeout)
        };
        if let Some(u) = ctx.upstream.as_mut() {
            u.tries.push(UpstreamTry::new(t.name.clone(), try_start));
        }
        let upstream_name = Target { addr: &t.addr, uri: &uri };
        // The connection's pool (None: closed after the response).
        let balancer_pool = ctx.balancer.pool.take();
        let terms = if request::keepalive(&conf) { pool::Terms::of(pass, &t.addr, ctx.balancer.keepalive, balancer_pool.as_ref()) } else { None };
        // A pooled connection the server closed meanwhile gets one more try
        // on a fresh one (as nginx retries a cached connection).
        let mut failure = None;
        let mut sent = false;
        for fresh in [false, true] {
            let c = match connect::get(&t.addr, conf.connect_timeout, terms.as_ref(), fresh).await {
                Ok(c) => c,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            };
            if let Some(t) = current_try(ctx) {
                t.connected = Some(rt::now());
            }
            // Unless proxy_ignore_client_abort, a client that hangs up while
            // the upstream is busy ends the request (499), as nginx's check
            // of a broken connection does.
            let mut io = relay::Io::default();
            let res = relay::exchange(ctx, c, &head, &mut upload, &conf, client, !conf.ignore_client_abort, &mut io).await;
            // (A retry on a fresh connection counts that one's.)
            if let Some(t) = current_try(ctx) {
                t.bytes_sent = io.sent;
                t.bytes_received = io.received;
            }
            let Ok(res) = res else {
                peers.done(&t, true);
                log(ctx, crate::log::Level::Info, "client prematurely closed connection, so upstream connection is closed too while sending request to upstream", Some(&upstream_name));
                end_try(ctx, 0);
                let mut r = ctx.special(499);
                r.close = true;
                return r;
            };
            match res {
                Ok(got) => {
                    if let Some(t) = current_try(ctx) {
                        t.header_read = Some(rt::now());
                    }
                    // proxy_next_upstream http_NNN: that answer is not
                    // relayed while another try may follow; its connection
                    // is closed. nginx counts 403 and 404 as "next", the
                    // rest as failures of the peer.
                    let status = got.status;
                    if crate::conf::proxy::next_status_bit(status).is_some_and(|b| next_ok(&conf, b, true)) {
                        drop(got);
                        let next = matches!(status, 403 | 404);
                        peers.done(&t, next);
                        ctx.balancer.last_failure = Some((if next { "next" } else { "failed" }, status));
                        end_try(ctx, status);
                        last_failure = None;
                        continue 'tries;
                    }
                    peers.done(&t, true);
                    let r = relay::respond(ctx, got, &conf, &upstream_name, client).await;
                    end_try(ctx, 0);
                    return r;
                }
                Err((f, _)) if f.kind == 0 => {
                    // The client's body failed: not the peer's fault.
                    peers.done(&t, true);
                    end_try(ctx, 0);
                    return client_failed(ctx, f.status);
                }
                Err((_, true)) if !fresh => continue,
                Err((f, _)) => {
                    failure = Some(f);
                    sent = true;
                    break;
                }
            }
        }
        let f = failure.unwrap_or_else(|| Failure::bad_gateway("upstream failed"));
        peers.done(&t, false);
        ctx.balancer.last_failure = Some(("failed", f.status));
        end_try(ctx, f.status);
        if !next_ok(&conf, f.kind, sent) {
            return fail(ctx, &upstream_name, f);
        }
        // The next peer (nginx logs each failure).
        log(ctx, f.level, &f.msg, Some(&upstream_name));
        last_failure = Some((upstream_name.to_string(), f));
    }
    match last_failure {
        Some((name, f)) => fail(ctx, &name, f),
        None => {
            // Every peer of the upstream is down or failed recently.
            let name = format!("http://{}{uri}", pass.host);
            fail(ctx, &name, Failure::bad_gateway("no live upstreams while connecting to upstream"))
        }
    }
}

/// The try at hand's record.
fn current_try<'c>(ctx: &'c mut RequestCtx) -> Option<&'c mut UpstreamTry> {
    ctx.upstream.as_mut()?.tries.last_mut()
}

/// The try at hand is over (answered `status` unless it got one).
fn end_try(ctx: &mut RequestCtx, status: u16) {
    let now = rt::now();
    if let Some(t) = current_try(ctx) {
        t.end(status, now);
    }
}

/// The request ends with `status` for a body that could not be read (the
/// connection closes after it).
fn client_failed<'a>(ctx: &mut RequestCtx<'a>, status: u16) -> Response<'a> {
    let mut r = ctx.special(status);
    r.close = true;
    r
}

/// The proxy settings with ngx.balancer.set_timeouts' values over them.
fn balancer_timeouts(conf: std::sync::Arc<crate::conf::proxy::ProxyConf>, ctx: &RequestCtx) -> std::sync::Arc<crate::conf::proxy::ProxyConf> {
    let [c, s, r] = ctx.balancer.timeouts;
    if c.is_none() && s.is_none() && r.is_none() {
        return conf;
    }
    let mut own = (*conf).clone();
    own.connect_timeout = c.unwrap_or(own.connect_timeout);
    own.send_timeout = s.unwrap_or(own.send_timeout);
    own.read_timeout = r.unwrap_or(own.read_timeout);
    std::sync::Arc::new(own)
}

/// An errno as nginx writes it in the error log: `(111: Connection refused)`.
fn os(errno: i32) -> String {
    crate::log::error::os_error(&std::io::Error::from_raw_os_error(errno))
}

/// Log the failure as nginx does and answer its status.
fn fail<'a>(ctx: &mut RequestCtx<'a>, upstream: &dyn Display, f: Failure) -> Response<'a> {
    log(ctx, f.level, &f.msg, Some(upstream));
    ctx.special(f.status)
}

/// An error-log line with nginx's upstream context: `..., request: "...",
/// upstream: "http://ADDR/uri", host: "..."` (no upstream before a peer
/// was chosen).
fn log(ctx: &RequestCtx, level: crate::log::Level, msg: &str, upstream: Option<&dyn Display>) {
    if !crate::log::error::enabled(level) {
        return;
    }
    let mut tail = crate::log::error::request_context(&ctx.conn.remote_addr(), &ctx.server.primary_name, Some(ctx.req.request_line()), None);
    if let Some(upstream) = upstream {
        tail.push_str(&format!(", upstream: \"{upstream}\""));
    }
    if let Some(h) = ctx.req.header("host") {
        tail.push_str(&format!(", host: \"{h}\""));
    }
    crate::log::error::log(level, Some(ctx.conn.number), &format!("{msg}{tail}"));
}
