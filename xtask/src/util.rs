//! Running commands: one place that reports what failed.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, bail};

/// Runs a command, inheriting stdio; an error names the command and its exit status.
pub fn exec(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace").to_path_buf()
}

/// A `cargo` command without the environment of the cargo that runs xtask (toolchain choice,
/// flags), so nested builds pick their own toolchain.
pub fn cargo() -> Command {
    let mut c = Command::new("cargo");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTUP_TOOLCHAIN" || k == "RUSTC" || k == "RUSTFLAGS" || k == "RUSTDOC" {
            c.env_remove(&*k);
        }
    }
    c.current_dir(root());
    c
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where the bench writes its results (JSON beside the printed tables, and charts).
pub fn bench_dir() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Writes one part's results as `target/bench/<part>.json`, and says so.
pub fn write_bench_json(part: &str, value: &serde_json::Value) -> anyhow::Result<()> {
    let path = bench_dir()?.join(format!("{part}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))?;
    println!("   written: {}", path.display());
    Ok(())
}
