//! Reading `halo-jitlog/1` files (jit-logs/README.md) into typed records.
//!
//! Forward compatible by design: unknown `ev` kinds and unknown fields are
//! skipped, so an older `halo jit report` still reads logs from a newer
//! capture. A line that is not a JSON object, or a known record that lacks a
//! field the report cannot do without, is an error naming FILE:LINE.

use serde_json::{Map, Value};
use std::fmt;

/// A source location, as the capture writes it (`LOC` in the record format).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    /// `lua`, `ffunc`, `cfunc` or `unknown`.
    pub kind: String,
    /// Lua only: the chunk name without `@`/`=`.
    pub chunk: String,
    /// Lua only: the source line.
    pub line: i64,
    /// Lua only: the line where the enclosing function is defined.
    pub func: i64,
    /// ffunc/cfunc: the function's name.
    pub name: String,
}

impl Loc {
    /// The chunk a `--paths` glob is matched against: Lua locations only,
    /// since fast functions and C functions have no file.
    pub fn path(&self) -> Option<&str> {
        (self.kind == "lua").then_some(self.chunk.as_str())
    }

    /// The (chunk-or-name, line) pair that identifies this place in a
    /// finding id.
    pub fn id_parts(&self) -> (&str, i64) {
        if self.kind == "lua" {
            (&self.chunk, self.line)
        } else {
            (&self.name, 0)
        }
    }

    /// The location as a JSON object in the record format's shape.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), self.kind.clone().into());
        if self.kind == "lua" {
            m.insert("chunk".into(), self.chunk.clone().into());
            m.insert("line".into(), self.line.into());
            m.insert("func".into(), self.func.into());
        } else if !self.name.is_empty() {
            m.insert("name".into(), self.name.clone().into());
        }
        Value::Object(m)
    }
}

impl fmt::Display for Loc {
    /// `chunk:line` like `-jv`, the name for fast and C functions, `(?)` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.as_str() {
            "lua" => write!(f, "{}:{}", self.chunk, self.line),
            _ if !self.name.is_empty() => f.write_str(&self.name),
            _ => f.write_str("(?)"),
        }
    }
}

/// The identity of a trace event: trace number, generation, kind, parent.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRef {
    /// Flush generation.
    pub gen: i64,
    /// Trace number (per worker and generation).
    pub tr: i64,
    /// `root`, `side` or `stitch`.
    pub kind: String,
    /// Side: parent trace; stitch: the trace that ended in the stitch.
    pub parent: i64,
    /// Side: the parent's exit; stitch: -1.
    pub exit: i64,
    /// Where the trace starts.
    pub loc: Loc,
}

/// One JIT state sample (`samples` record entry).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// `N` compiled, `I` interpreted, `C` C code, `G` GC, `J` JIT compiler.
    pub state: char,
    /// Where the sample landed.
    pub loc: Loc,
    /// How many samples.
    pub n: u64,
}

/// A record of the log (the `open` record becomes a [`Source`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A trace recording started.
    Start(TraceRef),
    /// A trace compiled.
    Stop {
        /// The trace.
        t: TraceRef,
        /// Link type (`loop`, `return`, `stitch`, ...).
        link: String,
        /// Linked trace number, 0 if none.
        target: i64,
        /// Link `stitch`: the function that is not compiled.
        callee: Option<Loc>,
    },
    /// A trace recording was abandoned.
    Abort {
        /// The trace (its `loc` is the start).
        t: TraceRef,
        /// Where recording stopped.
        at: Loc,
        /// Index into vmdef.traceerr.
        code: i64,
        /// lj_traceerr.h name (`NYIBC`, ...).
        id: String,
        /// The decoded message.
        reason: String,
        /// NYI bytecodes: the bytecode's name.
        nyi: Option<String>,
        /// A jit.profile sample landed during the recording.
        profiler: bool,
    },
    /// All traces were flushed; `gen` starts now.
    Flush {
        /// The new generation.
        gen: i64,
        /// `cause` is `profiler`: halo's own VM-state sampler started or
        /// stopped (jit.profile flushes when it does), not the application.
        profiler: bool,
    },
    /// Side exits taken.
    Exits {
        /// Generation.
        gen: i64,
        /// Trace.
        tr: i64,
        /// Exit number.
        exit: i64,
        /// Exits taken since the last record.
        n: u64,
    },
    /// VM state samples.
    Samples {
        /// Sampling interval.
        interval_ms: f64,
        /// Sample counts.
        counts: Vec<Sample>,
    },
    /// A blacklisted bytecode found by the scan at worker exit.
    Blacklist {
        /// The blacklisted bytecode.
        site: Loc,
        /// `IFORL`, `ILOOP`, ...
        op: String,
    },
    /// The worker stopped capturing.
    Close,
}

