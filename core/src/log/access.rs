//! access_log writer. STUB (helper C).
