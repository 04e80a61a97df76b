//! ngx.timer.at / ngx.timer.every through the real server: order of firing, arguments,
//! running/pending counts, a thousand concurrent timers, the APIs a timer may not use,
//! ngx.sleep and cosockets inside a timer, timers from init_worker_by_lua and from timers,
//! `premature` on a graceful stop (SIGQUIT; a single process drops them instead), and
//! lua_max_pending_timers. Results travel
//! through a lua_shared_dict that later requests read. Checked against nginx +
//! lua-nginx-module (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::peers::*;
use common::*;
use std::time::Duration;

/// A server with `lua_shared_dict d 1m`, `/start` running `start` and `/read` printing
/// `read` (a Lua expression).
fn timer_server(http_extra: &str, start: &str, read: &str) -> Halo {
    lua_server(
        &format!("lua_shared_dict d 1m;\n{http_extra}"),
        &format!(
            "location /start {{ content_by_lua_block {{\n local p = require(\"t\").p\n local d = ngx.shared.d\n{start}\n }} }}\n\
             location /read {{ content_by_lua_block {{\n local d = ngx.shared.d\n ngx.say({read})\n }} }}"
        ),
    )
}

/// Polls `/read` until it says `want` (up to `secs`), then asserts it.
fn wait_read(h: &Halo, want: &str, secs: u64) {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(secs), || {
        last = h.get("/read").text();
        last == want
    });
    assert!(ok, "/read said {last:?}, want {want:?}\n{}", h.logs());
}

#[test]
fn timers_fire_in_order_of_their_delays_with_their_arguments() {
    let h = timer_server(
        "",
        r#"
        local function rec(premature, name, extra)
            -- (no yield between get and set: one worker, so this is atomic)
            d:set("order", (d:get("order") or "") .. name .. (extra or "") .. (premature and "!" or "") .. ",")
        end
        p(ngx.timer.at(0.3, rec, "a"))
        p(ngx.timer.at(0.1, rec, "b", "+x"))
        p(ngx.timer.at(0.2, rec, "c"))
        p(ngx.timer.at(0, rec, "d"))
        p(pcall(ngx.timer.at, 1, "nope"))
        "#,
        r#"d:get("order")"#,
    );
    let r = h.get("/start");
    assert_eq!(
        r.text(),
        "1\n1\n1\n1\nfalse bad argument #2 to '?' (Lua function expected)\n"
    );
    wait_read(&h, "d,b+x,c,a,\n", 3);
}

#[test]
fn timer_every_runs_repeatedly_with_its_arguments() {
    let h = timer_server(
        "",
        r#"
        p(ngx.timer.every(0.05, function(premature, step)
            local n = d:incr("n", step, 0)
            if n <= 30 then d:rpush("seen", n) end
        end, 10))
        p(pcall(ngx.timer.every, 0, function() end))
        "#,
        r#"(d:get("n") or 0) >= 30 and "at least three runs" or "waiting""#,
    );
    assert_eq!(h.get("/start").text(), "1\nfalse delay cannot be zero\n");
    wait_read(&h, "at least three runs\n", 3);
}

#[test]
fn running_and_pending_counts() {
    let h = timer_server(
        "",
        r#"
        p(ngx.timer.running_count(), ngx.timer.pending_count())
        ngx.timer.at(10, function() end)
        ngx.timer.at(10, function() end)
        ngx.timer.at(0, function() ngx.sleep(0.5) end)
        p(ngx.timer.running_count(), ngx.timer.pending_count())
        ngx.sleep(0.1)
        p(ngx.timer.running_count(), ngx.timer.pending_count())
        "#,
        r#"ngx.timer.running_count() .. " " .. ngx.timer.pending_count()"#,
    );
    assert_eq!(h.get("/start").text(), "0 0\n0 3\n1 2\n");
    wait_read(&h, "0 2\n", 3);
}

#[test]
fn a_thousand_concurrent_sleeping_timers() {
    let conf = lua_conf(
        4096,
        "lua_shared_dict d 1m;\nlua_max_pending_timers 2000;\nlua_max_running_timers 2000;",
        r#"
        location /start { content_by_lua_block {
            local d = ngx.shared.d
            local failed = 0
            for i = 1, 1000 do
                local ok = ngx.timer.at(0, function()
                    ngx.sleep(0.1)
                    d:incr("n", 1, 0)
                end)
                if not ok then failed = failed + 1 end
            end
            ngx.say("failed ", failed, " pending ", ngx.timer.pending_count())
        } }
        location /read { content_by_lua_block { ngx.say(ngx.shared.d:get("n")) } }"#,
    );
    let h = Prefix::new().start(&conf);
    let t0 = std::time::Instant::now();
    assert_eq!(h.get("/start").text(), "failed 0 pending 1000\n");
    wait_read(&h, "1000\n", 5);
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
}

