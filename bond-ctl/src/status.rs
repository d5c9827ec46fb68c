//! A bond's status: the data model (`bondctl status --json`) and its text form, laid out like
//! `/proc/net/bonding/bond0`.

use std::{fmt::Write, time::SystemTime};

use bond_common::config::{Balance, Mode, XmitHash};
use serde::{Deserialize, Serialize};

use crate::{health::metrics::LinkMetrics, lacp::LacpStatus};

/// The data plane's enums (no_std, without serde) in JSON by their configuration names.
mod by_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub trait Named: Sized + Copy {
        fn name(self) -> &'static str;
        fn from_name(s: &str) -> Option<Self>;
    }

    macro_rules! named {
        ($($t:ty),*) => {$(
            impl Named for $t {
                fn name(self) -> &'static str { <$t>::name(self) }
                fn from_name(s: &str) -> Option<Self> { <$t>::from_name(s) }
            }
        )*};
    }
    named!(super::Mode, super::XmitHash, super::Balance);

    pub fn serialize<T: Named, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        T::from_name(&s).ok_or_else(|| D::Error::custom(format!("unknown name {s:?}")))
    }
}

/// What an event is about (`bondctl events`, the status's recent events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The bond came up, was adopted or rebuilt.
    Bond,
    /// The active member changed (active-backup, none).
    Active,
    /// A member failed or recovered.
    Health,
    /// A member may or may not carry traffic now.
    Usable,
    /// A member was punished for flapping or misbehaving, or readmitted.
    Punishment,
    /// A member went past its quality limits or back within them.
    Quality,
    /// The policy or settings changed (set-policy, set, reload).
    Config,
    /// A member joined or left.
    Member,
    /// 802.3ad.
    Lacp,
    /// MAC addresses moved (balance-tlb, balance-alb) or the bond's addresses were announced.
    Address,
    /// balance-aware moved busy buckets.
    Rebalance,
    /// Something went wrong that the bond survives.
    Warning,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Counts up from 1 for the daemon's life (`events --follow` asks for those after one).
    pub seq: u64,
    /// Wall-clock time, RFC 3339 in UTC with milliseconds.
    pub time: String,
    pub kind: EventKind,
    pub message: String,
}

impl Event {
    pub fn new(seq: u64, at: SystemTime, kind: EventKind, message: String) -> Event {
        Event { seq, time: humantime::format_rfc3339_millis(at).to_string(), kind, message }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}  {:<10} {}", self.time, format!("{:?}", self.kind).to_lowercase(), self.message)
    }
}

/// Whether a member may carry traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Up,
    Down,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Up => "up",
            MemberState::Down => "down",
        }
    }
}

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
    /// Class-specific policies in force, in the order they are matched (most specific first).
    #[serde(default)]
    pub classes: Vec<ClassStatus>,
    pub counters: BondCounters,
    /// 802.3ad: LACP's view (actor, partner, aggregators).
    #[serde(default)]
    pub lacp: Option<LacpStatus>,
    /// How peer probes go out (None: the bond sends none), e.g. "to the peer (unicast)" or
    /// "discovering: no peer answers; ...".
    #[serde(default)]
    pub probes: Option<String>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStatus {
    /// What the class matches, e.g. "dscp 46" or "udp ports 5004-5010".
    pub class: String,
    pub policy: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
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
    #[serde(with = "by_name")]
    pub mode: Mode,
    #[serde(with = "by_name")]
    pub xmit_hash_policy: XmitHash,
    pub packets_per_link: u32,
    #[serde(with = "by_name")]
    pub balance_policy: Balance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub slot: u8,
    pub ifindex: u32,
    /// Whether the member may carry traffic.
    pub state: MemberState,
    pub carrier: bool,
    pub admin_up: bool,
    pub usable: bool,
    pub active: bool,
    /// Failures of the link itself (down, silent, dead ARP targets); not counted when LACP,
    /// punishment or quality limits hold a healthy member out.
    pub link_failures: u32,
    /// Why the member may not carry traffic (absent while it may): its failure, punishment,
    /// quality limits, or LACP not letting it distribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_usable: Option<String>,
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
    /// What the link delivered between the last two probe replies, as the peer's answering
    /// member counted it (bit/s; absent until two replies, or when the peer does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_bps: Option<f64>,
    /// The rate balance-aware `packet` without `speed` counts on for the link, as measured
    /// (bit/s; absent under other policies and until measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rate_bps: Option<f64>,
    /// Under the same policy, until the link is first found full: its capacity as the latest
    /// packet trains found it (bit/s; `health::capacity`), counted on meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_capacity_bps: Option<f64>,
    /// Under the same policy, while the link is up: the queue the latest probe found on its way
    /// out over the link (ms)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_found_ms: Option<f64>,
    /// ...and the one the packet schedule counted there as that probe left (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_counted_ms: Option<f64>,
    pub tx_probes: u64,
    pub rx_probes: u64,
    pub probes_answered: u64,
    pub probe_errors: u64,
    /// The peer's probe address its probes go to by unicast (None: broadcast, discovering).
    #[serde(default)]
    pub probe_peer: Option<String>,
    pub perm_mac: String,
    /// Share of balance-aware buckets (0.0..=1.0), when the policy uses buckets.
    pub allocation: Option<f64>,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    /// The member device's MAC address now (its own under balance-tlb / balance-alb).
    #[serde(default)]
    pub mac: String,
    /// balance-alb: peers told to send to this member.
    #[serde(default)]
    pub alb_peers: Option<usize>,
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
    /// Entries the flow table holds at most (`flow_table_size` in force).
    #[serde(default)]
    pub flow_table_size: u64,
}

