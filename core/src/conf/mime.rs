//! The default MIME types (nginx's mime.types), used when `types {}` is not
//! configured. STUB: to be written (helper D).

use std::collections::HashMap;

/// extension (lowercase, no dot) -> MIME type.
pub fn default_types() -> HashMap<String, String> {
    unimplemented!()
}
