//! The rows of the option table, in the order the manual lists them.

use bond_common::config::{MAX_MEMBERS, Mode};

use super::{Opt, Scope, Unit, Values};

/// The longest duration an option may give: an hour (bonding takes up to `INT_MAX` ms; an hour
/// of silence before a failover is already far past any use).
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// The longest a flow may stay idle or a punishment last: a day.
pub const MAX_LONG_MS: u64 = 86_400_000;

const MS: Unit = Unit::Ms;
const LACP: &[Mode] = &[Mode::Lacp];
const TLB_ALB: &[Mode] = &[Mode::BalanceTlb, Mode::BalanceAlb];
const BUCKET_MODES: &[Mode] = &[Mode::BalanceAware, Mode::BalanceTlb, Mode::BalanceAlb];
const FAILOVER_MODES: &[Mode] = &[Mode::ActiveBackup, Mode::None];
/// Modes with an active member that carries what is not balanced (and receives for the bond).
const ACTIVE_MODES: &[Mode] = &[Mode::ActiveBackup, Mode::None, Mode::BalanceTlb, Mode::BalanceAlb];

const fn ms(min: u64, max: u64) -> Values {
    Values::Int { min, max, unit: MS }
}

const fn count(min: u64, max: u64) -> Values {
    Values::Int { min, max, unit: Unit::None }
}

const fn names(names: &'static [&'static str]) -> Values {
    Values::Names { names, numbered: false }
}

const fn numbered(names: &'static [&'static str]) -> Values {
    Values::Names { names, numbered: true }
}

/// A row of the table, with the fields most rows leave empty.
const BASE: Opt = Opt {
    kernel: None,
    zerotier: None,
    alias: None,
    scope: Scope::Bond,
    values: Values::Bool,
    default: "—",
    modes: &[],
    live: false,
    at_restart: false,
    doc: "",
};

// --- A bond's own options (bonding.ko's names) ------------------------------------------------

