//! Where proxy_pass goes, against real upstreams (tests/common/peers.rs):
//! a URL with variables (set by `set` or by Lua through ngx.var, as Kong
//! does) naming an address, an `upstream {}` block or a host the
//! configured `resolver` finds (a real UDP name server here), and nginx's
//! errors when it cannot; unix-domain socket peers (proxy_pass
//! `http://unix:PATH:URI` and `server unix:PATH`); a proxy_pass naming an
//! upstream block defined after it; proxy_redirect's rewrites of Location
//! and Refresh. Also run against nginx (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::{Dns, HttpUpstream};
use common::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server on {{PORT}} with `http_extra` before it; `UP` in both is the
/// upstream's port.
fn server(up: &HttpUpstream, http_extra: &str, body: &str) -> Halo {
    let fill = |s: &str| s.replace("UP", &up.port().to_string());
    Halo::start(&format!("{}\n    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{}\n    }}", fill(http_extra), fill(body)))
}

/// A unix socket path of its own for each use (short enough for sun_path).
fn sock_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!("halo-pt-{}-{}.sock", std::process::id(), N.fetch_add(1, Ordering::SeqCst)))
}

/// The first line of the upstream's echo: `METHOD TARGET`.
fn echoed_line(r: &Response) -> String {
    r.text().lines().next().unwrap_or("").to_string()
}

fn echoed_header(r: &Response, name: &str) -> Option<String> {
    r.text().lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string()))
}

#[test]
fn variables_set_by_set_and_by_lua_name_the_target() {
    let up = HttpUpstream::start();
    let h = server(
        &up,
        "",
        r#"
        location /set {
            set $upstream_host 127.0.0.1:UP;
            set $upstream_uri /x/y?a=1;
            proxy_pass http://$upstream_host$upstream_uri;
        }
        location /lua {
            set $upstream_scheme '';
            set $upstream_host '';
            set $upstream_uri '';
            rewrite_by_lua_block {
                ngx.var.upstream_scheme = "http"
                ngx.var.upstream_host = "127.0.0.1:UP"
                ngx.var.upstream_uri = "/from-lua" .. ngx.var.uri
            }
            proxy_pass $upstream_scheme://$upstream_host$upstream_uri;
        }
        location /nouri/ {
            set $h 127.0.0.1:UP;
            proxy_set_header X-Proxy-Host $proxy_host;
            proxy_pass http://$h;
        }
        location /args {
            set $h 127.0.0.1:UP;
            proxy_pass http://$h?only=args;
        }"#,
    );
    // A URI part replaces the whole request URI, the client's args too.
    let r = h.get("/set/ignored?b=2");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /x/y?a=1");
    assert_eq!(echoed_header(&r, "host").as_deref(), Some(&*format!("127.0.0.1:{}", up.port())));
    let r = h.get("/lua/p");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /from-lua/lua/p");
    // Without a URI part, the client's URI goes as it came.
    let r = h.get("/nouri/a%20b?c=d");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /nouri/a%20b?c=d");
    assert_eq!(echoed_header(&r, "x-proxy-host").as_deref(), Some(&*format!("127.0.0.1:{}", up.port())));
    // A URI part of only args gets its `/`.
    let r = h.get("/args");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /?only=args");
}

#[test]
fn a_variable_host_naming_an_upstream_block_uses_it() {
    let up = HttpUpstream::start();
    let h = server(
        &up,
        "upstream backend { server 127.0.0.1:UP; }",
        r#"
        location /b {
            set $name backend;
            proxy_pass http://$name/via-block$uri;
        }
        location /port {
            set $name backend;
            proxy_pass http://$name:1/;
        }"#,
    );
    let r = h.get("/b");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /via-block/b");
    assert_eq!(echoed_header(&r, "host").as_deref(), Some("backend"));
    // With a port it is a host name, and no resolver is defined.
    let r = h.get("/port");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert!(h.error_log().contains("no resolver defined to resolve backend"), "{}", h.error_log());
}

