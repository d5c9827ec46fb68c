//! Builds the eBPF object with the pinned nightly, bondctl around it, and runs the tests.

use std::path::PathBuf;

use crate::{
    setup::NIGHTLY,
    util::{cargo, exec, root},
};

/// Builds everything; returns the path of the release bondctl.
pub fn all() -> anyhow::Result<PathBuf> {
    let obj = ebpf()?;
    exec(cargo().args(["build", "--release", "-p", "bond-ctl"]).env("BOND_EBPF_OBJ", &obj))?;
    Ok(root().join("target/release/bondctl"))
}

/// The eBPF object, with BTF so bpftool shows map fields by name.
pub fn ebpf() -> anyhow::Result<PathBuf> {
    let flags = ["--cfg=bpf_target_arch=\"x86_64\"", "-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f");
    exec(
        cargo()
            .arg(format!("+{NIGHTLY}"))
            .args(["build", "-p", "bond-ebpf", "--bins", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--target-dir", "target/ebpf"])
            .env("CARGO_ENCODED_RUSTFLAGS", flags),
    )?;
    Ok(root().join("target/ebpf/bpfel-unknown-none/release/bond"))
}

/// Unit tests, then the integration tests (root, network namespaces) against the release
/// bondctl.
pub fn test(filter: Option<&str>) -> anyhow::Result<()> {
    let obj = root().join("target/ebpf/bpfel-unknown-none/release/bond");
    exec(cargo().args(["test", "-p", "bond-common", "-p", "bond-ctl", "-p", "xtask"]).env("BOND_EBPF_OBJ", &obj))?;
    let mut it = cargo();
    // Tests that cannot run here (a kernel feature absent) record themselves in this file.
    let skipped = root().join("target/skipped-tests.txt");
    let _ = std::fs::remove_file(&skipped);
    it.args(["test", "--release", "--no-fail-fast", "-p", "bond-tests"])
        .env("BONDCTL", root().join("target/release/bondctl"))
        .env("BOND_TESTS_SKIPPED", &skipped);
    if let Some(f) = filter {
        it.arg(f);
    }
    // Two cores: more parallel labs only add scheduling noise to timing measurements.
    it.args(["--", "--test-threads", "2"]);
    let result = exec(&mut it);
    let lines = std::fs::read_to_string(&skipped).unwrap_or_default();
    let lines: Vec<&str> = lines.lines().collect();
    println!("{} integration test(s) skipped on this machine{}", lines.len(), if lines.is_empty() { "" } else { ":" });
    for l in lines {
        println!("  {l}");
    }
    result
}

/// The fault suite (`tests/tests/faults.rs`) with each kind of fault kept up for `seconds`,
/// one test at a time so the faults do not share the two cores with each other.
pub fn faults(seconds: u64) -> anyhow::Result<()> {
    exec(
        cargo()
            .args([
                "test",
                "--release",
                "--no-fail-fast",
                "-p",
                "bond-tests",
                "--test",
                "faults",
                "--",
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .env("BONDCTL", root().join("target/release/bondctl"))
            .env("BOND_FAULTS_SECONDS", seconds.to_string()),
    )
}
