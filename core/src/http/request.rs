//! HTTP/1.x request heads: parsing with httparse, nginx's size limits, nginx's
//! answers to malformed requests, and `$uri` normalization.
//!
//! [`parse_request`] is called on the bytes read so far. It returns `Ok(None)`
//! while the head is incomplete (and still within the limits), the parsed
//! [`Request`] and the head length once the blank line has arrived, or an
//! [`HttpError`] carrying the status to answer and the error-log text.

use std::fmt;
use std::mem::MaybeUninit;

/// Header buffer sizes, as nginx's `client_header_buffer_size` and
/// `large_client_header_buffers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `client_header_buffer_size` (default 1024).
    pub header_buffer: usize,
    /// `large_client_header_buffers number size` (default 4 8192).
    pub large_buffers: (usize, usize),
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_buffer: 1024, large_buffers: (4, 8192) }
    }
}

impl Limits {
    /// Longest line (request line or header line, with its CRLF) that fits
    /// in one buffer.
    fn line_max(&self) -> usize {
        self.header_buffer.max(self.large_buffers.1)
    }

    /// Largest whole head: all large buffers together.
    fn total_max(&self) -> usize {
        self.header_buffer.max(self.large_buffers.0.saturating_mul(self.large_buffers.1))
    }
}

/// How header lines with unusual names are treated, as nginx's
/// `underscores_in_headers` and `ignore_invalid_headers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// `underscores_in_headers` (default off): names with `_` are invalid.
    pub underscores_in_headers: bool,
    /// `ignore_invalid_headers` (default on): header lines whose name has
    /// characters other than letters, digits and `-` are dropped.
    pub ignore_invalid_headers: bool,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy { underscores_in_headers: false, ignore_invalid_headers: true }
    }
}

/// A request that cannot be served: the status to answer and the text for
/// the error log (nginx's wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// Status code to answer with.
    pub status: u16,
    /// Why, for the error log (e.g. "client sent invalid request").
    pub reason: &'static str,
}

impl HttpError {
    /// Builds an error; `const` so the common ones can be constants.
    pub const fn new(status: u16, reason: &'static str) -> Self {
        HttpError { status, reason }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status)
    }
}

impl std::error::Error for HttpError {}

const INVALID_REQUEST: HttpError = HttpError::new(400, "client sent invalid request");
const INVALID_METHOD: HttpError = HttpError::new(400, "client sent invalid method");
const INVALID_HEADER: HttpError = HttpError::new(400, "client sent invalid header line");
const INVALID_VERSION: HttpError = HttpError::new(505, "client sent invalid version");
const TOO_LONG_URI: HttpError = HttpError::new(414, "client sent too long URI");
const TOO_LONG_HEADER: HttpError = HttpError::new(431, "client sent too long header line");
const TOO_LARGE_REQUEST: HttpError = HttpError::new(431, "client sent too large request");
const INVALID_HOST: HttpError = HttpError::new(400, "client sent invalid host header");
const INVALID_HOST_IN_LINE: HttpError =
    HttpError::new(400, "client sent invalid host in request line");
const DUPLICATE_HOST: HttpError = HttpError::new(400, "client sent duplicate host header");
const DUPLICATE_HEADER: HttpError = HttpError::new(400, "client sent duplicate header line");
const NO_HOST: HttpError =
    HttpError::new(400, "client sent HTTP/1.1 request without \"Host\" header");
const INVALID_CONTENT_LENGTH: HttpError =
    HttpError::new(400, "client sent invalid \"Content-Length\" header");
const TE_HTTP10: HttpError =
    HttpError::new(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header");
const CL_AND_TE: HttpError = HttpError::new(
    400,
    "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
);
const UNKNOWN_TE: HttpError = HttpError::new(501, "client sent unknown \"Transfer-Encoding\"");
const CONNECT_METHOD: HttpError = HttpError::new(405, "client sent CONNECT method");
const TRACE_METHOD: HttpError = HttpError::new(405, "client sent TRACE method");

/// The request method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    /// Any other token of uppercase letters, `_` and `-` (e.g. `PROPFIND`).
    Other(String),
}

impl Method {
    /// The method of a request-line token; None when nginx would not take
    /// it (only uppercase letters, `_` and `-`).
    fn from_token(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            other if !other.is_empty() && other.bytes().all(|c| c.is_ascii_uppercase() || c == b'_' || c == b'-') => {
                Method::Other(other.to_owned())
            }
            _ => return None,
        })
    }

    /// The method as sent (`"GET"`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other(s) => s,
        }
    }
}

/// A byte range in `Request::text`.
type Span = (u32, u32);

/// A parsed request head. All its text lives in one string (one
/// allocation per request); the accessors slice it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// HTTP/1.x minor version: 0 or 1 (HTTP/1.2 and up count as 1).
    pub version_minor: u8,
    /// Content-Length, if sent.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Whether the connection may stay open after the response, as the
    /// client asked (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    text: String,
    line: Span,
    uri: Span,
    path: Span,
    args: Option<Span>,
    host: Option<Span>,
    /// (name, value) spans of the header lines nginx keeps, in order.
    headers: Vec<(Span, Span)>,
    /// The whole head as sent, when it was valid UTF-8 (it is then the
    /// start of `text`).
    raw: Option<Span>,
    /// The last plain Host value parsed into this (reused) request and the
    /// length of its name part: the next request on a connection nearly
    /// always sends the same one.
    host_cache: (Vec<u8>, usize),
}

impl Default for Request {
    fn default() -> Self {
        Request {
            method: Method::Get,
            version_minor: 1,
            content_length: None,
            chunked: false,
            keep_alive: false,
            expect_continue: false,
            text: String::new(),
            line: (0, 0),
            uri: (0, 0),
            path: (0, 0),
            args: None,
            host: None,
            headers: Default::default(),
            raw: None,
            host_cache: Default::default(),
        }
    }
}

impl Request {
    fn span(&self, (a, b): Span) -> &str {
        // Spans are made at ASCII delimiters of valid UTF-8; `get` keeps a
        // mistake from ever panicking a worker.
        self.text.get(a as usize..b as usize).unwrap_or("")
    }

    /// What is known of a request that failed to parse, for the logs: the
    /// first line of `head` as `$request`, nothing else.
    pub fn unparsed(head: &[u8]) -> Request {
        let end = head.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(head.len()).min(2048);
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let method = text.split(' ').next().unwrap_or("").to_string();
        Request {
            method: Method::Other(method),
            version_minor: 1,
            content_length: None,
            chunked: false,
            keep_alive: false,
            expect_continue: false,
            line: (0, text.len() as u32),
            uri: (0, 0),
            path: (0, 0),
            args: None,
            host: None,
            headers: Default::default(),
            raw: None,
            host_cache: Default::default(),
            text,
        }
    }

    /// The method as sent.
    pub fn method_str(&self) -> &str {
        self.method.as_str()
    }

    /// The request line as sent, without CRLF (nginx's `$request`).
    pub fn request_line(&self) -> &str {
        self.span(self.line)
    }

