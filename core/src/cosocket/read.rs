//! The receive patterns over a socket's buffered bytes: what a receive can
//! return now, or that it needs more.

use std::ops::Range;

use super::Sock;

/// What to receive.
#[derive(Debug, Clone, Copy)]
pub enum Pattern<'a> {
    /// `*l`: a line, without its LF and CRs.
    Line,
    /// `*a`: everything until the peer closes.
    All,
    /// A number: exactly this many bytes.
    Bytes(usize),
    /// receiveany(max): whatever is there, at most this many.
    Any(usize),
    /// A UDP socket's receive: the next datagram (at most this many bytes).
    Datagram(usize),
    /// receiveuntil's iterator: the bytes before `pattern` (with it if
    /// `inclusive`); with a `size`, at most that many per call.
    Until { pattern: &'a [u8], inclusive: bool, size: Option<usize> },
}

/// What a receive waits for: `Pattern` owned by the receiving future.
pub(super) enum Want {
    Line,
    All,
    Bytes(usize),
    Some,
    Until { pattern: Vec<u8>, size: Option<usize> },
}

impl Want {
    pub(super) fn of(p: &Pattern<'_>) -> Want {
        match *p {
            Pattern::Line => Want::Line,
            Pattern::All => Want::All,
            Pattern::Bytes(n) => Want::Bytes(n),
            Pattern::Any(_) | Pattern::Datagram(_) => Want::Some,
            Pattern::Until { pattern, size, .. } => Want::Until { pattern: pattern.to_vec(), size },
        }
    }
}

/// Whether the unread bytes (or the end of the stream) answer `want`:
/// a receive then returns without reading more.
pub(super) fn ready(sock: &Sock, want: &Want) -> bool {
    let unread = &sock.rbuf[sock.rpos..];
    sock.eof
        || match want {
            Want::Line => unread.contains(&b'\n'),
            Want::All => false,
            Want::Bytes(n) => unread.len() >= *n,
            Want::Some => !unread.is_empty(),
            Want::Until { pattern, size } => {
                find(unread, pattern).is_some()
                    || size.is_some_and(|n| unread.len().saturating_sub(pattern.len().saturating_sub(1)) >= n)
            }
        }
}

/// What the buffer gives for a pattern.
pub(super) enum Taken {
    /// These bytes of `rbuf` (consumed already).
    Data(Range<usize>),
    /// The line in `sock.line` (it had CRs to drop).
    Line,
    /// receiveuntil with a size: the pattern was reached before.
    Done,
    /// The peer closed first: these bytes are the partial result.
    Closed(Range<usize>),
    /// Receive more first.
    More,
}

/// Takes what `pattern` asks for from the unread bytes, if they hold it.
pub(super) fn take(sock: &mut Sock, pattern: Pattern<'_>) -> Taken {
    let start = sock.rpos;
    let unread = &sock.rbuf[start..];
    let (taken, consumed) = match pattern {
        Pattern::Line => match unread.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &unread[..i];
                if line.contains(&b'\r') {
                    sock.line.clear();
                    sock.line.extend(line.iter().copied().filter(|&b| b != b'\r'));
                    sock.rpos += i + 1;
                    return Taken::Line;
                }
                (Some(start..start + i), i + 1)
            }
            None => (None, 0),
        },
        Pattern::All => (sock.eof.then_some(start..sock.rbuf.len()), unread.len()),
        Pattern::Bytes(n) if unread.len() >= n => (Some(start..start + n), n),
        Pattern::Bytes(_) => (None, 0),
        Pattern::Any(max) if !unread.is_empty() => {
            let n = unread.len().min(max);
            (Some(start..start + n), n)
        }
        Pattern::Any(_) => (None, 0),
        // One datagram per receive (what the last one brought).
        Pattern::Datagram(_) if !unread.is_empty() => (Some(start..sock.rbuf.len()), unread.len()),
        Pattern::Datagram(_) => (None, 0),
        Pattern::Until { pattern, inclusive, size } => {
            if sock.until_done {
                sock.until_done = false;
                return Taken::Done;
            }
            let found = find(unread, pattern);
            match (found, size) {
                (Some(0), Some(_)) if !inclusive => {
                    // Nothing left before the pattern: the iterator is done.
                    sock.rpos += pattern.len();
                    return Taken::Done;
                }
                (Some(i), None) => {
                    let end = if inclusive { i + pattern.len() } else { i };
                    (Some(start..start + end), i + pattern.len())
                }
                (Some(i), Some(size)) if i <= size => {
                    // The last chunk: the pattern goes with it; the next
                    // call returns nil.
                    sock.until_done = true;
                    let end = if inclusive { i + pattern.len() } else { i };
                    (Some(start..start + end), i + pattern.len())
                }
                (Some(_), Some(size)) => (Some(start..start + size), size),
                (None, Some(size)) => {
                    // Bytes that cannot be the start of the pattern.
                    let safe = unread.len().saturating_sub(pattern.len().saturating_sub(1));
                    if safe >= size {
                        (Some(start..start + size), size)
                    } else {
                        (None, 0)
                    }
                }
                (None, None) => (None, 0),
            }
        }
    };
    match taken {
        Some(range) => {
            sock.rpos += consumed;
            Taken::Data(range)
        }
        None if sock.eof => {
            sock.rpos = sock.rbuf.len();
            Taken::Closed(start..sock.rbuf.len())
        }
        None => Taken::More,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}
