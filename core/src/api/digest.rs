//! Digests and checksums: `ngx.md5`, `ngx.md5_bin`, `ngx.sha1_bin`,
//! `ngx.hmac_sha1`, `ngx.crc32_short` and `ngx.crc32_long`.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// The MD5 digest of `src`.
pub fn md5(src: &[u8]) -> [u8; 16] {
    Md5::digest(src).into()
}

/// The SHA-1 digest of `src`.
pub fn sha1(src: &[u8]) -> [u8; 20] {
    Sha1::digest(src).into()
}

/// HMAC-SHA1 (RFC 2104) of `msg` under `key`. (None never happens: HMAC
/// takes keys of any length, but the crate's constructor is fallible.)
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> Option<[u8; 20]> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac.finalize().into_bytes().into())
}

/// CRC-32 (IEEE 802.3, as zlib), what both nginx's ngx_crc32_short and
/// ngx_crc32_long compute (they differ only in their lookup tables).
pub fn crc32(src: &[u8]) -> u32 {
    crc32fast::hash(src)
}

/// Lower-case hex of `src` into `dst` (twice as long), as nginx's
/// ngx_hex_dump; returns the bytes written (None when `dst` is too short).
pub fn hex_to(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let out = dst.get_mut(..src.len() * 2)?;
    for (pair, &b) in out.chunks_exact_mut(2).zip(src) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 0xf) as usize];
    }
    Some(src.len() * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        let mut out = vec![0; b.len() * 2];
        hex_to(b, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// RFC 1321 A.5, RFC 3174 7.3, RFC 2202 section 3.
    #[test]
    fn rfc_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"message digest")), "f96b697d7cb7938d525a2f31aaf161d0");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&hmac_sha1(&[0x0b; 20], b"Hi There").unwrap()), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?").unwrap()), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