pub const MIIMON: Opt = Opt {
    kernel: Some("miimon"),
    values: ms(0, MAX_DURATION_MS),
    default: "5",
    live: true,
    doc: "carrier polling interval (ms); 0 = rtnetlink events only",
    ..BASE
};
pub const ARP_INTERVAL: Opt = Opt {
    kernel: Some("arp_interval"),
    values: ms(0, MAX_DURATION_MS),
    default: "0",
    live: true,
    doc: "ARP / NS monitor interval (ms); 0 = off",
    ..BASE
};
pub const ARP_IP_TARGET: Opt = Opt {
    kernel: Some("arp_ip_target"),
    values: Values::Other("IPv4 addresses, up to 16 (comma-separated on the command line)"),
    default: "none",
    live: true,
    doc: "addresses the ARP monitor asks for",
    ..BASE
};
pub const NS_IP6_TARGET: Opt = Opt {
    kernel: Some("ns_ip6_target"),
    values: Values::Other("IPv6 addresses, up to 16"),
    default: "none",
    live: true,
    doc: "addresses the monitor sends neighbour solicitations to",
    ..BASE
};
pub const ARP_VALIDATE: Opt = Opt {
    kernel: Some("arp_validate"),
    values: numbered(&["none", "active", "backup", "all", "filter", "filter_active", "filter_backup"]),
    default: "none",
    live: true,
    doc: "which received traffic proves a member alive to the ARP monitor",
    ..BASE
};
pub const ARP_ALL_TARGETS: Opt = Opt {
    kernel: Some("arp_all_targets"),
    values: numbered(&["any", "all"]),
    default: "any",
    live: true,
    doc: "whether any or every target must answer",
    ..BASE
};
pub const ARP_MISSED_MAX: Opt = Opt {
    kernel: Some("arp_missed_max"),
    values: count(1, 255),
    default: "2",
    live: true,
    doc: "ARP intervals without proof of life before a member fails",
    ..BASE
};
pub const NUM_GRAT_ARP: Opt = Opt {
    kernel: Some("num_grat_arp"),
    values: count(0, 255),
    default: "1",
    live: true,
    doc: "gratuitous ARPs after a failover (and after a change of the bond's MAC address), one per `peer_notify_delay`",
    ..BASE
};
pub const NUM_UNSOL_NA: Opt = Opt {
    kernel: Some("num_unsol_na"),
    values: count(0, 255),
    default: "1",
    live: true,
    doc: "unsolicited neighbour advertisements after a failover (and after a change of the bond's MAC address), one per `peer_notify_delay`",
    ..BASE
};
pub const PEER_NOTIFY_DELAY: Opt = Opt {
    kernel: Some("peer_notify_delay"),
    alias: Some("peer_notif_delay"),
    values: ms(0, 300_000),
    default: "0 (one miimon interval)",
    live: true,
    doc: "ms between the announcements `num_grat_arp` and `num_unsol_na` count (after a failover, a change of the bond's MAC address, or with `broadcast_neighbor` a member starting to distribute; rounded down to a multiple of miimon, as bonding)",
    ..BASE
};
pub const RESEND_IGMP: Opt = Opt {
    kernel: Some("resend_igmp"),
    values: count(0, 255),
    default: "1",
    modes: ACTIVE_MODES,
    live: true,
    doc: "IGMP and MLD membership reports sent on the new active member after a failover (200 ms apart), so snooping switches move the bond's groups at once",
    ..BASE
};
pub const PRIO: Opt = Opt {
    kernel: Some("prio"),
    values: Values::PerLink { min: i32::MIN as i64, max: i32::MAX as i64 },
    default: "0",
    modes: ACTIVE_MODES,
    live: true,
    doc: "per member: with no usable primary, the usable member of the highest prio is preferred (ties: link order), under `primary_reselect`",
    ..BASE
};
pub const ACTIVE_SLAVE: Opt = Opt {
    kernel: Some("active_slave"),
    values: Values::Other("a link of the bond"),
    default: "none",
    modes: ACTIVE_MODES,
    live: true,
    doc: "makes a usable member the active one now; it stays until a member's health changes and the usual choice is made again",
    ..BASE
};
pub const MACADDRESS: Opt = Opt {
    kernel: Some("macaddress"),
    alias: Some("hwaddress"),
    values: Values::Other("a unicast MAC address (`hwaddress ether ADDR` accepted)"),
    default: "the first member's",
    live: true,
    doc: "the bond's MAC address; members that carry it follow, peers are told (gratuitous ARP, unsolicited NA), LACP's system id follows unless `ad_actor_system` is set; also `ip link set BOND address ADDR`",
    ..BASE
};
pub const MTU: Opt = Opt {
    kernel: Some("mtu"),
    values: count(68, 65535),
    default: "the smallest member's",
    at_restart: true,
    doc: "the bond's MTU, given to every member as it joins (each gets its own back when it leaves); as netplan's, ifupdown's and NetworkManager's `mtu`; a change takes effect when the bond is made (`ip link set BOND mtu N` changes a running bond's, members included)",
    ..BASE
};
pub const USE_CARRIER: Opt = Opt {
    kernel: Some("use_carrier"),
    values: count(1, 1),
    default: "1",
    doc: "only 1 (as in Linux 6.18 and later): carrier is read from the device itself",
    ..BASE
};
pub const PROBE_KEY: Opt = Opt {
    zerotier: Some("probeKey"),
    values: Values::Other("a passphrase of at least 16 characters, the same on both bonds"),
    default: "none",
    at_restart: true,
    doc: "this project's own: probe replies carry a keyed hash of the request only a bond with the key computes, so no third host on the segment can make one up for the peer (one that relays the peer's own replies still can); a change takes effect when the daemon starts",
    ..BASE
};
pub const FAIL_OVER_MAC: Opt = Opt {
    kernel: Some("fail_over_mac"),
    values: numbered(&["none", "active", "follow"]),
    default: "none",
    doc: "only `none`: every member carries the bond's MAC address",
    ..BASE
};
pub const ALL_SLAVES_ACTIVE: Opt = Opt {
    kernel: Some("all_slaves_active"),
    values: count(0, 1),
    default: "1",
    doc: "frames arriving on backup members are delivered (0 is accepted with a warning)",
    ..BASE
};
pub const LACP_RATE: Opt = Opt {
    kernel: Some("lacp_rate"),
    values: numbered(&["slow", "fast"]),
    default: "slow",
    modes: LACP,
    live: true,
    doc: "LACPDU rate asked of the partner: every 30 s (timeout 90 s) or every second (3 s)",
    ..BASE
};
pub const LACP_ACTIVE: Opt = Opt {
    kernel: Some("lacp_active"),
    values: numbered(&["off", "on"]),
    default: "on",
    modes: LACP,
    doc: "send LACPDUs even to a passive partner",
    ..BASE
};
pub const AD_SELECT: Opt = Opt {
    kernel: Some("ad_select"),
    values: numbered(&["stable", "bandwidth", "count", "actor_port_prio"]),
    default: "stable",
    modes: LACP,
    doc: "how the active aggregator is chosen (`actor_port_prio`: the highest sum of its ports' `actor_port_prio`)",
    ..BASE
};
pub const ACTOR_PORT_PRIO: Opt = Opt {
    kernel: Some("actor_port_prio"),
    values: Values::PerLink { min: 0, max: 65_535 },
    default: "255",
    modes: LACP,
    live: true,
    doc: "a member's LACP port priority, sent in its LACPDUs and summed by `ad_select actor_port_prio`",
    ..BASE
};
pub const LACP_STRICT: Opt = Opt {
    kernel: Some("lacp_strict"),
    values: numbered(&["off", "on"]),
    default: "off",
    modes: LACP,
    live: true,
    doc: "on: only members LACP put in collecting and distributing carry traffic (partners that send no LACPDUs: nothing); off: one member carries it anyway, as bonding always did",
    ..BASE
};
pub const BROADCAST_NEIGHBOR: Opt = Opt {
    kernel: Some("broadcast_neighbor"),
    values: numbered(&["off", "on"]),
    default: "off",
    modes: LACP,
    live: true,
    doc: "ARP and IPv6 neighbour solicitations and advertisements go out on every member in the aggregate, and peers are told (`num_grat_arp`) when a member starts distributing",
    ..BASE
};
pub const COUPLED_CONTROL: Opt = Opt {
    kernel: Some("coupled_control"),
    values: numbered(&["off", "on"]),
    default: "on",
    modes: LACP,
    doc: "only on: a member collects and distributes together (802.1AX coupled control); off, independent control (collect first, distribute once the partner collects), is refused with the reason",
    ..BASE
};
pub const AD_ACTOR_SYS_PRIO: Opt =
    Opt { kernel: Some("ad_actor_sys_prio"), values: count(1, 65_535), default: "65535", modes: LACP, doc: "LACP system priority", ..BASE };
