//! Incremental decoder for `Transfer-Encoding: chunked` request bodies,
//! following nginx's `ngx_http_parse_chunked`: hex sizes, extensions
//! ignored, bare LF accepted as a line end, trailers skipped (but bounded).
//! Input may be split anywhere between calls.

use super::request::HttpError;

const INVALID: HttpError = HttpError::new(400, "client sent invalid chunked body");

/// Largest total size of the trailer section we skip before giving up.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Largest chunk size accepted: nginx's limit is `NGX_MAX_OFF_T_VALUE / 16`
/// before the next digit.
const MAX_SIZE_BEFORE_DIGIT: u64 = (i64::MAX as u64) / 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit is required.
    SizeStart,
    /// Inside the hex size.
    Size,
    /// After the size: extension (or whitespace) up to the line end.
    Extension,
    /// Saw CR after size/extension; LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data: CR or LF.
    DataEnd,
    /// After chunk data and CR: LF.
    DataLf,
    /// Start of a trailer line, or the final blank line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Saw CR in a trailer line; LF must follow.
    TrailerLf,
    /// Saw CR on the final blank line; LF must follow.
    EndLf,
    /// Whole body read.
    Done,
}

/// State of one chunked body being decoded.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk while reading its size; bytes left of it
    /// while reading its data.
    size: u64,
    total: u64,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder { state: State::SizeStart, size: 0, total: 0, trailer_bytes: 0 }
    }

    /// Decoded body bytes so far (for `client_max_body_size` checks).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending body bytes to
    /// `out`. Returns how many input bytes were consumed and whether the
    /// body is complete. All of `input` is consumed unless the body ends
    /// inside it; what follows (a pipelined request) is left unconsumed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < input.len() {
            let c = input[i];
            match self.state {
                State::Data => {
                    // Copy as much data as available in one go.
                    let avail = (input.len() - i) as u64;
                    let n = self.size.min(avail) as usize;
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.size -= n as u64;
                    self.total += n as u64;
                    if self.size == 0 {
                        self.state = State::DataEnd;
                    }
                    continue;
                }
                State::SizeStart => {
                    let d = hex(c).ok_or(INVALID)?;
                    self.size = u64::from(d);
                    self.state = State::Size;
                }
                State::Size => {
                    if let Some(d) = hex(c) {
                        if self.size > MAX_SIZE_BEFORE_DIGIT {
                            return Err(INVALID);
                        }
                        self.size = self.size * 16 + u64::from(d);
                    } else {
                        match c {
                            b'\r' => self.state = State::SizeLf,
                            b'\n' => self.end_size_line(),
                            b';' | b' ' | b'\t' => self.state = State::Extension,
                            _ => return Err(INVALID),
                        }
                    }
                }
                State::Extension => match c {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => {}
                },
                State::SizeLf => {
                    if c != b'\n' {
                        return Err(INVALID);
                    }
                    self.end_size_line();
                }
                State::DataEnd => match c {
                    b'\r' => self.state = State::DataLf,
                    b'\n' => self.state = State::SizeStart,
                    _ => return Err(INVALID),
                },
                State::DataLf => {
                    if c != b'\n' {
                        return Err(INVALID);
                    }
                    self.state = State::SizeStart;
                }
                State::TrailerStart => match c {
                    b'\r' => self.state = State::EndLf,
                    b'\n' => {
                        self.state = State::Done;
                        return Ok((i + 1, true));
                    }
                    _ => {
                        self.count_trailer()?;
                        self.state = State::Trailer;
                    }
                },
                State::Trailer => {
                    self.count_trailer()?;
                    match c {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => self.state = State::TrailerStart,
                        _ => {}
                    }
                }
                State::TrailerLf => {
                    if c != b'\n' {
                        return Err(INVALID);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if c != b'\n' {
                        return Err(INVALID);
                    }
                    self.state = State::Done;
                    return Ok((i + 1, true));
                }
                State::Done => return Ok((i, true)),
            }
            i += 1;
        }
        Ok((i, self.state == State::Done))
    }

    /// The size line is over: data follows, or trailers after the last chunk.
    fn end_size_line(&mut self) {
        self.state = if self.size == 0 { State::TrailerStart } else { State::Data };
    }

    fn count_trailer(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(INVALID);
        }
        Ok(())
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in one call.
    fn whole(input: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let (n, done) = d.decode(input, &mut out)?;
        assert_eq!(d.total(), out.len() as u64);
        Ok((out, n, done))
    }

    /// Decodes `input` fed in pieces of `step` bytes.
    fn stepwise(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let (n, done) = d.decode(&input[pos..end], &mut out)?;
            pos += n;
            if done {
                return Ok((out, pos, true));
            }
            assert_eq!(n, end - (pos - n), "consumes everything until done");
        }
        Ok((out, pos, false))
    }

    const BODY: &[u8] = b"4\r\nWiki\r\n5;name=val\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";

    #[test]
    fn basic() {
        let (out, n, done) = whole(BODY).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(n, BODY.len());
        assert!(done);
    }

    #[test]
    fn split_everywhere() {
        for step in 1..BODY.len() {
            let (out, n, done) = stepwise(BODY, step).unwrap();
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert_eq!(n, BODY.len());
            assert!(done);
        }
        // Every split point into two calls.
        for cut in 0..BODY.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let (n1, done1) = d.decode(&BODY[..cut], &mut out).unwrap();
            assert_eq!((n1, done1), (cut, false));
            let (n2, done2) = d.decode(&BODY[cut..], &mut out).unwrap();
            assert_eq!((n2, done2), (BODY.len() - cut, true));
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
            assert!(d.is_done());
        }
    }

    #[test]
    fn leaves_pipelined_bytes() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (_, n, done) = whole(&input).unwrap();
        assert!(done);
        assert_eq!(n, BODY.len());
        // Calls after the end consume nothing.
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.decode(BODY, &mut out).unwrap();
        assert_eq!(d.decode(b"xyz", &mut out).unwrap(), (0, true));
    }

    #[test]
    fn trailers_bare_lf_and_hex() {
        let input = b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
        let (out, n, done) = whole(input).unwrap();
        assert_eq!(out.len(), 26);
        assert_eq!((n, done), (input.len(), true));
        let input = b"A\nabcdefghij\n0\nT: x\n\n";
        let (out, n, done) = whole(input).unwrap();
        assert_eq!(out, b"abcdefghij");
        assert_eq!((n, done), (input.len(), true));
        let input = b"00003 ; ext\r\nabc\r\n000;x=y\r\n\r\n";
        assert_eq!(whole(input).unwrap().0, b"abc");
    }

    #[test]
    fn empty_body() {
        assert_eq!(whole(b"0\r\n\r\n").unwrap(), (vec![], 5, true));
        assert_eq!(whole(b"0\r\n").unwrap(), (vec![], 3, false));
    }

    #[test]
    fn errors() {
        let bad: &[&[u8]] = &[
            b"x\r\n",                      // not hex
            b"\r\n",                       // missing size
            b";ext\r\n",                   // missing size
            b"-1\r\n",                     // sign
            b"4\rWiki",                    // CR without LF
            b"4\r\nWikiX\r\n",             // data longer than size
            b"4\r\nWiki\rX",               // bad CRLF after data
            b"4\r\nWiki\r\n0\r\nT: x\rY",  // bare CR in trailer
            b"0\r\n\rX",                   // bare CR at end
            b"4 x\r\nWiki\r\n0\r\n\r\n",   // fine: ext after space ...
        ];
        for (k, b) in bad.iter().enumerate() {
            let r = whole(b);
            if k == bad.len() - 1 {
                assert!(r.is_ok(), "{k}");
                continue;
            }
            assert_eq!(r.unwrap_err().status, 400, "case {k}: {:?}", String::from_utf8_lossy(b));
            // Same result fed one byte at a time.
            assert_eq!(stepwise(b, 1).unwrap_err().status, 400, "case {k} stepwise");
        }
    }

    #[test]
    fn size_overflow() {
        assert_eq!(whole(b"ffffffffffffffffff\r\n").unwrap_err().status, 400);
        assert_eq!(whole(b"8000000000000000\r\n").unwrap_err().status, 400);
        // Largest acceptable: i64::MAX.
        let (out, n, done) = whole(b"7fffffffffffffff\r\nab").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"ab"[..], 20, false));
    }

    #[test]
    fn trailer_bounded() {
        let mut input = b"0\r\n".to_vec();
        for _ in 0..2000 {
            input.extend_from_slice(b"X-Long: 0123456789\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(whole(&input).unwrap_err().status, 400);
    }

    #[test]
    fn total_counts_across_calls() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.decode(b"10\r\n0123", &mut out).unwrap();
        assert_eq!(d.total(), 4);
        d.decode(b"456789abcdef\r\n3\r\nxyz\r\n", &mut out).unwrap();
        assert_eq!(d.total(), 19);
        assert!(!d.is_done());
    }
}
