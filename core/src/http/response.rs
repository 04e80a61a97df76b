//! Response heads in nginx's header order, nginx's status texts and error
//! page bodies, and chunked framing for response bodies.

use std::io::Write as _;

use super::header_list::HeaderList;

/// The product name, as shown with `server_tokens off`.
pub const SERVER_NAME: &str = "halo";
/// Name and version, as shown with `server_tokens on` (e.g. `halo/0.1.0`).
pub const SERVER_VERSION: &str = concat!("halo/", env!("CARGO_PKG_VERSION"));
/// The Server header line (and the start of Date's) for each of the two.
const SERVER_VERSION_LINE: &str = concat!("Server: halo/", env!("CARGO_PKG_VERSION"), "\r\nDate: ");
const SERVER_NAME_LINE: &str = "Server: halo\r\nDate: ";
/// The same after the status line of a 200, the most common head, so that
/// it starts with one copy.
const OK_SERVER_VERSION_LINES: &str =
    concat!("HTTP/1.1 200 OK\r\nServer: halo/", env!("CARGO_PKG_VERSION"), "\r\nDate: ");
const OK_SERVER_NAME_LINES: &str = "HTTP/1.1 200 OK\r\nServer: halo\r\nDate: ";

/// The terminating chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// nginx's reason phrase for a status code, or `""` when nginx has none.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        494 => "Request Header Or Cookie Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// `Connection: keep-alive` (also for HTTP/1.0 clients that asked).
    Yes,
    /// `Connection: close`.
    No,
    /// `Connection: upgrade` (101 responses).
    Upgrade,
    /// No `Connection` header at all.
    Omit,
}

/// Appends a decimal number without going through `fmt`.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the status line. Like nginx, halo answers `HTTP/1.1` whatever
/// the request's version; an unknown status gets no phrase (`HTTP/1.1 299 `).
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    // The common ones, whole: one copy instead of five pieces.
    let line: &[u8] = match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Moved Temporarily\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        _ => b"",
    };
    if !line.is_empty() {
        out.extend_from_slice(line);
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A response head, written in nginx's order: status line, Server, Date,
/// Content-Type, Content-Length, Last-Modified, Location,
/// Transfer-Encoding, Connection, Keep-Alive, then `extra` in order.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    /// Status code.
    pub status: u16,
    /// A reason phrase of its own (a proxied response's); None: the
    /// status's standard one.
    pub reason: Option<&'a str>,
    /// `Server` value (`SERVER_VERSION`, `SERVER_NAME`) or none.
    pub server: Option<&'a str>,
    /// `Date` value (an HTTP date, usually cached per second by the caller).
    pub date: &'a str,
    /// `Content-Type` value, charset included.
    pub content_type: Option<&'a str>,
    /// `Content-Length` value.
    pub content_length: Option<u64>,
    /// `Last-Modified` value.
    pub last_modified: Option<&'a str>,
    /// `Location` value.
    pub location: Option<&'a str>,
    /// Adds `Transfer-Encoding: chunked` (HTTP/1.1 clients only; the caller
    /// must not ask for it on HTTP/1.0).
    pub chunked: bool,
    /// The `Connection` header.
    pub keep_alive: KeepAlive,
    /// `Keep-Alive: timeout=N` (nginx's second `keepalive_timeout`
    /// parameter), only with `KeepAlive::Yes`.
    pub keep_alive_timeout: Option<u64>,
    /// Other headers, in order.
    pub extra: &'a HeaderList,
}

impl<'a> ResponseHead<'a> {
    /// A head with the given status and date, everything else off/empty and
    /// `Connection: close`.
    pub fn new(status: u16, date: &'a str) -> Self {
        ResponseHead {
            status,
            reason: None,
            server: None,
            date,
            content_type: None,
            content_length: None,
            last_modified: None,
            location: None,
            chunked: false,
            keep_alive: KeepAlive::No,
            keep_alive_timeout: None,
            extra: HeaderList::none(),
        }
    }