    /// nginx's `$request_uri`: the target as sent (for an absolute-form
    /// target, the part from the path on).
    pub fn request_uri(&self) -> &str {
        self.span(self.uri)
    }

    /// nginx's `$uri`: `%XX` decoded, slashes merged, `.`/`..` resolved, no
    /// query string. Bytes that do not decode to UTF-8 are replaced by U+FFFD.
    pub fn path(&self) -> &str {
        self.span(self.path)
    }

    /// The query string, raw (not decoded), without the `?`; `None` when
    /// absent or empty.
    pub fn args(&self) -> Option<&str> {
        self.args.map(|s| self.span(s))
    }

    /// The host the request is for: from an absolute-form target, else from
    /// the Host header; lowercased, port and trailing dot removed.
    pub fn host(&self) -> Option<&str> {
        self.host.map(|s| self.span(s))
    }

    /// Header lines in order: name as sent, value trimmed. Header lines that
    /// nginx would ignore (see [`HeaderPolicy`]) are not here.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        self.headers.iter().map(|&(n, v)| (self.span(n), self.span(v)))
    }

    /// [`Request::headers`] as bytes (no text checks: for copying out).
    pub fn header_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let text = self.text.as_bytes();
        let at = |(a, b): Span| text.get(a as usize..b as usize).unwrap_or_default();
        self.headers.iter().map(move |&(n, v)| (at(n), at(v)))
    }

    /// How many header lines [`Request::headers`] yields.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// All headers with this name (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The request head as sent (request line, headers, blank line), when
    /// it was valid UTF-8.
    pub fn raw_header(&self) -> Option<&str> {
        self.raw.map(|s| self.span(s))
    }

    /// Replace the head as sent (the version-substitution path parses a copy).
    fn set_raw(&mut self, head: &[u8]) {
        self.raw = std::str::from_utf8(head).ok().map(|h| self.push_text(h));
    }

    fn push_text(&mut self, s: &str) -> Span {
        let a = self.text.len() as u32;
        self.text.push_str(s);
        (a, self.text.len() as u32)
    }

    /// Replace `$request` (the version-substitution path parses a copy).
    fn set_request_line(&mut self, line: &str) {
        self.line = self.push_text(line);
    }
}

/// Builds a request's text. A head that is valid UTF-8 (nearly always)
/// is copied once, whole, and its pieces become spans of that copy; only
/// what parsing produces (a normalized path, a lowercased host) or an
/// invalid head's pieces (made lossy) are appended.
struct TextBuilder<'h, 't> {
    text: &'t mut String,
    head: &'h [u8],
    /// Whether `text` starts with a copy of `head`.
    whole: bool,
}

impl<'h, 't> TextBuilder<'h, 't> {
    /// Start over in `text` (its capacity is kept).
    fn new(text: &'t mut String, head: &'h [u8]) -> Self {
        text.clear();
        match std::str::from_utf8(head) {
            Ok(h) => {
                text.push_str(h);
                TextBuilder { text, head, whole: true }
            }
            Err(_) => TextBuilder { text, head, whole: false },
        }
    }

    /// The span of `piece`, a sub-slice of the head split at ASCII
    /// delimiters (or any bytes, which are then appended).
    #[inline]
    fn push(&mut self, piece: &[u8]) -> Span {
        let off = (piece.as_ptr() as usize).wrapping_sub(self.head.as_ptr() as usize);
        if self.whole && off <= self.head.len() && piece.len() <= self.head.len() - off {
            return (off as u32, (off + piece.len()) as u32);
        }
        let a = self.text.len() as u32;
        self.text.push_str(&String::from_utf8_lossy(piece));
        (a, self.text.len() as u32)
    }

    fn push_str(&mut self, s: &str) -> Span {
        let a = self.text.len() as u32;
        self.text.push_str(s);
        (a, self.text.len() as u32)
    }
}

/// Parses a request head from `buf` with nginx's default header policy.
///
/// Returns `Ok(None)` if more bytes are needed, `Ok(Some((request, n)))`
/// where `n` is the length of the head (the body, or the next pipelined
/// request, starts at `buf[n]`), or the error to answer.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
    parse_request_with(buf, limits, &HeaderPolicy::default())
}

/// [`parse_request`] with an explicit [`HeaderPolicy`].
pub fn parse_request_with(
    buf: &[u8],
    limits: &Limits,
    policy: &HeaderPolicy,
) -> Result<Option<(Request, usize)>, HttpError> {
    let mut req = Request::default();
    Ok(parse_request_into(buf, limits, policy, &mut req)?.map(|n| (req, n)))
}

/// Parse a request head into `out`, reusing its buffers: a connection
/// keeps one `Request` for all its requests, so parsing allocates nothing
/// once the buffers have grown. Ok(None) = the head is incomplete.
pub fn parse_request_into(
    buf: &[u8],
    limits: &Limits,
    policy: &HeaderPolicy,
    out: &mut Request,
) -> Result<Option<usize>, HttpError> {
    // nginx skips any CR and LF bytes before the request line; httparse
    // only whole empty lines, so a lone CR would be an error or not
    // depending on what follows it.
    if let [b'\r' | b'\n', ..] = buf {
        let skip = buf.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
        return Ok(parse_request_into(&buf[skip..], limits, policy, out)?.map(|n| n + skip));
    }
    // First strictly: a head with a header name httparse refuses is rare,
    // and only then is the lenient parse (and its check of the lines it
    // skipped) worth its cost.
    match parse_with(buf, limits, policy, false, out) {
        Err(e) if e.lenient_retry => parse_with(buf, limits, policy, true, out).map_err(|e| e.error),
        res => res.map_err(|e| e.error),
    }
}

/// A parse error, and whether a lenient parse might still accept the head.
struct ParseFailure {
    error: HttpError,
    lenient_retry: bool,
}

impl From<HttpError> for ParseFailure {
    fn from(error: HttpError) -> Self {
        ParseFailure { error, lenient_retry: false }
    }
}

fn parse_with(
    buf: &[u8],
    limits: &Limits,
    policy: &HeaderPolicy,
    lenient: bool,
    out: &mut Request,
) -> Result<Option<usize>, ParseFailure> {
    let mut config = httparse::ParserConfig::default();
    // nginx accepts several spaces between request-line parts, and skips
    // (rather than rejects) header lines with odd names.
    config.allow_multiple_spaces_in_request_line_delimiters(true).ignore_invalid_headers_in_requests(lenient);

    // 64 headers on the stack cover nearly every request; more retry below.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); 64];
    let mut req = httparse::Request::new(&mut []);
    let res = match config.parse_request_with_uninit_headers(&mut req, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => finish(&req, buf, len, limits, policy, lenient, out).map(Some),
        Ok(httparse::Status::Partial) => check_limits(buf, false, limits).map(|()| None),
        Err(httparse::Error::TooManyHeaders) => {
            // Every header takes at least one line: this many slots suffice.
            let lines = count_lf(buf) + 1;
            let mut slots = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); lines];
            let mut req = httparse::Request::new(&mut []);
            match config.parse_request_with_uninit_headers(&mut req, buf, &mut slots) {
                Ok(httparse::Status::Complete(len)) => {
                    finish(&req, buf, len, limits, policy, lenient, out).map(Some)
                }
                Ok(httparse::Status::Partial) => check_limits(buf, false, limits).map(|()| None),
                Err(e @ (httparse::Error::HeaderName | httparse::Error::HeaderValue)) if !lenient => {
                    return Err(ParseFailure { error: map_error(e), lenient_retry: true })
                }
                Err(e) => Err(map_error(e)),
            }
        }
        Err(e @ (httparse::Error::HeaderName | httparse::Error::HeaderValue)) if !lenient => {
            return Err(ParseFailure { error: map_error(e), lenient_retry: true })
        }
        // "HTTP/1.10" fails as a bad line end after "HTTP/1.1", hence NewLine.
        Err(e @ (httparse::Error::Version | httparse::Error::NewLine)) => {
            other_version(buf, limits, policy, map_error(e), out)
        }
        Err(e) => Err(map_error(e)),
    };
    res.map_err(ParseFailure::from)
}

