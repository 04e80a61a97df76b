/*
 * ngx.shared.DICT (lualib/resty/core/shdict.lua): the zones of
 * lua_shared_dict, named by their index in directive order.
 *
 * Errors: HALO_FFI_ERROR with a static message in *err ("no memory",
 * "exists", "not found", "not a number", "value not a list",
 * "value is a list"); HALO_FFI_DECLINED for an absent key where nil is the
 * answer. Times cross as milliseconds in doubles (0: never expires).
 */
#ifndef HALO_FFI_SHDICT_H
#define HALO_FFI_SHDICT_H

#include <stddef.h>

/* A value in or out: type is 0 nil, 1 boolean (num 0 or 1), 3 number,
   4 string (str/len; out: borrowed until the next call), 5 list. */
typedef struct {
    int type;
    int flags;
    double num;
    const unsigned char *str;
    size_t len;
} halo_shdict_val_t;

/* How many zones there are, and zone i's name (borrowed). */
int halo_ffi_shdict_count(void);
int halo_ffi_shdict_name(int zone, const unsigned char **name, size_t *len);

/* get / get_stale: HALO_FFI_OK with *out filled, HALO_FFI_DECLINED when
   absent (or expired and !stale), HALO_FFI_ERROR. */
int halo_ffi_shdict_get(int zone, const unsigned char *key, size_t key_len,
    int stale, halo_shdict_val_t *out, int *is_stale, const char **err);

/* set (op 0), add (1), replace (2), each | 4 for the safe_ form; a nil
   value deletes. *forcible: entries were evicted to make room. */
int halo_ffi_shdict_store(int zone, int op, const unsigned char *key,
    size_t key_len, const halo_shdict_val_t *val, double exptime_ms,
    const char **err, int *forcible);

/* incr: *value is the increment in, the new value out; init NULL for none. */
int halo_ffi_shdict_incr(int zone, const unsigned char *key, size_t key_len,
    double *value, const double *init, double init_ttl_ms,
    const char **err, int *forcible);

/* ttl in ms into *ttl_ms (0: never expires); HALO_FFI_DECLINED when absent. */
int halo_ffi_shdict_get_ttl(int zone, const unsigned char *key,
    size_t key_len, double *ttl_ms);

/* expire: HALO_FFI_DECLINED when absent. */
int halo_ffi_shdict_set_expire(int zone, const unsigned char *key,
    size_t key_len, double exptime_ms);

int halo_ffi_shdict_flush_all(int zone);

/* Frees up to max (0: all) expired entries; returns how many. */
int halo_ffi_shdict_flush_expired(int zone, int max);

/* Up to max (0: all) live keys, each as a 2-byte little-endian length then
   its bytes, in a borrowed buffer; returns how many. */
int halo_ffi_shdict_get_keys(int zone, int max, const unsigned char **buf,
    size_t *len);

double halo_ffi_shdict_capacity(int zone);
double halo_ffi_shdict_free_space(int zone);

/* lpush (left 1) / rpush: the new length, or HALO_FFI_ERROR. */
int halo_ffi_shdict_push(int zone, const unsigned char *key, size_t key_len,
    int left, const halo_shdict_val_t *val, const char **err);

/* lpop / rpop: HALO_FFI_OK with *out, HALO_FFI_DECLINED when empty. */
int halo_ffi_shdict_pop(int zone, const unsigned char *key, size_t key_len,
    int left, halo_shdict_val_t *out, const char **err);

/* llen: the length (0 when absent), or HALO_FFI_ERROR. */
int halo_ffi_shdict_llen(int zone, const unsigned char *key, size_t key_len,
    const char **err);

#endif
