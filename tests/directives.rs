//! The directives every real config has: those halo implements (`env`,
//! `worker_rlimit_nofile`, `load_module` of the built-in modules) and those
//! it accepts with a notice in the error log; their argument errors as
//! nginx words them.

mod common;
use common::*;

/// Where the oracle's modules are (halo accepts these lines, having them built in).
fn modules_dir() -> String {
    std::env::var("HALO_TEST_NGINX_MODULES").unwrap_or_else(|_| "/usr/lib/nginx/modules".into())
}

/// Directives of the main context, then the accepted-and-ignored ones at
/// http, server, location and location-`if` level, around a handler that
/// shows what the worker got of `env` and `worker_rlimit_nofile`.
fn full_conf() -> String {
    let m = modules_dir();
    format!(
        r#"load_module {m}/ndk_http_module.so;
load_module {m}/ngx_http_lua_module.so;
load_module {m}/ngx_http_echo_module.so;
user nobody nogroup;
worker_processes 1;
worker_cpu_affinity auto;
worker_rlimit_nofile 777;
env HALO_T_KEPT;
env HALO_T_SET=given;
daemon off;
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log logs/access.log;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    types_hash_max_size 2048;
    types_hash_bucket_size 64;
    server_names_hash_max_size 512;
    server_names_hash_bucket_size 64;
    variables_hash_max_size 1024;
    variables_hash_bucket_size 64;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy 1 2;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    underscores_in_headers on;
    ignore_invalid_headers off;
    log_not_found off;
    log_subrequest on;
    open_file_cache max=1000 inactive=20s;
    open_file_cache_valid 30s;
    open_file_cache_min_uses 2;
    open_file_cache_errors on;
    charset utf-8;
    source_charset utf-8;
    etag off;
    if_modified_since before;
    merge_slashes off;
    port_in_redirect off;
    absolute_redirect off;
    server_name_in_redirect off;
    postpone_output 1460;
    reset_timedout_connection on;
    lingering_close on;
    lingering_time 30s;
    lingering_timeout 5s;
    send_lowat 0;
    chunked_transfer_encoding on;
    msie_padding on;
    server {{
        listen 127.0.0.1:{{{{PORT}}}};
        server_name localhost;
        merge_slashes on;
        expires off;
        location / {{
            expires modified 1h;
            open_file_cache off;
            if ($uri) {{
                sendfile off;
            }}
            content_by_lua_block {{
                local f = io.open("/proc/self/limits")
                local limits = f:read("*a")
                f:close()
                ngx.say(os.getenv("HALO_T_KEPT"), " ", tostring(os.getenv("HALO_T_DROPPED")), " ",
                        os.getenv("HALO_T_SET"), " ", tostring(os.getenv("PATH")), " ", os.getenv("TZ"))
                ngx.say(limits:match("Max open files%s+(%d+%s+%d+)"))
            }}
        }}
    }}
}}
"#
    )
}

/// A config in the shape of Debian's and OpenResty's own starts, serves the
/// handler with the worker's environment cut to TZ and what `env` names, and
/// its file-descriptor limit set; halo notes each directive it ignores.
#[test]
fn common_directives_start_and_serve() {
    // Each test runs in its own process under nextest, and this one before
    // starting any thread, so the server inherits these.
    std::env::set_var("HALO_T_KEPT", "kept");
    std::env::set_var("HALO_T_DROPPED", "dropped");
    std::env::set_var("TZ", "UTC");
    let conf = full_conf();
    let h = Prefix::new().start(&conf);
    let body = h.get("/").text();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.first(), Some(&"kept nil given nil UTC"), "{body}\n{}", h.logs());
    // /proc pads the soft and hard limits apart.
    let limits: Vec<&str> = lines.get(1).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(limits, ["777", "777"], "{body}");
    if is_nginx() {
        return;
    }
    let log = h.error_log();
    let conf_path = h.prefix.conf_path();
    for (i, line) in conf.lines().enumerate() {
        let name = line.split_whitespace().next().unwrap_or("");
        let ignored = [
            "user", "worker_cpu_affinity", "sendfile", "tcp_nopush", "tcp_nodelay", "expires", "open_file_cache",
            "merge_slashes", "msie_padding", "proxy_temp_path", "types_hash_max_size", "lingering_close",
        ];
        let want = if ignored.contains(&name) {
            format!("\"{name}\" directive is ignored by halo in {}:{}", conf_path.display(), i + 1)
        } else if name == "load_module" {
            let module = line.split_whitespace().nth(1).unwrap().trim_end_matches(';');
            format!("\"load_module {module}\" is ignored: halo has the module built in, in {}:{}", conf_path.display(), i + 1)
        } else {
            continue;
        };
        let noted = log.lines().find(|l| l.contains(&want));
        assert!(noted.is_some_and(|l| l.contains("[notice]")), "no notice {want:?} in:\n{log}");
    }
}

