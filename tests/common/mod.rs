//! Integration-test harness: starts the real `halo` binary in a temporary prefix and talks
//! HTTP to it over real sockets with raw bytes (so tests can also send malformed input).
//!
//! Set `HALO_TEST_BIN=/usr/sbin/nginx` to run the same suite against nginx: that is how the
//! tests themselves are checked against the oracle. The few places where halo deliberately
//! differs from nginx branch on [`is_nginx`].
//!
//! Config templates use `{{PORT}}`, `{{PORT2}}` and `{{PORT3}}` for free ports chosen at
//! start-up; start-up is retried with new ports if one was taken in the meantime.
#![allow(dead_code)]

pub mod peers;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any single socket read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

const PORT_KEYS: [&str; 3] = ["{{PORT}}", "{{PORT2}}", "{{PORT3}}"];

/// The binary under test: `HALO_TEST_BIN` if set, else the `halo` built by cargo.
pub fn bin() -> PathBuf {
    match std::env::var_os("HALO_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_halo")),
    }
}

/// The program name the binary prints before its messages (`halo:` / `nginx:`).
pub fn prog() -> String {
    bin().file_name().unwrap().to_string_lossy().into_owned()
}

/// True when the suite runs against real nginx (the oracle) rather than halo.
pub fn is_nginx() -> bool {
    prog() == "nginx"
}

/// Extra arguments for the oracle only: this nginx build logs start-up errors to stderr in
/// error-log format unless given an early error log, after which it prints the classic
/// `nginx: [emerg] ...` lines that halo prints.
pub fn oracle_args() -> Vec<&'static str> {
    if is_nginx() {
        vec!["-e", "logs/early.log"]
    } else {
        vec![]
    }
}

/// For the oracle, the `load_module` lines a config with Lua needs (halo has
/// the module built in, and accepts such lines with a notice, which the
/// error logs of other tests need not hold): Debian's libnginx-mod-http-lua,
/// or the modules in `HALO_TEST_NGINX_MODULES`.
pub fn oracle_modules(conf: &str) -> String {
    if !is_nginx() || !conf.contains("_by_lua") || conf.contains("load_module") {
        return String::new();
    }
    let dir = std::env::var("HALO_TEST_NGINX_MODULES").unwrap_or_else(|_| "/usr/lib/nginx/modules".into());
    format!("load_module {dir}/ndk_http_module.so;\nload_module {dir}/ngx_http_lua_module.so;\n")
}

/// The binding of the ngx API the suite runs halo's Lua handlers with:
/// `HALO_TEST_API_MODE=cfunction` runs every test against the lua_CFunction
/// twin (`lua_api_mode cfunction;` in the http block), unset or `ffi` against
/// lualib's FFI (the default). The oracle has no such directive.
pub fn api_mode() -> String {
    std::env::var("HALO_TEST_API_MODE").unwrap_or_else(|_| "ffi".into())
}

/// `template` with [`api_mode`]'s `lua_api_mode` as the first line of its
/// http block, unless the mode is the default, the template sets the
/// directive itself, or the binary is the oracle.
pub fn with_api_mode(template: &str) -> String {
    let mode = api_mode();
    if mode == "ffi" || is_nginx() || template.contains("lua_api_mode") {
        return template.to_owned();
    }
    let http = regex::Regex::new(r"(?m)^\s*http\s*\{").unwrap();
    match http.find(template) {
        Some(m) => format!("{}\n    lua_api_mode {mode};\n{}", &template[..m.end()], &template[m.end()..]),
        None => template.to_owned(),
    }
}

/// The standard main-context preamble: one foreground process, logs inside the prefix.
pub const MAIN_PREAMBLE: &str = "master_process off;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\nevents { worker_connections 1024; }\n";

/// A full config from the contents of an `http {}` block.
pub fn http_conf(http_body: &str) -> String {
    format!("{MAIN_PREAMBLE}http {{\n    access_log logs/access.log;\n{http_body}\n}}\n")
}

