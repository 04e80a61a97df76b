//! Rewriting the request body from Lua: ngx.req.set_body_data, set_body_file, init_body /
//! append_body / finish_body. The new body is what get_body_data, get_body_file,
//! $request_body, get_post_args and subrequests see, and the Content-Length request header
//! follows it; a built body goes to a temp file past its buffer. Errors and phases as
//! lua-nginx-module has them (it raises for misuse and for files it cannot open, and allows
//! the calls in every request phase: only timers have no request body).

mod common;
use common::*;
use std::time::Duration;

const CONF: &str = r#"
        client_body_temp_path body_temp;
        client_body_buffer_size 1k;
        location = /set {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.req.set_body_data("a=1&b=hello")
                local args = ngx.req.get_post_args()
                ngx.say(ngx.req.get_body_data(), " ", ngx.var.request_body, " b=", args.b,
                        " cl=", ngx.req.get_headers()["content-length"], " ", ngx.var.http_content_length,
                        " ", ngx.var.content_length, " file=", tostring(ngx.req.get_body_file()))
                ngx.req.set_body_data(12)
                ngx.say(ngx.req.get_body_data(), " cl=", ngx.req.get_headers()["content-length"])
                ngx.req.set_body_data("")
                ngx.say(tostring(ngx.req.get_body_data()), " ", tostring(ngx.var.request_body),
                        " cl=", ngx.req.get_headers()["content-length"])
            }
        }
        location = /phases {
            rewrite_by_lua_block { ngx.req.read_body() ngx.req.set_body_data("from rewrite") }
            access_by_lua_block { ngx.req.set_body_data(ngx.req.get_body_data() .. "+access") }
            content_by_lua_block { ngx.say(ngx.req.get_body_data(), " cl=", ngx.req.get_headers()["content-length"]) }
        }
        location = /sub {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.req.set_body_data("new body")
                local r = ngx.location.capture("/echo", { method = ngx.HTTP_GET, always_forward_body = true })
                ngx.print(r.body)
                r = ngx.location.capture("/echo", { method = ngx.HTTP_POST })
                ngx.print(r.body)
                r = ngx.location.capture("/echo", { method = ngx.HTTP_GET })
                ngx.print(r.body)
            }
        }
        location = /echo {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.say(ngx.req.get_method(), " ", tostring(ngx.req.get_body_data()),
                        " cl=", tostring(ngx.req.get_headers()["content-length"]))
            }
        }
        location = /file {
            content_by_lua_block {
                ngx.req.read_body()
                local name = ngx.config.prefix() .. ngx.var.arg_name
                ngx.req.set_body_file(name, ngx.var.arg_clean == "1")
                local args, err = ngx.req.get_post_args()
                ngx.say(tostring(ngx.req.get_body_data()), " ", ngx.req.get_body_file() == name,
                        " cl=", ngx.req.get_headers()["content-length"], " ", tostring(ngx.var.request_body),
                        " ", tostring(args), " ", err)
                ngx.req.set_body_data("replaced")
                ngx.say(ngx.req.get_body_data(), " ", tostring(ngx.req.get_body_file()))
            }
        }
        location = /build {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.req.init_body()
                ngx.req.append_body("hello ")
                ngx.req.append_body("world")
                ngx.req.finish_body()
                ngx.say(ngx.req.get_body_data(), " ", tostring(ngx.req.get_body_file()),
                        " cl=", ngx.req.get_headers()["content-length"])
                local n, size = tonumber(ngx.var.arg_n), tonumber(ngx.var.arg_size)
                if size then ngx.req.init_body(size) else ngx.req.init_body() end
                for i = 1, n do
                    ngx.req.append_body(string.format("%09d\n", i))
                end
                ngx.req.finish_body()
                local file, all = ngx.req.get_body_file(), ngx.req.get_body_data()
                if file then
                    local f = assert(io.open(file, "rb"))
                    all = f:read("*a")
                    f:close()
                end
                local want = {}
                for i = 1, n do
                    want[i] = string.format("%09d\n", i)
                end
                local rb = ngx.var.request_body
                ngx.say(ngx.req.get_body_data() and "data" or "nil", " ", #all, " ", all == table.concat(want),
                        " cl=", ngx.req.get_headers()["content-length"], " ", rb and #rb or "nil",
                        " in_temp=", file and file:sub(1, #ngx.config.prefix() + 10) == ngx.config.prefix() .. "body_temp/")
                ngx.say(tostring(file))
            }
        }
        location = /errors {
            content_by_lua_block {
                local function try(f, ...)
                    local ok, err = pcall(f, ...)
                    if ok then
                        ngx.say("ok")
                    else
                        ngx.say(err:find("content_by_lua", 1, true) and "at caller: " or "", (err:gsub("^.-:%d+: ", "")))
                    end
                end
                try(function() ngx.req.set_body_data("x") end)
                try(function() ngx.req.set_body_file("/etc/hostname") end)
                try(function() ngx.req.init_body() end)
                try(function() ngx.req.append_body("x") end)
                try(function() ngx.req.finish_body() end)
                ngx.req.read_body()
                try(function() ngx.req.append_body("x") end)
                try(function() ngx.req.finish_body() end)
                try(function() ngx.req.set_body_data({}) end)
                try(function() ngx.req.set_body_data(nil) end)
                try(function() ngx.req.set_body_data() end)
                try(function() ngx.req.set_body_data("a", "b") end)
                try(function() ngx.req.append_body(true) end)
                try(function() ngx.req.init_body("x") end)
                try(function() ngx.req.init_body(-1) end)
                try(function() ngx.req.init_body(1, 2) end)
                try(function() ngx.req.finish_body(1) end)
                try(function() ngx.req.set_body_file({}) end)
                try(function() ngx.req.set_body_file("/etc/hostname", 1) end)
                ngx.say(ngx.req.get_body_data())
                try(function() ngx.req.set_body_file(ngx.config.prefix() .. "no-such-file") end)
            }
        }
        location = /log {
            content_by_lua_block { ngx.req.read_body() ngx.say("content") }
            log_by_lua_block {
                ngx.req.set_body_data("from log")
                ngx.log(ngx.ERR, "log: ", ngx.req.get_body_data(), " cl=", ngx.req.get_headers()["content-length"])
            }
        }
        location = /hf {
            content_by_lua_block { ngx.say("unread") }
            header_filter_by_lua_block {
                local ok, err = pcall(ngx.req.init_body)
                ngx.log(ngx.ERR, "header_filter: ", tostring(err))
            }
        }
        location = /timer {
            content_by_lua_block {
                ngx.timer.at(0, function()
                    local ok, err = pcall(ngx.req.set_body_data, "x")
                    local ok2, err2 = pcall(ngx.req.init_body)
                    ngx.log(ngx.ERR, "timer: ", err, " / ", err2)
                end)
                ngx.say("timer")
            }
        }
"#;

fn post(h: &Halo, path: &str, body: &[u8]) -> Response {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    h.get_response(raw)
}

#[test]
fn set_body_data_replaces_the_body_and_its_length() {
    let h = Halo::server(CONF);
    assert_eq!(
        post(&h, "/set", b"orig=1").text(),
        "a=1&b=hello a=1&b=hello b=hello cl=11 11 11 file=nil\n12 cl=2\nnil nil cl=0\n"
    );
    // A request without a body has an empty one once read: it may be replaced too.
    assert_eq!(h.get("/set").text(), "a=1&b=hello a=1&b=hello b=hello cl=11 11 11 file=nil\n12 cl=2\nnil nil cl=0\n");
    // A body read in rewrite, replaced there and in access, is what content sees.
    assert_eq!(post(&h, "/phases", b"orig").text(), "from rewrite+access cl=19\n");
    // Subrequests get the new body: with always_forward_body, for POST, not for a GET.
    assert_eq!(post(&h, "/sub", b"original").text(), "GET new body cl=8\nPOST new body cl=8\nGET nil cl=nil\n");
}

#[test]
fn set_body_file_uses_the_file_and_auto_clean_removes_it() {
    let h = Halo::server(CONF);
    h.write_file("kept.txt", "a=1&b=kept");
    h.write_file("clean.txt", "a=1&b=clean");
    let want = "nil true cl=10 nil nil request body in temp file not supported\nreplaced nil\n";
    assert_eq!(post(&h, "/file?name=kept.txt", b"orig").text(), want);
    // Without auto_clean the file stays (replacing the body does not remove it either).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read(h.path().join("kept.txt")).unwrap(), b"a=1&b=kept");
    let want = "nil true cl=11 nil nil request body in temp file not supported\nreplaced nil\n";
    assert_eq!(post(&h, "/file?name=clean.txt&clean=1", b"orig").text(), want);
    let clean = h.path().join("clean.txt");
    assert!(wait_until(Duration::from_secs(2), || !clean.exists()), "{} left behind", clean.display());
}

#[test]
fn init_append_finish_build_a_body_in_memory_then_in_a_temp_file() {
    let h = Halo::server(CONF);
    // 300 lines of 10 bytes: past client_body_buffer_size (1k), so in a temp file.
    let r = post(&h, "/build?n=300", b"orig");
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("hello world nil cl=11"), "{text}");
    assert_eq!(lines.next(), Some("nil 3000 true cl=3000 nil in_temp=true"), "{text}");
    let file = lines.next().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(2), || !std::path::Path::new(&file).exists()), "{file} left behind");
    // An explicit buffer size: 5 bytes is too small for one line.
    let text = post(&h, "/build?n=2&size=5", b"").text();
    assert!(text.starts_with("hello world nil cl=11\nnil 20 true cl=20 nil in_temp=true\n"), "{text}");
    // Size 0: a file from the first byte; a large buffer keeps a large body in memory.
    let text = post(&h, "/build?n=1&size=0", b"").text();
    assert!(text.starts_with("hello world nil cl=11\nnil 10 true cl=10 nil in_temp=true\n"), "{text}");
    let text = h.get("/build?n=300&size=4000").text();
    assert_eq!(text, "hello world nil cl=11\ndata 3000 true cl=3000 3000 in_temp=nil\nnil\n");
}

