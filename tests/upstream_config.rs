//! `upstream {}` blocks under `-t`: what is accepted, and nginx's errors with file:line.
//! Runs against nginx too: `HALO_TEST_BIN=/usr/sbin/nginx cargo nextest run --test upstream_config`.

mod common;
use common::*;

/// A config with `ups` in http (before one server on a free port).
fn conf_with(ups: &str) -> String {
    let server = server_conf("        location / { return 200 \"hello\\n\"; }").replace("{{PORT}}", &free_port().to_string());
    server.replacen("http {\n", &format!("http {{\n{ups}\n"), 1)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn expect_ok(ups: &str) {
    let p = Prefix::new();
    p.write_conf(&conf_with(ups));
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_contains(&err, "test is successful");
}

/// Expects `-t` to fail with `msg` on the line of `conf` holding `needle`.
#[track_caller]
fn expect_emerg(ups: &str, msg: &str, needle: &str) {
    let p = Prefix::new();
    let conf = conf_with(ups);
    p.write_conf(&conf);
    let line = conf.lines().position(|l| l.contains(needle)).expect("needle in conf") + 1;
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "-t should fail:\n{err}");
    let want = format!("[emerg] {msg} in {}:{line}", p.conf_path().display());
    assert_contains(&err, &want);
    assert_contains(&err, "test failed");
}

#[test]
fn full_round_robin_group_is_accepted() {
    expect_ok(
        "    upstream backend {\n        server 127.0.0.1:8081 weight=5 max_fails=3 fail_timeout=30s;\n        server [::1]:8082 max_conns=10;\n        server localhost:8083 max_fails=0;\n        server unix:/tmp/halo-upstream.sock;\n        server 127.0.0.2 down;\n        server 127.0.0.3:8084 backup;\n        keepalive 16;\n        keepalive_requests 100;\n        keepalive_timeout 30s;\n    }",
    );
}

#[test]
fn each_method_is_accepted() {
    for m in ["hash $request_uri;", "hash $remote_addr$uri consistent;", "ip_hash;", "least_conn;", "random;", "random two;", "random two least_conn;"] {
        expect_ok(&format!("    upstream u {{\n        {m}\n        server 127.0.0.1:8081 weight=2;\n        server 127.0.0.1:8082 down;\n    }}"));
    }
    // least_conn keeps backups.
    expect_ok("    upstream u {\n        least_conn;\n        server 127.0.0.1:8081;\n        server 127.0.0.1:8082 backup;\n    }");
    // Two groups; names differ.
    expect_ok("    upstream a { server 127.0.0.1:1; }\n    upstream b { server 127.0.0.1:2; }");
}

#[test]
fn empty_upstream_is_reported_at_its_closing_brace() {
    expect_emerg("    upstream empty {\n        keepalive 2;\n    } # end", "no servers are inside upstream", "} # end");
}

#[test]
fn only_backups_is_no_servers() {
    expect_emerg("    upstream only_backup {\n        server 127.0.0.1 backup;\n    }", "no servers in upstream \"only_backup\"", "upstream only_backup");
}

#[test]
fn duplicate_upstream_ignores_case() {
    expect_emerg("    upstream dup { server 127.0.0.1; }\n    upstream DUP { server 127.0.0.2; }", "duplicate upstream \"DUP\"", "upstream DUP");
}

#[test]
fn backup_with_hash_or_ip_hash_or_random() {
    for m in ["hash $uri;", "hash $uri consistent;", "ip_hash;", "random;"] {
        expect_emerg(
            &format!("    upstream u {{\n        {m}\n        server 127.0.0.1;\n        server 127.0.0.2 backup;\n    }}"),
            "balancing method does not support parameter \"backup\"",
            "127.0.0.2 backup",
        );
    }
}

#[test]
fn bad_server_parameters() {
    for param in ["weight=0", "weight=x", "max_fails=-1", "fail_timeout=10ms", "fail_timeout=x", "max_conns=x", "slow_start=1s", "foo"] {
        expect_emerg(
            &format!("    upstream u {{\n        server 127.0.0.1 {param};\n    }}"),
            &format!("invalid parameter \"{param}\""),
            param,
        );
    }
}

