//! ngx.shared.DICT through the real server: every method, its errors and
//! options, binary values, expiry as time passes, LRU eviction in a small
//! zone, a zone kept across a reload, and two workers incrementing one key
//! from many connections at once. OpenResty behaviour: each test also runs
//! on nginx + lua-nginx-module (HALO_TEST_BIN=/usr/sbin/nginx).

mod common;
use common::*;
use std::time::Duration;

fn dict_server(dicts: &str, server_body: &str) -> Halo {
    let conf = server_conf(server_body).replace("http {\n", &format!("http {{\n{dicts}\n"));
    Prefix::new().start(&conf)
}

#[test]
fn methods_results_and_errors() {
    let h = dict_server(
        "lua_shared_dict dogs 1m; lua_shared_dict cats 100k;",
        r##"
        location /t {
            content_by_lua_block {
                local dogs = ngx.shared.dogs
                local function p(...) ngx.say(table.concat((function(...)
                    local t = {}
                    for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
                    return t
                end)(...), " ")) end
                p(ngx.shared.nope, type(ngx.shared.cats))
                p(dogs:set("Jim", 8))
                p(dogs:get("Jim"))
                p(dogs:set("Jim", "str", 0, 42))
                p(dogs:get("Jim"))
                p(dogs:get("Jim", 41))
                p(dogs:add("Jim", 1))
                p(dogs:safe_add("Bob", false))
                p(dogs:get("Bob"))
                p(dogs:replace("nobody", 1))
                p(dogs:replace("Bob", 3.5))
                p(dogs:get("Bob"))
                p(dogs:delete("Bob"), dogs:get("Bob"))
                p(dogs:incr("n", 1))
                p(dogs:incr("n", 2, 10))
                p(dogs:incr("n", -0.5))
                p(dogs:incr("Jim", 1))
                p(dogs:set(nil, 1))
                p(dogs:set("", 1))
                p(dogs:set(string.rep("k", 65536), 1))
                p(dogs:set("t", {}))
                p(dogs:get(12), dogs:set(12, "twelve"), dogs:get(12), dogs:get("12"))
                p(dogs:lpush("l", "b"), dogs:lpush("l", "a"), dogs:rpush("l", 3), dogs:llen("l"))
                p(dogs:get("l"))
                p(dogs:lpush("Jim", 1), dogs:llen("Jim"), dogs:lpop("Jim"))
                p(dogs:lpush("l", true))
                p(dogs:lpop("l"), dogs:rpop("l"), dogs:rpop("l"), dogs:rpop("l"), dogs:llen("l"))
                p(dogs:llen("none"), dogs:lpop("none"))
                p(dogs:ttl("Jim"), dogs:ttl("none"))
                p(dogs:expire("none", 1), dogs:expire("Jim", 100))
                p(dogs:capacity(), ngx.shared.cats:capacity())
                p(dogs:free_space() > 0, dogs:free_space() <= dogs:capacity())
                local keys = dogs:get_keys()
                table.sort(keys)
                p(#keys, table.concat(keys, ","))
                p(#dogs:get_keys(1))
                p(pcall(dogs.set, dogs, "x", 1, -1))
                p(pcall(dogs.get, {}, "x"))
                p(pcall(dogs.incr, dogs, "n", 1, "x"))
                p(pcall(dogs.incr, dogs, "q", 1, nil, 10))
                dogs:flush_all()
                p(dogs:get("Jim"), #dogs:get_keys(), dogs:flush_expired())
            }
        }"##,
    );
    let r = h.get("/t");
    assert_eq!(r.status, 200, "{}", h.logs());
    let want = "\
nil table
true nil false
8
true nil false
str 42
str 42
false exists false
true nil false
false
false not found false
true nil false
3.5
true nil
nil not found
12 nil false
11.5
nil not a number
nil nil key
nil empty key
nil key too long
nil bad value type
nil true twelve twelve
1 2 3 3
nil value is a list
nil nil nil value not a list
nil bad value type
a 3 b nil 0
0 nil
0 nil not found
nil true
1048576 102400
true true
3 12,Jim,n
1
false bad \"exptime\" argument
false bad \"zone\" argument
false bad init arg: number expected, got string
false must provide \"init\" when providing \"init_ttl\"
nil 0 0
";
    assert_eq!(r.text(), want);
}

#[test]
fn values_are_binary_safe_and_typed() {
    let h = dict_server(
        "lua_shared_dict d 1m;",
        r#"
        location /t {
            content_by_lua_block {
                local d = ngx.shared.d
                local bin = "a\0b\255\r\n" .. string.rep("x", 10000)
                d:set("bin", bin)
                d:set("f", 0.1 + 0.2)
                d:set("big", 2^53)
                d:set("yes", true)
                d:set("no", false)
                local v = d:get("bin")
                ngx.say(v == bin, " ", #v)
                ngx.say(d:get("f") == 0.1 + 0.2, " ", d:get("big") == 2^53)
                ngx.say(type(d:get("yes")), " ", d:get("yes"), " ", d:get("no"))
                d:rpush("bl", "\0\1")
                ngx.say(#d:lpop("bl"))
            }
        }"#,
    );
    assert_eq!(h.get("/t").text(), "true 10006\ntrue true\nboolean true false\n2\n");
}

#[test]
fn entries_expire_as_time_passes() {
    let h = dict_server(
        "lua_shared_dict d 1m;",
        r#"
        location /set {
            content_by_lua_block {
                local d = ngx.shared.d
                d:set("short", "v", 0.2, 7)
                d:set("long", "v", 100)
                d:incr("c", 1, 0, 0.2)
                d:lpush("l", 1)
                d:expire("l", 0.2)
                ngx.say("ok")
            }
        }
        location /get {
            content_by_lua_block {
                local d = ngx.shared.d
                local v, flags, stale = d:get_stale("short")
                ngx.say(d:get("short"), " ", d:get("long"), " ", d:get("c"), " ", d:llen("l"))
                ngx.say(v, " ", flags, " ", stale)
                local ttl = d:ttl("long")
                ngx.say(ttl > 99 and ttl <= 100)
                ngx.say(d:add("short", "new"), " ", d:incr("c", 1))
            }
        }"#,
    );
    assert_eq!(h.get("/set").text(), "ok\n");
    let now = h.get("/get").text();
    assert!(now.starts_with("v v 1 1\nv 7 false\ntrue\n"), "{now}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(h.get("/get").text(), "nil v nil 0\nv 7 true\ntrue\ntrue nilnot found\n");
}

#[test]
fn a_full_zone_evicts_the_least_recently_used() {
    let h = dict_server(
        "lua_shared_dict small 64k;",
        r#"
        location /t {
            content_by_lua_block {
                local d = ngx.shared.small
                local v = string.rep("v", 1000)
                local forced_at
                for i = 1, 500 do
                    d:get("keep")  -- used every round: never the oldest
                    local ok, err, forcible = d:set("k" .. i, v)
                    if i == 1 then d:set("keep", "me") end
                    if not ok then ngx.say("set failed: ", err) return end
                    if forcible and not forced_at then forced_at = i end
                end
                ngx.say(forced_at ~= nil and forced_at > 10, " ", d:get("k1"), " ", d:get("k500") == v, " ", d:get("keep"))
                local ok, err, forcible = d:safe_set("huge", string.rep("x", 60000))
                ngx.say(ok, " ", err, " ", forcible)
                ok, err = d:safe_add("k500x", v)
                ngx.say(ok or err)
            }
        }"#,
    );
    let out = h.get("/t").text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("true nil true me"), "{out}");
    assert_eq!(lines.get(1).copied(), Some("false no memory false"), "{out}");
    // The zone is full of unexpired entries: safe_add may not evict.
    assert_eq!(lines.get(2).copied(), Some("no memory"), "{out}");
}

#[test]
fn bad_sizes_and_duplicates_are_config_errors() {
    for (dicts, want) in [
        ("lua_shared_dict d 8000;", "invalid lua shared dict size \"8000\""),
        ("lua_shared_dict d 1x;", "invalid lua shared dict size \"1x\""),
        ("lua_shared_dict d 1m; lua_shared_dict d 2m;", "the size 2097152 of shared memory zone \"d\" conflicts with already declared size 1048576"),
        ("lua_shared_dict d 1m; lua_shared_dict d 1m;", "lua_shared_dict \"d\" is already defined as \"d\""),
    ] {
        let p = Prefix::new();
        p.write_conf(&(oracle_modules("_by_lua") + &server_conf("location / { return 200; }").replace("http {\n", &format!("http {{\n{dicts}\n")).replace("{{PORT}}", &free_port().to_string())));
        let out = p.cli(&["-t"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dicts}: {err}");
        assert!(err.contains(want) && err.contains("nginx.conf:"), "{dicts}: {err}");
    }
}

fn master_conf(dicts: &str, version: &str) -> String {
    server_conf(&format!(
        r#"
        location /set {{ content_by_lua_block {{ ngx.shared.other:set("k", 1) ngx.say(ngx.shared.kept:set("k", "{version}")) }} }}
        location /get {{ content_by_lua_block {{ ngx.say(ngx.shared.kept:get("k"), " {version} ", ngx.shared.other and ngx.shared.other:get("k")) }} }}
        location /incr {{
            content_by_lua_block {{
                local d = ngx.shared.kept
                for _ = 1, 500 do d:incr("count", 1, 0) end
                d:incr("worker" .. ngx.worker.id(), 1, 0)
                ngx.say("ok")
            }}
        }}
        location /count {{
            content_by_lua_block {{
                local d = ngx.shared.kept
                ngx.say(d:get("count"), " ", d:get("worker0") or 0, " ", d:get("worker1") or 0)
            }}
        }}"#
    ))
    .replace("http {\n", &format!("http {{\n{dicts}\n"))
    .replace("master_process off;", "master_process on;\nworker_processes 2;")
}

#[test]
fn a_zone_with_the_same_name_and_size_survives_a_reload() {
    let h = Prefix::new().start(&master_conf("lua_shared_dict kept 1m; lua_shared_dict other 1m;", "v1"));
    assert_eq!(h.get("/set").text(), "truenilfalse\n");
    // Same size for "kept"; "other" changes size, so it starts empty.
    let conf = master_conf("lua_shared_dict kept 1m; lua_shared_dict other 2m;", "v2");
    h.rewrite_conf(&conf);
    h.signal(libc::SIGHUP);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = h.get("/get").text();
        if seen.contains(" v2 ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, "v1 v2 nil\n", "{}", h.logs());
}

#[test]
fn two_workers_increment_one_key_exactly() {
    // reuseport: the kernel spreads the connections over both workers.
    let conf = master_conf("lua_shared_dict kept 1m;", "v1").replace("listen 127.0.0.1:{{PORT}};", "listen 127.0.0.1:{{PORT}} reuseport;");
    let h = Prefix::new().start(&conf);
    let port = h.port;
    // 200 requests x 500 incr, from 8 clients on new connections each time
    // (so that both workers accept some).
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let mut c = Conn::new(port);
                    c.send("GET /incr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                    let r = c.read_response(false);
                    assert_eq!(r.text(), "ok\n");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let counts = h.get("/count").text();
    let parts: Vec<&str> = counts.split_whitespace().collect();
    assert_eq!(parts[0], "100000", "{counts}");
    let (w0, w1): (u32, u32) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
    assert_eq!(w0 + w1, 200, "{counts}");
    assert!(w0 > 0 && w1 > 0, "one worker served every request: {counts}");
}
