//! A bond's status: the data model (`bondctl status --json`) and its text form, laid out like
//! `/proc/net/bonding/bond0`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::health::metrics::LinkMetrics;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BondStatus {
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    pub policy: PolicyStatus,
    /// Member carrying active-backup / none traffic.
    pub active: Option<String>,
    /// Config generation in force in the data plane.
    pub generation: u64,
    /// Changes of the active member (active-backup, none) and members leaving the bond's
    /// usable set (every policy) since the daemon started.
    #[serde(default)]
    pub failovers: u64,
    pub members: Vec<MemberStatus>,
    /// Peer-specific policies in force: traffic to `peer` uses `policy`.
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    pub counters: BondCounters,
    /// Recent events, oldest first.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Address/prefix or MAC address.
    pub peer: String,
    pub policy: String,
    /// The member carrying its traffic (active-backup, none).
    pub active: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub name: String,
    /// Standard policy the policy is based on.
    pub mode: String,
    pub xmit_hash_policy: String,
    pub packets_per_link: u32,
    pub balance_policy: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub slot: u8,
    pub ifindex: u32,
    /// "up" when the member may carry traffic, else "down".
    pub state: String,
    pub carrier: bool,
    pub admin_up: bool,
    pub usable: bool,
    pub active: bool,
    pub link_failures: u32,
    /// "up", or why not: "down: no carrier", "down: silent: no probe reply for 40 ms", ...
    pub health: String,
    /// Punishment left (ms), 0 when not punished.
    pub punished_ms: u64,
    /// Quality limits exceeded (avoided while any).
    pub violations: Vec<String>,
    /// Measured quality (round trips and loss from peer probes).
    pub quality: LinkMetrics,
    /// Quality score, 0.0 to 1.0.
    pub score: f64,
    /// Link speed the driver reports (Mb/s).
    pub speed_mbps: Option<u32>,
    pub tx_probes: u64,
    pub rx_probes: u64,
    pub probes_answered: u64,
    pub probe_errors: u64,
    pub perm_mac: String,
    /// Share of balance-aware buckets (0.0..=1.0), when the policy uses buckets.
    pub allocation: Option<f64>,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BondCounters {
    pub tx_no_member: u64,
    pub tx_no_config: u64,
    pub tx_unparsed: u64,
    pub tx_broadcast_copies: u64,
    pub rx_not_member: u64,
    pub rx_slow_protocol: u64,
    pub flows: u64,
}

impl BondStatus {
    /// The text form.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let p = &self.policy;
        let _ = writeln!(s, "Bond: {} (ifindex {}, MAC {})", self.name, self.ifindex, self.mac);
        let _ = writeln!(s, "Bonding Policy: {} (base {})", p.name, p.mode);
        match p.mode.as_str() {
            "balance-xor" => {
                let _ = writeln!(s, "Transmit Hash Policy: {}", p.xmit_hash_policy);
            }
            "balance-rr" => {
                let _ = writeln!(s, "Packets Per Link: {}", p.packets_per_link);
            }
            "balance-aware" => {
                let _ = writeln!(s, "Balance Policy: {}", p.balance_policy);
            }
            _ => {}
        }
        let up = self.members.iter().any(|m| m.usable);
        let _ = writeln!(s, "MII Status: {}", if up { "up" } else { "down" });
        if let Some(a) = &self.active {
            let _ = writeln!(s, "Currently Active Member: {a}");
        }
        for p in &self.peers {
            let active = p.active.as_ref().map(|a| format!(" (active {a})")).unwrap_or_default();
            let _ = writeln!(s, "Peer {}: policy {}{active}", p.peer, p.policy);
        }
        let c = &self.counters;
        let _ = writeln!(
            s,
            "Flows: {}  Dropped (no usable member): {}  Unparsed: {}  Broadcast copies: {}",
            c.flows, c.tx_no_member, c.tx_unparsed, c.tx_broadcast_copies
        );
        for m in &self.members {
            let _ = writeln!(s);
            let _ = writeln!(s, "Member Interface: {}", m.name);
            let _ = writeln!(s, "MII Status: {}", m.state);
            let _ = writeln!(
                s,
                "Carrier: {}  Admin: {}{}",
                if m.carrier { "yes" } else { "no" },
                if m.admin_up { "up" } else { "down" },
                if m.active { "  (active)" } else { "" }
            );
            let _ = writeln!(s, "Health: {}", m.health);
            if m.punished_ms > 0 {
                let _ = writeln!(s, "Punished: {} ms left", m.punished_ms);
            }
            for v in &m.violations {
                let _ = writeln!(s, "Avoided: {v}");
            }
            let _ = writeln!(s, "Link Failure Count: {}", m.link_failures);
            let q = &m.quality;
            if q.samples > 0 || q.plr > 0.0 {
                let _ = writeln!(
                    s,
                    "Quality: score {:.2}  lat {:.3} ms  ltm {:.3} ms  pdv {:.3} ms  plr {:.1}%  per {:.1}%  avl {:.1}%",
                    m.score,
                    q.lat,
                    q.ltm,
                    q.pdv,
                    q.plr * 100.0,
                    q.per * 100.0,
                    q.avl * 100.0
                );
            }
            let _ = writeln!(
                s,
                "Probes: {} sent, {} answered by the peer, {} answered for the peer, {} corrupt",
                m.tx_probes, m.rx_probes, m.probes_answered, m.probe_errors
            );
            let _ = writeln!(s, "Permanent HW addr: {}", m.perm_mac);
            if let Some(a) = m.allocation {
                let _ = writeln!(s, "Allocation: {:.1}%", a * 100.0);
            }
            let _ = writeln!(s, "TX: {} packets, {} bytes, {} errors", m.tx_packets, m.tx_bytes, m.tx_errors);
            let _ = writeln!(s, "RX: {} packets, {} bytes, {} dropped", m.rx_packets, m.rx_bytes, m.rx_dropped);
        }
        if !self.events.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "Recent events:");
            for e in &self.events {
                let _ = writeln!(s, "  {e}");
            }
        }
        s
    }
}

