//! Fuzzes the chunked body decoder (`ChunkedDecoder::decode`).
//!
//! Input layout: bytes 0-1 (big-endian) pick a split point
//! `k = value % (len + 1)` in the rest, which is the body as received.
//!
//! Checks, beyond "no panic":
//! - one call on the whole body: `consumed <= len`; not done -> everything
//!   consumed (the contract: all input is consumed unless the body ends in
//!   it); `done == is_done()`; `total() == bytes appended`; once done, a
//!   further call with the rest consumes nothing, appends nothing and says
//!   done;
//! - two calls, `body[..k]` then (if the first is not done) `body[k..]`:
//!   the first, if not done, consumed all `k` bytes; the overall consumed
//!   count, done flag or error, the output bytes and `total()` are the
//!   same as for the single call.

#![no_main]

use halo_core::http::chunked::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let body = &data[2..];
    let len = body.len();
    let k = split % (len + 1);

    // Whole.
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let whole = d.decode(body, &mut out);
    if let Ok((n, done)) = whole {
        assert!(n <= len, "consumed {n} > input {len}");
        assert_eq!(done, d.is_done(), "done flag != is_done()");
        if !done {
            assert_eq!(n, len, "not done but did not consume all input");
        }
        assert_eq!(d.total(), out.len() as u64, "total() != bytes appended");
        if done {
            let before = out.len();
            let after = d.decode(&body[n..], &mut out);
            assert_eq!(after, Ok((0, true)), "call after the end");
            assert_eq!(out.len(), before, "call after the end appended bytes");
        }
    }

    // In two pieces.
    let mut d2 = ChunkedDecoder::new();
    let mut out2 = Vec::new();
    let split_res = match d2.decode(&body[..k], &mut out2) {
        Err(e) => Err(e),
        Ok((n1, true)) => {
            assert!(n1 <= k, "consumed {n1} > first piece {k}");
            Ok((n1, true))
        }
        Ok((n1, false)) => {
            assert_eq!(n1, k, "first piece not done but not consumed whole");
            match d2.decode(&body[k..], &mut out2) {
                Ok((n2, done)) => {
                    assert!(n2 <= len - k, "consumed {n2} > second piece {}", len - k);
                    Ok((k + n2, done))
                }
                Err(e) => Err(e),
            }
        }
    };
    assert_eq!(split_res, whole, "split at {k} gives a different outcome");
    if whole.is_ok() {
        assert_eq!(out2, out, "split at {k} gives different body bytes");
        assert_eq!(
            d2.total(),
            d.total(),
            "split at {k} gives a different total()"
        );
        assert_eq!(d2.is_done(), d.is_done());
    }
});
