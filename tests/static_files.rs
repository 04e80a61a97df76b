//! Static files: root/alias, index, MIME types, validators, conditional and range requests,
//! HEAD, try_files. nginx is the oracle.

mod common;
use common::*;
use std::time::UNIX_EPOCH;

const BODY: &str = "0123456789abcdefghij\n"; // 21 bytes

/// A prefix with some files, and a server serving html/ with mime.types.
fn static_server(extra: &str) -> Halo {
    let p = Prefix::new();
    p.write_file("conf/mime.types", MIME_TYPES);
    p.write_file("html/index.html", "<p>home</p>\n");
    p.write_file("html/a.txt", BODY);
    p.write_file("html/style.css", "body{}\n");
    p.write_file("html/data.json", "{}\n");
    p.write_file("html/pic.png", b"\x89PNG\r\n\x1a\n");
    p.write_file("html/blob.unknownext", "??\n");
    p.write_file("html/dir/index.html", "<p>dir index</p>\n");
    p.write_file("html/noindex/file.txt", "x\n");
    p.write_file("aliased/f.txt", "from alias\n");
    p.write_file("html/fallback.html", "fallback\n");
    let conf = http_conf(&format!(
        r#"
    include mime.types;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{{{{PORT}}}};
        server_name localhost;
        root html;
        location /al/ {{ alias aliased/; }}
{extra}
    }}"#
    ));
    p.start(&conf)
}

fn file_etag(h: &Halo, rel: &str) -> String {
    let md = std::fs::metadata(h.path().join(rel)).unwrap();
    let mtime = md.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("\"{:x}-{:x}\"", mtime, md.len())
}

fn file_last_modified(h: &Halo, rel: &str) -> String {
    httpdate::fmt_http_date(std::fs::metadata(h.path().join(rel)).unwrap().modified().unwrap())
}

