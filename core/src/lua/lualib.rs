//! The Lua sources of lualib/ and the C headers of ffi-headers/, compiled into
//! the binary so a VM needs no files on disk.
//!
//! Adding a file to lualib/ or ffi-headers/ means adding it to the lists below;
//! a test fails until you do.

/// One embedded Lua module.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// The `require` name ("resty.core.time").
    pub name: &'static str,
    /// The path under lualib/ ("resty/core/time.lua"), also the chunk name.
    pub path: &'static str,
    /// The Lua source.
    pub source: &'static str,
}

macro_rules! modules {
    ($($name:literal => $path:literal),* $(,)?) => {
        &[$(Module {
            name: $name,
            path: $path,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../lualib/", $path)),
        }),*]
    };
}

/// LuaJIT's own modules, from the LuaJIT build of core/build.rs.
macro_rules! luajit_modules {
    ($($name:literal => $file:literal),* $(,)?) => {
        &[$(Module {
            name: $name,
            path: concat!("jit/", $file),
            source: include_str!(concat!(env!("OUT_DIR"), "/luajit/luajit-build/src/jit/", $file)),
        }),*]
    };
}

macro_rules! headers {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../ffi-headers/", $name, ".h")))),*]
    };
}

/// Every module in lualib/.
pub static MODULES: &[Module] = modules![
    "resty.core" => "resty/core.lua",
    "resty.core.base" => "resty/core/base.lua",
    "resty.core.consts" => "resty/core/consts.lua",
    "resty.core.time" => "resty/core/time.lua",
    "resty.core.worker" => "resty/core/worker.lua",
    "resty.core.config" => "resty/core/config.lua",
    "resty.core.log" => "resty/core/log.lua",
    "resty.core.phase" => "resty/core/phase.lua",
    "resty.core.coroutine" => "resty/core/coroutine.lua",
    "resty.core.output" => "resty/core/output.lua",
    "resty.core.exit" => "resty/core/exit.lua",
    "resty.core.request" => "resty/core/request.lua",
    "resty.core.var" => "resty/core/var.lua",
    "resty.core.response" => "resty/core/response.lua",
    "resty.core.ctx" => "resty/core/ctx.lua",
    "resty.core.arg" => "resty/core/arg.lua",
    "resty.core.regex" => "resty/core/regex.lua",
    "resty.core.shdict" => "resty/core/shdict.lua",
    "resty.core.string" => "resty/core/string.lua",
    "resty.core.hash" => "resty/core/hash.lua",
    "resty.core.base64" => "resty/core/base64.lua",
    "resty.core.thread" => "resty/core/thread.lua",
    "resty.core.timer" => "resty/core/timer.lua",
    "resty.core.socket" => "resty/core/socket.lua",
    "resty.core.location" => "resty/core/location.lua",
    "resty.core.unsupported" => "resty/core/unsupported.lua",
    "ngx.balancer" => "ngx/balancer.lua",
    "ngx.base64" => "ngx/base64.lua",
    "ngx.re" => "ngx/re.lua",
    "ngx.errlog" => "ngx/errlog.lua",
    "ngx.process" => "ngx/process.lua",
    "ngx.resp" => "ngx/resp.lua",
    "ngx.req" => "ngx/req.lua",
    "ngx.semaphore" => "ngx/semaphore.lua",
    // `halo jit lint`'s bytecode walker.
    "halo.jit.lint" => "halo/jit/lint.lua",
    // lua_jit_log's event capture.
    "halo.jit.capture" => "halo/jit/capture.lua",
    // OpenResty's LuaJIT branch's table extensions, found as its are.
    "table.nkeys" => "table/nkeys.lua",
    "table.isempty" => "table/isempty.lua",
    "table.isarray" => "table/isarray.lua",
    // resty.lrucache's API, found after the operator's paths (FALLBACKS).
    "halo.lrucache" => "halo/lrucache.lua",
    // The coroutine loop handlers run in, and the globals write guard.
    "halo.runner" => "halo/runner.lua",
];

/// LuaJIT's own jit/*.lua, from the LuaJIT sources mlua-sys builds the VM
/// from (core/build.rs; a test checks they are the linked VM's). jit.util
/// and jit.profile are built into the VM.
pub static LUAJIT_MODULES: &[Module] = luajit_modules![
    "jit.bc" => "bc.lua",
    "jit.bcsave" => "bcsave.lua",
    "jit.dis_arm" => "dis_arm.lua",
    "jit.dis_arm64" => "dis_arm64.lua",
    "jit.dis_arm64be" => "dis_arm64be.lua",
    "jit.dis_mips" => "dis_mips.lua",
    "jit.dis_mips64" => "dis_mips64.lua",
    "jit.dis_mips64el" => "dis_mips64el.lua",
    "jit.dis_mips64r6" => "dis_mips64r6.lua",
    "jit.dis_mips64r6el" => "dis_mips64r6el.lua",
    "jit.dis_mipsel" => "dis_mipsel.lua",
    "jit.dis_ppc" => "dis_ppc.lua",
    "jit.dis_x64" => "dis_x64.lua",
    "jit.dis_x86" => "dis_x86.lua",
    "jit.dump" => "dump.lua",
    "jit.p" => "p.lua",
    "jit.v" => "v.lua",
    "jit.vmdef" => "vmdef.lua",
    "jit.zone" => "zone.lua",
];

