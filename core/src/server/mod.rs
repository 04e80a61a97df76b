//! Serving a request: server selection (`select`), location matching
//! (`location`), static files (`static_files`), and the phase engine.

pub mod select;
pub mod location;
pub mod static_files;
pub mod vars;
pub mod phases;
pub mod conn;
