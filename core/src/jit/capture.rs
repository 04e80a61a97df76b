//! `lua_jit_log` (and `--jit-log`): turning JIT event capture on in a VM.
//! The capture itself is Lua (lualib/halo/jit/capture.lua): it owns the
//! VM's jit.attach hooks and writes one JSON-lines file per process; here
//! the core calls it at the points of a process's life it must know about.

use std::sync::OnceLock;

use mlua::{Function, Lua, ObjectLike, Table};

use crate::conf::{Config, JitLog};

static COMMAND_LINE: OnceLock<JitLog> = OnceLock::new();

/// `--jit-log DIR`: capture whatever the config says (kept across reloads).
pub fn set_from_command_line(log: JitLog) {
    let _ = COMMAND_LINE.set(log);
}

/// What to capture for `cfg`: the command line wins over `lua_jit_log`.
pub fn settings(cfg: &Config) -> Option<JitLog> {
    COMMAND_LINE.get().cloned().or_else(|| cfg.http.lua_jit_log.clone())
}

/// Start capturing in a new VM, before any user code runs in it (the
/// master's init_by_lua is captured too).
pub fn start(lua: &Lua, log: &JitLog) -> Result<(), String> {
    std::fs::create_dir_all(&log.dir).map_err(|e| format!("lua_jit_log: mkdir \"{}\" failed ({e})", log.dir.display()))?;
    let require: Function = lua.globals().get("require").map_err(|e| e.to_string())?;
    let capture: Table = require.call("halo.jit.capture").map_err(|e| format!("lua_jit_log: {e}"))?;
    let dir = log.dir.to_string_lossy().into_owned();
    capture.call_function::<()>("start", (dir, log.mode.name())).map_err(|e| format!("lua_jit_log: {e}"))
}

/// A worker process starts (after fork): its own log file and sampler.
pub fn worker_start(lua: &Lua) -> Result<(), String> {
    call(lua, "worker_start")
}

/// A worker stops gracefully: write the counters and the blacklist scan.
pub fn close(lua: &Lua) -> Result<(), String> {
    call(lua, "close")
}

/// Calls `name` of the capture module if capture was started in this VM.
fn call(lua: &Lua, name: &str) -> Result<(), String> {
    let loaded: Table = lua.named_registry_value::<Table>("_LOADED").map_err(|e| e.to_string())?;
    match loaded.get::<Option<Table>>("halo.jit.capture") {
        Ok(Some(capture)) => capture.call_function::<()>(name, ()).map_err(|e| format!("lua_jit_log: {e}")),
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
