//! Process-wide error log in nginx's format:
//!
//! ```text
//! 2026/11/21 21:00:00 [error] 1234#1234: *5 message, client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", host: "localhost"
//! ```
//!
//! Until [`init`] is called, lines of level notice and above go to stderr (nginx
//! writes there before its log is open). Each line is written with a single
//! write(2) on a file opened with O_APPEND, so workers sharing the file do not
//! interleave partial lines.
//!
//! [`ErrorLog`] is the logger itself; the free functions use one global instance.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use super::time;
use super::Level;

/// Where lines go.
#[derive(Debug)]
enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

/// An error log: a level threshold and a destination.
#[derive(Debug)]
pub struct ErrorLog {
    /// `Level as u8`; read on every `enabled()` check, so kept outside the lock.
    level: AtomicU8,
    sink: RwLock<Sink>,
}

static GLOBAL: ErrorLog = ErrorLog::new();

/// The process id shown in lines; 0 = not read yet.
static PID: AtomicU32 = AtomicU32::new(0);

fn level_from_u8(v: u8) -> Level {
    match v {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Notice,
        3 => Level::Warn,
        4 => Level::Error,
        5 => Level::Crit,
        6 => Level::Alert,
        _ => Level::Emerg,
    }
}

/// Opens `path` for appending as nginx does (O_APPEND|O_CREAT, mode 0644).
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o644).open(path)
}

impl ErrorLog {
    /// A log writing to stderr at level notice and above.
    pub const fn new() -> ErrorLog {
        ErrorLog { level: AtomicU8::new(Level::Notice as u8), sink: RwLock::new(Sink::Stderr) }
    }

    fn read(&self) -> RwLockReadGuard<'_, Sink> {
        // Nothing panics while the lock is held; a poisoned lock is still usable.
        self.sink.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Sink> {
        self.sink.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends lines of `level` and above to `path` (appending; the directory must
    /// exist), or to stderr when `path` is "stderr". On error nothing changes.
    pub fn open(&self, path: &Path, level: Level) -> io::Result<()> {
        let sink = if path == Path::new("stderr") {
            Sink::Stderr
        } else {
            Sink::File { path: path.to_path_buf(), file: open_append(path)? }
        };
        *self.write() = sink;
        self.level.store(level as u8, Ordering::Relaxed);
        Ok(())
    }

    /// Reopens the same path (after log rotation). On error the old file is kept.
    pub fn reopen(&self) -> io::Result<()> {
        let path = match &*self.read() {
            Sink::Stderr => return Ok(()),
            Sink::File { path, .. } => path.clone(),
        };
        let file = open_append(&path)?;
        *self.write() = Sink::File { path, file };
        Ok(())
    }

    /// The file path, or None for stderr.
    pub fn path(&self) -> Option<PathBuf> {
        match &*self.read() {
            Sink::Stderr => None,
            Sink::File { path, .. } => Some(path.clone()),
        }
    }

    /// The current level threshold.
    pub fn level(&self) -> Level {
        level_from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Changes the level threshold only.
    pub fn set_level(&self, level: Level) {
        self.level.store(level as u8, Ordering::Relaxed);
    }

    /// Whether a line of `level` would be written.
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.level.load(Ordering::Relaxed)
    }

    /// Writes one line if `level` is enabled. `conn` is the connection number
    /// shown as `*N`. Write errors are ignored: there is nowhere to report them.
    pub fn log(&self, level: Level, conn: Option<u64>, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        // A fresh clock rather than the loop's cache: the master and other
        // threads may not call time::update().
        let now = time::format_err_log_time(SystemTime::now());
        let line = format_line(&now, level, pid(), conn, msg);
        let _ = match &*self.read() {
            Sink::Stderr => io::stderr().lock().write_all(&line),
            Sink::File { file, .. } => (&*file).write_all(&line),
        };
    }
}

impl Default for ErrorLog {
    fn default() -> Self {
        ErrorLog::new()
    }
}

/// The process id shown in lines.
fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            set_pid();
            PID.load(Ordering::Relaxed)
        }
        p => p,
    }
}