#[test]
fn misuse_raises_lua_nginx_modules_errors() {
    let h = Halo::server(CONF);
    let r = post(&h, "/errors", b"orig");
    let want = [
        "at caller: request body not read yet",
        "at caller: request body not read yet",
        "at caller: request body not read yet",
        "at caller: request_body not initialized",
        "at caller: request_body not initialized",
        "at caller: request_body not initialized",
        "at caller: request_body not initialized",
        "at caller: bad argument #1 to 'set_body_data' (string expected, got table)",
        "at caller: bad argument #1 to 'set_body_data' (string expected, got nil)",
        "at caller: expecting 1 arguments but seen 0",
        "at caller: expecting 1 arguments but seen 2",
        "at caller: bad argument #1 to 'append_body' (string expected, got boolean)",
        "at caller: bad argument #1 to 'init_body' (number expected, got string)",
        "at caller: bad size argument: -1",
        "at caller: expecting 0 or 1 argument but seen 2",
        "at caller: expecting 0 argument but seen 1",
        "at caller: bad argument #1 to 'set_body_file' (string expected, got table)",
        "at caller: bad argument #2 to 'set_body_file' (boolean expected, got number)",
        // The failed calls left the body as it was.
        "orig",
        &format!("at caller: stat() \"{}\" failed", h.path().join("no-such-file").display()),
    ];
    assert_eq!(r.text(), want.join("\n") + "\n");
}

#[test]
fn other_phases_and_timers() {
    let h = Halo::server(CONF);
    // lua-nginx-module checks no phase for these: log_by_lua may replace the body (a read one),
    // header_filter_by_lua sees a body that was never read as not read.
    assert_eq!(h.get("/log").text(), "content\n");
    assert!(h.wait_log("logs/error.log", "log: from log cl=8", Duration::from_secs(2)), "{}", h.error_log());
    assert_eq!(post(&h, "/hf", b"never read").text(), "unread\n");
    assert!(h.wait_log("logs/error.log", "header_filter: request body not read yet", Duration::from_secs(2)), "{}", h.error_log());
    // A timer has no request.
    assert_eq!(h.get("/timer").text(), "timer\n");
    let want = "timer: API disabled in the current context / API disabled in the current context";
    assert!(h.wait_log("logs/error.log", want, Duration::from_secs(2)), "{}", h.error_log());
}
