//! The process model and signals: master + workers, respawn, reload under load without a
//! failed request, graceful/fast stop, `-s` via the pid file, and the log formats.
//! nginx is the oracle.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A config with a master and `workers` workers (the master stays in the foreground).
fn master_conf(workers: usize, text: &str) -> String {
    let body = format!("        location / {{ return 200 \"{text}\"; }}\n        location /static/ {{ root html; }}");
    server_conf(&body).replace("master_process off;", &format!("master_process on;\nworker_processes {workers};"))
}

fn start_master(workers: usize, text: &str) -> Halo {
    let h = Prefix::new().start(&master_conf(workers, text));
    assert!(
        wait_until(Duration::from_secs(5), || h.children().len() == workers),
        "expected {workers} workers, got {:?}\n{}",
        h.children(),
        h.logs()
    );
    h
}

#[test]
fn master_with_two_workers_serves() {
    let h = start_master(2, "w");
    for _ in 0..20 {
        assert_eq!(h.get("/").text(), "w");
    }
    // The pid file names the master.
    let pid: i32 = h.prefix.read_file("logs/nginx.pid").trim().parse().expect("bad pid file");
    assert_eq!(pid, h.pid());
}

#[test]
fn killed_worker_is_respawned() {
    let h = start_master(2, "alive");
    let before = h.children();
    let victim = before[0];
    kill(victim, libc::SIGKILL);
    let respawned = wait_until(Duration::from_secs(5), || {
        let now = h.children();
        now.len() == 2 && !now.contains(&victim)
    });
    assert!(respawned, "worker not respawned: before {before:?}, now {:?}\n{}", h.children(), h.logs());
    for _ in 0..10 {
        assert_eq!(h.get("/").text(), "alive");
    }
    assert!(
        h.wait_log("logs/error.log", &format!("process {victim} exited on signal 9"), Duration::from_secs(2)),
        "no log line about the dead worker\n{}",
        h.error_log()
    );
}

/// Outcome counters of the load clients in the reload test.
#[derive(Default)]
struct Stats {
    ok: AtomicUsize,
    v2: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One GET on a fresh connection.
fn one_shot(port: u16, stats: &Stats) {
    let mut c = Conn::new(port);
    c.send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    match c.try_read_response(false) {
        Ok(r) => record(&r, stats),
        Err(e) => stats.failures.lock().unwrap().push(format!("one-shot: {e}")),
    }
}

fn record(r: &Response, stats: &Stats) {
    match (r.status, r.text().as_str()) {
        (200, "v1") => {
            stats.ok.fetch_add(1, Ordering::SeqCst);
        }
        (200, "v2") => {
            stats.ok.fetch_add(1, Ordering::SeqCst);
            stats.v2.fetch_add(1, Ordering::SeqCst);
        }
        _ => stats.failures.lock().unwrap().push(format!("unexpected response {r:?}")),
    }
}

/// Requests on a keep-alive connection. A server may close an idle keep-alive connection at
/// any time (an old worker does on reload): if not one byte of the response came back, the
/// request was never processed and is retried on a new connection, as HTTP clients do.
fn keep_alive_client(port: u16, stats: &Stats, stop: &AtomicBool) {
    let mut c = Conn::new(port);
    while !stop.load(Ordering::SeqCst) {
        let sent = c.try_send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let res = match sent {
            Ok(()) => c.try_read_response(false),
            Err(e) => Err(format!("send: {e}")),
        };
        match res {
            Ok(r) => {
                record(&r, stats);
                if r.closes() {
                    c = Conn::new(port);
                }
            }
            Err(e) if c.buf.is_empty() => {
                let _ = e;
                c = Conn::new(port);
            }
            Err(e) => {
                stats.failures.lock().unwrap().push(format!("keep-alive: {e}"));
                c = Conn::new(port);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn reload_under_load(via_cli: bool) {
    let h = start_master(2, "v1");
    let old_workers = h.children();
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let port = h.port;
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (stats, stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                one_shot(port, &stats);
            }
        }));
    }
    for _ in 0..2 {
        let (stats, stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || keep_alive_client(port, &stats, &stop)));
    }
    std::thread::sleep(Duration::from_millis(300));
    h.rewrite_conf(&master_conf(2, "v2"));
    if via_cli {
        let out = h.prefix.cli(&["-s", "reload"]);
        assert!(out.status.success(), "-s reload failed: {}", String::from_utf8_lossy(&out.stderr));
    } else {
        h.signal(libc::SIGHUP);
    }
    let switched = wait_until(Duration::from_secs(10), || stats.v2.load(Ordering::SeqCst) >= 50);
    // Keep the load on a little longer while old workers drain.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let failures = stats.failures.lock().unwrap().clone();
    assert!(switched, "no v2 responses after reload\n{}", h.logs());
    assert!(failures.is_empty(), "{} failed requests of {}: {:#?}", failures.len(), stats.ok.load(Ordering::SeqCst), &failures[..failures.len().min(10)]);
    assert!(stats.ok.load(Ordering::SeqCst) > 100, "too little load to mean anything");
    // Old workers finish and exit; the new set is running.
    assert!(
        wait_until(Duration::from_secs(10), || old_workers.iter().all(|p| !pid_alive(*p))),
        "old workers {old_workers:?} still alive\n{}",
        h.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || h.children().len() == 2), "workers now: {:?}", h.children());
    assert_eq!(h.get("/").text(), "v2");
}

