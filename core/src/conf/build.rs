//! Directive tree -> typed `Config`, with every directive checked for its
//! context and arguments.
//!
//! Like nginx, building happens in two steps: each block is read in file
//! order into a "raw" level whose settings are `Option`s (so duplicates and
//! bad values are reported at the directive, in order), then the levels are
//! merged top-down (http -> server -> location), so an http-level setting
//! written after a `server {}` still reaches that server, as in nginx.
//!
//! Every directive first goes through [`check`]: unknown name, wrong context,
//! block/terminator and argument count, in nginx's order and wording.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::{Regex, RegexBuilder};

use super::mime;
use super::parse::{self, ConfError, Directive};
use super::template::{Escape, Template};
use super::types::*;
use crate::log::Level;

/// Build the typed config. `prefix` and `conf_path` are absolute;
/// `globals` are the directives from `-g`, applied at main level.
pub fn build(
    prefix: &Path,
    conf_path: &Path,
    tree: Vec<Directive>,
    globals: Vec<Directive>,
) -> Result<Config, ConfError> {
    let mut b = Builder::new(prefix);
    let mut main = MainRaw::default();
    // nginx applies -g before the file, so a file directive repeating a -g
    // one is the duplicate.
    for d in globals.iter().chain(tree.iter()) {
        b.main_directive(d, &mut main)?;
    }
    if !main.events {
        return Err(ConfError::new(
            "no \"events\" section in configuration",
            None,
        ));
    }
    let http = match main.http {
        Some(raw) => b.finish_http(raw),
        None => Http::default(),
    };
    let worker_processes = main.worker_processes.unwrap_or(1);
    Ok(Config {
        prefix: prefix.to_path_buf(),
        conf_path: conf_path.to_path_buf(),
        worker_processes,
        master_process: main.master_process.unwrap_or(true),
        daemon: main.daemon.unwrap_or(true),
        error_log: main.error_log.unwrap_or_else(|| ErrorLogConf {
            path: prefix.join("logs/error.log"),
            level: Level::Error,
        }),
        pid: main.pid.unwrap_or_else(|| prefix.join("logs/nginx.pid")),
        worker_connections: main.worker_connections.unwrap_or(512),
        worker_shutdown_timeout: main.worker_shutdown_timeout,
        worker_rlimit_nofile: main.worker_rlimit_nofile,
        env: main.env,
        notices: std::mem::take(&mut b.notices),
        http,
    })
}

/// Read, parse and build in one step (what `-t`, start and reload call).
pub fn load(prefix: &Path, conf_path: &Path, globals: &str) -> Result<Config, ConfError> {
    Ok(load_read(prefix, conf_path, globals)?.0)
}

/// [`load`], also returning the files read (what `-T` prints).
pub fn load_read(prefix: &Path, conf_path: &Path, globals: &str) -> Result<(Config, Vec<parse::ConfFile>), ConfError> {
    let conf_dir = conf_path.parent().unwrap_or(Path::new("/"));
    // nginx reads -g before the file.
    let globals = parse::parse_str(globals, parse::COMMAND_LINE, conf_dir)?;
    let (tree, files) = parse::parse_file_read(conf_path)?;
    Ok((build(prefix, conf_path, tree, globals)?, files))
}

/// The predefined `combined` log format.
pub const COMBINED_FORMAT: &str =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// nginx's default listen backlog on Linux (NGX_LISTEN_BACKLOG).
pub const DEFAULT_BACKLOG: i32 = 511;

// ---------------------------------------------------------------------------
// Directive table

/// Contexts, as bits (nginx's NGX_*_CONF).
const MAIN: u16 = 1;
const EVENTS: u16 = 1 << 1;
const HTTP: u16 = 1 << 2;
const SRV: u16 = 1 << 3;
const LOC: u16 = 1 << 4;
/// `if` inside server.
const SIF: u16 = 1 << 5;
/// `if` inside location.
const LIF: u16 = 1 << 6;
const HSL: u16 = HTTP | SRV | LOC;
const REWRITE: u16 = SRV | SIF | LOC | LIF;

#[derive(Clone, Copy)]
enum Args {
    Exactly(usize),
    Range(usize, usize),
    AtLeast(usize),
}

/// Checks the arguments of a directive halo accepts and ignores, with the
/// errors nginx's handler for it gives.
type ValueCheck = fn(&Directive) -> Result<(), ConfError>;

struct Spec {
    name: &'static str,
    ctx: u16,
    block: bool,
    args: Args,
    /// Accepted with a notice and otherwise ignored (its arguments checked
    /// by this); None: handled by the match of each context it is allowed in.
    ignored: Option<ValueCheck>,
}

const fn spec(name: &'static str, ctx: u16, block: bool, args: Args) -> Spec {
    Spec {
        name,
        ctx,
        block,
        args,
        ignored: None,
    }
}

/// A directive that means nothing for halo (its effect is one halo has by
/// design, or not yet): checked as nginx checks it, then noted in the error
/// log, never silently dropped.
const fn ignored(name: &'static str, ctx: u16, args: Args, check: ValueCheck) -> Spec {
    Spec {
        name,
        ctx,
        block: false,
        args,
        ignored: Some(check),
    }
}

use Args::*;

/// Every directive halo knows. Adding one: a row here, a match arm in the
/// handler of each context it is allowed in.
static SPECS: &[Spec] = &[
    // main
    spec("worker_processes", MAIN, false, Exactly(1)),
    spec("master_process", MAIN, false, Exactly(1)),
    spec("worker_shutdown_timeout", MAIN, false, Exactly(1)),
    spec("daemon", MAIN, false, Exactly(1)),
    spec("error_log", MAIN, false, Range(1, 2)),
    spec("pid", MAIN, false, Exactly(1)),
    spec("events", MAIN, true, Exactly(0)),
    spec("http", MAIN, true, Exactly(0)),
    spec("env", MAIN, false, Exactly(1)),
    spec("load_module", MAIN, false, Exactly(1)),
    spec("worker_rlimit_nofile", MAIN, false, Exactly(1)),
    ignored("user", MAIN, Range(1, 2), any),
    ignored("worker_cpu_affinity", MAIN, AtLeast(1), cpu_affinity),
    // events
    spec("worker_connections", EVENTS, false, Exactly(1)),
    spec("accept_mutex", EVENTS, false, Exactly(1)),
    spec("multi_accept", EVENTS, false, Exactly(1)),
    spec("use", EVENTS, false, Exactly(1)),
    // http and below
    spec("server", HTTP, true, Exactly(0)),
    spec("upstream", HTTP, true, Exactly(1)),
    spec("log_format", HTTP, false, AtLeast(2)),
    spec("map", HTTP, true, Exactly(2)),
    spec("split_clients", HTTP, true, Exactly(2)),
    spec("default_type", HSL, false, Exactly(1)),
    spec("types", HSL, true, Exactly(0)),
    spec("keepalive_timeout", HSL, false, Range(1, 2)),
    spec("keepalive_requests", HSL, false, Exactly(1)),
    spec("client_header_timeout", HTTP | SRV, false, Exactly(1)),
    spec("client_body_timeout", HSL, false, Exactly(1)),
    spec("send_timeout", HSL, false, Exactly(1)),
    spec("client_max_body_size", HSL, false, Exactly(1)),
    spec("client_body_buffer_size", HSL, false, Exactly(1)),
    spec("client_body_temp_path", HSL, false, Range(1, 4)),
    spec("client_body_in_file_only", HSL, false, Exactly(1)),
    spec("lua_need_request_body", HSL, false, Exactly(1)),
    spec("lua_check_client_abort", HSL, false, Exactly(1)),
    spec("lua_api_mode", HSL, false, Exactly(1)),
    spec("client_header_buffer_size", HTTP | SRV, false, Exactly(1)),
    spec("large_client_header_buffers", HTTP | SRV, false, Exactly(2)),
    spec("underscores_in_headers", HTTP | SRV, false, Exactly(1)),
    spec("ignore_invalid_headers", HTTP | SRV, false, Exactly(1)),
    spec("server_tokens", HSL, false, Exactly(1)),
    spec("access_log", HSL, false, AtLeast(1)),
    spec("error_page", HSL, false, AtLeast(2)),
    spec("add_header", HSL, false, Range(2, 3)),
    spec("root", HSL, false, Exactly(1)),
    spec("alias", LOC, false, Exactly(1)),
    spec("index", HSL, false, AtLeast(1)),
    spec("try_files", SRV | LOC, false, AtLeast(2)),
    spec("resolver", HSL, false, AtLeast(1)),
    spec("resolver_timeout", HSL, false, Exactly(1)),
    // proxy
    spec("proxy_pass", LOC, false, Exactly(1)),
    spec("proxy_http_version", HSL, false, Exactly(1)),
    spec("proxy_set_header", HSL, false, Exactly(2)),
    spec("proxy_pass_request_headers", HSL, false, Exactly(1)),
    spec("proxy_pass_request_body", HSL, false, Exactly(1)),
    spec("proxy_request_buffering", HSL, false, Exactly(1)),
    spec("proxy_connect_timeout", HSL, false, Exactly(1)),
    spec("proxy_send_timeout", HSL, false, Exactly(1)),
    spec("proxy_read_timeout", HSL, false, Exactly(1)),
    spec("proxy_buffering", HSL, false, Exactly(1)),
    spec("proxy_buffer_size", HSL, false, Exactly(1)),
    spec("proxy_buffers", HSL, false, Exactly(2)),
    spec("proxy_busy_buffers_size", HSL, false, Exactly(1)),
    spec("proxy_hide_header", HSL, false, Exactly(1)),
    spec("proxy_pass_header", HSL, false, Exactly(1)),
    spec("proxy_intercept_errors", HSL, false, Exactly(1)),
    spec("proxy_ignore_client_abort", HSL, false, Exactly(1)),
    spec("proxy_next_upstream", HSL, false, AtLeast(1)),
    spec("proxy_next_upstream_tries", HSL, false, Exactly(1)),
    spec("proxy_next_upstream_timeout", HSL, false, Exactly(1)),
    spec("proxy_redirect", HSL, false, Range(1, 2)),
    // server
    spec("listen", SRV, false, AtLeast(1)),
    spec("server_name", SRV, false, AtLeast(1)),
    spec("location", SRV | LOC, true, Range(1, 2)),
    spec("internal", LOC, false, Exactly(0)),
    // rewrite module
    spec("set", REWRITE, false, Exactly(2)),
    spec("rewrite", REWRITE, false, Range(2, 3)),
    spec("return", REWRITE, false, Range(1, 2)),
    spec("if", SRV | LOC, true, AtLeast(1)),
    // lua
    spec("lua_package_path", HTTP, false, Exactly(1)),
    spec("lua_package_cpath", HTTP, false, Exactly(1)),
    spec("lua_code_cache", HTTP, false, Exactly(1)),
    spec("lua_regex_match_limit", HTTP, false, Exactly(1)),
    spec("lua_regex_cache_max_entries", HTTP, false, Exactly(1)),
    spec("lua_shared_dict", HTTP, false, Exactly(2)),
    spec("lua_max_pending_timers", HTTP, false, Exactly(1)),
    spec("lua_socket_connect_timeout", HTTP, false, Exactly(1)),
    spec("lua_socket_send_timeout", HTTP, false, Exactly(1)),
    spec("lua_socket_read_timeout", HTTP, false, Exactly(1)),
    spec("lua_socket_buffer_size", HTTP, false, Exactly(1)),
    spec("lua_socket_pool_size", HTTP, false, Exactly(1)),
    spec("lua_socket_keepalive_timeout", HTTP, false, Exactly(1)),
    spec("lua_socket_log_errors", HTTP, false, Exactly(1)),
    spec("lua_max_running_timers", HTTP, false, Exactly(1)),
    spec("lua_jit_log", HTTP, false, Range(1, 2)),
    spec("rewrite_by_lua_no_postpone", HTTP, false, Exactly(1)),
    spec("access_by_lua_no_postpone", HTTP, false, Exactly(1)),
    spec("init_by_lua_block", HTTP, false, Exactly(1)),
    spec("init_by_lua", HTTP, false, Exactly(1)),
    spec("init_by_lua_file", HTTP, false, Exactly(1)),
    spec("init_worker_by_lua_block", HTTP, false, Exactly(1)),
    spec("init_worker_by_lua", HTTP, false, Exactly(1)),
    spec("init_worker_by_lua_file", HTTP, false, Exactly(1)),
    spec("exit_worker_by_lua_block", HTTP, false, Exactly(1)),
    spec("exit_worker_by_lua_file", HTTP, false, Exactly(1)),
    spec("set_by_lua_block", SRV | LOC, false, Exactly(2)),
    spec("set_by_lua", SRV | LOC, false, AtLeast(2)),
    spec("set_by_lua_file", SRV | LOC, false, AtLeast(2)),
    spec("content_by_lua_block", LOC, false, Exactly(1)),
    spec("content_by_lua", LOC, false, Exactly(1)),
    spec("content_by_lua_file", LOC, false, Exactly(1)),
    spec("rewrite_by_lua_block", HSL, false, Exactly(1)),
    spec("rewrite_by_lua", HSL, false, Exactly(1)),
    spec("rewrite_by_lua_file", HSL, false, Exactly(1)),
    spec("access_by_lua_block", HSL, false, Exactly(1)),
    spec("access_by_lua", HSL, false, Exactly(1)),
    spec("access_by_lua_file", HSL, false, Exactly(1)),
    spec("log_by_lua_block", HSL, false, Exactly(1)),
    spec("log_by_lua", HSL, false, Exactly(1)),
    spec("log_by_lua_file", HSL, false, Exactly(1)),
    spec("header_filter_by_lua_block", HSL, false, Exactly(1)),
    spec("header_filter_by_lua", HSL, false, Exactly(1)),
    spec("header_filter_by_lua_file", HSL, false, Exactly(1)),
    spec("body_filter_by_lua_block", HSL, false, Exactly(1)),
    spec("body_filter_by_lua", HSL, false, Exactly(1)),
    spec("body_filter_by_lua_file", HSL, false, Exactly(1)),
    // accepted and ignored (see `ignored`)
    ignored("sendfile", HSL | LIF, Exactly(1), flag_check),
    ignored("tcp_nopush", HSL, Exactly(1), flag_check),
    ignored("tcp_nodelay", HSL, Exactly(1), flag_check),
    ignored("types_hash_max_size", HSL, Exactly(1), number_check),
    ignored("types_hash_bucket_size", HSL, Exactly(1), number_check),
    ignored("server_names_hash_max_size", HTTP, Exactly(1), number_check),
    ignored("server_names_hash_bucket_size", HTTP, Exactly(1), number_check),
    ignored("variables_hash_max_size", HTTP, Exactly(1), number_check),
    ignored("variables_hash_bucket_size", HTTP, Exactly(1), number_check),
    ignored("map_hash_max_size", HTTP, Exactly(1), number_check),
    ignored("map_hash_bucket_size", HTTP, Exactly(1), number_check),
    ignored("proxy_temp_path", HSL, Range(1, 4), any),
    ignored("fastcgi_temp_path", HSL, Range(1, 4), any),
    ignored("uwsgi_temp_path", HSL, Range(1, 4), any),
    ignored("scgi_temp_path", HSL, Range(1, 4), any),
    ignored("log_not_found", HSL, Exactly(1), flag_check),
    ignored("log_subrequest", HSL, Exactly(1), flag_check),
    ignored("open_file_cache", HSL, Range(1, 2), open_file_cache),
    ignored("open_file_cache_valid", HSL, Exactly(1), sec_check),
    ignored("open_file_cache_min_uses", HSL, Exactly(1), number_check),
    ignored("open_file_cache_errors", HSL, Exactly(1), flag_check),
    ignored("open_file_cache_events", HSL, Exactly(1), flag_check),
    ignored("charset", HSL | LIF, Exactly(1), any),
    ignored("source_charset", HSL | LIF, Exactly(1), any),
    ignored("expires", HSL | LIF, Range(1, 2), expires),
    ignored("etag", HSL, Exactly(1), flag_check),
    ignored("if_modified_since", HSL, Exactly(1), |d| one_of(d, &["off", "exact", "before"])),
    ignored("merge_slashes", HTTP | SRV, Exactly(1), flag_check),
    ignored("port_in_redirect", HSL, Exactly(1), flag_check),
    ignored("absolute_redirect", HSL, Exactly(1), flag_check),
    ignored("server_name_in_redirect", HSL, Exactly(1), flag_check),
    ignored("postpone_output", HSL, Exactly(1), size_check),
    ignored("reset_timedout_connection", HSL, Exactly(1), flag_check),
    ignored("lingering_close", HSL, Exactly(1), |d| one_of(d, &["off", "on", "always"])),
    ignored("lingering_time", HSL, Exactly(1), msec_check),
    ignored("lingering_timeout", HSL, Exactly(1), msec_check),
    ignored("send_lowat", HSL, Exactly(1), size_check),
    ignored("chunked_transfer_encoding", HSL, Exactly(1), flag_check),
    ignored("msie_padding", HSL, Exactly(1), flag_check),
];