/// Builds one line: "{time} [{level}] {pid}#{tid}: *{conn} {msg}\n" (tid = pid:
/// workers are single-threaded; "*N " is left out without a connection).
pub fn format_line(time: &str, level: Level, pid: u32, conn: Option<u64>, msg: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(time.len() + msg.len() + 48);
    // Writing to a Vec cannot fail.
    let _ = write!(line, "{time} [{}] {pid}#{pid}: ", level.as_str());
    if let Some(c) = conn {
        let _ = write!(line, "*{c} ");
    }
    line.extend_from_slice(msg.as_bytes());
    line.push(b'\n');
    line
}

/// The global error log.
pub fn global() -> &'static ErrorLog {
    &GLOBAL
}

/// Opens the global error log (`path` may be "stderr") at `level`; also reads
/// the pid. Fails, changing nothing, when the file cannot be opened (e.g. its
/// directory is missing).
pub fn init(path: &Path, level: Level) -> io::Result<()> {
    set_pid();
    GLOBAL.open(path, level)
}

/// Reopens the global error log file (`-s reopen` / SIGUSR1).
pub fn reopen() -> io::Result<()> {
    GLOBAL.reopen()
}

/// Re-reads the pid shown in lines; call in the child after fork().
pub fn set_pid() {
    PID.store(std::process::id(), Ordering::Relaxed);
}

/// Whether the global log writes lines of `level`.
pub fn enabled(level: Level) -> bool {
    GLOBAL.enabled(level)
}

/// Writes one line to the global log (see [`ErrorLog::log`]).
pub fn log(level: Level, conn: Option<u64>, msg: &str) {
    GLOBAL.log(level, conn, msg)
}

/// The context nginx appends to request errors:
/// `, client: X, server: Y, request: "...", host: "..."` (request and host
/// only when known).
pub fn request_context(
    client: &str,
    server: &str,
    request_line: Option<&str>,
    host: Option<&str>,
) -> String {
    let mut s = format!(", client: {client}, server: {server}");
    if let Some(r) = request_line {
        s.push_str(&format!(", request: \"{r}\""));
    }
    if let Some(h) = host {
        s.push_str(&format!(", host: \"{h}\""));
    }
    s
}

/// nginx's rendering of a system error: "(2: No such file or directory)", as in
/// `open() "/x" failed (2: No such file or directory)`.
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            // std renders "No such file or directory (os error 2)".
            let text = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
            format!("({code}: {text})")
        }
        None => format!("({e})"),
    }
}

