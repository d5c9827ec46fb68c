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
#[command(name = "bondctl", version, propagate_version = true, max_term_width = 100, after_long_help = MANUAL)]
pub struct Cli {
    /// Run in this network namespace (a name from `ip netns` or a path such as
    /// /proc/PID/ns/net). Same as `ip netns exec NS bondctl ...`; under either, the bond pins
    /// into the host's /sys/fs/bpf, so its data plane outlives the daemon.
    #[arg(long, global = true, value_name = "NS")]
    pub netns: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The manual's sections after the commands (`bondctl --help`).
const MANUAL: &str = "\
Configuration:
  YAML (or ZeroTier's local.conf JSON): bonds with their links, addresses, policy and bonding.ko
  options; settings with defaultBondingPolicy, custom policies (basePolicy + overrides), per-link
  settings and peerSpecificBonds. See deploy/bond.yaml and the manual (docs/src/configuration.md) for every key.

Signals (bondctl up):
  SIGINT, SIGTERM  remove the bonds and restore the members; with --persist leave them running
                   for the next `bondctl up` to adopt
  SIGHUP           re-read the configuration file (as `bondctl reload`)
  SIGKILL          the bonds keep forwarding; the next `bondctl up` adopts them, or
                   `bondctl down` removes them

Files:
  /sys/fs/bpf/bond/<bond>/  the bond's pinned maps and TCX links (bpftool map dump pinned ...);
                            a bond in another network namespace pins under
                            /sys/fs/bpf/bond/netns-cookie:<cookie>/<bond>/
  /run/bondctl/<bond>.json  the members' settings from before they joined, for adoption and
                            `bondctl down` (BONDCTL_RUN_DIR overrides the directory); in
                            another network namespace /run/bondctl/netns-cookie:<cookie>/
  /run/bondctl/ctl-cookie-<cookie>/<bond>.sock
                            the daemon's control socket, in a directory per network
                            namespace that only root can use (with <bond>.lock, held while
                            a daemon runs the bond), removed when its last daemon exits; the
                            main namespace's is /run/bondctl/ctl-<inode>/
  <cookie> is the network namespace's (SO_NETNS_COOKIE), never reused; `bondctl up` removes
  what namespaces that are gone left there, and takes over a bond an earlier bondctl left
  under netns:<inode> once proven this namespace's

Environment:
  BONDCTL_LOG      log filter (default info), e.g. BONDCTL_LOG=bond_ctl=debug
  BONDCTL_RUN_DIR  where state files go (default /run/bondctl)

Exit status:
  0 on success; 1 with a message on stderr (for configuration errors: file, line, key, reason)

Examples:
  bondctl up --config /etc/bondctl/bond.yaml --persist --metrics 127.0.0.1:9469
  bondctl up --bond bond0 --links eth0,eth1 mode=active-backup miimon=100 primary=eth0
  bondctl up --bond bond0 --links eth0,eth1 mode=802.3ad lacp_rate=fast xmit_hash_policy=layer3+4
  bondctl check --config bond.yaml
  bondctl status bond0
  bondctl set-policy bond0 balance-aware
  bondctl set bond0 miimon=50 updelay=200 failoverInterval=500
  bondctl add-link bond0 eth2
  bondctl reload bond0
  bondctl down bond0
";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up bonds (from a file or bonding.ko options) and run them.
    ///
    /// Creates each bond device, takes its members (the bond's MAC address on every member,
    /// members' own IPv6 off; both restored afterwards), loads and attaches the data plane,
    /// and monitors the members, in the foreground. A bond that a previous daemon left running
    /// (killed, or stopped with --persist) is adopted without a gap: same device, maps, member
    /// slots and active member; the programs are replaced atomically.
    ///
    /// SIGINT or SIGTERM removes the bonds and restores the members (with --persist: leaves them
    /// running); SIGHUP re-reads the file. Suitable as a systemd service (Type=simple; see
    /// deploy/bondctl.service).
    ///
    /// Without a file, the bond is described as bonding.ko options are written:
    ///
    ///   bondctl up --bond bond0 --links eth0,eth1 mode=1 miimon=100 updelay=200 downdelay=200 primary=eth0
    ///
    /// Options may also be written as in /etc/network/interfaces (bond-mode=1, bond-miimon=100).
    #[command(verbatim_doc_comment)]
    Up {
        #[command(flatten)]
        source: Source,
        /// On SIGINT/SIGTERM leave the bonds running (data plane pinned, members as they are)
        /// for the next `bondctl up` to adopt without a gap: what a service restart or upgrade
        /// wants. `bondctl down` removes a bond for good.
        #[arg(long)]
        persist: bool,
        /// Serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9469) at /metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Log the data plane's rare diagnostics (no configuration in force, a failed redirect
        /// or copy, a source address not rewritten) with target bond_ebpf (BONDCTL_LOG=bond_ebpf=debug
        /// shows the debug ones). Off, the programs carry no logging code at all.
        #[arg(long)]
        ebpf_log: bool,
    },
    /// Show a bond's policy, members, their state and counters (like /proc/net/bonding).
    ///
    /// Without BOND, every bond running in this network namespace.
    Status {
        #[arg(value_parser = bond_name)]
        bond: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// One line per member: state, carrier, role, allocation, quality, counters, health.
    Links {
        #[arg(value_parser = bond_name)]
        bond: String,
        /// Machine-readable output (the members of `status --json`).
        #[arg(long)]
        json: bool,
    },
    /// The busiest flows of the flow table, by bytes, with the member each was sent on.
    ///
    /// Counts are estimated from a pseudo-random sample of one packet in 16; flows idle for the
    /// policy's flowExpiry are forgotten.
    Flows {
        #[arg(value_parser = bond_name)]
        bond: String,
        /// How many flows.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// The bond's and each member's packet, byte, error and probe counters.
    Stats {
        #[arg(value_parser = bond_name)]
        bond: String,
        #[arg(long)]
        json: bool,
    },
    /// Recent events with their reasons: failovers, failures, punishments, policy changes.
    ///
    /// Each with its wall-clock time (RFC 3339, UTC) and kind. With --follow, new events are
    /// printed as they happen (one JSON object per line with --json) until interrupted or the
    /// daemon stops.
    Events {
        #[arg(value_parser = bond_name)]
        bond: String,
        #[arg(long)]
        json: bool,
        /// Keep printing events as they happen.
        #[arg(long, short)]
        follow: bool,
    },
    /// Switch a running bond to another policy (a standard one or one from its configuration).
    ///
    /// Standard policies: none, active-backup, broadcast, balance-rr, balance-xor,
    /// balance-aware. The switch is atomic: every packet sees the old or the new policy.
    SetPolicy {
        #[arg(value_parser = bond_name)]
        bond: String,
        policy: String,
    },
    /// Change options of a running bond, without losing traffic.
    ///
    /// Takes bonding.ko or ZeroTier spellings (miimon=50, updelay=200 or upDelay=200,
    /// failoverInterval=500, lacp_rate=fast, num_grat_arp=3, ...). Every value is checked as
    /// in the file; one bad option and nothing changes. Policy options change the bond's
    /// policy in force (under its name); the change lasts until the next reload or restart,
    /// which apply the file again.
    #[command(after_long_help = crate::config::options::live_option_list_help())]
    Set {
        #[arg(value_parser = bond_name)]
        bond: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        options: Vec<String>,
    },
    /// Re-read the configuration file and put it in force on the daemon's running bonds.
    ///
    /// Checked whole before anything changes: a bad file is refused with its error and the
    /// bonds keep running as they were. Then, per bond and each without losing packets:
    /// members added (taken before they carry traffic), members removed (traffic moved off
    /// first), addresses, link monitoring, and the policy (one atomic switch). Bonds new in
    /// the file are started. Sending SIGHUP to the daemon does the same.
    Reload {
        /// Any bond the daemon runs (the reload applies to all of them).
        #[arg(value_parser = bond_name)]
        bond: String,
        /// Load this file instead of the one the daemon was started with.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Add an interface to a running bond.
    ///
    /// It takes the bond's MAC address (its own is restored when it leaves) and carries traffic
    /// from the next packet. Flows on other members stay there, except the share balance-aware
    /// gives the new member and, as in bonding, balance-xor flows re-hashed over one more
    /// member.
    AddLink {
        #[arg(value_parser = bond_name)]
        bond: String,
        #[arg(value_parser = bond_name)]
        link: String,
    },
    /// Remove a member from a running bond.
    ///
    /// Its traffic moves to the other members first; it leaves once no packet can still be
    /// sent on it, and gets its own settings back. Traffic the far end still sends on it is
    /// not received by the bond: remove a link on both ends.
    RemoveLink {
        #[arg(value_parser = bond_name)]
        bond: String,
        #[arg(value_parser = bond_name)]
        link: String,
    },
    /// Remove a bond and restore its members, whether a daemon runs it or not (after SIGKILL,
    /// or `up --persist`).
    Down {
        #[arg(value_parser = bond_name)]
        bond: String,
    },
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    ///
    ///   bondctl completions bash > /usr/share/bash-completion/completions/bondctl
    #[command(verbatim_doc_comment)]
    Completions {
        #[arg(value_enum)]
        shell: crate::manual::Shell,
    },
    /// Write the man pages (bondctl.8 and one per subcommand) into DIR (`cargo xtask dist`).
    #[command(hide = true)]
    ManPages { dir: PathBuf },
    /// Validate a configuration (file or bonding.ko options) without applying it.
    ///
    /// Reports the first problem with the file, line, key and reason; settings that load but
    /// change nothing here as warnings; and interfaces that do not exist in this network
    /// namespace (which `bondctl up` would refuse).
    Check {
        #[command(flatten)]
        source: Source,
    },
    /// Convert an existing bond's definition into this project's YAML configuration.
    ///
    /// Reads netplan YAML, /etc/network/interfaces (ifenslave's bond-* options),
    /// NetworkManager keyfiles, systemd-networkd .netdev/.network units, a running bond's
    /// /sys/class/net/BOND/bonding directory or its /proc/net/bonding/BOND file; the kind is
    /// told from the content, or given with --from. Options with no equivalent here are named
    /// in `# not imported` comments and on stderr; on an error nothing is written.
    ///
    ///   bondctl import /etc/netplan/01-bond.yaml -o /etc/bondctl/bond.yaml
    ///   bondctl import /etc/systemd/network/10-bond0.netdev /etc/systemd/network/*.network
    ///   bondctl import /sys/class/net/bond0/bonding
    ///   bondctl check --config /etc/bondctl/bond.yaml
    #[command(verbatim_doc_comment)]
    Import {
        /// The kind of definition [default: told from the files].
        #[arg(long, value_enum)]
        from: Option<crate::import::Source>,
        /// Write the configuration to FILE [default: stdout].
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Files (several for NetworkManager and networkd; a directory: its files), or a
        /// bond's sysfs directory.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Where a configuration comes from: a file, or one bond described by bonding.ko options.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// Configuration file: YAML, or JSON as ZeroTier's local.conf (comments and trailing commas
    /// allowed) for *.json files and text starting with `{`.
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["links", "address", "options"])]
    config: Option<PathBuf>,
    /// With --config: run only this bond of the file. Without: the bond's name [default: bond0].
    #[arg(long, value_name = "BOND", value_parser = bond_name)]
    bond: Option<String>,
    /// The members, in order (without --config).
    #[arg(long, value_name = "IF,IF,...", value_delimiter = ',', required_unless_present = "config")]
    links: Vec<String>,
    /// An address for the bond device, ADDR/PREFIX (repeatable).
    #[arg(long, value_name = "ADDR/PREFIX")]
    address: Vec<String>,
    /// bonding.ko options (see the list with --help).
    #[arg(value_name = "KEY=VALUE", long_help = crate::config::options::kernel_option_list())]
    options: Vec<String>,
}

impl Source {
    /// The validated configuration, and the bond to run (None: all of the file's).
    fn load(&self) -> anyhow::Result<(config::Config, Option<String>, PathBuf)> {
        match &self.config {
            Some(path) => Ok((config::load(path)?, self.bond.clone(), path.clone())),
            None => {
                let name = self.bond.clone().unwrap_or_else(|| config::IMPLICIT_BOND.to_string());
                let yaml = config::bond_yaml(&name, &self.links, &self.address, &self.options).map_err(|e| anyhow::anyhow!("{e}"))?;
                let path = PathBuf::from("(command line)");
                // Lines of the generated YAML would mean nothing to the user.
                let cfg = config::parse(&path, &yaml).map_err(|e| config::ConfigError { line: None, ..e })?;
                Ok((cfg, Some(name), path))
            }
        }
    }
}

impl Command {
    pub fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Up { source, persist, metrics, ebpf_log } => {
                require_root()?;
                if ebpf_log {
                    crate::ebpf_log::enable();
                }
                let (config, only, path) = source.load()?;
                for w in &config.warnings {
                    tracing::warn!("{w}");
                }
                let source = source.config.is_some().then(|| std::path::absolute(&path).unwrap_or(path));
                runtime()?.block_on(daemon::run(daemon::Options { config, source, only, persist, metrics }))
            }
            Command::Status { bond, json } => status(bond, json),
            Command::Links { bond, json } => {
                let s = one_status(&bond)?;
                print_json_or(json, &s.members, || crate::status::render_links(&s))
            }
            Command::Stats { bond, json } => {
                let s = one_status(&bond)?;
                let stats = serde_json::json!({ "bond": s.name, "counters": s.counters, "members": s.members });
                print_json_or(json, &stats, || crate::status::render_stats(&s))
            }
            Command::Events { bond, json, follow } => events(&bond, json, follow),
            Command::Flows { bond, top, json } => {
                require_root()?;
                match control::request(&bond, &Request::Flows { top })? {
                    Response::Flows { flows } => print_json_or(json, &flows, || crate::status::FlowStatus::render_table(&flows)),
                    Response::Error { error } => bail!("{bond}: {error}"),
                    other => bail!("unexpected answer: {other:?}"),
                }
            }
            Command::SetPolicy { bond, policy } => change(&bond, Request::SetPolicy { policy }),
            Command::Set { bond, options } => change(&bond, Request::Set { options }),
            Command::Reload { bond, config } => {
                let config = config.map(|c| std::path::absolute(&c).unwrap_or(c));
                change(&bond, Request::Reload { config })
            }
            Command::AddLink { bond, link } => change(&bond, Request::AddLink { link }),
            Command::RemoveLink { bond, link } => change(&bond, Request::RemoveLink { link }),
            Command::Down { bond } => {
                require_root()?;
                if control::running_bonds().contains(&bond) {
                    return change(&bond, Request::Down);
                }
                let message = runtime()?.block_on(async {
                    let nl = crate::netdev::Netdev::connect()?;
                    crate::bond::remove_orphan(&nl, &bond).await
                })?;
                println!("{message}");
                Ok(())
            }
            Command::Completions { shell } => crate::manual::completions(shell, &mut std::io::stdout()),
            Command::ManPages { dir } => crate::manual::man_pages(&dir),
            Command::Check { source } => check(&source),
            Command::Import { from, output, paths } => crate::import::run(from, output.as_deref(), &paths),
        }
    }
}

/// `bondctl check`: the configuration, its warnings, and the interfaces it names.
fn check(source: &Source) -> anyhow::Result<()> {
    let (cfg, _, path) = source.load()?;
    for w in &cfg.warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    let mut missing = Vec::new();
    for b in &cfg.bonds {
        for l in &b.links {
            if sys::ifindex(l).is_none() {
                missing.push(format!("{}: bonds.{}.links: interface {l} does not exist here", path.display(), b.name));
            }
        }
    }
    for m in &missing {
        eprintln!("{m}");
    }
    if !missing.is_empty() {
        bail!("{} interface(s) missing; `bondctl up` would refuse this configuration", missing.len());
    }
    if cfg.bonds.is_empty() {
        println!("{}: OK, but it defines no bond: name links under bonds (or in the default policy)", path.display());
    } else {
        println!("{}: OK ({} bond(s))", path.display(), cfg.bonds.len());
    }
    Ok(())
}

/// Sends a request that changes something and prints the daemon's answer.
fn change(bond: &str, request: Request) -> anyhow::Result<()> {
    require_root()?;
    match control::request(bond, &request)? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        Response::Error { error } => bail!("{error}"),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn one_status(bond: &str) -> anyhow::Result<crate::status::BondStatus> {
    require_root()?;
    match control::request(bond, &Request::Status)? {
        Response::Status { status } => Ok(*status),
        Response::Error { error } => bail!("{bond}: {error}"),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn events_after(bond: &str, after: u64) -> anyhow::Result<Vec<crate::status::Event>> {
    match control::request(bond, &Request::Events { after })? {
        Response::Events { events } => Ok(events),
        Response::Error { error } => bail!("{bond}: {error}"),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// `bondctl events [--follow]`: the kept events, then (following) new ones as they come; a
/// poll every 200 ms is cheap for the daemon (it copies only what is new).
fn events(bond: &str, json: bool, follow: bool) -> anyhow::Result<()> {
    require_root()?;
    let first = events_after(bond, 0)?;
    if !follow {
        return print_json_or(json, &first, || first.iter().map(|e| format!("{e}\n")).collect());
    }
    let print = |events: &[crate::status::Event]| -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for e in events {
            if json { writeln!(out, "{}", serde_json::to_string(e)?)? } else { writeln!(out, "{e}")? }
        }
        out.flush()?;
        Ok(())
    };
    print(&first)?;
    let mut last = first.last().map_or(0, |e| e.seq);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let new = match events_after(bond, last) {
            Ok(new) => new,
            // The daemon stopped (down, SIGTERM): nothing more will come.
            Err(e) if !control::running_bonds().iter().any(|b| b == bond) => {
                eprintln!("bondctl: {bond} stopped: {e:#}");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let Some(e) = new.last() {
            last = e.seq;
        }
        print(&new)?;
    }
}

fn print_json_or<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
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
    let all = bonds.iter().map(|b| one_status(b)).collect::<anyhow::Result<Vec<_>>>()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        let text: Vec<String> = all.iter().map(|s| s.render()).collect();
        print!("{}", text.join("\n"));
    }
    Ok(())
}

/// A bond or interface name as the kernel takes them: it names files and pins too, so `""`,
/// `.`, `..` and names with `/` are refused before anything uses them.
fn bond_name(s: &str) -> Result<String, String> {
    config::check_ifname(s).map(|()| s.to_string())
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
