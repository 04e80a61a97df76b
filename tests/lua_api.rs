//! The `ngx.*` API of lualib/ over the core's C ABI, in a real VM from
//! `halo_core::lua::new_vm`: results, argument errors, and what reaches the
//! error log. (The test binary exports `halo_ffi_*` through build.rs, as halo does.)

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Halo;

use halo_core::lua::mlua::{FromLuaMulti, Lua};
use halo_core::lua::new_vm;

fn vm() -> Lua {
    new_vm(Path::new("/srv/halo"), None, None).unwrap()
}

fn eval<T: FromLuaMulti>(lua: &Lua, src: &str) -> T {
    lua.load(src).set_name("=test").eval().unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// The message of the error `src` raises.
fn error_of(lua: &Lua, src: &str) -> String {
    lua.load(src).set_name("=test").exec().expect_err(src).to_string()
}

#[test]
fn time_functions() {
    let lua = vm();
    let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let (t, now): (f64, f64) = eval(&lua, "ngx.update_time() return ngx.time(), ngx.now()");
    assert!((t - sys).abs() < 2.0, "ngx.time() {t} vs {sys}");
    assert_eq!(t, now.floor());
    assert!(now >= t && now < t + 1.0);
    let is_int: bool = eval(&lua, "return ngx.time() % 1 == 0");
    assert!(is_int);

    assert_eq!(eval::<String>(&lua, "return ngx.http_time(0)"), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(eval::<String>(&lua, "return ngx.http_time(1290079655)"), "Thu, 18 Nov 2010 11:27:35 GMT");
    assert_eq!(eval::<String>(&lua, "return ngx.cookie_time(1290079655)"), "Thu, 18-Nov-10 11:27:35 GMT");
    assert_eq!(eval::<f64>(&lua, "return ngx.parse_http_time('Thu, 01 Jan 1970 00:00:00 GMT')"), 0.0);
    assert_eq!(
        eval::<f64>(&lua, "return ngx.parse_http_time(ngx.http_time(1290079655))"),
        1_290_079_655.0
    );
    let none: bool = eval(&lua, "return ngx.parse_http_time('not a date') == nil");
    assert!(none);

    let (today, local, utc): (String, String, String) =
        eval(&lua, "return ngx.today(), ngx.localtime(), ngx.utctime()");
    assert_eq!(today.len(), 10, "{today}");
    assert!(local.starts_with(&today), "{local} / {today}");
    assert_eq!((local.len(), utc.len()), (19, 19), "{local} / {utc}");
    // utctime agrees with ngx.time() (same cache).
    let same: bool = eval(
        &lua,
        r#"
        local y, mo, d, h, mi, s = ngx.utctime():match("^(%d+)-(%d+)-(%d+) (%d+):(%d+):(%d+)$")
        local t = ngx.time()
        return os.date("!%Y-%m-%d %H:%M:%S", t) == ngx.utctime() and y ~= nil
        "#,
    );
    assert!(same);
}

#[test]
fn time_argument_errors_name_the_argument_and_the_caller() {
    let lua = vm();
    let e = error_of(&lua, "ngx.http_time('x')");
    assert!(e.contains("test:1: bad argument #1 to 'http_time' (number expected, got string)"), "{e}");
    let e = error_of(&lua, "ngx.cookie_time()");
    assert!(e.contains("bad argument #1 to 'cookie_time' (number expected, got nil)"), "{e}");
    let e = error_of(&lua, "local x = 1\nngx.parse_http_time(42)");
    assert!(e.contains("test:2: bad argument #1 to 'parse_http_time' (string expected, got number)"), "{e}");
}

#[test]
fn worker_and_config() {
    let lua = vm();
    // Defaults before the core sets anything: worker 0 of 1.
    let (id, count, pid, exiting): (Option<i64>, i64, i64, bool) =
        eval(&lua, "return ngx.worker.id(), ngx.worker.count(), ngx.worker.pid(), ngx.worker.exiting()");
    assert_eq!((id, count, pid, exiting), (Some(0), 1, std::process::id() as i64, false));

    halo_core::ffi::worker::set_worker(Some(2), 4);
    halo_core::ffi::worker::set_exiting(true);
    let (id, count, exiting): (Option<i64>, i64, bool) =
        eval(&lua, "return ngx.worker.id(), ngx.worker.count(), ngx.worker.exiting()");
    assert_eq!((id, count, exiting), (Some(2), 4, true));
    halo_core::ffi::worker::set_worker(None, 4);
    let id: Option<i64> = eval(&lua, "return ngx.worker.id()");
    assert_eq!(id, None, "nil outside a worker");

    halo_core::ffi::config::set_prefix(Path::new("/srv/halo"));
    let (prefix, subsystem, debug, nginx, ngx_lua): (String, String, bool, i64, i64) = eval(
        &lua,
        "local c = ngx.config return c.prefix(), c.subsystem, c.debug, c.nginx_version, c.ngx_lua_version",
    );
    assert_eq!(prefix, "/srv/halo/");
    assert_eq!((subsystem.as_str(), debug), ("http", false));
    assert_eq!((nginx, ngx_lua), (1_027_001, 10_027));
}

#[test]
fn ngx_table_skeleton() {
    let lua = vm();
    let ok: bool = eval(
        &lua,
        r#"
        assert(ngx.OK == 0 and ngx.ERROR == -1 and ngx.AGAIN == -2 and ngx.DONE == -4 and ngx.DECLINED == -5)
        assert(ngx.HTTP_OK == 200 and ngx.HTTP_NOT_FOUND == 404 and ngx.HTTP_MOVED_TEMPORARILY == 302)
        assert(ngx.HTTP_FOUND == 302 and ngx.HTTP_INTERNAL_SERVER_ERROR == 500 and ngx.HTTP_CLOSE == 444)
        assert(ngx.HTTP_GET == 2 and ngx.HTTP_POST == 8 and ngx.HTTP_TRACE == 0x8000)
        assert(ngx.STDERR == 0 and ngx.EMERG == 1 and ngx.ERR == 4 and ngx.NOTICE == 6 and ngx.DEBUG == 8)
        assert(type(ngx.null) == "userdata" and ngx.null ~= nil)
        assert(require("ngx") == ngx)
        -- resty.core is already loaded; requiring it again is harmless.
        assert(require("resty.core").version == require("resty.core.base").version)
        return true
        "#,
    );
    assert!(ok);
}

#[test]
fn package_path_from_directives() {
    let lua = new_vm(Path::new("/srv/halo"), Some("$prefix/lua/?.lua;;"), Some("${prefix}lib/?.so")).unwrap();
    let (path, cpath): (String, String) = eval(&lua, "return package.path, package.cpath");
    assert!(path.starts_with("/srv/halo//lua/?.lua;") && path.len() > 30, "{path}");
    assert_eq!(cpath, "/srv/halo/lib/?.so");
    // A user module on the path loads; embedded modules still win over files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("resty/core")).unwrap();
    std::fs::write(dir.path().join("mymod.lua"), "return { answer = 42 }").unwrap();
    std::fs::write(dir.path().join("resty/core/base.lua"), "return 'shadowed'").unwrap();
    let lua = new_vm(dir.path(), Some("$prefix?.lua;;"), None).unwrap();
    let (answer, base): (i64, String) =
        eval(&lua, "return require('mymod').answer, type(require('resty.core.base'))");
    assert_eq!((answer, base.as_str()), (42, "table"));
}

/// ngx.log and print in the error log; one test, as the log is process-wide.
#[test]
fn log_and_print() {
    use halo_core::log::{error, Level};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    error::init(&path, Level::Info).unwrap();
    let lua = vm();
    lua.load(
        r#"local function greet(who)
    ngx.log(ngx.ERR, "hello ", who, " ", 1.5, " ", nil, " ", true, " ", false, " ", ngx.null, " ",
            setmetatable({}, { __tostring = function() return "T" end }))
end
greet("world")
print("printed ", 42)
ngx.log(ngx.DEBUG, "filtered out")
ngx.log(ngx.WARN)
"#,
    )
    .set_name("@/some/dir/test.lua")
    .exec()
    .unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("[error] ")
            && lines[0].ends_with(": [lua] test.lua:2: greet(): hello world 1.5 nil true false null T"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("[notice] ") && lines[1].ends_with(": [lua] test.lua:6: printed 42"), "{}", lines[1]);
    assert!(lines[2].contains("[warn] ") && lines[2].ends_with(": [lua] test.lua:8: "), "{}", lines[2]);

    let e = error_of(&lua, "ngx.log(ngx.ERR, {})");
    assert!(e.contains("test:1: bad argument #1 to 'log' (expected table to have __tostring metamethod)"), "{e}");
    let e = error_of(&lua, "ngx.log(ngx.ERR, 'a', print)");
    assert!(e.contains("bad argument #2 to 'log' (string, number, boolean, or nil expected, got function)"), "{e}");
    let e = error_of(&lua, "print(coroutine.create(print))");
    assert!(e.contains("bad argument #1 to 'print' (string, number, boolean, or nil expected, got thread)"), "{e}");
    let e = error_of(&lua, "ngx.log(9, 'x')");
    assert!(e.contains("bad argument #1 to 'log' (bad log level: 9)"), "{e}");
    let e = error_of(&lua, "ngx.log('x')");
    assert!(e.contains("bad argument #1 to 'log' (number expected, got string)"), "{e}");
    // Errors write nothing.
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    error::init(Path::new("stderr"), Level::Notice).unwrap();
}

/// ngx.var reads bytes, not text: $binary_remote_addr (4 bytes for an IPv4
/// client, NULs included) and $request_body byte for byte.
#[test]
fn binary_variables_through_ngx_var() {
    let h = Halo::server(
        r#"
        location = /addr { content_by_lua_block {
            local b = ngx.var.binary_remote_addr
            local ok, err = pcall(function() ngx.var.binary_remote_addr = "x" end)
            ngx.say(#b, " ", table.concat({ string.byte(b, 1, -1) }, ","), " ", ngx.var.remote_addr, " ",
                    ok, " ", err:match("not changeable") ~= nil)
        } }
        location = /body { content_by_lua_block {
            ngx.req.read_body()
            local v = ngx.var.request_body
            ngx.say(#v, " ", table.concat({ string.byte(v, 1, -1) }, ","), " ", v == ngx.req.get_body_data())
        } }"#,
    );
    let r = h.get("/addr");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "4 127,0,0,1 127.0.0.1 false true\n");
    let mut req = b"POST /body HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 4\r\n\r\n".to_vec();
    req.extend_from_slice(&[0, 0xff, b'a', 0]);
    assert_eq!(h.get_response(req).text(), "4 0,255,97,0 true\n");
}

/// OpenResty: an error after the response head went out cannot become a
/// 500; the connection is closed instead. Here ngx.flush sent the head and a
/// chunk: the body stays cut.
#[test]
fn error_after_output_keeps_the_response_and_closes() {
    let h = Halo::server(
        r#"
        location = /cut { content_by_lua_block {
            ngx.status = 201
            ngx.header["X-Before"] = "kept"
            ngx.say("partial")
            ngx.flush(true)
            error("late boom")
        } }"#,
    );
    let mut c = h.connect();
    c.send("GET /cut HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // ngx.flush sent the head and the first chunk; the error cuts the body:
    // no last chunk, then the close (as OpenResty).
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.starts_with("HTTP/1.1 201 Created\r\n"), "{raw}\n{}", h.logs());
    assert!(raw.contains("\r\nX-Before: kept\r\n"), "{raw}");
    assert!(raw.contains("\r\nTransfer-Encoding: chunked\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n8\r\npartial\n\r\n"), "the body is cut, not ended: {raw:?}");
    assert!(h.wait_log("logs/error.log", "late boom", Duration::from_secs(2)), "{}", h.error_log());
}

/// Output not flushed yet is buffered: on an error, the status, headers and
/// body produced so far go out (with their own Content-Length), then the close.
#[test]
fn error_after_buffered_output_sends_the_part_and_closes() {
    let h = Halo::server(
        r#"
        location = /part { content_by_lua_block {
            ngx.status = 201
            ngx.header["X-Before"] = "kept"
            ngx.say("partial")
            error("late boom")
        } }"#,
    );
    let mut c = h.connect();
    c.send("GET /part HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.starts_with("HTTP/1.1 201 Created\r\n"), "{raw}\n{}", h.logs());
    assert!(raw.contains("\r\nX-Before: kept\r\n"), "{raw}");
    assert!(raw.contains("\r\nContent-Length: 8\r\n"), "{raw}");
    assert!(raw.contains("\r\nConnection: close\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\npartial\n"), "{raw:?}");
    assert!(h.wait_log("logs/error.log", "late boom", Duration::from_secs(2)), "{}", h.error_log());
}

/// The same after ngx.send_headers() with no body yet: OpenResty has sent
/// the head, so the client gets it (not a 500 page) and then a close.
#[test]
fn error_after_send_headers_keeps_the_head_and_closes() {
    let h = Halo::server(
        r#"
        location = /head { content_by_lua_block {
            ngx.status = 202
            ngx.header["X-Sent"] = "yes"
            ngx.send_headers()
            error("boom after head")
        } }"#,
    );
    let mut c = h.connect();
    c.send("GET /head HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 202, "{}", h.logs());
    assert_eq!(r.header("x-sent"), Some("yes"));
    assert!(c.closed_within(Duration::from_secs(2)), "connection kept open after the error");
}