/// If `s` is an [`ignored`] directive: check its arguments, note it in
/// `notices` and answer true (the caller is done with it).
fn ignore(s: &Spec, d: &Directive, notices: &mut Vec<String>) -> Result<bool, ConfError> {
    let Some(check) = s.ignored else { return Ok(false) };
    check(d)?;
    notices.push(format!("\"{}\" directive is ignored by halo in {}", d.name, d.origin()));
    Ok(true)
}

// The argument checks of ignored directives (nginx's slot handlers).

fn any(_: &Directive) -> Result<(), ConfError> {
    Ok(())
}

fn flag_check(d: &Directive) -> Result<(), ConfError> {
    flag(d).map(drop)
}

fn number_check(d: &Directive) -> Result<(), ConfError> {
    number::<u64>(d).map(drop)
}

fn size_check(d: &Directive) -> Result<(), ConfError> {
    size_arg(d, &d.args[0]).map(drop)
}

fn msec_check(d: &Directive) -> Result<(), ConfError> {
    time_arg(d, &d.args[0]).map(drop)
}

fn sec_check(d: &Directive) -> Result<(), ConfError> {
    parse_time(&d.args[0], true).map(drop).ok_or_else(|| slot_err(d, "invalid value"))
}

/// nginx's enum slot.
fn one_of(d: &Directive, values: &[&str]) -> Result<(), ConfError> {
    if values.contains(&d.args[0].as_str()) {
        return Ok(());
    }
    Err(ConfError::at(format!("invalid value \"{}\"", d.args[0]), d))
}

/// `open_file_cache off | max=N [inactive=time]`.
fn open_file_cache(d: &Directive) -> Result<(), ConfError> {
    let bad = |a: &str| ConfError::at(format!("invalid \"open_file_cache\" parameter \"{a}\""), d);
    let mut max = false;
    for a in &d.args {
        if let Some(n) = a.strip_prefix("max=") {
            atoi(n).filter(|&n| n > 0).ok_or_else(|| bad(a))?;
            max = true;
        } else if let Some(t) = a.strip_prefix("inactive=") {
            parse_time(t, true).ok_or_else(|| bad(a))?;
        } else if a != "off" || d.args.len() > 1 {
            return Err(bad(a));
        }
    }
    if !max && d.args[0] != "off" {
        return Err(ConfError::at("\"open_file_cache\" must have the \"max\" parameter", d));
    }
    Ok(())
}

/// `expires [modified] time | epoch | max | off`, a time possibly `@`-prefixed
/// (time of day) or negative.
fn expires(d: &Directive) -> Result<(), ConfError> {
    let v = match d.args.as_slice() {
        [m, v] if m == "modified" => v.as_str(),
        [_, _] => return Err(slot_err(d, "invalid value")),
        [v] => v.as_str(),
        _ => unreachable!("expires takes 1 or 2 arguments"),
    };
    if matches!(v, "epoch" | "max" | "off") && d.args.len() == 1 {
        return Ok(());
    }
    let t = v.strip_prefix('@').or_else(|| v.strip_prefix('-')).unwrap_or(v);
    parse_time(t, true).map(drop).ok_or_else(|| slot_err(d, "invalid value"))
}

/// `worker_cpu_affinity [auto] mask...`, each mask of 0s and 1s.
fn cpu_affinity(d: &Directive) -> Result<(), ConfError> {
    let masks = if d.args[0] == "auto" { &d.args[1..] } else { &d.args[..] };
    for m in masks {
        if let Some(c) = m.chars().find(|c| !matches!(c, '0' | '1')) {
            return Err(ConfError::at(format!("invalid character \"{c}\" in \"worker_cpu_affinity\""), d));
        }
    }
    Ok(())
}

/// Some context knows a directive of this name (inside `upstream {}`, a
/// name known elsewhere is "not allowed here", others are unknown).
pub(super) fn known(name: &str) -> bool {
    SPECS.iter().any(|s| s.name == name)
}

/// The generic checks nginx's `ngx_conf_handler` makes, in its order.
fn check(d: &Directive, ctx: u16) -> Result<&'static Spec, ConfError> {
    let Some(s) = SPECS.iter().find(|s| s.name == d.name) else {
        return Err(ConfError::at(
            format!("unknown directive \"{}\"", d.name),
            d,
        ));
    };
    if s.ctx & ctx == 0 {
        return Err(ConfError::at(
            format!("\"{}\" directive is not allowed here", d.name),
            d,
        ));
    }
    if !s.block && d.block.is_some() {
        return Err(ConfError::at(
            format!("directive \"{}\" is not terminated by \";\"", d.name),
            d,
        ));
    }
    if s.block && d.block.is_none() {
        return Err(ConfError::at(
            format!("directive \"{}\" has no opening \"{{\"", d.name),
            d,
        ));
    }
    let n = d.args.len();
    let ok = match s.args {
        Exactly(k) => n == k,
        Range(lo, hi) => (lo..=hi).contains(&n),
        AtLeast(k) => n >= k,
    };
    if !ok {
        return Err(ConfError::at(
            format!("invalid number of arguments in \"{}\" directive", d.name),
            d,
        ));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------
// Small value parsers (nginx's ngx_parse_time / ngx_parse_size / ngx_atoi)

/// `"NAME" directive MSG`: how nginx reports a handler's error string.
pub(super) fn slot_err(d: &Directive, msg: &str) -> ConfError {
    ConfError::at(format!("\"{}\" directive {}", d.name, msg), d)
}

pub(super) fn dup(d: &Directive) -> ConfError {
    slot_err(d, "is duplicate")
}

/// `ngx_atoi`: decimal digits only.
pub(super) fn atoi(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// nginx time syntax: units y M w d h m s ms in decreasing order, optional
/// spaces between parts, a bare trailing number is seconds. `is_sec` refuses
/// "ms" (for directives counted in seconds).
pub fn parse_time(s: &str, is_sec: bool) -> Option<Duration> {
    const S: u64 = 1000;
    let b = s.as_bytes();
    let mut i = 0;
    let mut step = 0u8; // the last unit used, larger = smaller unit
    let mut value: u64 = 0;
    let mut total: u64 = 0;
    let mut valid = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add((c - b'0') as u64)?;
            valid = true;
            i += 1;
            continue;
        }
        let (unit_step, scale_ms) = match c {
            b'y' => (1, 365 * 86400 * S),
            b'M' => (2, 30 * 86400 * S),
            b'w' => (3, 7 * 86400 * S),
            b'd' => (4, 86400 * S),
            b'h' => (5, 3600 * S),
            b'm' if b.get(i + 1) == Some(&b's') => {
                if is_sec {
                    return None;
                }
                i += 1;
                (8, 1)
            }
            b'm' => (6, 60 * S),
            b's' => (7, S),
            _ => return None,
        };
        if step >= unit_step {
            return None;
        }
        step = unit_step;
        i += 1;
        total = total.checked_add(value.checked_mul(scale_ms)?)?;
        value = 0;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    // A bare number after other parts (e.g. "1m30") is seconds, as in nginx.
    total = total.checked_add(value.checked_mul(S)?)?;
    Some(Duration::from_millis(total))
}

/// nginx size syntax: a number with an optional k/K, m/M or g/G suffix.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    atoi(num)?.checked_mul(scale)
}

pub(super) fn flag(d: &Directive) -> Result<bool, ConfError> {
    choice(d, &[("on", true), ("off", false)])
}

/// The first argument as one of `values`, else nginx's error naming them
/// (`invalid value "x" in "name" directive, it must be "a", "b" or "c"`).
pub(super) fn choice<T: Copy>(d: &Directive, values: &[(&str, T)]) -> Result<T, ConfError> {
    let v = d.args[0].as_str();
    if let Some(&(_, t)) = values.iter().find(|(name, _)| *name == v) {
        return Ok(t);
    }
    let mut names = String::new();
    for (i, (name, _)) in values.iter().enumerate() {
        if i > 0 {
            names.push_str(if i + 1 == values.len() { " or " } else { ", " });
        }
        names.push_str(&format!("\"{name}\""));
    }
    Err(ConfError::at(format!("invalid value \"{v}\" in \"{}\" directive, it must be {names}", d.name), d))
}

fn time_arg(d: &Directive, s: &str) -> Result<Duration, ConfError> {
    parse_time(s, false).ok_or_else(|| slot_err(d, "invalid value"))
}

fn size_arg(d: &Directive, s: &str) -> Result<u64, ConfError> {
    parse_size(s).ok_or_else(|| slot_err(d, "invalid value"))
}

pub(super) fn tmpl(d: &Directive, s: &str) -> Result<Template, ConfError> {
    Template::parse(s).map_err(|e| ConfError::at(e, d))
}

/// The one-line reason from a regex compile error.
fn regex_reason(e: &regex::Error) -> String {
    let s = e.to_string();
    let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    last.trim()
        .strip_prefix("error: ")
        .unwrap_or(last.trim())
        .to_string()
}

pub(super) fn compile_regex(d: &Directive, pattern: &str, caseless: bool) -> Result<Regex, ConfError> {
    RegexBuilder::new(pattern)
        .case_insensitive(caseless)
        .build()
        .map_err(|e| {
            ConfError::at(
                format!("invalid regex \"{pattern}\": {}", regex_reason(&e)),
                d,
            )
        })
}

fn is_redirect_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("$scheme")
}

// ---------------------------------------------------------------------------
// Raw levels

#[derive(Default)]
struct MainRaw {
    worker_processes: Option<usize>,
    master_process: Option<bool>,
    daemon: Option<bool>,
    error_log: Option<ErrorLogConf>,
    pid: Option<PathBuf>,
    events: bool,
    worker_connections: Option<usize>,
    worker_shutdown_timeout: Option<Duration>,
    worker_rlimit_nofile: Option<u64>,
    env: Vec<EnvVar>,
    accept_mutex: Option<bool>,
    multi_accept: Option<bool>,
    use_: Option<String>,
    http: Option<HttpRaw>,
}

/// One level's own settings (the inheritable part of LocConf); None = not
/// set here.
#[derive(Default)]
struct Partial {
    /// (is_alias, path)
    root: Option<(bool, Template)>,
    index: Option<Vec<String>>,
    try_files: Option<Vec<Template>>,
    add_header: Option<Vec<AddHeader>>,
    error_page: Option<Vec<ErrorPage>>,
    default_type: Option<String>,
    types: Option<HashMap<String, String>>,
    keepalive_timeout: Option<Duration>,
    keepalive_requests: Option<u64>,
    client_body_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    client_max_body_size: Option<u64>,
    client_body_buffer_size: Option<usize>,
    client_body_temp_path: Option<PathBuf>,
    client_body_in_file_only: Option<BodyInFileOnly>,
    lua_need_request_body: Option<bool>,
    lua_check_client_abort: Option<bool>,
    lua_api_mode: Option<LuaApiMode>,
    server_tokens: Option<bool>,
    access_log: Option<Vec<AccessLog>>,
    access_log_off: bool,
    // server-level only (http/server)
    client_header_timeout: Option<Duration>,
    client_header_buffer_size: Option<usize>,
    large_client_header_buffers: Option<(usize, usize)>,
    underscores_in_headers: Option<bool>,
    ignore_invalid_headers: Option<bool>,
    content_by_lua: Option<Arc<LuaCode>>,
    rewrite_by_lua: Option<Arc<LuaCode>>,
    access_by_lua: Option<Arc<LuaCode>>,
    log_by_lua: Option<Arc<LuaCode>>,
    header_filter_by_lua: Option<Arc<LuaCode>>,
    body_filter_by_lua: Option<Arc<LuaCode>>,
    /// `resolver`, its timeout still to merge.
    resolver: Option<ResolverConf>,
    resolver_timeout: Option<Duration>,
    /// `proxy_pass` (location only), and the `proxy_*` settings.
    proxy_pass: Option<super::proxy::ProxyPass>,
    proxy: super::proxy::ProxyPartial,
}

struct HttpRaw {
    partial: Partial,
    servers: Vec<SrvRaw>,
}

struct SrvRaw {
    partial: Partial,
    listen: Vec<Listen>,
    names: Vec<ServerName>,
    primary_name: Option<String>,
    rewrites: Vec<RewriteOp>,
    locations: Vec<LocRaw>,
    named: Vec<LocRaw>,
}

struct LocRaw {
    kind: LocKind,
    pattern: String,
    regex: Option<Regex>,
    internal: bool,
    rewrites: Vec<RewriteOp>,
    partial: Partial,
    children: Vec<LocRaw>,
    origin: String,
    /// The `proxy_pass` directive, for [`Builder::resolve_passes`]'s errors.
    proxy_pass_at: Option<Directive>,
}

/// One distinct listening address across all servers.
struct ListenEntry {
    listen: Listen,
    /// Socket options (backlog, reuseport, bind) were given for it.
    opts_set: bool,
    /// Indexes of the servers listening on it.
    servers: Vec<usize>,
}

struct Builder<'a> {
    prefix: &'a Path,
    lua_package_path: Option<String>,
    lua_package_cpath: Option<String>,
    lua_code_cache: Option<bool>,
    lua_regex_match_limit: Option<u32>,
    lua_regex_cache_max_entries: Option<usize>,
    lua_max_pending_timers: Option<usize>,
    lua_max_running_timers: Option<usize>,
    lua_socket: LuaSocketConf,
    lua_socket_set: Vec<&'static str>,
    lua_shared_dicts: Vec<(String, u64)>,
    /// `map` and `split_clients` blocks, shared by every server when built.
    maps: Vec<super::map::MapConf>,
    lua_jit_log: Option<JitLog>,
    init_by_lua: Option<Arc<LuaCode>>,
    init_worker_by_lua: Option<Arc<LuaCode>>,
    exit_worker_by_lua: Option<Arc<LuaCode>>,
    log_formats: HashMap<String, Template>,
    log_escape: HashMap<String, Escape>,
    listens: Vec<ListenEntry>,
    server_count: usize,
    upstreams: Vec<Arc<UpstreamConf>>,
    /// Lines for the error log at start: the directives accepted and ignored.
    notices: Vec<String>,
}

/// The modules whose `load_module` lines halo accepts: it has them built in.
const BUILT_IN_MODULES: &[&str] = &[
    "ndk_http_module.so",
    "ngx_http_lua_module.so",
    "ngx_http_echo_module.so",
    "ngx_http_headers_more_filter_module.so",
];

