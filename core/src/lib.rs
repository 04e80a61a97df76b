//! halo-core: everything halo does, in the order a request meets it.
//!
//! `cli` parses the command line (`resty` is the `halo resty` command); `conf` reads nginx.conf into typed config;
//! `process` runs the master and its workers; `rt` is each worker's io_uring
//! loop; `http` parses requests and writes responses; `request` holds a
//! request's state (its response, body and variables); `server` serves a
//! connection, picks the server and location and runs the phases; `log`
//! writes the error and access logs; `dns` resolves host names on the
//! worker's loop (`resolver`); `upstream` balances over `upstream {}`
//! groups (for the proxy). docs/architecture.md has the whole
//! picture. `lua` and `ffi` are the Lua layer (`api` holds the utility
//! API's semantics they wrap), `shdict` the zones of `lua_shared_dict`
//! that all processes share, `cosocket` the client sockets Lua opens; `jit` captures and
//! reports what LuaJIT's compiler did with it.

pub mod cli;
pub mod resty;
pub mod conf;
pub mod process;
pub mod rt;
pub mod http;
pub mod request;
pub mod server;
pub mod proxy;
pub mod log;
pub mod dns;
pub mod lua;
pub mod upstream;
pub mod shdict;
pub mod cosocket;
pub mod api;
pub mod ffi;
pub mod jit;
