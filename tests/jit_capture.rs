//! `lua_jit_log` / `--jit-log`: the real server records JIT events of each
//! process as JSON lines (jit-logs/README.md), decoded with the running VM's
//! vmdef, names halo's own C functions, keeps user jit.attach handlers
//! working, and writes counters and the blacklist scan when a worker stops.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Every record of every `*.jsonl` file in `dir`, per file name.
fn records(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        let recs = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{name}: bad JSON line {l:?}: {err}")))
            .collect();
        out.push((name, recs));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Stops the server gracefully (SIGQUIT) so workers write their last records.
fn quit(h: &mut Halo) {
    h.signal(libc::SIGQUIT);
    assert!(h.wait_exit(Duration::from_secs(10)).is_some(), "server did not stop\n{}", h.logs());
}

fn ev<'a>(recs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["ev"] == kind).collect()
}

const HOT: &str = r#"
    -- a closure per iteration: LuaJIT aborts the loop's trace (NYI: FNEW)
    local t = {}
    for i = 1, 300 do
        t[i % 8] = function() return i end
    end
    -- a classic lua_CFunction of halo's: the trace stitches around it
    local now, s = require("halo.capi").now, 0
    for i = 1, 300 do
        s = s + now()
    end
    ngx.say("ok")
"#;

#[test]
fn worker_events_are_recorded_and_decoded() {
    let conf = format!(
        "worker_processes 2;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\nevents {{}}\n\
         http {{\n    lua_jit_log jit verbose;\n    init_by_lua_block {{ local x = 0 for i = 1, 500 do x = x + i end }}\n    \
         server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        location / {{ content_by_lua_block {{ {HOT} }} }}\n    }}\n}}\n"
    );
    let mut h = Prefix::new().start(&conf);
    for _ in 0..6 {
        assert_eq!(h.get("/").text(), "ok\n");
    }
    quit(&mut h);
    let dir = h.path().join("jit");
    let files = records(&dir);
    let master: Vec<_> = files.iter().filter(|(n, _)| n.starts_with("jit-master-")).collect();
    let workers: Vec<_> = files.iter().filter(|(n, _)| n.starts_with("jit-w")).collect();
    assert_eq!(master.len(), 1, "one master file (init_by_lua's loop): {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert_eq!(workers.len(), 2, "one file per worker: {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());

    // init_by_lua ran in the master and its loop compiled there.
    let m = &master[0].1;
    assert_eq!(m[0]["ev"], "open");
    assert_eq!(m[0]["role"], "master");
    assert!(ev(m, "stop").iter().any(|r| r["link"] == "loop" && r["loc"]["chunk"].as_str().unwrap().starts_with("init_by_lua(nginx.conf:")), "{m:?}");

    // The worker that served the requests: decoded abort and a named C callee.
    let all: Vec<&Value> = workers.iter().flat_map(|(_, r)| r.iter()).collect();
    for (name, recs) in &workers {
        assert_eq!(recs[0]["ev"], "open", "{name}");
        assert_eq!(recs[0]["role"], "worker", "{name}");
        assert!(recs[0]["worker"].as_i64().unwrap() >= 0);
        assert!(recs[0]["luajit"].as_str().unwrap().starts_with("LuaJIT 2.1"));
        assert_eq!(recs.last().unwrap()["ev"], "close", "{name}: a graceful stop ends with close");
    }
    let fnew = all
        .iter()
        .find(|r| r["ev"] == "abort" && r["nyi"] == "FNEW")
        .unwrap_or_else(|| panic!("no FNEW abort in {all:#?}"));
    assert_eq!(fnew["id"], "NYIBC");
    assert_eq!(fnew["reason"], "NYI: bytecode FNEW");
    assert_eq!(fnew["code"], 7);
    assert_eq!(fnew["at"]["kind"], "lua");
    assert!(fnew["at"]["chunk"].as_str().unwrap().starts_with("content_by_lua(nginx.conf:"), "{fnew}");
    let stitch = all
        .iter()
        .find(|r| r["ev"] == "stop" && r["link"] == "stitch")
        .unwrap_or_else(|| panic!("no stitch in {all:#?}"));
    assert_eq!(stitch["callee"]["kind"], "cfunc");
    assert_eq!(stitch["callee"]["name"], "halo_lua_now", "halo's C functions are named, not addresses");
    assert!(all.iter().any(|r| r["ev"] == "start" && r["kind"] == "stitch"), "the trace after the stitch");

    // verbose: jit.v's own text beside the records, per process.
    let vlogs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".v.log"))
        .collect();
    let text: String = vlogs.iter().map(|n| std::fs::read_to_string(dir.join(n)).unwrap()).collect();
    assert!(text.contains("-- NYI: bytecode FNEW"), "jit.v text: {text}");
}

