//! Serving a file from disk the way nginx's static module and its
//! not_modified and range filters do: open and stat, pick the type,
//! `Last-Modified`/`ETag`, conditional requests (304) and single byte
//! ranges (206/416).
//!
//! Left out, as documented on [`open_file`]: multipart/byteranges (a
//! request for several ranges gets the whole file, 200), If-Match and
//! If-Unmodified-Since (not in [`FileRequest`]), `if_modified_since
//! before|off` (nginx's default `exact` is implemented), `max_ranges`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::header_list::HeaderList;
use crate::request::FileBody;

/// The request headers that matter for a static file.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRequest<'a> {
    pub head: bool,
    pub if_modified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    /// The `Range` header; pass None for HTTP/0.9 or subrequests, where
    /// nginx ignores ranges.
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

/// What to do with the request.
#[derive(Debug)]
pub enum FileOutcome {
    /// ENOENT, ENOTDIR, ENAMETOOLONG, or not a regular file: 404.
    NotFound,
    /// EACCES (and ELOOP/EMLINK, as nginx): 403.
    Forbidden,
    /// The path is a directory: the caller does index / 301 to uri+"/".
    Directory,
    /// Any other error opening or reading the file: 500 (nginx logs these
    /// at `crit`).
    Error(io::Error),
    Response(FileResponse),
}

/// A response to send.
///
/// - 200: the whole file; headers Last-Modified, ETag, Accept-Ranges.
/// - 206: one range; headers Last-Modified, ETag, Content-Range.
/// - 304: headers Last-Modified and ETag only; `content_type` is empty and
///   the caller sends neither Content-Type nor Content-Length (nginx
///   clears both).
/// - 416: headers Content-Range (`bytes */size`) only; the caller sends
///   its error page for 416, as nginx does (which also drops
///   Last-Modified/ETag).
#[derive(Debug)]
pub struct FileResponse {
    pub status: u16,
    /// Empty for 304.
    pub content_type: String,
    /// Bytes of the body (the range for 206), also for HEAD; 0 for 304/416.
    pub content_length: u64,
    /// Last-Modified, ETag, Accept-Ranges: bytes, Content-Range.
    pub headers: HeaderList,
    /// None for HEAD, 304, 416 and when there is nothing to send (empty
    /// file).
    pub body: Option<FileBody>,
}


/// Open `path` and build the response for `req`.
///
/// `types` maps lowercase extensions (no dot) to MIME types; unknown or
/// missing extensions get `default_type`. Follows nginx: the not-modified
/// check runs first (If-Modified-Since must equal the mtime exactly, and
/// If-None-Match, when present, must also match: both present means both
/// must agree), then Range for 200 responses. Several ranges are answered
/// with the whole file (200) instead of multipart/byteranges.
pub fn open_file(
    path: &Path,
    req: &FileRequest,
    types: &HashMap<String, String>,
    default_type: &str,
) -> FileOutcome {
    // O_NONBLOCK: a FIFO must not block the worker in open(); regular
    // files ignore it. fstat after open so the checks match the file we
    // send even if the path changes meanwhile.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return open_error(e),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return FileOutcome::Error(e),
    };
    if meta.is_dir() {
        return FileOutcome::Directory;
    }
    if !meta.is_file() {
        // nginx: "... is not a regular file" -> 404.
        return FileOutcome::NotFound;
    }

    let size = meta.len();
    let mtime = meta.mtime().max(0);
    let etag = etag(mtime, size);
    let last_modified = http_date(UNIX_EPOCH + Duration::from_secs(mtime as u64));

    if not_modified(req, mtime, &etag) {
        return FileOutcome::Response(FileResponse {
            status: 304,
            content_type: String::new(),
            content_length: 0,
            headers: [("Last-Modified", &*last_modified), ("ETag", &*etag)].into_iter().collect(),
            body: None,
        });
    }

    let content_type = content_type_for(path, types, default_type).to_owned();
    let range = match req.range {
        Some(r) if if_range_allows(req.if_range, mtime, &etag) => parse_range(r, size),
        _ => RangeResult::Whole,
    };

    let (status, offset, len, extra) = match range {
        RangeResult::Whole => (200, 0, size, ("Accept-Ranges", "bytes".to_owned())),
        RangeResult::Single(start, end) => (
            206,
            start,
            end - start,
            (
                "Content-Range",
                format!("bytes {}-{}/{}", start, end - 1, size),
            ),
        ),
        RangeResult::Unsatisfiable => {
            return FileOutcome::Response(FileResponse {
                status: 416,
                content_type,
                content_length: 0,
                headers: [("Content-Range", &*format!("bytes */{size}"))].into_iter().collect(),
                body: None,
            });
        }
    };

    let headers = [("Last-Modified", &*last_modified), ("ETag", &*etag), (extra.0, &*extra.1)].into_iter().collect();
    let body = (!req.head && len > 0).then_some(FileBody { file, offset, len });
    FileOutcome::Response(FileResponse {
        status,
        content_type,
        content_length: len,
        headers,
        body,
    })
}