/// With `master_process off` the one process serves with the same
/// environment a worker has, as nginx's single process does.
#[test]
fn env_in_a_single_process() {
    std::env::set_var("HALO_T_KEPT", "kept");
    std::env::set_var("HALO_T_DROPPED", "dropped");
    let conf = format!(
        "env HALO_T_KEPT;\nenv HALO_T_SET=given;\n{}",
        server_conf(
            "        location / { content_by_lua_block { ngx.say(os.getenv(\"HALO_T_KEPT\"), \" \", os.getenv(\"HALO_T_DROPPED\"), \" \", os.getenv(\"HALO_T_SET\")) } }"
        )
    );
    let h = Halo::start_full(&conf);
    assert_eq!(h.get("/").text(), "kept nil given\n", "{}", h.logs());
}

/// `underscores_in_headers` and `ignore_invalid_headers`, from the
/// address's default server: by default a name with `_` or `.` is dropped.
#[test]
fn header_name_policy() {
    let handler = r#"content_by_lua_block { local h = ngx.req.get_headers() ngx.say(h["x_under"], " ", h["x.dot"], " ", h["x-ok"]) }"#;
    let h = Halo::start(&format!(
        "    server {{ listen 127.0.0.1:{{{{PORT}}}}; location / {{ {handler} }} }}
    server {{ listen 127.0.0.1:{{{{PORT2}}}}; underscores_in_headers on; ignore_invalid_headers off; location / {{ {handler} }} }}
    server {{ listen 127.0.0.1:{{{{PORT3}}}}; underscores_in_headers on; location / {{ {handler} }} }}"
    ));
    let req = "GET / HTTP/1.1\r\nHost: x\r\nX_Under: u\r\nX.Dot: d\r\nX-Ok: k\r\nConnection: close\r\n\r\n";
    let body = |port: u16| {
        let mut c = Conn::new(port);
        c.send(req);
        c.read_response(false).text()
    };
    assert_eq!(body(h.ports[0]), "nil nil k\n", "{}", h.logs());
    assert_eq!(body(h.ports[1]), "u d k\n", "{}", h.logs());
    assert_eq!(body(h.ports[2]), "u nil k\n", "{}", h.logs());
}

/// Writes `conf`, runs `-t`, and expects nginx's `msg` at line `line`.
#[track_caller]
fn expect_emerg(conf: &str, msg: &str, line: usize) {
    let p = Prefix::new();
    p.write_conf(conf);
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "-t should fail:\n{err}");
    assert_contains(&err, &format!("{}: [emerg] {msg} in {}:{line}", prog(), p.conf_path().display()));
}

