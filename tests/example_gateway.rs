//! examples/gateway, the miniature API gateway of the README, driven through
//! its whole path: route lookup, key-auth, rate limit, balancer_by_lua over
//! two peers, header_filter_by_lua and log_by_lua metrics. The example's
//! fixed ports become free ones here.

mod common;

use common::*;
use std::time::Duration;

fn start() -> Halo {
    let root = env!("CARGO_MANIFEST_DIR");
    let conf = std::fs::read_to_string(format!("{root}/examples/gateway/conf/nginx.conf")).unwrap();
    let conf = conf.replace("127.0.0.1:8081", "127.0.0.1:{{PORT}}").replace("127.0.0.1:9001", "127.0.0.1:{{PORT2}}").replace("127.0.0.1:9002", "127.0.0.1:{{PORT3}}");
    let prefix = Prefix::new();
    prefix.write_file("lua/gateway.lua", std::fs::read(format!("{root}/examples/gateway/lua/gateway.lua")).unwrap());
    prefix.start(&conf)
}

fn get(h: &Halo, path: &str, key: Option<&str>) -> Response {
    let key = key.map(|k| format!("apikey: {k}\r\n")).unwrap_or_default();
    h.get_response(format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n{key}\r\n"))
}

#[test]
fn the_gateway_routes_authenticates_limits_balances_and_counts() {
    let h = start();
    // Balanced over both peers, with the filter's headers.
    let mut peers = Vec::new();
    for _ in 0..4 {
        let r = get(&h, "/api/hello", Some("demo-key"));
        assert_eq!(r.status, 200, "{}", h.logs());
        assert_eq!(r.header("X-Gateway"), Some("halo"));
        assert_eq!(r.header("X-Consumer"), Some("demo"));
        peers.push(r.text().split(':').next().unwrap_or("").to_string());
    }
    assert!(peers.contains(&"peer A".to_string()) && peers.contains(&"peer B".to_string()), "{peers:?}");
    // No key, a wrong key, an unknown route.
    assert_eq!(get(&h, "/api/hello", None).status, 401);
    assert_eq!(get(&h, "/api/hello", Some("nope")).status, 401);
    assert_eq!(get(&h, "/nowhere", None).status, 404);
    // A public route needs no key and goes to peer A.
    let r = get(&h, "/public/x", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "peer A: /public/x\n");
    // Five requests a second per consumer, then 429 (retry once if the
    // second turned over mid-burst).
    let burst = |h: &Halo| (0..8).map(|_| get(h, "/api/r", Some("other-key")).status).collect::<Vec<_>>();
    let mut statuses = burst(&h);
    if !statuses.contains(&429) {
        statuses = burst(&h);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // log_by_lua counted what it saw.
    assert!(wait_until(Duration::from_secs(2), || get(&h, "/metrics", None).text().contains("status:401 2")), "{}", get(&h, "/metrics", None).text());
    let m = get(&h, "/metrics", None).text();
    assert!(m.contains("status:404 1") && m.contains("status:429"), "{m}");
}
