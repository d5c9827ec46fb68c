//! The validated configuration. Everything here has passed [`super::resolve`]: names resolve,
//! values are in range, links exist in their bond.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use bond_common::config::{Balance, Mode, XmitHash};

use crate::health::{
    punish::PunishConfig,
    quality::{Limits, Weights},
    reselect::SelectMethod,
};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bonds: Vec<BondSpec>,
    /// Every policy a bond can be switched to: the standard ones and the custom ones.
    pub policies: BTreeMap<String, PolicySpec>,
    /// Settings that load but change nothing here (reported by `check` and `up`).
    pub warnings: Vec<String>,
    /// `peerSpecificBonds` by address: traffic to each peer uses its policy (on every bond).
    pub peers: Vec<PeerPolicy>,
    /// `classSpecificBonds`, most specific first: traffic of each class uses its policy (on
    /// every bond), before the peer entries.
    pub classes: Vec<ClassPolicy>,
}

/// A traffic class with its own policy; at least one of the fields is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPolicy {
    pub dscp: Option<u8>,
    pub protocol: Option<u8>,
    /// Inclusive; the source or the destination port.
    pub ports: Option<(u16, u16)>,
    pub policy: String,
}

impl ClassPolicy {
    /// How specific it is, for ordering (greater first): more fields, then fewer ports.
    pub fn specificity(&self) -> (usize, std::cmp::Reverse<u32>) {
        let fields = usize::from(self.dscp.is_some()) + usize::from(self.protocol.is_some()) + usize::from(self.ports.is_some());
        let width = self.ports.map_or(65536, |(lo, hi)| u32::from(hi - lo) + 1);
        (fields, std::cmp::Reverse(width))
    }

    /// The data plane's rule for it, with its policy's index.
    pub fn rule(&self, policy: u32) -> bond_common::config::ClassRule {
        use bond_common::config::{ClassRule, class_match};
        let mut r = ClassRule { policy, ..ClassRule::EMPTY };
        if let Some(d) = self.dscp {
            (r.fields, r.dscp) = (r.fields | class_match::DSCP, d);
        }
        if let Some(p) = self.protocol {
            (r.fields, r.protocol) = (r.fields | class_match::PROTOCOL, p);
        }
        if let Some((lo, hi)) = self.ports {
            (r.fields, r.port_lo, r.port_hi) = (r.fields | class_match::PORTS, lo, hi);
        }
        r
    }
}

impl std::fmt::Display for ClassPolicy {
    /// "dscp 46 udp ports 5004-5010"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(d) = self.dscp {
            parts.push(format!("dscp {d}"));
        }
        if let Some(p) = self.protocol {
            parts.push(match p {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                132 => "sctp".to_string(),
                1 => "icmp".to_string(),
                58 => "icmpv6".to_string(),
                n => format!("protocol {n}"),
            });
        }
        match self.ports {
            Some((lo, hi)) if lo == hi => parts.push(format!("port {lo}")),
            Some((lo, hi)) => parts.push(format!("ports {lo}-{hi}")),
            None => {}
        }
        f.write_str(&parts.join(" "))
    }
}

/// A destination with its own policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerPolicy {
    pub peer: Peer,
    pub policy: String,
}

/// A remote host or network, as `peerSpecificBonds` keys name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// An address (full-length prefix) or a prefix; host bits are cleared.
    Ip(IpAddr, u8),
    Mac([u8; 6]),
}

impl Peer {
    /// `192.0.2.7`, `198.51.100.0/24`, `fd00::1`, `fd00::/64`, `02:00:00:00:00:01` (or with
    /// dashes).
    pub fn parse(s: &str) -> Result<Peer, String> {
        if let Some(mac) = crate::mac::parse_mac(s) {
            return Ok(Peer::Mac(mac));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some(_) => super::resolve::parse_prefix(s)?,
            None => {
                let a: IpAddr = s.parse().map_err(|_| format!("\"{s}\" is not an IP address, prefix or MAC address"))?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0))),
        };
        Ok(Peer::Ip(addr, prefix))
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(a, p) => write!(f, "{a}/{p}"),
            Peer::Mac(m) => f.write_str(&crate::mac::format_mac(m)),
        }
    }
}

impl Config {
    pub fn bond(&self, name: &str) -> Option<&BondSpec> {
        self.bonds.iter().find(|b| b.name == name)
    }