/// The argument and context errors, word for word nginx's.
#[test]
fn argument_errors_are_nginx_s() {
    let http = |d: &str| format!("events {{}}\nhttp {{\n{d}\n}}\n");
    let cases: &[(&str, &str)] = &[
        ("sendfile x;", "invalid value \"x\" in \"sendfile\" directive, it must be \"on\" or \"off\""),
        ("msie_padding 1;", "invalid value \"1\" in \"msie_padding\" directive, it must be \"on\" or \"off\""),
        ("types_hash_max_size x;", "\"types_hash_max_size\" directive invalid number"),
        ("open_file_cache_min_uses 1k;", "\"open_file_cache_min_uses\" directive invalid number"),
        ("postpone_output x;", "\"postpone_output\" directive invalid value"),
        ("send_lowat 1x;", "\"send_lowat\" directive invalid value"),
        ("lingering_time x;", "\"lingering_time\" directive invalid value"),
        ("open_file_cache_valid 10ms;", "\"open_file_cache_valid\" directive invalid value"),
        ("lingering_close x;", "invalid value \"x\""),
        ("if_modified_since later;", "invalid value \"later\""),
        ("open_file_cache x;", "invalid \"open_file_cache\" parameter \"x\""),
        ("open_file_cache max=x;", "invalid \"open_file_cache\" parameter \"max=x\""),
        ("expires x;", "\"expires\" directive invalid value"),
        ("charset a b;", "invalid number of arguments in \"charset\" directive"),
        ("proxy_temp_path a 1 2 3 4;", "invalid number of arguments in \"proxy_temp_path\" directive"),
        ("server_names_hash_max_size 1 2;", "invalid number of arguments in \"server_names_hash_max_size\" directive"),
        ("server { server_names_hash_bucket_size 64; }", "\"server_names_hash_bucket_size\" directive is not allowed here"),
        ("server { location / { merge_slashes on; } }", "\"merge_slashes\" directive is not allowed here"),
        ("server { if ($uri) { etag on; } }", "\"etag\" directive is not allowed here"),
    ];
    for (d, msg) in cases {
        expect_emerg(&http(d), msg, 3);
    }
    let main: &[(&str, &str)] = &[
        ("user a b c;", "invalid number of arguments in \"user\" directive"),
        ("worker_rlimit_nofile x;", "\"worker_rlimit_nofile\" directive invalid number"),
        ("worker_rlimit_nofile 1 2;", "invalid number of arguments in \"worker_rlimit_nofile\" directive"),
        ("worker_cpu_affinity 01x;", "invalid character \"x\" in \"worker_cpu_affinity\""),
        ("env;", "invalid number of arguments in \"env\" directive"),
        ("env A B;", "invalid number of arguments in \"env\" directive"),
        ("load_module;", "invalid number of arguments in \"load_module\" directive"),
    ];
    for (d, msg) in main {
        expect_emerg(&format!("{d}\nevents {{}}\n"), msg, 1);
    }
    expect_emerg("events {\nsendfile on;\n}\n", "\"sendfile\" directive is not allowed here", 2);
    expect_emerg("events {}\nhttp {\nenv A;\n}\n", "\"env\" directive is not allowed here", 3);
}

/// halo loads no modules: a `load_module` of one it does not have built in
/// is an error naming it (nginx's error is its dlopen's, so this is halo's
/// own text), one it has (headers-more too) is accepted with a notice.
#[test]
fn load_module_of_another_module_is_an_error() {
    if is_nginx() {
        return;
    }
    let p = Prefix::new();
    p.write_conf("load_module modules/ngx_http_geoip2_module.so;\nevents {}\n");
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(
        &err,
        &format!(
            "halo: [emerg] module \"modules/ngx_http_geoip2_module.so\" cannot be loaded: halo loads no modules (the Lua, ndk, echo and headers-more modules are built in) in {}:1",
            p.conf_path().display()
        ),
    );
    p.write_conf("load_module /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so;\nevents {}\n");
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    // -t shows the notices too (the error log is not open yet).
    assert_contains(
        &err,
        &format!(
            "halo: [notice] \"load_module /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so\" is ignored: halo has the module built in, in {}:1",
            p.conf_path().display()
        ),
    );
}