#[test]
fn request_apis_are_disabled_in_a_timer() {
    let h = timer_server(
        "",
        r#"
        ngx.timer.at(0, function()
            local out = {}
            local function try(name, f, ...)
                local ok, err = pcall(f, ...)
                -- (errors raised with a position get it stripped)
                err = tostring(err):gsub("^[^\n]-:%d+: ", "")
                out[#out + 1] = name .. ": " .. tostring(ok) .. " " .. err
            end
            try("get_headers", ngx.req.get_headers)
            try("say", ngx.say, "x")
            try("print", ngx.print, "x")
            try("read_body", ngx.req.read_body)
            try("get_uri_args", ngx.req.get_uri_args)
            try("set_header", function() ngx.header["X-A"] = "1" end)
            try("exec", ngx.exec, "/x")
            try("redirect", ngx.redirect, "/x")
            try("capture", ngx.location.capture, "/read")
            try("req.socket", ngx.req.socket)
            out[#out + 1] = "phase: " .. ngx.get_phase()
            out[#out + 1] = "now: " .. type(ngx.now())
            out[#out + 1] = "worker: " .. type(ngx.worker.pid())
            d:set("r", table.concat(out, "\n"))
        end)
        p("started")
        "#,
        r#"d:get("r")"#,
    );
    assert_eq!(h.get("/start").text(), "started\n");
    wait_read(
        &h,
        "get_headers: false API disabled in the current context\n\
         say: false API disabled in the context of ngx.timer\n\
         print: false API disabled in the context of ngx.timer\n\
         read_body: false API disabled in the context of ngx.timer\n\
         get_uri_args: false API disabled in the current context\n\
         set_header: false API disabled in the current context\n\
         exec: false API disabled in the context of ngx.timer\n\
         redirect: false API disabled in the context of ngx.timer\n\
         capture: false API disabled in the context of ngx.timer\n\
         req.socket: false API disabled in the context of ngx.timer\n\
         phase: timer\n\
         now: number\n\
         worker: number\n",
        3,
    );
}

#[test]
fn sleep_and_a_cosocket_inside_a_timer() {
    let peer = TcpPeer::start(Mode::Echo);
    let h = timer_server(
        "",
        &format!(
            r#"
        ngx.timer.at(0, function(premature)
            local t0 = ngx.now()
            ngx.sleep(0.1)
            local slept = ngx.now() - t0 >= 0.09
            local sock = ngx.socket.tcp()
            sock:settimeout(1000)
            local ok, err = sock:connect("127.0.0.1", {port})
            if not ok then d:set("r", "connect: " .. err) return end
            sock:send("from timer\n")
            local line = sock:receive()
            sock:setkeepalive()
            d:set("r", tostring(premature) .. " " .. tostring(slept) .. " " .. line)
        end)
        p("started")
        "#,
            port = peer.port()
        ),
        r#"d:get("r")"#,
    );
    assert_eq!(h.get("/start").text(), "started\n");
    wait_read(&h, "false true from timer\n", 3);
    assert_eq!(peer.received_text(), "from timer\n");
}

#[test]
fn timers_from_init_worker_and_from_timers() {
    let h = lua_server(
        r#"lua_shared_dict d 1m;
    init_worker_by_lua_block {
        local ok, err = ngx.timer.at(0, function()
            ngx.shared.d:set("init", ngx.get_phase())
            ngx.timer.at(0.05, function(_, depth)
                ngx.shared.d:set("nested", "depth " .. depth)
            end, 2)
        end)
        if not ok then ngx.log(ngx.ERR, "timer: ", err) end
    }"#,
        r#"location /read { content_by_lua_block {
            ngx.say(ngx.shared.d:get("init"), " ", ngx.shared.d:get("nested"))
        } }"#,
    );
    wait_read(&h, "timer depth 2\n", 3);
}

#[test]
fn a_pending_timer_runs_premature_on_graceful_stop() {
    let conf = format!(
        "master_process on;\nworker_processes 1;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log logs/access.log;\n    lua_package_path \"{}/?.lua;;\";\n\
         server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n\
         location /start {{ content_by_lua_block {{\n\
             ngx.timer.at(100, function(premature, tag)\n\
                 ngx.log(ngx.ERR, \"timer ran: premature=\", tostring(premature), \" exiting=\", tostring(ngx.worker.exiting()), \" tag=\", tag)\n\
             end, \"t1\")\n\
             ngx.timer.every(100, function(premature)\n\
                 ngx.log(ngx.ERR, \"every ran: premature=\", tostring(premature))\n\
             end)\n\
             ngx.say(ngx.timer.pending_count())\n\
         }} }}\n    }}\n}}\n",
        lua_dir()
    );
    let mut h = Prefix::new().start(&conf);
    assert_eq!(h.get("/start").text(), "2\n");
    h.signal(libc::SIGQUIT);
    assert!(h.wait_exit(Duration::from_secs(5)).is_some(), "did not stop on SIGQUIT\n{}", h.logs());
    let log = h.error_log();
    assert_contains(&log, "timer ran: premature=true exiting=true tag=t1");
    assert_contains(&log, "every ran: premature=true");
}

#[test]
fn a_single_process_quits_at_once_dropping_pending_timers() {
    // nginx's single-process cycle exits on SIGQUIT without waiting: no premature run.
    let conf = http_conf(&format!(
        "    lua_package_path \"{}/?.lua;;\";\n\
         exit_worker_by_lua_block {{ ngx.log(ngx.ERR, \"exit_worker ran\") }}\n\
         server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n\
         location /start {{ content_by_lua_block {{\n\
             ngx.timer.at(100, function(premature) ngx.log(ngx.ERR, \"timer ran: premature=\", tostring(premature)) end)\n\
             ngx.say(ngx.timer.pending_count())\n\
         }} }}\n    }}",
        lua_dir()
    ));
    let mut h = Prefix::new().start(&conf);
    assert_eq!(h.get("/start").text(), "1\n");
    h.signal(libc::SIGQUIT);
    assert!(h.wait_exit(Duration::from_secs(2)).is_some(), "did not stop on SIGQUIT\n{}", h.logs());
    let log = h.error_log();
    assert_contains(&log, "exit_worker ran");
    assert!(!log.contains("timer ran"), "{log}");
}

#[test]
fn worker_shutdown_timeout_ends_a_timer_that_never_returns() {
    // A deliberate difference (README): nginx's worker_shutdown_timeout
    // closes connections only, so a timer that never returns keeps its
    // worker forever there.
    if is_nginx() {
        return;
    }
    let conf = format!(
        "master_process on;\nworker_processes 1;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\n\
         worker_shutdown_timeout 500ms;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log logs/access.log;\n    lua_package_path \"{}/?.lua;;\";\n\
         server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n\
         location /start {{ content_by_lua_block {{\n\
             ngx.timer.at(0, function()\n\
                 ngx.log(ngx.ERR, \"looping timer started\")\n\
                 while true do ngx.sleep(0.05) end\n\
             end)\n\
             ngx.say(\"started\")\n\
         }} }}\n    }}\n}}\n",
        lua_dir()
    );
    let mut h = Prefix::new().start(&conf);
    assert_eq!(h.get("/start").text(), "started\n");
    assert!(h.wait_log("logs/error.log", "looping timer started", Duration::from_secs(2)), "{}", h.logs());
    h.signal(libc::SIGQUIT);
    assert!(h.wait_exit(Duration::from_secs(5)).is_some(), "a timer that never returns kept the stop waiting\n{}", h.logs());
}

#[test]
fn lua_max_pending_timers_is_enforced() {
    let h = timer_server(
        "lua_max_pending_timers 2;",
        r#"
        p(ngx.timer.at(10, function() end))
        p(ngx.timer.at(10, function() end))
        p(ngx.timer.at(10, function() end))
        p(ngx.timer.every(10, function() end))
        p(ngx.timer.pending_count())
        "#,
        "1",
    );
    assert_eq!(h.get("/start").text(), "1\n1\nnil too many pending timers\nnil too many pending timers\n2\n");
}

#[test]
fn lua_max_running_timers_is_enforced() {
    let h = timer_server(
        "lua_max_running_timers 2;",
        r#"
        for i = 1, 3 do
            ngx.timer.at(0, function() ngx.sleep(0.3) d:incr("done", 1, 0) end)
        end
        p("started")
        "#,
        r#"d:get("done")"#,
    );
    assert_eq!(h.get("/start").text(), "started\n");
    wait_read(&h, "2\n", 3);
    assert!(
        wait_until(Duration::from_secs(2), || h.error_log().contains("2 lua_max_running_timers are not enough")),
        "{}",
        h.logs()
    );
}