/// A full config with one server on `{{PORT}}` (server_name localhost) around `server_body`.
pub fn server_conf(server_body: &str) -> String {
    http_conf(&format!(
        "    server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{server_body}\n    }}"
    ))
}

/// A minimal subset of nginx's conf/mime.types, for tests that `include mime.types;`.
pub const MIME_TYPES: &str = r#"types {
    text/html                             html htm shtml;
    text/css                              css;
    text/plain                            txt;
    application/javascript                js;
    application/json                      json;
    image/png                             png;
    image/jpeg                            jpeg jpg;
    image/gif                             gif;
    image/svg+xml                         svg svgz;
    application/octet-stream              bin exe dll;
}
"#;

/// Asks the kernel for a free port (bind to :0, read it, drop the socket).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temporary prefix with `conf/`, `logs/` and `html/` created.
pub struct Prefix {
    dir: tempfile::TempDir,
}

impl Default for Prefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Prefix {
    /// Creates the prefix (world-readable, so that nginx workers that drop root can read it).
    pub fn new() -> Prefix {
        let dir = tempfile::Builder::new().prefix("halo-test-").tempdir().unwrap();
        for d in ["conf", "logs", "html"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        set_mode(dir.path(), 0o755);
        Prefix { dir }
    }

    /// The absolute prefix path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Absolute path of the main config file.
    pub fn conf_path(&self) -> PathBuf {
        self.path().join("conf/nginx.conf")
    }

    /// Writes a prefix-relative file, creating its directories.
    pub fn write_file(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, contents).unwrap();
    }

    /// Writes conf/nginx.conf verbatim (no port substitution).
    pub fn write_conf(&self, conf: &str) {
        self.write_file("conf/nginx.conf", conf);
    }

    /// Reads a prefix-relative file as text ("" if it does not exist).
    pub fn read_file(&self, rel: &str) -> String {
        fs::read(self.path().join(rel)).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Runs the binary with `-p PREFIX -c conf/nginx.conf` followed by `args`, waits for it.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("-p").arg(self.path()).arg("-c").arg("conf/nginx.conf").args(oracle_args()).args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(15))
    }

    /// Substitutes free ports into `template`, writes it, starts the server and waits until
    /// every port used accepts connections. Panics with the logs if it does not come up.
    pub fn start(self, template: &str) -> Halo {
        self.start_with_args(template, &[])
    }

    /// Like [`Prefix::start`], with extra command-line arguments.
    pub fn start_with_args(self, template: &str, args: &[&str]) -> Halo {
        let used: Vec<usize> = (0..PORT_KEYS.len()).filter(|&i| template.contains(PORT_KEYS[i])).collect();
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let ports: Vec<u16> = PORT_KEYS.iter().map(|_| free_port()).collect();
            let mut conf = oracle_modules(template) + &with_api_mode(template);
            for (k, p) in PORT_KEYS.iter().zip(&ports) {
                conf = conf.replace(k, &p.to_string());
            }
            self.write_conf(&conf);
            let _ = fs::remove_file(self.path().join("logs/error.log"));
            let stderr = fs::File::create(self.path().join("stderr.log")).unwrap();
            let stdout = fs::File::create(self.path().join("stdout.log")).unwrap();
            let mut child = Command::new(bin())
                .arg("-p")
                .arg(self.path())
                .arg("-c")
                .arg("conf/nginx.conf")
                .args(oracle_args())
                .args(args)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()));
            let deadline = Instant::now() + START_TIMEOUT;
            let mut up = vec![false; used.len()];
            loop {
                for (i, &idx) in used.iter().enumerate() {
                    if !up[i] {
                        up[i] = TcpStream::connect(("127.0.0.1", ports[idx])).is_ok();
                    }
                }
                if up.iter().all(|u| *u) {
                    return Halo { port: ports[0], ports, prefix: self, child: Some(child) };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let logs = self.logs();
                    if logs.contains("Address already in use") {
                        last_err = logs;
                        break;
                    }
                    panic!("server exited during start-up with {status}\n{logs}");
                }
                if Instant::now() > deadline {
                    // Hand the child to a Halo so that Drop kills it and prints the logs.
                    let h = Halo { port: ports[0], ports, prefix: self, child: Some(child) };
                    panic!("server did not listen within {START_TIMEOUT:?}\n{}", h.logs());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not find free ports after 5 attempts: {last_err}");
    }

    /// stderr of the last server started here, and logs/error.log.
    pub fn logs(&self) -> String {
        format!("--- stderr:\n{}\n--- logs/error.log:\n{}", self.read_file("stderr.log"), self.read_file("logs/error.log"))
    }
}

