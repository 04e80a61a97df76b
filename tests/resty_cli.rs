//! `halo resty`: OpenResty's resty command, run as a user runs it, checking stdout, stderr
//! and the exit code against resty-cli's documented behaviour (its README and t/resty/*.t:
//! the messages, the exit codes, `arg`, print's rendering, ERROR: with a traceback).
//!
//! Against the oracle (HALO_TEST_BIN=/usr/sbin/nginx) the same commands run with
//! `--nginx /usr/sbin/nginx` and a `--main-include` loading Debian's Lua module, so the
//! config halo resty writes is served by nginx + lua-nginx-module instead of halo.

mod common;
use common::peers::*;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The options that point `halo resty` at the oracle (none for halo).
fn oracle_opts() -> Vec<String> {
    if !is_nginx() {
        return Vec::new();
    }
    let file = std::env::temp_dir().join(format!("halo-resty-modules-{}.conf", std::process::id()));
    std::fs::write(&file, oracle_modules("_by_lua")).unwrap();
    vec!["--nginx".into(), bin().display().to_string(), "--main-include".into(), file.display().to_string()]
}

fn resty_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_halo"));
    cmd.arg("resty").args(oracle_opts()).args(args);
    cmd
}

fn resty(args: &[&str]) -> Output {
    run_with_timeout(&mut resty_cmd(args), Duration::from_secs(20))
}