pub const AD_ACTOR_SYSTEM: Opt = Opt {
    kernel: Some("ad_actor_system"),
    values: Values::Other("a unicast MAC address"),
    default: "the bond's MAC",
    modes: LACP,
    doc: "LACP system id",
    ..BASE
};
pub const AD_USER_PORT_KEY: Opt = Opt {
    kernel: Some("ad_user_port_key"),
    values: count(0, 1023),
    default: "0",
    modes: LACP,
    doc: "upper bits of the ports' LACP key",
    ..BASE
};
pub const MIN_LINKS: Opt = Opt {
    kernel: Some("min_links"),
    values: count(0, MAX_MEMBERS as u64),
    default: "0",
    modes: LACP,
    live: true,
    doc: "fewer members in the aggregate and the bond carries nothing",
    ..BASE
};
pub const LP_INTERVAL: Opt = Opt {
    kernel: Some("lp_interval"),
    values: Values::Int { min: 1, max: 0x7fff_ffff, unit: Unit::Seconds },
    default: "1",
    modes: TLB_ALB,
    live: true,
    doc: "seconds between learning packets on each member",
    ..BASE
};
/// The most flows a bond's table may hold: an entry costs the kernel about 150 bytes (bpftool's
/// memlock for 2,048 entries: 295,808), so the most is some 600 MB.
pub const MAX_FLOW_TABLE: u64 = 4 << 20;
pub const FLOW_TABLE_SIZE: Opt = Opt {
    kernel: Some("flow_table_size"),
    values: count(1024, MAX_FLOW_TABLE),
    default: "65536",
    at_restart: true,
    doc: "flows the flow table holds (about 150 bytes of kernel memory each), and flow-static balance-aware's table of members (16 bytes each); past it the least recently seen are forgotten, and flow-static places a forgotten flow by its bucket again; this project's own option, not bonding.ko's; a change takes effect when the daemon starts (a daemon that adopts the bond after `--persist` or SIGKILL resizes the table without a gap)",
    ..BASE
};
pub const TLB_DYNAMIC_LB: Opt = Opt {
    kernel: Some("tlb_dynamic_lb"),
    scope: Scope::Policy,
    values: count(0, 1),
    default: "1",
    modes: TLB_ALB,
    doc: "1: spread by load; 0: by the transmit hash (shapes the bond's own policy)",
    ..BASE
};

