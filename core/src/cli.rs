//! The command line, as nginx has it: `halo [-p prefix] [-c file] [-g
//! directives] [-t|-T] [-q] [-s signal] [-v|-V] [-h]`, plus `halo jit ...`
//! and `halo resty ...` (the `resty` module). `main` ends in the master's
//! loop, or in the worker's when `master_process off`.

use std::path::{Path, PathBuf};

use crate::conf::{self, JitLog, JitLogMode};
use crate::log::Level;
use crate::process::{listen, master, signals, worker};

const USAGE: &str = "Usage: halo [-?hvVtTq] [-s signal] [-p prefix] [-c filename] [-g directives]
            [--jit-log dir] [--jit-log-mode events|verbose|dump]
       halo jit report|lint ...   (halo jit -h)
       halo resty [options] [lua-file [args]]   (halo resty -h)

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and build information and exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: .)
  -c filename   : set configuration file (default: conf/nginx.conf, relative to prefix)
  -g directives : set global directives out of configuration file
  --jit-log dir : record JIT events of every worker in dir (relative to prefix),
                  as the lua_jit_log directive; read them with `halo jit report`
  --jit-log-mode mode : events (default), verbose (also jit.v text) or dump
";

struct Args {
    prefix: PathBuf,
    conf: PathBuf,
    globals: String,
    test: bool,
    /// `-T`: print every config file read after a successful test.
    dump: bool,
    quiet: bool,
    signal: Option<String>,
    jit_log: Option<PathBuf>,
    jit_log_mode: JitLogMode,
}

fn parse_args(it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        prefix: PathBuf::from("."),
        conf: PathBuf::from("conf/nginx.conf"),
        globals: String::new(),
        test: false,
        dump: false,
        quiet: false,
        signal: None,
        jit_log: None,
        jit_log_mode: JitLogMode::Events,
    };
    // nginx reads flags written together (`-tq`) one by one.
    let mut it = it.flat_map(|arg| match arg.strip_prefix('-') {
        Some(flags) if flags.len() > 1 && flags.chars().all(|c| "?hvVtTq".contains(c)) => flags.chars().map(|c| format!("-{c}")).collect(),
        _ => vec![arg],
    });
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("option \"{name}\" requires {}", match name {
            "-p" | "--jit-log" => "directory name",
            "--jit-log-mode" => "mode",
            "-c" => "file name",
            "-g" => "parameter",
            _ => "signal number",
        }));
        match arg.as_str() {
            "-h" | "-?" | "--help" => {
                eprint!("{USAGE}");
                return Ok(None);
            }
            "-v" | "--version" => {
                eprintln!("{}", version());
                return Ok(None);
            }
            "-V" => {
                eprint!("{}", build_info());
                return Ok(None);
            }
            "-t" => a.test = true,
            "-T" => (a.test, a.dump) = (true, true),
            "-q" => a.quiet = true,
            "-p" => a.prefix = PathBuf::from(value("-p")?),
            "-c" => a.conf = PathBuf::from(value("-c")?),
            "-g" => a.globals = value("-g")?,
            "--jit-log" => a.jit_log = Some(PathBuf::from(value("--jit-log")?)),
            "--jit-log-mode" => {
                let m = value("--jit-log-mode")?;
                a.jit_log_mode = JitLogMode::from_name(&m)
                    .ok_or_else(|| format!("invalid --jit-log-mode \"{m}\" (events, verbose or dump)"))?;
            }
            "-s" => {
                let s = value("-s")?;
                if !matches!(s.as_str(), "stop" | "quit" | "reopen" | "reload") {
                    return Err(format!("invalid option: \"-s {s}\""));
                }
                a.signal = Some(s);
            }
            // nginx names the option letter without its dash.
            other => return Err(format!("invalid option: \"{}\"", other.strip_prefix('-').unwrap_or(other))),
        }
    }
    Ok(Some(a))
}

/// `halo version: halo/0.1.0`, nginx's `-v` line.
fn version() -> String {
    format!("halo version: halo/{}", env!("CARGO_PKG_VERSION"))
}