fn map_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::HeaderName | httparse::Error::HeaderValue => INVALID_HEADER,
        _ => INVALID_REQUEST,
    }
}

fn count_lf(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// Offset of the request line: nginx (and httparse) skip empty lines first.
fn skip_empty_lines(buf: &[u8]) -> usize {
    buf.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(buf.len())
}

/// The request line (from `start`) without its line end, and the offset
/// just past its LF if it is complete.
fn request_line_at(buf: &[u8], start: usize) -> (&[u8], Option<usize>) {
    let rest = &buf[start..];
    match rest.iter().position(|&c| c == b'\n') {
        Some(i) => {
            let line = &rest[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, Some(start + i + 1))
        }
        None => (rest, None),
    }
}

/// Enforces the header buffer limits on a head (`complete`) or on the bytes
/// of an incomplete one.
fn check_limits(head: &[u8], complete: bool, limits: &Limits) -> Result<(), HttpError> {
    let line_max = limits.line_max();
    let total_max = limits.total_max();
    // Fast path: too short for any line or the whole to be over.
    let small = line_max.min(total_max);
    if head.len() < small || (complete && head.len() == small) {
        return Ok(());
    }

    let mut pos = skip_empty_lines(head);
    let mut first = true;
    while pos < head.len() {
        let (len, complete_line) = match head[pos..].iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (head.len() - pos, false),
        };
        let over = if complete_line { len > line_max } else { len >= line_max };
        if over {
            return Err(if first { TOO_LONG_URI } else { TOO_LONG_HEADER });
        }
        first = false;
        pos += len;
    }
    let over = if complete { head.len() > total_max } else { head.len() >= total_max };
    if over {
        return Err(TOO_LARGE_REQUEST);
    }
    Ok(())
}

/// Parses `HTTP/<major>.<minor>` (up to 3 digits each, as nginx caps at 99
/// and more digits are plainly bad).
fn parse_version_token(tok: &[u8]) -> Option<(u32, u32)> {
    let rest = tok.strip_prefix(b"HTTP/")?;
    let dot = rest.iter().position(|&c| c == b'.')?;
    let (maj, min) = (&rest[..dot], &rest[dot + 1..]);
    let num = |d: &[u8]| -> Option<u32> {
        if d.is_empty() || d.len() > 3 || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0, |n, &c| n * 10 + u32::from(c - b'0')))
    };
    Some((num(maj)?, num(min)?))
}

/// Whether `tok` could still grow into a valid `HTTP/x.y`.
fn is_version_prefix(tok: &[u8]) -> bool {
    let p = b"HTTP/";
    if tok.len() <= p.len() {
        return p.starts_with(tok);
    }
    let rest = &tok[p.len()..];
    let mut dots = 0;
    tok.starts_with(p)
        && rest.first().is_some_and(u8::is_ascii_digit)
        && rest.iter().all(|&c| {
            if c == b'.' {
                dots += 1;
                dots == 1
            } else {
                c.is_ascii_digit()
            }
        })
}

/// httparse only knows HTTP/1.0 and HTTP/1.1. Sort out the rest as nginx
/// does: HTTP/2+ -> 505, HTTP/1.2+ -> served as HTTP/1.1. If the version is
/// not the problem, `fallback` is the error.
fn other_version(
    buf: &[u8],
    limits: &Limits,
    policy: &HeaderPolicy,
    fallback: HttpError,
    out: &mut Request,
) -> Result<Option<usize>, HttpError> {
    let start = skip_empty_lines(buf);
    let (line, end) = request_line_at(buf, start);
    let parts: Vec<&[u8]> = line.split(|&c| c == b' ').filter(|p| !p.is_empty()).collect();
    if parts.len() != 3 {
        return Err(fallback);
    }
    let tok = parts[2];
    let Some(line_end) = end else {
        // The CR may have come without its LF yet: the answer must not
        // depend on where the reads split the line.
        if is_version_prefix(tok.strip_suffix(b"\r").unwrap_or(tok)) {
            check_limits(buf, false, limits)?;
            return Ok(None);
        }
        return Err(fallback);
    };
    match parse_version_token(tok) {
        Some((1, minor)) => {
            // Substitute a version httparse knows and parse again. Rare path,
            // so the copy does not matter.
            let subst: &[u8] = if minor == 0 { b"HTTP/1.0" } else { b"HTTP/1.1" };
            let tok_start = tok.as_ptr() as usize - buf.as_ptr() as usize;
            let mut copy = Vec::with_capacity(buf.len() + 8);
            copy.extend_from_slice(&buf[..tok_start]);
            copy.extend_from_slice(subst);
            copy.extend_from_slice(&buf[tok_start + tok.len()..]);
            let delta = tok.len() as isize - subst.len() as isize;
            if delta == 0 && tok == subst {
                // httparse refused the line for another reason (e.g. a space
                // after the version): parsing again would loop.
                return Err(fallback);
            }
            let res = parse_request_into(&copy, limits, policy, out)?;
            Ok(res.map(|len| {
                let len = (len as isize + delta) as usize;
                out.set_request_line(lossy(&buf[start..line_end]).trim_end());
                out.set_raw(&buf[..len]);
                len
            }))
        }
        Some((0, _)) => Err(INVALID_REQUEST),
        Some(_) => Err(INVALID_VERSION),
        None => Err(fallback),
    }
}

fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// nginx's valid header name characters: letters, digits, `-` (and `_`
/// with `underscores_in_headers on`).
fn valid_header_name(name: &str, policy: &HeaderPolicy) -> bool {
    name.bytes().all(|c| HEADER_NAME[c as usize] || (c == b'_' && policy.underscores_in_headers))
}

/// Letters, digits and `-`: a table, as header names are checked per line.
static HEADER_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-';
        c += 1;
    }
    t
};

/// Where `piece`, a sub-slice of `head`, starts in it.
fn offset_in(head: &[u8], piece: &[u8]) -> usize {
    (piece.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize)
}

