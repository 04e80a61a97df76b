//! `halo resty`: OpenResty's `resty` command. As resty-cli does, it writes
//! an nginx.conf into a temporary prefix (`conf`), with the code run in a
//! timer of the one server process, and runs this same binary on it (or
//! `--nginx PATH`), so the code meets the real worker, event loop, timers,
//! cosockets and shared dicts. It waits for that process, passes signals on
//! to it, exits with its status and removes the prefix.

mod conf;
mod options;

use std::path::{Path, PathBuf};
use std::process::Command;

use options::{fail, Options, Stop, DIE};

/// The resty-cli release whose behaviour this follows (`-V` prints it).
const RESTY_VERSION: &str = "0.21";

const USAGE: &str = "resty [options] [lua-file [args]]

Options:
    -c NUM              Set the maximal connection count (default: 64).
    -e PROG             Run the Lua code PROG (several are run in order,
                        before the Lua file).
    --gdb               Run the server process under GDB.
    --help, -h          Print this help.

    --errlog-level LEVEL
                        The error_log level: debug, info, notice, warn (the
                        default), error, crit, alert or emerg.

    --http-conf CONF    An nginx.conf snippet for the http {} block
                        (may be repeated).

    --http-include PATH Include the file in the http {} block (may be repeated).

    -I DIR              Add DIR to the Lua module search paths (?.lua, ?.so).

    -j dump             Turn on LuaJIT's jit.dump (traces in detail, on stdout).
    -j off              Turn LuaJIT's JIT compiler off.
    -j v                Turn on LuaJIT's jit.v (one line a trace, on stderr).

    -l LIB              Require the library LIB (as -e 'require \"LIB\"').

    --main-conf CONF    An nginx.conf snippet for the main context (may be
                        repeated).

    --main-include PATH Include the file in the main context (may be repeated;
                        before events {}, so it may hold load_module lines).

    --ns IP             A name server for the resolver (may be repeated;
                        default: those of /etc/resolv.conf).

    --resolve-ipv6      Make the resolver look up IPv6 addresses too.

    --rr                Record the server process with Mozilla rr.

    --shdict 'NAME SIZE'
                        A lua_shared_dict in the http {} block (may be repeated).

    --nginx PATH        Run this server binary instead of this halo (an
                        nginx with the Lua module, for comparison).

    -V, -v              Print the version numbers and the server's build.
    --valgrind          Run the server process under valgrind.
    --valgrind-opts OPTS
                        Extra options for valgrind.

The code runs in a timer of a halo process (master_process off), with the
ngx API of timers: ngx.say and print write to stdout, ngx.log to stderr,
arg[0] is the Lua file and arg[1], ... its arguments. An uncaught error
prints ERROR: and the traceback to stderr and exits with code 1.
";

/// Run `resty` with `words`, the command line after the program (from
/// "resty" on when called as `halo resty`); returns the exit code.
pub fn main(program: &str, words: &[String]) -> i32 {
    let skip = usize::from(words.first().is_some_and(|w| w == "resty"));
    match options::parse(&words[skip..]).and_then(|o| run(program, words, &o)) {
        Ok(code) => code,
        Err(Stop::Help) => {
            print!("{USAGE}");
            0
        }
        Err(Stop::Fail { msg, usage, code }) => {
            eprint!("{msg}");
            if usage {
                eprint!("{USAGE}");
            }
            code
        }
    }
}

/// resty-cli's exit code for a missing file: Perl's `die` after a failed
/// `-f` check exits with its errno.
const ENOENT: i32 = 2;

