//! lua-resty-core's `ngx.*` modules (ngx.errlog, ngx.process, ngx.resp,
//! ngx.req), resty.core.base's helpers, the magic fields, and the clear
//! error for OpenResty API halo does not have yet, through the real server.
//! All but the "not supported by halo yet" tests also pass on nginx.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn errlog_raw_log_and_levels() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            local errlog = require "ngx.errlog"
            ngx.say(select("#", errlog.raw_log(ngx.WARN, "raw message 42")))
            ngx.say(errlog.get_sys_filter_level() == ngx.INFO)
            ngx.say(pcall(errlog.raw_log, "x", "m"))
            ngx.say(pcall(errlog.raw_log, 100, "m"))
            ngx.say(pcall(errlog.raw_log, ngx.WARN, 3))
            local ok, err = errlog.set_filter_level()
            ngx.say(tostring(ok), " ", err)
            ok, err = errlog.get_logs()
            ngx.say(tostring(ok), " ", type(err))
            ok, err = errlog.set_filter_level(ngx.WARN)
            ngx.say(tostring(ok), " ", type(err))
        } }"##,
    );
    let r = h.get("/t");
    assert_eq!(
        r.text(),
        "0\ntrue\nfalsebad argument #1 to 'raw_log' (must be a number)\nfalsebad log level\n\
         falsebad argument #2 to 'raw_log' (must be a string)\nnil missing \"level\" argument\nnil string\nnil string\n"
    );
    assert!(h.wait_log("logs/error.log", "raw message 42", Duration::from_secs(2)), "{}", h.error_log());
    let log = h.error_log();
    let line = log.lines().find(|l| l.contains("raw message 42")).unwrap();
    assert!(line.contains("[warn]") && !line.contains("[lua]"), "{line}");
}

#[test]
fn process_type_and_master_pid_in_a_worker() {
    let conf = "daemon off;\nmaster_process on;\nworker_processes 1;\nerror_log logs/error.log info;\npid logs/nginx.pid;\n\
        events { worker_connections 64; }\nhttp {\n    access_log off;\n\
        init_by_lua_block { local p = require \"ngx.process\" package.loaded.init_seen = p.type() .. \" \" .. p.get_master_pid() }\n    server {\n        listen 127.0.0.1:{{PORT}};\n\
        location = /t { content_by_lua_block {\n\
            local process = require \"ngx.process\"\n\
            ngx.say(process.type(), \" \", process.get_master_pid(), \" \", process.get_master_pid() ~= ngx.worker.pid())\n\
            ngx.say(process.enable_privileged_agent())\n\
            ngx.say(process.version ~= nil, \" \", type(process.signal_graceful_exit))\n\
            ngx.say(package.loaded.init_seen)\n\
        } }\n    }\n}\n";
    let h = Halo::start_full(conf);
    let r = h.get("/t");
    assert_eq!(r.text(), format!("worker {0} true\nnilAPI disabled in the current context\ntrue function\nmaster {0}\n", h.pid()));
}

#[test]
fn resp_add_header_appends() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            local resp = require "ngx.resp"
            ngx.header["X-A"] = "1"
            resp.add_header("X-A", "2")
            resp.add_header("X-B", { "3", "4" })
            resp.add_header("X-C", 5)
            ngx.say("ok")
        } }"##,
    );
    let r = h.get("/t");
    assert_eq!(r.text(), "ok\n");
    assert_eq!(r.headers_all("x-a"), ["1", "2"]);
    assert_eq!(r.headers_all("x-b"), ["3", "4"]);
    assert_eq!(r.headers_all("x-c"), ["5"]);
}

#[test]
fn req_add_header_keeps_the_others() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            local req = require "ngx.req"
            req.add_header("X-A", "2")
            req.add_header("X-New", { "n1", "n2" })
            local hs = ngx.req.get_headers()
            ngx.say(table.concat(hs["x-a"], ","), " ", table.concat(hs["x-new"], ","))
            ngx.say(pcall(req.add_header, "X-A"))
            ngx.say(pcall(req.add_header, nil, "v"))
        } }"##,
    );
    let r = h.get_response("GET /t HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n\r\n");
    assert_eq!(
        r.text(),
        "1,2 n1,n2\nfalsebad 'value' argument: string or table expected, got nil\n\
         falsebad 'name' argument: string expected, got nil\n"
    );
}

