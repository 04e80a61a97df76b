//! The upstream side of proxying, seen from the upstream and from the
//! variables: an `upstream {}` block's `keepalive N` / `keepalive_requests`
//! / `keepalive_timeout` as the pool of its connections (counted where the
//! upstream accepts and sees them closed), none without `keepalive`,
//! ngx.balancer's enable_keepalive, and the per-try `$upstream_*`
//! variables (times, byte counts, `$upstream_http_NAME`) over retries.
//! Also run against nginx (HALO_TEST_BIN=/usr/sbin/nginx), but for
//! enable_keepalive and its pool options: Debian's lua-resty-core 0.1.25
//! has neither (they came in later releases).

mod common;
use common::peers::{send, HttpUpstream, Mode, Step, TcpPeer};
use common::*;
use std::time::Duration;

/// A server proxying `/` to `upstream u { server 127.0.0.1:PORT; EXTRA }`
/// over HTTP/1.1 with `Connection ""` (what nginx needs to keep them).
fn keep_server(up: &HttpUpstream, extra: &str) -> Halo {
    Halo::start(&format!(
        "upstream u {{ server 127.0.0.1:{}; {extra} }}\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://u; }}\n}}",
        up.port()
    ))
}

/// The upstream connection (HttpUpstream's X-Conn) each of `n` requests went over.
fn conns(h: &Halo, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = h.get("/");
            assert_eq!(r.status, 200, "{}", h.logs());
            r.header("X-Conn").expect("X-Conn").to_string()
        })
        .collect()
}

#[test]
fn keepalive_reuses_one_connection() {
    let up = HttpUpstream::start();
    let h = keep_server(&up, "keepalive 4;");
    assert_eq!(conns(&h, 5), ["1"; 5]);
    assert_eq!(up.accepted(), 1);
    assert_eq!(up.closed(), 0);
}

#[test]
fn an_upstream_block_without_keepalive_keeps_nothing() {
    let up = HttpUpstream::start();
    let h = keep_server(&up, "");
    assert_eq!(conns(&h, 3), ["1", "2", "3"]);
    assert!(wait_until(Duration::from_secs(3), || up.closed() == 3), "closed {}", up.closed());
}

#[test]
fn keepalive_requests_closes_a_connection_after_that_many() {
    let up = HttpUpstream::start();
    let h = keep_server(&up, "keepalive 4; keepalive_requests 2;");
    assert_eq!(conns(&h, 5), ["1", "1", "2", "2", "3"]);
    assert!(wait_until(Duration::from_secs(3), || up.closed() == 2), "closed {}", up.closed());
}