#[test]
fn a_variable_host_is_resolved_through_the_resolver() {
    let up = HttpUpstream::start();
    let dns = Dns::start(&[("svc.test", Ipv4Addr::LOCALHOST)]);
    let h = server(
        &up,
        "",
        &format!(
            r#"
        location /dns {{
            resolver 127.0.0.1:{dns};
            set $h svc.test:UP;
            proxy_pass http://$h/r;
        }}
        location /nx {{
            resolver 127.0.0.1:{dns};
            set $h nope.test;
            proxy_pass http://$h:UP/;
        }}
        location /none {{
            set $h svc.test;
            proxy_pass http://$h:UP/;
        }}"#,
            dns = dns.port()
        ),
    );
    let r = h.get("/dns");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /r");
    assert_eq!(echoed_header(&r, "host").as_deref(), Some(&*format!("svc.test:{}", up.port())));
    assert!(dns.queries() >= 1);
    let r = h.get("/nx");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert!(h.error_log().contains("nope.test could not be resolved (3: Host not found)"), "{}", h.error_log());
    // No resolver where the name is asked: nginx's 502 (no lookup at all).
    let before = dns.queries();
    let r = h.get("/none");
    assert_eq!(r.status, 502, "{}", h.logs());
    assert!(h.error_log().contains("no resolver defined to resolve svc.test"), "{}", h.error_log());
    assert_eq!(dns.queries(), before);
    assert_eq!(up.requests(), 1);
}