#[test]
fn get_headers_finds_any_spelling_unless_raw() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            ngx.header["X-Out"] = "o"
            local hs = ngx.req.get_headers()
            ngx.say(hs["X-Foo-Bar"], " ", hs.x_foo_bar, " ", hs["x-foo-bar"])
            local raw = ngx.req.get_headers(0, true)
            ngx.say(tostring(raw.x_foo_bar), " ", raw["X-Foo-Bar"])
            local rh = ngx.resp.get_headers()
            ngx.say(rh.x_out, " ", rh["X-Out"])
        } }"##,
    );
    let r = h.get_response("GET /t HTTP/1.1\r\nHost: localhost\r\nX-Foo-Bar: v\r\n\r\n");
    assert_eq!(r.text(), "v v v\nnil v\no o\n");
}

#[test]
fn is_subrequest_is_a_boolean_field() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            ngx.say(type(ngx.is_subrequest), " ", tostring(ngx.is_subrequest))
        } }"##,
    );
    assert_eq!(h.get("/t").text(), "boolean false\n");
}

#[test]
fn status_in_log_by_lua_is_the_status_sent() {
    let h = Halo::server(
        r##"
        location = /t {
            content_by_lua_block { ngx.status = 201 ngx.say("made") }
            log_by_lua_block { ngx.log(ngx.WARN, "logged status=", ngx.status) }
        }
        location = /x {
            content_by_lua_block { ngx.exit(404) }
            log_by_lua_block { ngx.log(ngx.WARN, "logged status=", ngx.status) }
        }"##,
    );
    assert_eq!(h.get("/t").status, 201);
    assert!(h.wait_log("logs/error.log", "logged status=201", Duration::from_secs(2)), "{}", h.error_log());
    assert_eq!(h.get("/x").status, 404);
    assert!(h.wait_log("logs/error.log", "logged status=404", Duration::from_secs(2)), "{}", h.error_log());
}

#[test]
fn base_helpers() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            local base = require "resty.core.base"
            ngx.say(base.get_request() ~= nil, " ", type(base.version))
            local buf = base.get_string_buf(16)
            ngx.say(type(buf), " ", base.get_string_buf_size() >= 16)
            ngx.say(type(base.get_size_ptr()), " ", type(base.get_errmsg_ptr()))
            local t = base.new_tab(4, 4)
            t.a = 1
            base.clear_tab(t)
            ngx.say(next(t) == nil)
            local refs = {}
            local r1 = base.ref_in_table(refs, "x")
            local r2 = base.ref_in_table(refs, "y")
            ngx.say(r1, " ", r2, " ", refs[r1], refs[r2], " ", base.ref_in_table(refs, nil))
            ngx.say(select("#", base.allows_subsystem("http")), " ", pcall(base.allows_subsystem, "stream"))
            ngx.say(base.FFI_OK, " ", base.FFI_ERROR, " ", base.FFI_AGAIN, " ", base.FFI_DECLINED,
                    " ", base.FFI_BAD_CONTEXT, " ", base.FFI_NO_REQ_CTX)
        } }"##,
    );
    let t = h.get("/t").text();
    let mut lines = t.lines();
    assert_eq!(lines.next(), Some("true string"));
    assert_eq!(lines.next(), Some("cdata true"));
    assert_eq!(lines.next(), Some("cdata cdata"));
    assert_eq!(lines.next(), Some("true"));
    assert_eq!(lines.next(), Some("1 2 xy -1"));
    assert_eq!(lines.next(), Some("0 falseunsupported subsystem: http"));
    assert_eq!(lines.next(), Some("0 -1 -2 -5 -101 -100"), "{t}");
}

#[test]
fn unknown_names_are_nil_as_in_openresty() {
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            ngx.say(tostring(ngx.no_such_thing), " ", tostring(ngx.req.no_such_thing), " ",
                    type(ngx.shared), " ", type(require("cjson").encode), " ", type(ngx.req.get_headers))
            ngx.req.set_uri_args({ b = "2 3" })
            ngx.say(ngx.var.args)
        } }"##,
    );
    assert_eq!(h.get("/t?a=1").text(), "nil nil table function function\nb=2%203\n");
}

#[test]
fn missing_api_says_not_supported_by_halo_yet() {
    if is_nginx() {
        return;
    }
    let h = Halo::server(
        r##"
        location = /t { content_by_lua_block {
            local function try(f)
                local ok, err = pcall(f)
                ngx.say(ok, " ", err)
            end
            try(function() return ngx.run_worker_thread() end)
            try(function() local m = require "ngx.pipe" return m end)
            try(function() local m = require "ngx.ssl" return m end)
        } }"##,
    );
    let t = h.get("/t").text();
    let want = ["ngx.run_worker_thread", "ngx.pipe", "ngx.ssl"];
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), want.len(), "{t}");
    for (line, name) in lines.iter().zip(want) {
        assert!(line.starts_with("false ") && line.ends_with(&format!("{name} is not supported by halo yet")), "{line}");
        assert!(line.contains("content_by_lua"), "error points at the caller: {line}");
    }
}