// --- Policy options (ZeroTier's names; those with a bonding.ko name also shape a bond's own
// policy when written on the bond) ------------------------------------------------------------

pub const MODE: Opt = Opt {
    kernel: Some("mode"),
    zerotier: Some("basePolicy"),
    scope: Scope::Policy,
    values: Values::Other("a standard policy; on a bond also bonding's 0-6"),
    default: "required for custom policies",
    doc: "the standard policy a policy is based on (`bondctl set-policy` switches a running bond)",
    ..BASE
};
pub const PACKETS_PER_LINK: Opt = Opt {
    kernel: Some("packets_per_slave"),
    zerotier: Some("packetsPerLink"),
    scope: Scope::Policy,
    values: count(0, 65_535),
    default: "64 (1 for a bond's own policy)",
    modes: &[Mode::BalanceRr],
    live: true,
    doc: "balance-rr: packets per member in turn; 0 = a random member per packet",
    ..BASE
};
pub const XMIT_HASH: Opt = Opt {
    kernel: Some("xmit_hash_policy"),
    zerotier: Some("xmitHashPolicy"),
    scope: Scope::Policy,
    values: names(&["layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac", "zerotier"]),
    default: "`zerotier` (`layer2` for a bond's own policy)",
    modes: &[Mode::BalanceXor, Mode::Lacp, Mode::BalanceTlb, Mode::BalanceAlb],
    live: true,
    doc: "transmit hash; bonding's numbers 0-5 are accepted on a bond",
    ..BASE
};
pub const BALANCE: Opt = Opt {
    zerotier: Some("balancePolicy"),
    scope: Scope::Policy,
    values: names(&["flow-dynamic", "flow-static", "packet"]),
    default: "`flow-dynamic`",
    modes: BUCKET_MODES,
    live: true,
    doc: "balance-aware: flows follow buckets that may move, stay put, or every packet is placed where it arrives first (by the links' `speed`, else by their rates as measured), or, given `alloc` or `quality`, by the allocation",
    ..BASE
};
pub const FAILOVER_INTERVAL: Opt = Opt {
    zerotier: Some("failoverInterval"),
    scope: Scope::Policy,
    values: ms(10, MAX_DURATION_MS),
    default: "5000",
    live: true,
    doc: "ms; a link silent this long has failed; probes go out every third of it",
    ..BASE
};
pub const UP_DELAY: Opt = Opt {
    kernel: Some("updelay"),
    zerotier: Some("upDelay"),
    scope: Scope::Policy,
    values: ms(0, MAX_DURATION_MS),
    default: "0",
    live: true,
    doc: "ms a link must stay healthy before it is used",
    ..BASE
};
pub const DOWN_DELAY: Opt = Opt {
    kernel: Some("downdelay"),
    zerotier: Some("downDelay"),
    scope: Scope::Policy,
    values: ms(0, MAX_DURATION_MS),
    default: "0",
    live: true,
    doc: "ms a link must stay failed before it is dropped",
    ..BASE
};
pub const PRIMARY: Opt = Opt {
    kernel: Some("primary"),
    scope: Scope::Policy,
    values: Values::Other("a link of the bond"),
    default: "none",
    modes: FAILOVER_MODES,
    live: true,
    doc: "the link active-backup prefers (a ZeroTier policy marks links `mode: primary`); `set` turns `optimize` into `always`",
    ..BASE
};
pub const SELECT_METHOD: Opt = Opt {
    kernel: Some("primary_reselect"),
    zerotier: Some("linkSelectMethod"),
    alias: Some("activeReselect"),
    scope: Scope::Policy,
    values: numbered(&["always", "better", "failure", "optimize"]),
    default: "`always` with a primary or failoverTo, else `optimize`",
    modes: FAILOVER_MODES,
    live: true,
    doc: "when the active link changes (`optimize`: not on a bond; 0-2 there)",
    ..BASE
};
pub const MONITOR_STRATEGY: Opt = Opt {
    zerotier: Some("monitorStrategy"),
    alias: Some("pathMonitorStrategy"),
    scope: Scope::Policy,
    values: names(&["passive", "active", "dynamic", "default"]),
    default: "`active` (`passive` for 802.3ad, tlb, alb)",
    live: true,
    doc: "peer probes: none, every third of failoverInterval, or only on links that receive nothing",
    ..BASE
};
pub const QUALITY: Opt = Opt {
    zerotier: Some("quality"),
    scope: Scope::Policy,
    values: Values::Other("weights `lat`, `ltm`, `pdv`, `plr`, `per`, `avl`, 0.0-1.0, summing to 1.0"),
    default: "`lat`, `pdv`, `plr`, `per` 0.25 each",
    doc: "how much each measure counts in a link's quality score",
    ..BASE
};
pub const QUALITY_LIMITS: Opt = Opt {
    zerotier: Some("qualityLimits"),
    scope: Scope::Policy,
    values: Values::Other(
        "`lat`, `ltm`, `pdv` (ms), `plr`, `per` (ratios; `plr` leaves out probes lost in the link's own full queue), each positive",
    ),
    default: "500, 2000, 100, 0.05, 0.05",
    doc: "past one of these a link is avoided",
    ..BASE
};
pub const DEDUP: Opt = Opt {
    zerotier: Some("dedup"),
    scope: Scope::Policy,
    values: Values::Bool,
    default: "`false`",
    modes: &[Mode::Broadcast],
    doc: "broadcast: the receiver drops duplicate copies",
    ..BASE
};
pub const PUNISHMENT: Opt = Opt {
    zerotier: Some("punishment"),
    scope: Scope::Policy,
    values: Values::Other("`base`, `max`, `window` (ms, up to a day)"),
    default: "8000, 600000, 60000",
    doc: "how long a flapping or misbehaving link is held out",
    ..BASE
};
/// `punishment.base`, `.max` and `.window`.
pub const PUNISHMENT_MS: Opt = Opt { values: ms(0, MAX_LONG_MS), ..PUNISHMENT };
pub const FLOW_EXPIRY: Opt = Opt {
    zerotier: Some("flowExpiry"),
    scope: Scope::Policy,
    values: ms(1, MAX_LONG_MS),
    default: "243000",
    live: true,
    doc: "ms a flow may stay idle before it is forgotten",
    ..BASE
};

