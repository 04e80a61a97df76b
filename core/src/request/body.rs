//! A request body as read: in memory up to `client_body_buffer_size`, in a
//! temp file under `client_body_temp_path` past it (or always, with
//! `client_body_in_file_only`). The file is written with io_uring as the
//! body arrives, so a body of any size costs the worker one buffer.
//!
//! Lua may replace the body (ngx.req.set_body_data / set_body_file) or build
//! a new one (init_body / append_body / finish_body, [`LuaBody`]): memory up
//! to the buffer size, then a temp file, as a read body. Those writes come
//! from a synchronous API call, so they are plain `pwrite`s (as nginx's), in
//! pieces of [`FILE_WRITE`].

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::conf::{BodyInFileOnly, LocConf};
use crate::rt::ops;

/// Writes to the temp file go out in pieces of at least this much.
const FILE_WRITE: usize = 64 * 1024;

/// A request body that was read.
#[derive(Debug)]
pub enum RequestBody {
    Memory(Vec<u8>),
    File(TempFile),
}

impl RequestBody {
    /// The bytes, when the body is in memory (`ngx.req.get_body_data`,
    /// `$request_body`: nil / empty for a body in a file, as in nginx).
    pub fn data(&self) -> Option<&[u8]> {
        match self {
            RequestBody::Memory(v) => Some(v),
            RequestBody::File(_) => None,
        }
    }

    /// The temp file's name (`ngx.req.get_body_file`).
    pub fn file_path(&self) -> Option<&Path> {
        match self {
            RequestBody::File(f) => Some(&f.path),
            RequestBody::Memory(_) => None,
        }
    }

    /// The body's length in bytes (what Content-Length says after Lua
    /// replaced it).
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(v) => v.len() as u64,
            RequestBody::File(f) => f.len,
        }
    }

    /// No bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body's temp file; removed when dropped unless it is to be kept
/// (`client_body_in_file_only on`).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: File,
    len: u64,
    keep: bool,
}

impl TempFile {
    /// Creates a new file in `dir` (made if missing) with a 10-digit name,
    /// as nginx names them.
    fn create(dir: &Path, keep: bool) -> std::io::Result<TempFile> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        std::fs::create_dir_all(dir)?;
        // Distinct across workers: the pid picks the range.
        let base = std::process::id().wrapping_mul(7919);
        loop {
            let n = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
            let path = dir.join(format!("{n:010}"));
            match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
                Ok(file) => return Ok(TempFile { path, file, len: 0, keep }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// An existing file as the body (ngx.req.set_body_file): removed at
    /// the end of the request when `clean`. Err: nginx's message
    /// (`stat() "path" failed`, `open() "path" failed`).
    pub fn existing(path: &Path, clean: bool) -> Result<TempFile, String> {
        let failed = |what: &str| format!("{what}() \"{}\" failed", path.display());
        let meta = std::fs::metadata(path).map_err(|_| failed("stat"))?;
        let file = File::open(path).map_err(|_| failed("open"))?;
        Ok(TempFile { path: path.to_path_buf(), file, len: meta.len(), keep: !clean })
    }

    /// Appends `buf` without waiting on the event loop (for an API call
    /// that cannot yield): one blocking `pwrite` loop.
    fn append_sync(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(buf, self.len)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Appends `buf` (handed to the kernel and back).
    async fn append(&mut self, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut from = 0;
        while from < buf.len() {
            let (n, b) = ops::write_at(self.file.as_raw_fd(), buf, from, self.len).await;
            buf = b;
            if n <= 0 {
                return Err(if n < 0 { std::io::Error::from_raw_os_error(-n) } else { std::io::ErrorKind::WriteZero.into() });
            }
            from += n as usize;
            self.len += n as u64;
        }
        Ok(buf)
    }

    /// The file's name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written.
    pub fn size(&self) -> u64 {
        self.len
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Collects a body as it is read, moving to a temp file when it outgrows
/// the buffer.
pub struct BodyWriter {
    buf: Vec<u8>,
    limit: usize,
    file: Option<TempFile>,
    dir: PathBuf,
    in_file_only: BodyInFileOnly,
}

impl BodyWriter {
    /// A writer for a body that `conf` governs.
    pub fn new(conf: &LocConf) -> BodyWriter {
        BodyWriter {
            buf: Vec::new(),
            limit: conf.client_body_buffer_size,
            file: None,
            dir: conf.client_body_temp_path.clone(),
            in_file_only: conf.client_body_in_file_only,
        }
    }

    /// Adds `data` to the body. Err: the temp file could not be made or
    /// written (the caller answers 500 and names the file in the log).
    pub async fn push(&mut self, data: &[u8]) -> Result<(), String> {
        if self.file.is_none() && self.in_file_only == BodyInFileOnly::Off && self.buf.len() + data.len() <= self.limit {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            let keep = self.in_file_only == BodyInFileOnly::On;
            self.file = Some(TempFile::create(&self.dir, keep).map_err(|e| format!("failed to create a temp file in \"{}\" ({e})", self.dir.display()))?);
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FILE_WRITE {
            self.write_out().await?;
        }
        Ok(())
    }

    async fn write_out(&mut self) -> Result<(), String> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let buf = std::mem::take(&mut self.buf);
        match file.append(buf).await {
            Ok(mut buf) => {
                buf.clear();
                self.buf = buf;
                Ok(())
            }
            Err(e) => Err(format!("write() to \"{}\" failed ({e})", file.path.display())),
        }
    }

    /// The whole body.
    pub async fn finish(mut self) -> Result<RequestBody, String> {
        if self.file.is_none() && self.in_file_only != BodyInFileOnly::Off {
            // client_body_in_file_only: even an empty body has its file.
            self.push(&[]).await?;
        }
        if self.file.is_none() {
            return Ok(RequestBody::Memory(self.buf));
        }
        self.write_out().await?;
        Ok(RequestBody::File(self.file.take().expect("checked above")))
    }
}

/// A body Lua builds (ngx.req.init_body, append_body, finish_body): in
/// memory up to its buffer size, then in a new temp file under
/// `client_body_temp_path`, removed after the request.
#[derive(Debug)]
pub struct LuaBody {
    buf: Vec<u8>,
    limit: usize,
    file: Option<TempFile>,
    dir: PathBuf,
    len: u64,
}

impl LuaBody {
    /// A new, empty body; `size` is the buffer (None: the location's
    /// client_body_buffer_size; 0: straight to a file).
    pub fn new(conf: &LocConf, size: Option<usize>) -> LuaBody {
        LuaBody { buf: Vec::new(), limit: size.unwrap_or(conf.client_body_buffer_size), file: None, dir: conf.client_body_temp_path.clone(), len: 0 }
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Nothing appended yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `data`. Err: the temp file could not be made or written.
    pub fn append(&mut self, data: &[u8]) -> Result<(), String> {
        self.len += data.len() as u64;
        if self.file.is_none() && self.buf.len() + data.len() <= self.limit && self.limit > 0 {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(TempFile::create(&self.dir, false).map_err(|e| format!("failed to create a temp file in \"{}\" ({e})", self.dir.display()))?);
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FILE_WRITE {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<(), String> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let r = file.append_sync(&self.buf).map_err(|e| format!("write() to \"{}\" failed ({e})", file.path.display()));
        self.buf.clear();
        r
    }

    /// The whole body: in memory, or in its temp file.
    pub fn finish(mut self) -> Result<RequestBody, String> {
        if self.file.is_none() {
            return Ok(RequestBody::Memory(self.buf));
        }
        self.write_out()?;
        Ok(RequestBody::File(self.file.take().expect("checked above")))
    }
}
