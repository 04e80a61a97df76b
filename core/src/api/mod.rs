//! The semantics of OpenResty's utility API in safe Rust: URI escaping,
//! query arguments, base64, digests, SQL quoting. The C ABI (`crate::ffi`)
//! wraps these; a `lua_CFunction` twin must wrap the same functions, so the
//! two bindings cannot drift. Nothing here knows about Lua or requests.

pub mod args;
pub mod base64;
pub mod digest;
pub mod uri;