#[test]
fn serves_file_from_root_with_validators() {
    let h = static_server("");
    let r = h.get("/a.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BODY);
    assert_eq!(r.header("content-length"), Some("21"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // nginx's ETag is "<mtime hex>-<size hex>".
    assert_eq!(r.header("etag"), Some(file_etag(&h, "html/a.txt").as_str()));
    assert_eq!(r.header("last-modified"), Some(file_last_modified(&h, "html/a.txt").as_str()));
}

#[test]
fn alias_maps_location_prefix_to_directory() {
    let h = static_server("");
    let r = h.get("/al/f.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "from alias\n");
    // /al/a.txt is not under the alias directory.
    assert_eq!(h.get("/al/a.txt").status, 404);
}

#[test]
fn index_and_directory_redirect() {
    let h = static_server("");
    let r = h.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<p>home</p>\n");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(h.get("/dir/").text(), "<p>dir index</p>\n");
    let r = h.get("/dir");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/dir/", h.port).as_str()));
    // Directory without an index file and no autoindex: forbidden.
    let r = h.get("/noindex/");
    assert_eq!(r.status, 403);
    assert_contains(&r.text(), "<center><h1>403 Forbidden</h1></center>");
}

#[test]
fn mime_types_from_extension() {
    let h = static_server("");
    for (path, ty) in [
        ("/style.css", "text/css"),
        ("/data.json", "application/json"),
        ("/pic.png", "image/png"),
        ("/blob.unknownext", "application/octet-stream"),
    ] {
        let r = h.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
    }
    assert_eq!(h.get("/pic.png").body, b"\x89PNG\r\n\x1a\n");
}

#[test]
fn missing_file_is_404() {
    let h = static_server("");
    let r = h.get("/nope.txt");
    assert_eq!(r.status, 404);
    assert_contains(&r.text(), "<center><h1>404 Not Found</h1></center>");
    // A file name used as a directory.
    assert_eq!(h.get("/a.txt/x").status, 404);
}

#[test]
fn path_traversal_is_refused() {
    let h = static_server("");
    h.write_file("secret.txt", "secret\n");
    let r = h.get_response("GET /../secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = h.get("/dir/../a.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BODY);
    // Percent-encoded dots are decoded before normalisation.
    let r = h.get_response("GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn percent_encoded_path() {
    let h = static_server("");
    h.write_file("html/with space.txt", "spaced\n");
    assert_eq!(h.get("/with%20space.txt").text(), "spaced\n");
}

#[test]
fn if_modified_since_gives_304() {
    let h = static_server("");
    let lm = file_last_modified(&h, "html/a.txt");
    let r = h.get_response(format!(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nIf-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(file_etag(&h, "html/a.txt").as_str()));
    // `if_modified_since exact` (the default): another date means the full file.
    let r = h.get_response(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nIf-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BODY);
}

#[test]
fn if_none_match_gives_304() {
    let h = static_server("");
    let etag = file_etag(&h, "html/a.txt");
    for inm in [etag.clone(), format!("\"other\", {etag}"), "*".to_string()] {
        let r = h.get_response(format!(
            "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: {inm}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
    }
    let r = h.get_response("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"nope\"\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}

fn range(h: &Halo, spec: &str) -> Response {
    h.get_response(format!("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nRange: {spec}\r\nConnection: close\r\n\r\n"))
}

#[test]
fn single_byte_ranges() {
    let h = static_server("");
    let r = range(&h, "bytes=0-4");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "01234");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/21"));
    assert_eq!(r.header("content-length"), Some("5"));
    let r = range(&h, "bytes=10-");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "abcdefghij\n");
    assert_eq!(r.header("content-range"), Some("bytes 10-20/21"));
    let r = range(&h, "bytes=-3");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "ij\n");
    assert_eq!(r.header("content-range"), Some("bytes 18-20/21"));
    // An end past the file is clamped.
    let r = range(&h, "bytes=15-1000");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 15-20/21"));
}

#[test]
fn unsatisfiable_range_is_416() {
    let h = static_server("");
    let r = range(&h, "bytes=100-200");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */21"));
}

#[test]
fn invalid_range_syntax_is_ignored() {
    let h = static_server("");
    let r = range(&h, "items=0-4");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BODY);
}

#[test]
fn if_range_with_wrong_etag_gives_full_file() {
    let h = static_server("");
    let r = h.get_response(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-4\r\nIf-Range: \"stale\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BODY);
    let etag = file_etag(&h, "html/a.txt");
    let r = h.get_response(format!(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-4\r\nIf-Range: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 206);
}

#[test]
fn head_sends_headers_without_body() {
    let h = static_server("");
    let mut c = h.connect();
    c.send("HEAD /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let raw = c.read_to_close();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let end = text.find("\r\n\r\n").expect("no header end") + 4;
    assert_eq!(end, raw.len(), "HEAD response has a body: {text:?}");
    let r = parse_all(&raw, true, true).remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("21"));
    assert_eq!(r.header("etag"), Some(file_etag(&h, "html/a.txt").as_str()));
}

#[test]
fn try_files_falls_through_to_uri_and_code() {
    let h = static_server(
        r#"
        location /tf/ { try_files $uri $uri/ /fallback.html; }
        location /tf404/ { try_files $uri =404; }
        location /tfdir { try_files $uri $uri/ =404; }
        "#,
    );
    h.write_file("html/tf/real.txt", "real\n");
    h.write_file("html/tf/sub/index.html", "sub index\n");
    h.write_file("html/tfdir/index.html", "tfdir index\n");
    assert_eq!(h.get("/tf/real.txt").text(), "real\n");
    let r = h.get("/tf/missing");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "fallback\n");
    // $uri/ matches the directory, whose index is then served.
    assert_eq!(h.get("/tf/sub/").text(), "sub index\n");
    let r = h.get("/tf404/missing");
    assert_eq!(r.status, 404);
    assert_contains(&r.text(), "404 Not Found");
    // A directory through $uri/ without trailing slash: redirect to add it.
    let r = h.get("/tfdir");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/tfdir/", h.port).as_str()));
}

#[test]
fn post_to_static_file_is_405() {
    let h = static_server("");
    let r = h.get_response("POST /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
}

/// Without `include mime.types` a location knows nginx's built-in types only
/// (html, gif, jpg): a `.css` file is `default_type`, text/plain.
#[test]
fn without_mime_types_only_the_built_in_types() {
    let p = Prefix::new();
    for f in ["a.css", "a.html", "a.gif", "a.jpg", "a.js"] {
        p.write_file(&format!("html/{f}"), "x");
    }
    let h = p.start(&server_conf("        location / { root html; }"));
    for (f, t) in [("a.css", "text/plain"), ("a.js", "text/plain"), ("a.html", "text/html"), ("a.gif", "image/gif"), ("a.jpg", "image/jpeg")] {
        assert_eq!(h.get(&format!("/{f}")).header("content-type"), Some(t), "{f}");
    }
}