#[test]
fn keepalive_timeout_closes_idle_connections() {
    let up = HttpUpstream::start();
    let h = keep_server(&up, "keepalive 4; keepalive_timeout 1s;");
    assert_eq!(conns(&h, 2), ["1", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(up.closed(), 0, "closed before its idle timeout");
    assert!(wait_until(Duration::from_secs(4), || up.closed() == 1), "never closed for idling");
    assert_eq!(conns(&h, 1), ["2"]);
}

#[test]
fn keepalive_1_keeps_one_idle_connection() {
    let up = HttpUpstream::start();
    let h = keep_server(&up, "keepalive 1;");
    // Two at once need two connections; one stays idle after them.
    let slow = || {
        let r = h.get("/delay/300");
        assert_eq!(r.status, 200, "{}", h.logs());
    };
    std::thread::scope(|s| {
        s.spawn(slow);
        s.spawn(slow);
    });
    assert_eq!(up.accepted(), 2);
    assert!(wait_until(Duration::from_secs(3), || up.closed() == 1), "closed {}", up.closed());
    let kept = conns(&h, 3);
    assert!(kept.iter().all(|c| c == &kept[0]), "{kept:?}");
    assert_eq!((up.accepted(), up.closed()), (2, 1));
}

/// A balancer_by_lua upstream (no `keepalive`) whose handler runs `lua`
/// after `set_current_peer` to the test upstream (`PEER` in it: the
/// set_current_peer call).
fn balancer_server(up: &HttpUpstream, lua: &str) -> Halo {
    let peer = format!("balancer.set_current_peer(\"127.0.0.1\", {})", up.port());
    Halo::start(&format!(
        "upstream u {{\n server 0.0.0.1;\n balancer_by_lua_block {{\n\
             local balancer = require \"ngx.balancer\"\n{}\n\
         }}\n}}\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://u; }}\n}}",
        lua.replace("PEER", &peer)
    ))
}

#[test]
fn enable_keepalive_keeps_a_balancer_peers_connections() {
    // Debian's lua-resty-core (0.1.25) has no enable_keepalive.
    if is_nginx() {
        return;
    }
    let up = HttpUpstream::start();
    let h = balancer_server(&up, "assert(PEER)\nassert(balancer.enable_keepalive(10, 2))");
    assert_eq!(conns(&h, 5), ["1", "1", "2", "2", "3"]);
    // Without it, nothing is kept.
    let up = HttpUpstream::start();
    let h = balancer_server(&up, "assert(PEER)");
    assert_eq!(conns(&h, 2), ["1", "2"]);
}

#[test]
fn a_named_pool_keeps_pool_size_connections() {
    // Debian's lua-resty-core (0.1.25) has no pool options nor enable_keepalive.
    if is_nginx() {
        return;
    }
    let up = HttpUpstream::start();
    let lua = format!("assert(balancer.set_current_peer(\"127.0.0.1\", {}, {{ pool = \"p\", pool_size = 1 }}))\nassert(balancer.enable_keepalive())", up.port());
    let h = balancer_server(&up, &lua);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_eq!(h.get("/delay/300").status, 200));
        }
    });
    assert_eq!(up.accepted(), 2);
    assert!(wait_until(Duration::from_secs(3), || up.closed() == 1), "closed {}", up.closed());
    let kept = conns(&h, 3);
    assert!(kept.iter().all(|c| c == &kept[0]), "{kept:?}");
}

#[test]
fn enable_keepalive_and_pool_options_refuse_bad_arguments() {
    // Debian's lua-resty-core (0.1.25) has neither.
    if is_nginx() {
        return;
    }
    let up = HttpUpstream::start();
    let lua = "local function try(f, ...)\n\
                   local ok, a, b = pcall(f, ...)\n\
                   ngx.log(ngx.ERR, \"got: \", tostring(ok), \" \", tostring(a), \" \", tostring(b))\n\
               end\n\
               try(balancer.enable_keepalive)\n\
               try(balancer.set_current_peer, \"127.0.0.1\", 1, 5)\n\
               try(balancer.set_current_peer, \"127.0.0.1\", 1, { pool = 1 })\n\
               try(balancer.set_current_peer, \"127.0.0.1\", 1, { pool_size = 0 })\n\
               assert(PEER)\n\
               try(balancer.enable_keepalive, \"x\")\n\
               try(balancer.enable_keepalive, 1, -1)";
    let h = balancer_server(&up, lua);
    assert_eq!(h.get("/").status, 200, "{}", h.logs());
    let log = h.error_log();
    for want in [
        "got: true nil no current peer set",
        "got: false bad argument #3 to 'set_current_peer' (table expected, got number) nil",
        "got: false bad option 'pool' to 'set_current_peer' (string expected, got number) nil",
        "got: false bad option 'pool_size' to 'set_current_peer' (expected > 0) nil",
        "got: false bad argument #1 to 'enable_keepalive' (number expected, got string) nil",
        "got: false bad argument #2 to 'enable_keepalive' (expected >= 0) nil",
    ] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }
}

/// One `$upstream_*` field of a log line: the tries' entries.
fn entries(field: &str) -> Vec<&str> {
    field.split(", ").collect()
}

