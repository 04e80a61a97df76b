//! The request runtime: one request state that every phase and handler
//! changes (headers set by access_by_lua reach a static file's response),
//! Lua phases that run again in the location an internal redirect lands in,
//! and Lua contexts whose handles name one run, valid across its waits and
//! nothing after (halo's C ABI: those tests are halo-only).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn headers_from_access_by_lua_reach_a_static_response() {
    let h = Halo::server(
        r#"
        location /s {
            root html;
            access_by_lua_block { ngx.header["X-Access"] = "yes" ngx.status = 299 }
        }"#,
    );
    h.write_file("html/s/a.txt", "file\n");
    let r = h.get("/s/a.txt");
    assert_eq!(r.status, 200, "the static handler sets its own status");
    assert_eq!(r.header("x-access"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "file\n");
}

#[test]
fn lua_phases_run_in_the_location_an_internal_redirect_reaches() {
    let h = Halo::server(
        r#"
        location /a {
            rewrite_by_lua_block { ngx.req.set_header("X-Seen", "a") }
            try_files /nope /b;
        }
        location /b {
            rewrite_by_lua_block { ngx.req.set_header("X-Seen", (ngx.var.http_x_seen or "") .. ",b-rewrite") }
            access_by_lua_block { ngx.req.set_header("X-Seen", ngx.var.http_x_seen .. ",b-access") }
            content_by_lua_block { ngx.say(ngx.var.uri, " ", ngx.var.http_x_seen) }
        }
        location /e {
            rewrite_by_lua_block { ngx.exec("/b") }
        }"#,
    );
    assert_eq!(h.get("/a").text(), "/b a,b-rewrite,b-access\n");
    assert_eq!(h.get("/e").text(), "/b ,b-rewrite,b-access\n");
}

#[test]
fn body_filter_sees_each_flushed_chunk_then_the_end() {
    let h = Halo::server(
        r#"
        location /f {
            content_by_lua_block {
                for i = 1, 3 do ngx.print("c", i) ngx.flush(true) end
            }
            body_filter_by_lua_block {
                local chunk, eof = ngx.arg[1], ngx.arg[2]
                if chunk ~= "" then ngx.arg[1] = "[" .. chunk .. "]" end
                if eof then ngx.arg[1] = ngx.arg[1] .. "<eof>" end
            }
        }"#,
    );
    let mut c = h.connect();
    c.send("GET /f HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.contains("Transfer-Encoding: chunked"), "{raw}");
    // Each flush is its own chunk, filtered on its own.
    for part in ["4\r\n[c1]\r\n", "4\r\n[c2]\r\n", "4\r\n[c3]\r\n", "5\r\n<eof>\r\n0\r\n\r\n"] {
        assert!(raw.contains(part), "{part:?} in {raw:?}");
    }
}

/// halo's C ABI: a handle names one run of a handler. It stays the same
/// across the run's waits; kept past the run, or used by another request
/// while its own waits, it names nothing (HALO_FFI_NO_REQUEST, -100).
#[test]
fn context_handles_outlive_a_resume_but_not_their_run() {
    if is_nginx() {
        return;
    }
    let h = Halo::server(
        r#"
        location /keep {
            content_by_lua_block {
                local C = require("ffi").C
                local r = C.halo_ffi_request_current()
                ngx.sleep(0.01)
                ngx.say(tostring(C.halo_ffi_request_current() == r), " ", C.halo_ffi_request_get_phase(r))
                rawset(_G, "saved_handle", r)
            }
        }
        location /hold {
            content_by_lua_block {
                rawset(_G, "saved_handle", require("ffi").C.halo_ffi_request_current())
                ngx.sleep(0.5)
                ngx.say("held")
            }
        }
        location /use {
            content_by_lua_block {
                local C = require("ffi").C
                ngx.say(C.halo_ffi_request_get_phase(saved_handle), " ", C.halo_ffi_request_get_phase(C.halo_ffi_request_current()))
            }
        }"#,
    );
    assert_eq!(h.get("/keep").text(), "true 3\n");
    assert_eq!(h.get("/use").text(), "-100 3\n", "a handle kept past its run");
    let mut held = h.connect();
    held.send("GET /hold HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(h.get("/use").text(), "-100 3\n", "another request's handle while that one waits");
    let raw = String::from_utf8_lossy(&held.read_to_close()).into_owned();
    assert!(raw.ends_with("held\n"), "{raw}");
}

/// The one response state is what log_by_lua sees: ngx.status is the status sent.
#[test]
fn log_by_lua_reads_the_status_sent() {
    let h = Halo::server(
        r#"
        location /l {
            content_by_lua_block { ngx.status = 201 ngx.say("made") }
            log_by_lua_block { ngx.log(ngx.ERR, "logged status=", ngx.status) }
        }"#,
    );
    assert_eq!(h.get("/l").status, 201);
    assert!(h.wait_log("logs/error.log", "logged status=201", Duration::from_secs(2)), "{}", h.error_log());
}

#[test]
fn header_values_from_lua_reach_the_wire_as_bytes() {
    // nginx copies a value's bytes as they are (only CR/LF are escaped by
    // lua-nginx-module): a Latin-1 or binary value is not re-encoded.
    let h = Halo::server(
        r#"
        location /b {
            content_by_lua_block {
                ngx.header["X-Latin1"] = "caf\xe9"
                ngx.header["X-Seen"] = ngx.header["X-Latin1"] == "caf\xe9" and "same" or "changed"
                ngx.say("ok")
            }
        }"#,
    );
    let raw = h.request("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let has = |line: &[u8]| raw.windows(line.len()).any(|w| w == line);
    assert!(has(b"\r\nX-Latin1: caf\xe9\r\n"), "{}", String::from_utf8_lossy(&raw));
    assert!(has(b"\r\nX-Seen: same\r\n"), "{}", String::from_utf8_lossy(&raw));
}
