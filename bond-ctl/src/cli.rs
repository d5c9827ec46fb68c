//! The `bondctl` command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::{
    config,
    control::{self, Request, Response},
    daemon, sys,
};

/// Link aggregation with an eBPF data plane: bonds whose per-packet work runs in the kernel
/// (TC programs) and whose controller runs here.
#[derive(Debug, Parser)]
#[command(name = "bondctl", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Run in this network namespace (a name from `ip netns` or a path such as
    /// /proc/PID/ns/net). Unlike `ip netns exec`, this keeps the host's /sys/fs/bpf, so the
    /// bond's pins outlive the command.
    #[arg(long, global = true, value_name = "NS")]
    pub netns: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up the bonds of a configuration file and run them in the foreground.
    ///
    /// Creates each bond device, takes its members (the bond's MAC address on every member,
    /// members' own IPv6 off; both restored afterwards), loads and attaches the data plane,
    /// and follows the members' carrier. SIGINT or SIGTERM removes the bonds and restores the
    /// members. Suitable as a systemd service (Type=simple).
    Up {
        /// Configuration file (YAML; JSON for *.json).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Run only this bond of the file.
        #[arg(long, value_name = "BOND")]
        bond: Option<String>,
    },
    /// Show a bond's policy, members, their state and counters (like /proc/net/bonding).
    ///
    /// Without BOND, every bond running in this network namespace.
    Status {
        bond: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Switch a running bond to another policy (a standard one or one from its configuration).
    ///
    /// Standard policies: none, active-backup, broadcast, balance-rr, balance-xor,
    /// balance-aware. The switch is atomic: every packet sees the old or the new policy.
    SetPolicy { bond: String, policy: String },
    /// Validate a configuration file without applying it.
    ///
    /// Reports every problem with the file, key and reason, and interfaces named in the file
    /// that do not exist in this network namespace.
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

impl Command {
    pub fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Up { config, bond } => {
                require_root()?;
                let cfg = config::load(&config)?;
                runtime()?.block_on(daemon::run(cfg, bond.as_deref()))
            }
            Command::Status { bond, json } => status(bond, json),
            Command::SetPolicy { bond, policy } => {
                require_root()?;
                match control::request(&bond, &Request::SetPolicy { policy })? {
                    Response::Done { message } => {
                        println!("{message}");
                        Ok(())
                    }
                    Response::Error { error } => bail!("{error}"),
                    other => bail!("unexpected answer: {other:?}"),
                }
            }
            Command::Check { config } => {
                let cfg = config::load(&config)?;
                let mut missing = Vec::new();
                for b in &cfg.bonds {
                    for l in &b.links {
                        if sys::ifindex(l).is_none() {
                            missing.push(format!("{}: bonds.{}.links: interface {l} does not exist here", config.display(), b.name));
                        }
                    }
                }
                for m in &missing {
                    eprintln!("{m}");
                }
                if !missing.is_empty() {
                    bail!("{} interface(s) missing; `bondctl up` would refuse this file", missing.len());
                }
                println!("{}: OK ({} bond(s))", config.display(), cfg.bonds.len());
                Ok(())
            }
        }
    }
}

fn status(bond: Option<String>, json: bool) -> anyhow::Result<()> {
    require_root()?;
    let bonds = match bond {
        Some(b) => vec![b],
        None => control::running_bonds(),
    };
    if bonds.is_empty() {
        bail!("no bond is running in this network namespace");
    }
    let mut all = Vec::new();
    for b in &bonds {
        match control::request(b, &Request::Status)? {
            Response::Status { status } => all.push(*status),
            Response::Error { error } => bail!("{b}: {error}"),
            other => bail!("unexpected answer: {other:?}"),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        let text: Vec<String> = all.iter().map(|s| s.render()).collect();
        print!("{}", text.join("\n"));
    }
    Ok(())
}

fn require_root() -> anyhow::Result<()> {
    if !sys::is_root() {
        bail!("bondctl needs root (CAP_NET_ADMIN and CAP_BPF)");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: the daemon is one event loop, and namespace membership is per thread.
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}
