//! HTTP/1.x on the wire: request parsing with limits (`request`), chunked
//! bodies (`chunked`), response heads and nginx-style error pages
//! (`response`) and their header lines (`header_list`), the rules for header
//! fields set from Lua (`field`). Pure functions over byte buffers: no I/O
//! here.

pub mod request;
pub mod chunked;
pub mod response;
pub mod field;
pub mod header_list;
