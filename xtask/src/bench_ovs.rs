//! Open vSwitch's user-space bond as the bench's point of comparison: an Open vSwitch on each
//! side of the lab (`datapath_type=netdev`, as the tests run it), each with bridge `br0` and a
//! bond `lag` over three veth links of its own (`ovs0`..`ovs2`) joining the same two
//! namespaces as the bond's links and the plain path. Traffic between the two `br0` addresses
//! crosses both bridges and one of their bonds.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bond_tests::{Lab, lab::Side, ovs::Ovs};

/// The addresses of A's and B's `br0`.
pub const ADDRS: (&str, &str) = ("203.0.113.1", "203.0.113.2");
const LINKS: usize = 3;

/// Open vSwitch's bond modes measured, with the label the table gives each.
pub const MODES: [(&str, &str); 2] = [("balance-tcp", "ovs balance-tcp"), ("active-backup", "ovs active-backup")];

/// Both sides' Open vSwitch (stopped on drop; their links go with the lab's namespaces).
pub struct OvsPair {
    sides: [Ovs; 2],
}

impl OvsPair {
    pub fn start(lab: &Lab) -> anyhow::Result<OvsPair> {
        for i in 0..LINKS {
            let name = format!("ovs{i}");
            lab.a.ns.ip(&["link", "add", &name, "type", "veth", "peer", "name", &name, "netns", lab.b.ns.name()])?;
        }
        let a = start_side(lab, &lab.a, "ovs-a", ADDRS.0)?;
        let b = start_side(lab, &lab.b, "ovs-b", ADDRS.1)?;
        Ok(OvsPair { sides: [a, b] })
    }

    /// Switches both bonds to `mode` (balance-tcp needs LACP, which both run actively at the
    /// fast rate; active-backup runs without, both sides preferring `ovs0`: each takes frames
    /// only on its own active member) and waits until A reaches B through them.
    pub fn set_mode(&self, lab: &Lab, mode: &str) -> anyhow::Result<()> {
        let lacp = if mode == "balance-tcp" { "lacp=active" } else { "lacp=off" };
        for ovs in &self.sides {
            let mode = format!("bond_mode={mode}");
            ovs.vsctl(&["set", "port", "lag", &mode, lacp, "other_config:lacp-time=fast", "other_config:bond-primary=ovs0"])?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if lab.a.ns.exec("ping", &["-q", "-c", "1", "-W", "1", ADDRS.1]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let show = self.sides[0].appctl(&["bond/show", "lag"]).unwrap_or_default();
                bail!("Open vSwitch's {mode} bond does not carry traffic within 30 s:\n{show}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One side: Open vSwitch with `br0` (`addr`/24) and the bond over `ovs0`..`ovs2`.
fn start_side(lab: &Lab, side: &Side, name: &str, addr: &str) -> anyhow::Result<Ovs> {
    // The user-space datapath leaves the kernel's stack on the links too: without arp_ignore it
    // would answer ARP for br0's address from a link's own MAC.
    side.ns.sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
    for i in 0..LINKS {
        let link = format!("ovs{i}");
        // The stack sends nothing of its own on them (router solicitations, MLD).
        side.ns.sysctl(&format!("net.ipv6.conf.{link}.disable_ipv6"), "1")?;
        // Open vSwitch's user-space datapath over veth does not complete partial checksums.
        side.ns.exec("ethtool", &["-K", &link, "tx", "off"])?;
        side.ns.ip(&["link", "set", &link, "up"])?;
    }
    let ovs = Ovs::start(&side.ns, &lab.dir().join(name)).context("starting Open vSwitch")?;
    ovs.vsctl(&["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"])?;
    ovs.vsctl(&["add-bond", "br0", "lag", "ovs0", "ovs1", "ovs2"])?;
    side.ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "br0"])?;
    side.ns.ip(&["link", "set", "br0", "up"])?;
    side.ns.exec("ethtool", &["-K", "br0", "tx", "off"])?;
    Ok(ovs)
}
