//! The typed configuration: what `build` makes of the directive tree.
//! Values are resolved and inherited (http -> server -> location) at build
//! time, so the request path only reads them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::conf::template::Template;
use crate::log::Level;

pub use crate::dns::ResolverConf;
pub use super::upstream::{Balance, PeerAddr, PeerConf, UpstreamConf};

/// The whole configuration of one master generation.
#[derive(Debug)]
pub struct Config {
    /// `-p`, absolute.
    pub prefix: PathBuf,
    /// The main config file, absolute.
    pub conf_path: PathBuf,
    pub worker_processes: usize,
    pub master_process: bool,
    pub daemon: bool,
    pub error_log: ErrorLogConf,
    pub pid: PathBuf,
    pub worker_connections: usize,
    /// `worker_shutdown_timeout`: how long a graceful stop may wait for
    /// connections and running timers before the worker exits anyway.
    pub worker_shutdown_timeout: Option<std::time::Duration>,
    /// `worker_rlimit_nofile`: RLIMIT_NOFILE each worker sets on itself.
    pub worker_rlimit_nofile: Option<u64>,
    /// `env`: what the workers keep of the environment (besides TZ).
    pub env: Vec<EnvVar>,
    /// Lines for the error log (at notice level) once it is open: the
    /// directives accepted and ignored, each naming its file:line.
    pub notices: Vec<String>,
    pub http: Http,
}

/// One `env NAME;` (keep the inherited value) or `env NAME=value;` (set it).
#[derive(Debug, Clone)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ErrorLogConf {
    /// Absolute path, or "stderr".
    pub path: PathBuf,
    pub level: Level,
}

/// The `http {}` block.
#[derive(Debug, Default)]
pub struct Http {
    pub servers: Vec<Server>,
    /// The `upstream {}` blocks in config order (see [`Http::upstream`]).
    pub upstreams: Vec<std::sync::Arc<UpstreamConf>>,
    /// Every distinct listening address across servers, with the flags of
    /// its first `listen` (nginx requires them to agree).
    pub listens: Vec<Listen>,
    /// log_format name -> its `escape=` mode (Default when not given);
    /// same keys as `LocConf::log_formats`.
    pub log_format_escape: HashMap<String, crate::conf::template::Escape>,
    /// `lua_package_path` / `lua_package_cpath` as written (`;;` and
    /// `$prefix` are expanded when the VM is made).
    pub lua_package_path: Option<String>,
    pub lua_package_cpath: Option<String>,
    /// `init_by_lua*` (run in the master before the workers fork) and
    /// `init_worker_by_lua*` (run in each worker as it starts).
    /// `lua_code_cache off`: handlers are compiled for each request.
    pub lua_code_cache: bool,
    /// http{}'s `lua_api_mode`, for init_by_lua* and init_worker_by_lua*.
    pub lua_api_mode: LuaApiMode,
    /// `lua_regex_match_limit N`: PCRE2's match limit (0: its default).
    pub lua_regex_match_limit: u32,
    /// `lua_regex_cache_max_entries N`: compiled regexes cached per worker.
    pub lua_regex_cache_max_entries: usize,
    /// The `lua_socket_*` directives (http level in halo).
    pub lua_socket: LuaSocketConf,
    /// `resolver` at http level: what timers' cosockets resolve with.
    pub resolver: Option<std::sync::Arc<ResolverConf>>,
    /// `lua_max_pending_timers N` (1024): ngx.timer.at's limit of timers
    /// not yet expired.
    pub lua_max_pending_timers: usize,
    /// `lua_max_running_timers N` (256): timer callbacks running at once.
    pub lua_max_running_timers: usize,
    /// `lua_shared_dict NAME SIZE`, in order: the zones (sizes in bytes).
    pub lua_shared_dicts: Vec<(String, u64)>,
    /// `lua_jit_log DIR [events|verbose|dump]`: capture JIT events.
    pub lua_jit_log: Option<JitLog>,
    pub init_by_lua: Option<std::sync::Arc<LuaCode>>,
    pub init_worker_by_lua: Option<std::sync::Arc<LuaCode>>,
    /// `exit_worker_by_lua*`: run in each worker as it stops gracefully.
    pub exit_worker_by_lua: Option<std::sync::Arc<LuaCode>>,
}