fn run(program: &str, words: &[String], o: &Options) -> Result<i32, Stop> {
    let server = match &o.nginx {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe().map_err(|e| fail(format!("ERROR: cannot find this program: {e}\n"), 1))?,
    };
    if o.version {
        eprintln!("resty {RESTY_VERSION}");
        return spawn_and_wait(Command::new(&server).arg("-V"));
    }
    for d in &o.inc_dirs {
        if !Path::new(d).is_dir() {
            return Err(fail(format!("Search directory {d} is not found.\n"), ENOENT));
        }
    }
    let luafile = o.rest.first();
    if o.src.is_empty() && luafile.is_none() {
        return Err(fail("Neither Lua input file nor -e \"\" option specified.\n", DIE));
    }
    if let Some(f) = luafile {
        if !Path::new(f).is_file() {
            return Err(fail(format!("Lua input file {f} not found.\n"), ENOENT));
        }
    }
    let includes = |kind: &str, paths: &[String]| {
        paths
            .iter()
            .map(|p| match Path::new(p).is_file() {
                true => Ok(absolute(p)),
                false => Err(fail(format!("ERROR: could not find {kind} include file '{p}'\n"), ENOENT)),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let main_includes = includes("main", &o.main_includes)?;
    let http_includes = includes("http", &o.http_includes)?;
    let wrapper = wrapper(o)?;

    let prefix = tempfile::Builder::new()
        .prefix("resty_")
        .tempdir()
        .map_err(|e| fail(format!("ERROR: cannot make a temporary directory: {e}\n"), 1))?;
    let dir = prefix.path();
    for sub in ["logs", "conf"] {
        std::fs::create_dir(dir.join(sub)).map_err(|e| fail(format!("failed to mkdir {}: {e}\n", dir.join(sub).display()), 1))?;
    }
    let mut chunks = Vec::new();
    let mut arg0 = String::new();
    if !o.src.is_empty() {
        let file = dir.join("conf/a.lua").to_string_lossy().into_owned();
        std::fs::write(&file, o.src.join("; ")).map_err(|e| fail(format!("Cannot open {file} for writing: {e}\n"), 1))?;
        chunks.push((file.clone(), "=(command line -e)".to_string()));
        arg0 = file;
    }
    if let Some(f) = luafile {
        chunks.push((f.clone(), format!("@{f}")));
        arg0 = f.clone();
    }
    // arg[-n..-1]: the program and the words before the Lua file.
    let before_file = words.len() - o.rest.len();
    let before = std::iter::once(program.to_string()).chain(words[..before_file].iter().cloned()).collect();
    let plan = conf::Plan {
        opts: o,
        nameservers: nameservers(o),
        main_includes,
        http_includes,
        chunks,
        arg0,
        before,
        // A worker's os.getenv sees only what `env` lists: all of it, as
        // resty-cli does.
        env: std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect(),
    };
    let conf_file = dir.join("conf/nginx.conf");
    std::fs::write(&conf_file, conf::nginx_conf(&plan)).map_err(|e| fail(format!("Cannot open {} for writing: {e}\n", conf_file.display()), 1))?;

    let mut cmd = match wrapper.split_first() {
        Some((w, args)) => {
            let mut c = Command::new(w);
            c.args(args).arg(&server);
            c
        }
        None => Command::new(&server),
    };
    cmd.arg("-p").arg(format!("{}/", dir.display())).arg("-c").arg("conf/nginx.conf");
    let code = spawn_and_wait(&mut cmd);
    drop(prefix);
    code
}

/// The debugger or checker the server runs under (`--gdb`, `--rr`,
/// `--valgrind`), at most one; resty-cli's exit code 25 when two are given.
fn wrapper(o: &Options) -> Result<Vec<String>, Stop> {
    let conflict = |a: &str, b: &str| Err(fail(format!("ERROR: options --{a} and --{b} cannot be specified at the same time.\n"), 25));
    match (o.gdb, o.rr, o.valgrind) {
        (true, _, true) => conflict("gdb", "valgrind"),
        (true, true, _) => conflict("gdb", "rr"),
        (_, true, true) => conflict("rr", "valgrind"),
        (true, ..) => Ok(vec!["gdb".into(), "--args".into()]),
        (_, true, _) => Ok(vec!["rr".into(), "record".into()]),
        (.., true) => Ok(std::iter::once("valgrind".to_string()).chain(o.valgrind_opts.iter().flat_map(|v| v.split_whitespace().map(String::from))).collect()),
        _ => Ok(Vec::new()),
    }
}

/// `--ns` servers, else the IPv4 ones of /etc/resolv.conf (at most 11), else
/// Google's, as resty-cli picks them.
fn nameservers(o: &Options) -> Vec<String> {
    if !o.ns.is_empty() {
        return o.ns.clone();
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .take(11)
        .map(String::from)
        .collect();
    if found.is_empty() {
        vec!["8.8.8.8".into(), "8.8.4.4".into()]
    } else {
        found
    }
}

fn absolute(p: &str) -> String {
    match std::env::current_dir() {
        Ok(d) if !p.starts_with('/') => d.join(p).to_string_lossy().into_owned(),
        _ => p.to_string(),
    }
}

/// Signals passed on to the server process, as resty-cli passes them.
const FORWARDED: [libc::c_int; 8] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGPIPE];

/// Run `cmd` to its end, passing signals on: SIGINT and SIGPIPE stop it
/// (SIGQUIT, then SIGKILL 0.1 s later) and exit 130 / 141; any other is
/// sent as is and, if that ends the process within 0.1 s, its status is
/// the exit code (143 for a SIGTERM it exited 0 on). Returns the status as
/// resty-cli does: the exit code, or the raw wait status of a signal death.
fn spawn_and_wait(cmd: &mut Command) -> Result<i32, Stop> {
    // SAFETY: sigset calls on a local set; the mask and SIGPIPE's default
    // action (std ignores it, and an ignored signal is never delivered)
    // are this thread's own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain([&libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // SAFETY: sigprocmask is async-signal-safe; the child starts with no
    // signal blocked (std keeps the parent's mask), as a server expects.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        let words: Vec<String> = std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
        fail(format!("ERROR: failed to run command \"{}\": {}\n", words.join(" "), strerror(&e)), e.raw_os_error().unwrap_or(1))
    })?;
    let pid = child.id() as i32;
    let status = |s: std::process::ExitStatus| {
        use std::os::unix::process::ExitStatusExt;
        s.code().filter(|&c| c != 0).unwrap_or(s.into_raw() & 0xff)
    };
    loop {
        // SAFETY: a valid, initialised set; no siginfo wanted.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if let Ok(Some(s)) = child.try_wait() {
            return Ok(status(s));
        }
        match sig {
            libc::SIGINT | libc::SIGPIPE => {
                let _ = crate::process::signals::kill(pid, libc::SIGQUIT);
                std::thread::sleep(std::time::Duration::from_millis(100));
                let _ = child.kill();
                let _ = child.wait();
                return Ok(if sig == libc::SIGINT { 130 } else { 141 });
            }
            s if s > 0 && s != libc::SIGCHLD => {
                let _ = crate::process::signals::kill(pid, s);
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
                while std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    if let Ok(Some(st)) = child.try_wait() {
                        let code = status(st);
                        return Ok(if code == 0 && s == libc::SIGTERM { 143 } else { code });
                    }
                }
            }
            _ => {}
        }
    }
}

/// An io::Error as strerror says it (what Perl's `$!` shows).
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.rsplit_once(" (os error").map(|(d, _)| d.to_string()).unwrap_or(s)
}