    pub fn policy(&self, name: &str) -> Option<&PolicySpec> {
        self.policies.get(name)
    }
}

/// One bond: its device, members and policy.
#[derive(Debug, Clone, PartialEq)]
pub struct BondSpec {
    pub name: String,
    /// Member interfaces in order (active-backup prefers them in this order).
    pub links: Vec<String>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// Name of the policy in force (a key of [`Config::policies`]).
    pub policy: String,
    pub monitor: BondMonitor,
    /// 802.3ad settings (used when the policy is 802.3ad).
    pub lacp: LacpSpec,
    /// balance-tlb / balance-alb settings (used when the policy is one of them).
    pub tlb: TlbSpec,
    /// Entries of the flow table (`flow_table_size`), fixed when the data plane is loaded.
    pub flow_table_size: u32,
    /// The bond's MAC address (`macaddress`); None: the first member's.
    pub mac: Option<[u8; 6]>,
    /// The bond's MTU (`mtu`); None: its smallest member's.
    pub mtu: Option<u32>,
    /// Members' `prio` (absent: 0): the active member's preference after a usable primary.
    pub prio: BTreeMap<String, i32>,
    /// The member to make active when the bond starts (`active_slave`).
    pub active_slave: Option<String>,
    /// Key of the probe replies' keyed hash (`probeKey`), shared with the peer bond.
    pub probe_key: Option<[u8; 16]>,
}

impl BondSpec {
    /// Member `link`'s `prio`.
    pub fn prio_of(&self, link: &str) -> i32 {
        self.prio.get(link).copied().unwrap_or(0)
    }
}

/// bonding.ko's 802.3ad options.
#[derive(Debug, Clone, PartialEq)]
pub struct LacpSpec {
    /// `lacp_rate fast`: the partner is asked for a LACPDU every second (timeout 3 s), else
    /// every 30 s (timeout 90 s).
    pub fast: bool,
    /// `lacp_active`: LACPDUs are sent even to a passive partner.
    pub active: bool,
    pub select: crate::lacp::AdSelect,
    /// `ad_actor_sys_prio`, 1-65535.
    pub system_priority: u16,
    /// `ad_actor_system`; None: the bond's MAC address.
    pub system: Option<[u8; 6]>,
    /// `ad_user_port_key`, 0-1023.
    pub user_port_key: u16,
    /// `min_links`: fewer members in the aggregate and the bond carries nothing.
    pub min_links: u32,
    /// `lacp_strict`: only members in collecting and distributing carry traffic, even when
    /// no partner speaks LACP.
    pub strict: bool,
    /// `broadcast_neighbor`: ARP and neighbour discovery go out on every member in the
    /// aggregate.
    pub broadcast_neighbor: bool,
    /// `coupled_control`: collecting and distributing as one state.
    pub coupled: bool,
    /// Members' `actor_port_prio` (absent: 255).
    pub port_priority: BTreeMap<String, u16>,
}

impl Default for LacpSpec {
    /// bonding.ko's defaults, as LACP itself has them.
    fn default() -> Self {
        let d = crate::lacp::LacpSettings::default();
        LacpSpec {
            fast: d.fast,
            active: d.active,
            select: d.select,
            system_priority: d.system_priority,
            system: None,
            user_port_key: d.user_port_key,
            min_links: d.min_links,
            strict: false,
            broadcast_neighbor: false,
            coupled: true,
            port_priority: BTreeMap::new(),
        }
    }
}

/// bonding.ko's balance-tlb / balance-alb options.
#[derive(Debug, Clone, PartialEq)]
pub struct TlbSpec {
    /// `lp_interval`: seconds between learning packets on each member (switches relearn where
    /// each member's MAC address is).
    pub lp_interval: u64,
}

impl Default for TlbSpec {
    fn default() -> Self {
        TlbSpec { lp_interval: 1 }
    }
}

/// Link monitoring of a bond (bonding.ko's options).
#[derive(Debug, Clone, PartialEq)]
pub struct BondMonitor {
    /// Carrier polling interval (ms); 0 = rtnetlink events only.
    pub miimon: u64,
    /// ARP (and IPv6 neighbour solicitation) monitoring, when `arp_interval` is set.
    pub arp: Option<ArpMonitor>,
    /// Gratuitous ARPs and unsolicited neighbour advertisements after a failover.
    pub num_grat_arp: u32,
    pub num_unsol_na: u32,
    /// `peer_notify_delay` (ms): announcements after a failover are this far apart (0: one
    /// monitor interval).
    pub peer_notify_delay: u64,
    /// `resend_igmp`: membership reports sent on the new active member after a failover.
    pub resend_igmp: u32,
}

