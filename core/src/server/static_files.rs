//! STUB (helper D).