/// The header lines of a head that httparse's strict parse refused, read as
/// nginx reads them (`ngx_http_parse_header_line`): httparse's lenient parse
/// would silently drop a line whose value holds a control byte, and such a
/// line may be a framing header (`Content-Length: 5\x0b`). nginx keeps the
/// value as sent, so the framing checks then reject it. `section` is the
/// head after the request line, blank line included.
///
/// Rejected as nginx does (400): a NUL or a bare CR anywhere, an obs-fold
/// continuation line, an empty name or a name with spaces or control bytes.
/// Names with other odd bytes stay (the caller drops them under
/// `ignore_invalid_headers`); a name that is not UTF-8 can never be valid and
/// is dropped here. A line without a colon is a header with an empty value.
fn nginx_header_lines(section: &[u8]) -> Result<Vec<httparse::Header<'_>>, HttpError> {
    let mut out = Vec::new();
    for line in section.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains(&0) || line.contains(&b'\r') || matches!(line[0], b' ' | b'\t') {
            return Err(INVALID_HEADER);
        }
        let name_end = line.iter().position(|&c| c == b':').unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty() || name.iter().any(|&c| c <= 0x20 || c == 0x7f) {
            return Err(INVALID_HEADER);
        }
        let Ok(name) = std::str::from_utf8(name) else { continue };
        // Trimmed of spaces and tabs as httparse trims them, so both parses
        // give the same values (tabs around framing values: see `tab_around`).
        // (A line without a colon: an empty value at its end, still a
        // slice of the head, as `tab_around` expects.)
        let mut value = line.get(name_end + 1..).unwrap_or(&line[line.len()..]);
        while let [b' ' | b'\t', rest @ ..] = value {
            value = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = value {
            value = rest;
        }
        out.push(httparse::Header { name, value });
    }
    Ok(out)
}

/// Whether a tab stands between the colon and the value or after the value
/// (httparse trims both). nginx skips only spaces there, so for it the tab
/// belongs to the value: `Transfer-Encoding:\tchunked` is an unknown coding
/// (501), and Content-Length and Host with a tab are invalid (400).
fn tab_around(head: &[u8], name: &str, value: &[u8]) -> bool {
    // Both are slices of `head`; `get` keeps a mistake from panicking.
    let colon = offset_in(head, name.as_bytes()) + name.len();
    let start = offset_in(head, value);
    let end = start.saturating_add(value.len());
    head.get(colon + 1..start).is_some_and(|b| b.contains(&b'\t'))
        || head.get(end..).unwrap_or(&[]).iter().take_while(|&&c| c != b'\r' && c != b'\n').any(|&c| c == b'\t')
}

/// Finds the scheme (letters) and `://` of an absolute-form target; returns
/// the authority and the rest (path and query).
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let colon = target.find("://")?;
    if colon == 0 || !target.as_bytes()[..colon].iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let after = &target[colon + 3..];
    let host_end = after.find(['/', '?']).unwrap_or(after.len());
    Some((&after[..host_end], &after[host_end..]))
}

/// nginx's `ngx_http_validate_host`: returns the host lowercased, without
/// port and trailing dot, or `None` if it is not acceptable.
pub fn validate_host(host: &[u8]) -> Option<String> {
    #[derive(PartialEq)]
    enum St {
        Usual,
        Literal,
        Rest,
    }
    let mut dot_pos: Option<usize> = None;
    let mut host_len = host.len();
    let mut st = St::Usual;
    for (i, &c) in host.iter().enumerate() {
        match c {
            b'.' => {
                if i > 0 && dot_pos == Some(i - 1) {
                    return None;
                }
                dot_pos = Some(i);
            }
            b':' if st == St::Usual => {
                host_len = i;
                st = St::Rest;
            }
            b'[' if i == 0 => st = St::Literal,
            b']' if st == St::Literal => {
                host_len = i + 1;
                st = St::Rest;
            }
            b'/' => return None,
            c if c <= 0x20 || c == 0x7f => return None,
            _ => {}
        }
    }
    if host_len > 0 && dot_pos == Some(host_len - 1) {
        host_len -= 1;
    }
    if host_len == 0 {
        return None;
    }
    let h = &host[..host_len];
    // Non-UTF-8 hosts cannot match any server_name; reject them.
    let s = std::str::from_utf8(h).ok()?;
    Some(s.to_ascii_lowercase())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether a path has nothing to decode, merge or resolve (nearly all do):
/// it is then its own `$uri`.
fn is_normal_path(b: &[u8]) -> bool {
    // One table test per byte; only the four bytes that matter look further.
    static SPECIAL: [bool; 256] = {
        let mut t = [false; 256];
        t[b'%' as usize] = true;
        t[b'#' as usize] = true;
        t[b'/' as usize] = true;
        t[b'.' as usize] = true;
        t
    };
    for (i, &c) in b.iter().enumerate() {
        if SPECIAL[c as usize] {
            match c {
                b'%' | b'#' => return false,
                _ if i > 0 && b[i - 1] == b'/' => return false,
                _ => {}
            }
        }
    }
    b.first() == Some(&b'/')
}

/// nginx's `$uri` from the path part of a target (starting with `/`, query
/// already removed): cut at `#`, `%XX` decoded (`%00` and bad escapes are
/// errors), slashes merged, `.` and `..` resolved (`..` above the root is an
/// error).
pub fn normalize_path(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, HttpError> {
    let raw = match raw.iter().position(|&c| c == b'#') {
        Some(i) => &raw[..i],
        None => raw,
    };
    if raw.first() != Some(&b'/') {
        return Err(INVALID_REQUEST);
    }
    // Fast path: nothing to decode or resolve.
    let simple = raw.iter().enumerate().all(|(i, &c)| {
        c != b'%' && !(c == b'/' && matches!(raw.get(i + 1), Some(b'/') | Some(b'.')))
    });
    if simple {
        return Ok(String::from_utf8_lossy(raw));
    }

    // Decode first, then resolve: nginx also treats decoded `/` and `.` as
    // path syntax (decoded `%`, `?`, `#` stay literal, as here).
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_val);
            let lo = raw.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) if (h << 4 | l) != 0 => decoded.push(h << 4 | l),
                _ => return Err(INVALID_REQUEST),
            }
            i += 3;
        } else {
            decoded.push(c);
            i += 1;
        }
    }

    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    out.push(b'/');
    let mut segs = decoded[1..].split(|&c| c == b'/').peekable();
    while let Some(seg) = segs.next() {
        let last = segs.peek().is_none();
        match seg {
            b"" | b"." => {}
            b".." => {
                // `out` ends with '/' here; drop the last segment.
                if out.len() == 1 {
                    return Err(INVALID_REQUEST);
                }
                out.pop();
                let p = out.iter().rposition(|&c| c == b'/').unwrap_or(0);
                out.truncate(p + 1);
            }
            s => {
                out.extend_from_slice(s);
                if !last {
                    out.push(b'/');
                }
            }
        }
    }
    Ok(std::borrow::Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// Parses a Content-Length value as nginx's `ngx_atoof`: digits only.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    // nginx's limit is off_t; keep below i64::MAX as well.
    (n <= i64::MAX as u64).then_some(n)
}

