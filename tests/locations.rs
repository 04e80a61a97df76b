//! Request routing and the rewrite module: location precedence, server_name selection,
//! `return`, `rewrite`, `set`, `add_header`, `error_page`, `internal`. nginx is the oracle.

mod common;
use common::*;

fn precedence_server() -> Halo {
    Halo::server(
        r#"
        location = /exact { return 200 "exact"; }
        location / { return 200 "root"; }
        location /docs/ { return 200 "docs-prefix"; }
        location ^~ /static/ { return 200 "static-prefix"; }
        location /static/special { return 200 "longer-prefix"; }
        location ~ \.php$ { return 200 "php-regex"; }
        location ~* \.(gif|jpg)$ { return 200 "image-regex"; }
        location ~ ^/re/a { return 200 "first-regex"; }
        location ~ ^/re/ab { return 200 "second-regex"; }
        location /outer/ {
            location ~ \.txt$ { return 200 "nested-regex"; }
            location /outer/inner/ { return 200 "nested-prefix"; }
            return 200 "outer";
        }
        "#,
    )
}

#[test]
fn exact_match_wins() {
    let h = precedence_server();
    assert_eq!(h.get("/exact").text(), "exact");
    // "=" matches only the exact URI.
    assert_eq!(h.get("/exact/").text(), "root");
    assert_eq!(h.get("/exactly").text(), "root");
    // The query string is not part of the match.
    assert_eq!(h.get("/exact?x=1").text(), "exact");
}

#[test]
fn longest_prefix_wins() {
    let h = precedence_server();
    assert_eq!(h.get("/").text(), "root");
    assert_eq!(h.get("/docs/a/b").text(), "docs-prefix");
    assert_eq!(h.get("/docs").text(), "root");
}

#[test]
fn caret_tilde_prefix_stops_regex_search() {
    let h = precedence_server();
    // ^~ /static/ is the longest prefix: regexes are not checked.
    assert_eq!(h.get("/static/a.gif").text(), "static-prefix");
    assert_eq!(h.get("/static/x.php").text(), "static-prefix");
    // A longer plain prefix inside it wins over ^~, and then regexes are checked.
    assert_eq!(h.get("/static/special").text(), "longer-prefix");
    assert_eq!(h.get("/static/special.gif").text(), "image-regex");
}

#[test]
fn regex_beats_prefix_and_case_sensitivity() {
    let h = precedence_server();
    assert_eq!(h.get("/docs/index.php").text(), "php-regex");
    // "~" is case-sensitive...
    assert_eq!(h.get("/docs/INDEX.PHP").text(), "docs-prefix");
    // ... "~*" is not.
    assert_eq!(h.get("/a/B.GIF").text(), "image-regex");
    assert_eq!(h.get("/a/b.jpg").text(), "image-regex");
}

#[test]
fn first_matching_regex_in_config_order_wins() {
    let h = precedence_server();
    assert_eq!(h.get("/re/abc").text(), "first-regex");
    assert_eq!(h.get("/re/a").text(), "first-regex");
}

#[test]
fn nested_locations() {
    let h = precedence_server();
    assert_eq!(h.get("/outer/x").text(), "outer");
    assert_eq!(h.get("/outer/x.txt").text(), "nested-regex");
    assert_eq!(h.get("/outer/inner/y").text(), "nested-prefix");
}

#[test]
fn named_location_via_try_files_and_error_page() {
    let h = Halo::server(
        r#"
        root html;
        location /tf/ { try_files $uri @fallback; }
        location /ep/ { error_page 404 = @fallback; }
        location @fallback { return 200 "named:$uri"; }
        "#,
    );
    let r = h.get("/tf/missing");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "named:/tf/missing");
    // The static handler finds nothing, so the 404 goes to @fallback with its status.
    let r = h.get("/ep/missing");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "named:/ep/missing");
}