impl<'a> Builder<'a> {
    fn new(prefix: &'a Path) -> Self {
        let mut log_formats = HashMap::new();
        log_formats.insert(
            "combined".to_string(),
            Template::parse(COMBINED_FORMAT).expect("combined format"),
        );
        let mut log_escape = HashMap::new();
        log_escape.insert("combined".to_string(), Escape::Default);
        Builder {
            prefix,
            lua_package_path: None,
            lua_package_cpath: None,
            lua_code_cache: None,
            lua_regex_match_limit: None,
            lua_regex_cache_max_entries: None,
            lua_max_pending_timers: None,
            lua_max_running_timers: None,
            lua_socket: LuaSocketConf::default(),
            lua_socket_set: Vec::new(),
            lua_shared_dicts: Vec::new(),
            maps: Vec::new(),
            lua_jit_log: None,
            init_by_lua: None,
            init_worker_by_lua: None,
            exit_worker_by_lua: None,
            log_formats,
            log_escape,
            listens: Vec::new(),
            server_count: 0,
            upstreams: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// A path relative to the prefix, as nginx's `ngx_conf_full_name`.
    fn full(&self, p: &str) -> PathBuf {
        self.prefix.join(p)
    }

    // -- main and events --------------------------------------------------

    fn main_directive(&mut self, d: &Directive, m: &mut MainRaw) -> Result<(), ConfError> {
        if ignore(check(d, MAIN)?, d, &mut self.notices)? {
            return Ok(());
        }
        match d.name.as_str() {
            "env" => {
                let (name, value) = match d.args[0].split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (d.args[0].clone(), None),
                };
                m.env.push(EnvVar { name, value });
            }
            "load_module" => {
                let file = Path::new(&d.args[0]).file_name().and_then(|f| f.to_str()).unwrap_or("");
                if !BUILT_IN_MODULES.contains(&file) {
                    return Err(ConfError::at(
                        format!("module \"{}\" cannot be loaded: halo loads no modules (the Lua, ndk, echo and headers-more modules are built in)", d.args[0]),
                        d,
                    ));
                }
                self.notices.push(format!("\"load_module {}\" is ignored: halo has the module built in, in {}", d.args[0], d.origin()));
            }
            "worker_rlimit_nofile" => {
                let n = number(d)?;
                set_once(d, &mut m.worker_rlimit_nofile, n)?
            }
            "worker_processes" => {
                if m.worker_processes.is_some() {
                    return Err(dup(d));
                }
                let n = if d.args[0] == "auto" {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                } else {
                    match atoi(&d.args[0]) {
                        Some(n) if n > 0 => n as usize,
                        _ => return Err(slot_err(d, "invalid value")),
                    }
                };
                m.worker_processes = Some(n);
            }
            "master_process" => set_once(d, &mut m.master_process, flag(d)?)?,
            "worker_shutdown_timeout" => {
                let t = time_arg(d, &d.args[0])?;
                set_once(d, &mut m.worker_shutdown_timeout, t)?
            }
            "daemon" => set_once(d, &mut m.daemon, flag(d)?)?,
            "error_log" => {
                let path = if d.args[0] == "stderr" {
                    PathBuf::from("stderr")
                } else {
                    self.full(&d.args[0])
                };
                let level = match d.args.get(1) {
                    Some(l) => Level::parse(l)
                        .ok_or_else(|| ConfError::at(format!("invalid log level \"{l}\""), d))?,
                    None => Level::Error,
                };
                // nginx logs to every error_log given; halo keeps one, the
                // first (so `-g "error_log ..."` wins over the file).
                if m.error_log.is_none() {
                    m.error_log = Some(ErrorLogConf { path, level });
                }
            }
            "pid" => {
                let p = self.full(&d.args[0]);
                set_once(d, &mut m.pid, p)?;
            }
            "events" => {
                if m.events {
                    return Err(dup(d));
                }
                m.events = true;
                for e in d.block.as_deref().unwrap_or(&[]) {
                    self.events_directive(e, m)?;
                }
            }
            "http" => {
                if m.http.is_some() {
                    return Err(dup(d));
                }
                m.http = Some(self.http_block(d)?);
            }
            _ => unreachable!("{} allowed in main but not handled", d.name),
        }
        Ok(())
    }

    fn events_directive(&mut self, d: &Directive, m: &mut MainRaw) -> Result<(), ConfError> {
        if ignore(check(d, EVENTS)?, d, &mut self.notices)? {
            return Ok(());
        }
        match d.name.as_str() {
            "worker_connections" => {
                if m.worker_connections.is_some() {
                    return Err(dup(d));
                }
                let n = atoi(&d.args[0])
                    .ok_or_else(|| ConfError::at(format!("invalid number \"{}\"", d.args[0]), d))?;
                m.worker_connections = Some(n as usize);
            }
            // Accepted for compatibility: halo's workers accept through
            // io_uring, so neither has an effect.
            "accept_mutex" => set_once(d, &mut m.accept_mutex, flag(d)?)?,
            "multi_accept" => set_once(d, &mut m.multi_accept, flag(d)?)?,
            "use" => {
                if m.use_.is_some() {
                    return Err(dup(d));
                }
                if d.args[0] != "epoll" {
                    return Err(ConfError::at(
                        format!("invalid event type \"{}\"", d.args[0]),
                        d,
                    ));
                }
                m.use_ = Some(d.args[0].clone());
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    // -- http ---------------------------------------------------------------

    /// The `lua_socket_*` directives (each once).
    fn lua_socket(&mut self, c: &Directive) -> Result<(), ConfError> {
        let spec = check(c, HTTP)?;
        if self.lua_socket_set.contains(&spec.name) {
            return Err(dup(c));
        }
        self.lua_socket_set.push(spec.name);
        let s = &mut self.lua_socket;
        let arg = &c.args[0];
        match spec.name {
            "lua_socket_connect_timeout" => s.connect_timeout = time_arg(c, arg)?,
            "lua_socket_send_timeout" => s.send_timeout = time_arg(c, arg)?,
            "lua_socket_read_timeout" => s.read_timeout = time_arg(c, arg)?,
            "lua_socket_keepalive_timeout" => s.keepalive_timeout = time_arg(c, arg)?,
            "lua_socket_buffer_size" => s.buffer_size = (size_arg(c, arg)? as usize).max(1),
            "lua_socket_pool_size" => {
                let n: usize = number(c)?;
                if n == 0 {
                    return Err(ConfError::at(format!("invalid value \"{arg}\" in \"{}\" directive", spec.name), c));
                }
                s.pool_size = n;
            }
            _ => s.log_errors = flag(c)?,
        }
        Ok(())
    }

    /// `lua_shared_dict NAME SIZE`, checked as lua-nginx-module does.
    fn lua_shared_dict(&mut self, c: &Directive) -> Result<(), ConfError> {
        let name = &c.args[0];
        if name.is_empty() {
            return Err(ConfError::at(format!("invalid lua shared dict name \"{name}\""), c));
        }
        let size = parse_size(&c.args[1])
            .filter(|s| (crate::shdict::MIN_SIZE..=crate::shdict::MAX_SIZE).contains(s))
            .ok_or_else(|| ConfError::at(format!("invalid lua shared dict size \"{}\"", c.args[1]), c))?;
        match self.lua_shared_dicts.iter().find(|(n, _)| n == name) {
            Some((_, s)) if *s != size => {
                return Err(ConfError::at(
                    format!("the size {size} of shared memory zone \"{name}\" conflicts with already declared size {s}"),
                    c,
                ))
            }
            Some(_) => return Err(ConfError::at(format!("lua_shared_dict \"{name}\" is already defined as \"{name}\""), c)),
            None => {}
        }
        self.lua_shared_dicts.push((name.clone(), size));
        Ok(())
    }

    fn http_block(&mut self, d: &Directive) -> Result<HttpRaw, ConfError> {
        let mut h = HttpRaw {
            partial: Partial::default(),
            servers: Vec::new(),
        };
        for c in d.block.as_deref().unwrap_or(&[]) {
            if ignore(check(c, HTTP)?, c, &mut self.notices)? {
                continue;
            }
            match c.name.as_str() {
                "server" => {
                    let s = self.server_block(c)?;
                    h.servers.push(s);
                }
                "upstream" => {
                    let u = super::upstream::upstream_block(c, &self.upstreams, &|d| self.lua_code(d))?;
                    self.upstreams.push(Arc::new(u));
                }
                "log_format" => self.log_format(c)?,
                "map" | "split_clients" => {
                    // A second table of the same variable replaces the first, as in nginx.
                    let m = if c.name == "map" { super::map::map_block(c)? } else { super::map::split_clients_block(c)? };
                    self.maps.retain(|o| o.var != m.var);
                    self.maps.push(m);
                }
                "lua_package_path" => set_once(c, &mut self.lua_package_path, c.args[0].clone())?,
                "lua_package_cpath" => set_once(c, &mut self.lua_package_cpath, c.args[0].clone())?,
                "lua_code_cache" => {
                    let on = flag(c)?;
                    set_once(c, &mut self.lua_code_cache, on)?
                }
                "lua_shared_dict" => self.lua_shared_dict(c)?,
                "lua_regex_match_limit" => {
                    let n = number(c)?;
                    set_once(c, &mut self.lua_regex_match_limit, n)?
                }
                "lua_regex_cache_max_entries" => {
                    let n = number(c)?;
                    set_once(c, &mut self.lua_regex_cache_max_entries, n)?
                }
                "lua_max_pending_timers" => {
                    let n = number(c)?;
                    set_once(c, &mut self.lua_max_pending_timers, n)?
                }
                "lua_max_running_timers" => {
                    let n = number(c)?;
                    set_once(c, &mut self.lua_max_running_timers, n)?
                }
                name if name.starts_with("lua_socket_") => self.lua_socket(c)?,
                "lua_jit_log" => {
                    let v = c.args.get(1).map_or("events", String::as_str);
                    let mode = JitLogMode::from_name(v).ok_or_else(|| {
                        ConfError::at(
                            format!("invalid value \"{v}\" in \"lua_jit_log\" directive, it must be \"events\", \"verbose\" or \"dump\""),
                            c,
                        )
                    })?;
                    let log = JitLog { dir: self.full(&c.args[0]), mode };
                    set_once(c, &mut self.lua_jit_log, log)?
                }
                // halo runs Lua handlers at the end of their phase (the
                // default) and reads the body for them: "off" and "on" are
                // what it does; the other value is refused, not ignored.
                "rewrite_by_lua_no_postpone" | "access_by_lua_no_postpone" => {
                    if flag(c)? {
                        return Err(ConfError::at(format!("\"{} on\" is not supported", c.name), c));
                    }
                }
                "init_by_lua_block" | "init_by_lua" | "init_by_lua_file" => {
                    let code = Arc::new(self.lua_code(c));
                    set_once(c, &mut self.init_by_lua, code)?
                }
                "init_worker_by_lua_block" | "init_worker_by_lua" | "init_worker_by_lua_file" => {
                    let code = Arc::new(self.lua_code(c));
                    set_once(c, &mut self.init_worker_by_lua, code)?
                }
                "exit_worker_by_lua_block" | "exit_worker_by_lua_file" => {
                    let code = Arc::new(self.lua_code(c));
                    set_once(c, &mut self.exit_worker_by_lua, code)?
                }
                _ => {
                    if !self.common(c, &mut h.partial)? {
                        unreachable!("{} allowed in http but not handled", c.name);
                    }
                }
            }
        }
        for s in &mut h.servers {
            for l in s.locations.iter_mut().chain(s.named.iter_mut()) {
                self.resolve_passes(l)?;
            }
        }
        Ok(h)
    }

    /// The hosts of `l`'s and its children's proxy_pass, once every
    /// `upstream {}` is known (nginx lets one follow a proxy_pass naming it).
    fn resolve_passes(&self, l: &mut LocRaw) -> Result<(), ConfError> {
        if let (Some(pass), Some(d)) = (&mut l.partial.proxy_pass, &l.proxy_pass_at) {
            super::proxy::resolve_pass(pass, d, &self.upstreams)?;
        }
        l.children.iter_mut().try_for_each(|c| self.resolve_passes(c))
    }

    /// The code of a `*_by_lua*` directive, named as lua-nginx-module names
    /// chunks: `content_by_lua(nginx.conf:12)`, or the file for `_file`.
    fn lua_code(&self, d: &Directive) -> LuaCode {
        let arg = &d.args[d.args.len() - 1];
        if d.name.ends_with("_file") {
            let path = self.full(arg);
            return LuaCode { chunkname: path.display().to_string(), source: LuaSource::File(path) };
        }
        let base = d.name.strip_suffix("_block").unwrap_or(&d.name);
        let file = std::path::Path::new(&*d.file).file_name().map_or_else(|| d.file.to_string(), |f| f.to_string_lossy().into_owned());
        LuaCode { source: LuaSource::Inline(arg.clone()), chunkname: format!("{base}({file}:{})", d.line) }
    }

    /// `set_by_lua_block $var { code }`, `set_by_lua $var 'code' [args]`,
    /// `set_by_lua_file $var path [args]`.
    fn set_by_lua(&self, d: &Directive) -> Result<RewriteOp, ConfError> {
        let v = &d.args[0];
        let Some(var) = v.strip_prefix('$').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) else {
            return Err(ConfError::at(format!("invalid variable name \"{v}\""), d));
        };
        // The code is the second argument; the block form has nothing after it.
        let mut one = d.clone();
        one.args = vec![d.args[1].clone()];
        let code = Arc::new(self.lua_code(&one));
        let args = d.args[2..].iter().map(|a| tmpl(d, a)).collect::<Result<Vec<_>, _>>()?;
        Ok(RewriteOp::SetByLua { var: var.to_ascii_lowercase(), code, args })
    }

    fn log_format(&mut self, d: &Directive) -> Result<(), ConfError> {
        let name = &d.args[0];
        if self.log_formats.contains_key(name) {
            return Err(ConfError::at(
                format!("duplicate \"log_format\" name \"{name}\""),
                d,
            ));
        }
        let mut rest = &d.args[1..];
        let mut escape = Escape::Default;
        if let Some(e) = rest[0].strip_prefix("escape=") {
            escape = Escape::parse(e)
                .ok_or_else(|| ConfError::at(format!("unknown log format escaping \"{e}\""), d))?;
            rest = &rest[1..];
        }
        // The strings are concatenated as written (spaces go inside quotes).
        let text: String = rest.concat();
        let t = tmpl(d, &text)?;
        self.log_formats.insert(name.clone(), t);
        self.log_escape.insert(name.clone(), escape);
        Ok(())
    }

    /// Directives shared by http, server and location (the LocConf ones).
    /// Returns false when `d` is not one of them.
    fn common(&mut self, d: &Directive, p: &mut Partial) -> Result<bool, ConfError> {
        match d.name.as_str() {
            "default_type" => set_once(d, &mut p.default_type, d.args[0].clone())?,
            "types" => {
                let map = p.types.get_or_insert_with(HashMap::new);
                for t in d.block.as_deref().unwrap_or(&[]) {
                    if t.block.is_some() {
                        return Err(ConfError::at("unexpected \"{\"", t));
                    }
                    for ext in &t.args {
                        map.insert(ext.to_ascii_lowercase(), t.name.clone());
                    }
                }
            }
            "keepalive_timeout" => {
                if p.keepalive_timeout.is_some() {
                    return Err(dup(d));
                }
                let t = time_arg(d, &d.args[0])?;
                // The second argument (the Keep-Alive header's timeout) is
                // checked but not sent.
                if let Some(h) = d.args.get(1) {
                    parse_time(h, true).ok_or_else(|| slot_err(d, "invalid value"))?;
                }
                p.keepalive_timeout = Some(t);
            }
            "keepalive_requests" => {
                let n = atoi(&d.args[0]).ok_or_else(|| slot_err(d, "invalid number"))?;
                set_once(d, &mut p.keepalive_requests, n)?;
            }
            "client_header_timeout" => {
                let t = time_arg(d, &d.args[0])?;
                set_once(d, &mut p.client_header_timeout, t)?;
            }
            "client_body_timeout" => {
                let t = time_arg(d, &d.args[0])?;
                set_once(d, &mut p.client_body_timeout, t)?;
            }
            "send_timeout" => {
                let t = time_arg(d, &d.args[0])?;
                set_once(d, &mut p.send_timeout, t)?;
            }
            "client_max_body_size" => {
                let n = size_arg(d, &d.args[0])?;
                set_once(d, &mut p.client_max_body_size, n)?;
            }
            "client_body_buffer_size" => {
                let n = size_arg(d, &d.args[0])? as usize;
                set_once(d, &mut p.client_body_buffer_size, n)?;
            }
            "client_body_temp_path" => {
                if d.args.len() > 1 {
                    return Err(ConfError::at(format!("\"{}\" directive levels are not supported (use a path alone)", d.name), d));
                }
                let path = self.full(&d.args[0]);
                set_once(d, &mut p.client_body_temp_path, path)?;
            }
            "client_body_in_file_only" => {
                let v = choice(d, &[("on", BodyInFileOnly::On), ("clean", BodyInFileOnly::Clean), ("off", BodyInFileOnly::Off)])?;
                set_once(d, &mut p.client_body_in_file_only, v)?;
            }
            "lua_check_client_abort" => {
                let on = flag(d)?;
                set_once(d, &mut p.lua_check_client_abort, on)?;
            }
            "lua_need_request_body" => {
                let on = flag(d)?;
                set_once(d, &mut p.lua_need_request_body, on)?;
            }
            "lua_api_mode" => {
                let mode = choice(d, &[("ffi", LuaApiMode::Ffi), ("cfunction", LuaApiMode::Cfunction)])?;
                set_once(d, &mut p.lua_api_mode, mode)?;
            }
            "client_header_buffer_size" => {
                let n = size_arg(d, &d.args[0])? as usize;
                set_once(d, &mut p.client_header_buffer_size, n)?;
            }
            "large_client_header_buffers" => {
                let n = match atoi(&d.args[0]) {
                    Some(n) if n > 0 => n as usize,
                    _ => return Err(slot_err(d, "invalid value")),
                };
                let size = match parse_size(&d.args[1]) {
                    Some(s) if s > 0 => s as usize,
                    _ => return Err(slot_err(d, "invalid value")),
                };
                set_once(d, &mut p.large_client_header_buffers, (n, size))?;
            }
            "underscores_in_headers" => set_once(d, &mut p.underscores_in_headers, flag(d)?)?,
            "ignore_invalid_headers" => set_once(d, &mut p.ignore_invalid_headers, flag(d)?)?,
            "server_tokens" => set_once(d, &mut p.server_tokens, flag(d)?)?,
            "access_log" => self.access_log(d, p)?,
            "error_page" => {
                let e = error_page(d)?;
                p.error_page.get_or_insert_with(Vec::new).push(e);
            }
            "add_header" => {
                let always = match d.args.get(2).map(String::as_str) {
                    None => false,
                    Some("always") => true,
                    Some(x) => return Err(ConfError::at(format!("invalid parameter \"{x}\""), d)),
                };
                let h = AddHeader {
                    name: d.args[0].clone(),
                    value: tmpl(d, &d.args[1])?,
                    always,
                };
                p.add_header.get_or_insert_with(Vec::new).push(h);
            }
            "root" | "alias" => {
                let alias = d.name == "alias";
                if let Some((was_alias, _)) = &p.root {
                    if *was_alias == alias {
                        return Err(dup(d));
                    }
                    let earlier = if *was_alias { "alias" } else { "root" };
                    return Err(ConfError::at(
                        format!("\"{}\" directive is duplicate, \"{earlier}\" directive was specified earlier", d.name),
                        d,
                    ));
                }
                let mut v = d.args[0].as_str();
                // nginx drops a trailing slash from root (not from alias).
                if !alias && v.len() > 1 && v.ends_with('/') {
                    v = &v[..v.len() - 1];
                }
                // A path starting with a variable is used as is; any other
                // relative path is relative to the prefix.
                let full = if v.starts_with('$') {
                    v.to_string()
                } else {
                    self.full(v).to_string_lossy().into_owned()
                };
                p.root = Some((alias, tmpl(d, &full)?));
            }
            "index" => {
                let n = d.args.len();
                for (i, a) in d.args.iter().enumerate() {
                    if a.is_empty() {
                        return Err(ConfError::at(
                            "index \"\" in \"index\" directive is invalid",
                            d,
                        ));
                    }
                    if a.starts_with('/') && i != n - 1 {
                        return Err(ConfError::at(
                            "only the last index in \"index\" directive should be absolute",
                            d,
                        ));
                    }
                    // Checked here so a bad variable is a config error.
                    tmpl(d, a)?;
                }
                p.index
                    .get_or_insert_with(Vec::new)
                    .extend(d.args.iter().cloned());
            }
            n if super::proxy::DIRECTIVES.contains(&n) => p.proxy.directive(d)?,
            "content_by_lua_block" | "content_by_lua" | "content_by_lua_file" => {
                if p.content_by_lua.is_some() {
                    return Err(ConfError::at("content handler is duplicate", d));
                }
                p.content_by_lua = Some(Arc::new(self.lua_code(d)));
            }
            "rewrite_by_lua_block" | "rewrite_by_lua" | "rewrite_by_lua_file" => {
                set_once(d, &mut p.rewrite_by_lua, Arc::new(self.lua_code(d)))?
            }
            "access_by_lua_block" | "access_by_lua" | "access_by_lua_file" => {
                set_once(d, &mut p.access_by_lua, Arc::new(self.lua_code(d)))?
            }
            "log_by_lua_block" | "log_by_lua" | "log_by_lua_file" => {
                set_once(d, &mut p.log_by_lua, Arc::new(self.lua_code(d)))?
            }
            "header_filter_by_lua_block" | "header_filter_by_lua" | "header_filter_by_lua_file" => {
                set_once(d, &mut p.header_filter_by_lua, Arc::new(self.lua_code(d)))?
            }
            "body_filter_by_lua_block" | "body_filter_by_lua" | "body_filter_by_lua_file" => {
                set_once(d, &mut p.body_filter_by_lua, Arc::new(self.lua_code(d)))?
            }
            "resolver" => {
                if p.resolver.is_some() {
                    return Err(dup(d));
                }
                p.resolver = Some(resolver(d)?);
            }
            "resolver_timeout" => {
                let t = time_arg(d, &d.args[0])?;
                set_once(d, &mut p.resolver_timeout, t)?;
            }
            "try_files" => {
                if p.try_files.is_some() {
                    return Err(dup(d));
                }
                let v = d
                    .args
                    .iter()
                    .map(|a| tmpl(d, a))
                    .collect::<Result<Vec<_>, _>>()?;
                p.try_files = Some(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn access_log(&mut self, d: &Directive, p: &mut Partial) -> Result<(), ConfError> {
        if d.args[0] == "off" {
            if let Some(x) = d.args.get(1) {
                return Err(ConfError::at(format!("invalid parameter \"{x}\""), d));
            }
            p.access_log_off = true;
            return Ok(());
        }
        if d.args[0].contains('$') {
            return Err(ConfError::at(
                format!(
                    "variables in the \"access_log\" path \"{}\" are not supported",
                    d.args[0]
                ),
                d,
            ));
        }
        let format = d
            .args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "combined".to_string());
        if !self.log_formats.contains_key(&format) {
            return Err(ConfError::at(format!("unknown log format \"{format}\""), d));
        }
        if let Some(x) = d.args.get(2) {
            let known = ["buffer=", "flush=", "gzip", "if="]
                .iter()
                .any(|k| x.starts_with(k));
            let msg = if known {
                format!("parameter \"{x}\" of the \"access_log\" directive is not supported")
            } else {
                format!("invalid parameter \"{x}\"")
            };
            return Err(ConfError::at(msg, d));
        }
        let path = self.full(&d.args[0]);
        p.access_log
            .get_or_insert_with(Vec::new)
            .push(AccessLog { path, format });
        Ok(())
    }

    // -- server -------------------------------------------------------------

    fn server_block(&mut self, d: &Directive) -> Result<SrvRaw, ConfError> {
        let idx = self.server_count;
        self.server_count += 1;
        let mut s = SrvRaw {
            partial: Partial::default(),
            listen: Vec::new(),
            names: Vec::new(),
            primary_name: None,
            rewrites: Vec::new(),
            locations: Vec::new(),
            named: Vec::new(),
        };
        for c in d.block.as_deref().unwrap_or(&[]) {
            if ignore(check(c, SRV)?, c, &mut self.notices)? {
                continue;
            }
            match c.name.as_str() {
                "listen" => {
                    let (l, opts_set) = parse_listen(c)?;
                    self.add_listen(idx, &l, opts_set, c)?;
                    s.listen.push(l);
                }
                "server_name" => {
                    for a in &c.args {
                        server_name(c, a, &mut s.names, &mut s.primary_name)?;
                    }
                }
                "location" => {
                    let l = self.location(c, None)?;
                    if l.kind == LocKind::Named {
                        if s.named.iter().any(|n| n.pattern == l.pattern) {
                            return Err(ConfError::at(
                                format!("duplicate location \"{}\"", l.pattern),
                                c,
                            ));
                        }
                        s.named.push(l);
                    } else {
                        check_duplicate_location(&s.locations, &l, c)?;
                        s.locations.push(l);
                    }
                }
                "set" | "rewrite" | "return" | "if" => s.rewrites.push(rewrite_op(c, SIF, &mut self.notices)?),
                "set_by_lua_block" | "set_by_lua" | "set_by_lua_file" => s.rewrites.push(self.set_by_lua(c)?),
                _ => {
                    if !self.common(c, &mut s.partial)? {
                        unreachable!("{} allowed in server but not handled", c.name);
                    }
                }
            }
        }
        if s.listen.is_empty() {
            let l = Listen {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80),
                default_server: false,
                reuseport: false,
                backlog: DEFAULT_BACKLOG,
            };
            self.add_listen(idx, &l, false, d)?;
            s.listen.push(l);
        }
        if s.names.is_empty() {
            s.names.push(ServerName::Exact(String::new()));
        }
        Ok(s)
    }

    /// Record a server's listen, with nginx's cross-server checks.
    fn add_listen(
        &mut self,
        server: usize,
        l: &Listen,
        opts_set: bool,
        d: &Directive,
    ) -> Result<(), ConfError> {
        let Some(e) = self.listens.iter_mut().find(|e| e.listen.addr == l.addr) else {
            self.listens.push(ListenEntry {
                listen: l.clone(),
                opts_set,
                servers: vec![server],
            });
            return Ok(());
        };
        if e.servers.contains(&server) {
            return Err(ConfError::at(format!("a duplicate listen {}", l.addr), d));
        }
        if l.default_server {
            if e.listen.default_server {
                return Err(ConfError::at(
                    format!("a duplicate default server for {}", l.addr),
                    d,
                ));
            }
            e.listen.default_server = true;
        }
        if opts_set {
            if e.opts_set {
                return Err(ConfError::at(
                    format!("duplicate listen options for {}", l.addr),
                    d,
                ));
            }
            e.opts_set = true;
            e.listen.reuseport = l.reuseport;
            e.listen.backlog = l.backlog;
        }
        e.servers.push(server);
        Ok(())
    }

    // -- location -----------------------------------------------------------

    /// `location` inside a server (`parent` None) or inside another location.
    fn location(&mut self, d: &Directive, parent: Option<&LocRaw>) -> Result<LocRaw, ConfError> {
        let (kind, pattern, caseless) = location_kind(d)?;
        if let Some(par) = parent {
            if kind == LocKind::Named {
                return Err(ConfError::at(
                    format!("named location \"{pattern}\" can be on the server level only"),
                    d,
                ));
            }
            match par.kind {
                LocKind::Exact => {
                    return Err(ConfError::at(
                        format!(
                            "location \"{pattern}\" cannot be inside the exact location \"{}\"",
                            par.pattern
                        ),
                        d,
                    ))
                }
                LocKind::Named => {
                    return Err(ConfError::at(
                        format!(
                            "location \"{pattern}\" cannot be inside the named location \"{}\"",
                            par.pattern
                        ),
                        d,
                    ))
                }
                LocKind::Prefix | LocKind::PrefixNoRegex => {
                    if kind != LocKind::Regex && !pattern.starts_with(&par.pattern) {
                        return Err(ConfError::at(
                            format!(
                                "location \"{pattern}\" is outside location \"{}\"",
                                par.pattern
                            ),
                            d,
                        ));
                    }
                }
                LocKind::Regex => {}
            }
        }
        let regex = if kind == LocKind::Regex {
            Some(compile_regex(d, &pattern, caseless)?)
        } else {
            None
        };
        let mut l = LocRaw {
            kind,
            pattern,
            regex,
            internal: kind == LocKind::Named,
            rewrites: Vec::new(),
            partial: Partial::default(),
            children: Vec::new(),
            origin: d.origin(),
            proxy_pass_at: None,
        };
        for c in d.block.as_deref().unwrap_or(&[]) {
            if ignore(check(c, LOC)?, c, &mut self.notices)? {
                continue;
            }
            match c.name.as_str() {
                "location" => {
                    let child = self.location(c, Some(&l))?;
                    check_duplicate_location(&l.children, &child, c)?;
                    l.children.push(child);
                }
                "internal" => l.internal = true,
                "proxy_pass" => {
                    if l.partial.proxy_pass.is_some() {
                        return Err(ConfError::at("\"proxy_pass\" directive is duplicate", c));
                    }
                    let pass = super::proxy::proxy_pass(c, l.kind)?;
                    l.partial.proxy.set_pass(&pass, l.kind, &l.pattern);
                    l.partial.proxy_pass = Some(pass);
                    l.proxy_pass_at = Some(c.clone());
                }
                "set" | "rewrite" | "return" | "if" => l.rewrites.push(rewrite_op(c, LIF, &mut self.notices)?),
                "set_by_lua_block" | "set_by_lua" | "set_by_lua_file" => l.rewrites.push(self.set_by_lua(c)?),
                _ => {
                    if !self.common(c, &mut l.partial)? {
                        unreachable!("{} allowed in location but not handled", c.name);
                    }
                }
            }
        }
        Ok(l)
    }

    // -- merge --------------------------------------------------------------

    fn finish_http(&mut self, raw: HttpRaw) -> Http {
        let defaults = LocConf {
            types: Arc::new(mime::default_types()),
            access_log: vec![AccessLog { path: self.full("logs/access.log"), format: "combined".to_string() }],
            log_formats: Arc::new(std::mem::take(&mut self.log_formats)),
            client_body_temp_path: self.full("client_body_temp"),
            ..LocConf::nginx_defaults(&self.full("html").to_string_lossy())
        };
        let http_conf = merge(&raw.partial, &defaults);
        let hp = &raw.partial;
        let mut servers = Vec::with_capacity(raw.servers.len());
        let maps: Arc<[super::map::MapConf]> = std::mem::take(&mut self.maps).into();
        for s in raw.servers {
            let conf = merge(&s.partial, &http_conf);
            let sp = &s.partial;
            let primary_name = s.primary_name.unwrap_or_default();
            let named = s
                .named
                .into_iter()
                .map(|l| (l.pattern.clone(), finish_location(l, &conf)))
                .collect();
            let locations = s
                .locations
                .into_iter()
                .map(|l| finish_location(l, &conf))
                .collect();
            servers.push(Server {
                has_regex_name: s.names.iter().any(|n| matches!(n, ServerName::Regex(_))),
                listen: s.listen,
                names: s.names,
                primary_name,
                rewrites: s.rewrites,
                locations,
                named,
                client_header_timeout: sp
                    .client_header_timeout
                    .or(hp.client_header_timeout)
                    .unwrap_or(Duration::from_secs(60)),
                client_header_buffer_size: sp
                    .client_header_buffer_size
                    .or(hp.client_header_buffer_size)
                    .unwrap_or(1024),
                large_client_header_buffers: sp
                    .large_client_header_buffers
                    .or(hp.large_client_header_buffers)
                    .unwrap_or((4, 8 * 1024)),
                underscores_in_headers: sp.underscores_in_headers.or(hp.underscores_in_headers).unwrap_or(false),
                ignore_invalid_headers: sp.ignore_invalid_headers.or(hp.ignore_invalid_headers).unwrap_or(true),
                maps: maps.clone(),
                conf,
            });
        }
        Http {
            servers,
            upstreams: std::mem::take(&mut self.upstreams),
            listens: self.listens.iter().map(|e| e.listen.clone()).collect(),
            log_format_escape: std::mem::take(&mut self.log_escape),
            lua_package_path: self.lua_package_path.take(),
            lua_package_cpath: self.lua_package_cpath.take(),
            lua_code_cache: self.lua_code_cache.unwrap_or(true),
            lua_api_mode: http_conf.lua_api_mode,
            lua_regex_match_limit: self.lua_regex_match_limit.unwrap_or(0),
            lua_regex_cache_max_entries: self.lua_regex_cache_max_entries.unwrap_or(1024),
            lua_socket: self.lua_socket,
            resolver: http_conf.resolver.clone(),
            lua_max_pending_timers: self.lua_max_pending_timers.unwrap_or(1024),
            lua_max_running_timers: self.lua_max_running_timers.unwrap_or(256),
            lua_shared_dicts: std::mem::take(&mut self.lua_shared_dicts),
            lua_jit_log: self.lua_jit_log.take(),
            init_by_lua: self.init_by_lua.take(),
            init_worker_by_lua: self.init_worker_by_lua.take(),
            exit_worker_by_lua: self.exit_worker_by_lua.take(),
        }
    }
}

/// A directive's one non-negative number argument (nginx's
/// ngx_conf_set_num_slot: "invalid number" otherwise).
fn number<T: TryFrom<u64>>(d: &Directive) -> Result<T, ConfError> {
    atoi(&d.args[0]).and_then(|n| T::try_from(n).ok()).ok_or_else(|| slot_err(d, "invalid number"))
}

fn set_once<T>(d: &Directive, slot: &mut Option<T>, v: T) -> Result<(), ConfError> {
    if slot.is_some() {
        return Err(dup(d));
    }
    *slot = Some(v);
    Ok(())
}

/// A level's LocConf: its own settings over its parent's. Array directives
/// replace the parent's list when the level has any; try_files is not
/// inherited (nginx does not merge it).
fn merge(p: &Partial, parent: &LocConf) -> LocConf {
    let (root, alias) = match &p.root {
        Some((false, t)) => (t.clone(), None),
        Some((true, t)) => (parent.root.clone(), Some(t.clone())),
        None => (parent.root.clone(), parent.alias.clone()),
    };
    let access_log = if p.access_log_off {
        Vec::new()
    } else {
        p.access_log
            .clone()
            .unwrap_or_else(|| parent.access_log.clone())
    };
    let resolver_timeout = p.resolver_timeout.unwrap_or(parent.resolver_timeout);
    LocConf {
        root,
        alias,
        index: p.index.clone().unwrap_or_else(|| parent.index.clone()),
        try_files: p.try_files.clone(),
        add_header: p
            .add_header
            .clone()
            .unwrap_or_else(|| parent.add_header.clone()),
        error_page: p
            .error_page
            .clone()
            .unwrap_or_else(|| parent.error_page.clone()),
        default_type: p
            .default_type
            .clone()
            .unwrap_or_else(|| parent.default_type.clone()),
        types: match &p.types {
            Some(t) => Arc::new(t.clone()),
            None => parent.types.clone(),
        },
        keepalive_timeout: p.keepalive_timeout.unwrap_or(parent.keepalive_timeout),
        keepalive_requests: p.keepalive_requests.unwrap_or(parent.keepalive_requests),
        client_body_timeout: p.client_body_timeout.unwrap_or(parent.client_body_timeout),
        send_timeout: p.send_timeout.unwrap_or(parent.send_timeout),
        client_max_body_size: p
            .client_max_body_size
            .unwrap_or(parent.client_max_body_size),
        client_body_buffer_size: p.client_body_buffer_size.unwrap_or(parent.client_body_buffer_size),
        client_body_temp_path: p.client_body_temp_path.clone().unwrap_or_else(|| parent.client_body_temp_path.clone()),
        client_body_in_file_only: p.client_body_in_file_only.unwrap_or(parent.client_body_in_file_only),
        lua_need_request_body: p.lua_need_request_body.unwrap_or(parent.lua_need_request_body),
        lua_check_client_abort: p.lua_check_client_abort.unwrap_or(parent.lua_check_client_abort),
        lua_api_mode: p.lua_api_mode.unwrap_or(parent.lua_api_mode),
        server_tokens: p.server_tokens.unwrap_or(parent.server_tokens),
        access_log,
        log_formats: parent.log_formats.clone(),
        content_by_lua: p.content_by_lua.clone(),
        proxy_pass: p.proxy_pass.clone().map(Arc::new),
        proxy: Arc::new(p.proxy.merge(&parent.proxy)),
        rewrite_by_lua: p.rewrite_by_lua.clone().or_else(|| parent.rewrite_by_lua.clone()),
        access_by_lua: p.access_by_lua.clone().or_else(|| parent.access_by_lua.clone()),
        log_by_lua: p.log_by_lua.clone().or_else(|| parent.log_by_lua.clone()),
        header_filter_by_lua: p.header_filter_by_lua.clone().or_else(|| parent.header_filter_by_lua.clone()),
        body_filter_by_lua: p.body_filter_by_lua.clone().or_else(|| parent.body_filter_by_lua.clone()),
        resolver: match (&p.resolver, &parent.resolver) {
            (Some(r), _) => Some(Arc::new(ResolverConf { timeout: resolver_timeout, ..r.clone() })),
            (None, Some(r)) if r.timeout != resolver_timeout => {
                Some(Arc::new(ResolverConf { timeout: resolver_timeout, ..(**r).clone() }))
            }
            (None, r) => r.clone(),
        },
        resolver_timeout,
    }
}

fn finish_location(l: LocRaw, parent: &LocConf) -> Location {
    let conf = merge(&l.partial, parent);
    let children = l
        .children
        .into_iter()
        .map(|c| finish_location(c, &conf))
        .collect();
    Location {
        kind: l.kind,
        pattern: l.pattern,
        regex: l.regex,
        internal: l.internal,
        rewrites: l.rewrites,
        conf,
        children,
        origin: l.origin,
    }
}

// ---------------------------------------------------------------------------
// resolver

/// `resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off]`, checked
/// as nginx's `ngx_resolver_create` does (the timeout is merged later).
/// An address is IPv4 or IPv6 (bare or in brackets) with an optional
/// port, 53 by default; a host name is resolved now, as nginx does, into
/// all its addresses. No address at all is allowed, as in nginx: such a
/// resolver resolves nothing ("no resolver defined").
fn resolver(d: &Directive) -> Result<ResolverConf, ConfError> {
    let mut r = ResolverConf::new(Vec::new());
    for a in &d.args {
        let bad = || ConfError::at(format!("invalid parameter: {a}"), d);
        if let Some(v) = a.strip_prefix("valid=") {
            r.valid = Some(parse_time(v, true).ok_or_else(bad)?);
            continue;
        }
        if let Some((key, v)) = a.split_once('=') {
            let on = match v {
                "on" => true,
                "off" => false,
                _ if key == "ipv4" || key == "ipv6" => return Err(bad()),
                _ => return Err(ConfError::at(format!("invalid parameter \"{a}\""), d)),
            };
            match key {
                "ipv4" => r.ipv4 = on,
                "ipv6" => r.ipv6 = on,
                _ => return Err(ConfError::at(format!("invalid parameter \"{a}\""), d)),
            }
            continue;
        }
        let addrs = resolver_addr(a).map_err(|e| ConfError::at(format!("{e} in resolver \"{a}\""), d))?;
        for addr in addrs {
            if !r.servers.contains(&addr) {
                r.servers.push(addr);
            }
        }
    }
    if !r.ipv4 && !r.ipv6 {
        return Err(ConfError::at("\"ipv4\" and \"ipv6\" cannot both be \"off\"", d));
    }
    Ok(r)
}

/// One resolver address: `IP`, `IP:PORT`, `[IPV6]`, `[IPV6]:PORT`, a bare
/// IPv6 address, or `HOST[:PORT]` (resolved here); the error as
/// ngx_parse_url words it.
fn resolver_addr(s: &str) -> Result<Vec<SocketAddr>, &'static str> {
    let port_of = |p: &str| match atoi(p) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err("invalid port"),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("invalid host")?;
        let ip: Ipv6Addr = host.parse().map_err(|_| "invalid IPv6 address")?;
        let port = match after {
            "" => 53,
            _ => port_of(after.strip_prefix(':').ok_or("invalid host")?)?,
        };
        return Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 53)]);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, port_of(p)?),
        None => (s, 53),
    };
    if host.is_empty() {
        return Err("no host");
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]);
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|_| "host not found")?.collect();
    if addrs.is_empty() {
        return Err("host not found");
    }
    Ok(addrs)
}