/// A running server. Killed (SIGTERM, then SIGKILL, along with its children) on drop.
pub struct Halo {
    /// The first port (`{{PORT}}`).
    pub port: u16,
    /// `{{PORT}}`, `{{PORT2}}`, `{{PORT3}}`.
    pub ports: Vec<u16>,
    /// The prefix the server runs in.
    pub prefix: Prefix,
    /// The server process (the master when master_process is on).
    pub child: Option<Child>,
}

impl Halo {
    /// Starts a server whose http block is `http_body` (which must listen on `{{PORT}}`).
    pub fn start(http_body: &str) -> Halo {
        Prefix::new().start(&http_conf(http_body))
    }

    /// Starts a server from a full config template.
    pub fn start_full(conf: &str) -> Halo {
        Prefix::new().start(conf)
    }

    /// Starts one server on `{{PORT}}` with `server_body` inside its `server {}` block.
    pub fn server(server_body: &str) -> Halo {
        Prefix::new().start(&server_conf(server_body))
    }

    /// The prefix path.
    pub fn path(&self) -> &Path {
        self.prefix.path()
    }

    /// pid of the server process.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server not running").id() as i32
    }

    /// Writes a prefix-relative file.
    pub fn write_file(&self, rel: &str, contents: impl AsRef<[u8]>) {
        self.prefix.write_file(rel, contents)
    }

    /// Rewrites conf/nginx.conf from `template` with this server's ports (for reload tests).
    pub fn rewrite_conf(&self, template: &str) {
        let mut conf = oracle_modules(template) + &with_api_mode(template);
        for (k, p) in PORT_KEYS.iter().zip(&self.ports) {
            conf = conf.replace(k, &p.to_string());
        }
        self.prefix.write_conf(&conf);
    }

    /// Contents of logs/error.log.
    pub fn error_log(&self) -> String {
        self.prefix.read_file("logs/error.log")
    }

    /// Contents of logs/access.log.
    pub fn access_log(&self) -> String {
        self.prefix.read_file("logs/access.log")
    }

    /// stderr of the server process so far.
    pub fn stderr(&self) -> String {
        self.prefix.read_file("stderr.log")
    }

    /// Both logs, for failure messages.
    pub fn logs(&self) -> String {
        self.prefix.logs()
    }

    /// Sends `raw` on a new connection; returns every byte received until the response is
    /// complete (by Content-Length / chunked / close). A HEAD request line is recognised.
    pub fn request(&self, raw: impl AsRef<[u8]>) -> Vec<u8> {
        request(self.port, raw.as_ref())
    }

    /// Sends `raw` on a new connection and parses the final response.
    pub fn get_response(&self, raw: impl AsRef<[u8]>) -> Response {
        let raw = raw.as_ref();
        let bytes = request(self.port, raw);
        let head = raw.starts_with(b"HEAD ");
        parse_all(&bytes, head, true)
            .into_iter()
            .rfind(|r| r.status >= 200)
            .unwrap_or_else(|| panic!("no response in {:?}\n{}", String::from_utf8_lossy(&bytes), self.logs()))
    }

    /// `GET path HTTP/1.1` with `Host: localhost` and `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.get_host(path, "localhost")
    }

    /// `GET path HTTP/1.1` with the given Host and `Connection: close`.
    pub fn get_host(&self, path: &str, host: &str) -> Response {
        self.get_response(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    }

    /// A new raw connection to `{{PORT}}`.
    pub fn connect(&self) -> Conn {
        Conn::new(self.port)
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        kill(self.pid(), sig);
    }

    /// Waits up to `timeout` for the server process to exit; returns its exit code
    /// (or 128+signal) if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                return Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids of the server process's direct children (the workers when master_process is on).
    pub fn children(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    /// Polls until the log file (prefix-relative) contains `needle`, up to `timeout`.
    pub fn wait_log(&self, rel: &str, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.prefix.read_file(rel).contains(needle))
    }
}

