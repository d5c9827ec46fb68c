//! Fuzzes what the controller parses (`fuzz/fuzz_targets/`) with cargo-fuzz and libFuzzer under
//! the pinned nightly, for a bounded time.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use anyhow::bail;

use crate::{
    setup::{self, NIGHTLY},
    util::{cargo, exec, root},
};

pub const CARGO_FUZZ: &str = "0.13.2";

/// A fuzz target: its name in `fuzz/Cargo.toml`, what it fuzzes, and directories of inputs it
/// starts from besides its own corpus (`fuzz/corpus/<name>`, whose files with an extension
/// are seeds kept in git).
pub struct Target {
    pub name: &'static str,
    what: &'static str,
    seeds: &'static [&'static str],
}

pub const TARGETS: [Target; 2] = [
    Target {
        name: "config",
        what: "the configuration parser (YAML, JSON, bonding.ko options)",
        seeds: &["tests/fixtures/zerotier", "tests/fixtures/kernel", "deploy"],
    },
    Target { name: "frames", what: "the frame parsers (packet headers, LACPDUs, markers, probe events)", seeds: &[] },
];

/// Seconds one input may take before libFuzzer counts it as a hang (a failure), so a hang
/// cannot stretch a bounded run.
const INPUT_TIMEOUT: u64 = 10;

/// Fuzzes `only` target, or every target in turn, `seconds` split evenly between them (0: one
/// target until a crash or Ctrl-C). A crash, hang or out-of-memory input fails with the path of
/// the input libFuzzer saved. Inputs that reach new code are kept in `fuzz/corpus/<target>`
/// (ignored by git) and seed the next run.
pub fn run(seconds: u64, only: Option<&str>) -> anyhow::Result<()> {
    let targets: Vec<&Target> = TARGETS.iter().filter(|t| only.is_none_or(|o| o == t.name)).collect();
    if targets.is_empty() {
        let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        bail!("no fuzz target {:?} (known: {})", only.unwrap_or_default(), known.join(", "));
    }
    if seconds == 0 && targets.len() > 1 {
        bail!("fuzzing without a time limit runs one target: give --target");
    }
    install()?;
    let share = if seconds == 0 { 0 } else { (seconds / targets.len() as u64).max(1) };
    targets.into_iter().try_for_each(|t| fuzz(t, share))
}

fn fuzz(target: &Target, seconds: u64) -> anyhow::Result<()> {
    let name = target.name;
    let artifacts = root().join("fuzz/artifacts").join(name);
    let before = files(&artifacts);
    let bound = if seconds == 0 { "until it crashes or Ctrl-C".to_string() } else { format!("for {seconds} s after the build") };
    eprintln!("xtask: fuzzing {} {bound}", target.what);
    let run = exec(
        cargo()
            .arg(format!("+{NIGHTLY}"))
            .args(["fuzz", "run", name])
            // The corpus (written to) first, then the fixtures and examples as read-only seeds.
            .arg(root().join("fuzz/corpus").join(name))
            .args(target.seeds.iter().map(|d| root().join(d)))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={INPUT_TIMEOUT}"))
            // The eBPF object is not needed by anything fuzzed.
            .env("BOND_EBPF_SKIP", "1"),
    );
    let found: Vec<PathBuf> = files(&artifacts).difference(&before).cloned().collect();
    match (run, found.is_empty()) {
        (Ok(()), _) => Ok(()),
        (Err(e), true) => Err(e),
        (Err(_), false) => {
            let list = found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            bail!(
                "the fuzzer found an input that crashes or hangs {}: {list}\n\
                 reproduce with: BOND_EBPF_SKIP=1 cargo +{NIGHTLY} fuzz run {name} {}",
                target.what,
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
