//! Process-wide error log. STUB (helper C).
