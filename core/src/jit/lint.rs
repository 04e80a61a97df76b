//! `halo jit lint`: to be written.

/// Runs `halo jit lint ARGS`; returns the exit code.
pub fn cli(_args: &[String]) -> i32 {
    eprintln!("halo jit lint: not built yet");
    2
}