/// Map an open(2) error the way ngx_http_static_handler does.
fn open_error(e: io::Error) -> FileOutcome {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => FileOutcome::NotFound,
        Some(libc::EACCES | libc::ELOOP | libc::EMLINK) => FileOutcome::Forbidden,
        _ => FileOutcome::Error(e),
    }
}

/// nginx's ETag: `"<mtime hex>-<size hex>"`.
pub fn etag(mtime_secs: i64, size: u64) -> String {
    format!("\"{mtime_secs:x}-{size:x}\"")
}

/// An HTTP date (IMF-fixdate), e.g. for Last-Modified.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Parse an HTTP date (any of the three formats) to Unix seconds.
fn parse_http_secs(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    }
}

/// ngx_http_not_modified_filter: 304 when the conditions present all say
/// "not modified".
fn not_modified(req: &FileRequest, mtime: i64, etag: &str) -> bool {
    if req.if_modified_since.is_none() && req.if_none_match.is_none() {
        return false;
    }
    if let Some(ims) = req.if_modified_since {
        // `if_modified_since exact`: anything but the same second (or an
        // unparsable date) counts as modified.
        if parse_http_secs(ims) != Some(mtime) {
            return false;
        }
    }
    if let Some(inm) = req.if_none_match {
        if !etag_list_matches(inm, etag) {
            return false;
        }
    }
    true
}