/// What a log's `open` record says about its process.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// The file it was read from.
    pub file: String,
    /// Process id.
    pub pid: i64,
    /// Worker id, -1 for the master.
    pub worker: i64,
    /// `master` or `worker`.
    pub role: String,
    /// `jit.version`.
    pub luajit: String,
    /// `jit.arch`.
    pub arch: String,
    /// Capture mode.
    pub mode: String,
    /// Whether a `close` record was seen (graceful exit).
    pub closed: bool,
}

/// One worker's log: its `open` record and what followed it.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The `open` record.
    pub header: Header,
    /// The records after `open`, in order.
    pub events: Vec<Event>,
}

/// A malformed line.
#[derive(Debug, PartialEq)]
pub struct ParseError {
    /// File name.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

/// Reads every file (a directory stands for its `*.jsonl` files, as
/// lua_jit_log writes them); one [`Source`] per `open` record.
pub fn read_files(paths: &[String]) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for p in paths {
        let path = std::path::Path::new(p);
        if path.is_dir() {
            let mut logs: Vec<String> = std::fs::read_dir(path)
                .map_err(|e| format!("{p}: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            if logs.is_empty() {
                return Err(format!("{p}: no *.jsonl logs in this directory"));
            }
            logs.sort();
            out.extend(read_files(&logs)?);
            continue;
        }
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        out.extend(parse_str(p, &text).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Parses one file's text (`file` names it in errors).
pub fn parse_str(file: &str, text: &str) -> Result<Vec<Source>, ParseError> {
    let mut sources: Vec<Source> = Vec::new();
    // Every record is written whole and flushed, so only a process killed
    // in the middle of a write leaves a broken line, and only the last one,
    // without its newline: that one is skipped with a warning.
    let cut = if text.ends_with('\n') { None } else { text.lines().count().checked_sub(1) };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |msg: String| ParseError { file: file.to_string(), line, msg };
        let v: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(_) if cut == Some(i) => {
                eprintln!("halo jit report: {file}:{line}: unfinished last record skipped (the process was stopped while writing it)");
                continue;
            }
            Err(e) => return Err(err(format!("not JSON: {e}"))),
        };
        let obj = v.as_object().ok_or_else(|| err("not a JSON object".into()))?;
        let r = Rec { obj, file, line };
        let ev = r.str("ev")?;
        if ev == "open" {
            sources.push(Source {
                header: Header {
                    file: file.to_string(),
                    pid: r.int_or("pid", 0)?,
                    worker: r.int_or("worker", 0)?,
                    role: r.str_or("role", "worker")?,
                    luajit: r.str_or("luajit", "")?,
                    arch: r.str_or("arch", "")?,
                    mode: r.str_or("mode", "")?,
                    closed: false,
                },
                events: Vec::new(),
            });
            continue;
        }
        let Some(src) = sources.last_mut() else {
            return Err(err(format!("`{ev}` record before the `open` record")));
        };
        match r.event(&ev)? {
            Some(Event::Close) => src.header.closed = true,
            Some(e) => src.events.push(e),
            None => {}
        }
    }
    Ok(sources)
}

/// One record being decoded, with what an error message needs.
struct Rec<'a> {
    obj: &'a Map<String, Value>,
    file: &'a str,
    line: usize,
}

impl Rec<'_> {
    fn err(&self, msg: String) -> ParseError {
        ParseError { file: self.file.to_string(), line: self.line, msg }
    }

    fn missing(&self, key: &str) -> ParseError {
        self.err(format!("missing or invalid field `{key}`"))
    }

    fn int(&self, key: &str) -> Result<i64, ParseError> {
        self.obj.get(key).and_then(Value::as_i64).ok_or_else(|| self.missing(key))
    }