#[test]
fn reload_by_sighup_under_load_fails_no_request() {
    reload_under_load(false);
}

#[test]
fn reload_by_cli_under_load_fails_no_request() {
    reload_under_load(true);
}

#[test]
fn reload_with_bad_config_keeps_old_one() {
    let h = start_master(2, "v1");
    let before = h.children();
    h.rewrite_conf(&master_conf(2, "v2").replace("server_name localhost;", "server_name localhost; nonsense;"));
    h.signal(libc::SIGHUP);
    assert!(
        h.wait_log("logs/error.log", "unknown directive \"nonsense\"", Duration::from_secs(5)),
        "bad config not reported\n{}",
        h.logs()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.get("/").text(), "v1");
    assert_eq!(h.children(), before);
}

#[test]
fn sigquit_graceful_stop() {
    let mut h = start_master(2, "q");
    let workers = h.children();
    // An in-flight request finishes: half a request sent before SIGQUIT, the rest after.
    let mut c = h.connect();
    c.send("GET / HTTP/1.1\r\nHost: localhost\r\n");
    std::thread::sleep(Duration::from_millis(100));
    h.signal(libc::SIGQUIT);
    std::thread::sleep(Duration::from_millis(100));
    let _ = c.try_send("Connection: close\r\n\r\n");
    let code = h.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "master did not exit cleanly\n{}", h.logs());
    assert!(!h.path().join("logs/nginx.pid").exists(), "pid file left behind");
    assert!(workers.iter().all(|p| !pid_alive(*p)), "workers outlived the master");
    if let Ok(r) = c.try_read_response(false) {
        assert_eq!(r.text(), "q");
    }
}

#[test]
fn sigterm_fast_stop() {
    let mut h = start_master(2, "t");
    let workers = h.children();
    // Idle connections must not hold the stop.
    let _idle = h.connect();
    h.signal(libc::SIGTERM);
    let code = h.wait_exit(Duration::from_secs(3));
    assert_eq!(code, Some(0), "master did not stop fast\n{}", h.logs());
    assert!(!h.path().join("logs/nginx.pid").exists(), "pid file left behind");
    assert!(wait_until(Duration::from_secs(2), || workers.iter().all(|p| !pid_alive(*p))));
}

