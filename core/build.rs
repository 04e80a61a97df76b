//! LuaJIT's own jit.* modules (jit.v, jit.dump, jit.p, jit.bc, the
//! disassemblers and the generated jit.vmdef) for halo to embed. They come from
//! the luajit-src crate that mlua-sys builds the linked VM from (same version,
//! pinned in Cargo.toml): building it here once more yields the very files of
//! that build, vmdef.lua included (it is generated from the VM's opcode
//! tables, so it only exists in a build). lua::lualib embeds them from OUT_DIR.
//! Also the compiler's version, for `halo -V`.

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Only the sources are wanted: nothing links against this second build.
    luajit_src::Build::new().out_dir(out.join("luajit")).build();
    println!("cargo:rerun-if-changed=build.rs");
    // `halo -V` names its compiler, as `nginx -V` does.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc (version unknown)".into());
    println!("cargo:rustc-env=HALO_RUSTC_VERSION={version}");
}
