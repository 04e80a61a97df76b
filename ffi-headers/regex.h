/*
 * ngx.re.match, find, gmatch, sub, gsub (lualib/resty/core/regex.lua), over
 * the Rust regex crate (byte regexes: subjects are any bytes).
 *
 * A compiled regex is named by a small integer id. Compiles are cached per
 * process (per worker; init_by_lua's entries are inherited by the workers),
 * keyed by (pattern, flags), up to 1024 entries (lua_regex_cache_max_entries'
 * default); cached ids stay valid for the life of the process. Beyond the
 * bound a compile makes a temporary entry (*temp set to 1) that the caller
 * frees with halo_ffi_regex_free when done with it.
 * Offsets are 0-based byte offsets; subjects are limited to INT_MAX bytes.
 * Borrowed pointers returned here stay valid until the next call.
 */
#ifndef HALO_FFI_REGEX_H
#define HALO_FFI_REGEX_H

#include <stddef.h>

/* Compile flags (the ngx.re option letters): i, m, s, x, u (or U), a, D, J.
   A pattern runs on the regex crate when it can, else (or with D or J) on
   PCRE2; callers see no difference. */
enum {
    HALO_FFI_REGEX_CASELESS  = 1,
    HALO_FFI_REGEX_MULTILINE = 2,
    HALO_FFI_REGEX_DOTALL    = 4,
    HALO_FFI_REGEX_EXTENDED  = 8,
    HALO_FFI_REGEX_UTF8      = 16,
    HALO_FFI_REGEX_ANCHORED  = 32,
    HALO_FFI_REGEX_DUPNAMES  = 64,   /* D (PCRE2 only) */
    HALO_FFI_REGEX_JAVASCRIPT = 128  /* J (PCRE2 only) */
};

/* Compiles pat (or finds it in the cache). Returns the id (>= 0), with *temp
   0 for a cached entry, 1 for a temporary one; or HALO_FFI_ERROR with the
   message ("failed to compile regex \"...\": ...") in *err, *errlen. */
int halo_ffi_regex_compile(const unsigned char *pat, size_t len, unsigned int flags,
                        int *temp, const unsigned char **err, size_t *errlen);

/* Searches subj from byte offset start (anchored there with the a flag).
   Fills caps with up to ncaps / 2 (from, to) pairs, the whole match first,
   then the groups; an unmatched group is (-1, -1). Returns the number of
   pairs filled (>= 1), 0 for no match (also when start > len),
   HALO_FFI_ERROR (unknown id, ncaps < 2, subject too long), or PCRE2's
   error code (< -1, e.g. the match limit: lua_regex_match_limit). */
int halo_ffi_regex_exec(int id, const unsigned char *subj, size_t len, size_t start,
                     int *caps, int ncaps);

/* The number of capture groups (not counting the whole match), or
   HALO_FFI_ERROR for an unknown id. */
int halo_ffi_regex_ncaptures(int id);

/* The name of group i (1-based): HALO_FFI_OK with *name, *len, or
   HALO_FFI_DECLINED for an unnamed group, or HALO_FFI_ERROR. */
int halo_ffi_regex_capture_name(int id, int i, const unsigned char **name, size_t *len);

/* Replaces the first match at or after offset 0 (every match if global is
   non-zero) with the template tpl: $0..$99..., ${N}, ${name}, $$ for "$".
   Returns the number of replacements; when > 0 the new string is in *out,
   *outlen (borrowed). HALO_FFI_ERROR for a bad template or id, with the
   message in *out, *outlen; PCRE2's error code (< -1) if a search failed. */
int halo_ffi_regex_sub(int id, const unsigned char *subj, size_t len,
                    const unsigned char *tpl, size_t tpl_len, int global,
                    const unsigned char **out, size_t *outlen);

/* ngx.re.opt("jit_stack_size", size): PCRE2 searches get a JIT stack of up
   to size bytes (at least 32 KiB). HALO_FFI_OK, or HALO_FFI_ERROR if it
   cannot be allocated. */
int halo_ffi_regex_set_jit_stack_size(int size);

/* Frees a temporary entry (HALO_FFI_OK); cached entries stay
   (HALO_FFI_DECLINED). */
int halo_ffi_regex_free(int id);

#endif