// ---------------------------------------------------------------------------
// listen, server_name, location

/// `listen ADDR [options]` -> (Listen, socket options given).
fn parse_listen(d: &Directive) -> Result<(Listen, bool), ConfError> {
    let url = &d.args[0];
    let addr = parse_listen_addr(url).map_err(|e| {
        ConfError::at(
            match e {
                AddrErr::Unix => format!(
                    "unix domain sockets are not supported in \"listen\" directive: \"{url}\""
                ),
                AddrErr::Msg(m) => format!("{m} in \"{url}\" of the \"listen\" directive"),
            },
            d,
        )
    })?;
    let mut l = Listen {
        addr,
        default_server: false,
        reuseport: false,
        backlog: DEFAULT_BACKLOG,
    };
    let mut opts_set = false;
    for a in &d.args[1..] {
        match a.as_str() {
            "default_server" | "default" => l.default_server = true,
            "reuseport" => {
                l.reuseport = true;
                opts_set = true;
            }
            // Every distinct address gets its own socket anyway.
            "bind" => opts_set = true,
            _ => {
                if let Some(v) = a.strip_prefix("backlog=") {
                    match v.parse::<i32>() {
                        Ok(n) if n > 0 && v.bytes().all(|b| b.is_ascii_digit()) => l.backlog = n,
                        _ => return Err(ConfError::at(format!("invalid backlog \"{v}\""), d)),
                    }
                    opts_set = true;
                    continue;
                }
                const UNSUPPORTED: &[&str] = &[
                    "ssl",
                    "http2",
                    "http3",
                    "quic",
                    "spdy",
                    "proxy_protocol",
                    "deferred",
                    "ipv6only=",
                    "so_keepalive=",
                    "fastopen=",
                    "rcvbuf=",
                    "sndbuf=",
                    "setfib=",
                    "accept_filter=",
                ];
                let name = a.split('=').next().unwrap_or(a);
                let msg = if UNSUPPORTED.iter().any(|u| u.trim_end_matches('=') == name) {
                    format!("the \"{a}\" parameter of the \"listen\" directive is not supported")
                } else {
                    format!("invalid parameter \"{a}\"")
                };
                return Err(ConfError::at(msg, d));
            }
        }
    }
    Ok((l, opts_set))
}

