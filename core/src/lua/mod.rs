//! The Lua layer's Rust side: one LuaJIT VM per worker ([`vm::new_vm`]), loading
//! the pure-Lua `ngx.*` API embedded from lualib/ ([`lualib`]), which calls the
//! core through the C ABI in [`crate::ffi`].

pub mod capi;
pub mod cjson;
pub mod context;
pub mod handler;
pub mod lualib;
mod resume;
mod sched;
pub mod subrequest;
pub mod semaphore;
pub mod timer;
pub mod vm;

/// mlua, re-exported so users of this module (and tests) use the same version.
pub use mlua;
pub use vm::{expand_package_path, new_vm};
