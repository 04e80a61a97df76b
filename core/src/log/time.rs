//! Cached time strings (per loop iteration, as nginx). STUB (helper C).