impl Drop for Halo {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if std::thread::panicking() {
            eprintln!("=== server logs ({}) ===\n{}", self.path().display(), self.logs());
        }
        let pid = child.id() as i32;
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let kids = children_of(pid);
        kill(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().ok().flatten().is_none() {
            kill(pid, libc::SIGKILL);
            let _ = child.wait();
        }
        // Workers must not outlive the test even if the master was killed hard.
        for k in kids {
            if pid_alive(k) {
                kill(k, libc::SIGKILL);
            }
        }
    }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => stat_fields(&s).map(|(st, _)| st != 'Z' && st != 'X').unwrap_or(false),
        Err(_) => false,
    }
}

fn stat_fields(stat: &str) -> Option<(char, i32)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut it = rest.split(' ');
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

fn ppid_of(pid: i32) -> Option<i32> {
    stat_fields(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, p)| p)
}

/// Live (non-zombie) direct children of `pid`, found by scanning /proc (the kernel's
/// `task/*/children` file is not always compiled in).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if let Ok(s) = fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((st, pp)) = stat_fields(&s) {
                    if pp == pid && st != 'Z' && st != 'X' {
                        out.push(p);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command, killing it if it takes longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command {cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: t1.join().unwrap(), stderr: t2.join().unwrap() }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    /// Header fields in order received (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body was chunked on the wire.
    pub chunked: bool,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All values of header `name`.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True if the response says the connection will close.
    pub fn closes(&self) -> bool {
        match self.header("connection") {
            Some(v) => v.eq_ignore_ascii_case("close"),
            None => self.version == 0,
        }
    }
}

/// Outcome of trying to parse one response from the front of a buffer.
pub enum Parse {
    /// A complete response and how many bytes it used.
    Done(Response, usize),
    /// More bytes are needed.
    Partial,
}

/// Parses one response from `buf`. `head`: the request was HEAD (no body). `eof`: no more
/// bytes will come (completes a body delimited by the connection close).
pub fn parse_response(buf: &[u8], head: bool, eof: bool) -> Parse {
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hdrs);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(e) => panic!("malformed response from server ({e}): {:?}", String::from_utf8_lossy(buf)),
    };
    let status = r.code.unwrap();
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let mut resp = Response {
        version: r.version.unwrap(),
        status,
        reason: r.reason.unwrap_or("").to_string(),
        headers,
        body: Vec::new(),
        chunked: false,
    };
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Parse::Done(resp, n);
    }
    let te_chunked = resp.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if te_chunked {
        resp.chunked = true;
        let mut pos = n;
        loop {
            let (size, used) = match httparse::parse_chunk_size(&buf[pos..]) {
                Ok(httparse::Status::Complete((used, size))) => (size as usize, used),
                Ok(httparse::Status::Partial) => return Parse::Partial,
                Err(_) => panic!("bad chunk size from server: {:?}", String::from_utf8_lossy(&buf[pos..])),
            };
            pos += used;
            if size == 0 {
                // Trailer section: lines until an empty one.
                loop {
                    let Some(e) = find(&buf[pos..], b"\r\n") else { return Parse::Partial };
                    pos += e + 2;
                    if e == 0 {
                        return Parse::Done(resp, pos);
                    }
                }
            }
            if buf.len() < pos + size + 2 {
                return Parse::Partial;
            }
            resp.body.extend_from_slice(&buf[pos..pos + size]);
            assert_eq!(&buf[pos + size..pos + size + 2], b"\r\n", "chunk not followed by CRLF");
            pos += size + 2;
        }
    }
    if let Some(cl) = resp.header("content-length") {
        let cl: usize = cl.trim().parse().unwrap_or_else(|_| panic!("bad Content-Length {cl:?}"));
        if buf.len() < n + cl {
            return Parse::Partial;
        }
        resp.body = buf[n..n + cl].to_vec();
        return Parse::Done(resp, n + cl);
    }
    if eof {
        resp.body = buf[n..].to_vec();
        return Parse::Done(resp, buf.len());
    }
    Parse::Partial
}