#[test]
fn cli_quit_via_pid_file() {
    let mut h = start_master(2, "x");
    let out = h.prefix.cli(&["-s", "quit"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(h.wait_exit(Duration::from_secs(10)), Some(0), "{}", h.logs());
}

#[test]
fn cli_stop_via_pid_file_single_process() {
    let mut h = Halo::server("        location / { return 200 \"single\"; }");
    assert_eq!(h.get("/").text(), "single");
    let out = h.prefix.cli(&["-s", "stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(h.wait_exit(Duration::from_secs(5)), Some(0), "{}", h.logs());
    assert!(!h.path().join("logs/nginx.pid").exists(), "pid file left behind");
}

#[test]
fn cli_signal_without_running_server_fails() {
    let p = Prefix::new();
    p.write_conf(&server_conf("").replace("{{PORT}}", &free_port().to_string()));
    let out = p.cli(&["-s", "stop"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_contains(&err, "[error]");
    assert_contains(&err, "nginx.pid");
}

const ERROR_LINE: &str = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(debug|info|notice|warn|error|crit|alert|emerg)\] \d+#\d+: ";

#[test]
fn error_log_format() {
    let h = Halo::server("        root html;");
    assert_eq!(h.get("/missing.txt").status, 404);
    let missing = h.path().join("html/missing.txt");
    let want = format!("open() \"{}\" failed (2: No such file or directory)", missing.display());
    assert!(h.wait_log("logs/error.log", &want, Duration::from_secs(2)), "no open() error\n{}", h.error_log());
    let re = regex::Regex::new(ERROR_LINE).unwrap();
    let log = h.error_log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(re.is_match(line), "not an nginx error log line: {line:?}");
    }
    let line = log.lines().find(|l| l.contains(&want)).unwrap();
    assert!(line.contains("[error]"), "{line}");
    // The request context nginx appends.
    assert_contains(line, ", client: 127.0.0.1, server: localhost, request: \"GET /missing.txt HTTP/1.1\", host: \"localhost\"");
    assert!(regex::Regex::new(r"\] \d+#\d+: \*\d+ open\(\)").unwrap().is_match(line), "no connection number: {line}");
    // host: is the Host header as sent, its port kept.
    let with_port = format!("localhost:{}", h.port);
    assert_eq!(h.get_host("/missing.txt", &with_port).status, 404);
    let want = format!("request: \"GET /missing.txt HTTP/1.1\", host: \"{with_port}\"");
    assert!(h.wait_log("logs/error.log", &want, Duration::from_secs(2)), "no host with its port\n{}", h.error_log());
}

#[test]
fn access_log_combined_format() {
    let h = Halo::server("        location / { return 200 \"hello\\n\"; }");
    let r = h.get_response(
        "GET /hello?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test-agent/1.0\r\nReferer: http://ref.test/\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    h.get_response("GET /second HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(
        wait_until(Duration::from_secs(2), || h.access_log().lines().count() >= 2),
        "access log: {:?}",
        h.access_log()
    );
    let log = h.access_log();
    let lines: Vec<&str> = log.lines().collect();
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /hello\?x=1 HTTP/1\.1" 200 6 "http://ref\.test/" "test-agent/1\.0"$"#,
    )
    .unwrap();
    assert!(re.is_match(lines[0]), "bad access log line: {:?}", lines[0]);
    assert!(lines[1].ends_with(r#""GET /second HTTP/1.1" 200 6 "-" "-""#), "{:?}", lines[1]);
}

#[test]
fn access_log_custom_format_and_bad_request() {
    let conf = http_conf(
        r#"
    log_format mine '$remote_addr|$request_method|$uri|$args|$status|$body_bytes_sent|$http_x_test';
    server {
        listen 127.0.0.1:{{PORT}};
        server_name localhost;
        access_log logs/mine.log mine;
        location / { return 200 "abc"; }
    }"#,
    );
    let h = Prefix::new().start(&conf);
    h.get_response("GET /p?a=b HTTP/1.1\r\nHost: localhost\r\nX-Test: hi\r\nConnection: close\r\n\r\n");
    assert!(h.wait_log("logs/mine.log", "\n", Duration::from_secs(2)));
    assert_eq!(h.prefix.read_file("logs/mine.log").lines().next(), Some("127.0.0.1|GET|/p|a=b|200|3|hi"));
    // A 400 is logged too.
    let mut c = h.connect();
    c.send("BAD\r\n\r\n");
    c.read_to_close();
    // nginx logs the request only once lingering close ends, i.e. when the client closes.
    drop(c);
    let two = || h.prefix.read_file("logs/mine.log").lines().count() >= 2;
    assert!(wait_until(Duration::from_secs(2), two), "{:?}\n{}", h.prefix.read_file("logs/mine.log"), h.logs());
    let log = h.prefix.read_file("logs/mine.log");
    assert_contains(log.lines().nth(1).unwrap(), "|400|");
}

#[test]
fn reopen_logs() {
    let h = start_master(1, "r");
    h.get("/");
    assert!(wait_until(Duration::from_secs(2), || !h.access_log().is_empty()));
    std::fs::rename(h.path().join("logs/access.log"), h.path().join("logs/access.log.1")).unwrap();
    let out = h.prefix.cli(&["-s", "reopen"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The workers reopen asynchronously: keep requesting until the new file gets a line.
    let reopened = wait_until(Duration::from_secs(5), || {
        h.get("/");
        !h.access_log().is_empty()
    });
    assert!(reopened, "access.log not reopened\n{}", h.logs());
}

#[test]
fn workers_share_the_load_port_after_start() {
    // Many short connections all succeed with two workers accepting.
    let h = start_master(2, "s");
    let start = Instant::now();
    for _ in 0..200 {
        assert_eq!(h.get("/").text(), "s");
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn daemon_on_detaches_and_stops_by_pid_file() {
    let p = Prefix::new();
    let port = free_port();
    let conf = server_conf("        location / { return 200 \"daemon\"; }")
        .replace("{{PORT}}", &port.to_string())
        .replace("daemon off;", "daemon on;");
    assert!(conf.contains("daemon on;"), "{conf}");
    p.write_conf(&conf);
    // The command returns once the daemon is detached.
    let out = p.cli(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pid_file = p.path().join("logs/nginx.pid");
    assert!(wait_until(Duration::from_secs(5), || pid_file.exists()), "no pid file");
    let pid: i32 = p.read_file("logs/nginx.pid").trim().parse().unwrap();
    assert!(pid_alive(pid), "daemon {pid} not running");
    let resp = parse(&request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
    assert_eq!(resp.text(), "daemon");
    let out = p.cli(&["-s", "stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)), "daemon {pid} did not stop");
    // Log lines name the daemon's pid, not the pid of the command that started it.
    let log = p.read_file("logs/error.log");
    assert!(log.lines().any(|l| l.contains(&format!(" {pid}#{pid}: "))), "{log}");
}
