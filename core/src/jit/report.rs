//! `halo jit report`: to be written.

/// Runs `halo jit report ARGS`; returns the exit code.
pub fn cli(_args: &[String]) -> i32 {
    eprintln!("halo jit report: not built yet");
    2
}