fn names_server() -> Halo {
    Halo::start(
        r#"
    server { listen 127.0.0.1:{{PORT}}; server_name first.test; return 200 "first"; }
    server { listen 127.0.0.1:{{PORT}} default_server; server_name dflt.test; return 200 "default"; }
    server { listen 127.0.0.1:{{PORT}}; server_name exact.test alias.test; return 200 "exact"; }
    server { listen 127.0.0.1:{{PORT}}; server_name *.wild.test; return 200 "wild-front"; }
    server { listen 127.0.0.1:{{PORT}}; server_name www.wild.test; return 200 "exact-www"; }
    server { listen 127.0.0.1:{{PORT}}; server_name mail.*; return 200 "wild-back"; }
    server { listen 127.0.0.1:{{PORT}}; server_name ~^(?<sub>[a-z]+)\.re\.test$; return 200 "regex:$sub"; }
    server { listen 127.0.0.1:{{PORT}}; server_name ~^mail\.; return 200 "regex-mail"; }
    server { listen 127.0.0.1:{{PORT2}}; server_name only.test; return 200 "only-on-port2"; }
"#,
    )
}

#[test]
fn server_name_exact_and_aliases() {
    let h = names_server();
    assert_eq!(h.get_host("/", "exact.test").text(), "exact");
    assert_eq!(h.get_host("/", "alias.test").text(), "exact");
    assert_eq!(h.get_host("/", "first.test").text(), "first");
    // Host is case-insensitive, a trailing dot and the port are ignored.
    assert_eq!(h.get_host("/", "EXACT.Test").text(), "exact");
    assert_eq!(h.get_host("/", &format!("exact.test:{}", h.port)).text(), "exact");
    assert_eq!(h.get_host("/", "exact.test.").text(), "exact");
}

#[test]
fn server_name_wildcards_and_regex_precedence() {
    let h = names_server();
    // exact > leading wildcard > trailing wildcard > regex.
    assert_eq!(h.get_host("/", "www.wild.test").text(), "exact-www");
    assert_eq!(h.get_host("/", "a.wild.test").text(), "wild-front");
    assert_eq!(h.get_host("/", "a.b.wild.test").text(), "wild-front");
    assert_eq!(h.get_host("/", "mail.example.org").text(), "wild-back");
    assert_eq!(h.get_host("/", "foo.re.test").text(), "regex:foo");
}

