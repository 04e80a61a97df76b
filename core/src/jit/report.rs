//! `halo jit report FILE...`: one report over the JIT event logs of all
//! workers (jit-logs/README.md, `halo-jitlog/1`): summary, traces by source
//! line, aborts, the blacklist chain, stitches and returns, hot side exits,
//! interpreter share, findings with stable ids, and an optional CI gate.
//!
//! The pipeline is parse (records) → analyse (sections) → findings (ids,
//! baseline, gate) → text or JSON.

pub mod analyse;
pub mod findings;
pub mod json;
pub mod parse;
#[cfg(test)]
mod tests;
pub mod text;

use std::io::Write;

/// The `schema` of a `--json` report.
pub const SCHEMA: &str = "halo-jitreport/1";

/// Everything a renderer needs.
pub struct Report<'a> {
    /// The log files given.
    pub files: &'a [String],
    /// The aggregated sections.
    pub analysis: &'a analyse::Analysis,
    /// Findings after the baseline filter.
    pub findings: &'a [findings::Finding],
    /// The `--baseline` file, if any.
    pub baseline: Option<&'a str>,
    /// Findings dropped because the baseline has them.
    pub suppressed: usize,
    /// The gate's verdict over `findings`.
    pub gate: &'a findings::Gate,
}

/// Parsed command line.
#[derive(Debug, Default, PartialEq)]
struct Options {
    json: bool,
    fail_on: Vec<String>,
    paths: Vec<String>,
    baseline: Option<String>,
    files: Vec<String>,
}

/// Parses the arguments; `Ok(None)` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // Accept both `--opt VALUE` and `--opt=VALUE`.
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{name} needs a value"));
        match name {
            "--json" => o.json = true,
            "--fail-on" => {
                for k in findings::parse_kinds(&value(name)?)? {
                    if !o.fail_on.contains(&k) {
                        o.fail_on.push(k);
                    }
                }
            }
            "--paths" => o.paths.push(value(name)?),
            "--baseline" => o.baseline = Some(value(name)?),
            "-h" | "--help" => return Ok(None),
            "--" => {
                o.files.extend(it.cloned());
                break;
            }
            _ if name.starts_with('-') && name.len() > 1 => return Err(format!("unknown option `{a}`")),
            _ => o.files.push(a.clone()),
        }
    }
    Ok(Some(o))
}

/// Runs `halo jit report ARGS`; returns the exit code: 0 (gate passes or is
/// off), 1 (gate fails), 2 (bad usage, unreadable or malformed input).
pub fn cli(args: &[String]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halo jit report: {e}");
            2
        }
    }
}

fn run(args: &[String]) -> Result<i32, String> {
    let Some(opts) = parse_args(args)? else {
        print!("{}", super::USAGE);
        return Ok(0);
    };
    if opts.files.is_empty() {
        eprint!("{}", super::USAGE);
        return Ok(2);
    }
    let baseline = match &opts.baseline {
        Some(b) => findings::load_baseline(b)?,
        None => Default::default(),
    };
    let sources = parse::read_files(&opts.files)?;
    let analysis = analyse::analyse(&sources);
    let (found, suppressed) = findings::apply_baseline(findings::build(&analysis), &baseline);
    let gate = findings::gate(&found, &opts.fail_on, &opts.paths)?;
    let report = Report { files: &opts.files, analysis: &analysis, findings: &found, baseline: opts.baseline.as_deref(), suppressed, gate: &gate };
    let out = if opts.json {
        let mut s = serde_json::to_string_pretty(&json::render(&report)).map_err(|e| e.to_string())?;
        s.push('\n');
        s
    } else {
        text::render(&report)
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(if gate.result() == "fail" { 1 } else { 0 })
}