/// (stdout, stderr, exit code).
fn run(args: &[&str]) -> (String, String, i32) {
    let out = resty(args);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A Lua file in a fresh directory (kept alive by the returned guard).
fn script(src: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.lua");
    std::fs::write(&path, src).unwrap();
    (dir, path.display().to_string())
}

#[test]
fn e_runs_code_with_the_ngx_api_and_says_to_stdout() {
    assert_eq!(run(&["-e", "ngx.say(ngx.md5(\"x\"))"]), ("9dd4e461268c8034f5c8564e155c67a6\n".into(), String::new(), 0));
    // Several -e run in order (joined with "; ").
    assert_eq!(run(&["-e", "print(1)", "-e", "ngx.print(2) ngx.say()"]), ("1\n2\n".into(), String::new(), 0));
}

#[test]
fn print_renders_its_arguments_as_resty_does() {
    let (out, err, code) = run(&["-e", "print(\"a\", nil, true, false, 1.5, {1, {2, \"x\"}}, ngx.null) ngx.print(\"p\", 7)"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("aniltruefalse1.512xnull\np7", "", 0));
}

#[test]
fn a_script_gets_arg_and_its_arguments_verbatim() {
    let (_d, path) = script("for i = -2, 6 do print(i, \": \", arg[i]) end\nprint(select('#', ...))\n");
    let (out, err, code) = run(&["-I", "/tmp", &path, "1", "two words", "]]", "]=]", "a]=", "\nx"]);
    assert_eq!((err.as_str(), code), ("", 0));
    let want = format!("-2: -I\n-1: /tmp\n0: {path}\n1: 1\n2: two words\n3: ]]\n4: ]=]\n5: a]=\n6: \nx\n0\n");
    assert_eq!(out, want);
    // Words after the file are the script's, options or not.
    let (out, ..) = run(&[&path, "--", "--help"]);
    assert!(out.contains("\n1: --\n2: --help\n"), "{out}");
}

#[test]
fn an_uncaught_error_prints_error_and_a_traceback_and_exits_1() {
    let (_d, path) = script("print(\"before\")\nlocal function f()\n    error(\"something went wrong\")\nend\nf()\n");
    let (out, err, code) = run(&[&path]);
    assert_eq!((out.as_str(), code), ("before\n", 1));
    assert!(err.starts_with(&format!("ERROR: {path}:3: something went wrong\nstack traceback:\n")), "{err}");
    assert_contains(&err, &format!("{path}:3: in function 'f'"));
    // A syntax error is reported the same way, before anything runs.
    let (out, err, code) = run(&["-e", "print(1) x x"]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(err.starts_with("ERROR: (command line -e):1: syntax error near 'x'") || err.starts_with("ERROR: (command line -e):1: '=' expected near 'x'"), "{err}");
}

#[test]
fn os_exit_and_ngx_exit_set_the_exit_code_and_flush_stdout() {
    assert_eq!(run(&["-e", "io.write(\"x\") os.exit(3)"]), ("x".into(), String::new(), 3));
    assert_eq!(run(&["-e", "print(\"y\") ngx.exit(4) print(\"not reached\")"]), ("y\n".into(), String::new(), 4));
    assert_eq!(run(&["-e", "os.exit(false)"]).2, 1);
    assert_eq!(run(&["-e", "os.exit(true)"]).2, 0);
}

#[test]
fn timers_and_sleep_run_and_what_is_left_at_the_end_is_dropped() {
    let code = r#"
        ngx.timer.at(0.02, function(premature) print("timer premature=", premature, " exiting=", ngx.worker.exiting()) end)
        ngx.sleep(0.1)
        print("slept ", ngx.get_phase())
        ngx.timer.at(0, function() ngx.sleep(5) print("never: running") end)
        ngx.timer.at(5, function() print("never: pending") end)
        print("end ", ngx.timer.pending_count(), " ", ngx.timer.running_count())"#;
    let start = Instant::now();
    let (out, err, code) = run(&["-e", code]);
    assert_eq!((out.as_str(), err.as_str(), code), ("timer premature=false exiting=false\nslept timer\nend 2 1\n", "", 0));
    assert!(start.elapsed() < Duration::from_secs(3), "waited for the timers left: {:?}", start.elapsed());
}

#[test]
fn a_cosocket_talks_to_a_real_server() {
    let peer = TcpPeer::start(Mode::Echo);
    let code = format!(
        r#"local sock = ngx.socket.tcp()
        sock:settimeout(2000)
        assert(sock:connect("127.0.0.1", {}))
        assert(sock:send("hello\n"))
        print("got: ", sock:receive())
        sock:close()"#,
        peer.port()
    );
    assert_eq!(run(&["-e", &code]), ("got: hello\n".into(), String::new(), 0));
    assert_eq!(peer.received_text(), "hello\n");
}

#[test]
fn shdict_options_make_shared_dicts() {
    let code = "local d, c = ngx.shared.dogs, ngx.shared.cats_x\nd:set(\"Tom\", 32) c:incr(\"n\", 5, 1)\nprint(d:get(\"Tom\"), \" \", ngx.shared.none, \" \", c:get(\"n\"))";
    assert_eq!(run(&["--shdict", "dogs 12k", "--shdict=cats_x   1M", "-e", code]), ("32 nil 6\n".into(), String::new(), 0));
    assert_eq!(run(&["--shdict=dogs", "-e", "1"]), (String::new(), "ERROR: invalid --shdict option value: dogs\n  (expecting NAME SIZE)\n".into(), 255));
}

#[test]
fn include_dirs_and_l_find_lua_modules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greet.lua"), "print(\"loaded\")\nreturn { hi = function(n) return \"hi \" .. n end }\n").unwrap();
    let d = dir.path().display().to_string();
    assert_eq!(run(&["-I", &d, "-e", "print(require(\"greet\").hi(\"x\"))"]), ("loaded\nhi x\n".into(), String::new(), 0));
    assert_eq!(run(&[&format!("-I{d}"), "-l", "greet", "-e", "print(2)"]), ("loaded\n2\n".into(), String::new(), 0));
    let (out, err, code) = run(&["-l", "missing_mod_x"]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(err.starts_with("ERROR: ") && err.contains("module 'missing_mod_x' not found"), "{err}");
    assert_eq!(run(&["-I", "/no/such/dir", "-e", "1"]).1, "Search directory /no/such/dir is not found.\n");
}

#[test]
fn http_conf_and_includes_go_into_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("dicts.conf");
    std::fs::write(&inc, "lua_shared_dict cats 1m;\n").unwrap();
    let inc = inc.display().to_string();
    let code = "print(ngx.shared.dogs ~= nil, \" \", ngx.shared.cats ~= nil)";
    assert_eq!(run(&["--http-conf", "lua_shared_dict dogs 1m;", "--http-include", &inc, "-e", code]), ("true true\n".into(), String::new(), 0));
    let (out, err, code) = run(&["--main-include", "/no/such/file", "-e", "1"]);
    assert_eq!((out.as_str(), code), ("", 2));
    assert_eq!(err, "ERROR: could not find main include file '/no/such/file'\n");
    // The server's own config check: lua_shared_dict is not allowed in main.
    let (_, err, code) = run(&["--main-include", &inc, "-e", "1"]);
    assert_eq!(code, 1);
    assert_contains(&err, "[emerg]");
    assert_contains(&err, &format!("\"lua_shared_dict\" directive is not allowed here in {inc}:1"));
}

#[test]
fn main_conf_goes_into_the_main_context() {
    assert_eq!(run(&["--main-conf", "worker_shutdown_timeout 1s;", "-e", "print(1)"]), ("1\n".into(), String::new(), 0));
    let (out, err, code) = run(&["--main-conf", "bogus_main_directive on;", "-e", "print(1)"]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert_contains(&err, "unknown directive \"bogus_main_directive\" in /");
}

#[test]
fn options_reach_the_generated_config() {
    let code = "local f = assert(io.open(ngx.config.prefix() .. \"conf/nginx.conf\")) print(f:read(\"*a\")) f:close()";
    let (out, _, status) = run(&["-c", "20", "--ns", "127.0.0.1", "--ns", "[::1]", "-e", code]);
    assert_eq!(status, 0);
    assert_contains(&out, "worker_connections 20;");
    assert_contains(&out, "resolver 127.0.0.1 [::1] ipv6=off;");
    let (out, ..) = run(&["--resolve-ipv6", "--ns", "127.0.0.1", "-e", code]);
    assert_contains(&out, "resolver 127.0.0.1;");
    assert_eq!(run(&["--ns", "invalid", "-e", "1"]).1, "ERROR: Invalid --ns option value: invalid\n  (expecting an IP address)\n");
    assert_eq!(run(&["-c", "x", "-e", "1"]), (String::new(), "option -c value must be a number but found 'x'.\n".into(), 255));
}

#[test]
fn ngx_log_goes_to_stderr_at_the_errlog_level() {
    let code = "ngx.log(ngx.WARN, \"warned\") ngx.log(ngx.INFO, \"informed\") ngx.log(ngx.DEBUG, \"debugged\")";
    let (out, err, status) = run(&["-e", code]);
    assert_eq!((out.as_str(), status), ("", 0));
    assert_contains(&err, "[warn]");
    assert_contains(&err, "[lua] (command line -e):1: warned");
    assert!(!err.contains("informed") && !err.contains("debugged"), "{err}");
    let (_, err, _) = run(&["--errlog-level", "info", "-e", code]);
    assert_contains(&err, "(command line -e):1: informed");
    assert!(!err.contains("debugged"), "{err}");
}

#[test]
fn bad_command_lines_fail_as_resty_does() {
    assert_eq!(run(&[]), (String::new(), "Neither Lua input file nor -e \"\" option specified.\n".into(), 255));
    assert_eq!(run(&["/no/such/file.lua"]), (String::new(), "Lua input file /no/such/file.lua not found.\n".into(), 2));
    assert_eq!(run(&["-e"]), (String::new(), "option -e takes an argument but found none.\n".into(), 255));
    let (out, err, code) = run(&["--bogus", "-e", "1"]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(err.starts_with("ERROR: unknown option --bogus\n\nresty [options] [lua-file [args]]\n"), "{err}");
    assert_eq!(run(&["--gdb", "--valgrind", "-e", "1"]), (String::new(), "ERROR: options --gdb and --valgrind cannot be specified at the same time.\n".into(), 25));
    let (_, err, code) = run(&["--nginx", "/no/such/nginx", "-e", "1"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("ERROR: failed to run command \"/no/such/nginx ") && err.ends_with(": No such file or directory\n"), "{err}");
}

#[test]
fn help_and_version() {
    let (out, err, code) = run(&["-h"]);
    assert_eq!((err.as_str(), code), ("", 0));
    assert!(out.starts_with("resty [options] [lua-file [args]]\n\nOptions:\n"), "{out}");
    for opt in ["-c NUM", "-e PROG", "-I DIR", "-j v", "-l LIB", "--shdict 'NAME SIZE'", "--http-conf", "--main-conf", "--main-include", "--ns IP", "--nginx", "-V"] {
        assert_contains(&out, opt);
    }
    let (out, err, code) = run(&["-V"]);
    assert_eq!((out.as_str(), code), ("", 0));
    assert!(err.starts_with(&format!("resty 0.21\n{0} version: {0}/", prog())), "{err}");
}

#[test]
fn j_v_reports_traces_on_stderr() {
    let (out, err, code) = run(&["-j", "v", "-e", "local s = 0 for i = 1, 200 do s = s + i end print(s)"]);
    assert_eq!((out.as_str(), code), ("20100\n", 0));
    assert_eq!(err, "[TRACE   1 (command line -e):1 loop]\n");
    let (_, err, _) = run(&["-j", "off", "-e", "require \"jit.v\".on() for i = 1, 200 do end"]);
    assert_eq!(err, "");
}

#[test]
fn the_temporary_prefix_is_removed() {
    let (out, _, code) = run(&["-e", "print(ngx.config.prefix())"]);
    assert_eq!(code, 0);
    let prefix = out.trim_end();
    assert!(prefix.contains("/resty_") && prefix.ends_with('/'), "{prefix}");
    assert!(!std::path::Path::new(prefix).exists(), "{prefix} left behind");
}

/// Starts `halo resty -e CODE`, waits for its first line of output, returns the child.
fn start_sleeping(code: &str) -> std::process::Child {
    let mut child = resty_cmd(&["-e", code]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "up\n");
    child
}

fn wait_code(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("resty did not exit after the signal");
}

#[test]
fn signals_stop_the_run_with_resty_exit_codes() {
    for (sig, want) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = start_sleeping("print(\"up\") ngx.flush() ngx.sleep(30)");
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(child.id() as i32, sig) };
        assert_eq!(wait_code(&mut child), Some(want), "signal {sig}");
    }
}

#[test]
fn a_binary_named_resty_is_the_resty_command() {
    if is_nginx() {
        return; // halo's own entry point; nothing of nginx's is involved
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("resty");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_halo"), &link).unwrap();
    // arg[-3] is the program, then the words before the (absent) file: -e and the code.
    let out = run_with_timeout(Command::new(&link).args(["-e", "print(arg[-3], arg[-2])"]), Duration::from_secs(20));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}-e\n", link.display()));
    assert_eq!(out.status.code(), Some(0));
}

/// The script sees the environment resty was started with (resty lists it all in `env`
/// lines, which a worker needs to show a variable to Lua).
#[test]
fn os_getenv_sees_the_callers_environment() {
    let out = run_with_timeout(resty_cmd(&["-e", "print(os.getenv(\"HALO_T_RESTY\"))"]).env("HALO_T_RESTY", "seen"), Duration::from_secs(20));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "seen\n", "{}", String::from_utf8_lossy(&out.stderr));
}