#[test]
fn default_server_for_unknown_or_missing_host() {
    let h = names_server();
    assert_eq!(h.get_host("/", "nobody.test").text(), "default");
    let r = h.get_response("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "default");
    // On a port with one server, that server is the default.
    let r = parse(&request(h.ports[1], b"GET / HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.text(), "only-on-port2");
}

#[test]
fn return_code_and_text() {
    let h = Halo::server(
        r#"
        location /t { return 200 "hello\n"; }
        location /c { return 418 "teapot"; }
        location /v { return 200 "uri=$uri args=$args host=$host method=$request_method"; }
        location /e { return 404; }
        location /n { return 204; }
        "#,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello\n");
    assert_eq!(r.header("content-length"), Some("6"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = h.get("/c");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "teapot");
    assert_eq!(h.get("/v?a=1&b=2").text(), "uri=/v args=a=1&b=2 host=localhost method=GET");
    let r = h.get("/e");
    assert_eq!(r.status, 404);
    assert_contains(&r.text(), "<center><h1>404 Not Found</h1></center>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = h.get("/n");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

#[test]
fn return_redirects_set_location() {
    let h = Halo::server(
        r#"
        location /abs { return 301 http://example.com/new; }
        location /rel { return 302 /target?x=1; }
        location /url { return https://example.org/u; }
        location /see { return 303 "/other"; }
        "#,
    );
    let r = h.get("/abs");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://example.com/new"));
    assert_contains(&r.text(), "301 Moved Permanently");
    // A relative URI is made absolute from the Host and the listen port.
    let r = h.get("/rel");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/target?x=1", h.port).as_str()));
    // `return URL` is a 302.
    let r = h.get("/url");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://example.org/u"));
    let r = h.get("/see");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/other", h.port).as_str()));
}

#[test]
fn rewrite_flags_and_captures() {
    let h = Halo::server(
        r#"
        location /old/ { rewrite ^/old/(.*)$ /new/$1 last; return 500; }
        location /new/ { return 200 "new:$uri args:$args"; }
        location /b/ { rewrite ^/b/(.*)$ /files/$1 break; root html; }
        location /files/ { return 200 "should not be reached by break"; }
        location /r/ { rewrite ^/r/(\w+)$ /target/$1 redirect; }
        location /p/ { rewrite ^/p/(?<name>\w+)$ /target/$name permanent; }
        location /ext/ { rewrite ^ http://example.com$uri; }
        location /noargs/ { rewrite ^/noargs/(.*)$ /new/$1? last; }
        "#,
    );
    h.write_file("html/files/x.txt", "file x\n");
    let r = h.get("/old/abc?q=1");
    assert_eq!(r.status, 200);
    // The original arguments are kept.
    assert_eq!(r.text(), "new:/new/abc args:q=1");
    // break: stay in this location and serve /files/x.txt from its root.
    let r = h.get("/b/x.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "file x\n");
    let r = h.get("/r/abc");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/target/abc", h.port).as_str()));
    let r = h.get("/p/xyz");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/target/xyz", h.port).as_str()));
    let r = h.get("/ext/e");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.com/ext/e"));
    // A trailing "?" in the replacement drops the original arguments.
    assert_eq!(h.get("/noargs/z?q=1").text(), "new:/new/z args:");
}

#[test]
fn server_level_rewrite_runs_before_location_search() {
    let h = Halo::server(
        r#"
        rewrite ^/legacy/(.*)$ /modern/$1;
        location /modern/ { return 200 "modern:$uri"; }
        location /legacy/ { return 200 "legacy"; }
        "#,
    );
    assert_eq!(h.get("/legacy/x").text(), "modern:/modern/x");
}

#[test]
fn set_variables() {
    let h = Halo::server(
        r#"
        set $greeting "hello";
        location /s {
            set $name world;
            set $both "$greeting, ${name}!";
            return 200 "$both";
        }
        "#,
    );
    assert_eq!(h.get("/s").text(), "hello, world!");
}

#[test]
fn add_header_only_on_success_codes_unless_always() {
    let h = Halo::server(
        r#"
        add_header X-Server s;
        location /ok { add_header X-A yes; add_header X-B yes always; return 200 "ok"; }
        location /nf { add_header X-A yes; add_header X-B yes always; return 404; }
        location /red { add_header X-A yes; return 302 /ok; }
        location /err { add_header X-A yes; return 500; }
        location /inh { return 200 "inherits"; }
        "#,
    );
    let r = h.get("/ok");
    assert_eq!(r.header("x-a"), Some("yes"));
    assert_eq!(r.header("x-b"), Some("yes"));
    // add_header at a level is inherited only if the location has no add_header itself.
    assert_eq!(r.header("x-server"), None);
    assert_eq!(h.get("/inh").header("x-server"), Some("s"));
    let r = h.get("/nf");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-a"), None);
    assert_eq!(r.header("x-b"), Some("yes"));
    assert_eq!(h.get("/red").header("x-a"), Some("yes"));
    assert_eq!(h.get("/err").header("x-a"), None);
}

#[test]
fn error_page_to_uri_and_internal_locations() {
    let h = Halo::server(
        r#"
        root html;
        error_page 404 /errors/404.html;
        error_page 500 502 =200 /errors/fine.html;
        location /errors/ { internal; }
        location /boom { return 500; }
        "#,
    );
    h.write_file("html/errors/404.html", "custom not found\n");
    h.write_file("html/errors/fine.html", "all fine\n");
    let r = h.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "custom not found\n");
    // "=200" replaces the status.
    let r = h.get("/boom");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "all fine\n");
    // Internal locations are not reachable from outside (and the 404 page is then used).
    let r = h.get("/errors/fine.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "custom not found\n");
}

#[test]
fn internal_location_without_error_page_is_404() {
    let h = Halo::server(
        r#"
        location /private { internal; return 200 "secret"; }
        "#,
    );
    let r = h.get("/private");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("secret"));
}
