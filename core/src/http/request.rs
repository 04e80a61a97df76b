//! STUB (helper B).