enum AddrErr {
    Unix,
    Msg(&'static str),
}

/// `PORT`, `ADDR`, `ADDR:PORT`, `*:PORT`, `[IPV6]:PORT`, `[IPV6]`;
/// port 80 when not given.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, AddrErr> {
    if s.starts_with("unix:") {
        return Err(AddrErr::Unix);
    }
    let port_of = |p: &str| match atoi(p) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(AddrErr::Msg("invalid port")),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or(AddrErr::Msg("invalid IPv6 address"))?;
        let ip: Ipv6Addr = host
            .parse()
            .map_err(|_| AddrErr::Msg("invalid IPv6 address"))?;
        let port = match after {
            "" => 80,
            _ => port_of(
                after
                    .strip_prefix(':')
                    .ok_or(AddrErr::Msg("invalid host"))?,
            )?,
        };
        return Ok(SocketAddr::new(IpAddr::V6(ip), port));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_of(s)?,
        ));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, port_of(p)?),
        None => (s, 80),
    };
    let ip = match host {
        "" => return Err(AddrErr::Msg("no host")),
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => match host.parse::<Ipv4Addr>() {
            Ok(ip) => IpAddr::V4(ip),
            Err(_) => {
                // A host name: resolve it, preferring IPv4, as nginx binds
                // the first address it gets.
                let addrs: Vec<SocketAddr> = (host, port)
                    .to_socket_addrs()
                    .map_err(|_| AddrErr::Msg("host not found"))?
                    .collect();
                let a = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .ok_or(AddrErr::Msg("host not found"))?;
                a.ip()
            }
        },
    };
    Ok(SocketAddr::new(ip, port))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// One `server_name` argument.
fn server_name(
    d: &Directive,
    a: &str,
    names: &mut Vec<ServerName>,
    primary: &mut Option<String>,
) -> Result<(), ConfError> {
    if let Some(re) = a.strip_prefix('~') {
        names.push(ServerName::Regex(compile_regex(d, re, false)?));
        primary.get_or_insert_with(|| a.to_string());
        return Ok(());
    }
    let name = if a == "$hostname" {
        hostname()
    } else {
        a.to_ascii_lowercase()
    };
    primary.get_or_insert_with(|| name.clone());
    let invalid = || ConfError::at(format!("invalid server name or wildcard \"{a}\""), d);
    let stars = name.matches('*').count();
    if let Some(rest) = name.strip_prefix("*.") {
        if stars != 1 || rest.is_empty() {
            return Err(invalid());
        }
        names.push(ServerName::WildcardFront(name[1..].to_string()));
    } else if let Some(rest) = name.strip_suffix(".*") {
        if stars != 1 || rest.is_empty() {
            return Err(invalid());
        }
        names.push(ServerName::WildcardBack(name[..name.len() - 1].to_string()));
    } else if stars > 0 {
        return Err(invalid());
    } else if let Some(rest) = name.strip_prefix('.') {
        if rest.is_empty() {
            return Err(invalid());
        }
        names.push(ServerName::Exact(rest.to_string()));
        names.push(ServerName::WildcardFront(name.clone()));
    } else {
        names.push(ServerName::Exact(name));
    }
    Ok(())
}

/// `location [=|~|~*|^~] PATTERN` / `location @name` -> (kind, pattern, caseless).
fn location_kind(d: &Directive) -> Result<(LocKind, String, bool), ConfError> {
    if d.args.len() == 2 {
        let p = d.args[1].clone();
        return match d.args[0].as_str() {
            "=" => Ok((LocKind::Exact, p, false)),
            "^~" => Ok((LocKind::PrefixNoRegex, p, false)),
            "~" => Ok((LocKind::Regex, p, false)),
            "~*" => Ok((LocKind::Regex, p, true)),
            m => Err(ConfError::at(
                format!("invalid location modifier \"{m}\""),
                d,
            )),
        };
    }
    let a = d.args[0].as_str();
    // nginx also reads the modifier glued to the pattern: `location =/x`.
    Ok(if a.len() > 1 && a.starts_with('=') {
        (LocKind::Exact, a[1..].to_string(), false)
    } else if a.len() > 1 && a.starts_with("^~") {
        (LocKind::PrefixNoRegex, a[2..].to_string(), false)
    } else if let Some(re) = a.strip_prefix("~*") {
        (LocKind::Regex, re.to_string(), true)
    } else if a.len() > 1 && a.starts_with('~') {
        (LocKind::Regex, a[1..].to_string(), false)
    } else if a.starts_with('@') {
        (LocKind::Named, a.to_string(), false)
    } else {
        (LocKind::Prefix, a.to_string(), false)
    })
}

