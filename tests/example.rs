//! The README's first command runs halo on examples/: its config must stay valid.

use std::process::Command;

#[test]
fn example_config_passes_t() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_halo")).args(["-p", &format!("{root}/examples"), "-t"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("test is successful"), "{err}");
}