/// Whether `etag` is in the If-None-Match list (weak comparison: `W/`
/// prefixes are ignored on both sides), or the list is `*`.
fn etag_list_matches(list: &str, etag: &str) -> bool {
    let list = list.trim_matches(|c| c == ' ' || c == '\t');
    if list == "*" {
        return true;
    }
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    list.split(',')
        .map(|t| t.trim_matches(|c| c == ' ' || c == '\t'))
        .any(|t| t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// If-Range: an entity tag (ends with `"`) must equal the ETag exactly,
/// anything else must be the Last-Modified date exactly; otherwise the
/// Range header is ignored.
fn if_range_allows(if_range: Option<&str>, mtime: i64, etag: &str) -> bool {
    let Some(v) = if_range else { return true };
    if v.len() >= 2 && v.ends_with('"') {
        return v == etag;
    }
    parse_http_secs(v) == Some(mtime)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeResult {
    /// Ignore the header: send the whole file (200).
    Whole,
    /// One range: [start, end).
    Single(u64, u64),
    Unsatisfiable,
}

/// ngx_http_range_parse, for a file of `size` bytes. Ranges that start
/// past the end are dropped; none left is 416; a range starting at 0 that
/// covers nothing (empty file) or several ranges adding up to more than
/// the file fall back to the whole file; several valid ranges are also
/// answered with the whole file (no multipart here).
fn parse_range(header: &str, size: u64) -> RangeResult {
    let bytes = header.as_bytes();
    if bytes.len() < 7 || !bytes[..6].eq_ignore_ascii_case(b"bytes=") {
        return RangeResult::Whole;
    }
    // nginx scans a NUL-terminated buffer; the end of the string is the NUL.
    let p = &bytes[6..];
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    let skip_spaces = |mut i: usize| {
        while at(i) == b' ' {
            i += 1;
        }
        i
    };
    // Digits up to i64::MAX (nginx's off_t), else unsatisfiable.
    let number = |mut i: usize| -> Option<(u64, usize)> {
        let mut n: u64 = 0;
        while at(i).is_ascii_digit() {
            n = n.checked_mul(10)?.checked_add(u64::from(at(i) - b'0'))?;
            if n > i64::MAX as u64 {
                return None;
            }
            i += 1;
        }
        Some((n, i))
    };

    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut total: u64 = 0;
    let mut i = 0;
    loop {
        i = skip_spaces(i);
        let (start, end);
        if at(i) != b'-' {
            if !at(i).is_ascii_digit() {
                return RangeResult::Unsatisfiable;
            }
            let Some((s, j)) = number(i) else {
                return RangeResult::Unsatisfiable;
            };
            i = skip_spaces(j);
            if at(i) != b'-' {
                return RangeResult::Unsatisfiable;
            }
            i = skip_spaces(i + 1);
            if at(i) == b',' || at(i) == 0 {
                // "a-": to the end.
                start = s;
                end = size;
            } else {
                if !at(i).is_ascii_digit() {
                    return RangeResult::Unsatisfiable;
                }
                let Some((e, j)) = number(i) else {
                    return RangeResult::Unsatisfiable;
                };
                i = skip_spaces(j);
                if at(i) != b',' && at(i) != 0 {
                    return RangeResult::Unsatisfiable;
                }
                start = s;
                // Inclusive last byte -> exclusive end, clamped to the file.
                end = if e >= size { size } else { e + 1 };
            }
        } else {
            // "-n": the last n bytes.
            i += 1;
            if !at(i).is_ascii_digit() {
                return RangeResult::Unsatisfiable;
            }
            let Some((n, j)) = number(i) else {
                return RangeResult::Unsatisfiable;
            };
            i = skip_spaces(j);
            if at(i) != b',' && at(i) != 0 {
                return RangeResult::Unsatisfiable;
            }
            start = size.saturating_sub(n);
            end = size;
        }

        if start < end {
            ranges.push((start, end));
            total += end - start;
        } else if start == 0 {
            return RangeResult::Whole;
        }

        if at(i) != b',' {
            break;
        }
        i += 1;
    }

    match ranges.as_slice() {
        [] => RangeResult::Unsatisfiable,
        _ if total > size => RangeResult::Whole,
        [(s, e)] => RangeResult::Single(*s, *e),
        // multipart/byteranges is not implemented: send the whole file.
        _ => RangeResult::Whole,
    }
}

/// The MIME type for `path` by its extension (the text after the last dot
/// of the file name, lowercased), else `default_type`.
pub fn content_type_for<'t>(
    path: &Path,
    types: &'t HashMap<String, String>,
    default_type: &'t str,
) -> &'t str {
    let ext = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty());
    let Some(ext) = ext else { return default_type };
    let found = if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        types.get(&ext.to_ascii_lowercase())
    } else {
        types.get(ext)
    };
    found.map_or(default_type, String::as_str)
}

/// Whether `path` is a directory (following symlinks).
pub fn is_dir(path: &Path) -> bool {
    path.is_dir()
}