/// Logs to the global error log, formatting only when the level is enabled:
/// `error_log!(Level::Error, Some(conn_id), "open() \"{}\" failed", path)`.
#[macro_export]
macro_rules! error_log {
    ($lvl:expr, $conn:expr, $($arg:tt)*) => {{
        let lvl: $crate::log::Level = $lvl;
        if $crate::log::error::enabled(lvl) {
            $crate::log::error::log(lvl, $conn, &::std::format!($($arg)*));
        }
    }};
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A fresh, empty temporary directory for one test.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "halo-log-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn line_format() {
        let l = format_line("2026/11/21 21:00:00", Level::Error, 1234, Some(5), "boom");
        assert_eq!(l, b"2026/11/21 21:00:00 [error] 1234#1234: *5 boom\n");
        let l = format_line("2026/11/21 21:00:00", Level::Notice, 7, None, "start");
        assert_eq!(l, b"2026/11/21 21:00:00 [notice] 7#7: start\n");
    }

    #[test]
    fn context() {
        assert_eq!(
            request_context("127.0.0.1", "localhost", Some("GET / HTTP/1.1"), Some("localhost")),
            ", client: 127.0.0.1, server: localhost, request: \"GET / HTTP/1.1\", host: \"localhost\""
        );
        assert_eq!(request_context("::1", "", None, None), ", client: ::1, server: ");
        assert_eq!(
            request_context("a", "b", None, Some("h")),
            ", client: a, server: b, host: \"h\""
        );
    }

    #[test]
    fn os_error_text() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_error(&e), "(2: No such file or directory)");
        let e = io::Error::other("custom");
        assert_eq!(os_error(&e), "(custom)");
    }

    /// Checks "YYYY/MM/DD HH:MM:SS [level] pid#pid: rest".
    fn check_line(line: &str, level: &str, rest: &str) {
        let (time, tail) = line.split_at(19);
        let b = time.as_bytes();
        assert!(
            b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'/',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            }),
            "bad time in {line:?}"
        );
        let pid = std::process::id();
        assert_eq!(tail, format!(" [{level}] {pid}#{pid}: {rest}"));
    }

    #[test]
    fn writes_to_file_with_level_filter() {
        let dir = temp_dir("err");
        let path = dir.join("error.log");
        let log = ErrorLog::new();
        assert_eq!(log.level(), Level::Notice);
        assert!(log.path().is_none());
        log.open(&path, Level::Warn).unwrap();
        assert_eq!(log.path().as_deref(), Some(path.as_path()));
        assert!(log.enabled(Level::Warn) && log.enabled(Level::Emerg));
        assert!(!log.enabled(Level::Notice) && !log.enabled(Level::Debug));
        log.log(Level::Error, Some(5), &format!("boom{}", request_context("1.2.3.4", "s", None, None)));
        log.log(Level::Info, None, "hidden");
        log.log(Level::Warn, None, "careful");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        check_line(lines[0], "error", "*5 boom, client: 1.2.3.4, server: s");
        check_line(lines[1], "warn", "careful");
        assert!(text.ends_with('\n'));
        log.set_level(Level::Debug);
        assert!(log.enabled(Level::Debug));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_and_reopens() {
        let dir = temp_dir("reopen");
        let path = dir.join("error.log");
        std::fs::write(&path, "old\n").unwrap();
        let log = ErrorLog::new();
        log.open(&path, Level::Info).unwrap();
        log.log(Level::Info, None, "one");
        // Rotate: the old file moves away, reopen creates a new one.
        let rotated = dir.join("error.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.log(Level::Info, None, "two");
        log.reopen().unwrap();
        log.log(Level::Info, None, "three");
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(old.starts_with("old\n"));
        assert!(old.contains("one\n") && old.contains("two\n") && !old.contains("three"));
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1);
        assert!(new.ends_with(": three\n"));
        // Reopen failing (directory gone) keeps the old file and reports the error.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(log.reopen().is_err());
        assert_eq!(log.path().as_deref(), Some(path.as_path()));
        log.log(Level::Info, None, "lost but harmless");
    }

    #[test]
    fn missing_directory_fails() {
        let dir = temp_dir("missing");
        let log = ErrorLog::new();
        let e = log.open(&dir.join("no/such/error.log"), Level::Error).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Nothing changed.
        assert!(log.path().is_none());
        assert_eq!(log.level(), Level::Notice);
        log.open(Path::new("stderr"), Level::Crit).unwrap();
        assert!(log.path().is_none());
        assert_eq!(log.level(), Level::Crit);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn macro_formats_only_when_enabled() {
        use std::cell::Cell;
        let calls = Cell::new(0);
        let arg = || {
            calls.set(calls.get() + 1);
            "x"
        };
        if !enabled(Level::Debug) {
            crate::error_log!(Level::Debug, None, "never {}", arg());
            assert_eq!(calls.get(), 0);
        }
        set_pid();
        assert_eq!(pid(), std::process::id());
    }

    #[test]
    fn level_roundtrip() {
        for l in [
            Level::Debug,
            Level::Info,
            Level::Notice,
            Level::Warn,
            Level::Error,
            Level::Crit,
            Level::Alert,
            Level::Emerg,
        ] {
            assert_eq!(level_from_u8(l as u8), l);
        }
    }
}
