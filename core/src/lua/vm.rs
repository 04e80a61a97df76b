//! Creating a worker's LuaJIT VM: standard libraries plus `ffi` and `jit`, the
//! embedded lualib/ modules found by `require`, OpenResty's package.path rules,
//! and the global `ngx` table filled by `require "resty.core"`.

use std::path::Path;

use mlua::{LightUserData, Lua, LuaOptions, StdLib, Table, Value};

use super::lualib;

/// Creates a VM with the whole `ngx` API loaded.
///
/// `prefix` is the server prefix, substituted for `$prefix` / `${prefix}` in
/// `package_path` / `package_cpath` (the `lua_package_path` / `lua_package_cpath`
/// directives; None keeps LuaJIT's default, `;;` inside stands for it). Embedded
/// modules (`resty.core.*`, `ngx.*`) are found before anything on those paths.
///
/// The VM has every standard library, including `debug`, `ffi` and `jit` (as
/// OpenResty's), and C modules load from package.cpath. `ngx.config.prefix()`
/// reads the process-wide value set with [`crate::ffi::config::set_prefix`], not
/// `prefix`.
pub fn new_vm(prefix: &Path, package_path: Option<&str>, package_cpath: Option<&str>) -> mlua::Result<Lua> {
    load_libcrypto();
    let lua = open(prefix, package_path, package_cpath)?;
    let require: mlua::Function = lua.globals().get("require")?;
    require.call::<Value>("resty.core")?;
    Ok(lua)
}

/// Makes OpenSSL's libcrypto part of the process, its symbols global, so
/// that Lua libraries calling it through `ffi.C` (lua-resty-string's MD5_*,
/// SHA*_*, HMAC, EVP_*, RAND_bytes; JWT libraries) find them, as they do in
/// OpenResty, whose nginx links libcrypto. dlopen at run time rather than
/// linking: no -dev package at build time, and a host without libcrypto
/// still runs (those calls then fail with LuaJIT's missing-symbol error).
/// Once per process; the library stays loaded.
fn load_libcrypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for name in [c"libcrypto.so.3", c"libcrypto.so"] {
            // SAFETY: `name` is a NUL-terminated literal; dlopen has no
            // other precondition. libcrypto's initialisers are safe to run
            // here: no thread of ours uses it yet.
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if !handle.is_null() {
                return;
            }
        }
    });
}

/// A VM for command-line tools (`halo jit lint`): every standard library and
/// the embedded lualib/ modules (`jit.vmdef`, `halo.jit.lint`, ...) found by
/// `require`, but no `ngx` API, so it needs no server symbols or prefix.
pub fn tool_vm() -> mlua::Result<Lua> {
    open(Path::new("."), None, None)
}