/// The first of `index` (file names relative to `dir`) that exists in
/// `dir`. Absolute entries (nginx's "last element may be an absolute
/// path", an internal redirect) and entries with variables are the
/// caller's concern and are skipped here.
pub fn resolve_index(dir: &Path, index: &[String]) -> Option<PathBuf> {
    index
        .iter()
        .filter(|name| !name.is_empty() && !name.starts_with('/'))
        .map(|name| dir.join(name))
        .find(|p| p.metadata().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;

    /// A fresh temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "halo-static-{}-{}-{}",
                std::process::id(),
                tag,
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn file(&self, name: &str, content: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::File::create(&p)
                .unwrap()
                .write_all(content)
                .unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A `types {}` as conf/mime.types has them, for the extensions used here.
    fn types() -> HashMap<String, String> {
        [("html", "text/html"), ("css", "text/css"), ("jpg", "image/jpeg"), ("zip", "application/zip"), ("txt", "text/plain")]
            .into_iter()
            .map(|(e, t)| (e.to_owned(), t.to_owned()))
            .collect()
    }

    /// Set the mtime of `p` to `secs` and return the formatted date.
    fn set_mtime(p: &Path, secs: u64) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        http_date(t)
    }

    fn open(p: &Path, req: FileRequest) -> FileResponse {
        match open_file(p, &req, &types(), "application/octet-stream") {
            FileOutcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn header<'a>(r: &'a FileResponse, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    fn read_body(r: FileResponse) -> Vec<u8> {
        let mut b = r.body.expect("body");
        b.file.seek(SeekFrom::Start(b.offset)).unwrap();
        let mut out = vec![0; b.len as usize];
        b.file.read_exact(&mut out).unwrap();
        out
    }

    const DATA: &[u8] = b"0123456789abcdefghij"; // 20 bytes

    #[test]
    fn full_file() {
        let d = TempDir::new("full");
        let p = d.file("page.html", DATA);
        let lm = set_mtime(&p, 1_700_000_000);
        let r = open(&p, FileRequest::default());
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/html");
        assert_eq!(r.content_length, 20);
        assert_eq!(header(&r, "Last-Modified"), Some(lm.as_str()));
        assert_eq!(lm, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(header(&r, "ETag"), Some("\"6553f100-14\""));
        assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"));
        assert_eq!(header(&r, "Content-Range"), None);
        assert_eq!(read_body(r), DATA);
    }

    #[test]
    fn head_has_headers_but_no_body() {
        let d = TempDir::new("head");
        let p = d.file("a.css", DATA);
        let r = open(
            &p,
            FileRequest {
                head: true,
                ..Default::default()
            },
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/css");
        assert_eq!(r.content_length, 20);
        assert!(r.body.is_none());
        let r = open(
            &p,
            FileRequest {
                head: true,
                range: Some("bytes=0-4"),
                ..Default::default()
            },
        );
        assert_eq!((r.status, r.content_length), (206, 5));
        assert!(r.body.is_none());
    }

    #[test]
    fn content_types() {
        let t = types();
        let ct = |name: &str| content_type_for(Path::new(name), &t, "dflt").to_owned();
        assert_eq!(ct("/x/a.JPG"), "image/jpeg");
        assert_eq!(ct("/x/a.tar.gz"), "dflt");
        assert_eq!(ct("/x/archive.zip"), "application/zip");
        assert_eq!(ct("/x/noext"), "dflt");
        assert_eq!(ct("/x/trailing."), "dflt");
        assert_eq!(ct("/x.d/noext"), "dflt");
        // nginx takes "htaccess" as the extension of ".htaccess".
        assert_eq!(ct("/x/.txt"), "text/plain");
    }

    #[test]
    fn not_found_forbidden_directory() {
        let d = TempDir::new("errs");
        let t = types();
        let req = FileRequest::default();
        assert!(matches!(
            open_file(&d.0.join("missing"), &req, &t, "x"),
            FileOutcome::NotFound
        ));
        let f = d.file("file", b"x");
        // ENOTDIR: a path below a regular file.
        assert!(matches!(
            open_file(&f.join("sub"), &req, &t, "x"),
            FileOutcome::NotFound
        ));
        let long = d.0.join("n".repeat(300));
        assert!(matches!(
            open_file(&long, &req, &t, "x"),
            FileOutcome::NotFound
        ));
        assert!(matches!(
            open_file(&d.0, &req, &t, "x"),
            FileOutcome::Directory
        ));

        // Unreadable file (root ignores permissions: skip then).
        let secret = d.file("secret", b"x");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&secret).is_err() {
            assert!(matches!(
                open_file(&secret, &req, &t, "x"),
                FileOutcome::Forbidden
            ));
        }
    }

    #[test]
    fn fifo_is_not_found_and_does_not_block() {
        let d = TempDir::new("fifo");
        let p = d.0.join("pipe");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let out = open_file(&p, &FileRequest::default(), &types(), "x");
        assert!(matches!(out, FileOutcome::NotFound), "{out:?}");
    }

    #[test]
    fn empty_file() {
        let d = TempDir::new("empty");
        let p = d.file("e.txt", b"");
        let r = open(&p, FileRequest::default());
        assert_eq!((r.status, r.content_length), (200, 0));
        assert!(r.body.is_none());
        // "bytes=0-" on an empty file: nginx ignores the range.
        let r = open(
            &p,
            FileRequest {
                range: Some("bytes=0-"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 200);
        let r = open(
            &p,
            FileRequest {
                range: Some("bytes=-5"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 200);
        let r = open(
            &p,
            FileRequest {
                range: Some("bytes=1-"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 416);
        assert_eq!(header(&r, "Content-Range"), Some("bytes */0"));
    }

    #[test]
    fn if_none_match() {
        let d = TempDir::new("inm");
        let p = d.file("a.txt", DATA);
        set_mtime(&p, 1_700_000_000);
        let tag = "\"6553f100-14\"";
        for v in [
            tag,
            "*",
            "\"x\", \"6553f100-14\"",
            "W/\"6553f100-14\"",
            " \"a\" ,\t\"6553f100-14\" ",
        ] {
            let r = open(
                &p,
                FileRequest {
                    if_none_match: Some(v),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 304, "{v}");
            assert_eq!(r.content_type, "");
            assert_eq!(r.content_length, 0);
            assert!(r.body.is_none());
            assert_eq!(header(&r, "ETag"), Some(tag));
            assert!(header(&r, "Last-Modified").is_some());
            assert_eq!(header(&r, "Accept-Ranges"), None);
        }
        for v in ["\"6553f100-15\"", "6553f100-14", "\"x\"", "**"] {
            let r = open(
                &p,
                FileRequest {
                    if_none_match: Some(v),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 200, "{v}");
        }
    }

    #[test]
    fn if_modified_since_is_exact() {
        let d = TempDir::new("ims");
        let p = d.file("a.txt", DATA);
        let lm = set_mtime(&p, 1_700_000_000);
        let r = open(
            &p,
            FileRequest {
                if_modified_since: Some(&lm),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 304);
        // Other formats of the same instant also match.
        for v in [
            "Tuesday, 14-Nov-23 22:13:20 GMT",
            "Tue Nov 14 22:13:20 2023",
        ] {
            let r = open(
                &p,
                FileRequest {
                    if_modified_since: Some(v),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 304, "{v}");
        }
        // Later or earlier dates, and garbage: 200 (exact mode).
        for v in [
            "Tue, 14 Nov 2023 22:13:21 GMT",
            "Tue, 14 Nov 2023 22:13:19 GMT",
            "yesterday",
        ] {
            let r = open(
                &p,
                FileRequest {
                    if_modified_since: Some(v),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 200, "{v}");
        }
    }

    #[test]
    fn both_conditions_must_agree() {
        let d = TempDir::new("both");
        let p = d.file("a.txt", DATA);
        let lm = set_mtime(&p, 1_700_000_000);
        let tag = "\"6553f100-14\"";
        let req = |ims, inm| FileRequest {
            if_modified_since: Some(ims),
            if_none_match: Some(inm),
            ..Default::default()
        };
        assert_eq!(open(&p, req(&lm, tag)).status, 304);
        assert_eq!(open(&p, req(&lm, "\"other\"")).status, 200);
        assert_eq!(
            open(&p, req("Mon, 01 Jan 2001 00:00:00 GMT", tag)).status,
            200
        );
    }

    #[test]
    fn not_modified_wins_over_range() {
        let d = TempDir::new("nmr");
        let p = d.file("a.txt", DATA);
        set_mtime(&p, 1_700_000_000);
        let r = open(
            &p,
            FileRequest {
                if_none_match: Some("*"),
                range: Some("bytes=0-1"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 304);
    }

    #[test]
    fn single_ranges() {
        let d = TempDir::new("range");
        let p = d.file("a.bin", DATA);
        let cases: &[(&str, u64, u64)] = &[
            ("bytes=0-4", 0, 4),
            ("bytes=5-", 5, 19),
            ("bytes=-3", 17, 19),
            ("bytes=-100", 0, 19),
            ("bytes=10-1000", 10, 19),
            ("BYTES=1-1", 1, 1),
            ("bytes= 2 - 3 ", 2, 3),
            // Unsatisfiable parts are dropped when one part remains.
            ("bytes=50-60,1-2", 1, 2),
        ];
        for &(h, first, last) in cases {
            let r = open(
                &p,
                FileRequest {
                    range: Some(h),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 206, "{h}");
            assert_eq!(r.content_type, "application/octet-stream");
            assert_eq!(r.content_length, last - first + 1, "{h}");
            assert_eq!(
                header(&r, "Content-Range"),
                Some(format!("bytes {first}-{last}/20").as_str())
            );
            assert_eq!(header(&r, "Accept-Ranges"), None);
            assert!(header(&r, "ETag").is_some() && header(&r, "Last-Modified").is_some());
            assert_eq!(read_body(r), &DATA[first as usize..=last as usize], "{h}");
        }
    }

    #[test]
    fn unsatisfiable_ranges() {
        let d = TempDir::new("416");
        let p = d.file("a.bin", DATA);
        for h in [
            "bytes=20-",
            "bytes=30-40",
            "bytes=5-2",
            "bytes=-0",
            "bytes=a-b",
            "bytes=1-2x",
            "bytes=-",
            "bytes=99999999999999999999-",
        ] {
            let r = open(
                &p,
                FileRequest {
                    range: Some(h),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 416, "{h}");
            assert_eq!(r.headers.iter().collect::<Vec<_>>(), [(&b"Content-Range"[..], &b"bytes */20"[..])]);
            assert!(r.body.is_none());
            assert_eq!(r.content_length, 0);
        }
    }

    #[test]
    fn ignored_ranges_give_the_whole_file() {
        let d = TempDir::new("whole");
        let p = d.file("a.bin", DATA);
        // Not "bytes=", too short, several ranges (no multipart), ranges
        // adding up to more than the file, or starting at 0 but empty.
        for h in ["items=0-1", "bytes=", "bytes=0-1,3-4", "bytes=0-,0-"] {
            let r = open(
                &p,
                FileRequest {
                    range: Some(h),
                    ..Default::default()
                },
            );
            assert_eq!(r.status, 200, "{h}");
            assert_eq!(r.content_length, 20);
            assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"));
        }
    }

    #[test]
    fn parse_range_edges() {
        assert_eq!(parse_range("bytes=0-0", 1), RangeResult::Single(0, 1));
        assert_eq!(parse_range("bytes=0-", 0), RangeResult::Whole);
        assert_eq!(parse_range("bytes=-1", 0), RangeResult::Whole);
        assert_eq!(parse_range("bytes=-0", 0), RangeResult::Whole);
        assert_eq!(
            parse_range("bytes=0-9223372036854775807", 5),
            RangeResult::Single(0, 5)
        );
        assert_eq!(
            parse_range("bytes=0-9223372036854775808", 5),
            RangeResult::Unsatisfiable
        );
        // A trailing comma starts an empty range: 416, as nginx.
        assert_eq!(parse_range("bytes=3-4,", 10), RangeResult::Unsatisfiable);
        // Checked against nginx 1.22: the empty "-0" part is dropped.
        assert_eq!(parse_range("bytes=0-0,-0", 20), RangeResult::Single(0, 1));
    }

    #[test]
    fn if_range() {
        let d = TempDir::new("ifrange");
        let p = d.file("a.txt", DATA);
        let lm = set_mtime(&p, 1_700_000_000);
        let tag = "\"6553f100-14\"";
        let req = |ir| FileRequest {
            range: Some("bytes=0-1"),
            if_range: Some(ir),
            ..Default::default()
        };
        assert_eq!(open(&p, req(tag)).status, 206);
        assert_eq!(open(&p, req(&lm)).status, 206);
        assert_eq!(open(&p, req("\"stale\"")).status, 200);
        assert_eq!(open(&p, req("W/\"6553f100-14\"")).status, 200);
        assert_eq!(open(&p, req("Tue, 14 Nov 2023 22:13:21 GMT")).status, 200);
        assert_eq!(open(&p, req("garbage")).status, 200);
        // A failing If-Range also prevents 416.
        let r = open(
            &p,
            FileRequest {
                range: Some("bytes=99-"),
                if_range: Some("\"x\""),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 200);
    }

    #[test]
    fn index_resolution() {
        let d = TempDir::new("index");
        d.file("index.htm", b"x");
        let idx = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve_index(&d.0, &idx(&["index.html", "index.htm"])),
            Some(d.0.join("index.htm"))
        );
        assert_eq!(resolve_index(&d.0, &idx(&["index.html"])), None);
        assert_eq!(resolve_index(&d.0, &idx(&["/index.htm"])), None);
        assert_eq!(resolve_index(&d.0.join("nope"), &idx(&["index.htm"])), None);
        assert!(is_dir(&d.0));
        assert!(!is_dir(&d.0.join("index.htm")));
    }
}