/// Two sibling exact locations, or two prefix (`/x`, `^~ /x`) ones, with the
/// same pattern.
fn check_duplicate_location(
    siblings: &[LocRaw],
    l: &LocRaw,
    d: &Directive,
) -> Result<(), ConfError> {
    let group = |k: LocKind| match k {
        LocKind::Exact => Some(0),
        LocKind::Prefix | LocKind::PrefixNoRegex => Some(1),
        _ => None,
    };
    let Some(g) = group(l.kind) else {
        return Ok(());
    };
    if siblings
        .iter()
        .any(|s| group(s.kind) == Some(g) && s.pattern == l.pattern)
    {
        return Err(ConfError::at(
            format!("duplicate location \"{}\"", l.pattern),
            d,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// error_page and the rewrite module

/// `error_page CODE... [=[RESPONSE]] URI`.
fn error_page(d: &Directive) -> Result<ErrorPage, ConfError> {
    let n = d.args.len();
    let (overwrite, uri_args) = match d.args[n - 2].strip_prefix('=') {
        Some("") => (Some(0), 2),
        Some(code) => match atoi(code) {
            Some(c) if c <= 999 => (Some(c as u16), 2),
            _ => {
                return Err(ConfError::at(
                    format!("invalid value \"{}\"", d.args[n - 2]),
                    d,
                ))
            }
        },
        None => (None, 1),
    };
    let mut codes = Vec::new();
    for a in &d.args[..n - uri_args] {
        let c = match atoi(a) {
            Some(c) if c != 499 => c,
            _ => return Err(ConfError::at(format!("invalid value \"{a}\""), d)),
        };
        if !(300..=599).contains(&c) {
            return Err(ConfError::at(
                format!("value \"{a}\" must be between 300 and 599"),
                d,
            ));
        }
        codes.push(c as u16);
    }
    Ok(ErrorPage {
        codes,
        overwrite,
        uri: tmpl(d, &d.args[n - 1])?,
    })
}

/// `set`, `rewrite`, `return` or `if` (whose body is read in `if_ctx`).
/// `notices`: where an ignored directive inside an `if` is noted.
fn rewrite_op(d: &Directive, if_ctx: u16, notices: &mut Vec<String>) -> Result<RewriteOp, ConfError> {
    match d.name.as_str() {
        "set" => {
            let v = &d.args[0];
            let name = v.strip_prefix('$').filter(|n| !n.is_empty());
            let Some(name) = name else {
                return Err(ConfError::at(format!("invalid variable name \"{v}\""), d));
            };
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ConfError::at(format!("invalid variable name \"{v}\""), d));
            }
            Ok(RewriteOp::Set {
                var: name.to_ascii_lowercase(),
                value: tmpl(d, &d.args[1])?,
            })
        }
        "rewrite" => {
            let regex = compile_regex(d, &d.args[0], false)?;
            let repl = &d.args[1];
            let mut flag = if is_redirect_url(repl) {
                RewriteFlag::Redirect
            } else {
                RewriteFlag::None
            };
            if let Some(f) = d.args.get(2) {
                let given = match f.as_str() {
                    "last" => RewriteFlag::Last,
                    "break" => RewriteFlag::Break,
                    "redirect" => RewriteFlag::Redirect,
                    "permanent" => RewriteFlag::Permanent,
                    _ => return Err(ConfError::at(format!("invalid parameter \"{f}\""), d)),
                };
                // A URL replacement always redirects (302 unless permanent).
                if flag != RewriteFlag::Redirect || given == RewriteFlag::Permanent {
                    flag = given;
                }
            }
            Ok(RewriteOp::Rewrite {
                regex,
                replacement: tmpl(d, repl)?,
                flag,
            })
        }
        "return" => {
            let a = &d.args[0];
            match atoi(a) {
                Some(code) => {
                    if code > 999 {
                        return Err(ConfError::at(format!("invalid return code \"{a}\""), d));
                    }
                    let body = d.args.get(1).map(|t| tmpl(d, t)).transpose()?;
                    Ok(RewriteOp::Return {
                        code: code as u16,
                        body,
                    })
                }
                None => {
                    if d.args.len() != 1 || !is_redirect_url(a) {
                        return Err(ConfError::at(format!("invalid return code \"{a}\""), d));
                    }
                    Ok(RewriteOp::Return {
                        code: 302,
                        body: Some(tmpl(d, a)?),
                    })
                }
            }
        }
        "if" => {
            let cond = if_cond(d)?;
            let mut ops = Vec::new();
            for c in d.block.as_deref().unwrap_or(&[]) {
                if !ignore(check(c, if_ctx)?, c, notices)? {
                    ops.push(rewrite_op(c, if_ctx, notices)?);
                }
            }
            Ok(RewriteOp::If { cond, ops })
        }
        other => unreachable!("not a rewrite directive: {other}"),
    }
}

/// The condition of `if (...)`, following `ngx_http_rewrite_if_condition`
/// on the lexer's words (`($a`, `=`, `b)` or `(`, `-f`, `$x`, `)`...).
fn if_cond(d: &Directive) -> Result<IfCond, ConfError> {
    let inval = |s: &str| ConfError::at(format!("invalid condition \"{s}\""), d);
    let mut v: Vec<String> = d.args.clone();
    if !v[0].starts_with('(') {
        return Err(inval(&v[0]));
    }
    let mut cur: isize = 0;
    if v[0].len() == 1 {
        cur = 1;
    } else {
        v[0].remove(0);
    }
    let mut last = v.len() as isize - 1;
    if !v[last as usize].ends_with(')') {
        return Err(inval(&v[last as usize]));
    }
    if v[last as usize].len() == 1 {
        last -= 1;
    } else {
        v[last as usize].pop();
    }
    if cur > last {
        return Err(inval(&d.args[d.args.len() - 1]));
    }
    let (cur, last) = (cur as usize, last as usize);
    let p = v[cur].as_str();
    if p.len() > 1 && p.starts_with('$') {
        if cur != last && cur + 2 != last {
            return Err(inval(p));
        }
        let lhs = tmpl(d, p)?;
        if cur == last {
            return Ok(IfCond::Var(lhs));
        }
        let op = v[cur + 1].as_str();
        let rhs = v[last].as_str();
        return match op {
            "=" | "!=" => Ok(IfCond::Eq {
                lhs,
                rhs: tmpl(d, rhs)?,
                negate: op == "!=",
            }),
            "~" | "~*" | "!~" | "!~*" => Ok(IfCond::Match {
                lhs,
                regex: compile_regex(d, rhs, op.ends_with('*'))?,
                negate: op.starts_with('!'),
            }),
            _ => Err(ConfError::at(
                format!("unexpected \"{op}\" in condition"),
                d,
            )),
        };
    }
    let b = p.as_bytes();
    if (b.len() == 2 && b[0] == b'-') || (b.len() == 3 && b[0] == b'!' && b[1] == b'-') {
        if cur + 1 != last {
            return Err(inval(p));
        }
        let op = b[b.len() - 1] as char;
        if !matches!(op, 'f' | 'd' | 'e' | 'x') {
            return Err(inval(p));
        }
        return Ok(IfCond::File {
            op,
            negate: b[0] == b'!',
            path: tmpl(d, &v[last])?,
        });
    }
    Err(inval(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FILE: &str = "/p/conf/nginx.conf";

    fn try_build(text: &str, globals: &str) -> Result<Config, ConfError> {
        let tree = parse::parse_str(text, FILE, Path::new("/p/conf"))?;
        let g = parse::parse_str(globals, parse::COMMAND_LINE, Path::new("/p/conf"))?;
        build(Path::new("/p"), Path::new(FILE), tree, g)
    }

    /// A whole config (an `events {}` is added in front).
    fn cfg(text: &str) -> Config {
        try_build(&format!("events {{}}\n{text}"), "").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error for a whole config (an `events {}` is added in front, so
    /// the text's line N is reported as N+1... avoided by starting with a newline).
    fn err(text: &str) -> String {
        match try_build(&format!("events {{}}{text}"), "") {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The only server of `http { <text> }`.
    fn srv(text: &str) -> Server {
        let mut c = cfg(&format!("http {{ server {{ {text} }} }}"));
        assert_eq!(c.http.servers.len(), 1);
        c.http.servers.remove(0)
    }

    /// The first location of the only server.
    fn loc(text: &str) -> Location {
        let mut s = srv(text);
        s.locations.remove(0)
    }

    fn at(line: usize) -> String {
        format!("in {FILE}:{line}")
    }

    fn sources(ts: &[Template]) -> Vec<&str> {
        ts.iter().map(|t| t.source()).collect()
    }

    #[test]
    fn defaults() {
        let c = cfg("");
        assert_eq!(c.prefix, Path::new("/p"));
        assert_eq!(c.conf_path, Path::new(FILE));
        assert_eq!(c.worker_processes, 1);
        assert!(c.master_process);
        assert!(c.daemon);
        assert_eq!(c.error_log.path, Path::new("/p/logs/error.log"));
        assert_eq!(c.error_log.level, Level::Error);
        assert_eq!(c.pid, Path::new("/p/logs/nginx.pid"));
        assert_eq!(c.worker_connections, 512);
        assert!(c.http.servers.is_empty());
        assert!(c.http.listens.is_empty());
    }

    #[test]
    fn http_defaults() {
        let s = srv("");
        let lc = &s.conf;
        assert_eq!(lc.root.source(), "/p/html");
        assert!(lc.alias.is_none());
        assert_eq!(lc.index, vec!["index.html"]);
        assert!(lc.try_files.is_none());
        assert_eq!(lc.default_type, "text/plain");
        assert_eq!(lc.types.get("html").map(String::as_str), Some("text/html"));
        assert_eq!(lc.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(lc.keepalive_requests, 1000);
        assert_eq!(lc.client_body_timeout, Duration::from_secs(60));
        assert_eq!(lc.send_timeout, Duration::from_secs(60));
        assert_eq!(lc.client_max_body_size, 1 << 20);
        assert!(lc.server_tokens);
        assert_eq!(lc.access_log.len(), 1);
        assert_eq!(lc.access_log[0].path, Path::new("/p/logs/access.log"));
        assert_eq!(lc.access_log[0].format, "combined");
        assert_eq!(lc.log_formats["combined"].source(), COMBINED_FORMAT);
        assert_eq!(s.client_header_timeout, Duration::from_secs(60));
        assert_eq!(s.client_header_buffer_size, 1024);
        assert_eq!(s.large_client_header_buffers, (4, 8192));
        assert_eq!(s.primary_name, "");
        assert!(matches!(&s.names[..], [ServerName::Exact(n)] if n.is_empty()));
        let default = SocketAddr::from(([0, 0, 0, 0], 80));
        assert_eq!(
            s.listen,
            vec![Listen {
                addr: default,
                default_server: false,
                reuseport: false,
                backlog: 511
            }]
        );
    }

    #[test]
    fn main_directives() {
        let c = try_build(
            "worker_processes 4;\nmaster_process off;\ndaemon off;\nerror_log logs/x.log warn;\npid /run/h.pid;\n\
             events { worker_connections 1024; accept_mutex off; multi_accept on; use epoll; }",
            "",
        )
        .unwrap();
        assert_eq!(c.worker_processes, 4);
        assert!(!c.master_process);
        assert!(!c.daemon);
        assert_eq!(c.error_log.path, Path::new("/p/logs/x.log"));
        assert_eq!(c.error_log.level, Level::Warn);
        assert_eq!(c.pid, Path::new("/run/h.pid"));
        assert_eq!(c.worker_connections, 1024);

        let c = cfg("worker_processes auto; error_log stderr;");
        assert_eq!(
            c.worker_processes,
            std::thread::available_parallelism().unwrap().get()
        );
        assert_eq!(c.error_log.path, Path::new("stderr"));
        assert_eq!(c.error_log.level, Level::Error);
    }

    #[test]
    fn globals_apply_first() {
        let c = try_build(
            "events {}",
            "daemon off; master_process off; error_log stderr info;",
        )
        .unwrap();
        assert!(!c.daemon && !c.master_process);
        assert_eq!(c.error_log.path, Path::new("stderr"));
        // The -g error_log wins over the file's.
        let c = try_build("error_log logs/e.log;\nevents {}", "error_log stderr;").unwrap();
        assert_eq!(c.error_log.path, Path::new("stderr"));
        let e = try_build("events {}\ndaemon on;", "daemon off;").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("\"daemon\" directive is duplicate {}", at(2))
        );
        let e = try_build("events {}", "listen 80;").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"listen\" directive is not allowed here in command line"
        );
        let e = try_build("events {}", "bogus 1;").unwrap_err();
        assert_eq!(e.to_string(), "unknown directive \"bogus\" in command line");
    }

    #[test]
    fn generic_errors() {
        assert_eq!(
            err("\nfoo bar;"),
            format!("unknown directive \"foo\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { listen 80; }"),
            format!("\"listen\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            err("\nlisten 80;"),
            format!("\"listen\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            err("\nhttp {\nserver { location / { server_name x; } }\n}"),
            format!("\"server_name\" directive is not allowed here {}", at(3))
        );
        assert_eq!(
            err("\nhttp { server; }"),
            format!("directive \"server\" has no opening \"{{\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { server { listen 80 { } } }"),
            format!("directive \"listen\" is not terminated by \";\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { server { listen; } }"),
            format!(
                "invalid number of arguments in \"listen\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp x { }"),
            format!(
                "invalid number of arguments in \"http\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            err("\ndaemon;"),
            format!(
                "invalid number of arguments in \"daemon\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nevents {}"),
            format!("\"events\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            err("\nhttp {}\nhttp {}"),
            format!("\"http\" directive is duplicate {}", at(3))
        );
        let e = try_build("daemon off;", "").unwrap_err().to_string();
        assert_eq!(e, "no \"events\" section in configuration");
    }

    #[test]
    fn value_errors() {
        assert_eq!(
            err("\nworker_processes x;"),
            format!("\"worker_processes\" directive invalid value {}", at(2))
        );
        assert_eq!(
            err("\nworker_processes 0;"),
            format!("\"worker_processes\" directive invalid value {}", at(2))
        );
        assert_eq!(
            err("\nworker_processes 1;worker_processes 2;"),
            format!("\"worker_processes\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            err("\ndaemon yes;"),
            format!(
                "invalid value \"yes\" in \"daemon\" directive, it must be \"on\" or \"off\" {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nerror_log x loud;"),
            format!("invalid log level \"loud\" {}", at(2))
        );
        assert_eq!(
            err("\npid a;pid b;"),
            format!("\"pid\" directive is duplicate {}", at(2))
        );
        assert!(err("\nevents { worker_connections lots; }")
            .starts_with("\"events\" directive is duplicate"));
        let e = try_build("events { worker_connections lots; }", "")
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("invalid number \"lots\" {}", at(1)));
        let e = try_build("events { use kqueue; }", "")
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("invalid event type \"kqueue\" {}", at(1)));
        assert_eq!(
            err("\nhttp { keepalive_timeout 5x; }"),
            format!("\"keepalive_timeout\" directive invalid value {}", at(2))
        );
        assert_eq!(
            err("\nhttp { keepalive_timeout 5 10ms; }"),
            format!("\"keepalive_timeout\" directive invalid value {}", at(2))
        );
        assert_eq!(
            err("\nhttp { keepalive_requests -1; }"),
            format!("\"keepalive_requests\" directive invalid number {}", at(2))
        );
        assert_eq!(
            err("\nhttp { client_max_body_size 1t; }"),
            format!("\"client_max_body_size\" directive invalid value {}", at(2))
        );
        assert_eq!(
            err("\nhttp { large_client_header_buffers 0 8k; }"),
            format!(
                "\"large_client_header_buffers\" directive invalid value {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp { send_timeout 1s; send_timeout 2s; }"),
            format!("\"send_timeout\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            err("\nhttp { server_tokens build; }"),
            format!("invalid value \"build\" in \"server_tokens\" directive, it must be \"on\" or \"off\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { types { text/x x { } } }"),
            format!("unexpected \"{{\" {}", at(2))
        );
    }

    #[test]
    fn time_and_size() {
        let ms = |s: &str| parse_time(s, false).map(|d| d.as_millis() as u64);
        assert_eq!(ms("75"), Some(75_000));
        assert_eq!(ms("75s"), Some(75_000));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("1m30s"), Some(90_000));
        assert_eq!(ms("1m 30s"), Some(90_000));
        assert_eq!(ms("1m30"), Some(90_000));
        assert_eq!(ms("2h"), Some(7_200_000));
        assert_eq!(ms("1d"), Some(86_400_000));
        assert_eq!(ms("1w"), Some(7 * 86_400_000));
        assert_eq!(ms("1M"), Some(30 * 86_400_000));
        assert_eq!(ms("1y"), Some(365 * 86_400_000));
        assert_eq!(ms("1s500ms"), Some(1500));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms(""), None);
        assert_eq!(ms("s"), None);
        assert_eq!(ms("30s1m"), None);
        assert_eq!(ms("1m1m"), None);
        assert_eq!(ms("5x"), None);
        assert_eq!(ms("-5"), None);
        assert_eq!(parse_time("10ms", true), None);
        assert_eq!(parse_time("10", true), Some(Duration::from_secs(10)));

        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("8k"), Some(8192));
        assert_eq!(parse_size("8K"), Some(8192));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("1.5m"), None);
    }

    #[test]
    fn http_settings() {
        let s = srv(
            "keepalive_timeout 10s 5; keepalive_requests 7; client_header_timeout 3s; client_body_timeout 4s; \
             send_timeout 500ms; client_max_body_size 0; client_header_buffer_size 2k; \
             large_client_header_buffers 8 16k; server_tokens off; default_type application/octet-stream;",
        );
        assert_eq!(s.conf.keepalive_timeout, Duration::from_secs(10));
        assert_eq!(s.conf.keepalive_requests, 7);
        assert_eq!(s.client_header_timeout, Duration::from_secs(3));
        assert_eq!(s.conf.client_body_timeout, Duration::from_secs(4));
        assert_eq!(s.conf.send_timeout, Duration::from_millis(500));
        assert_eq!(s.conf.client_max_body_size, 0);
        assert_eq!(s.client_header_buffer_size, 2048);
        assert_eq!(s.large_client_header_buffers, (8, 16384));
        assert!(!s.conf.server_tokens);
        assert_eq!(s.conf.default_type, "application/octet-stream");
    }

    #[test]
    fn resolver_forms() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let l = loc("location / { resolver 127.0.0.1 10.0.0.2:5353 [::1] [2001:db8::1]:54 ::2 valid=30s ipv6=off; }");
        let r = l.conf.resolver.as_deref().expect("resolver");
        assert_eq!(
            r.servers,
            vec![sa("127.0.0.1:53"), sa("10.0.0.2:5353"), sa("[::1]:53"), sa("[2001:db8::1]:54"), sa("[::2]:53")]
        );
        assert_eq!(r.valid, Some(Duration::from_secs(30)));
        assert!(r.ipv4 && !r.ipv6);
        assert_eq!(r.timeout, Duration::from_secs(30));
        let l = loc("location / { resolver 127.0.0.1 ipv4=off; resolver_timeout 5s; }");
        let r = l.conf.resolver.as_deref().unwrap();
        assert!(!r.ipv4 && r.ipv6);
        assert_eq!(r.valid, None);
        assert_eq!(r.timeout, Duration::from_secs(5));
        // A host name is resolved when the config is read, as nginx does.
        let l = loc("location / { resolver localhost:5300; }");
        let r = l.conf.resolver.as_deref().unwrap();
        assert!(r.servers.contains(&sa("127.0.0.1:5300")), "{:?}", r.servers);
        // No resolver by default.
        let s = srv("");
        assert!(s.conf.resolver.is_none());
        assert_eq!(s.conf.resolver_timeout, Duration::from_secs(30));
    }

    #[test]
    fn resolver_inheritance() {
        let c = cfg("http {\n\
               resolver 10.0.0.1;\n\
               server {\n\
                 resolver_timeout 3s;\n\
                 location /a { }\n\
                 location /b { resolver 10.0.0.2 valid=1m; }\n\
                 location /c { resolver_timeout 1s; }\n\
               }\n\
               server { resolver 10.0.0.3; location / { } }\n\
               resolver_timeout 7s;\n\
             }");
        let s0 = &c.http.servers[0];
        let server = |lc: &LocConf| lc.resolver.as_ref().map(|r| (r.servers[0].to_string(), r.timeout));
        assert_eq!(server(&s0.conf), Some(("10.0.0.1:53".to_string(), Duration::from_secs(3))));
        assert_eq!(server(&s0.locations[0].conf), Some(("10.0.0.1:53".to_string(), Duration::from_secs(3))));
        assert_eq!(server(&s0.locations[1].conf), Some(("10.0.0.2:53".to_string(), Duration::from_secs(3))));
        assert_eq!(s0.locations[1].conf.resolver.as_ref().unwrap().valid, Some(Duration::from_secs(60)));
        assert_eq!(server(&s0.locations[2].conf), Some(("10.0.0.1:53".to_string(), Duration::from_secs(1))));
        // The http-level timeout, written after the servers, still applies.
        let s1 = &c.http.servers[1];
        assert_eq!(server(&s1.locations[0].conf), Some(("10.0.0.3:53".to_string(), Duration::from_secs(7))));
    }

    #[test]
    fn resolver_errors() {
        let e = |body: &str| err(&format!("\nhttp {{\nserver {{\n{body}\n}}\n}}"));
        assert_eq!(e("resolver 127.0.0.1 foo=bar;"), format!("invalid parameter \"foo=bar\" {}", at(4)));
        assert_eq!(e("resolver 127.0.0.1 valid=abc;"), format!("invalid parameter: valid=abc {}", at(4)));
        assert_eq!(e("resolver 127.0.0.1 ipv6=maybe;"), format!("invalid parameter: ipv6=maybe {}", at(4)));
        assert_eq!(
            e("resolver 127.0.0.1 ipv4=off ipv6=off;"),
            format!("\"ipv4\" and \"ipv6\" cannot both be \"off\" {}", at(4))
        );
        assert_eq!(e("resolver 127.0.0.1:99999;"), format!("invalid port in resolver \"127.0.0.1:99999\" {}", at(4)));
        assert_eq!(e("resolver [::1;"), format!("invalid host in resolver \"[::1\" {}", at(4)));
        assert_eq!(e("resolver [zz]:53;"), format!("invalid IPv6 address in resolver \"[zz]:53\" {}", at(4)));
        assert_eq!(e("resolver :53;"), format!("no host in resolver \":53\" {}", at(4)));
        assert_eq!(e("resolver 127.0.0.1;\nresolver 127.0.0.2;"), format!("\"resolver\" directive is duplicate {}", at(5)));
        assert_eq!(e("resolver_timeout 5x;"), format!("\"resolver_timeout\" directive invalid value {}", at(4)));
        assert_eq!(e("resolver_timeout 1s;\nresolver_timeout 2s;"), format!("\"resolver_timeout\" directive is duplicate {}", at(5)));
        assert_eq!(e("resolver;"), format!("invalid number of arguments in \"resolver\" directive {}", at(4)));
        assert_eq!(
            err("\nresolver 127.0.0.1;"),
            format!("\"resolver\" directive is not allowed here {}", at(2))
        );
    }

    #[test]
    fn inheritance() {
        let c = cfg("http {\n\
               add_header X-Http 1;\n\
               server {\n\
                 listen 8080;\n\
                 client_header_buffer_size 4k;\n\
                 location / {\n\
                   keepalive_timeout 5s;\n\
                   location /a { add_header X-A 1 always; add_header X-B $uri; }\n\
                 }\n\
                 location /b { access_log off; error_page 404 /404.html; }\n\
               }\n\
               server { listen 8081; keepalive_timeout 20s; error_page 500 /500.html; }\n\
               keepalive_timeout 30s;\n\
               client_header_timeout 7s;\n\
             }");
        let s0 = &c.http.servers[0];
        let s1 = &c.http.servers[1];
        // http-level settings written after the servers still apply.
        assert_eq!(s0.conf.keepalive_timeout, Duration::from_secs(30));
        assert_eq!(s0.client_header_timeout, Duration::from_secs(7));
        assert_eq!(s0.client_header_buffer_size, 4096);
        assert_eq!(s1.client_header_buffer_size, 1024);
        assert_eq!(s1.conf.keepalive_timeout, Duration::from_secs(20));
        let root = &s0.locations[0];
        assert_eq!(root.conf.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(root.conf.add_header.len(), 1);
        assert_eq!(root.conf.add_header[0].name, "X-Http");
        let a = &root.children[0];
        assert_eq!(a.conf.keepalive_timeout, Duration::from_secs(5));
        // Arrays replace, not extend.
        let names: Vec<&str> = a.conf.add_header.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["X-A", "X-B"]);
        assert!(a.conf.add_header[0].always && !a.conf.add_header[1].always);
        assert_eq!(a.conf.add_header[1].value.source(), "$uri");
        let b = &s0.locations[1];
        assert!(b.conf.access_log.is_empty());
        assert_eq!(b.conf.error_page.len(), 1);
        assert_eq!(b.conf.keepalive_timeout, Duration::from_secs(30));
        assert_eq!(s1.conf.error_page[0].codes, vec![500]);
        assert_eq!(s1.conf.add_header[0].name, "X-Http");
    }

    #[test]
    fn types_and_default_type() {
        let s = srv("types { text/x-foo foo FOO2; } location / { } location /d { types {} default_type a/b; }");
        assert_eq!(s.conf.types.len(), 2);
        assert_eq!(s.conf.types["foo"], "text/x-foo");
        assert_eq!(s.conf.types["foo2"], "text/x-foo");
        assert!(s.conf.types.get("html").is_none());
        assert_eq!(s.locations[0].conf.types.len(), 2);
        assert!(s.locations[1].conf.types.is_empty());
        assert_eq!(s.locations[1].conf.default_type, "a/b");
        let c = cfg("http { types { text/a a; } types { text/b b; } server {} }");
        assert_eq!(c.http.servers[0].conf.types.len(), 2);
    }

    #[test]
    fn log_formats_and_access_log() {
        let c = cfg(
            "http {\n log_format main '$remote_addr ' \"$status\";\n log_format j escape=json '{\"a\":\"$uri\"}';\n\
             access_log logs/main.log main;\n access_log /var/log/j.log j;\n server {}\n}",
        );
        let s = &c.http.servers[0];
        assert_eq!(s.conf.log_formats["main"].source(), "$remote_addr $status");
        assert_eq!(s.conf.log_formats["j"].source(), "{\"a\":\"$uri\"}");
        assert_eq!(c.http.log_format_escape["j"], Escape::Json);
        assert_eq!(c.http.log_format_escape["main"], Escape::Default);
        assert_eq!(c.http.log_format_escape["combined"], Escape::Default);
        let paths: Vec<_> = s
            .conf
            .access_log
            .iter()
            .map(|a| (a.path.clone(), a.format.clone()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (PathBuf::from("/p/logs/main.log"), "main".to_string()),
                (PathBuf::from("/var/log/j.log"), "j".to_string())
            ]
        );
        assert_eq!(
            err("\nhttp { log_format combined '$uri'; }"),
            format!("duplicate \"log_format\" name \"combined\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { log_format a x; log_format a y; }"),
            format!("duplicate \"log_format\" name \"a\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { log_format a escape=xml x; }"),
            format!("unknown log format escaping \"xml\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { access_log x.log nope; }"),
            format!("unknown log format \"nope\" {}", at(2))
        );
        // Order matters, as in nginx: the format must be defined first.
        assert_eq!(
            err("\nhttp { access_log x.log late; log_format late x; }"),
            format!("unknown log format \"late\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { access_log off x; }"),
            format!("invalid parameter \"x\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { access_log x.log combined buffer=32k; }"),
            format!(
                "parameter \"buffer=32k\" of the \"access_log\" directive is not supported {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp { log_format a; }"),
            format!(
                "invalid number of arguments in \"log_format\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp { server { log_format a b; } }"),
            format!("\"log_format\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            err("\nhttp { log_format a '$'; }"),
            format!("invalid variable name in \"$\" {}", at(2))
        );
    }

    #[test]
    fn listen_forms() {
        let l = |s: &str| parse_listen_addr(s).ok();
        assert_eq!(l("8080"), Some(SocketAddr::from(([0, 0, 0, 0], 8080))));
        assert_eq!(l("127.0.0.1"), Some(SocketAddr::from(([127, 0, 0, 1], 80))));
        assert_eq!(
            l("127.0.0.1:8080"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(
            l("localhost:81"),
            Some(SocketAddr::from(([127, 0, 0, 1], 81)))
        );
        assert_eq!(l("localhost"), Some(SocketAddr::from(([127, 0, 0, 1], 80))));
        assert_eq!(l("*:8000"), Some(SocketAddr::from(([0, 0, 0, 0], 8000))));
        assert_eq!(l("*"), Some(SocketAddr::from(([0, 0, 0, 0], 80))));
        assert_eq!(l("[::1]:8080"), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(l("[::]"), Some("[::]:80".parse().unwrap()));
        assert_eq!(l("0"), None);
        assert_eq!(l("70000"), None);
        assert_eq!(l("1.2.3.4:x"), None);
        assert_eq!(l("[::1"), None);
        assert_eq!(l("[zz]:80"), None);
    }

    #[test]
    fn listen_options_and_errors() {
        let s = srv("listen 127.0.0.1:8080 default_server reuseport backlog=128; listen [::1]:8080 default;");
        assert_eq!(
            s.listen,
            vec![
                Listen {
                    addr: "127.0.0.1:8080".parse().unwrap(),
                    default_server: true,
                    reuseport: true,
                    backlog: 128
                },
                Listen {
                    addr: "[::1]:8080".parse().unwrap(),
                    default_server: true,
                    reuseport: false,
                    backlog: 511
                },
            ]
        );
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("listen unix:/tmp/s.sock;"),
            format!("unix domain sockets are not supported in \"listen\" directive: \"unix:/tmp/s.sock\" {}", at(2))
        );
        assert_eq!(
            e("listen 99999;"),
            format!(
                "invalid port in \"99999\" of the \"listen\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("listen 1.2.3.4:0;"),
            format!(
                "invalid port in \"1.2.3.4:0\" of the \"listen\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("listen [::1:80;"),
            format!(
                "invalid IPv6 address in \"[::1:80\" of the \"listen\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("listen 80 backlog=x;"),
            format!("invalid backlog \"x\" {}", at(2))
        );
        assert_eq!(
            e("listen 80 backlog=0;"),
            format!("invalid backlog \"0\" {}", at(2))
        );
        assert_eq!(
            e("listen 80 foo;"),
            format!("invalid parameter \"foo\" {}", at(2))
        );
        assert_eq!(
            e("listen 443 ssl;"),
            format!(
                "the \"ssl\" parameter of the \"listen\" directive is not supported {}",
                at(2)
            )
        );
        assert_eq!(
            e("listen 80 ipv6only=on;"),
            format!(
                "the \"ipv6only=on\" parameter of the \"listen\" directive is not supported {}",
                at(2)
            )
        );
        assert_eq!(
            e("listen 80; listen *:80;"),
            format!("a duplicate listen 0.0.0.0:80 {}", at(2))
        );
    }

    #[test]
    fn listens_across_servers() {
        let c = cfg(
            "http {\n server { listen 127.0.0.1:8080; }\n server { listen 127.0.0.1:8080 default_server backlog=64; listen 8081; }\n\
             server { }\n server { listen 80; }\n}",
        );
        let h = &c.http;
        assert_eq!(
            h.listens,
            vec![
                Listen {
                    addr: "127.0.0.1:8080".parse().unwrap(),
                    default_server: true,
                    reuseport: false,
                    backlog: 64
                },
                Listen {
                    addr: "0.0.0.0:8081".parse().unwrap(),
                    default_server: false,
                    reuseport: false,
                    backlog: 511
                },
                Listen {
                    addr: "0.0.0.0:80".parse().unwrap(),
                    default_server: false,
                    reuseport: false,
                    backlog: 511
                },
            ]
        );
        assert!(!h.servers[0].listen[0].default_server);
        assert!(h.servers[1].listen[0].default_server);
        assert_eq!(
            err("\nhttp {\nserver { listen 127.0.0.1:8080 default_server; }\nserver { listen 127.0.0.1:8080 default_server; }\n}"),
            format!("a duplicate default server for 127.0.0.1:8080 {}", at(4))
        );
        assert_eq!(
            err(
                "\nhttp {\nserver { listen 8080 reuseport; }\nserver { listen 8080 backlog=5; }\n}"
            ),
            format!("duplicate listen options for 0.0.0.0:8080 {}", at(4))
        );
    }

    #[test]
    fn server_names() {
        let s = srv(
            r#"server_name Example.COM *.example.org .example.net www.example.* ~^(?<sub>\w+)\.ex\.io$ "" _;"#,
        );
        assert_eq!(s.primary_name, "example.com");
        let kinds: Vec<String> = s
            .names
            .iter()
            .map(|n| match n {
                ServerName::Exact(s) => format!("={s}"),
                ServerName::WildcardFront(s) => format!("*{s}"),
                ServerName::WildcardBack(s) => format!("{s}*"),
                ServerName::Regex(r) => format!("~{}", r.as_str()),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "=example.com",
                "*.example.org",
                "=example.net",
                "*.example.net",
                "www.example.*",
                r"~^(?<sub>\w+)\.ex\.io$",
                "=",
                "=_",
            ]
        );
        let re = match &s.names[5] {
            ServerName::Regex(r) => r,
            _ => unreachable!(),
        };
        assert_eq!(&re.captures("abc.ex.io").unwrap()["sub"], "abc");
        let e = |s: &str| err(&format!("\nhttp {{ server {{ server_name {s}; }} }}"));
        assert_eq!(
            e("w*w.example.com"),
            format!(
                "invalid server name or wildcard \"w*w.example.com\" {}",
                at(2)
            )
        );
        assert_eq!(
            e("*.a.*"),
            format!("invalid server name or wildcard \"*.a.*\" {}", at(2))
        );
        assert_eq!(
            e("*"),
            format!("invalid server name or wildcard \"*\" {}", at(2))
        );
        assert_eq!(
            e("~(x"),
            format!("invalid regex \"(x\": unclosed group {}", at(2))
        );
        let s = srv("server_name $hostname;");
        assert!(!s.primary_name.is_empty() && s.primary_name != "$hostname");
    }

    #[test]
    fn location_kinds() {
        let s = srv(
            "location = /exact { } location ^~ /static/ { } location /pre { } location ~ \\.php$ { } \
             location ~* \\.JPG$ { } location @fallback { return 200; } location =/glued { } location ~*\\.GIF$ { }",
        );
        let k: Vec<(LocKind, &str)> = s
            .locations
            .iter()
            .map(|l| (l.kind, l.pattern.as_str()))
            .collect();
        assert_eq!(
            k,
            vec![
                (LocKind::Exact, "/exact"),
                (LocKind::PrefixNoRegex, "/static/"),
                (LocKind::Prefix, "/pre"),
                (LocKind::Regex, r"\.php$"),
                (LocKind::Regex, r"\.JPG$"),
                (LocKind::Exact, "/glued"),
                (LocKind::Regex, r"\.GIF$"),
            ]
        );
        assert!(s.locations[3].regex.as_ref().unwrap().is_match("/a.php"));
        assert!(!s.locations[3].regex.as_ref().unwrap().is_match("/a.PHP"));
        assert!(s.locations[4].regex.as_ref().unwrap().is_match("/a.jpg"));
        assert!(s.locations[6].regex.as_ref().unwrap().is_match("/a.gif"));
        let named = &s.named["@fallback"];
        assert_eq!(named.kind, LocKind::Named);
        assert!(named.internal);
        assert_eq!(named.rewrites.len(), 1);
        assert!(!s.locations[0].internal);
        assert_eq!(s.locations[0].origin, format!("{FILE}:2"));
        let l = loc("location /i { internal; }");
        assert!(l.internal);
    }

    #[test]
    fn nested_locations() {
        let l = loc("location /a/ { location /a/b/ { location ~ x { } } location = /a/c { } }");
        assert_eq!(l.children.len(), 2);
        assert_eq!(l.children[0].children[0].kind, LocKind::Regex);
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("location = /y { location /x { } }"),
            format!(
                "location \"/x\" cannot be inside the exact location \"/y\" {}",
                at(2)
            )
        );
        assert_eq!(
            e("location @n { location /x { } }"),
            format!(
                "location \"/x\" cannot be inside the named location \"@n\" {}",
                at(2)
            )
        );
        assert_eq!(
            e("location / { location @n { } }"),
            format!(
                "named location \"@n\" can be on the server level only {}",
                at(2)
            )
        );
        assert_eq!(
            e("location /a { location /b { } }"),
            format!("location \"/b\" is outside location \"/a\" {}", at(2))
        );
        assert_eq!(
            e("location /a { } location /a { }"),
            format!("duplicate location \"/a\" {}", at(2))
        );
        assert_eq!(
            e("location /a { } location ^~ /a { }"),
            format!("duplicate location \"/a\" {}", at(2))
        );
        assert_eq!(
            e("location @a { } location @a { }"),
            format!("duplicate location \"@a\" {}", at(2))
        );
        assert_eq!(
            e("location ~ (x { }"),
            format!("invalid regex \"(x\": unclosed group {}", at(2))
        );
        assert_eq!(
            e("location ! /x { }"),
            format!("invalid location modifier \"!\" {}", at(2))
        );
        assert_eq!(
            e("location { }"),
            format!(
                "invalid number of arguments in \"location\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("location /x;"),
            format!("directive \"location\" has no opening \"{{\" {}", at(2))
        );
        assert_eq!(
            e("internal;"),
            format!("\"internal\" directive is not allowed here {}", at(2))
        );
        // Exact and prefix with the same name, and regexes, may repeat.
        let s = srv("location = /a { } location /a { } location ~ a { } location ~ a { }");
        assert_eq!(s.locations.len(), 4);
    }

    #[test]
    fn root_alias_index_try_files() {
        let s = srv(
            "root www/; index a.html b.html; try_files $uri =404;\n\
             location /x { alias /data/x/; } location /y { root /abs/; location /y/z { } } location /v { root $doc; }",
        );
        assert_eq!(s.conf.root.source(), "/p/www");
        assert_eq!(s.conf.index, vec!["a.html", "b.html"]);
        assert_eq!(
            sources(s.conf.try_files.as_ref().unwrap()),
            vec!["$uri", "=404"]
        );
        let x = &s.locations[0];
        assert_eq!(x.conf.alias.as_ref().unwrap().source(), "/data/x/");
        // try_files is not inherited.
        assert!(x.conf.try_files.is_none());
        assert_eq!(x.conf.index, vec!["a.html", "b.html"]);
        let y = &s.locations[1];
        assert_eq!(y.conf.root.source(), "/abs");
        assert!(y.conf.alias.is_none());
        assert_eq!(y.children[0].conf.root.source(), "/abs");
        assert_eq!(s.locations[2].conf.root.source(), "$doc");
        let l = loc("location / { index a; index b /c; }");
        assert_eq!(l.conf.index, vec!["a", "b", "/c"]);

        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("root a; root b;"),
            format!("\"root\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            e("location / { root a; alias b; }"),
            format!(
                "\"alias\" directive is duplicate, \"root\" directive was specified earlier {}",
                at(2)
            )
        );
        assert_eq!(
            e("location / { alias a; root b; }"),
            format!(
                "\"root\" directive is duplicate, \"alias\" directive was specified earlier {}",
                at(2)
            )
        );
        assert_eq!(
            e("location / { alias a; alias b; }"),
            format!("\"alias\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            e("alias /x;"),
            format!("\"alias\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            e("try_files $uri;"),
            format!(
                "invalid number of arguments in \"try_files\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("try_files a b; try_files c d;"),
            format!("\"try_files\" directive is duplicate {}", at(2))
        );
        assert_eq!(
            e("index \"\";"),
            format!("index \"\" in \"index\" directive is invalid {}", at(2))
        );
        assert_eq!(
            e("index /a b;"),
            format!(
                "only the last index in \"index\" directive should be absolute {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp { try_files a b; }"),
            format!("\"try_files\" directive is not allowed here {}", at(2))
        );
    }

    #[test]
    fn error_pages() {
        let s = srv("error_page 404 /404.html; error_page 500 502 503 =200 /50x.html; error_page 403 = @fb; error_page 401 =302 http://x/;");
        let ep = &s.conf.error_page;
        assert_eq!(ep.len(), 4);
        assert_eq!(
            (ep[0].codes.clone(), ep[0].overwrite, ep[0].uri.source()),
            (vec![404], None, "/404.html")
        );
        assert_eq!(
            (ep[1].codes.clone(), ep[1].overwrite, ep[1].uri.source()),
            (vec![500, 502, 503], Some(200), "/50x.html")
        );
        assert_eq!(
            (ep[2].codes.clone(), ep[2].overwrite, ep[2].uri.source()),
            (vec![403], Some(0), "@fb")
        );
        assert_eq!(ep[3].overwrite, Some(302));
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("error_page 200 /x;"),
            format!("value \"200\" must be between 300 and 599 {}", at(2))
        );
        assert_eq!(
            e("error_page abc /x;"),
            format!("invalid value \"abc\" {}", at(2))
        );
        assert_eq!(
            e("error_page 499 /x;"),
            format!("invalid value \"499\" {}", at(2))
        );
        assert_eq!(
            e("error_page 404 =x /x;"),
            format!("invalid value \"=x\" {}", at(2))
        );
        assert_eq!(
            e("error_page 404;"),
            format!(
                "invalid number of arguments in \"error_page\" directive {}",
                at(2)
            )
        );
    }

    #[test]
    fn add_header_errors() {
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("add_header X 1 sometimes;"),
            format!("invalid parameter \"sometimes\" {}", at(2))
        );
        assert_eq!(
            e("add_header X;"),
            format!(
                "invalid number of arguments in \"add_header\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            e("add_header X $;"),
            format!("invalid variable name in \"$\" {}", at(2))
        );
    }

    fn ret(op: &RewriteOp) -> (u16, Option<&str>) {
        match op {
            RewriteOp::Return { code, body } => (*code, body.as_ref().map(|b| b.source())),
            other => panic!("not a return: {other:?}"),
        }
    }

    #[test]
    fn returns() {
        let s = srv(
            "return 200 \"hi $host\"; return 404; return http://x/$uri; return 301 /moved; return $scheme://h/; \
             return 0; return 999; return https://a/;",
        );
        let r: Vec<_> = s.rewrites.iter().map(ret).collect();
        assert_eq!(
            r,
            vec![
                (200, Some("hi $host")),
                (404, None),
                (302, Some("http://x/$uri")),
                (301, Some("/moved")),
                (302, Some("$scheme://h/")),
                (0, None),
                (999, None),
                (302, Some("https://a/")),
            ]
        );
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("return 1000;"),
            format!("invalid return code \"1000\" {}", at(2))
        );
        assert_eq!(
            e("return /x;"),
            format!("invalid return code \"/x\" {}", at(2))
        );
        assert_eq!(
            e("return abc def;"),
            format!("invalid return code \"abc\" {}", at(2))
        );
        assert_eq!(
            e("return http://x y;"),
            format!("invalid return code \"http://x\" {}", at(2))
        );
        assert_eq!(
            e("return;"),
            format!(
                "invalid number of arguments in \"return\" directive {}",
                at(2)
            )
        );
        assert_eq!(
            err("\nhttp { return 200; }"),
            format!("\"return\" directive is not allowed here {}", at(2))
        );
    }

    #[test]
    fn rewrites_and_set() {
        let l = loc(
            "location / { rewrite ^/a/(.*)$ /b/$1; rewrite ^/c /d last; rewrite ^/e /f break; rewrite ^/g /h redirect; \
             rewrite ^/i /j permanent; rewrite ^/k http://x/$1; rewrite ^/l https://x/ last; rewrite ^/m $scheme://x permanent; \
             set $Foo \"a $uri\"; }",
        );
        let flags: Vec<(String, String, RewriteFlag)> = l
            .rewrites
            .iter()
            .filter_map(|op| match op {
                RewriteOp::Rewrite {
                    regex,
                    replacement,
                    flag,
                } => Some((
                    regex.as_str().to_string(),
                    replacement.source().to_string(),
                    *flag,
                )),
                _ => None,
            })
            .collect();
        use RewriteFlag as F;
        let want = [
            ("^/a/(.*)$", "/b/$1", F::None),
            ("^/c", "/d", F::Last),
            ("^/e", "/f", F::Break),
            ("^/g", "/h", F::Redirect),
            ("^/i", "/j", F::Permanent),
            ("^/k", "http://x/$1", F::Redirect),
            ("^/l", "https://x/", F::Redirect),
            ("^/m", "$scheme://x", F::Permanent),
        ];
        let want: Vec<(String, String, RewriteFlag)> = want
            .iter()
            .map(|(a, b, f)| (a.to_string(), b.to_string(), *f))
            .collect();
        assert_eq!(flags, want);
        match l.rewrites.last().unwrap() {
            RewriteOp::Set { var, value } => {
                assert_eq!(var, "foo");
                assert_eq!(value.source(), "a $uri");
            }
            other => panic!("{other:?}"),
        }
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("rewrite ^/ /x bogus;"),
            format!("invalid parameter \"bogus\" {}", at(2))
        );
        assert_eq!(
            e("rewrite ^/(x /x;"),
            format!("invalid regex \"^/(x\": unclosed group {}", at(2))
        );
        assert_eq!(
            e("set foo 1;"),
            format!("invalid variable name \"foo\" {}", at(2))
        );
        assert_eq!(
            e("set $ 1;"),
            format!("invalid variable name \"$\" {}", at(2))
        );
        assert_eq!(
            e("set $a-b 1;"),
            format!("invalid variable name \"$a-b\" {}", at(2))
        );
        assert_eq!(
            e("set $a;"),
            format!("invalid number of arguments in \"set\" directive {}", at(2))
        );
    }

    fn cond(text: &str) -> IfCond {
        let s = srv(&format!("if {text} {{ return 403; }}"));
        match s.rewrites.into_iter().next().unwrap() {
            RewriteOp::If { cond, ops } => {
                assert_eq!(ops.len(), 1);
                cond
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn if_conditions() {
        assert!(matches!(cond("($a)"), IfCond::Var(t) if t.source() == "$a"));
        assert!(matches!(cond("( $a )"), IfCond::Var(t) if t.source() == "$a"));
        assert!(
            matches!(cond("($a = b)"), IfCond::Eq { lhs, rhs, negate: false } if lhs.source() == "$a" && rhs.source() == "b")
        );
        assert!(matches!(cond("($a = \"x y\")"), IfCond::Eq { rhs, .. } if rhs.source() == "x y"));
        assert!(
            matches!(cond("($a != $b)"), IfCond::Eq { rhs, negate: true, .. } if rhs.source() == "$b")
        );
        assert!(matches!(cond("($a = \"\")"), IfCond::Eq { rhs, .. } if rhs.source() == ""));
        match cond("($http_ua ~* \"^curl/[0-9]{1,2}\")") {
            IfCond::Match { lhs, regex, negate } => {
                assert_eq!(lhs.source(), "$http_ua");
                assert!(regex.is_match("CURL/7"));
                assert!(!negate);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(cond("($a ~ ^x)"), IfCond::Match { regex, negate: false, .. } if !regex.is_match("X"))
        );
        assert!(matches!(
            cond("($a !~ ^x)"),
            IfCond::Match { negate: true, .. }
        ));
        assert!(
            matches!(cond("($a !~* ^x)"), IfCond::Match { regex, negate: true, .. } if regex.is_match("X"))
        );
        assert!(
            matches!(cond("(-f $request_filename)"), IfCond::File { op: 'f', negate: false, path } if path.source() == "$request_filename")
        );
        assert!(matches!(
            cond("(!-d /x)"),
            IfCond::File {
                op: 'd',
                negate: true,
                ..
            }
        ));
        assert!(matches!(cond("(-e $x)"), IfCond::File { op: 'e', .. }));
        assert!(matches!(
            cond("(!-x $x)"),
            IfCond::File {
                op: 'x',
                negate: true,
                ..
            }
        ));

        let e = |s: &str| err(&format!("\nhttp {{ server {{ if {s} {{ }} }} }}"));
        assert_eq!(e("$a"), format!("invalid condition \"$a\" {}", at(2)));
        assert_eq!(e("($a"), format!("invalid condition \"$a\" {}", at(2)));
        assert_eq!(
            e("($a == b)"),
            format!("unexpected \"==\" in condition {}", at(2))
        );
        assert_eq!(
            e("($a = b c)"),
            format!("invalid condition \"$a\" {}", at(2))
        );
        assert_eq!(e("(-q $a)"), format!("invalid condition \"-q\" {}", at(2)));
        assert_eq!(e("(-f)"), format!("invalid condition \"-f\" {}", at(2)));
        assert_eq!(e("(foo)"), format!("invalid condition \"foo\" {}", at(2)));
        assert_eq!(e("()"), format!("invalid condition \"()\" {}", at(2)));
        assert_eq!(
            e("($a ~ \"(\")"),
            format!("invalid regex \"(\": unclosed group {}", at(2))
        );
    }

    #[test]
    fn if_bodies() {
        let l = loc("location / { if ($a) { set $b 1; rewrite ^ /x last; return 404; } }");
        match &l.rewrites[0] {
            RewriteOp::If { ops, .. } => assert_eq!(ops.len(), 3),
            other => panic!("{other:?}"),
        }
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(
            e("if ($a) { if ($b) { } }"),
            format!("\"if\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            e("location / { if ($a) { root /x; } }"),
            format!("\"root\" directive is not allowed here {}", at(2))
        );
        assert_eq!(
            e("if ($a) { bogus; }"),
            format!("unknown directive \"bogus\" {}", at(2))
        );
        assert_eq!(
            e("if ($a) return 1;"),
            format!("directive \"if\" has no opening \"{{\" {}", at(2))
        );
        assert_eq!(
            err("\nhttp { if ($a) { } }"),
            format!("\"if\" directive is not allowed here {}", at(2))
        );
    }

    #[test]
    fn rewrite_order_kept() {
        let s = srv("set $a 1; if ($a) { return 401; } set_by_lua $b 'return 1'; rewrite ^ /x; return 200;");
        let kinds: Vec<&str> = s
            .rewrites
            .iter()
            .map(|op| match op {
                RewriteOp::Set { .. } => "set",
                RewriteOp::If { .. } => "if",
                RewriteOp::Rewrite { .. } => "rewrite",
                RewriteOp::Return { .. } => "return",
                RewriteOp::SetByLua { .. } => "set_by_lua",
            })
            .collect();
        assert_eq!(kinds, vec!["set", "if", "set_by_lua", "rewrite", "return"]);
    }

    #[test]
    fn load_from_files() {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "halo-build-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf/sites")).unwrap();
        std::fs::write(
            dir.join("conf/sites/a.conf"),
            "server { listen 127.0.0.1:9001; server_name a; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf/sites/b.conf"),
            "server { listen 127.0.0.1:9002; server_name b; }\n",
        )
        .unwrap();
        let conf = dir.join("conf/nginx.conf");
        std::fs::write(&conf, "events { }\nhttp {\n include sites/*.conf;\n}\n").unwrap();
        let c = load(&dir, &conf, "daemon off;").unwrap();
        assert!(!c.daemon);
        let names: Vec<&str> = c
            .http
            .servers
            .iter()
            .map(|s| s.primary_name.as_str())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(c.pid, dir.join("logs/nginx.pid"));
        std::fs::write(
            dir.join("conf/sites/b.conf"),
            "server {\n listen 127.0.0.1:9002;\n bogus;\n}\n",
        )
        .unwrap();
        let e = load(&dir, &conf, "").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "unknown directive \"bogus\" in {}:3",
                dir.join("conf/sites/b.conf").display()
            )
        );
        let e = load(&dir, &conf, "daemon off").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected end of parameter, expecting \";\" in command line"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proxy_pass_errors() {
        let e = |s: &str| err(&format!("\nhttp {{ server {{ {s} }} }}"));
        assert_eq!(e("location / { proxy_pass ftp://a; }"), format!("invalid URL prefix in \"ftp://a\" {}", at(2)));
        assert_eq!(e("location / { proxy_pass 127.0.0.1; }"), format!("invalid URL prefix in \"127.0.0.1\" {}", at(2)));
        assert_eq!(e("location / { proxy_pass http://127.0.0.1:x; }"), format!("invalid port in upstream \"127.0.0.1:x\" {}", at(2)));
        assert_eq!(e("location / { proxy_pass http://; }"), format!("no host in upstream \"\" {}", at(2)));
        assert_eq!(e("location / { proxy_pass http://no-such-host.invalid; }"), format!("host not found in upstream \"no-such-host.invalid\" {}", at(2)));
        assert_eq!(
            e("location ~ /a { proxy_pass http://127.0.0.1:1/b; }"),
            format!("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block {}", at(2))
        );
        assert_eq!(e("location / { proxy_pass http://unix:; }"), format!("no path in the unix domain socket in upstream \"unix:\" {}", at(2)));
        assert_eq!(e("location / { proxy_pass http://[::1; }"), format!("invalid IPv6 address in upstream \"[::1\" {}", at(2)));
        assert!(e("location ~ /a { proxy_pass http://unix:/s:/b; }").starts_with("\"proxy_pass\" cannot have URI part"));
        // With variables, nothing is checked before the request.
        let s = srv("location ~ /a { proxy_pass http://$host/b; }");
        assert!(s.locations[0].conf.proxy_pass.as_ref().unwrap().vars.is_some());
        assert_eq!(e("location / { proxy_pass http://127.0.0.1:1; proxy_pass http://127.0.0.1:2; }"), format!("\"proxy_pass\" directive is duplicate {}", at(2)));
        assert_eq!(e("proxy_pass http://127.0.0.1;"), format!("\"proxy_pass\" directive is not allowed here {}", at(2)));
        assert_eq!(
            e("proxy_http_version 2;"),
            format!("invalid value \"2\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\" {}", at(2))
        );
        assert_eq!(e("proxy_read_timeout x;"), format!("\"proxy_read_timeout\" directive invalid value {}", at(2)));
        for d in ["proxy_buffers 0 4k;", "proxy_buffers 8 x;", "proxy_buffer_size x;", "proxy_busy_buffers_size 9x;"] {
            let name = d.split(' ').next().unwrap();
            assert_eq!(e(d), format!("\"{name}\" directive invalid value {}", at(2)));
        }
        assert_eq!(e("proxy_set_header X;"), format!("invalid number of arguments in \"proxy_set_header\" directive {}", at(2)));
        assert_eq!(e("proxy_cache_path /x;"), format!("unknown directive \"proxy_cache_path\" {}", at(2)));
    }

    #[test]
    fn proxy_settings_and_inheritance() {
        let s = srv("proxy_set_header X-A 1; proxy_read_timeout 5s; proxy_hide_header X-Secret; proxy_pass_header Server; \
                     location /a/ { proxy_pass http://127.0.0.1:8080/b/; } \
                     location /c { proxy_set_header X-C $uri; proxy_http_version 1.1; proxy_buffering off; proxy_pass http://localhost; }");
        let a = &s.locations.iter().find(|l| l.pattern == "/a/").unwrap().conf;
        let pass = a.proxy_pass.as_ref().unwrap();
        assert_eq!(pass.host, "127.0.0.1:8080");
        assert_eq!(pass.uri.as_deref(), Some("/b/"));
        assert_eq!(pass.addrs, vec![PeerAddr::Inet("127.0.0.1:8080".parse().unwrap())]);
        assert_eq!(a.proxy.set_headers.len(), 1);
        assert_eq!(a.proxy.read_timeout, Duration::from_secs(5));
        assert_eq!(a.proxy.connect_timeout, Duration::from_secs(60));
        assert!(a.proxy.hide_headers.iter().any(|h| h == "x-secret"));
        assert!(!a.proxy.hide_headers.iter().any(|h| h == "server"));
        assert!(a.proxy.hide_headers.iter().any(|h| h == "date"));
        assert!(!a.proxy.http11);
        let c = &s.locations.iter().find(|l| l.pattern == "/c").unwrap().conf;
        let pass = c.proxy_pass.as_ref().unwrap();
        assert_eq!(pass.host, "localhost");
        assert_eq!(pass.uri, None);
        assert_eq!(c.proxy.set_headers.len(), 1);
        assert_eq!(c.proxy.set_headers[0].0, "X-C");
        assert!(c.proxy.http11 && !c.proxy.buffering);
        assert!(s.conf.proxy_pass.is_none());
    }
}