/// Case-insensitive substring test (nginx's `ngx_strcasestrn`).
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Builds the [`Request`] from a complete httparse parse.
fn finish(
    parsed: &httparse::Request<'_, '_>,
    buf: &[u8],
    len: usize,
    limits: &Limits,
    policy: &HeaderPolicy,
    lenient: bool,
    out: &mut Request,
) -> Result<usize, HttpError> {
    let head = &buf[..len];
    check_limits(head, true, limits)?;

    let start = skip_empty_lines(head);
    let (line, line_end) = match parsed.headers.first() {
        // Strict parses skip no line: the first header starts the second
        // line, so the request line needs no scan.
        Some(h) if !lenient => {
            let end = offset_in(head, h.name.as_bytes());
            let line = &head[start..end];
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            (line.strip_suffix(b"\r").unwrap_or(line), end)
        }
        _ => {
            let (line, end) = request_line_at(head, start);
            (line, end.unwrap_or(len))
        }
    };

    // httparse's lenient parse drops the lines it finds invalid: read the
    // header lines again as nginx does (rare: only heads the strict parse
    // refused get here).
    let lenient_headers;
    let parsed_headers: &[httparse::Header<'_>] = if lenient {
        lenient_headers = nginx_header_lines(&head[line_end..])?;
        &lenient_headers
    } else {
        parsed.headers
    };

    let method = Method::from_token(parsed.method.unwrap_or("")).ok_or(INVALID_METHOD)?;
    let version_minor = parsed.version.unwrap_or(1);
    let target = parsed.path.unwrap_or("");

    // Target: origin-form, or absolute-form whose host wins over Host.
    let (uri_host, uri_part) = if target.starts_with('/') {
        (None, target)
    } else if let Some((authority, rest)) = split_absolute(target) {
        let host = validate_host(authority.as_bytes()).ok_or(INVALID_HOST_IN_LINE)?;
        (Some(host), rest)
    } else {
        return Err(INVALID_REQUEST);
    };
    let mut headers = std::mem::take(&mut out.headers);
    headers.clear();
    let mut tb = TextBuilder::new(&mut out.text, head);
    let whole = tb.whole;
    let line = tb.push(line);
    // "http://host" or "http://host?a": the path is "/".
    let rooted;
    let uri_text = if uri_part.starts_with('/') {
        uri_part
    } else {
        rooted = format!("/{uri_part}");
        &rooted
    };
    let uri = tb.push(uri_text.as_bytes());
    // A byte loop: URIs are short, and a memchr call costs more here.
    let (path_raw, args_raw) = match uri_text.bytes().position(|c| c == b'?') {
        Some(q) => (&uri_text[..q], Some(&uri_text[q + 1..])),
        None => (uri_text, None),
    };
    let args = args_raw.filter(|a| !a.is_empty()).map(|a| {
        let start = uri.0 + (a.as_ptr() as usize - uri_text.as_ptr() as usize) as u32;
        (start, start + a.len() as u32)
    });
    let path = if is_normal_path(path_raw.as_bytes()) {
        // Already normal: the path is a span of the URI.
        (uri.0, uri.0 + path_raw.len() as u32)
    } else {
        let p = normalize_path(path_raw.as_bytes())?;
        tb.push_str(&p)
    };

    let mut host_hdr: Option<Span> = None;
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    // nginx: each Connection header overrides the previous one.
    let mut connection: Option<bool> = None; // Some(true) = keep-alive, Some(false) = close
    let mut expect: Option<&[u8]> = None;
    for h in parsed_headers {
        let (name, value) = (h.name, h.value);
        if !valid_header_name(name, policy) && policy.ignore_invalid_headers {
            continue;
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                if host_hdr.is_some() {
                    return Err(DUPLICATE_HOST);
                }
                if tab_around(head, name, value) {
                    return Err(INVALID_HOST);
                }
                let cache = &mut out.host_cache;
                host_hdr = Some(if !cache.0.is_empty() && cache.0 == value {
                    tb.push(&value[..cache.1])
                } else {
                    let (span, plain) = host_span(&mut tb, value).ok_or(INVALID_HOST)?;
                    if let Some(n) = plain {
                        cache.0.clear();
                        cache.0.extend_from_slice(value);
                        cache.1 = n;
                    }
                    span
                });
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                if content_length.is_some() {
                    return Err(DUPLICATE_HEADER);
                }
                // A tab makes the value invalid, as for nginx (empty: invalid).
                content_length = Some(if tab_around(head, name, value) { &[][..] } else { value });
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                if transfer_encoding.is_some() {
                    return Err(DUPLICATE_HEADER);
                }
                // With a tab it is no longer "chunked" (as for nginx: 501).
                transfer_encoding = Some(if tab_around(head, name, value) { &b"\t"[..] } else { value });
            }
            10 if name.eq_ignore_ascii_case("connection") => {
                if contains_ci(value, b"close") {
                    connection = Some(false);
                } else if contains_ci(value, b"keep-alive") {
                    connection = Some(true);
                }
            }
            6 if name.eq_ignore_ascii_case("expect") && expect.is_none() => {
                expect = Some(value);
            }
            _ => {}
        }
        let n = tb.push(name.as_bytes());
        let v = tb.push(value);
        headers.push((n, v));
    }

    // The checks of nginx's ngx_http_process_request_header, in its order.
    if host_hdr.is_none() && version_minor >= 1 {
        return Err(NO_HOST);
    }
    let content_length = match content_length {
        Some(v) => Some(parse_content_length(v).ok_or(INVALID_CONTENT_LENGTH)?),
        None => None,
    };
    let mut chunked = false;
    if let Some(te) = transfer_encoding {
        if version_minor == 0 {
            return Err(TE_HTTP10);
        }
        if te.eq_ignore_ascii_case(b"chunked") {
            if content_length.is_some() {
                return Err(CL_AND_TE);
            }
            chunked = true;
        } else {
            return Err(UNKNOWN_TE);
        }
    }
    match method {
        Method::Connect => return Err(CONNECT_METHOD),
        Method::Trace => return Err(TRACE_METHOD),
        _ => {}
    }

    let keep_alive = connection.unwrap_or(version_minor >= 1);
    let expect_continue =
        version_minor >= 1 && expect.is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let host = match uri_host {
        Some(h) => Some(tb.push_str(&h)),
        None => host_hdr,
    };

    out.method = method;
    out.version_minor = version_minor;
    out.content_length = content_length;
    out.chunked = chunked;
    out.keep_alive = keep_alive;
    out.expect_continue = expect_continue;
    out.line = line;
    out.uri = uri;
    out.path = path;
    out.args = args;
    out.host = host;
    out.headers = headers;
    out.raw = whole.then_some((0, len as u32));
    Ok(len)
}