    /// An optional integer: absent or null gives `default`, a wrong type is an error.
    fn int_or(&self, key: &str, default: i64) -> Result<i64, ParseError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| self.missing(key)),
        }
    }

    fn str(&self, key: &str) -> Result<String, ParseError> {
        self.obj.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| self.missing(key))
    }

    fn str_or(&self, key: &str, default: &str) -> Result<String, ParseError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(v) => v.as_str().map(str::to_string).ok_or_else(|| self.missing(key)),
        }
    }

    fn loc(&self, key: &str) -> Result<Loc, ParseError> {
        let v = self.obj.get(key).ok_or_else(|| self.missing(key))?;
        self.loc_of(v, key)
    }

    fn loc_of(&self, v: &Value, key: &str) -> Result<Loc, ParseError> {
        let o = v.as_object().ok_or_else(|| self.missing(key))?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| o.get(k).and_then(Value::as_i64).unwrap_or(0);
        let kind = match s("kind") {
            k if k.is_empty() => "unknown".to_string(),
            k => k,
        };
        Ok(Loc { kind, chunk: s("chunk"), line: n("line"), func: n("func"), name: s("name") })
    }

    fn trace(&self) -> Result<TraceRef, ParseError> {
        Ok(TraceRef {
            gen: self.int("gen")?,
            tr: self.int("tr")?,
            kind: self.str_or("kind", "root")?,
            parent: self.int_or("parent", 0)?,
            exit: self.int_or("exit", 0)?,
            loc: self.loc("loc")?,
        })
    }

    /// Decodes a record other than `open`; `None` for unknown kinds.
    fn event(&self, ev: &str) -> Result<Option<Event>, ParseError> {
        Ok(Some(match ev {
            "start" => Event::Start(self.trace()?),
            "stop" => {
                let link = self.str("link")?;
                let callee = match self.obj.get("callee") {
                    Some(v) if !v.is_null() => Some(self.loc_of(v, "callee")?),
                    _ => None,
                };
                Event::Stop { t: self.trace()?, link, target: self.int_or("target", 0)?, callee }
            }
            "abort" => {
                let t = self.trace()?;
                // `at` is absent only when it equals the start (like -jv's " at").
                let at = match self.obj.get("at") {
                    Some(v) if !v.is_null() => self.loc_of(v, "at")?,
                    _ => t.loc.clone(),
                };
                let nyi = self.str_or("nyi", "")?;
                Event::Abort {
                    at,
                    code: self.int_or("code", -1)?,
                    id: self.str("id")?,
                    reason: self.str_or("reason", "")?,
                    nyi: (!nyi.is_empty()).then_some(nyi),
                    profiler: self.obj.get("profiler").and_then(Value::as_bool).unwrap_or(false),
                    t,
                }
            }
            "flush" => Event::Flush { gen: self.int("gen")?, profiler: self.str_or("cause", "jit")? == "profiler" },
            "exits" => Event::Exits { gen: self.int("gen")?, tr: self.int("tr")?, exit: self.int("exit")?, n: self.int("n")?.max(0) as u64 },
            "samples" => {
                let interval_ms = self.obj.get("interval_ms").and_then(Value::as_f64).unwrap_or(0.0);
                let list = self.obj.get("counts").and_then(Value::as_array).ok_or_else(|| self.missing("counts"))?;
                let mut counts = Vec::with_capacity(list.len());
                for c in list {
                    let o = c.as_object().ok_or_else(|| self.missing("counts"))?;
                    let state = o.get("state").and_then(Value::as_str).and_then(|s| s.chars().next());
                    let n = o.get("n").and_then(Value::as_i64);
                    let (Some(state), Some(n), Some(loc)) = (state, n, o.get("loc")) else {
                        return Err(self.missing("counts"));
                    };
                    counts.push(Sample { state, loc: self.loc_of(loc, "counts.loc")?, n: n.max(0) as u64 });
                }
                Event::Samples { interval_ms, counts }
            }
            "blacklist" => Event::Blacklist { site: self.loc("site")?, op: self.str_or("op", "")? },
            "close" => Event::Close,
            _ => return Ok(None),
        }))
    }
}