/// Parses every complete response in `buf` (1xx interim responses included).
pub fn parse_all(buf: &[u8], head: bool, eof: bool) -> Vec<Response> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_response(&buf[pos..], head, eof) {
            Parse::Done(r, n) => {
                out.push(r);
                pos += n;
            }
            Parse::Partial => break,
        }
    }
    out
}

/// Parses exactly one complete final response (panics otherwise).
pub fn parse(buf: &[u8]) -> Response {
    parse_all(buf, false, true)
        .into_iter()
        .rfind(|r| r.status >= 200)
        .unwrap_or_else(|| panic!("no complete response in {:?}", String::from_utf8_lossy(buf)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `raw` to 127.0.0.1:port on a new connection and returns every byte received until
/// a final response is complete or the server closes the connection.
pub fn request(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut c = Conn::new(port);
    c.send(raw);
    let head = raw.starts_with(b"HEAD ");
    loop {
        let done = parse_all(&c.buf, head, false).iter().any(|r| r.status >= 200);
        if done || c.eof {
            return std::mem::take(&mut c.buf);
        }
        if c.fill().is_err() {
            return std::mem::take(&mut c.buf);
        }
    }
}

/// A raw client connection with a read buffer, for keep-alive and pipelining tests.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes received and not yet consumed by `read_response`.
    pub buf: Vec<u8>,
    /// The server closed its side.
    pub eof: bool,
}

impl Conn {
    /// Connects with read/write timeouts of [`IO_TIMEOUT`].
    pub fn new(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn { stream, buf: Vec::new(), eof: false }
    }

    /// Writes all of `bytes` (panics on error).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
    }

    /// Writes, returning the error instead of panicking (for peers that may have closed).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// One read into the buffer. Ok(0) on EOF. Errors on timeout or reset.
    pub fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(0),
            Err(e) => {
                if e.kind() == ErrorKind::ConnectionReset {
                    self.eof = true;
                }
                Err(e)
            }
        }
    }

    /// Reads one complete response (interim 1xx included) and removes it from the buffer.
    pub fn read_response(&mut self, head: bool) -> Response {
        self.try_read_response(head).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Conn::read_response`] but returns an error (with what was received) on
    /// timeout, reset or close before the response was complete.
    pub fn try_read_response(&mut self, head: bool) -> Result<Response, String> {
        loop {
            if let Parse::Done(r, n) = parse_response(&self.buf, head, self.eof) {
                if !self.buf.is_empty() {
                    self.buf.drain(..n);
                    return Ok(r);
                }
            }
            if self.eof {
                return Err(format!("connection closed; got {:?}", String::from_utf8_lossy(&self.buf)));
            }
            if let Err(e) = self.fill() {
                return Err(format!("read failed ({e}); got {:?}", String::from_utf8_lossy(&self.buf)));
            }
        }
    }

    /// Reads one final response, skipping any 1xx interim responses.
    pub fn read_final(&mut self, head: bool) -> Response {
        loop {
            let r = self.read_response(head);
            if r.status >= 200 {
                return r;
            }
        }
    }

    /// Waits up to `timeout` for the server to close the connection (EOF or reset), reading
    /// and keeping any bytes sent before. True if it closed.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            match self.fill() {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    return self.eof;
                }
                Err(_) => {
                    self.eof = true;
                }
            }
        }
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        true
    }

    /// Reads until the server closes (or [`IO_TIMEOUT`]), returning everything buffered.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        self.closed_within(IO_TIMEOUT);
        std::mem::take(&mut self.buf)
    }
}

/// Sets a path's permission bits.
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts that `hay` contains `needle`, showing both on failure.
#[track_caller]
pub fn assert_contains(hay: &str, needle: &str) {
    assert!(hay.contains(needle), "expected to find {needle:?} in:\n{hay}");
}

/// What tests/jit_recorder.lua saw of hot loops run inside a real content handler.
pub struct HotLoops {
    /// The fewest loop traces any one chunk compiled.
    pub compiled: i64,
    /// One line per stitched trace.
    pub stitches: String,
    /// One line per trace abort that counts (see [`record_hot_loops`]).
    pub aborts: String,
}

/// Serves each chunk (name, Lua source, allow_inner) from `lua/NAME.lua` and, in one
/// request, runs them in order under tests/jit_recorder.lua (allow_inner as there).
/// `keep_abort` is a Lua expression for a function(line) -> bool choosing the abort lines
/// that count, or "nil" for all of them.
pub fn record_hot_loops(chunks: &[(&str, &str, bool)], keep_abort: &str) -> HotLoops {
    let p = Prefix::new();
    p.write_file("lua/jit_recorder.lua", include_str!("../jit_recorder.lua"));
    let mut list = String::new();
    for (name, src, allow_inner) in chunks {
        p.write_file(&format!("lua/{name}.lua"), src);
        list.push_str(&format!("{{ \"{name}\", {allow_inner} }}, "));
    }
    let conf = http_conf(&format!(
        r#"
    lua_package_path "$prefix/lua/?.lua;;";
    server {{
        listen 127.0.0.1:{{{{PORT}}}};
        server_name localhost;
        location = /jit {{ content_by_lua_block {{
            local record = require "jit_recorder"
            local keep = {keep_abort}
            local chunks = {{ {list} }}
            for _, c in ipairs(chunks) do
                local fh = assert(io.open(ngx.config.prefix() .. "lua/" .. c[1] .. ".lua"))
                c.src = fh:read("*a")
                fh:close()
            end
            -- File handles have finalizers: a GC step running one while a
            -- trace records aborts it. Run them now, not in the loops.
            collectgarbage()
            local compiled, stitches, aborts = math.huge, {{}}, {{}}
            for _, c in ipairs(chunks) do
                local n, s, a = record("=" .. c[1], c.src, c[2])
                compiled = math.min(compiled, n)
                if s ~= "" then stitches[#stitches + 1] = s end
                for line in a:gmatch("[^\n]+") do
                    if not keep or keep(line) then aborts[#aborts + 1] = line end
                end
            end
            -- (The loops' output may have sent the head: the report goes in the body.)
            ngx.print("\n--compiled--", compiled, "\n--stitches--\n", table.concat(stitches, "\n"),
                "\n--aborts--\n", table.concat(aborts, "\n"), "\n--end--")
        }} }}
    }}"#
    ));
    let h = p.start(&conf);
    let r = h.get("/jit");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), h.error_log());
    let text = r.text();
    let between = |a: &str, b: &str| {
        let from = text.find(a).unwrap_or_else(|| panic!("no {a} in:\n{text}")) + a.len();
        text[from..from + text[from..].find(b).expect("report end")].to_string()
    };
    HotLoops {
        compiled: between("\n--compiled--", "\n").parse().expect("compiled count"),
        stitches: between("\n--stitches--\n", "\n--aborts--"),
        aborts: between("\n--aborts--\n", "\n--end--"),
    }
}