/// Every header in ffi-headers/, as (file stem, text).
pub static HEADERS: &[(&str, &str)] = headers!["base", "time", "worker", "config", "log", "request", "regex", "shdict", "string", "hash", "base64", "thread", "timer", "socket", "location", "semaphore", "balancer"];

/// Libraries OpenResty bundles that halo provides only when the operator's
/// paths hold none: (name required, embedded module that answers).
pub static FALLBACKS: &[(&str, &str)] = &[("resty.lrucache", "halo.lrucache"), ("resty.lrucache.pureffi", "halo.lrucache")];

/// The embedded module `name`, if any.
pub fn find(name: &str) -> Option<&'static Module> {
    MODULES.iter().chain(LUAJIT_MODULES).find(|m| m.name == name)
}

/// A header as LuaJIT's `ffi.cdef` takes it: the preprocessor lines (include
/// guards, #include) removed, line count kept so parse errors point at the
/// right line of the .h file.
pub fn cdef_text(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for line in header.lines() {
        if !line.trim_start().starts_with('#') {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Relative paths of the files under `dir` whose name ends with `ext`.
    fn files(dir: &Path, ext: &str, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, ext, base, out);
            } else if p.to_str().unwrap().ends_with(ext) {
                out.push(p.strip_prefix(base).unwrap().to_str().unwrap().to_owned());
            }
        }
    }

    #[test]
    fn every_lualib_file_is_embedded_under_its_require_name() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lualib");
        let mut found = Vec::new();
        files(&root, ".lua", &root, &mut found);
        found.sort();
        let mut listed: Vec<String> = MODULES.iter().map(|m| m.path.to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed, "lualib/ and lua::lualib::MODULES differ");
        for m in MODULES {
            assert_eq!(m.name.replace('.', "/") + ".lua", m.path, "{}", m.name);
            assert!(!m.source.is_empty());
        }
    }

    /// `jit/` of the LuaJIT that mlua-sys built for this test binary:
    /// `<target>/<profile>/build/mlua-sys-*/out/luajit-build/src/jit`, the
    /// newest if several builds (other features, an older LuaJIT) are around.
    fn luajit_build_jit_dir() -> Result<std::path::PathBuf, String> {
        // The test binary is <target>/<profile>/deps/halo_core-HASH.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let build = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("build"))
            .ok_or_else(|| format!("no build dir above {}", exe.display()))?;
        let entries = std::fs::read_dir(&build).map_err(|e| format!("{}: {e}", build.display()))?;
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("mlua-sys-"))
            .map(|e| e.path().join("out/luajit-build/src/jit"))
            // vmdef.lua is written last by the LuaJIT build: its time is the build's.
            .filter_map(|d| Some((std::fs::metadata(d.join("vmdef.lua")).ok()?.modified().ok()?, d)))
            .max()
            .map(|(_, d)| d)
            .ok_or_else(|| format!("no mlua-sys-*/out/luajit-build/src/jit/vmdef.lua under {}", build.display()))
    }

    #[test]
    fn jit_modules_match_the_vendored_build() {
        // The embedded jit/*.lua must be the linked VM's: vmdef.lua holds
        // that VM's opcode/IR/error tables, and core/build.rs building another
        // LuaJIT than mlua-sys (a version out of step in core/Cargo.toml)
        // would make jit.v/jit.dump print wrong names.
        let dir = luajit_build_jit_dir().unwrap_or_else(|e| panic!("cannot find LuaJIT's build output: {e}"));
        let mut built = Vec::new();
        files(&dir, ".lua", &dir, &mut built);
        built.sort();
        let mut listed: Vec<String> = LUAJIT_MODULES.iter().map(|m| m.path.trim_start_matches("jit/").to_owned()).collect();
        listed.sort();
        assert_eq!(built, listed, "{} and LUAJIT_MODULES list different files", dir.display());
        for f in &built {
            let want = std::fs::read(dir.join(f)).unwrap();
            let m = find(&format!("jit.{}", f.trim_end_matches(".lua"))).unwrap_or_else(|| panic!("jit/{f} not in LUAJIT_MODULES"));
            assert_eq!(m.source.as_bytes(), &want[..], "embedded jit/{f} differs from the linked VM's {}", dir.join(f).display());
        }
    }

    #[test]
    fn every_header_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ffi-headers");
        let mut found = Vec::new();
        files(&root, ".h", &root, &mut found);
        found.sort();
        let mut listed: Vec<String> = HEADERS.iter().map(|(n, _)| format!("{n}.h")).collect();
        listed.sort();
        assert_eq!(found, listed, "ffi-headers/ and lua::lualib::HEADERS differ");
    }

    #[test]
    fn cdef_text_drops_preprocessor_lines_only() {
        let h = "#ifndef X\n#define X\n  #include <stddef.h>\nint f(void);\n/* c */\n#endif\n";
        assert_eq!(cdef_text(h), "\n\n\nint f(void);\n/* c */\n\n");
        assert_eq!(find("resty.core.time").unwrap().path, "resty/core/time.lua");
        assert!(find("resty.core.nope").is_none());
    }
}