impl BondMonitor {
    /// Spacing of announcements after a failover (ms): one per `miimon` (or ARP) interval, or
    /// `peer_notify_delay` rounded down to a multiple of it, as bonding counts it in monitor
    /// ticks; here at least 10 ms apart.
    pub fn announce_interval(&self) -> u64 {
        let tick = if self.miimon > 0 { self.miimon } else { self.arp.as_ref().map_or(100, |a| a.interval) };
        let ticks = (self.peer_notify_delay / tick.max(1)).max(1);
        (ticks * tick).max(10)
    }
}

/// Default carrier polling interval (ms). bonding.ko's miimon is 100 ms; polling is one ioctl
/// per member, so a short interval costs little and bounds carrier-loss detection.
pub const DEFAULT_MIIMON: u64 = 5;

impl Default for BondMonitor {
    fn default() -> Self {
        BondMonitor { miimon: DEFAULT_MIIMON, arp: None, num_grat_arp: 1, num_unsol_na: 1, peer_notify_delay: 0, resend_igmp: 1 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArpMonitor {
    pub interval: u64,
    pub ip_targets: Vec<Ipv4Addr>,
    pub ns_targets: Vec<Ipv6Addr>,
    pub validate: ArpValidate,
    /// A member is up only if every target answers (else: any target).
    pub all_targets: bool,
    pub missed_max: u32,
}

/// bonding.ko's `arp_validate`: which received traffic proves a member alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpValidate {
    None,
    Active,
    Backup,
    All,
    Filter,
    FilterActive,
    FilterBackup,
}

impl ArpValidate {
    /// In the order of bonding's numbers and of the option table's names.
    pub const ALL: [ArpValidate; 7] = [
        ArpValidate::None,
        ArpValidate::Active,
        ArpValidate::Backup,
        ArpValidate::All,
        ArpValidate::Filter,
        ArpValidate::FilterActive,
        ArpValidate::FilterBackup,
    ];

    /// Whether a member in this role needs ARP from a target (else any traffic, or any ARP
    /// with the filter variants, proves it alive).
    pub fn validates(self, active: bool) -> bool {
        match self {
            ArpValidate::All => true,
            ArpValidate::Active | ArpValidate::FilterActive => active,
            ArpValidate::Backup | ArpValidate::FilterBackup => !active,
            ArpValidate::None | ArpValidate::Filter => false,
        }
    }

    /// Whether only ARP (not any traffic) counts for members not validated.
    pub fn filters(self) -> bool {
        matches!(self, ArpValidate::Filter | ArpValidate::FilterActive | ArpValidate::FilterBackup)
    }
}

/// How peer probes are sent (`monitorStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorStrategy {
    /// No probes: carrier and the ARP monitor only.
    Passive,
    /// A probe every third of the failover interval.
    Active,
    /// Probes only on links that received nothing since the last one: received traffic proves
    /// the link alive (as ZeroTier's heartbeats, which traffic suppresses).
    Dynamic,
}

/// IP versions a link carries (`ipvPref`). On a layer-2 bond 46 and 64 both mean "both".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpvPref {
    #[default]
    Any,
    V4,
    V6,
}

impl IpvPref {
    pub fn carries_v4(self) -> bool {
        self != IpvPref::V6
    }
    pub fn carries_v6(self) -> bool {
        self != IpvPref::V4
    }
}

/// A transmit policy with every setting resolved (defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    pub mode: Mode,
    /// balance-rr: packets per member in turn (0 = random member per packet).
    pub packets_per_link: u32,
    pub xmit_hash: XmitHash,
    pub balance: Balance,
    /// Per-link settings. When non-empty, only these links carry this policy's traffic.
    pub links: BTreeMap<String, LinkSpec>,
    /// A silent link counts as failed after this long (ms).
    pub failover_interval: u64,
    pub up_delay: u64,
    pub down_delay: u64,
    pub select_method: SelectMethod,
    pub monitor: MonitorStrategy,
    pub weights: Weights,
    pub limits: Limits,
    /// broadcast: receivers drop duplicate copies.
    pub dedup: bool,
    /// Refractory periods for flapping or misbehaving links; None: never held out (bonding's
    /// way: a bond configured with bonding.ko's options is not punished unless it asks for
    /// peer probes).
    pub punishment: Option<PunishConfig>,
    /// Flows idle this long (ms) are forgotten.
    pub flow_expiry: u64,
}

