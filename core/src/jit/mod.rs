//! JIT observability: capture of JIT events in the server (`lua_jit_log`),
//! `halo jit report` over the captured logs, and `halo jit lint` over Lua
//! source. The record format is documented in jit-logs/README.md.

pub mod advice;
pub mod capture;
pub mod lint;
pub mod report;

/// `halo jit SUBCOMMAND ...`; returns the process exit code.
pub fn cli(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("report") => report::cli(&args[1..]),
        Some("lint") => lint::cli(&args[1..]),
        _ => {
            eprint!("{USAGE}");
            2
        }
    }
}

/// The help of `halo jit`.
pub const USAGE: &str = "Usage: halo jit report [--json] [--fail-on KINDS] [--paths GLOB] [--baseline FILE] LOG...
       halo jit lint [--json] FILE...

  report   read the JIT event logs lua_jit_log wrote (one file per worker, or
           the directory holding them) and print one report: traces by source
           line, aborts by reason, the blacklist chain, stitched functions, hot
           side exits, interpreter share
  lint     find constructs LuaJIT 2.1 does not compile (or only stitches) in Lua
           source, with line numbers and suggestions
";