/// The Host value as a span: copied as is when it is already a plain
/// lowercase name, else validated and normalized by `validate_host`.
/// Also the name's length when the value was plain (worth caching).
fn host_span(tb: &mut TextBuilder<'_, '_>, value: &[u8]) -> Option<(Span, Option<usize>)> {
    // "name:port" with a plain name: the name is the host.
    let name = match value.iter().rposition(|&c| c == b':') {
        Some(i) if i + 1 < value.len() && value[i + 1..].iter().all(u8::is_ascii_digit) => &value[..i],
        _ => value,
    };
    // Plain: table bytes only, no leading, trailing or doubled dot.
    let mut prev = b'.';
    let mut plain = !name.is_empty();
    for &c in name {
        if !PLAIN_HOST[c as usize] || (c == b'.' && prev == b'.') {
            plain = false;
            break;
        }
        prev = c;
    }
    let plain = plain && prev != b'.';
    if plain {
        return Some((tb.push(name), Some(name.len())));
    }
    let h = validate_host(value)?;
    Some((tb.push_str(&h), None))
}

/// Bytes of a host name that needs no normalizing: a-z, 0-9, '-', '.'.
static PLAIN_HOST: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(Request, usize)>, HttpError> {
        parse_request(s.as_bytes(), &Limits::default())
    }

    fn ok(s: &str) -> Request {
        let (r, n) = parse(s).expect("parse error").expect("incomplete");
        assert_eq!(n, s.len(), "whole input is the head");
        r
    }

    fn err(s: &str) -> HttpError {
        match parse(s) {
            Err(e) => e,
            Ok(r) => panic!("expected error for {s:?}, got {r:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let r = ok("GET /index.html?a=1&b=%20 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.method_str(), "GET");
        assert_eq!(r.version_minor, 1);
        assert_eq!(r.request_uri(), "/index.html?a=1&b=%20");
        assert_eq!(r.path(), "/index.html");
        assert_eq!(r.args(), Some("a=1&b=%20"));
        assert_eq!(r.host(), Some("example.com"));
        assert_eq!(r.header("user-agent"), Some("t"));
        assert_eq!(r.header("HOST"), Some("Example.COM:8080"));
        assert_eq!(r.headers().next().unwrap().0, "Host");
        assert!(r.keep_alive);
        assert!(!r.chunked);
        assert!(!r.expect_continue);
        assert_eq!(r.content_length, None);
        assert_eq!(r.request_line(), "GET /index.html?a=1&b=%20 HTTP/1.1");
    }

    #[test]
    fn head_length_and_pipelining() {
        let s = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n";
        let (r, n) = parse_request(s, &Limits::default()).unwrap().unwrap();
        assert_eq!(r.path(), "/");
        assert_eq!(&s[n..], b"GET /2 HTTP/1.1\r\n");
        // Leading empty lines are skipped, as nginx does.
        let r = ok("\r\n\r\nGET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.request_line(), "GET / HTTP/1.0");
        // Bare LF line ends are accepted.
        let r = ok("GET /x HTTP/1.1\nHost: a\n\n");
        assert_eq!(r.path(), "/x");
    }

    #[test]
    fn incomplete() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("GE").unwrap(), None);
        assert_eq!(parse("GET /abc HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        assert_eq!(parse("GET /abc HTTP/1.1\r\nHost: a\r\n\r").unwrap(), None);
    }

    #[test]
    fn methods() {
        assert_eq!(ok("HEAD / HTTP/1.0\r\n\r\n").method, Method::Head);
        assert_eq!(ok("DELETE / HTTP/1.0\r\n\r\n").method, Method::Delete);
        let r = ok("PROPFIND / HTTP/1.0\r\n\r\n");
        assert_eq!(r.method, Method::Other("PROPFIND".into()));
        assert_eq!(r.method_str(), "PROPFIND");
        assert_eq!(err("get / HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("G:T / HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n").status, 405);
        assert_eq!(err("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n").status, 405);
        assert_eq!(err("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
    }

    #[test]
    fn bad_request_lines() {
        assert_eq!(err("GET\r\n\r\n"), INVALID_REQUEST);
        assert_eq!(err("GET / \r\n\r\n").status, 400);
        assert_eq!(err("GET /\r\n\r\n").status, 400); // HTTP/0.9
        assert_eq!(err("GET x HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("GET * HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.1\rHost: a\r\n\r\n").status, 400);
        assert_eq!(err("GET / FOO/1.1\r\n\r\n").status, 400);
    }

    #[test]
    fn versions() {
        assert_eq!(err("GET / HTTP/2.0\r\nHost: a\r\n\r\n").status, 505);
        assert_eq!(err("GET / HTTP/3.1\r\n\r\n").status, 505);
        assert_eq!(err("GET / HTTP/0.9\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.x\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.2.3\r\n\r\n").status, 400);
        // HTTP/2 line still arriving: wait for it.
        assert_eq!(parse("GET / HTTP/2").unwrap(), None);
        assert_eq!(parse("GET / HTTP/2.").unwrap(), None);
        assert_eq!(err("GET / XTTP/2").status, 400);
        // HTTP/1.2 and up are served as HTTP/1.1.
        let s = "GET /v HTTP/1.2\r\nHost: a\r\n\r\nrest";
        let (r, n) = parse(s).unwrap().unwrap();
        assert_eq!(r.version_minor, 1);
        assert_eq!(r.request_line(), "GET /v HTTP/1.2");
        assert_eq!(&s[n..], "rest");
        let s = "GET /v  HTTP/1.10\r\nHost: a\r\n\r\nrest";
        let (r, n) = parse(s).unwrap().unwrap();
        assert_eq!(r.version_minor, 1);
        assert_eq!(&s[n..], "rest");
        assert_eq!(parse("GET / HTTP/1.2\r\nHost: a\r\n").unwrap(), None);
        assert_eq!(err("GET / HTTP/1.2\r\n\r\n"), NO_HOST);
    }

    #[test]
    fn header_line_errors() {
        // obs-fold
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), INVALID_HEADER);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"), INVALID_HEADER);
        assert_eq!(err("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), INVALID_HEADER);
        // space or control in name
        assert_eq!(err("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), INVALID_HEADER);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: b\r\n\r\n"), INVALID_HEADER);
        // NUL and bare CR
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n").status, 400);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX\0: a\r\n\r\n").status, 400);
    }

    #[test]
    fn control_bytes_in_values_are_kept_for_the_framing_checks() {
        // httparse's lenient parse would drop these lines whole; nginx keeps
        // the value, which then fails the framing checks.
        let cl = err("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 49\x0b\r\n\r\n");
        assert_eq!(cl, INVALID_CONTENT_LENGTH);
        let te = err("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(te, UNKNOWN_TE);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nHost: evil\x01\r\n\r\n"), DUPLICATE_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: evil\x01\r\n\r\n"), INVALID_HOST);
        for c in (1u8..0x20).filter(|&c| c != b'\t' && c != b'\r' && c != b'\n').chain([0x7f]) {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1{}\r\n\r\n", c as char);
            assert_eq!(err(&head), INVALID_CONTENT_LENGTH, "byte {c:#x}");
        }
        // Elsewhere the value is kept as sent, as nginx does.
        let r = ok("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x0b2\r\nX-B: 3\r\n\r\n");
        assert_eq!(r.header("x-a"), Some("1\x0b2"));
        assert_eq!(r.header("x-b"), Some("3"));
    }

    #[test]
    fn a_framing_name_without_colon_is_an_empty_value() {
        // Found by the fuzzer: the empty value of such a line must still be
        // a slice of the head (the tab check measures offsets in it).
        assert_eq!(err("GET / HTTP/1.1\r\nHost\r\n\r\n"), INVALID_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\r\n\r\n"), INVALID_CONTENT_LENGTH);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\r\n\x01: x\r\n\r\n"), INVALID_HEADER);
        assert_eq!(err("GET / HTTP/1.1\r\nHost\r\n\nk:\n\r\n").status, 400);
    }

    #[test]
    fn stray_line_ends_before_the_request_line_are_skipped() {
        let s = "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(ok(s).request_line(), "GET / HTTP/1.1");
        assert_eq!(parse("\rGET /").unwrap(), None);
        assert_eq!(parse("\r\n\r").unwrap(), None);
    }

    #[test]
    fn raw_header_is_the_head_as_sent() {
        let s = "GET / HTTP/1.2\r\nHost: a\r\n\r\n";
        assert_eq!(ok(s).raw_header(), Some(s));
        let s = "GET / HTTP/1.10\r\nHost: a\r\n\r\n";
        assert_eq!(ok(s).raw_header(), Some(s));
    }

    #[test]
    fn tabs_around_framing_values() {
        assert_eq!(err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n"), UNKNOWN_TE);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n"), UNKNOWN_TE);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\n"), INVALID_CONTENT_LENGTH);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t\r\n\r\n"), INVALID_CONTENT_LENGTH);
        assert_eq!(err("GET / HTTP/1.1\r\nHost:\ta\r\n\r\n"), INVALID_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a \t\r\n\r\n"), INVALID_HOST);
        // Spaces are fine, and other headers keep httparse's trimming.
        let r = ok("POST / HTTP/1.1\r\nHost:  a  \r\nContent-Length:  5  \r\nX:\tv\t\r\n\r\n");
        assert_eq!(r.content_length, Some(5));
        assert_eq!(r.header("x"), Some("v"));
    }

    #[test]
    fn version_answer_does_not_depend_on_segmentation() {
        let whole = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
        assert_eq!(err(whole), INVALID_VERSION);
        for cut in 1..whole.len() {
            match parse(&whole[..cut]) {
                Ok(None) => {}
                Err(e) => assert_eq!(e, INVALID_VERSION, "cut at {cut}"),
                Ok(Some(_)) => panic!("complete at {cut}"),
            }
        }
    }

    #[test]
    fn invalid_header_names_ignored() {
        let s = "GET / HTTP/1.1\r\nHost: a\r\nX_Under: 1\r\nX.Dot: 2\r\nX@At: 3\r\nnocolon\r\nOk-1: 4\r\n\r\n";
        let r = ok(s);
        let names: Vec<&str> = r.headers().map(|(n, _)| n).collect();
        // A line without a colon is a header with an empty value, as nginx reads it.
        assert_eq!(names, ["Host", "nocolon", "Ok-1"]);
        let policy = HeaderPolicy { underscores_in_headers: true, ignore_invalid_headers: true };
        let (r, _) = parse_request_with(s.as_bytes(), &Limits::default(), &policy).unwrap().unwrap();
        assert_eq!(r.header("x_under"), Some("1"));
        assert_eq!(r.header("x.dot"), None);
        let policy = HeaderPolicy { underscores_in_headers: false, ignore_invalid_headers: false };
        let (r, _) = parse_request_with(s.as_bytes(), &Limits::default(), &policy).unwrap().unwrap();
        assert_eq!(r.header("x.dot"), Some("2"));
        assert_eq!(r.header("x_under"), Some("1"));
    }

    #[test]
    fn header_values() {
        let r = ok("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Sp:   v  w \t\r\nX-Empty: again\r\nX-Utf: café\r\n\r\n");
        assert_eq!(r.header("x-empty"), Some(""));
        assert_eq!(r.headers_named("x-empty").collect::<Vec<_>>(), ["", "again"]);
        assert_eq!(r.header("x-sp"), Some("v  w"));
        assert_eq!(r.header("x-utf"), Some("café"));
        // obs-text that is not UTF-8 is kept, replaced.
        let r = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\r\n\r\n", &Limits::default())
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(r.header("x"), Some("\u{fffd}"));
    }

    #[test]
    fn many_headers() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..200 {
            s.push_str(&format!("X-{i}: {i}\r\n"));
        }
        s.push_str("\r\n");
        let r = ok(&s);
        assert_eq!(r.headers().count(), 201);
        assert_eq!(r.header("x-199"), Some("199"));
    }

    #[test]
    fn host_header() {
        assert_eq!(err("GET / HTTP/1.1\r\n\r\n"), NO_HOST);
        assert_eq!(ok("GET / HTTP/1.0\r\n\r\n").host, None);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), DUPLICATE_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n"), INVALID_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), INVALID_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost:\r\n\r\n"), INVALID_HOST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), INVALID_HOST);
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: WWW.Ex.org.\r\n\r\n").host(), Some("www.ex.org"));
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").host(), Some("[::1]"));
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n").host(), Some("127.0.0.1"));
    }

    #[test]
    fn absolute_form() {
        let r = ok("GET http://Example.com:8080/a/../b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(r.host(), Some("example.com"));
        assert_eq!(r.path(), "/b");
        assert_eq!(r.args(), Some("x=1"));
        assert_eq!(r.request_uri(), "/a/../b?x=1");
        assert_eq!(r.request_line(), "GET http://Example.com:8080/a/../b?x=1 HTTP/1.1");
        let r = ok("GET https://h HTTP/1.0\r\n\r\n");
        assert_eq!(r.host(), Some("h"));
        assert_eq!(r.path(), "/");
        let r = ok("GET http://h?q HTTP/1.0\r\n\r\n");
        assert_eq!(r.path(), "/");
        assert_eq!(r.args(), Some("q"));
        assert_eq!(err("GET http://a..b/ HTTP/1.0\r\n\r\n"), INVALID_HOST_IN_LINE);
        assert_eq!(err("GET http:///x HTTP/1.0\r\n\r\n"), INVALID_HOST_IN_LINE);
        assert_eq!(err("GET 1ttp://h/ HTTP/1.0\r\n\r\n"), INVALID_REQUEST);
        // nginx still wants a Host header on HTTP/1.1.
        assert_eq!(err("GET http://h/ HTTP/1.1\r\n\r\n"), NO_HOST);
    }

    #[test]
    fn reused_request_host_cache() {
        let limits = Limits::default();
        let policy = HeaderPolicy::default();
        let mut r = Request::default();
        let parse = |head: &str, r: &mut Request| parse_request_into(head.as_bytes(), &limits, &policy, r);
        assert!(parse("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", &mut r).unwrap().is_some());
        assert_eq!(r.host(), Some("a.example"));
        assert_eq!(r.host_cache, (b"a.example:8080".to_vec(), "a.example".len()));
        // Same value: from the cache, still right.
        assert!(parse("GET /x HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", &mut r).unwrap().is_some());
        assert_eq!(r.host(), Some("a.example"));
        assert_eq!(r.path(), "/x");
        // A different host, then a bad one: not taken from the cache.
        assert!(parse("GET / HTTP/1.1\r\nHost: B.example\r\n\r\n", &mut r).unwrap().is_some());
        assert_eq!(r.host(), Some("b.example"));
        // (Not plain: normalized, and not cached.)
        assert_eq!(r.host_cache.0, b"a.example:8080");
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a..example\r\n\r\n", &mut r).unwrap_err().status, 400);
        assert_eq!(r.host_cache.0, b"a.example:8080");
        assert!(parse("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", &mut r).unwrap().is_some());
        assert_eq!(r.host(), Some("a.example"));
    }

    #[test]
    fn nul_in_a_header_value_is_400() {
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n").status, 400);
    }

    #[test]
    fn plain_host_with_port_is_a_span_of_the_head() {
        let r = ok("GET / HTTP/1.1\r\nHost: a-b.example.com:8080\r\n\r\n");
        assert_eq!(r.host(), Some("a-b.example.com"));
        // Not plain: validated the long way.
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n").status, 400);
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: A.b:1\r\n\r\n").host(), Some("a.b"));
    }

    #[test]
    fn normalization() {
        let n = |s: &str| normalize_path(s.as_bytes()).map(|p| p.into_owned());
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(n("//x").unwrap(), "/x");
        assert_eq!(n("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(n("/a/").unwrap(), "/a/");
        assert_eq!(n("/a//").unwrap(), "/a/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/.hidden/..x/...").unwrap(), "/.hidden/..x/...");
        assert_eq!(n("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(n("/a%2fb%2F..%2Fc").unwrap(), "/a/c");
        assert_eq!(n("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(n("/%41%62c").unwrap(), "/Abc");
        assert_eq!(n("/%2541").unwrap(), "/%41");
        assert_eq!(n("/a%3Fb").unwrap(), "/a?b");
        assert_eq!(n("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(n("/a#frag").unwrap(), "/a");
        assert_eq!(n("/a+b").unwrap(), "/a+b");
        assert_eq!(n("/..").unwrap_err().status, 400);
        assert_eq!(n("/a/../..").unwrap_err().status, 400);
        assert_eq!(n("/%2e%2e").unwrap_err().status, 400);
        assert_eq!(n("/a%00").unwrap_err().status, 400);
        assert_eq!(n("/a%zz").unwrap_err().status, 400);
        assert_eq!(n("/a%4").unwrap_err().status, 400);
        assert_eq!(n("/a%").unwrap_err().status, 400);
    }

    #[test]
    fn path_in_requests() {
        let r = ok("GET //a/./b/%2E%2E/c%20d?x=%2F HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.path(), "/a/c d");
        assert_eq!(r.args(), Some("x=%2F"));
        assert_eq!(r.request_uri(), "//a/./b/%2E%2E/c%20d?x=%2F");
        assert_eq!(ok("GET /? HTTP/1.0\r\n\r\n").args, None);
        assert_eq!(err("GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n"), INVALID_REQUEST);
        assert_eq!(err("GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
    }

    #[test]
    fn keep_alive_logic() {
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\nConnection: close\r\n\r\n").keep_alive);
        // The last Connection header wins, as in nginx.
        assert!(ok("GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue() {
        assert!(ok("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        assert!(!ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        assert!(!ok("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n").expect_continue);
    }

    #[test]
    fn body_framing() {
        let r = ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n");
        assert_eq!(r.content_length, Some(42));
        let r = ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert!(r.chunked);
        assert_eq!(r.content_length, None);
        let h = "POST / HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(err(&format!("{h}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")), CL_AND_TE);
        assert_eq!(err(&format!("{h}Content-Length: 1\r\nContent-Length: 1\r\n\r\n")), DUPLICATE_HEADER);
        assert_eq!(err(&format!("{h}Content-Length: 1\r\nContent-Length: 2\r\n\r\n")), DUPLICATE_HEADER);
        for bad in ["-1", "+1", "1.0", "0x10", "1 2", "abc", "", "99999999999999999999"] {
            assert_eq!(err(&format!("{h}Content-Length: {bad}\r\n\r\n")), INVALID_CONTENT_LENGTH, "{bad}");
        }
        assert_eq!(err(&format!("{h}Transfer-Encoding: gzip\r\n\r\n")), UNKNOWN_TE);
        assert_eq!(err(&format!("{h}Transfer-Encoding: gzip, chunked\r\n\r\n")).status, 501);
        assert_eq!(err(&format!("{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")), DUPLICATE_HEADER);
        assert_eq!(err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), TE_HTTP10);
    }

    #[test]
    fn limits() {
        let l = Limits { header_buffer: 64, large_buffers: (2, 128) };
        let p = |s: &[u8]| parse_request(s, &l);
        // Long request line, complete or not: 414.
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(200));
        assert_eq!(p(long_uri.as_bytes()).unwrap_err(), TOO_LONG_URI);
        assert_eq!(p(&long_uri.as_bytes()[..150]).unwrap_err(), TOO_LONG_URI);
        assert_eq!(p(&long_uri.as_bytes()[..100]).unwrap(), None);
        // A request line of exactly the buffer size fits.
        let exact = format!("GET /{} HTTP/1.0\r\n", "a".repeat(128 - 16));
        assert_eq!(exact.len(), 128);
        assert!(p(format!("{exact}\r\n").as_bytes()).unwrap().is_some());
        let exact = format!("GET /{} HTTP/1.0\r\n", "a".repeat(128 - 15));
        assert_eq!(p(format!("{exact}\r\n").as_bytes()).unwrap_err(), TOO_LONG_URI);
        // Long header line: 431.
        let long_hdr = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(200));
        assert_eq!(p(long_hdr.as_bytes()).unwrap_err(), TOO_LONG_HEADER);
        assert_eq!(p(&long_hdr.as_bytes()[..160]).unwrap_err(), TOO_LONG_HEADER);
        // Whole head over num*size: 431.
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        while many.len() < 300 {
            many.push_str("X-Pad: 0123456789\r\n");
        }
        assert_eq!(p(many.as_bytes()).unwrap_err(), TOO_LARGE_REQUEST);
        many.push_str("\r\n");
        assert_eq!(p(many.as_bytes()).unwrap_err(), TOO_LARGE_REQUEST);
        // Defaults: an 8000-byte URI is fine, 9000 is not.
        let ok_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8000));
        assert!(parse(&ok_uri).unwrap().is_some());
        let big_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&big_uri).unwrap_err().status, 414);
        // The body after the head does not count.
        let mut with_body = String::from("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 50000\r\n\r\n");
        with_body.push_str(&"z".repeat(50000));
        let (r, n) = parse(&with_body).unwrap().unwrap();
        assert_eq!(r.content_length, Some(50000));
        assert_eq!(with_body.len() - n, 50000);
    }
}
