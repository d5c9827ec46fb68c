//! A LAN as a bond meets it on a real host: a switch (a bridge in its own namespace, with
//! multicast snooping when asked) shared by one or more bonds and plain hosts that run nothing
//! of ours. What the plain hosts receive is what every host behind a real switch would.
//!
//! ```text
//!   netns B<n> (bonds)                 netns SW                  netns H<i> (plain hosts)
//!  +---------------------+           +-------------+           +----------------------+
//!  | bond0 192.0.2.(1+n) |==b<n>p<j>==|  bridge sw0 |--- h<i> --| eth0 192.0.2.(11+i)   |
//!  |  eth0 .. ethK-1     |           |             |           +----------------------+
//!  +---------------------+           +-------------+
//! ```
//!
//! Counters are nftables rules (`count`), read off the namespace they are in: outside the
//! bond, so they see what the wire carried.

use std::{fs, path::Path};

use anyhow::Context;

use crate::{Daemon, Netns, lab::TempDir};

/// The address of bond `n`.
pub fn bond_addr(n: usize) -> String {
    format!("192.0.2.{}", 1 + n)
}

/// The address of plain host `i`.
pub fn host_addr(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

/// IPv6 addresses, when the lab has IPv6.
pub fn bond_addr6(n: usize) -> String {
    format!("fd00::{}", 1 + n)
}
pub fn host_addr6(i: usize) -> String {
    format!("fd00::{}", 0x11 + i)
}

/// How to build the LAN.
#[derive(Debug, Clone, Default)]
pub struct LanOptions {
    /// Members per bond, one entry per bond.
    pub bonds: Vec<usize>,
    pub hosts: usize,
    /// YAML lines under each bond (`mode: 1`, ...), one entry per bond.
    pub bond_lines: Vec<String>,
    /// YAML put under `settings:` (ZeroTier policies).
    pub settings: String,
    /// IPv6 on the bonds and hosts (off: no stray neighbour discovery in counts).
    pub ipv6: bool,
    /// Multicast snooping with the bridge as querier, its queries `query_interval` s apart.
    pub snooping: Option<u32>,
    /// The bonds' devices made as earlier versions made them (an `ifb` with the first
    /// member's address), before their daemons start and take them.
    pub legacy_ifb: bool,
}

/// Field order matters: the daemons stop before the namespaces go.
pub struct Lan {
    pub daemons: Vec<Option<Daemon>>,
    pub bonds: Vec<Netns>,
    pub sw: Netns,
    pub hosts: Vec<Netns>,
    pub members: Vec<usize>,
    /// When the switch came up.
    since: std::time::Instant,
    dir: TempDir,
}

impl Lan {
    pub fn start(o: LanOptions) -> anyhow::Result<Lan> {
        let dir = TempDir::new()?;
        let sw = Netns::new("ln-s-")?;
        let bonds = o.bonds.iter().map(|_| Netns::new("ln-b-")).collect::<anyhow::Result<Vec<_>>>()?;
        let hosts = (0..o.hosts).map(|_| Netns::new("ln-h-")).collect::<anyhow::Result<Vec<_>>>()?;
        let v6 = if o.ipv6 { "0" } else { "1" };
        for ns in std::iter::once(&sw).chain(&bonds).chain(&hosts) {
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", v6)?;
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", v6)?;
        }
        // The bridge's MLD querier needs a usable link-local address when it starts (with
        // one still in duplicate address detection it sends its next query 31 s later).
        sw.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        let mut bridge = vec!["link", "add", "sw0", "type", "bridge"];
        let interval = o.snooping.map(|s| (s * 100).to_string());
        if let Some(i) = &interval {
            // The bridge is the querier (for MLD it needs IPv6, on when the lab has it): a
            // snooping bridge that knows no querier floods every group instead.
            bridge.extend(["mcast_snooping", "1", "mcast_querier", "1", "mcast_query_interval", i]);
        }
        sw.ip(&bridge)?;
        sw.ip(&["link", "set", "sw0", "up"])?;
        for (n, (b, &k)) in bonds.iter().zip(&o.bonds).enumerate() {
            for j in 0..k {
                let port = format!("b{n}p{j}");
                sw.ip(&["link", "add", &port, "type", "veth", "peer", "name", &format!("eth{j}"), "netns", b.name()])?;
                sw.ip(&["link", "set", &port, "master", "sw0", "up"])?;
            }
        }
        for (i, h) in hosts.iter().enumerate() {
            let port = format!("h{i}");
            sw.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", h.name()])?;
            sw.ip(&["link", "set", &port, "master", "sw0", "up"])?;
            h.ip(&["addr", "add", &format!("{}/24", host_addr(i)), "dev", "eth0"])?;
            if o.ipv6 {
                h.ip(&["addr", "add", &format!("{}/64", host_addr6(i)), "dev", "eth0", "nodad"])?;
            }
            h.ip(&["link", "set", "eth0", "up"])?;
            // Multicast goes out of eth0 (no default route here).
            h.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        let mut lan = Lan { daemons: Vec::new(), bonds, sw, hosts, members: o.bonds.clone(), since: std::time::Instant::now(), dir };
        for n in 0..o.bonds.len() {
            let links: Vec<String> = (0..o.bonds[n]).map(|j| format!("eth{j}")).collect();
            let mut addresses = vec![format!("{}/24", bond_addr(n))];
            if o.ipv6 {
                addresses.push(format!("{}/64", bond_addr6(n)));
            }
            let mut text = format!("bonds:\n  bond0:\n    links: [{}]\n    addresses: [{}]\n", links.join(", "), addresses.join(", "));
            for line in o.bond_lines.get(n).map_or("", String::as_str).lines() {
                text.push_str(&format!("    {line}\n"));
            }
            if !o.settings.is_empty() {
                text.push_str("settings:\n");
                for line in o.settings.lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
            if o.legacy_ifb {
                let b = &lan.bonds[n];
                let out = b.ip(&["-j", "link", "show", "eth0"])?;
                let mac = serde_json::from_str::<serde_json::Value>(&out)?[0]["address"].as_str().context("eth0's address")?.to_string();
                b.ip(&["link", "add", "bond0", "address", &mac, "type", "ifb"])?;
                b.ip(&["link", "set", "bond0", "arp", "on", "multicast", "on"])?;
            }
            let config = lan.dir.path().join(format!("bond{n}.yaml"));
            fs::write(&config, text)?;
            let d = Daemon::start(&lan.bonds[n], &config, "bond0", lan.dir.path()).with_context(|| format!("bond {n}"))?;
            lan.daemons.push(Some(d));
        }
        Ok(lan)
    }

    /// Waits until a snooping switch forwards groups by its table: a Linux bridge floods them
    /// for about 10 s after its querier starts, until the reports it asked for have come.
    pub fn wait_for_snooping(&self) {
        std::thread::sleep(std::time::Duration::from_secs(11).saturating_sub(self.since.elapsed()));
    }

    pub fn daemon(&self, n: usize) -> &Daemon {
        self.daemons[n].as_ref().expect("daemon running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The switch port of bond `n`'s member `j`.
    pub fn port(n: usize, j: usize) -> String {
        format!("b{n}p{j}")
    }

    /// Adds a counting rule to namespace `ns`'s netdev table `name`, on `dev`'s ingress: what
    /// arrives there matching `expr` (nftables syntax). Read it with [`count`].
    pub fn count_on(ns: &Netns, dir: &Path, name: &str, dev: &str, expr: &str) -> anyhow::Result<()> {
        let script =
            format!("table netdev {name} {{\n chain c {{ type filter hook ingress device \"{dev}\" priority 0; {expr} counter; }}\n}}\n");
        let path = dir.join(format!("{}-{name}.nft", ns.name()));
        fs::write(&path, script)?;
        ns.exec("nft", &["-f", &path.to_string_lossy()]).map(drop)
    }
}

/// The packets counted by table `name`'s rule (see [`Lan::count_on`]).
pub fn count(ns: &Netns, name: &str) -> anyhow::Result<u64> {
    let out = ns.exec("nft", &["-j", "list", "table", "netdev", name])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let rules = v["nftables"].as_array().context("nft output")?;
    for r in rules {
        if let Some(expr) = r["rule"]["expr"].as_array() {
            for e in expr {
                if let Some(p) = e["counter"]["packets"].as_u64() {
                    return Ok(p);
                }
            }
        }
    }
    anyhow::bail!("no counter in table {name}")
}