#[test]
fn user_jit_attach_handlers_keep_working() {
    let conf = http_conf(
        r#"
    lua_jit_log jit;
    server {
        listen 127.0.0.1:{{PORT}};
        location / { content_by_lua_block {
            local seen = {}
            local function h(what) seen[#seen + 1] = what end
            jit.attach(h, "trace")
            local x = 0
            for i = 1, 500 do x = x + i end
            jit.attach(h)          -- detach, as LuaJIT's API does
            for i = 1, 500 do x = x - i end
            ngx.say(table.concat(seen, ","))
        } }
    }"#,
    );
    let mut h = Prefix::new().start(&conf);
    let body = h.get("/").text();
    assert!(body.starts_with("start,stop"), "the user's handler saw the first trace: {body:?}");
    assert!(!body.contains("stop,start"), "detached before the second loop: {body:?}");
    quit(&mut h);
    // ... and halo's capture saw both loops.
    let files = records(&h.path().join("jit"));
    let loops = files.iter().flat_map(|(_, r)| r.iter()).filter(|r| r["ev"] == "stop" && r["link"] == "loop").count();
    assert!(loops >= 2, "{files:?}");
}

#[test]
fn jit_log_from_the_command_line() {
    let conf = server_conf(
        r#"
        location / { content_by_lua_block { local x = 0 for i = 1, 500 do x = x + i end ngx.say(x) } }"#,
    );
    let mut h = Prefix::new().start_with_args(&conf, &["--jit-log", "cli-logs"]);
    assert_eq!(h.get("/").text(), "125250\n");
    quit(&mut h);
    let files = records(&h.path().join("cli-logs"));
    assert!(!files.is_empty());
    assert!(files.iter().flat_map(|(_, r)| r.iter()).any(|r| r["ev"] == "stop" && r["link"] == "loop"), "{files:?}");
    // The report takes the directory for its logs.
    let out = std::process::Command::new(bin()).args(["jit", "report"]).arg(h.path().join("cli-logs")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("== halo jit report: 1 worker"), "{text}");
    let out = std::process::Command::new(bin()).args(["jit", "report"]).arg(h.path().join("logs")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no *.jsonl logs in this directory"));
}

#[test]
fn lua_jit_log_config_errors() {
    let p = Prefix::new();
    p.write_conf(&http_conf("    lua_jit_log jit fast;"));
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid value \"fast\" in \"lua_jit_log\" directive, it must be \"events\", \"verbose\" or \"dump\" in"),
        "{err}"
    );
    assert!(err.contains("nginx.conf:"), "names file:line: {err}");

    let p = Prefix::new();
    p.write_conf(&http_conf("    server { listen 127.0.0.1:1; location / { lua_jit_log jit; return 200; } }"));
    let out = p.cli(&["-t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"lua_jit_log\" directive is not allowed here"), "{err}");
}

/// README's JIT walkthrough (examples/jit): the report names the deliberate
/// NYI of lua/app.lua with its fix, and `halo jit lint` finds it statically.
#[test]
fn example_app_report_names_its_nyi() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jit");
    let conf = std::fs::read_to_string(root.join("conf/nginx.conf")).unwrap();
    assert!(conf.contains("127.0.0.1:8081"), "the walkthrough's port");
    let conf = format!("daemon off;\n{}", conf.replace("127.0.0.1:8081", "127.0.0.1:{{PORT}}"));
    let p = Prefix::new();
    p.write_file("lua/app.lua", std::fs::read(root.join("lua/app.lua")).unwrap());
    let mut h = p.start(&conf);
    for _ in 0..200 {
        assert_eq!(h.get("/items").text(), "64 items, 503 label bytes\n");
    }
    quit(&mut h);
    let logs: Vec<_> = std::fs::read_dir(h.path().join("logs/jit")).unwrap().flatten().map(|e| e.path()).collect();
    let out = std::process::Command::new(bin()).args(["jit", "report", "--json"]).args(&logs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "abort" && f["title"].as_str().unwrap().contains("NYI: bytecode FNEW at ") && f["title"].as_str().unwrap().ends_with("/lua/app.lua:15"))
        .unwrap_or_else(|| panic!("no FNEW finding at app.lua:15: {rep:#}"));
    assert!(finding["suggestion"].as_str().unwrap().contains("hoist the function out of the loop"), "{finding}");
    // The gate on the app's own code fails on it.
    let out = std::process::Command::new(bin()).args(["jit", "report", "--fail-on", "abort", "--paths", "**/lua/app.lua"]).args(&logs).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));

    let out = std::process::Command::new(bin()).args(["jit", "lint"]).arg(root.join("lua/app.lua")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("app.lua:15: fnew-in-loop"), "{text}");
}