/// One flow of the flow table, for `bondctl flows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStatus {
    /// Source and destination: `ADDR:PORT` for TCP/UDP/SCTP, `ADDR` for other IP, MAC for non-IP.
    pub src: String,
    pub dst: String,
    /// "tcp", "udp", ..., a protocol number, or the EtherType of non-IP traffic.
    pub proto: String,
    /// Member it was last sent on ("-": broadcast or none).
    pub member: String,
    /// Estimated from a sample of the packets (see the README); exact for flow-static policies.
    pub packets: u64,
    pub bytes: u64,
    pub idle_ms: u64,
}

impl FlowStatus {
    pub fn render_table(flows: &[FlowStatus]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<44} {:<44} {:<6} {:<10} {:>12} {:>14} {:>9}",
            "SOURCE", "DESTINATION", "PROTO", "MEMBER", "PACKETS", "BYTES", "IDLE(ms)"
        );
        for f in flows {
            let _ = writeln!(
                s,
                "{:<44} {:<44} {:<6} {:<10} {:>12} {:>14} {:>9}",
                f.src, f.dst, f.proto, f.member, f.packets, f.bytes, f.idle_ms
            );
        }
        s
    }
}

/// `bondctl links`: one line per member.
pub fn render_links(b: &BondStatus) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<5} {:<7} {:<6} {:>6} {:>6} {:>9} {:>6} {:>12} {:>12}  HEALTH",
        "MEMBER", "STATE", "CARRIER", "ACTIVE", "ALLOC", "SCORE", "LAT(ms)", "LOSS", "TX_PACKETS", "RX_PACKETS"
    );
    for m in &b.members {
        let _ = writeln!(
            s,
            "{:<10} {:<5} {:<7} {:<6} {:>6} {:>6.2} {:>9.3} {:>5.1}% {:>12} {:>12}  {}",
            m.name,
            m.state,
            if m.carrier { "yes" } else { "no" },
            if m.active { "yes" } else { "" },
            m.allocation.map(|a| format!("{:.0}%", a * 100.0)).unwrap_or_else(|| "-".into()),
            m.score,
            m.quality.lat,
            m.quality.plr * 100.0,
            m.tx_packets,
            m.rx_packets,
            m.health
        );
    }
    s
}

/// `bondctl stats`: the bond's and each member's counters.
pub fn render_stats(b: &BondStatus) -> String {
    let c = &b.counters;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: flows {}  no usable member {}  unparsed {}  broadcast copies {}",
        b.name, c.flows, c.tx_no_member, c.tx_unparsed, c.tx_broadcast_copies
    );
    for m in &b.members {
        let _ = writeln!(
            s,
            "  {:<10} tx {} packets {} bytes {} errors  rx {} packets {} bytes {} dropped  probes {} sent {} answered",
            m.name, m.tx_packets, m.tx_bytes, m.tx_errors, m.rx_packets, m.rx_bytes, m.rx_dropped, m.tx_probes, m.rx_probes
        );
    }
    s
}
