//! Serving a request: server selection (`select`), location matching
//! (`location`), static files (`static_files`), the phases (`phases`), one
//! connection's life (`conn`), and the worker state they share (`Worker`).

pub mod select;
pub mod location;
pub mod static_files;
pub mod phases;
pub mod conn;
pub mod subrequest;
mod worker;

pub use worker::Worker;
