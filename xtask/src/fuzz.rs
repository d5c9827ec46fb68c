//! Fuzzes the configuration parser (`fuzz/fuzz_targets/config.rs`) with cargo-fuzz and libFuzzer
//! under the pinned nightly, for a bounded time.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use anyhow::bail;

use crate::{
    setup::{self, NIGHTLY},
    util::{cargo, exec, root},
};

pub const CARGO_FUZZ: &str = "0.13.2";
/// The fuzz target: YAML, JSON and bonding.ko options through `bond_ctl::config`.
const TARGET: &str = "config";
/// Directories of configuration files the fuzzer starts from besides its own corpus.
const SEEDS: [&str; 3] = ["tests/fixtures/zerotier", "tests/fixtures/kernel", "deploy"];
/// Seconds one input may take before libFuzzer counts it as a hang (a failure), so a hang
/// cannot stretch a bounded run.
const INPUT_TIMEOUT: u64 = 10;

/// Fuzzes for `seconds` (0: until a crash or Ctrl-C). A crash, hang or out-of-memory input fails
/// with the path of the input libFuzzer saved. The inputs that reach new code are kept in
/// `fuzz/corpus/config` (ignored by git) and seed the next run.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    install()?;
    let artifacts = root().join("fuzz/artifacts").join(TARGET);
    let before = files(&artifacts);
    let bound = if seconds == 0 { "until it crashes or Ctrl-C".to_string() } else { format!("for {seconds} s after the build") };
    eprintln!("xtask: fuzzing the configuration parser {bound}");
    let run = exec(
        cargo()
            .arg(format!("+{NIGHTLY}"))
            .args(["fuzz", "run", TARGET])
            // The corpus (written to) first, then the fixtures and examples as read-only seeds.
            .arg(root().join("fuzz/corpus").join(TARGET))
            .args(SEEDS.iter().map(|d| root().join(d)))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={INPUT_TIMEOUT}"))
            // The eBPF object is not needed to parse configuration.
            .env("BOND_EBPF_SKIP", "1"),
    );
    let found: Vec<PathBuf> = files(&artifacts).difference(&before).cloned().collect();
    match (run, found.is_empty()) {
        (Ok(()), _) => Ok(()),
        (Err(e), true) => Err(e),
        (Err(_), false) => {
            let list = found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            bail!(
                "the fuzzer found an input that crashes or hangs the configuration parser: {list}\n\
                 reproduce with: BOND_EBPF_SKIP=1 cargo +{NIGHTLY} fuzz run {TARGET} {}",
                found[0].display()
            )
        }
    }
}

/// Installs cargo-fuzz if it is missing or another version, and a C++ compiler for libFuzzer.
fn install() -> anyhow::Result<()> {
    setup::debian(&[("c++", "g++")])?;
    let version = Command::new("cargo-fuzz").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.as_deref().is_ok_and(|v| v.split_whitespace().nth(1) == Some(CARGO_FUZZ)) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ} (about half a minute)");
    exec(cargo().args(["install", &format!("cargo-fuzz@{CARGO_FUZZ}"), "--locked"]))
}

/// The files in a directory (none if it does not exist).
fn files(dir: &std::path::Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default()
}
