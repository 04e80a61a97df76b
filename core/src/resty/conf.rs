//! The nginx.conf `halo resty` writes into its temporary prefix: resty-cli's
//! layout (one foreground process, stderr as the error log, the options'
//! shared dicts, paths, snippets and includes), with `init_by_lua` making
//! ngx.say/ngx.print write to stdout and `init_worker_by_lua` running the
//! code in a zero-delay timer, then exiting the process gracefully.

use std::fmt::Write;

use super::options::Options;

const INIT: &str = include_str!("init.lua");
const INIT_WORKER: &str = include_str!("init_worker.lua");

/// What to run and how, resolved from the options.
pub struct Plan<'a> {
    pub opts: &'a Options,
    /// Name servers for `resolver` (the options', or the system's).
    pub nameservers: Vec<String>,
    /// Absolute paths of the `--main-include` / `--http-include` files.
    pub main_includes: Vec<String>,
    pub http_includes: Vec<String>,
    /// `(path, chunk name)` of each chunk run in order: the `-e` code's
    /// file, then the Lua file.
    pub chunks: Vec<(String, String)>,
    /// `arg[0]`: the Lua file, or the `-e` code's file.
    pub arg0: String,
    /// `arg[-n..-1]`: the command line before the Lua file, the program first.
    pub before: Vec<String>,
    /// `env NAME;` lines for these variables (a worker hides the rest of
    /// the environment from Lua).
    pub env: Vec<String>,
}

/// The config text.
pub fn nginx_conf(p: &Plan) -> String {
    let o = p.opts;
    let mut c = String::from("daemon off;\nmaster_process off;\nworker_processes 1;\npid logs/nginx.pid;\n\n");
    // Before `events`, unlike resty-cli: nginx takes load_module lines only there.
    for f in &p.main_includes {
        let _ = writeln!(c, "include {f};");
    }
    for s in &o.main_confs {
        let _ = writeln!(c, "{s}");
    }
    for v in &p.env {
        let _ = writeln!(c, "env {v};");
    }
    let _ = write!(c, "\nerror_log stderr {};\n\nevents {{\n    worker_connections {};\n}}\n\n", o.errlog_level, o.conns.as_deref().unwrap_or("64"));
    c += "http {\n    access_log off;\n    lua_socket_log_errors off;\n";
    let _ = write!(c, "    resolver {}", p.nameservers.join(" "));
    c += if o.resolve_ipv6 { ";\n" } else { " ipv6=off;\n" };
    c += "    lua_regex_cache_max_entries 40960;\n";
    for d in &o.shdicts {
        let _ = writeln!(c, "    lua_shared_dict {d};");
    }
    if !o.inc_dirs.is_empty() {
        let path: String = o.inc_dirs.iter().map(|d| format!("{d}/?.lua;")).collect();
        let cpath: String = o.inc_dirs.iter().map(|d| format!("{d}/?.so;")).collect();
        let _ = write!(c, "    lua_package_path \"{path};\";\n    lua_package_cpath \"{cpath};\";\n");
    }
    for s in &o.http_confs {
        let _ = writeln!(c, "    {s}");
    }
    for f in &p.http_includes {
        let _ = writeln!(c, "    include {f};");
    }
    let _ = write!(c, "    init_by_lua_block {{\n{INIT}    }}\n\n");
    let _ = write!(c, "    init_worker_by_lua_block {{\n{}    }}\n}}\n", INIT_WORKER.replace("--[[ the loader ]]\n", &loader(p)));
    c
}

/// Lua that sets the global `arg` and defines `chunks`, the loaded code.
fn loader(p: &Plan) -> String {
    let mut s = String::from("arg = {}\n");
    let _ = writeln!(s, "arg[0] = {}", lua_string(&p.arg0));
    for (i, a) in p.opts.rest.iter().skip(1).enumerate() {
        let _ = writeln!(s, "arg[{}] = {}", i + 1, lua_string(a));
    }
    let n = p.before.len() as i64;
    for (i, a) in p.before.iter().enumerate() {
        let _ = writeln!(s, "arg[{}] = {}", i as i64 - n, lua_string(a));
    }
    s += "local chunks = {}\n";
    for (path, name) in &p.chunks {
        let _ = writeln!(s, "chunks[#chunks + 1] = load_chunk({}, {})", lua_string(path), lua_string(name));
    }
    s
}

/// `s` as a Lua long string, `[=[...]=]` with a level no `]=*]` inside
/// closes (resty-cli's quoting: the lowest level unused inside, from 1; a
/// trailing `]=` counts, as the closing bracket would complete it).
pub fn lua_string(s: &str) -> String {
    let mut used = std::collections::HashSet::new();
    let closed = format!("{s}]");
    let b = closed.as_bytes();
    for (i, _) in b.iter().enumerate().filter(|(_, &c)| c == b']') {
        let eqs = b[i + 1..].iter().take_while(|&&c| c == b'=').count();
        if b.get(i + 1 + eqs) == Some(&b']') {
            used.insert(eqs);
        }
    }
    let level = (1..).find(|l| !used.contains(l)).expect("a free level");
    let eq = "=".repeat(level);
    // A newline right after the opening bracket is dropped by Lua: double it.
    let lead = if s.starts_with('\n') { "\n" } else { "" };
    format!("[{eq}[{lead}{s}]{eq}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_pick_a_level_not_inside() {
        assert_eq!(lua_string("a"), "[=[a]=]");
        assert_eq!(lua_string("]=]"), "[==[]=]]==]");
        assert_eq!(lua_string("]=] ]==]"), "[===[]=] ]==]]===]");
        assert_eq!(lua_string("]] ]===]"), "[=[]] ]===]]=]");
        assert_eq!(lua_string("\nx"), "[=[\n\nx]=]");
        assert_eq!(lua_string("a]="), "[==[a]=]==]");
    }

    #[test]
    fn the_config_has_the_options() {
        let o = Options {
            errlog_level: "debug".into(),
            shdicts: vec!["dogs 1m".into()],
            inc_dirs: vec!["/l".into()],
            http_confs: vec!["lua_shared_dict cats 1m;".into()],
            rest: vec!["f.lua".into(), "x".into()],
            ..Options::default()
        };
        let p = Plan {
            opts: &o,
            nameservers: vec!["10.0.0.1".into()],
            main_includes: vec!["/m.conf".into()],
            http_includes: vec![],
            chunks: vec![("f.lua".into(), "@f.lua".into())],
            arg0: "f.lua".into(),
            before: vec!["halo".into(), "resty".into()],
            env: vec![],
        };
        let c = nginx_conf(&p);
        for want in [
            "include /m.conf;\n",
            "error_log stderr debug;",
            "worker_connections 64;",
            "resolver 10.0.0.1 ipv6=off;",
            "lua_shared_dict dogs 1m;",
            "lua_package_path \"/l/?.lua;;\";",
            "    lua_shared_dict cats 1m;\n",
            "arg[0] = [=[f.lua]=]\narg[1] = [=[x]=]\narg[-2] = [=[halo]=]\narg[-1] = [=[resty]=]\n",
            "chunks[#chunks + 1] = load_chunk([=[f.lua]=], [=[@f.lua]=])",
        ] {
            assert!(c.contains(want), "{want:?} not in\n{c}");
        }
        assert!(c.find("include /m.conf").unwrap() < c.find("events").unwrap());
    }
}