impl BondStatus {
    /// The text form.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let p = &self.policy;
        let _ = writeln!(s, "Bond: {} (ifindex {}, MAC {})", self.name, self.ifindex, self.mac);
        let _ = writeln!(s, "Bonding Policy: {} (base {})", p.name, p.mode.name());
        match p.mode {
            Mode::BalanceXor | Mode::Lacp => {
                let _ = writeln!(s, "Transmit Hash Policy: {}", p.xmit_hash_policy.name());
            }
            Mode::BalanceTlb | Mode::BalanceAlb => {
                let by = if p.balance_policy == Balance::FlowDynamic {
                    "load".to_string()
                } else {
                    format!("hash {}", p.xmit_hash_policy.name())
                };
                let _ = writeln!(s, "Transmit Balancing: by {by}");
            }
            Mode::BalanceRr => {
                let _ = writeln!(s, "Packets Per Link: {}", p.packets_per_link);
            }
            Mode::BalanceAware => {
                let _ = writeln!(s, "Balance Policy: {}", p.balance_policy.name());
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
        for c in &self.classes {
            let _ = writeln!(s, "Class {}: policy {} ({} packets, {} bytes sent)", c.class, c.policy, c.tx_packets, c.tx_bytes);
        }
        if let Some(p) = &self.probes {
            let _ = writeln!(s, "Peer Probes: {p}");
        }
        let c = &self.counters;
        let _ = writeln!(
            s,
            "Flows: {} (table of {})  Dropped (no usable member): {}  Unparsed: {}  Broadcast copies: {}",
            c.flows, c.flow_table_size, c.tx_no_member, c.tx_unparsed, c.tx_broadcast_copies
        );
        if let Some(l) = &self.lacp {
            lacp_summary(&mut s, l);
        }
        for m in &self.members {
            self.render_member(&mut s, m);
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

    /// One member's section of [`BondStatus::render`], as `/proc/net/bonding` writes a slave's.
    fn render_member(&self, s: &mut String, m: &MemberStatus) {
        let _ = writeln!(s);
        let _ = writeln!(s, "Member Interface: {}", m.name);
        let _ = writeln!(s, "MII Status: {}", m.state.name());
        let _ = writeln!(
            s,
            "Carrier: {}  Admin: {}{}",
            if m.carrier { "yes" } else { "no" },
            if m.admin_up { "up" } else { "down" },
            if m.active { "  (active)" } else { "" }
        );
        let _ = writeln!(s, "Health: {}", m.health);
        if let Some(why) = &m.not_usable {
            let _ = writeln!(s, "Not usable: {why}");
        }
        if m.punished_ms > 0 {
            let _ = writeln!(s, "Punished: {} ms left", m.punished_ms);
        }
        for v in &m.violations {
            let _ = writeln!(s, "Avoided: {v}");
        }
        let _ = writeln!(s, "Link Failure Count: {}", m.link_failures);
        let q = &m.quality;
        if q.samples > 0 || q.plr > 0.0 || q.plr_congestion > 0.0 {
            let _ = writeln!(
                s,
                "Quality: score {:.2}  lat {:.3} ms  ltm {:.3} ms  pdv {:.3} ms  plr {:.1}%{}  per {:.1}%  avl {:.1}%",
                m.score,
                q.lat,
                q.ltm,
                q.pdv,
                q.plr * 100.0,
                if q.plr_congestion > 0.0 { format!(" (+{:.1}% in full queues)", q.plr_congestion * 100.0) } else { String::new() },
                q.per * 100.0,
                q.avl * 100.0
            );
        }
        if let Some(bps) = m.delivered_bps {
            let _ = writeln!(s, "Delivered: {:.3} Mbit/s between the last two probe replies, as the peer counted", bps / 1e6);
        }
        if let Some(bps) = m.measured_rate_bps {
            let _ = writeln!(s, "Measured rate: {:.3} Mbit/s (what balance-aware packet placement counts on)", bps / 1e6);
        }
        if let Some(bps) = m.train_capacity_bps {
            let _ = writeln!(s, "Train capacity: {:.3} Mbit/s (counted on until the link is first found full)", bps / 1e6);
        }
        if let (Some(found), Some(counted)) = (m.queue_found_ms, m.queue_counted_ms) {
            let _ = writeln!(s, "Queue: {found:.1} ms found by the latest probe, {counted:.1} ms counted by the packet schedule");
        }
        let _ = writeln!(
            s,
            "Probes: {} sent, {} answered by the peer, {} answered for the peer, {} bad (corrupt, forged or unexpected){}",
            m.tx_probes,
            m.rx_probes,
            m.probes_answered,
            m.probe_errors,
            m.probe_peer.as_ref().map(|p| format!(" (to the peer's {p})")).unwrap_or_default()
        );
        let _ = writeln!(s, "Permanent HW addr: {}", m.perm_mac);
        if m.mac != self.mac && !m.mac.is_empty() {
            let _ = writeln!(s, "Current HW addr: {}", m.mac);
        }
        if let Some(n) = m.alb_peers {
            let _ = writeln!(s, "Receiving from: {n} peer(s)");
        }
        if let Some(a) = m.allocation {
            let _ = writeln!(s, "Allocation: {:.1}%", a * 100.0);
        }
        let _ = writeln!(s, "TX: {} packets, {} bytes, {} errors", m.tx_packets, m.tx_bytes, m.tx_errors);
        let _ = writeln!(s, "RX: {} packets, {} bytes, {} dropped", m.rx_packets, m.rx_bytes, m.rx_dropped);
        if let Some(p) = self.lacp.as_ref().and_then(|l| l.ports.iter().find(|p| p.slot == m.slot)) {
            lacp_port(s, p);
        }
    }
}

/// The bond-wide 802.3ad lines, as `/proc/net/bonding` writes them.
fn lacp_summary(s: &mut String, l: &LacpStatus) {
    let _ = writeln!(s, "802.3ad info");
    let _ = writeln!(s, "LACP active: {}", if l.active { "on" } else { "off" });
    let _ = writeln!(s, "LACP rate: {}", if l.fast { "fast" } else { "slow" });
    let _ = writeln!(s, "Min links: {}", l.min_links);
    let _ = writeln!(s, "Aggregator selection policy (ad_select): {}", format!("{:?}", l.select).to_lowercase());
    let _ = writeln!(s, "System priority: {}", l.system_priority);
    let _ = writeln!(s, "System MAC address: {}", l.system);
    let Some(agg) = l.active_aggregator.and_then(|id| l.aggregators.iter().find(|a| a.id == id)) else {
        let _ = writeln!(s, "Active Aggregator: none");
        return;
    };
    let _ = writeln!(s, "Active Aggregator Info:");
    let _ = writeln!(s, "\tAggregator ID: {}", agg.id);
    let _ = writeln!(s, "\tNumber of ports: {}", agg.ports.len());
    let _ = writeln!(s, "\tActor Key: {}", agg.actor_key);
    let _ = writeln!(s, "\tPartner Key: {}", agg.partner_key);
    let _ = writeln!(s, "\tPartner Mac Address: {}", agg.partner_system);
    for other in l.aggregators.iter().filter(|a| a.id != agg.id) {
        let _ = writeln!(
            s,
            "Standby Aggregator {}: {} port(s), partner {} key {}",
            other.id,
            other.ports.len(),
            other.partner_system,
            other.partner_key
        );
    }
}

/// A member's 802.3ad lines: its aggregator and both sides' port details.
fn lacp_port(s: &mut String, p: &crate::lacp::PortStatus) {
    let agg = p.aggregator.map_or_else(|| "none".to_string(), |a| a.to_string());
    let _ = writeln!(s, "Aggregator ID: {agg}");
    let _ = writeln!(
        s,
        "LACP: {} / {} / {}, {} LACPDUs sent, {} received, {} bad",
        p.rx_state, p.mux_state, p.selected, p.pdus_sent, p.pdus_received, p.bad_pdus
    );
    for (who, d) in [("actor", &p.actor), ("partner", &p.partner)] {
        let _ = writeln!(s, "details {who} lacp pdu:");
        let _ = writeln!(s, "    system priority: {}", d.system_priority);
        let _ = writeln!(s, "    system mac address: {}", d.system);
        let _ = writeln!(s, "    {} key: {}", if who == "actor" { "port" } else { "oper" }, d.key);
        let _ = writeln!(s, "    port priority: {}", d.port_priority);
        let _ = writeln!(s, "    port number: {}", d.port);
        let _ = writeln!(s, "    port state: {}", d.state);
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
    /// Estimated from a sample of the packets (see the manual's How it works).
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
            m.state.name(),
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
    for c in &b.classes {
        let _ = writeln!(s, "  class {} (policy {}): tx {} packets {} bytes", c.class, c.policy, c.tx_packets, c.tx_bytes);
    }
    s
}