#[test]
fn a_bad_evaluated_url_is_500_with_the_reason() {
    let up = HttpUpstream::start();
    let h = server(
        &up,
        "",
        r#"
        location /ftp { set $s ftp; proxy_pass $s://127.0.0.1:UP; }
        location /port { set $p x; proxy_pass http://127.0.0.1:$p/; }"#,
    );
    assert_eq!(h.get("/ftp").status, 500, "{}", h.logs());
    assert!(h.error_log().contains(&format!("invalid URL prefix in \"ftp://127.0.0.1:{}\"", up.port())), "{}", h.error_log());
    assert_eq!(h.get("/port").status, 500, "{}", h.logs());
    assert!(h.error_log().contains("invalid port in upstream \"127.0.0.1:x/\""), "{}", h.error_log());
    assert_eq!(up.requests(), 0);
}

#[test]
fn https_with_variables_says_it_is_not_built() {
    if is_nginx() {
        // nginx speaks TLS to it; halo has no upstream TLS yet.
        return;
    }
    let up = HttpUpstream::start();
    let h = server(&up, "", "location / { set $s https; proxy_pass $s://127.0.0.1:UP; }");
    assert_eq!(h.get("/").status, 500, "{}", h.logs());
    assert!(h.error_log().contains("https proxying is not supported by halo yet"), "{}", h.error_log());
    assert_eq!(up.accepted(), 0);
}

#[test]
fn unix_socket_peers() {
    let path = sock_path();
    let up = HttpUpstream::start_unix(&path);
    let p = path.display().to_string();
    let h = server(
        &up,
        &format!("upstream u {{ server unix:{p}; }}"),
        &format!(
            r#"
        proxy_http_version 1.1;
        add_header X-Addr $upstream_addr;
        location /static/ {{ proxy_pass http://unix:{p}:/base/; }}
        location /up {{ proxy_pass http://u; }}
        location /var {{ set $s unix:{p}; proxy_pass http://$s:/v$uri; }}
        location /gone {{ proxy_pass http://unix:{p}.missing:/; }}"#
        ),
    );
    let r = h.get("/static/x");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /base/x");
    assert_eq!(echoed_header(&r, "host").as_deref(), Some("localhost"));
    assert_eq!(r.header("x-addr"), Some(&*format!("unix:{p}")));
    let r = h.get("/up");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /up");
    let r = h.get("/var");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /v/var");
    // Kept connections are per socket path: halo keeps a static
    // proxy_pass's (/static and /var share one); the block without
    // `keepalive` keeps none, as nginx (which keeps none of these).
    if !is_nginx() {
        assert_eq!(up.accepted(), 2, "{}", h.logs());
    }
    let r = h.get("/gone");
    assert_eq!(r.status, 502, "{}", h.logs());
    let log = h.error_log();
    assert!(log.contains("[crit]") && log.contains(&format!("connect() to unix:{p}.missing failed (2: No such file or directory) while connecting to upstream")), "{log}");
    assert!(log.contains(&format!("upstream: \"http://unix:{p}.missing:/\"")), "{log}");
}

#[test]
fn proxy_pass_may_name_an_upstream_block_defined_after_it() {
    let up = HttpUpstream::start();
    let h = Halo::start(&format!(
        "    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n        location / {{ proxy_pass http://later; }}\n    }}\n    upstream later {{ server 127.0.0.1:{}; }}",
        up.port()
    ));
    let r = h.get("/late");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(echoed_line(&r), "GET /late");
    assert_eq!(echoed_header(&r, "host").as_deref(), Some("later"));
}

#[test]
fn proxy_redirect_rewrites_location_and_refresh() {
    let up = HttpUpstream::start();
    let h = server(
        &up,
        "",
        r#"
        location /a/ { proxy_pass http://127.0.0.1:UP/b/; }
        location /plain/ { proxy_pass http://127.0.0.1:UP; }
        location /c/ {
            proxy_pass http://127.0.0.1:UP/;
            proxy_redirect http://other/ /c/;
            proxy_redirect ~*^http://RE\.example/(.*)$ /re/$1?h=$host;
        }
        location /d/ { proxy_pass http://127.0.0.1:UP/b/; proxy_redirect off; }
        location /v/ { set $h 127.0.0.1:UP; proxy_pass http://$h/b$request_uri; }"#,
    );
    let me = format!("http://localhost:{}", h.port);
    let upstream = format!("http://127.0.0.1:{}", up.port());
    let get = |path: &str| {
        let r = h.get(path);
        assert_eq!(r.status, 302, "{path}: {}", h.logs());
        (r.header("location").unwrap_or("").to_string(), r.header("refresh").unwrap_or("").to_string())
    };
    // default: the proxy_pass URL becomes the location's prefix, and the
    // rewritten relative Location absolute; Refresh's url= likewise
    // (left relative).
    assert_eq!(get(&format!("/a/redirect?to={upstream}/b/x")), (format!("{me}/a/x"), "0; url=/a/x".to_string()));
    // Without a URI part: the URL with `/` becomes `/`.
    assert_eq!(get(&format!("/plain/redirect?to={upstream}/p")).0, format!("{me}/p"));
    // What does not start with it is left alone.
    assert_eq!(get("/a/redirect?to=http://elsewhere/b/x").0, "http://elsewhere/b/x");
    // Rules in order, the first match wins; a regex replaces the whole URL.
    assert_eq!(get("/c/redirect?to=http://other/z").0, format!("{me}/c/z"));
    assert_eq!(get("/c/redirect?to=http://re.example/q").0, format!("{me}/re/q?h=localhost"));
    // Rules of their own replace the default.
    assert_eq!(get(&format!("/c/redirect?to={upstream}/k")).0, format!("{upstream}/k"));
    assert_eq!(get(&format!("/d/redirect?to={upstream}/b/x")), (format!("{upstream}/b/x"), format!("0; url={upstream}/b/x")));
    // With variables there is no default rewrite.
    assert_eq!(get(&format!("/v/redirect?to={upstream}/b/x")).0, format!("{upstream}/b/x"));
}

#[test]
fn proxy_redirect_rules_are_inherited_in_place_of_the_default() {
    let up = HttpUpstream::start();
    let h = server(
        &up,
        "",
        r#"
        proxy_redirect http://srv/ /s/;
        location /i/ { proxy_pass http://127.0.0.1:UP/b/; }
        location /o/ { proxy_redirect off; proxy_pass http://127.0.0.1:UP/b/; }"#,
    );
    let me = format!("http://localhost:{}", h.port);
    let upstream = format!("http://127.0.0.1:{}", up.port());
    let location = |path: &str| {
        let r = h.get(path);
        assert_eq!(r.status, 302, "{path}: {}", h.logs());
        r.header("location").unwrap_or("").to_string()
    };
    assert_eq!(location("/i/redirect?to=http://srv/x"), format!("{me}/s/x"));
    assert_eq!(location(&format!("/i/redirect?to={upstream}/b/x")), format!("{upstream}/b/x"));
    assert_eq!(location("/o/redirect?to=http://srv/x"), "http://srv/x");
}

#[test]
fn proxy_redirect_config_errors_name_the_line() {
    for (conf, err) in [
        ("location / { proxy_redirect default; proxy_pass http://127.0.0.1:1; }", "\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive"),
        ("location / { set $h x; proxy_pass http://$h; proxy_redirect default; }", "\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables"),
        ("location / { proxy_redirect nope; }", "invalid parameter \"nope\""),
        ("location / { proxy_pass http://no-such-upstream-block.invalid; }", "host not found in upstream \"no-such-upstream-block.invalid\""),
    ] {
        let p = Prefix::new();
        p.write_conf(&server_conf(&format!("        {conf}")).replace("{{PORT}}", &free_port().to_string()));
        let out = p.cli(&["-t"]);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{conf}: {text}");
        assert!(text.contains(err) && text.contains("nginx.conf:"), "{conf}: {text}");
    }
}
