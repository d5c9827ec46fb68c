//! Installs what building and testing need, if missing.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, exec, have, is_root};

/// The nightly toolchain that builds the eBPF crate (its LLVM matches bpf-linker 0.10.4).
pub const NIGHTLY: &str = "nightly-2026-05-20";
pub const BPF_LINKER: &str = "0.10.4";

/// Debian packages for the tools the lab and tests use, by command.
const DEBIAN_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("bpftool", "bpftool"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
    // The independent 802.3ad implementation the LACP interoperability test runs.
    ("ovs-vswitchd", "openvswitch-switch"),
    // Prometheus's linter, run on the metrics endpoint's output by a unit test of bond-ctl.
    ("promtool", "prometheus"),
    // `cargo xtask book` (mdbook and lychee come from PyPI into a virtual environment).
    ("python3", "python3"),
    // `cargo xtask dist` and its package test.
    ("dpkg-deb", "dpkg"),
    ("gzip", "gzip"),
    ("man", "man-db"),
    ("systemd-analyze", "systemd"),
];

pub fn all() -> anyhow::Result<()> {
    nightly()?;
    bpf_linker()?;
    debian_tools()?;
    bpffs()
}

/// The pinned nightly with rust-src (the eBPF build and the fuzzer use it).
pub fn nightly() -> anyhow::Result<()> {
    let has_src = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("rust-src"))
        .unwrap_or(false);
    if has_src {
        return Ok(());
    }
    eprintln!("xtask: installing {NIGHTLY} with rust-src");
    exec(Command::new("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal", "--component", "rust-src"]))
}

fn bpf_linker() -> anyhow::Result<()> {
    let version = Command::new("bpf-linker").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.as_deref().is_ok_and(|v| v.contains(BPF_LINKER)) {
        return Ok(());
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER} (about a minute)");
    exec(cargo().args(["install", &format!("bpf-linker@{BPF_LINKER}"), "--locked"]))
}

fn debian_tools() -> anyhow::Result<()> {
    debian(DEBIAN_TOOLS)
}

/// Installs the Debian packages, given by command, whose command is missing.
pub fn debian(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = tools.iter().filter(|(cmd, _)| !have(cmd) && !have_sbin(cmd)).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// Installs Debian packages with apt-get (as root), or says which to install.
pub fn apt_install(missing: &[&str]) -> anyhow::Result<()> {
    if !is_root() || !have("apt-get") {
        bail!("missing tools; install the Debian packages {}", missing.join(" "));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    exec(Command::new("apt-get").arg("update").arg("-qq"))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn have_sbin(cmd: &str) -> bool {
    ["/usr/sbin", "/sbin"].iter().any(|d| std::path::Path::new(d).join(cmd).is_file())
}

fn bpffs() -> anyhow::Result<()> {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .context("reading /proc/mounts")?
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.split_whitespace().nth(2) == Some("bpf"));
    if mounted || !is_root() {
        return Ok(());
    }
    exec(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}
