//! Peers for cosocket tests: servers the server under test connects *to*. Each is started
//! per test on a free port (or a unix socket path), counts the connections it accepted, and
//! is stopped on Drop. Plain std threads, no async runtime.
//!
//! - [`Redis`]: a real `redis-server` (Debian package redis-server) with persistence off.
//! - [`TcpPeer`]: a scriptable TCP (or unix-domain) server, one [`Mode`] per test.
//! - [`HttpUpstream`]: a small HTTP/1.1 server that echoes the request it got.
//! - [`Dns`]: a UDP name server answering A queries from a fixed table.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Redis

/// A `redis-server` on a free loopback port, with no persistence, killed on Drop.
pub struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    /// One admin connection kept open, so that asking for stats does not itself add to
    /// `total_connections_received`.
    admin: Mutex<BufReader<TcpStream>>,
}

/// Where redis-server is looked for: `HALO_TEST_REDIS` or /usr/bin/redis-server.
pub fn redis_server_bin() -> PathBuf {
    std::env::var_os("HALO_TEST_REDIS").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/redis-server".into())
}

impl Redis {
    /// Starts redis-server and waits until it answers PING. Panics with a clear message if
    /// redis-server is not installed (CI installs the redis-server package).
    pub fn start() -> Redis {
        let bin = redis_server_bin();
        assert!(
            bin.exists(),
            "{} not found: these tests need redis-server (apt-get install redis-server, or set HALO_TEST_REDIS)",
            bin.display()
        );
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new().prefix("halo-redis-").tempdir().unwrap();
            super::set_mode(dir.path(), 0o755);
            let port = super::free_port();
            let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--unixsocket")
                .arg(dir.path().join("redis.sock"))
                .args(["--unixsocketperm", "777"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                    s.set_read_timeout(Some(super::IO_TIMEOUT)).unwrap();
                    let mut admin = BufReader::new(s);
                    if let Ok(reply) = resp_command(&mut admin, &["PING"]) {
                        if reply == "PONG" {
                            return Redis { child, port, _dir: dir, admin: Mutex::new(admin) };
                        }
                    }
                }
                if child.try_wait().unwrap().is_some() {
                    break; // port taken in the meantime: try another
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "redis-server did not answer PING within 10s:\n{}",
                        std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(POLL);
            }
        }
        panic!("could not start redis-server after 5 attempts");
    }

    /// The port redis-server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix-domain socket redis-server also listens on.
    pub fn unix_socket(&self) -> PathBuf {
        self._dir.path().join("redis.sock")
    }

    /// Runs one command on the admin connection; the reply as text (bulk/status/integer,
    /// arrays joined by newlines, errors as `-ERR ...`).
    pub fn command(&self, args: &[&str]) -> String {
        let mut admin = self.admin.lock().unwrap();
        resp_command(&mut admin, args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// One field of `INFO section` as a number.
    pub fn info_field(&self, section: &str, field: &str) -> u64 {
        let info = self.command(&["INFO", section]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{info}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Connections redis-server has accepted since it started, the admin connection
    /// included (`INFO stats` total_connections_received).
    pub fn total_connections(&self) -> u64 {
        self.info_field("stats", "total_connections_received")
    }

    /// Clients connected right now, the admin connection included.
    pub fn connected_clients(&self) -> u64 {
        self.info_field("clients", "connected_clients")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn resp_command(conn: &mut BufReader<TcpStream>, args: &[&str]) -> std::io::Result<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.get_mut().write_all(req.as_bytes())?;
    resp_read(conn)
}

fn resp_read(conn: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "redis closed the connection"));
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Ok(line.to_string()),
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0u8; n as usize + 2];
            conn.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            let mut out = Vec::new();
            for _ in 0..n.max(0) {
                out.push(resp_read(conn)?);
            }
            Ok(out.join("\n"))
        }
        _ => Err(std::io::Error::new(ErrorKind::InvalidData, format!("bad reply {line:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// TcpPeer

/// One step of a [`Mode::Script`].
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Read exactly this many bytes (discarded).
    Read(usize),
    /// Read until this byte sequence has been seen.
    ReadUntil(Vec<u8>),
    /// Wait.
    Sleep(Duration),
    /// Close gracefully (FIN), ending the script.
    Close,
    /// Close with SO_LINGER 0 (RST), ending the script.
    Reset,
    /// Keep the connection open, reading and discarding, until the peer is dropped.
    Hold,
    /// Keep the connection open and never read (the sender's buffers fill up), until the
    /// peer is dropped.
    Stall,
}

/// Shorthand for `Step::Send(bytes)`.
pub fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

/// What a [`TcpPeer`] does with each connection it accepts.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Echo every line (up to and including `\n`) back as it arrives.
    Echo,
    /// Run the steps in order; a script that ends without Close/Reset/Hold closes.
    Script(Vec<Step>),
    /// Read this many bytes, then close with SO_LINGER 0 so the kernel sends RST.
    ResetAfter(usize),
    /// Accept and never answer (the connection stays open until the peer is dropped).
    Hold,
    /// Send one line of this many `x` bytes (not counting the `\n`), then hold.
    LongLine(usize),
}

trait Stream: Read + Write + Send + 'static {
    fn set_timeout(&self, d: Duration);
    fn reset(self: Box<Self>);
    fn fin(&self);
}

impl Stream for TcpStream {
    fn set_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
    }
    fn reset(self: Box<Self>) {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket this stream owns, with a correctly sized value.
        unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(self);
    }
    fn fin(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
    }
    fn reset(self: Box<Self>) {
        drop(self);
    }
    fn fin(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                s.set_nonblocking(false).unwrap();
                s.set_nodelay(true).unwrap();
                Box::new(s) as Box<dyn Stream>
            }),
            Listener::Unix(l) => l.accept().map(|(s, _)| {
                s.set_nonblocking(false).unwrap();
                Box::new(s) as Box<dyn Stream>
            }),
        }
    }
}

