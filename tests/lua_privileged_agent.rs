//! The privileged agent (`require("ngx.process").enable_privileged_agent()` in
//! init_by_lua): one more child of the master, of type "privileged agent", with no
//! worker id, running init_worker_by_lua and its timers but serving no client;
//! respawned when it dies, replaced on reload, stopped with the workers.
//!
//! Against nginx: the agent needs OpenResty's patch to the nginx core, which stock
//! nginx (Debian's, the oracle here) lacks; there `enable_privileged_agent` answers
//! nil and "missing privileged agent process patch in the nginx core", and the tests
//! check that answer and skip what needs the agent.

mod common;
use common::*;
use std::time::Duration;

const WORKERS: usize = 2;

/// nginx without OpenResty's core patch.
const NO_PATCH: &str = "nil missing privileged agent process patch in the nginx core";

fn agent_conf() -> String {
    let http = r#"
    lua_shared_dict d 1m;
    init_by_lua_block {
        local process = require "ngx.process"
        local ok, err = process.enable_privileged_agent()
        ngx.shared.d:set("enable", tostring(ok) .. " " .. tostring(err))
        ngx.shared.d:set("init_type", process.type())
    }
    init_worker_by_lua_block {
        local process = require "ngx.process"
        if process.type() ~= "privileged agent" then
            return
        end
        local d = ngx.shared.d
        d:set("agent", table.concat({ process.type(), tostring(ngx.worker.id()),
            tostring(ngx.worker.count()), tostring(ngx.worker.pid()),
            tostring(process.get_master_pid()) }, "|"))
        local ok, err = ngx.timer.every(0.1, function(premature)
            if premature then
                ngx.log(ngx.WARN, "agent timer premature, exiting=", tostring(ngx.worker.exiting()))
                return
            end
            d:incr("ticks", 1, 0)
            d:set("ticker", ngx.worker.pid())
        end)
        if not ok then
            ngx.log(ngx.ERR, "timer.every: ", err)
        end
        -- A cosocket and a sleep in the agent: ask a worker who serves.
        ngx.timer.at(0, function()
            ngx.sleep(0.05)
            local sock = ngx.socket.tcp()
            sock:settimeout(2000)
            local ok, err = sock:connect("127.0.0.1", {{PORT}})
            if not ok then
                d:set("cosocket", "connect: " .. tostring(err))
                return
            end
            sock:send("GET /type HTTP/1.0\r\nHost: localhost\r\n\r\n")
            local body, err = sock:receive("*a")
            sock:close()
            d:set("cosocket", body and body:match("\r\n\r\n(.*)\n$") or ("receive: " .. tostring(err)))
        end)
    }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        location = /get {
            content_by_lua_block { ngx.say(tostring(ngx.shared.d:get(ngx.var.arg_k))) }
        }
        location = /type {
            content_by_lua_block {
                ngx.say(require("ngx.process").type(), " ", tostring(ngx.worker.id()))
            }
        }
        location = /enable {
            content_by_lua_block {
                local ok, err = require("ngx.process").enable_privileged_agent()
                ngx.say(tostring(ok), " ", tostring(err))
            }
        }
    }"#;
    http_conf(http).replace("master_process off;", &format!("master_process on;\nworker_processes {WORKERS};"))
}

fn get(h: &Halo, key: &str) -> String {
    h.get(&format!("/get?k={key}")).text().trim_end().to_string()
}

/// Starts the server; None (after checking nginx's answer) when the binary has no agent.
fn start() -> Option<Halo> {
    let h = Prefix::new().start(&agent_conf());
    let enable = get(&h, "enable");
    assert_eq!(get(&h, "init_type"), "master");
    if is_nginx() && enable == NO_PATCH {
        eprintln!("this nginx has no privileged agent patch: skipping the agent checks");
        // Only the workers then, serving as usual.
        assert!(wait_children(&h, WORKERS), "{:?}", h.children());
        assert!(h.get("/type").text().starts_with("worker "));
        return None;
    }
    assert_eq!(enable, "true nil", "{}", h.logs());
    Some(h)
}

/// Waits until the agent has written its facts; returns its pid.
fn agent_pid(h: &Halo) -> i32 {
    let mut facts = String::new();
    let up = wait_until(Duration::from_secs(5), || {
        facts = get(h, "agent");
        facts != "nil"
    });
    assert!(up, "the agent never ran init_worker_by_lua\n{}", h.logs());
    facts.split('|').nth(3).unwrap().parse().unwrap()
}

fn ticks(h: &Halo) -> i64 {
    get(h, "ticks").parse().unwrap_or(0)
}

/// Whether `pid` holds a socket listening on `port` (/proc/net/tcp's inodes in
/// state 0A against the process's fds).
fn holds_listener(pid: i32, port: u16) -> bool {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let inode = f.get(9)?;
            (local_port == port && f.get(3) == Some(&"0A")).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    assert!(!inodes.is_empty(), "nothing listens on {port}");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|l| inodes.iter().any(|i| l.to_string_lossy() == i.as_str()))
}

fn wait_children(h: &Halo, n: usize) -> bool {
    wait_until(Duration::from_secs(5), || h.children().len() == n)
}

