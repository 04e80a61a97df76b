//! access_log writer: a per-process cache of open log files.
//!
//! Lines are rendered by the caller (a `log_format` [`Template`] rendered with
//! [`Template::render_escaped`]) and written here with one write(2) each on a
//! file opened with O_APPEND, so the workers sharing a file never interleave
//! partial lines. Failures are reported to the error log and the line is
//! dropped; nothing here panics.
//!
//! [`Template`]: crate::conf::template::Template
//! [`Template::render_escaped`]: crate::conf::template::Template::render_escaped

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{self, open_append, os_error};
use super::Level;

/// nginx's predefined `combined` log format.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// Write errors are reported at most this often per file (as nginx does), so a
/// full disk does not flood the error log.
const WRITE_ERROR_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    /// None after a failed open: lines are dropped until the next reopen.
    file: Option<File>,
    last_write_error: Option<Instant>,
}

/// The access-log files this process has open, by path.
#[derive(Debug, Default)]
pub struct AccessLogs {
    files: HashMap<PathBuf, Entry>,
}

impl AccessLogs {
    /// An empty cache; files are opened on first use.
    pub fn new() -> AccessLogs {
        AccessLogs::default()
    }

    /// Opens `path` now (e.g. at startup, so an unwritable log is reported as a
    /// configuration error). On success the file is cached for [`write`](Self::write);
    /// on error nothing is cached or logged.
    pub fn open(&mut self, path: &Path) -> io::Result<()> {
        if let Some(Entry { file: Some(_), .. }) = self.files.get(path) {
            return Ok(());
        }
        let file = open_append(path)?;
        self.files.insert(path.to_path_buf(), Entry { file: Some(file), last_write_error: None });
        Ok(())
    }

    /// Appends `line` (which includes its trailing `\n`) to the log at `path`,
    /// opening it on first use. A failed open is logged once and the lines for
    /// that path are dropped until [`reopen`](Self::reopen).
    pub fn write(&mut self, path: &Path, line: &[u8]) {
        // Look up by &Path first so the common case does not allocate.
        let entry = match self.files.get_mut(path) {
            Some(e) => e,
            None => {
                let file = match open_append(path) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        log_open_error(path, &e);
                        None
                    }
                };
                self.files
                    .entry(path.to_path_buf())
                    .or_insert(Entry { file, last_write_error: None })
            }
        };
        let Some(file) = &entry.file else { return };
        if let Err(e) = (&*file).write_all(line) {
            let now = Instant::now();
            if entry.last_write_error.is_none_or(|t| now - t >= WRITE_ERROR_INTERVAL) {
                entry.last_write_error = Some(now);
                error::log(
                    Level::Alert,
                    None,
                    &format!("write() to \"{}\" failed {}", path.display(), os_error(&e)),
                );
            }
        }
    }

    /// Reopens every file (after log rotation: `-s reopen` / SIGUSR1). A file
    /// that cannot be reopened is logged and keeps its old descriptor; paths
    /// whose open had failed are retried.
    pub fn reopen(&mut self) {
        for (path, entry) in self.files.iter_mut() {
            match open_append(path) {
                Ok(f) => {
                    entry.file = Some(f);
                    entry.last_write_error = None;
                }
                Err(e) => log_open_error(path, &e),
            }
        }
    }

    /// The paths in the cache (open or failed).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }
}

fn log_open_error(path: &Path, e: &io::Error) {
    error::log(
        Level::Error,
        None,
        &format!("open() \"{}\" failed {}", path.display(), os_error(e)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::template::{Escape, Template, Vars};
    use crate::log::error::tests::temp_dir;

    #[test]
    fn writes_and_caches() {
        let dir = temp_dir("access");
        let a = dir.join("access.log");
        let b = dir.join("other.log");
        let mut logs = AccessLogs::new();
        logs.write(&a, b"one\n");
        logs.write(&b, b"x\n");
        logs.write(&a, b"two\n");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "x\n");
        let mut paths: Vec<_> = logs.paths().map(Path::to_path_buf).collect();
        paths.sort();
        assert_eq!(paths, [a.clone(), b]);
        // Existing content is appended to, not truncated.
        let mut again = AccessLogs::new();
        again.open(&a).unwrap();
        again.open(&a).unwrap();
        again.write(&a, b"three\n");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one\ntwo\nthree\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_open_drops_lines_until_reopen() {
        let dir = temp_dir("access-fail");
        let sub = dir.join("logs");
        let path = sub.join("access.log");
        let mut logs = AccessLogs::new();
        assert!(logs.open(&path).is_err());
        assert_eq!(logs.paths().count(), 0);
        logs.write(&path, b"lost\n");
        logs.write(&path, b"lost too\n");
        assert!(!path.exists());
        // Once the directory exists, reopen retries the failed path.
        std::fs::create_dir(&sub).unwrap();
        logs.reopen();
        logs.write(&path, b"kept\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_after_rotation() {
        let dir = temp_dir("access-rotate");
        let path = dir.join("access.log");
        let mut logs = AccessLogs::new();
        logs.write(&path, b"a\n");
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        logs.write(&path, b"b\n");
        logs.reopen();
        logs.write(&path, b"c\n");
        assert_eq!(std::fs::read_to_string(dir.join("access.log.1")).unwrap(), "a\nb\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    struct Req;
    impl Vars for Req {
        fn var(&mut self, name: &str) -> Option<String> {
            Some(
                match name {
                    "remote_addr" => "127.0.0.1",
                    "time_local" => "21/Nov/2026:21:00:00 +0000",
                    "request" => "GET /\"q\" HTTP/1.1",
                    "status" => "200",
                    "body_bytes_sent" => "612",
                    "http_user_agent" => "curl/8.0",
                    _ => return None,
                }
                .to_string(),
            )
        }
    }

    #[test]
    fn combined_format() {
        let t = Template::parse(COMBINED).unwrap();
        let mut line = Vec::new();
        t.render_escaped(&mut Req, &[], Escape::Default, &mut line);
        line.push(b'\n');
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "127.0.0.1 - - [21/Nov/2026:21:00:00 +0000] \"GET /\\x22q\\x22 HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"\n"
        );
    }
}