/// A scriptable server on 127.0.0.1 (or a unix socket). Stopped on Drop.
pub struct TcpPeer {
    port: u16,
    path: Option<PathBuf>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Bytes received so far, over all connections (for asserting what was sent).
    pub received: Arc<Mutex<Vec<u8>>>,
    /// Connections whose handling ended (the script done, or the other side closed).
    pub ended: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpPeer {
    /// Listens on a free 127.0.0.1 port.
    pub fn start(mode: Mode) -> TcpPeer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        Self::run(Listener::Tcp(l), port, None, mode)
    }

    /// Listens on a unix-domain socket at `path` (removed on Drop).
    pub fn start_unix(path: &Path, mode: Mode) -> TcpPeer {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        super::set_mode(path, 0o777);
        l.set_nonblocking(true).unwrap();
        Self::run(Listener::Unix(l), 0, Some(path.to_path_buf()), mode)
    }

    fn run(l: Listener, port: u16, path: Option<PathBuf>, mode: Mode) -> TcpPeer {
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, r, e, s) = (accepted.clone(), received.clone(), ended.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok(stream) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let (mode, r, e, s) = (mode.clone(), r.clone(), e.clone(), s.clone());
                        conns.push(std::thread::spawn(move || {
                            serve(stream, mode, r, s);
                            e.fetch_add(1, Ordering::SeqCst);
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        TcpPeer { port, path, accepted, received, ended, stop, thread: Some(thread) }
    }

    /// The TCP port (0 for a unix-domain peer).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose handling ended so far (for `Hold`: closed by the other side).
    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    /// Everything received so far, as text.
    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

impl Drop for TcpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Reads once (with a short timeout so `stop` is noticed). None on EOF/error/stop.
fn read_some(s: &mut dyn Stream, buf: &mut [u8], received: &Mutex<Vec<u8>>, stop: &AtomicBool) -> Option<usize> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match s.read(buf) {
            Ok(0) => return None,
            Ok(n) => {
                received.lock().unwrap().extend_from_slice(&buf[..n]);
                return Some(n);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return None,
        }
    }
}

fn hold(s: &mut dyn Stream, received: &Mutex<Vec<u8>>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while read_some(s, &mut buf, received, stop).is_some() {}
}

fn serve(mut s: Box<dyn Stream>, mode: Mode, received: Arc<Mutex<Vec<u8>>>, stop: Arc<AtomicBool>) {
    s.set_timeout(Duration::from_millis(50));
    let mut buf = [0u8; 4096];
    match mode {
        Mode::Echo => {
            let mut pending = Vec::new();
            while let Some(n) = read_some(&mut *s, &mut buf, &received, &stop) {
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    if s.write_all(&line).is_err() {
                        return;
                    }
                }
            }
        }
        Mode::Hold => hold(&mut *s, &received, &stop),
        Mode::LongLine(n) => {
            let mut line = vec![b'x'; n];
            line.push(b'\n');
            let _ = s.write_all(&line);
            hold(&mut *s, &received, &stop);
        }
        Mode::ResetAfter(n) => {
            let mut got = 0;
            while got < n {
                match read_some(&mut *s, &mut buf[..(n - got).min(4096)], &received, &stop) {
                    Some(k) => got += k,
                    None => return,
                }
            }
            s.reset();
        }
        Mode::Script(steps) => {
            let mut seen = Vec::new();
            for step in steps {
                match step {
                    Step::Send(b) => {
                        if s.write_all(&b).is_err() {
                            return;
                        }
                    }
                    Step::Read(n) => {
                        let mut got = 0;
                        while got < n {
                            match read_some(&mut *s, &mut buf[..(n - got).min(4096)], &received, &stop) {
                                Some(k) => got += k,
                                None => return,
                            }
                        }
                    }
                    Step::ReadUntil(pat) => {
                        while !seen.windows(pat.len()).any(|w| w == pat.as_slice()) {
                            match read_some(&mut *s, &mut buf[..1], &received, &stop) {
                                Some(k) => seen.extend_from_slice(&buf[..k]),
                                None => return,
                            }
                        }
                        seen.clear();
                    }
                    Step::Sleep(d) => std::thread::sleep(d),
                    Step::Close => {
                        s.fin();
                        return;
                    }
                    Step::Reset => {
                        s.reset();
                        return;
                    }
                    Step::Hold => {
                        hold(&mut *s, &received, &stop);
                        return;
                    }
                    Step::Stall => {
                        while !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(POLL);
                        }
                        return;
                    }
                }
            }
            s.fin();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HttpUpstream

/// A small HTTP/1.1 server on a free loopback port. Keep-alive; each response body echoes
/// the request:
///
/// ```text
/// METHOD TARGET
/// name: value        (one line per request header, as received, in order)
///
/// BODY
/// ```
///
/// and the response has `X-Method`, `X-Path` (the target) and `X-Conn` (1-based index of
/// the connection) headers. A target starting with `/chunked` gets a chunked response (the
/// same body in chunks of 7 bytes); `/close` answers with `Connection: close` and closes;
/// `/status/NNN` answers with that status; `.../redirect?to=TO` answers 302 with `Location: TO`
/// and `Refresh: 0; url=TO` (TO as sent); `/delay/MS` answers after MS milliseconds. Request
/// bodies by Content-Length or chunked. [`HttpUpstream::start_unix`] serves on a unix-domain
/// socket instead.
pub struct HttpUpstream {
    port: u16,
    path: Option<PathBuf>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Connections over so far (the client closed them, or a `/close`).
    pub closed: Arc<AtomicUsize>,
    /// Requests served so far.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpUpstream {
    /// Starts listening.
    pub fn start() -> HttpUpstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        Self::run(Listener::Tcp(l), port, None)
    }

    /// Listens on a unix-domain socket at `path` (removed on Drop).
    pub fn start_unix(path: &Path) -> HttpUpstream {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        super::set_mode(path, 0o777);
        l.set_nonblocking(true).unwrap();
        Self::run(Listener::Unix(l), 0, Some(path.to_path_buf()))
    }

    fn run(l: Listener, port: u16, path: Option<PathBuf>) -> HttpUpstream {
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, c, r, s) = (accepted.clone(), closed.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok(stream) => {
                        let idx = a.fetch_add(1, Ordering::SeqCst) + 1;
                        let (c, r, s) = (c.clone(), r.clone(), s.clone());
                        conns.push(std::thread::spawn(move || {
                            http_serve(stream, idx, r, s);
                            c.fetch_add(1, Ordering::SeqCst);
                        }));
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        HttpUpstream { port, path, accepted, closed, requests, stop, thread: Some(thread) }
    }

    /// The port (127.0.0.1; 0 for a unix-domain one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections over so far.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Reads more bytes into `buf`; false on EOF, error or stop.
fn http_fill(s: &mut Box<dyn Stream>, buf: &mut Vec<u8>, stop: &AtomicBool) -> bool {
    let mut tmp = [0u8; 8192];
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match s.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return false,
        }
    }
}

fn http_serve(mut s: Box<dyn Stream>, conn_idx: usize, requests: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    s.set_timeout(Duration::from_millis(50));
    let mut buf = Vec::new();
    loop {
        // The head.
        let (method, target, headers, head_len) = loop {
            let mut hdrs = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut hdrs);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    break (req.method.unwrap().to_string(), req.path.unwrap().to_string(), headers, n);
                }
                Ok(httparse::Status::Partial) => {
                    if !http_fill(&mut s, &mut buf, &stop) {
                        return;
                    }
                }
                Err(_) => {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }
            }
        };
        buf.drain(..head_len);
        let hdr = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        // The body.
        let mut body = Vec::new();
        if hdr("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                match httparse::parse_chunk_size(&buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let size = size as usize;
                        if size == 0 {
                            // Skip trailers up to the empty line.
                            while !buf[used..].windows(2).any(|w| w == b"\r\n") {
                                if !http_fill(&mut s, &mut buf, &stop) {
                                    return;
                                }
                            }
                            let end = used + buf[used..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                            buf.drain(..end);
                            break;
                        }
                        while buf.len() < used + size + 2 {
                            if !http_fill(&mut s, &mut buf, &stop) {
                                return;
                            }
                        }
                        body.extend_from_slice(&buf[used..used + size]);
                        buf.drain(..used + size + 2);
                    }
                    Ok(httparse::Status::Partial) => {
                        if !http_fill(&mut s, &mut buf, &stop) {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        } else if let Some(cl) = hdr("content-length") {
            let cl: usize = cl.trim().parse().unwrap_or(0);
            while buf.len() < cl {
                if !http_fill(&mut s, &mut buf, &stop) {
                    return;
                }
            }
            body = buf.drain(..cl).collect();
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if let Some(ms) = target.strip_prefix("/delay/").and_then(|s| s.parse::<u64>().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        // The response.
        let mut out = format!("{method} {target}\n");
        for (n, v) in &headers {
            out.push_str(&format!("{n}: {v}\n"));
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        let status = target.strip_prefix("/status/").and_then(|s| s[..3.min(s.len())].parse::<u16>().ok()).unwrap_or(200);
        let close = target.starts_with("/close") || hdr("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut head = format!(
            "HTTP/1.1 {status} Whatever\r\nX-Method: {method}\r\nX-Path: {target}\r\nX-Conn: {conn_idx}\r\nX-Multi: a\r\nX-Multi: b\r\n"
        );
        if close {
            head.push_str("Connection: close\r\n");
        }
        if let Some((_, to)) = target.split_once("/redirect?to=") {
            head = head.replacen(" 200 ", " 302 ", 1);
            head.push_str(&format!("Location: {to}\r\nRefresh: 0; url={to}\r\n"));
        }
        let mut wire = Vec::new();
        if target.starts_with("/chunked") {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            wire.extend_from_slice(head.as_bytes());
            for c in out.chunks(7) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", out.len()));
            wire.extend_from_slice(head.as_bytes());
            if method != "HEAD" {
                wire.extend_from_slice(&out);
            }
        }
        if s.write_all(&wire).is_err() || close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dns

/// A name server on a free 127.0.0.1 UDP port (for `resolver 127.0.0.1:PORT`): A queries for
/// a name of its table get that address (TTL 60); AAAA queries for them get no data; any
/// other name is NXDOMAIN. Counts the queries it got. Stopped on Drop.
pub struct Dns {
    port: u16,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// Serves `names` (name, IPv4 address).
    pub fn start(names: &[(&str, std::net::Ipv4Addr)]) -> Dns {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let names: Vec<(String, std::net::Ipv4Addr)> = names.iter().map(|(n, a)| (n.to_ascii_lowercase(), *a)).collect();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
                q.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = dns_answer(&buf[..n], &names) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Dns { port, queries, stop, thread: Some(thread) }
    }

    /// The UDP port (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query (None for what does not parse).
fn dns_answer(query: &[u8], names: &[(String, std::net::Ipv4Addr)]) -> Option<Vec<u8>> {
    use simple_dns::rdata::{RData, A};
    use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
    let q = Packet::parse(query).ok()?;
    let question = q.questions.first()?.clone();
    let name = question.qname.to_string().to_ascii_lowercase();
    let mut p = Packet::new_reply(q.id());
    p.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
    p.questions.push(question.clone());
    match names.iter().find(|(n, _)| *n == name) {
        Some((_, ip)) if question.qtype == QTYPE::TYPE(TYPE::A) => {
            p.answers.push(ResourceRecord::new(question.qname.clone(), CLASS::IN, 60, RData::A(A { address: u32::from(*ip) })));
        }
        Some(_) => {}
        None => *p.rcode_mut() = RCODE::NameError,
    }
    p.build_bytes_vec().ok()
}

// ---------------------------------------------------------------------------------------------
// Configs for tests that use the Lua client fixtures

/// The absolute path of tests/lua (the fixtures: resty/redis.lua, resty/http.lua, t.lua).
pub fn lua_dir() -> String {
    format!("{}/tests/lua", env!("CARGO_MANIFEST_DIR"))
}

/// A full config with `worker_connections` connections, `lua_package_path` at the fixtures
/// (then the default path), `http_extra` in the http block and one server on `{{PORT}}`
/// around `server_body`.
pub fn lua_conf(worker_connections: u32, http_extra: &str, server_body: &str) -> String {
    format!(
        "master_process off;\ndaemon off;\nerror_log logs/error.log info;\npid logs/nginx.pid;\n\
         events {{ worker_connections {worker_connections}; }}\n\
         http {{\n    access_log logs/access.log;\n    lua_package_path \"{}/?.lua;;\";\n{http_extra}\n\
         server {{\n        listen 127.0.0.1:{{{{PORT}}}};\n        server_name localhost;\n{server_body}\n    }}\n}}\n",
        lua_dir()
    )
}

/// Starts [`lua_conf`] with 1024 connections.
pub fn lua_server(http_extra: &str, server_body: &str) -> super::Halo {
    super::Prefix::new().start(&lua_conf(1024, http_extra, server_body))
}