#[test]
fn agent_runs_init_worker_besides_the_workers() {
    let Some(h) = start() else { return };
    assert!(wait_children(&h, WORKERS + 1), "children {:?}\n{}", h.children(), h.logs());
    let pid = agent_pid(&h);
    assert!(h.children().contains(&pid), "agent {pid} not a child of the master: {:?}", h.children());
    // It closed the listening sockets; the master and the workers hold them.
    assert!(!holds_listener(pid, h.port), "the agent holds a listening socket");
    assert!(holds_listener(h.pid(), h.port));
    // Type, no worker id, the worker count without the agent, its pid, the master's pid.
    assert_eq!(get(&h, "agent"), format!("privileged agent|nil|{WORKERS}|{pid}|{}", h.pid()));
    // A cosocket from an agent's timer (after a sleep) reaches a worker.
    let mut answer = String::new();
    let done = wait_until(Duration::from_secs(5), || {
        answer = get(&h, "cosocket");
        answer != "nil"
    });
    assert!(done, "{}", h.logs());
    assert!(answer == "worker 0" || answer == "worker 1", "{answer}");
    if !is_nginx() {
        assert!(h.wait_log("logs/error.log", &format!("start privileged agent process {pid}"), Duration::from_secs(2)), "{}", h.error_log());
    }
}

#[test]
fn agent_timer_counts_in_a_shdict() {
    let Some(h) = start() else { return };
    let pid = agent_pid(&h);
    assert!(wait_until(Duration::from_secs(5), || ticks(&h) >= 2), "{}", h.logs());
    let first = ticks(&h);
    assert!(wait_until(Duration::from_secs(5), || ticks(&h) >= first + 3), "ticks stuck at {first}\n{}", h.logs());
    assert_eq!(get(&h, "ticker"), pid.to_string());
}

#[test]
fn agent_serves_no_requests() {
    let Some(h) = start() else { return };
    agent_pid(&h);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let t = h.get("/type").text();
        assert!(t.starts_with("worker "), "{t}");
        seen.insert(t);
    }
    // Fresh connections land on workers only (with nginx's accept mutex off, usually both).
    assert!(seen.iter().all(|t| t == "worker 0\n" || t == "worker 1\n"), "{seen:?}");
}

#[test]
fn killed_agent_is_respawned() {
    let Some(h) = start() else { return };
    assert!(wait_children(&h, WORKERS + 1), "{}", h.logs());
    let victim = agent_pid(&h);
    let workers: Vec<i32> = h.children().into_iter().filter(|&p| p != victim).collect();
    kill(victim, libc::SIGKILL);
    let mut new = 0;
    let respawned = wait_until(Duration::from_secs(5), || {
        new = agent_pid(&h);
        new != victim && h.children().contains(&new) && h.children().len() == WORKERS + 1
    });
    assert!(respawned, "agent not respawned: {victim} -> {new}, children {:?}\n{}", h.children(), h.logs());
    // The workers were left alone.
    assert!(workers.iter().all(|w| h.children().contains(w)), "{workers:?} vs {:?}", h.children());
    // The new agent's timer counts on.
    assert!(wait_until(Duration::from_secs(5), || get(&h, "ticker") == new.to_string()), "{}", h.logs());
    let n = ticks(&h);
    assert!(wait_until(Duration::from_secs(5), || ticks(&h) >= n + 2), "{}", h.logs());
    if !is_nginx() {
        assert!(h.wait_log("logs/error.log", &format!("privileged agent process {victim} exited on signal 9"), Duration::from_secs(2)));
    }
}

#[test]
fn reload_replaces_the_agent() {
    let Some(h) = start() else { return };
    assert!(wait_children(&h, WORKERS + 1), "{}", h.logs());
    let old = agent_pid(&h);
    let out = h.prefix.cli(&["-s", "reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut new = old;
    let replaced = wait_until(Duration::from_secs(10), || {
        new = agent_pid(&h);
        new != old && !pid_alive(old) && h.children().len() == WORKERS + 1
    });
    assert!(replaced, "agent {old} -> {new}, children {:?}\n{}", h.children(), h.logs());
    assert!(h.children().contains(&new));
    // The old agent's timer ended prematurely.
    assert!(h.wait_log("logs/error.log", "agent timer premature, exiting=true", Duration::from_secs(2)), "{}", h.error_log());
}

#[test]
fn quit_stops_the_agent_with_the_workers() {
    let Some(mut h) = start() else { return };
    assert!(wait_children(&h, WORKERS + 1), "{}", h.logs());
    let agent = agent_pid(&h);
    // Its one-shot cosocket timer is done (else the stop waits for it, as nginx's would).
    assert!(wait_until(Duration::from_secs(5), || get(&h, "cosocket") != "nil"), "{}", h.logs());
    let kids = h.children();
    h.signal(libc::SIGQUIT);
    assert_eq!(h.wait_exit(Duration::from_secs(10)), Some(0), "{}", h.logs());
    assert!(wait_until(Duration::from_secs(2), || kids.iter().all(|&k| !pid_alive(k))), "{kids:?} left\n{}", h.logs());
    assert!(!pid_alive(agent));
    assert!(h.prefix.read_file("logs/error.log").contains("agent timer premature, exiting=true"), "{}", h.error_log());
}

#[test]
fn enable_outside_init_by_lua_is_refused() {
    let h = Prefix::new().start(&agent_conf());
    for _ in 0..4 {
        assert_eq!(h.get("/enable").text(), "nil API disabled in the current context\n");
    }
}

#[test]
fn no_agent_with_master_process_off() {
    // OpenResty: enable_privileged_agent answers true, but the single process starts none.
    let conf = agent_conf().replace(&format!("master_process on;\nworker_processes {WORKERS};"), "master_process off;");
    let h = Prefix::new().start(&conf);
    let enable = get(&h, "enable");
    if is_nginx() && enable == NO_PATCH {
        return;
    }
    assert_eq!(enable, "true nil");
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.children().is_empty(), "{:?}", h.children());
    assert_eq!(get(&h, "agent"), "nil");
}