/// A VM with libraries, paths, the module searcher and the bare `ngx` table
/// (only `ngx.null`), before any lualib module ran.
fn open(prefix: &Path, package_path: Option<&str>, package_cpath: Option<&str>) -> mlua::Result<Lua> {
    // SAFETY: `ffi` and `debug` let Lua code break memory safety; that is the
    // point of this VM (the API is built on `ffi`), and it runs only the
    // operator's own code, as OpenResty does.
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::default()) };
    let globals = lua.globals();
    let package: Table = globals.get("package")?;

    let prefix = prefix_with_slash(prefix);
    for (field, template) in [("path", package_path), ("cpath", package_cpath)] {
        if let Some(t) = template {
            let default: String = package.get(field)?;
            package.set(field, expand_package_path(t, &default, &prefix))?;
        }
    }

    // Embedded modules: a searcher right after package.preload, so they come
    // before the user's paths but a preload entry can still replace one.
    let loaders: Table = package.get("loaders")?;
    let searcher = lua.create_function(|lua, name: mlua::String| {
        let name = name.to_str()?;
        match lualib::find(&name) {
            Some(m) => {
                let f = lua.load(m.source).set_name(format!("@lualib/{}", m.path)).into_function()?;
                Ok(Value::Function(f))
            }
            None => Ok(Value::String(lua.create_string(format!("\n\tno embedded module '{name}'"))?)),
        }
    })?;
    loaders.raw_insert(2, searcher)?;
    // The built-in cjson: last, after the package.cpath searchers, so a
    // cjson.so (or cjson.lua) of the operator's is found first, as OpenResty
    // finds its own lualib/cjson.so at the end of the default cpath.
    loaders.raw_push(lua.create_function(super::cjson::searcher)?)?;
    // And resty.lrucache the same way: an operator's copy on the path wins.
    let fallback = lua.create_function(|lua, name: mlua::String| {
        let name = name.to_str()?;
        match lualib::FALLBACKS.iter().find(|(n, _)| *n == &*name).and_then(|(_, m)| lualib::find(m)) {
            Some(m) => Ok(Value::Function(lua.load(m.source).set_name(format!("@lualib/{}", m.path)).into_function()?)),
            None => Ok(Value::Nil),
        }
    })?;
    loaders.raw_push(fallback)?;

    // The ffi-headers/ text, for resty.core.base's cdef().
    let loaded: Table = package.get("loaded")?;
    let headers = lua.create_table_with_capacity(0, lualib::HEADERS.len())?;
    for (name, text) in lualib::HEADERS {
        headers.set(*name, lualib::cdef_text(text))?;
    }
    loaded.set("halo.ffi_headers", headers)?;
    loaded.set("halo.capi", super::capi::module(&lua)?)?;
    let os: Table = globals.get("os")?;
    // SAFETY: os_exit follows the lua_CFunction protocol.
    os.set("exit", unsafe { lua.create_c_function(os_exit)? })?;

    // ngx.null must be a light userdata NULL (== cjson.null), which only the
    // C side can make; the rest of ngx is filled in Lua.
    let ngx = lua.create_table()?;
    ngx.set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    globals.set("ngx", &ngx)?;
    loaded.set("ngx", ngx)?;
    Ok(lua)
}

/// `os.exit([code [, close]])` as LuaJIT reads its arguments (true or none
/// is success, false failure, else an integer), the C streams flushed
/// (io.stdout's buffer), then `_exit`: C's `exit` would run the worker
/// loop's thread-local destructors while this call is on its stack. halo
/// has no exit handler that must run; nginx's os.exit skips its shutdown
/// too.
///
/// # Safety
/// Called by LuaJIT as a lua_CFunction with a valid `L`.
unsafe extern "C-unwind" fn os_exit(l: *mut mlua::ffi::lua_State) -> std::os::raw::c_int {
    use mlua::ffi;
    // SAFETY: `l` is the calling thread; luaL_optinteger raises the usual
    // argument error (nothing of Rust's is live to unwind through); fflush
    // and _exit have no preconditions.
    unsafe {
        let status = match ffi::lua_type(l, 1) {
            ffi::LUA_TBOOLEAN if ffi::lua_toboolean(l, 1) != 0 => libc::EXIT_SUCCESS,
            ffi::LUA_TBOOLEAN => libc::EXIT_FAILURE,
            _ => ffi::luaL_optinteger(l, 1, libc::EXIT_SUCCESS as ffi::lua_Integer) as i32,
        };
        libc::fflush(std::ptr::null_mut());
        libc::_exit(status)
    }
}

