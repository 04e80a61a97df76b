//! One request's own state beyond its head. For now: its body, in memory
//! or in a temp file (`body`).

pub mod body;