/// Per-link settings of a policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkSpec {
    pub speed: Option<u32>,
    pub alloc: Option<f64>,
    pub primary: bool,
    pub failover_to: Option<String>,
    pub enabled: bool,
    pub failover_interval: Option<u64>,
    pub ipv_pref: IpvPref,
    pub up_delay: Option<u64>,
    pub down_delay: Option<u64>,
}

/// Policy used when neither the bond nor `settings.defaultBondingPolicy` names one.
pub const DEFAULT_POLICY: &str = "active-backup";
/// ZeroTier's default `packetsPerLink`.
pub const DEFAULT_PACKETS_PER_LINK: u32 = 64;
/// ZeroTier's default `failoverInterval` (ms).
pub const DEFAULT_FAILOVER_INTERVAL: u64 = 5_000;
/// ZeroTier forgets flows idle for 243 s.
pub const DEFAULT_FLOW_EXPIRY: u64 = 243_000;

impl PolicySpec {
    /// A standard policy with its defaults.
    pub fn standard(mode: Mode) -> PolicySpec {
        // The bonding.ko modes behave as there: the kernel's hash, no probes (802.3ad has LACP;
        // tlb and alb face a switch, where no peer answers them).
        let kernel_mode = mode.runs_whole_bond();
        PolicySpec {
            name: mode.name().to_string(),
            mode,
            packets_per_link: DEFAULT_PACKETS_PER_LINK,
            // ZeroTier's documented balance-xor hash; kernel-style `mode=2` lines get layer2.
            xmit_hash: if kernel_mode { XmitHash::Layer2 } else { XmitHash::ZeroTier },
            balance: Balance::FlowDynamic,
            links: BTreeMap::new(),
            failover_interval: DEFAULT_FAILOVER_INTERVAL,
            up_delay: 0,
            down_delay: 0,
            select_method: SelectMethod::Optimize,
            monitor: if kernel_mode { MonitorStrategy::Passive } else { MonitorStrategy::Active },
            weights: Weights::default(),
            limits: Limits::default(),
            dedup: false,
            punishment: Some(PunishConfig::default()),
            flow_expiry: DEFAULT_FLOW_EXPIRY,
        }
    }

    /// The timing of one link (failover interval, up delay, down delay, in ms): its own
    /// settings, else the policy's.
    pub fn link_timing(&self, link: &str) -> (u64, u64, u64) {
        let l = self.links.get(link);
        (
            l.and_then(|l| l.failover_interval).unwrap_or(self.failover_interval),
            l.and_then(|l| l.up_delay).unwrap_or(self.up_delay),
            l.and_then(|l| l.down_delay).unwrap_or(self.down_delay),
        )
    }

    pub fn ipv_pref(&self, link: &str) -> IpvPref {
        self.links.get(link).map_or(IpvPref::Any, |l| l.ipv_pref)
    }

    /// Whether the data plane places traffic by the bucket table: balance-aware, and
    /// balance-tlb / balance-alb by load (`tlb_dynamic_lb` 1).
    pub fn uses_buckets(&self) -> bool {
        match self.mode {
            Mode::BalanceAware => true,
            Mode::BalanceTlb | Mode::BalanceAlb => self.balance == Balance::FlowDynamic,
            _ => false,
        }
    }

    /// balance-aware `packet` told nothing of how to split: no link's `speed` or `alloc`, and
    /// the `quality` weights left as they are. The bond then measures each link's rate
    /// (`health::rates`) to schedule packets by. (Given `alloc` or `quality`, packets follow the
    /// allocation, ZeroTier's way; given `speed`, the speeds.)
    pub fn measures_rates(&self) -> bool {
        self.mode == Mode::BalanceAware
            && self.balance == Balance::Packet
            && self.links.values().all(|l| l.speed.is_none() && l.alloc.is_none())
            && self.weights == Weights::default()
    }

    /// Whether `link` carries this policy's traffic.
    pub fn uses_link(&self, link: &str) -> bool {
        if self.links.is_empty() {
            return true;
        }
        self.links.get(link).is_some_and(|l| l.enabled)
    }
}