#[test]
fn bad_addresses() {
    for (addr, err) in [
        ("127.0.0.1:0", "invalid port"),
        ("127.0.0.1:", "invalid port"),
        ("127.0.0.1:99999", "invalid port"),
        ("[::1", "invalid host"),
        ("http://127.0.0.1", "invalid host"),
        ("127.0.0.1/x", "invalid host"),
        (":80", "no host"),
        ("unix:", "no path in the unix domain socket"),
        ("no-such-host.invalid", "host not found"),
    ] {
        expect_emerg(&format!("    upstream u {{\n        server {addr};\n    }}"), &format!("{err} in upstream \"{addr}\""), &format!("server {addr};"));
    }
}

#[test]
fn directives_inside_upstream() {
    let ups = |d: &str| format!("    upstream u {{\n        server 127.0.0.1;\n        {d}\n    }}");
    expect_emerg(&ups("listen 80;"), "\"listen\" directive is not allowed here", "listen 80;");
    expect_emerg(&ups("frobnicate 1;"), "unknown directive \"frobnicate\"", "frobnicate");
    expect_emerg(&ups("keepalive 0;"), "invalid value \"0\" in \"keepalive\" directive", "keepalive 0;");
    expect_emerg(&ups("keepalive 1; keepalive 2;"), "\"keepalive\" directive is duplicate", "keepalive 1;");
    expect_emerg(&ups("keepalive_requests x;"), "\"keepalive_requests\" directive invalid number", "keepalive_requests");
    expect_emerg(&ups("keepalive_timeout x;"), "\"keepalive_timeout\" directive invalid value", "keepalive_timeout");
    expect_emerg(&ups("hash $uri foo;"), "invalid parameter \"foo\"", "hash $uri foo;");
    expect_emerg(&ups("hash;"), "invalid number of arguments in \"hash\" directive", "hash;");
    expect_emerg(&ups("ip_hash x;"), "invalid number of arguments in \"ip_hash\" directive", "ip_hash x;");
    expect_emerg(&ups("least_conn x;"), "invalid number of arguments in \"least_conn\" directive", "least_conn x;");
    expect_emerg(&ups("random foo;"), "invalid parameter \"foo\"", "random foo;");
    expect_emerg(&ups("random two foo;"), "invalid parameter \"foo\"", "random two foo;");
    expect_emerg("    upstream u {\n        server;\n    }", "invalid number of arguments in \"server\" directive", "server;");
}

#[test]
fn upstream_context_and_arguments() {
    expect_emerg("    upstream a b { server 127.0.0.1; }", "invalid number of arguments in \"upstream\" directive", "upstream a b");
    let p = Prefix::new();
    let conf = server_conf("        upstream inner { server 127.0.0.1; }\n        location / { return 200; }").replace("{{PORT}}", &free_port().to_string());
    p.write_conf(&conf);
    let line = conf.lines().position(|l| l.contains("upstream inner")).unwrap() + 1;
    let err = stderr_of(&p.cli(&["-t"]));
    assert_contains(&err, &format!("[emerg] \"upstream\" directive is not allowed here in {}:{line}", p.conf_path().display()));
}

#[test]
fn proxy_next_upstream_directives_and_their_errors() {
    expect_ok(
        "proxy_next_upstream error timeout invalid_header http_500 http_502 http_503 http_504 http_403 http_404 http_429 non_idempotent;\n\
         proxy_next_upstream off;\nproxy_next_upstream_tries 3;\nproxy_next_upstream_timeout 10s;",
    );
    expect_emerg("proxy_next_upstream error http_418;", "invalid value \"http_418\"", "http_418");
    expect_emerg("proxy_next_upstream_tries many;", "\"proxy_next_upstream_tries\" directive invalid number", "many");
    expect_emerg("proxy_next_upstream_tries 1;\nproxy_next_upstream_tries 2;", "\"proxy_next_upstream_tries\" directive is duplicate", "tries 2");
    expect_emerg("proxy_next_upstream_timeout soon;", "\"proxy_next_upstream_timeout\" directive invalid value", "soon");
}

#[test]
fn balancer_keepalive_and_its_errors() {
    // lua-nginx-module 0.10.27's directive; Debian's 0.10.23 has no such directive.
    if is_nginx() {
        return;
    }
    let ups = |d: &str| format!("    upstream u {{\n        server 0.0.0.1;\n        {d}\n    }}");
    expect_ok(&ups("balancer_keepalive 512;"));
    expect_emerg(&ups("balancer_keepalive 0;"), "invalid value \"0\" in \"balancer_keepalive\" directive", "balancer_keepalive 0");
    expect_emerg(&ups("balancer_keepalive 1;\n        balancer_keepalive 2;"), "\"balancer_keepalive\" directive is duplicate", "balancer_keepalive 2");
}
