/*
 * ngx.md5, ngx.md5_bin, ngx.sha1_bin, ngx.hmac_sha1, ngx.crc32_short and
 * ngx.crc32_long (lualib/resty/core/hash.lua). Fixed-size results go into
 * the caller's buffer of the size each function names.
 */
#ifndef HALO_FFI_HASH_H
#define HALO_FFI_HASH_H

#include <stddef.h>

/* The 16-byte MD5 digest of src into dst. HALO_FFI_ERROR when dst is NULL. */
int halo_ffi_hash_md5_bin(const unsigned char *src, size_t len, unsigned char *dst);

/* The MD5 digest as 32 lower-case hex digits into dst. */
int halo_ffi_hash_md5(const unsigned char *src, size_t len, unsigned char *dst);

/* The 20-byte SHA-1 digest of src into dst. */
int halo_ffi_hash_sha1_bin(const unsigned char *src, size_t len, unsigned char *dst);

/* The 20-byte HMAC-SHA1 of src under key into dst. */
int halo_ffi_hash_hmac_sha1(const unsigned char *key, size_t key_len,
                            const unsigned char *src, size_t len, unsigned char *dst);

/* CRC-32 (IEEE, as zlib) of src: both ngx.crc32_short and ngx.crc32_long. */
unsigned int halo_ffi_hash_crc32(const unsigned char *src, size_t len);

#endif