// --- Per-link options of a policy -----------------------------------------------------------

pub const LINK_ALLOC: Opt = Opt {
    zerotier: Some("alloc"),
    scope: Scope::Link,
    values: Values::Real { min: 0.0, max: 255.0 },
    doc: "share of traffic, 0.0 to 1.0 (the shares given sum to 1.0), or ZeroTier's 0-255",
    ..BASE
};
pub const LINK_SPEED: Opt = Opt {
    zerotier: Some("speed"),
    scope: Scope::Link,
    values: count(0, u32::MAX as u64),
    doc: "relative capacity (links without one count as the mean); balance-aware `packet` reads it as Mbit/s",
    ..BASE
};
pub const LINK_MODE: Opt = Opt {
    zerotier: Some("mode"),
    scope: Scope::Link,
    values: names(&["primary", "spare"]),
    default: "`spare`",
    doc: "active-backup and none try primary links first, in listed order",
    ..BASE
};
pub const LINK_FAILOVER_TO: Opt = Opt {
    zerotier: Some("failoverTo"),
    scope: Scope::Link,
    values: Values::Other("a link of the policy"),
    doc: "active-backup and none: the link that takes over when this one fails (not on a spare)",
    ..BASE
};
pub const LINK_ENABLED: Opt = Opt {
    zerotier: Some("enabled"),
    scope: Scope::Link,
    values: Values::Bool,
    default: "`true`",
    doc: "`false` keeps the link out of the policy",
    ..BASE
};
pub const LINK_FAILOVER_INTERVAL: Opt = Opt { scope: Scope::Link, default: "the policy's", live: false, ..FAILOVER_INTERVAL };
pub const LINK_UP_DELAY: Opt = Opt { kernel: None, scope: Scope::Link, default: "the policy's", live: false, ..UP_DELAY };
pub const LINK_DOWN_DELAY: Opt = Opt { kernel: None, scope: Scope::Link, default: "the policy's", live: false, ..DOWN_DELAY };
pub const LINK_IPV_PREF: Opt = Opt {
    zerotier: Some("ipvPref"),
    scope: Scope::Link,
    values: Values::Names { names: &["0", "4", "6", "46", "64"], numbered: false },
    default: "`0` (both)",
    doc: "`4`: the link carries IPv4 only; `6`: IPv6 only; `0`, `46`, `64`: both",
    ..BASE
};