/// A time entry ("0.012") in seconds.
fn secs(e: &str) -> f64 {
    assert!(e.len() >= 5 && e.as_bytes()[e.len() - 4] == b'.', "not seconds.millis: {e:?}");
    e.parse().unwrap()
}

#[test]
fn upstream_variables_list_every_try() {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Token: abc\r\nConnection: close\r\n\r\nok";
    let good = TcpPeer::start(Mode::Script(vec![Step::ReadUntil(b"\r\n\r\n".to_vec()), Step::Sleep(Duration::from_millis(100)), send(RESPONSE), Step::Close]));
    let dead = free_port();
    let h = Halo::start(&format!(
        "upstream u {{ server 127.0.0.1:{dead}; server 127.0.0.1:{}; }}\n\
         log_format up '$upstream_addr|$upstream_status|$upstream_connect_time|$upstream_header_time|\
$upstream_response_time|$upstream_bytes_sent|$upstream_bytes_received|$upstream_http_x_token|$upstream_http_x_nothing|';\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{\n access_log logs/up.log up;\n proxy_pass http://u;\n\
             header_filter_by_lua_block {{ ngx.header[\"X-Seen\"] = ngx.var.upstream_http_x_token .. \" \" .. ngx.var.upstream_response_time }}\n\
         }}\n}}",
        good.port()
    ));
    let r = h.get("/x");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "ok");
    // Read while the response goes out: the header is there, the last try's
    // response time not yet.
    let seen = r.header("X-Seen").unwrap_or_default();
    assert!(seen.starts_with("abc ") && seen.ends_with(", -"), "{seen}");
    assert!(wait_until(Duration::from_secs(3), || h.prefix.read_file("logs/up.log").contains('\n')));
    let log = h.prefix.read_file("logs/up.log");
    let f: Vec<&str> = log.lines().next().unwrap().split('|').collect();
    assert_eq!(f[0], format!("127.0.0.1:{dead}, 127.0.0.1:{}", good.port()), "{log}");
    assert_eq!(f[1], "502, 200", "{log}");
    // The refused try never connected nor got a head; the second did.
    let (connect, header, response) = (entries(f[2]), entries(f[3]), entries(f[4]));
    assert_eq!((connect[0], header[0]), ("-", "-"), "{log}");
    secs(response[0]);
    let (c, hd, rs) = (secs(connect[1]), secs(header[1]), secs(response[1]));
    assert!(c < 0.1 && hd >= 0.1 && rs >= hd && rs < 2.0, "{log}");
    // Bytes: nothing to or from the refused peer; the request as the upstream got it, and
    // its response byte for byte.
    assert!(wait_until(Duration::from_secs(3), || good.received_text().ends_with("\r\n\r\n")));
    assert_eq!(entries(f[5]), ["0".to_string(), good.received_text().len().to_string()], "{log}");
    assert_eq!(entries(f[6]), ["0".to_string(), RESPONSE.len().to_string()], "{log}");
    assert_eq!((f[7], f[8]), ("abc", "-"), "{log}");
}

#[test]
fn keepalive_caps_the_whole_block_not_each_peer() {
    let (a, b) = (HttpUpstream::start(), HttpUpstream::start());
    let h = Halo::start(&format!(
        "upstream u {{ server 127.0.0.1:{}; server 127.0.0.1:{}; keepalive 1; }}\n\
         server {{\n listen 127.0.0.1:{{{{PORT}}}};\n server_name localhost;\n\
         location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://u; }}\n}}",
        a.port(),
        b.port()
    ));
    // Round robin: a, b, a, b. Each kept connection makes room by closing the other peer's.
    for _ in 0..4 {
        assert_eq!(h.get("/").status, 200, "{}", h.logs());
    }
    assert_eq!((a.accepted(), b.accepted()), (2, 2));
    assert!(wait_until(Duration::from_secs(3), || a.closed() == 2 && b.closed() == 1), "closed a {} b {}", a.closed(), b.closed());
}
