//! A bond on a switch with plain hosts: for the modes that need no bond on the far side
//! (balance-tlb, balance-alb). A bridge in its own namespace stands in for the switch.
//!
//! ```text
//!   netns A                      netns SW                 netns P<i> (plain hosts)
//!  +--------------------+      +--------------+          +---------------------+
//!  | bond 192.0.2.1/24  |      |              |--- p<i> -|eth0 192.0.2.(11+i)  |
//!  |  eth0 .. ethN-1    |=a<j>=|  bridge sw0  |          +---------------------+
//!  +--------------------+      +--------------+
//! ```

use std::{fs, net::UdpSocket, path::Path, time::Duration};

use anyhow::Context;

use crate::{
    Daemon, Netns,
    lab::TempDir,
    net::{parse_payload, set_rcvbuf},
};

pub const BOND_ADDR: &str = "192.0.2.1";

/// The address of peer `i`.
pub fn peer_addr(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

/// Field order matters: the daemon stops before the namespaces go.
pub struct SwitchLab {
    pub daemon: Option<Daemon>,
    pub bond: String,
    pub a: Netns,
    pub sw: Netns,
    pub peers: Vec<Netns>,
    pub links: usize,
    dir: TempDir,
}

impl SwitchLab {
    /// A bond of `links` members with the YAML `bond_lines` (e.g. `mode: balance-alb`), and
    /// `peers` hosts.
    pub fn start(links: usize, peers: usize, bond_lines: &str) -> anyhow::Result<SwitchLab> {
        let dir = TempDir::new()?;
        let a = Netns::new("sl-a-")?;
        let sw = Netns::new("sl-s-")?;
        let mut hosts = Vec::new();
        for _ in 0..peers {
            hosts.push(Netns::new("sl-p-")?);
        }
        for ns in std::iter::once(&a).chain([&sw]).chain(&hosts) {
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        }
        sw.ip(&["link", "add", "sw0", "type", "bridge"])?;
        sw.ip(&["link", "set", "sw0", "up"])?;
        for j in 0..links {
            let port = format!("a{j}");
            sw.ip(&["link", "add", &port, "type", "veth", "peer", "name", &format!("eth{j}"), "netns", a.name()])?;
            sw.ip(&["link", "set", &port, "master", "sw0", "up"])?;
            a.ip(&["link", "set", &format!("eth{j}"), "up"])?;
        }
        for (i, p) in hosts.iter().enumerate() {
            let port = format!("p{i}");
            sw.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", p.name()])?;
            sw.ip(&["link", "set", &port, "master", "sw0", "up"])?;
            p.ip(&["addr", "add", &format!("{}/24", peer_addr(i)), "dev", "eth0"])?;
            p.ip(&["link", "set", "eth0", "up"])?;
        }
        // As on a real host: namespaces keep bonds of one name apart.
        let bond = "bond0".to_string();
        let members: Vec<String> = (0..links).map(|j| format!("eth{j}")).collect();
        let mut text = format!("bonds:\n  {bond}:\n    links: [{}]\n    addresses: [{BOND_ADDR}/24]\n", members.join(", "));
        for line in bond_lines.lines() {
            text.push_str(&format!("    {line}\n"));
        }
        let config = dir.path().join(format!("{bond}.yaml"));
        fs::write(&config, text)?;
        let mut lab = SwitchLab { daemon: None, bond: bond.clone(), a, sw, peers: hosts, links, dir };
        lab.daemon = Some(Daemon::start(&lab.a, &config, &bond, lab.dir.path())?);
        Ok(lab)
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Cuts member `j` at the switch: its carrier goes.
    pub fn cut(&self, j: usize) -> anyhow::Result<()> {
        self.sw.ip(&["link", "set", &format!("a{j}"), "down"]).map(drop)
    }

    /// Makes member `j`'s cable silent without touching its carrier: the switch port drops
    /// what the bond sends on it (before the switch learns from it) and sends it nothing.
    pub fn silence(&self, j: usize) -> anyhow::Result<()> {
        let script = format!(
            "table netdev silence{j} {{\n chain in {{ type filter hook ingress device \"a{j}\" priority 0; policy drop; }}\n              chain out {{ type filter hook egress device \"a{j}\" priority 0; policy drop; }}\n}}\n"
        );
        let path = self.dir.path().join(format!("silence-{j}.nft"));
        fs::write(&path, script)?;
        self.sw.exec("nft", &["-f", &path.to_string_lossy()]).map(drop)
    }

    /// The switch port its forwarding table has for `mac` (None: not learnt).
    pub fn port_of(&self, mac: &str) -> Option<String> {
        let out = self.sw.exec("bridge", &["-j", "fdb", "show", "br", "sw0"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v.as_array()?.iter().find(|e| e["mac"] == mac && e["ifname"].is_string()).and_then(|e| e["ifname"].as_str()).map(str::to_string)
    }

    /// Kernel counters of the switch's ports to the bond (`SW:a<j>`), per member: their rx is
    /// what the bond sent on member j, their tx what the switch delivered to it (counted
    /// outside the bond's namespace).
    pub fn port_counters(&self) -> anyhow::Result<Vec<crate::ns::Counters>> {
        (0..self.links).map(|j| self.sw.counters(&format!("a{j}"))).collect()
    }

    /// The MAC address peer `i` has for the bond's address (None: no complete entry).
    pub fn peer_entry(&self, i: usize) -> Option<String> {
        let out = self.peers[i].ip(&["-j", "neigh", "show", BOND_ADDR, "dev", "eth0"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v[0]["lladdr"].as_str().map(str::to_string)
    }

    /// Every peer pings the bond once (they learn its address the ARP way).
    pub fn peers_ping(&self) -> anyhow::Result<()> {
        for p in &self.peers {
            p.exec("ping", &["-q", "-c", "1", "-W", "2", BOND_ADDR]).with_context(|| format!("ping from {}", p.name()))?;
        }
        Ok(())
    }

    /// Each peer sends `count` datagrams to the bond; returns how many arrived from each.
    pub fn peers_send(&self, count: u64, port: u16) -> anyhow::Result<Vec<u64>> {
        let rx = self.a.enter(|| UdpSocket::bind((BOND_ADDR, port)))??;
        rx.set_read_timeout(Some(Duration::from_millis(300)))?;
        set_rcvbuf(&rx, 16 << 20);
        for (i, p) in self.peers.iter().enumerate() {
            let tx = p.enter(|| UdpSocket::bind((peer_addr(i).as_str(), 0)))??;
            for seq in 0..count {
                tx.send_to(&crate::net::payload(seq, i as u32, 200), (BOND_ADDR, port))?;
                if seq % 32 == 31 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let mut got = vec![0u64; self.peers.len()];
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            if let Some((_, flow)) = parse_payload(&buf[..n])
                && let Some(g) = got.get_mut(flow as usize)
            {
                *g += 1;
            }
        }
        Ok(got)
    }

    /// The bond sends `count` datagrams on each of `flows` flows to every peer; returns how many
    /// each peer received.
    pub fn bond_sends(&self, flows: u16, count: u64, port: u16) -> anyhow::Result<Vec<u64>> {
        let mut receivers = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            let r = p.enter(|| UdpSocket::bind((peer_addr(i).as_str(), port)))??;
            r.set_read_timeout(Some(Duration::from_millis(300)))?;
            set_rcvbuf(&r, 16 << 20);
            receivers.push(r);
        }
        for f in 0..flows {
            let tx = self.a.enter(|| UdpSocket::bind((BOND_ADDR, port + 1 + f)))??;
            for (i, _) in self.peers.iter().enumerate() {
                for seq in 0..count {
                    tx.send_to(&crate::net::payload(seq, i as u32, 200), (peer_addr(i).as_str(), port))?;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for r in &receivers {
            let mut n = 0;
            while r.recv(&mut buf).is_ok() {
                n += 1;
            }
            got.push(n);
        }
        Ok(got)
    }
}