/// The table, in the order the manual lists it.
pub const ALL: &[&Opt] = &[
    &MODE,
    &PACKETS_PER_LINK,
    &XMIT_HASH,
    &BALANCE,
    &FAILOVER_INTERVAL,
    &UP_DELAY,
    &DOWN_DELAY,
    &PRIMARY,
    &SELECT_METHOD,
    &MONITOR_STRATEGY,
    &QUALITY,
    &QUALITY_LIMITS,
    &PUNISHMENT,
    &FLOW_EXPIRY,
    &DEDUP,
    &LINK_ALLOC,
    &LINK_SPEED,
    &LINK_MODE,
    &LINK_FAILOVER_TO,
    &LINK_ENABLED,
    &LINK_FAILOVER_INTERVAL,
    &LINK_UP_DELAY,
    &LINK_DOWN_DELAY,
    &LINK_IPV_PREF,
    &MIIMON,
    &ARP_INTERVAL,
    &ARP_IP_TARGET,
    &NS_IP6_TARGET,
    &ARP_VALIDATE,
    &ARP_ALL_TARGETS,
    &ARP_MISSED_MAX,
    &NUM_GRAT_ARP,
    &NUM_UNSOL_NA,
    &PEER_NOTIFY_DELAY,
    &RESEND_IGMP,
    &PRIO,
    &ACTIVE_SLAVE,
    &MACADDRESS,
    &MTU,
    &USE_CARRIER,
    &PROBE_KEY,
    &FAIL_OVER_MAC,
    &ALL_SLAVES_ACTIVE,
    &LACP_RATE,
    &LACP_ACTIVE,
    &AD_SELECT,
    &ACTOR_PORT_PRIO,
    &LACP_STRICT,
    &BROADCAST_NEIGHBOR,
    &COUPLED_CONTROL,
    &AD_ACTOR_SYS_PRIO,
    &AD_ACTOR_SYSTEM,
    &AD_USER_PORT_KEY,
    &MIN_LINKS,
    &LP_INTERVAL,
    &FLOW_TABLE_SIZE,
    &TLB_DYNAMIC_LB,
];
