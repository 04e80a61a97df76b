//! The map module: `map $source $result { ... }` evaluated when `$result`
//! is read (exact keys, hostnames, regexes with captures, default,
//! include, volatile), and its config errors as nginx words them.

mod common;
use common::*;

/// A config with `http_body` (maps) before one server on `{{PORT}}` with
/// `server_body`.
fn conf(http_body: &str, server_body: &str) -> String {
    http_conf(&format!(
        "{http_body}\n    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{server_body}\n    }}"
    ))
}

#[test]
fn exact_keys_default_regexes_and_captures() {
    let h = Halo::start_full(&conf(
        r#"
    map_hash_max_size 4096;
    map_hash_bucket_size 128;
    map $arg_k $exact {
        default    none;
        apple      red;
        Banana     yellow;
        \~tilde    literal;
        ""         empty;
        ~^num(\d+)$    "number $1";
        ~*^UP(?<rest>.*)$  "up:$rest";
        ~^x        first;
        ~^xy       second;
    }
    map $arg_k $no_default {
        a 1;
    }
    map $arg_k$arg_j $joined {
        ab     "joined $arg_k+$arg_j";
        default "uri=$uri";
    }
    map $exact $chained {
        red     "is red";
        default "not red ($exact)";
    }"#,
        r#"        location /m { return 200 "[$exact]"; }
        location /n { return 200 "[$no_default]"; }
        location /j { return 200 "[$joined]"; }
        location /c { return 200 "[$chained]"; }"#,
    ));
    let cases = [
        ("/m?k=apple", "[red]"),
        // Exact keys are compared lowercased, as nginx's hash does.
        ("/m?k=APPLE", "[red]"),
        ("/m?k=banana", "[yellow]"),
        ("/m?k=~tilde", "[literal]"),
        ("/m", "[empty]"),
        ("/m?k=num42", "[number 42]"),
        ("/m?k=num4x", "[none]"),
        ("/m?k=upstairs", "[up:stairs]"),
        // Regexes are tried in order, on the value as it is.
        ("/m?k=xyz", "[first]"),
        ("/m?k=pear", "[none]"),
        ("/n?k=a", "[1]"),
        ("/n?k=b", "[]"),
        ("/j?k=a&j=b", "[joined a+b]"),
        ("/j?k=a&j=c", "[uri=/j]"),
        ("/c?k=apple", "[is red]"),
        ("/c?k=banana", "[not red (yellow)]"),
    ];
    for (path, want) in cases {
        let r = h.get(path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
}

/// A regex key's named captures are variables once the map was read.
#[test]
fn named_captures_become_variables() {
    let h = Halo::start_full(&conf(
        "    map $arg_k $x {\n        ~^(?<first>\\w)(?<rest>.*)$ \"$first\";\n        default none;\n    }",
        r#"        location / { return 200 "$x [$first] [$rest]"; }"#,
    ));
    assert_eq!(h.get("/?k=abc").text(), "a [a] [bc]");
}

#[test]
fn hostnames() {
    let h = Halo::start_full(&conf(
        r#"
    map $arg_h $site {
        hostnames;
        default          other;
        example.com      exact;
        .example.org     org;
        *.example.com    sub;
        *.a.example.com  deeper;
        www.example.*    www;
        ~^api\.          api;
    }"#,
        r#"        location / { return 200 "$site"; }"#,
    ));
    let cases = [
        ("example.com", "exact"),
        // A trailing dot is dropped before the lookup.
        ("example.com.", "exact"),
        ("EXAMPLE.com", "exact"),
        ("x.example.com", "sub"),
        ("y.x.example.com", "sub"),
        ("b.a.example.com", "deeper"),
        ("example.org", "org"),
        ("m.example.org", "org"),
        ("www.example.net", "www"),
        ("api.test", "api"),
        ("example.net", "other"),
        ("xexample.com", "other"),
    ];
    for (host, want) in cases {
        assert_eq!(h.get(&format!("/?h={host}")).text(), want, "{host}");
    }
}

#[test]
fn include_in_a_map() {
    let p = Prefix::new();
    p.write_file("conf/map_keys.conf", "one 1;\ntwo 2;\n");
    let h = p.start(&conf(
        "    map $arg_k $n {\n        include map_keys.conf;\n        default 0;\n    }",
        r#"        location / { return 200 "$n"; }"#,
    ));
    assert_eq!(h.get("/?k=one").text(), "1");
    assert_eq!(h.get("/?k=two").text(), "2");
    assert_eq!(h.get("/?k=six").text(), "0");
}

/// A map is evaluated when read, once per request unless `volatile`: the
/// source `$v` changes between two reads from Lua.
#[test]
fn cached_per_request_unless_volatile() {
    let h = Halo::start_full(&conf(
        r#"
    map $v $cached { default "v=$v"; }
    map $v $fresh { volatile; default "v=$v"; }"#,
        r#"        set $v "";
        location /unused { return 200 "$cached $fresh"; }
        location / { content_by_lua_block {
            ngx.var.v = 1
            local c1, f1 = ngx.var.cached, ngx.var.fresh
            ngx.var.v = 2
            ngx.say(c1, " ", ngx.var.cached, " | ", f1, " ", ngx.var.fresh)
        } }"#,
    ));
    assert_eq!(h.get("/").text(), "v=1 v=1 | v=1 v=2\n");
    // The cache is the request's: the next request evaluates anew.
    assert_eq!(h.get("/").text(), "v=1 v=1 | v=1 v=2\n");
}

/// `set` before the read decides the value; a map of a later-set variable
/// sees it as it is when first read.
#[test]
fn evaluated_when_first_read() {
    let h = Halo::start_full(&conf(
        "    map $v $m { 1 one; 2 two; default none; }",
        r#"        location / { set $v 1; set $a $m; set $v 2; return 200 "$a $m"; }
        location /late { set $v 2; return 200 "$m"; }"#,
    ));
    assert_eq!(h.get("/").text(), "one one");
    assert_eq!(h.get("/late").text(), "two");
}

/// Writes a config whose http{} holds `http_body`, runs `-t`, and expects
/// `msg` at `conf/nginx.conf:line` (the line holding `at`).
#[track_caller]
fn expect_emerg(http_body: &str, msg: &str, at: &str) {
    let p = Prefix::new();
    let text = http_conf(http_body);
    p.write_conf(&text);
    let line = text.lines().position(|l| l.contains(at)).expect("at in conf") + 1;
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "-t should fail:\n{err}");
    let want = format!("[emerg] {msg} in {}:{line}", p.conf_path().display());
    assert_contains(&err, &want);
}

#[test]
fn config_errors() {
    expect_emerg("map $uri $a {\n a 1;\n A 2;\n}", "conflicting parameter \"a\"", " A 2;");
    expect_emerg("map $uri $a {\n default 1;\n default 2;\n}", "duplicate default map parameter", "default 2;");
    expect_emerg("map $uri a {\n}", "invalid variable name \"a\"", "map $uri a");
    expect_emerg("map $uri $a {\n a 1 2;\n}", "invalid number of the map parameters", "a 1 2;");
    expect_emerg("map $uri $a $b {\n}", "invalid number of arguments in \"map\" directive", "map $uri");
    expect_emerg("map $uri $a {\n hostnames;\n a.*.b 1;\n}", "invalid hostname or wildcard \"a.*.b\"", "a.*.b");
    expect_emerg("map $uri $a {\n hostnames;\n *.a.b 1;\n .a.b 2;\n}", "conflicting parameter \".a.b\"", " .a.b 2;");
    expect_emerg("map $uri $a {\n hostnames;\n www.a.* 1;\n www.a.* 2;\n}", "conflicting parameter \"www.a.*\"", "www.a.* 2;");
    expect_emerg("map $uri $a {\n a {}\n}", "unexpected \"{\"", " a {}");
    expect_emerg("server {\n map $uri $a {}\n}", "\"map\" directive is not allowed here", " map $uri");
    expect_emerg("map_hash_max_size big;", "\"map_hash_max_size\" directive invalid number", "map_hash_max_size");
}

/// A bad regex key is an error at its line (the reason is the regex
/// engine's, so only the place is compared).
#[test]
fn bad_regex_key() {
    let p = Prefix::new();
    let text = http_conf("map $uri $a {\n    ~(x 1;\n}");
    p.write_conf(&text);
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = text.lines().position(|l| l.contains("~(x")).unwrap() + 1;
    assert_contains(&err, "[emerg]");
    assert_contains(&err, &format!("{}:{line}", p.conf_path().display()));
}

/// ngx.var can assign a map's variable (it is changeable in nginx): later
/// reads in the request see the value given.
#[test]
fn assigned_from_lua() {
    let h = Halo::start_full(&conf(
        "    map $arg_k $m { default d; }",
        r#"        location /unused { return 200 "$m"; }
        location / { content_by_lua_block {
            local before = ngx.var.m
            ngx.var.m = "given"
            ngx.say(before, " ", ngx.var.m)
        } }"#,
    ));
    assert_eq!(h.get("/").text(), "d given\n");
}

/// split_clients: MurmurHash2 of the source picks the part, by cumulative
/// percentages; past the last part without `*` the value is empty.
#[test]
fn split_clients() {
    let h = Halo::start_full(&conf(
        r#"
    split_clients "${arg_k}AAA" $variant {
        10%    .one;
        20.5%  .two;
        *      "$literal";
    }
    split_clients $arg_k $half {
        50% x;
    }"#,
        r#"        location / { return 200 "$variant|$half"; }"#,
    ));
    let mut counts = [0; 3];
    for k in 0..400 {
        let hash = u64::from(murmur2::murmur2(format!("{k}AAA").as_bytes(), 0));
        let max = u64::from(u32::MAX);
        let (variant, i) = match hash {
            _ if hash < 1000 * max / 10000 => (".one", 0),
            _ if hash < 1000 * max / 10000 + 2050 * max / 10000 => (".two", 1),
            _ => ("$literal", 2),
        };
        counts[i] += 1;
        let half = if u64::from(murmur2::murmur2(k.to_string().as_bytes(), 0)) < 5000 * max / 10000 { "x" } else { "" };
        assert_eq!(h.get(&format!("/?k={k}")).text(), format!("{variant}|{half}"), "k={k}");
    }
    // The shares are roughly as configured.
    assert!((20..=65).contains(&counts[0]) && (50..=120).contains(&counts[1]), "{counts:?}");
}

#[test]
fn split_clients_errors() {
    // Found once the block is read: at its closing brace.
    expect_emerg("split_clients $uri $a {\n 50% a;\n 60% b;\n * c;\n} # end", "percent total is greater than 100%", "} # end");
    expect_emerg("split_clients $uri $a {\n * a;\n 10% b;\n} # end", "percent total is greater than 100%", "} # end");
    expect_emerg("split_clients $uri $a {\n 50 a;\n}", "invalid percent value \"50\"", "50 a;");
    expect_emerg("split_clients $uri $a {\n 0% a;\n}", "invalid percent value \"0%\"", "0% a;");
    expect_emerg("split_clients $uri $a {\n 1.234% a;\n}", "invalid percent value \"1.234%\"", "1.234%");
    expect_emerg("split_clients $uri a {\n}", "invalid variable name \"a\"", "split_clients");
    expect_emerg("server {\n split_clients $uri $a {}\n}", "\"split_clients\" directive is not allowed here", " split_clients");
}

/// An error in a file a map includes names that file and line.
#[test]
fn error_in_an_included_file() {
    let p = Prefix::new();
    p.write_file("conf/keys.conf", "a 1;\nb 2;\na 3;\n");
    p.write_conf(&http_conf("map $uri $m {\n    include keys.conf;\n}"));
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(&err, &format!("[emerg] conflicting parameter \"a\" in {}:3", p.path().join("conf/keys.conf").display()));
}