impl Http {
    /// The `upstream` block of this name (compared case-insensitively, as
    /// nginx does): what `proxy_pass http://NAME` balances over.
    pub fn upstream(&self, name: &str) -> Option<&std::sync::Arc<UpstreamConf>> {
        self.upstreams.iter().find(|u| u.name.eq_ignore_ascii_case(name))
    }
}

/// Where and how much of the JIT's activity `lua_jit_log` records.
#[derive(Debug, Clone, PartialEq)]
pub struct JitLog {
    /// The directory of the per-worker log files (relative paths are under
    /// the prefix).
    pub dir: PathBuf,
    pub mode: JitLogMode,
}

/// What `lua_jit_log` writes besides its structured events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JitLogMode {
    /// Only the structured event log.
    Events,
    /// Also `jit.v` text (one line per trace event) beside it.
    Verbose,
    /// Also `jit.dump` text (bytecode, IR and machine code of every trace).
    Dump,
}

impl JitLogMode {
    /// The mode's name, as the directive takes it.
    pub fn name(self) -> &'static str {
        match self {
            JitLogMode::Events => "events",
            JitLogMode::Verbose => "verbose",
            JitLogMode::Dump => "dump",
        }
    }

    /// The mode of a name ("events", "verbose", "dump").
    pub fn from_name(name: &str) -> Option<JitLogMode> {
        [JitLogMode::Events, JitLogMode::Verbose, JitLogMode::Dump].into_iter().find(|m| m.name() == name)
    }
}

/// Lua code of a `*_by_lua*` directive.
#[derive(Debug)]
pub struct LuaCode {
    pub source: LuaSource,
    /// What tracebacks call it: `content_by_lua(nginx.conf:12)`, or the
    /// file's path for `*_by_lua_file`.
    pub chunkname: String,
}

#[derive(Debug)]
pub enum LuaSource {
    Inline(String),
    /// Absolute path, read (and compiled) on first use.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub default_server: bool,
    pub reuseport: bool,
    pub backlog: i32,
}

#[derive(Debug)]
pub enum ServerName {
    Exact(String),
    /// `*.example.com`: stored as ".example.com".
    WildcardFront(String),
    /// `www.example.*`: stored as "www.example.".
    WildcardBack(String),
    /// `~regex` (case-sensitive as written, nginx compiles them as given).
    Regex(Regex),
}

