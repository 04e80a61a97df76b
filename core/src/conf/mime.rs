//! The MIME types a location has when no `types {}` is configured: nginx's
//! built-in three (`ngx_http_core_default_types`), not its conf/mime.types,
//! which a config includes for the rest (without it a `.css` file is
//! `default_type`, as in nginx).

use std::collections::HashMap;

/// nginx's built-in types: (extension, type).
const DEFAULT_TYPES: &[(&str, &str)] = &[("html", "text/html"), ("gif", "image/gif"), ("jpg", "image/jpeg")];

/// extension (lowercase, no dot) -> MIME type.
pub fn default_types() -> HashMap<String, String> {
    DEFAULT_TYPES.iter().map(|(ext, mime)| ((*ext).to_owned(), (*mime).to_owned())).collect()
}
