/*
 * ngx.config.* (lualib/resty/core/config.lua).
 */
#ifndef HALO_FFI_CONFIG_H
#define HALO_FFI_CONFIG_H

#include <stddef.h>

/* Borrows the server prefix ("/usr/local/halo/", with a trailing slash; ""
   before the core set it): *data and *len are set, valid until the process
   exits. Returns HALO_FFI_OK. */
int halo_ffi_config_prefix(const char **data, size_t *len);

#endif