/// One `server {}` block.
#[derive(Debug)]
pub struct Server {
    pub listen: Vec<Listen>,
    pub names: Vec<ServerName>,
    /// The first server_name, for $server_name.
    pub primary_name: String,
    /// Some server_name is a regex (whose captures become variables).
    pub has_regex_name: bool,
    /// Server-level rewrite-module directives, in order.
    pub rewrites: Vec<RewriteOp>,
    /// Top-level locations in config order (children nested inside).
    pub locations: Vec<Location>,
    pub named: HashMap<String, Location>,
    /// Settings that apply when no location matches, and the base that
    /// locations inherited from.
    pub conf: LocConf,
    /// Server-level timeouts and buffers (read before a location is known).
    pub client_header_timeout: Duration,
    pub client_header_buffer_size: usize,
    pub large_client_header_buffers: (usize, usize),
    /// How header lines are parsed (taken, like the buffers, from the
    /// address's default server).
    pub underscores_in_headers: bool,
    pub ignore_invalid_headers: bool,
    /// http{}'s `map` and `split_clients` blocks (the same for every server).
    pub maps: std::sync::Arc<[crate::conf::map::MapConf]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocKind {
    /// `location = /x`
    Exact,
    /// `location ^~ /x`
    PrefixNoRegex,
    /// `location /x`
    Prefix,
    /// `location ~ re` / `location ~* re`
    Regex,
    /// `location @name`
    Named,
}

#[derive(Debug)]
pub struct Location {
    pub kind: LocKind,
    /// The literal pattern as written (prefix, exact URI, regex source or @name).
    pub pattern: String,
    pub regex: Option<Regex>,
    pub internal: bool,
    /// Rewrite-module directives (set, rewrite, return, if) in order.
    pub rewrites: Vec<RewriteOp>,
    pub conf: LocConf,
    pub children: Vec<Location>,
    /// file:line of the `location` directive, for messages.
    pub origin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: keep processing the rewrite directives after it.
    None,
    Last,
    Break,
    Redirect,
    Permanent,
}

#[derive(Debug)]
pub enum RewriteOp {
    Set { var: String, value: Template },
    Rewrite { regex: Regex, replacement: Template, flag: RewriteFlag },
    /// `return code [text]` or `return URL` (code 302).
    Return { code: u16, body: Option<Template> },
    /// `if (cond) { ... }`: parsed; conditions evaluated by the server.
    If { cond: IfCond, ops: Vec<RewriteOp> },
    /// `set_by_lua* $var ... [args]`: the code's return value.
    SetByLua { var: String, code: std::sync::Arc<LuaCode>, args: Vec<Template> },
}

#[derive(Debug)]
pub enum IfCond {
    /// `($var)`: true unless empty or "0".
    Var(Template),
    Eq { lhs: Template, rhs: Template, negate: bool },
    Match { lhs: Template, regex: Regex, negate: bool },
    /// -f, -d, -e, -x and their negations.
    File { op: char, negate: bool, path: Template },
}

#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: String,
    pub value: Template,
    pub always: bool,
}

#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    /// `=code` (Some(code)), `=` alone (Some(0): the page's own status), or
    /// None to keep the original status.
    pub overwrite: Option<u16>,
    pub uri: Template,
}

#[derive(Debug, Clone)]
pub struct AccessLog {
    /// Absolute path.
    pub path: PathBuf,
    /// Name of a log_format ("combined" by default).
    pub format: String,
}

/// `lua_api_mode`: which binding of the hot ngx API a scope's Lua handlers
/// see (the same semantics either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LuaApiMode {
    /// lualib's FFI (lua-resty-core style): what compiled code calls best.
    #[default]
    Ffi,
    /// The lua_CFunction twin (lua-nginx-module style, crate::lua::capi).
    Cfunction,
}

/// `client_body_in_file_only`: whether every request body goes to a file,
/// and whether that file stays after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyInFileOnly {
    /// Only bodies over client_body_buffer_size, removed after the request.
    Off,
    /// Every body, kept after the request.
    On,
    /// Every body, removed after the request.
    Clean,
}