/// The prefix as nginx shows it: with a trailing '/'.
fn prefix_with_slash(prefix: &Path) -> String {
    let mut p = prefix.to_string_lossy().into_owned();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// Expands a `lua_package_path` value as lua-nginx-module does: `;;` becomes
/// `;<default>;`, and `$prefix` / `${prefix}` become `prefix` (not inside the
/// default path, which is substituted last).
pub fn expand_package_path(template: &str, default: &str, prefix: &str) -> String {
    const MARK: &str = "\u{1}";
    template
        .replace(";;", &format!(";{MARK};"))
        .replace("${prefix}", prefix)
        .replace("$prefix", prefix)
        .replace(MARK, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_path_rules() {
        let d = "./?.lua;/usr/share/lua/5.1/?.lua";
        assert_eq!(expand_package_path("/a/?.lua", d, "/p/"), "/a/?.lua");
        assert_eq!(expand_package_path("/a/?.lua;;", d, "/p/"), format!("/a/?.lua;{d};"));
        assert_eq!(expand_package_path(";;/b/?.lua", d, "/p/"), format!(";{d};/b/?.lua"));
        assert_eq!(
            expand_package_path("$prefix/lua/?.lua;${prefix}x/?.lua;;", d, "/p/"),
            format!("/p//lua/?.lua;/p/x/?.lua;{d};")
        );
        // $prefix inside the default path is left alone.
        assert_eq!(expand_package_path(";;", "$prefix/?.lua", "/p/"), ";$prefix/?.lua;");
        assert_eq!(prefix_with_slash(Path::new("/srv/halo")), "/srv/halo/");
        assert_eq!(prefix_with_slash(Path::new("/srv/halo/")), "/srv/halo/");
    }

    // These run without the halo_ffi_* symbols exported (a lib test binary has no
    // build-script link args), so they stop short of `require "resty.core"`:
    // the full API is tested in tests/lua_api.rs and tests/lua_jit.rs.
    #[test]
    fn bare_vm_has_libraries_paths_and_embedded_modules() {
        let lua = open(Path::new("/srv/halo"), Some("$prefix/lua/?.lua;;"), Some("${prefix}lib/?.so")).unwrap();
        let (path, cpath): (String, String) =
            lua.load("return package.path, package.cpath").eval().unwrap();
        assert!(path.starts_with("/srv/halo//lua/?.lua;"), "{path}");
        assert!(path.len() > "/srv/halo//lua/?.lua;".len() + 2, "default path appended: {path}");
        assert_eq!(cpath, "/srv/halo/lib/?.so");
        let libs: String = lua
            .load(
                r#"
                assert(type(require("ffi").cdef) == "function")
                assert(type(jit.attach) == "function" and jit.status())
                assert(type(require("jit.util").traceinfo) == "function")
                assert(type(debug.getinfo) == "function")
                assert(type(require("table.new")) == "function")
                return jit.version
                "#,
            )
            .eval()
            .unwrap();
        assert!(libs.starts_with("LuaJIT 2.1"), "{libs}");

        // ngx.null is a light userdata NULL; require "ngx" is the same table.
        let ok: bool = lua
            .load(r#"return type(ngx.null) == "userdata" and require("ngx") == ngx and tostring(ngx.null):find("NULL") ~= nil"#)
            .eval()
            .unwrap();
        assert!(ok);

        // Embedded modules that need no exported symbol load, with their
        // lualib/ chunk name; ffi-headers/ reach ffi.cdef.
        let (ok_code, src, nginx): (i64, String, i64) = lua
            .load(
                r#"
                require "resty.core.consts"
                local base = require "resty.core.base"
                base.cdef "time"
                base.cdef "time" -- a second declaration is skipped
                local src = debug.getinfo(base.cdef, "S").short_src
                return base.FFI_DECLINED, src, ngx.HTTP_NOT_FOUND + ngx.DEBUG
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(ok_code, -5);
        assert_eq!(src, "lualib/resty/core/base.lua");
        assert_eq!(nginx, 412);

        // The built-in cjson is found when no cjson is on the paths.
        let json: String = lua.load(r#"return require("cjson").encode({1, "a/b"}) .. require("cjson.safe")._VERSION"#).eval().unwrap();
        assert_eq!(json, r#"[1,"a\/b"]2.1.0.11"#);

        // Unknown modules fail with the searcher's line among the others.
        let err = lua.load(r#"require "resty.core.nope""#).exec().unwrap_err().to_string();
        assert!(err.contains("no embedded module 'resty.core.nope'"), "{err}");
        // A preload entry still wins over an embedded module.
        let v: String = lua
            .load(r#"package.preload["resty.core.worker"] = function() return "mine" end return require "resty.core.worker""#)
            .eval()
            .unwrap();
        assert_eq!(v, "mine");
        let err = lua.load(r#"require("resty.core.base").cdef("nope")"#).exec().unwrap_err().to_string();
        assert!(err.contains("no ffi header named 'nope'"), "{err}");
    }
}
