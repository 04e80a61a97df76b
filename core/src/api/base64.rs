//! Base64 as nginx does it (`ngx.encode_base64`, `ngx.decode_base64`,
//! `ngx.decode_base64mime`, `ngx.base64`'s url variants), on the base64 crate.
//!
//! nginx's decoder is lenient where the crate is strict by default: it
//! stops at the first `=` (whatever follows is ignored), needs no padding,
//! and ignores the unused low bits of the last character. Only a byte
//! outside the alphabet before that `=`, or a length of 4n+1, is an error.

use base64::alphabet::{Alphabet, STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};

/// The standard or the URL-safe alphabet (RFC 4648 sections 4 and 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpha {
    Standard,
    Url,
}

const fn engine(alphabet: &Alphabet, pad: bool) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(pad)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    )
}

static STD_PAD: GeneralPurpose = engine(&STANDARD, true);
static STD_NO_PAD: GeneralPurpose = engine(&STANDARD, false);
static URL_NO_PAD: GeneralPurpose = engine(&URL_SAFE, false);

fn decoder(alpha: Alpha) -> &'static GeneralPurpose {
    match alpha {
        Alpha::Standard => &STD_NO_PAD,
        Alpha::Url => &URL_NO_PAD,
    }
}

fn in_alphabet(c: u8, alpha: Alpha) -> bool {
    c.is_ascii_alphanumeric()
        || match alpha {
            Alpha::Standard => c == b'+' || c == b'/',
            Alpha::Url => c == b'-' || c == b'_',
        }
}

/// The length of the encoding of `len` bytes.
pub fn encoded_len(len: usize, pad: bool) -> usize {
    if pad {
        len.div_ceil(3) * 4
    } else {
        (len * 8).div_ceil(6)
    }
}

/// Room enough for decoding `len` characters.
pub fn decoded_len_max(len: usize) -> usize {
    len.div_ceil(4) * 3
}

/// Encodes `src` into `dst`; returns the length, or None when `dst` is
/// shorter than [`encoded_len`]. The URL alphabet is never padded
/// (`ngx.base64.encode_base64url`).
pub fn encode_to(src: &[u8], alpha: Alpha, pad: bool, dst: &mut [u8]) -> Option<usize> {
    let engine = match (alpha, pad) {
        (Alpha::Standard, true) => &STD_PAD,
        (Alpha::Standard, false) => &STD_NO_PAD,
        (Alpha::Url, _) => &URL_NO_PAD,
    };
    engine.encode_slice(src, dst).ok()
}

/// Decodes `src` into `dst` as nginx's ngx_decode_base64(url); None for
/// invalid input (or a `dst` shorter than [`decoded_len_max`]).
pub fn decode_to(src: &[u8], alpha: Alpha, dst: &mut [u8]) -> Option<usize> {
    let end = src.iter().position(|&c| c == b'=').unwrap_or(src.len());
    let data = &src[..end];
    if data.len() % 4 == 1 || !data.iter().all(|&c| in_alphabet(c, alpha)) {
        return None;
    }
    decoder(alpha).decode_slice(data, dst).ok()
}

/// `ngx.decode_base64mime`: as [`decode_to`] with the standard alphabet,
/// but bytes outside the alphabet (the line breaks of MIME bodies, say) are
/// skipped instead of failing the decode.
pub fn decode_mime_to(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let end = src.iter().position(|&c| c == b'=').unwrap_or(src.len());
    let data: Vec<u8> = src[..end].iter().copied().filter(|&c| in_alphabet(c, Alpha::Standard)).collect();
    if data.len() % 4 == 1 {
        return None;
    }
    STD_NO_PAD.decode_slice(&data, dst).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8], alpha: Alpha, pad: bool) -> String {
        let mut b = vec![0; encoded_len(s.len(), pad)];
        let n = encode_to(s, alpha, pad, &mut b).unwrap();
        assert_eq!(n, b.len());
        String::from_utf8(b).unwrap()
    }

    fn dec(s: &str, alpha: Alpha) -> Option<Vec<u8>> {
        let mut b = vec![0; decoded_len_max(s.len())];
        decode_to(s.as_bytes(), alpha, &mut b).map(|n| b[..n].to_vec())
    }

    /// RFC 4648 section 10's vectors.
    #[test]
    fn rfc4648_vectors() {
        let v = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")];
        for (plain, coded) in v {
            assert_eq!(enc(plain.as_bytes(), Alpha::Standard, true), coded);
            assert_eq!(enc(plain.as_bytes(), Alpha::Standard, false), coded.trim_end_matches('='));
            assert_eq!(dec(coded, Alpha::Standard).unwrap(), plain.as_bytes());
            assert_eq!(dec(coded.trim_end_matches('='), Alpha::Standard).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn lenient_like_nginx() {
        assert_eq!(dec("Zm9vYg===", Alpha::Standard).unwrap(), b"foob");
        assert_eq!(dec("Zm=vYg==", Alpha::Standard).unwrap(), b"f");
        assert_eq!(dec("Zh==", Alpha::Standard).unwrap(), b"f");
        assert_eq!(dec("Z", Alpha::Standard), None);
        assert_eq!(dec("Zm9v YmFy", Alpha::Standard), None);
        assert_eq!(dec("-_-_", Alpha::Standard), None);
        assert_eq!(dec("+/+/", Alpha::Standard).unwrap(), b"\xfb\xff\xbf");
        assert_eq!(dec("__79_A", Alpha::Url).unwrap(), b"\xff\xfe\xfd\xfc");
        assert_eq!(dec("+/", Alpha::Url), None);
        assert_eq!(enc(b"\xff\xfe\xfd\xfc", Alpha::Url, false), "__79_A");
        let mut b = [0; 16];
        let n = decode_mime_to(b"Zm9v\r\nYmFy\n", &mut b).unwrap();
        assert_eq!(&b[..n], b"foobar");
    }
}