    /// Appends the head, ending with the blank line, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let extra = self.extra.text_len() + 4 * self.extra.len();
        out.reserve(160 + self.date.len() + self.content_type.map_or(0, str::len) + extra);
        // halo's own two Server values come with their line prebuilt.
        match (self.status, self.server, self.reason) {
            (200, Some(SERVER_VERSION), None) => out.extend_from_slice(OK_SERVER_VERSION_LINES.as_bytes()),
            (200, Some(SERVER_NAME), None) => out.extend_from_slice(OK_SERVER_NAME_LINES.as_bytes()),
            (status, server, reason) => {
                match reason {
                    None => write_status_line(out, status),
                    Some(r) => {
                        out.extend_from_slice(b"HTTP/1.1 ");
                        push_u64(out, u64::from(status));
                        out.push(b' ');
                        out.extend_from_slice(r.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                match server {
                    Some(SERVER_VERSION) => out.extend_from_slice(SERVER_VERSION_LINE.as_bytes()),
                    Some(SERVER_NAME) => out.extend_from_slice(SERVER_NAME_LINE.as_bytes()),
                    Some(s) => {
                        out.extend_from_slice(b"Server: ");
                        out.extend_from_slice(s.as_bytes());
                        out.extend_from_slice(b"\r\nDate: ");
                    }
                    None => out.extend_from_slice(b"Date: "),
                }
            }
        }
        out.extend_from_slice(self.date.as_bytes());
        if let Some(ct) = self.content_type {
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(ct.as_bytes());
        }
        if let Some(n) = self.content_length {
            out.extend_from_slice(b"\r\nContent-Length: ");
            push_u64(out, n);
        }
        out.extend_from_slice(b"\r\n");
        if let Some(lm) = self.last_modified {
            push_header(out, b"Last-Modified", lm.as_bytes());
        }
        if let Some(loc) = self.location {
            push_header(out, b"Location", loc.as_bytes());
        }
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        match self.keep_alive {
            KeepAlive::Yes => {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
                if let Some(t) = self.keep_alive_timeout {
                    out.extend_from_slice(b"Keep-Alive: timeout=");
                    push_u64(out, t);
                    out.extend_from_slice(b"\r\n");
                }
            }
            KeepAlive::No => out.extend_from_slice(b"Connection: close\r\n"),
            KeepAlive::Upgrade => out.extend_from_slice(b"Connection: upgrade\r\n"),
            KeepAlive::Omit => {}
        }
        for (n, v) in self.extra.iter() {
            push_header(out, n, v);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a response head (see [`ResponseHead`] for the order and for
/// Last-Modified/Location/Keep-Alive, which this shorthand leaves out).
/// `version_minor` is the request's; the status line is `HTTP/1.1` either
/// way, as nginx's, and chunked must not be asked for HTTP/1.0.
#[allow(clippy::too_many_arguments)]
pub fn write_head(
    out: &mut Vec<u8>,
    version_minor: u8,
    status: u16,
    server: Option<&str>,
    date: &str,
    content_type: Option<&str>,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: KeepAlive,
    extra: &HeaderList,
) {
    debug_assert!(!(chunked && version_minor == 0), "chunked response to an HTTP/1.0 client");
    ResponseHead {
        status,
        reason: None,
        server,
        date,
        content_type,
        content_length,
        last_modified: None,
        location: None,
        chunked,
        keep_alive,
        keep_alive_timeout: None,
        extra,
    }
    .write(out);
}

/// Frames `data` as one chunk (`<hex size>\r\n<data>\r\n`). Empty data
/// writes nothing, since an empty chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// nginx's built-in error page for `status`, or `None` when nginx sends no
/// body (statuses below 300, 304, and codes it has no text for).
/// `server_tokens` picks `halo/x.y.z` or just `halo` in the footer. The
/// body is sent as `text/html`.
pub fn error_page_body(status: u16, server_tokens: bool) -> Option<String> {
    if status < 300 || status == 304 {
        return None;
    }
    // nginx's pages for its internal 49x codes are served with status 400
    // and a two-line text.
    let (title, h1, extra) = match status {
        494 => ("400 Request Header Or Cookie Too Large", "400 Bad Request",
                Some("Request Header Or Cookie Too Large")),
        495 => ("400 The SSL certificate error", "400 Bad Request",
                Some("The SSL certificate error")),
        496 => ("400 No required SSL certificate was sent", "400 Bad Request",
                Some("No required SSL certificate was sent")),
        497 => ("400 The plain HTTP request was sent to HTTPS port", "400 Bad Request",
                Some("The plain HTTP request was sent to HTTPS port")),
        _ => {
            let phrase = reason_phrase(status);
            if phrase.is_empty() {
                return None;
            }
            let line = format!("{status} {phrase}");
            return Some(page(&line, &line, None, server_tokens));
        }
    };
    Some(page(title, h1, extra, server_tokens))
}

fn page(title: &str, h1: &str, extra: Option<&str>, server_tokens: bool) -> String {
    let server = if server_tokens { SERVER_VERSION } else { SERVER_NAME };
    let mut s = String::with_capacity(200);
    s.push_str("<html>\r\n<head><title>");
    s.push_str(title);
    s.push_str("</title></head>\r\n<body>\r\n<center><h1>");
    s.push_str(h1);
    s.push_str("</h1></center>\r\n");
    if let Some(e) = extra {
        s.push_str("<center>");
        s.push_str(e);
        s.push_str("</center>\r\n");
    }
    s.push_str("<hr><center>");
    s.push_str(server);
    s.push_str("</center>\r\n</body>\r\n</html>\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(302), "Moved Temporarily");
        assert_eq!(reason_phrase(405), "Not Allowed");
        assert_eq!(reason_phrase(408), "Request Time-out");
        assert_eq!(reason_phrase(503), "Service Temporarily Unavailable");
        assert_eq!(reason_phrase(504), "Gateway Time-out");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "");
        assert_eq!(reason_phrase(0), "");
    }

    #[test]
    fn server_consts() {
        assert_eq!(SERVER_NAME, "halo");
        assert!(SERVER_VERSION.starts_with("halo/"));
        assert_eq!(SERVER_VERSION, format!("halo/{}", env!("CARGO_PKG_VERSION")));
    }

    fn head_str(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn head_order() {
        let extra: HeaderList = [("ETag", "\"abc\""), ("X-A", "b")].into_iter().collect();
        let s = head_str(|o| {
            write_head(o, 1, 200, Some(SERVER_NAME), DATE, Some("text/html"), Some(12), false,
                       KeepAlive::Yes, &extra)
        });
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nServer: halo\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/html\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\
             ETag: \"abc\"\r\nX-A: b\r\n\r\n"
        );
    }

    #[test]
    fn head_variants() {
        let s = head_str(|o| write_head(o, 1, 404, None, DATE, None, None, true, KeepAlive::No, HeaderList::none()));
        assert_eq!(s, format!("HTTP/1.1 404 Not Found\r\nDate: {DATE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
        // HTTP/1.0 client: still an HTTP/1.1 status line, as nginx.
        let s = head_str(|o| write_head(o, 0, 200, None, DATE, None, Some(0), false, KeepAlive::Yes, HeaderList::none()));
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("\r\nConnection: keep-alive\r\n"));
        // Unknown status: no phrase, trailing space kept.
        let s = head_str(|o| write_head(o, 1, 299, None, DATE, None, None, false, KeepAlive::Omit, HeaderList::none()));
        assert_eq!(s, format!("HTTP/1.1 299 \r\nDate: {DATE}\r\n\r\n"));
        let s = head_str(|o| write_head(o, 1, 200, None, DATE, None, Some(18446744073709551615), false, KeepAlive::Upgrade, HeaderList::none()));
        assert!(s.contains("Content-Length: 18446744073709551615\r\nConnection: upgrade\r\n"));
    }

    #[test]
    fn full_head() {
        let mut h = ResponseHead::new(301, DATE);
        h.server = Some(SERVER_VERSION);
        h.content_type = Some("text/html");
        h.content_length = Some(169);
        h.last_modified = Some("Mon, 01 Jan 2024 00:00:00 GMT");
        h.location = Some("http://x/y/");
        h.keep_alive = KeepAlive::Yes;
        h.keep_alive_timeout = Some(60);
        let extra: HeaderList = [("X", "1")].into_iter().collect();
        h.extra = &extra;
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nServer: {SERVER_VERSION}\r\nDate: {DATE}\r\n\
                 Content-Type: text/html\r\nContent-Length: 169\r\n\
                 Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\nLocation: http://x/y/\r\n\
                 Connection: keep-alive\r\nKeep-Alive: timeout=60\r\nX: 1\r\n\r\n"
            )
        );
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        let mut expect = b"5\r\nhello\r\n1a\r\n".to_vec();
        expect.extend_from_slice(&[b'x'; 26]);
        expect.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expect);
        // Round trip through the request-side decoder.
        let mut d = crate::http::chunked::ChunkedDecoder::new();
        let mut body = Vec::new();
        assert_eq!(d.decode(&out, &mut body).unwrap(), (out.len(), true));
        assert_eq!(body.len(), 31);
    }

    #[test]
    fn error_pages() {
        assert_eq!(
            error_page_body(404, true).unwrap(),
            format!(
                "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n\
                 <center><h1>404 Not Found</h1></center>\r\n<hr><center>{SERVER_VERSION}</center>\r\n\
                 </body>\r\n</html>\r\n"
            )
        );
        assert_eq!(
            error_page_body(500, false).unwrap(),
            "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n\
             <center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>halo</center>\r\n\
             </body>\r\n</html>\r\n"
        );
        assert!(error_page_body(301, false).unwrap().contains("<title>301 Moved Permanently</title>"));
        assert_eq!(
            error_page_body(494, false).unwrap(),
            "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n\
             <center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n\
             <hr><center>halo</center>\r\n</body>\r\n</html>\r\n"
        );
        assert!(error_page_body(431, false).unwrap().contains("<h1>431 Request Header Fields Too Large</h1>"));
        for s in [100, 101, 200, 204, 206, 304, 299, 418, 599] {
            assert_eq!(error_page_body(s, true), None, "{s}");
        }
    }
}
