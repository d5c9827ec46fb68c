//! Two sites bonded over the WAN, the case ZeroTier's users bond for: each site has one uplink
//! per path, each path goes through the link emulator with its own delay and loss, a VXLAN
//! tunnel runs over each path, and each site's bond has the tunnels as members.
//!
//! ```text
//!   site A                         wire (emulators)               site B
//!   bond0 = vx0 + vx1 + ...         a<i> <-> b<i>  (path i)        bond0 = vx0 + vx1 + ...
//!   vx<i> over up<i> 203.0.113.x                                   vx<i> over up<i>
//! ```

use std::path::Path;

use anyhow::Context;

use crate::{
    Daemon, Netns,
    emu::{Emulator, Impairment},
    lab::TempDir,
};

pub const BOND_A: &str = "192.0.2.1";
pub const BOND_B: &str = "192.0.2.2";

/// Two sites joined by emulated paths. Field order is drop order: the daemons stop first, then
/// the emulators, then the namespaces go.
pub struct Wan {
    pub a: Daemon,
    pub b: Daemon,
    pub emulators: Vec<Emulator>,
    pub site_a: Netns,
    pub site_b: Netns,
    pub wire: Netns,
    dir: TempDir,
}

/// What carries the bond's frames over a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan,
    /// Ethernet over GRE (not in every kernel: see [`Tunnel::available`]).
    Gretap,
}

impl Tunnel {
    /// Whether this kernel can make such a tunnel (tried in a namespace of its own).
    pub fn available(self) -> bool {
        let Ok(ns) = Netns::new("tun-") else { return false };
        match self {
            Tunnel::Vxlan => ns.ip(&["link", "add", "t0", "type", "vxlan", "id", "1", "dstport", "4789"]).is_ok(),
            Tunnel::Gretap => ns.ip(&["link", "add", "t0", "type", "gretap", "local", "203.0.113.1", "remote", "203.0.113.2"]).is_ok(),
        }
    }

    /// `ip link add` arguments for tunnel `i` from `local` to `remote` over device `dev`.
    fn args(self, name: &str, i: usize, local: &str, remote: &str, dev: &str) -> Vec<String> {
        let mut a: Vec<String> = ["link", "add", name, "type"].iter().map(|s| s.to_string()).collect();
        match self {
            Tunnel::Vxlan => a.extend(
                ["vxlan", "id", &(100 + i).to_string(), "local", local, "remote", remote, "dstport", "4789", "dev", dev].map(String::from),
            ),
            Tunnel::Gretap => a.extend(["gretap", "local", local, "remote", remote, "dev", dev].map(String::from)),
        }
        a
    }
}

impl Wan {
    /// One path per entry of `paths` (its impairment, both ways), a VXLAN tunnel over each, and
    /// a bond on each site with `policy_yaml` (a policy's YAML mapping, e.g.
    /// `{ basePolicy: active-backup }`).
    pub fn start(paths: &[Impairment], policy_yaml: &str) -> anyhow::Result<Wan> {
        Wan::start_with(paths, policy_yaml, Tunnel::Vxlan)
    }

    /// [`Wan::start`] with tunnels of kind `tunnel` (named `vx<i>` whatever their kind).
    pub fn start_with(paths: &[Impairment], policy_yaml: &str, tunnel: Tunnel) -> anyhow::Result<Wan> {
        let dir = TempDir::new()?;
        let (site_a, site_b, wire) = (Netns::new("wan-a-")?, Netns::new("wan-b-")?, Netns::new("wan-w-")?);
        for ns in [&site_a, &site_b, &wire] {
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        }
        let mut emulators = Vec::new();
        for (i, imp) in paths.iter().enumerate() {
            let up = format!("up{i}");
            for (end, site) in [("a", &site_a), ("b", &site_b)] {
                wire.ip(&["link", "add", &format!("{end}{i}"), "type", "veth", "peer", "name", &up, "netns", site.name()])?;
                wire.ip(&["link", "set", &format!("{end}{i}"), "up"])?;
                site.ip(&["link", "set", &up, "up"])?;
                // The emulator forwards frames as they leave: checksums complete, no GSO.
                site.exec("ethtool", &["-K", &up, "tx", "off"])?;
            }
            let (ip_a, ip_b) = (format!("203.0.113.{}", 4 * i + 1), format!("203.0.113.{}", 4 * i + 2));
            site_a.ip(&["addr", "add", &format!("{ip_a}/30"), "dev", &up])?;
            site_b.ip(&["addr", "add", &format!("{ip_b}/30"), "dev", &up])?;
            let emu = Emulator::start(&wire, &format!("a{i}"), &format!("b{i}"))?;
            emu.set_both(imp.clone());
            emulators.push(emu);
            for (site, local, remote) in [(&site_a, &ip_a, &ip_b), (&site_b, &ip_b, &ip_a)] {
                let vx = format!("vx{i}");
                let args = tunnel.args(&vx, i, local, remote, &up);
                site.ip(&args.iter().map(String::as_str).collect::<Vec<_>>())
                    .with_context(|| format!("a {tunnel:?} tunnel over the path"))?;
                site.ip(&["link", "set", &vx, "up"])?;
            }
        }
        let members: Vec<String> = (0..paths.len()).map(|i| format!("vx{i}")).collect();
        let start = |name: &str, site: &Netns, addr: &str| -> anyhow::Result<Daemon> {
            let config = dir.path().join(format!("{name}.yaml"));
            let text = format!(
                "bonds:\n  bond0:\n    links: [{}]\n    addresses: [{addr}/24]\n    policy: p\nsettings:\n  policies:\n    p: {policy_yaml}\n",
                members.join(", ")
            );
            std::fs::write(&config, text)?;
            Daemon::start(site, &config, "bond0", dir.path()).with_context(|| format!("starting site {name}'s bond"))
        };
        let a = start("a", &site_a, BOND_A)?;
        let b = start("b", &site_b, BOND_B)?;
        Ok(Wan { a, b, emulators, site_a, site_b, wire, dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether pings of `size` bytes from A to B, not fragmented, come back (one of three is
    /// enough: the paths may lose some).
    pub fn ping(&self, size: u32) -> bool {
        self.site_a.exec("ping", &["-q", "-c", "3", "-i", "0.1", "-W", "2", "-s", &size.to_string(), "-M", "do", BOND_B]).is_ok()
    }
}