/// Settings inherited http -> server -> location. Array-valued directives
/// (add_header, error_page, access_log) are inherited only when the inner
/// level defines none, as in nginx.
#[derive(Debug, Clone)]
pub struct LocConf {
    pub root: Template,
    /// `alias` replaces the matched location prefix.
    pub alias: Option<Template>,
    pub index: Vec<String>,
    pub try_files: Option<Vec<Template>>,
    pub add_header: Vec<AddHeader>,
    pub error_page: Vec<ErrorPage>,
    pub default_type: String,
    pub types: std::sync::Arc<HashMap<String, String>>,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    pub client_body_timeout: Duration,
    pub send_timeout: Duration,
    /// 0 = unlimited.
    pub client_max_body_size: u64,
    /// `client_body_buffer_size`: a larger request body goes to a temp file.
    pub client_body_buffer_size: usize,
    /// `client_body_temp_path` (absolute).
    pub client_body_temp_path: std::path::PathBuf,
    /// `client_body_in_file_only`.
    pub client_body_in_file_only: BodyInFileOnly,
    /// `lua_need_request_body`: read the body before the Lua handlers run.
    pub lua_need_request_body: bool,
    /// `lua_check_client_abort`: a client closing its connection while a
    /// handler runs ends the request (or runs its ngx.on_abort callback).
    pub lua_check_client_abort: bool,
    /// `lua_api_mode ffi | cfunction`.
    pub lua_api_mode: LuaApiMode,
    pub server_tokens: bool,
    /// Empty = `access_log off`.
    pub access_log: Vec<AccessLog>,
    /// log_format name -> compiled format (shared by all levels).
    pub log_formats: std::sync::Arc<HashMap<String, Template>>,
    /// `content_by_lua*` of this location (not inherited).
    pub content_by_lua: Option<std::sync::Arc<LuaCode>>,
    /// `proxy_pass` of this location (not inherited).
    pub proxy_pass: Option<std::sync::Arc<super::proxy::ProxyPass>>,
    /// The `proxy_*` settings (inherited).
    pub proxy: std::sync::Arc<super::proxy::ProxyConf>,
    /// `rewrite_by_lua*`, `access_by_lua*`, `log_by_lua*` (inherited).
    pub rewrite_by_lua: Option<std::sync::Arc<LuaCode>>,
    pub access_by_lua: Option<std::sync::Arc<LuaCode>>,
    pub log_by_lua: Option<std::sync::Arc<LuaCode>>,
    /// `header_filter_by_lua*`, `body_filter_by_lua*` (inherited).
    pub header_filter_by_lua: Option<std::sync::Arc<LuaCode>>,
    pub body_filter_by_lua: Option<std::sync::Arc<LuaCode>>,
    /// `resolver` (inherited as a whole), with the `resolver_timeout` in
    /// force at this level; None without one (`dns::resolve` then answers
    /// only IP literals and /etc/hosts).
    pub resolver: Option<std::sync::Arc<ResolverConf>>,
    /// `resolver_timeout` (inherited on its own, as nginx merges it).
    pub resolver_timeout: Duration,
}

impl LocConf {
    /// nginx's defaults with `root` as the document root, and no MIME
    /// types, access log or log formats (the builder adds those).
    pub fn nginx_defaults(root: &str) -> LocConf {
        LocConf {
            root: Template::literal(root),
            alias: None,
            index: vec!["index.html".to_string()],
            try_files: None,
            add_header: Vec::new(),
            error_page: Vec::new(),
            default_type: "text/plain".to_string(),
            types: Default::default(),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            client_body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            client_max_body_size: 1 << 20,
            // nginx's default on x86_64: two memory pages.
            client_body_buffer_size: 16 * 1024,
            client_body_temp_path: std::path::PathBuf::from("client_body_temp"),
            client_body_in_file_only: BodyInFileOnly::Off,
            lua_need_request_body: false,
            lua_check_client_abort: false,
            lua_api_mode: LuaApiMode::Ffi,
            server_tokens: true,
            access_log: Vec::new(),
            log_formats: Default::default(),
            content_by_lua: None,
            proxy_pass: None,
            proxy: Default::default(),
            rewrite_by_lua: None,
            access_by_lua: None,
            log_by_lua: None,
            header_filter_by_lua: None,
            body_filter_by_lua: None,
            resolver: None,
            resolver_timeout: ResolverConf::DEFAULT_TIMEOUT,
        }
    }
}

/// The `lua_socket_*` settings: cosockets' defaults.
#[derive(Debug, Clone, Copy)]
pub struct LuaSocketConf {
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// lua_socket_buffer_size: the most one receive reads at once.
    pub buffer_size: usize,
    /// lua_socket_pool_size: idle connections kept per pool.
    pub pool_size: usize,
    /// lua_socket_keepalive_timeout: how long an idle connection is kept
    /// (zero: until the peer closes it).
    pub keepalive_timeout: Duration,
    /// lua_socket_log_errors: failures are also logged.
    pub log_errors: bool,
}

impl Default for LuaSocketConf {
    fn default() -> LuaSocketConf {
        LuaSocketConf {
            connect_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            buffer_size: 4096,
            pool_size: 30,
            keepalive_timeout: Duration::from_secs(60),
            log_errors: true,
        }
    }
}