/// `-V`: the version, then what halo is built of, where nginx names its
/// compiler, libraries and configure arguments. The nginx and
/// lua-nginx-module versions whose API halo follows are those `ngx.config`
/// reports (so `nginx/X.Y.Z` is there for tools such as Test::Nginx that
/// read it from `-V`).
fn build_info() -> String {
    let mut s = format!("{}\nbuilt by {}\n", version(), env!("HALO_RUSTC_VERSION"));
    let facts = crate::lua::vm::new_vm(Path::new("."), None, None).and_then(|vm| {
        vm.load("local c = ngx.config return jit.version, c.nginx_version, c.ngx_lua_version").eval::<(String, u32, u32)>()
    });
    match facts {
        Ok((luajit, nginx, ngx_lua)) => {
            let dotted = |v: u32| format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000);
            s += &format!("built with {luajit}\nAPI of nginx/{} and lua-nginx-module {} (as OpenResty's)\n", dotted(nginx), dotted(ngx_lua));
        }
        Err(e) => s += &format!("(the Lua VM did not start: {e})\n"),
    }
    s += &format!("build profile: {}\n", if cfg!(debug_assertions) { "debug" } else { "release" });
    s
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let mut argv: Vec<String> = std::env::args().collect();
    let program = argv.remove(0);
    // Installed as (or linked to) `resty`, it is that command.
    if Path::new(&program).file_name().is_some_and(|n| n == "resty") {
        return crate::resty::main(&program, &argv);
    }
    match argv.first().map(String::as_str) {
        Some("jit") => return crate::jit::cli(&argv[1..]),
        Some("resty") => return crate::resty::main(&program, &argv),
        _ => {}
    }
    let args = match parse_args(argv.into_iter()) {
        Ok(Some(a)) => a,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("halo: {e}");
            eprint!("{USAGE}");
            return 1;
        }
    };
    let prefix = absolute(&args.prefix);
    let conf_path = if args.conf.is_absolute() { args.conf.clone() } else { prefix.join(&args.conf) };

    let (cfg, files) = match conf::build::load_read(&prefix, &conf_path, &args.globals) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("halo: [emerg] {e}");
            if args.test {
                eprintln!("halo: configuration file {} test failed", conf_path.display());
            }
            return 1;
        }
    };
    if args.test {
        if !args.quiet {
            for n in &cfg.notices {
                eprintln!("halo: [notice] {n}");
            }
            eprintln!("halo: the configuration file {} syntax is ok", conf_path.display());
            eprintln!("halo: configuration file {} test is successful", conf_path.display());
        }
        if args.dump {
            return dump(&files);
        }
        return 0;
    }
    if let Some(dir) = &args.jit_log {
        crate::jit::capture::set_from_command_line(JitLog { dir: prefix.join(dir), mode: args.jit_log_mode });
    }
    if let Some(sig) = args.signal {
        return send_signal(&cfg.pid, &sig);
    }
    serve(cfg, args.globals)
}

/// `-T`'s dump on stdout, as nginx writes it: each file once, in the order
/// read, after a `# configuration file PATH:` line.
fn dump(files: &[conf::parse::ConfFile]) -> i32 {
    use std::io::Write;
    let mut seen = std::collections::HashSet::new();
    let mut out = std::io::stdout().lock();
    for f in files.iter().filter(|f| seen.insert(f.name.clone())) {
        let written = writeln!(out, "# configuration file {}:", f.name).and_then(|_| out.write_all(&f.text)).and_then(|_| out.write_all(b"\n"));
        if written.is_err() {
            return 1;
        }
    }
    i32::from(out.flush().is_err())
}

fn send_signal(pid_path: &Path, sig: &str) -> i32 {
    let text = match std::fs::read_to_string(pid_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("halo: [error] open() \"{}\" failed ({}: {e})", pid_path.display(), e.raw_os_error().unwrap_or(0));
            return 1;
        }
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        eprintln!("halo: [error] invalid PID number \"{}\" in \"{}\"", text.trim(), pid_path.display());
        return 1;
    };
    let signo = match sig {
        "stop" => libc::SIGTERM,
        "quit" => libc::SIGQUIT,
        "reopen" => libc::SIGUSR1,
        _ => libc::SIGHUP,
    };
    if let Err(e) = signals::kill(pid, signo) {
        eprintln!("halo: [error] kill({pid}, {signo}) failed ({}: {e})", e.raw_os_error().unwrap_or(0));
        return 1;
    }
    0
}

fn serve(cfg: conf::Config, globals: String) -> i32 {
    if let Err(e) = crate::rt::probe() {
        eprintln!("halo: [emerg] {e}");
        return 1;
    }
    if let Err(e) = crate::log::error::init(&cfg.error_log.path, cfg.error_log.level) {
        eprintln!("halo: [emerg] open() \"{}\" failed ({}: {e})", cfg.error_log.path.display(), e.raw_os_error().unwrap_or(0));
        return 1;
    }
    for n in &cfg.notices {
        crate::error_log!(Level::Notice, None, "{n}");
    }
    // init_by_lua runs before anything forks, as in OpenResty; a failure
    // stops the start.
    let lua = match master::prepare_lua(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("halo: [error] {e}");
            crate::error_log!(Level::Emerg, None, "{e}");
            return 1;
        }
    };
    let slots = if cfg.master_process { cfg.worker_processes } else { 1 };
    let listeners = match listen::open_all(&cfg.http.listens, slots, &mut Vec::new()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("halo: [emerg] {e}");
            crate::error_log!(Level::Emerg, None, "{e}");
            return 1;
        }
    };
    if cfg.daemon {
        if !daemonize() {
            return 1;
        }
        // The log names the process that writes it: the daemon, now.
        crate::log::error::set_pid();
    }
    // Signals are read synchronously (sigtimedwait / signalfd), so block
    // them before any child exists.
    signals::block_handled();
    if let Err(e) = master::write_pid(&cfg.pid) {
        eprintln!("halo: [emerg] open() \"{}\" failed ({}: {e})", cfg.pid.display(), e.raw_os_error().unwrap_or(0));
        return 1;
    }
    let pid_path = cfg.pid.clone();
    let code = if cfg.master_process {
        master::Master::new(cfg, listeners, globals, lua).run()
    } else {
        let fds = master::single_fds(&listeners);
        worker::run(std::sync::Arc::new(cfg), fds, Some(0), 1, lua)
    };
    let _ = std::fs::remove_file(pid_path);
    code
}

/// Detach from the terminal: fork, setsid, stdio to /dev/null.
fn daemonize() -> bool {
    // SAFETY: single-threaded here; the parent only exits.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("halo: [emerg] fork() failed ({})", std::io::Error::last_os_error());
            return false;
        }
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: setsid/open/dup2 on our own process and fds.
    unsafe {
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            if crate::log::error::global().path().is_some_and(|p| p != Path::new("stderr")) {
                libc::dup2(fd, 2);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    true
}
