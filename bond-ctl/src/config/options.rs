//! Every option in one declarative table, as bonding's `bond_options.c` has one: for each its
//! bonding.ko and ZeroTier spellings, where it is written, the values it accepts (with the range
//! check), its default, the modes it applies to, whether a running bond can change it
//! (`bondctl set`), and its one-line doc.
//!
//! Everything that names, checks or documents an option reads this table: the resolver's value
//! checks ([`Opt::int`], [`Opt::pick`], ...), the command line's `KEY=VALUE` options and the
//! warnings for options of another mode ([`kernel`](super::kernel)), `bondctl set`
//! ([`super::live`]), `bondctl --help` ([`kernel_option_list`]) and the README's option tables
//! ([`markdown`]; a test fails when the README differs).

use bond_common::config::{MAX_MEMBERS, Mode};

/// Where an option is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On a bond (`bonds.NAME`), under bonding.ko's name.
    Bond,
    /// In a policy (`settings.policies.NAME`) under ZeroTier's name; those with a bonding.ko
    /// name are also written on a bond, where they shape the bond's own policy.
    Policy,
    /// On one link of a policy (`links.NAME`).
    Link,
}

/// What an option's value is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Ms,
    Seconds,
}

/// The values an option accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// An integer in `min..=max`. Durations are bounded so that they cannot overflow when turned
    /// into nanoseconds and added to the clock.
    Int {
        min: u64,
        max: u64,
        unit: Unit,
    },
    /// A real number in `min..=max`.
    Real {
        min: f64,
        max: f64,
    },
    /// One of these names; with `numbered`, also its position (bonding.ko's numbers).
    Names {
        names: &'static [&'static str],
        numbered: bool,
    },
    Bool,
    /// Anything else, described here and checked where it is read.
    Other(&'static str),
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// bonding.ko's name (sysfs, `modprobe`, `ip link ... type bond`).
    pub kernel: Option<&'static str>,
    /// ZeroTier's name (`local.conf`), for policies and links.
    pub zerotier: Option<&'static str>,
    /// Another spelling ZeroTier's code reads.
    pub alias: Option<&'static str>,
    pub scope: Scope,
    pub values: Values,
    /// As the README shows it.
    pub default: &'static str,
    /// The modes it applies to; empty: every mode.
    pub modes: &'static [Mode],
    /// Whether `bondctl set` changes it on a running bond (without losing traffic).
    pub live: bool,
    pub doc: &'static str,
}

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
    doc: "gratuitous ARPs after a failover, one per miimon interval",
    ..BASE
};
pub const NUM_UNSOL_NA: Opt = Opt {
    kernel: Some("num_unsol_na"),
    values: count(0, 255),
    default: "1",
    live: true,
    doc: "unsolicited neighbour advertisements after a failover",
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
    values: numbered(&["stable", "bandwidth", "count"]),
    default: "stable",
    modes: LACP,
    doc: "how the active aggregator is chosen",
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
    doc: "balance-aware: flows follow buckets that may move, stay put, or every packet is placed",
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
    doc: "the link active-backup prefers (a ZeroTier policy marks links `mode: primary`)",
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
    values: Values::Other("`lat`, `ltm`, `pdv` (ms), `plr`, `per` (ratios), each positive"),
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
    doc: "relative capacity (links without one count as the mean)",
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

/// The table, in the order the README lists it.
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
    &FAIL_OVER_MAC,
    &ALL_SLAVES_ACTIVE,
    &LACP_RATE,
    &LACP_ACTIVE,
    &AD_SELECT,
    &AD_ACTOR_SYS_PRIO,
    &AD_ACTOR_SYSTEM,
    &AD_USER_PORT_KEY,
    &MIN_LINKS,
    &LP_INTERVAL,
    &TLB_DYNAMIC_LB,
];

impl Opt {
    /// The name to show: ZeroTier's for policy and link options, else bonding.ko's.
    pub fn name(&self) -> &'static str {
        self.zerotier.or(self.kernel).unwrap_or("?")
    }

    /// Whether `name` spells this option in `scope`.
    fn spelled(&self, name: &str) -> bool {
        [self.kernel, self.zerotier, self.alias].contains(&Some(name))
    }

    /// Whether the option does something under `mode`.
    pub fn applies_to(&self, mode: Mode) -> bool {
        self.modes.is_empty() || self.modes.contains(&mode)
    }

    /// The modes it applies to, for messages: "802.3ad", "balance-tlb and balance-alb".
    pub fn modes_text(&self) -> String {
        let names: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        match names.split_last() {
            None => "every mode".into(),
            Some((last, [])) => (*last).into(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// An integer value, checked against the range.
    pub fn int(&self, v: u64) -> Result<u64, String> {
        let Values::Int { min, max, unit } = self.values else { unreachable!("{} is not an integer option", self.name()) };
        let unit = match unit {
            Unit::Ms => " ms",
            Unit::Seconds => " s",
            Unit::None => "",
        };
        match (min, max) {
            _ if (min..=max).contains(&v) => Ok(v),
            (0, 1) => Err(format!("{v} is not 0 or 1")),
            _ => Err(format!("{v}{unit} is outside {min}..={max}")),
        }
    }

    /// An integer value that must fit `T` (the range does).
    pub fn int_as<T: TryFrom<u64>>(&self, v: u64) -> Result<T, String> {
        let v = self.int(v)?;
        T::try_from(v).map_err(|_| format!("{v} does not fit"))
    }

    /// A real value, checked against the range.
    pub fn real(&self, v: f64) -> Result<f64, String> {
        let Values::Real { min, max } = self.values else { unreachable!("{} is not a real option", self.name()) };
        if v.is_finite() && (min..=max).contains(&v) { Ok(v) } else { Err(format!("{v} is outside {min:?} to {max:?}")) }
    }

    /// The position of a named value in the option's list (by name, or by number when bonding
    /// numbers it).
    pub fn pick(&self, v: &str) -> Result<usize, String> {
        let Values::Names { names, numbered } = self.values else { unreachable!("{} has no names", self.name()) };
        if let Some(i) = names.iter().position(|n| *n == v) {
            return Ok(i);
        }
        if numbered && let Some(i) = v.parse::<usize>().ok().filter(|i| *i < names.len()) {
            return Ok(i);
        }
        // Numbers as they were written, words quoted.
        let shown = if v.parse::<f64>().is_ok() { v.to_string() } else { format!("\"{v}\"") };
        Err(format!("{shown} is not {}", self.alternatives()))
    }

    /// `slow, fast, 0 or 1`; `stable, bandwidth, count or 0-2`; `one of flow-dynamic, ...`.
    fn alternatives(&self) -> String {
        let Values::Names { names, numbered } = self.values else { return self.values_text() };
        match (numbered, names.len()) {
            (false, _) => format!("one of {}", names.join(", ")),
            (true, 2) => format!("{}, 0 or 1", names.join(", ")),
            (true, n) => format!("{} or 0-{}", names.join(", "), n - 1),
        }
    }

    /// What the option accepts, for messages and docs.
    pub fn values_text(&self) -> String {
        match self.values {
            Values::Int { min, max, unit } => {
                let unit = match unit {
                    Unit::Ms => " ms",
                    Unit::Seconds => " s",
                    Unit::None => "",
                };
                format!("{min}..={max}{unit}")
            }
            Values::Real { min, max } => format!("{min:?} to {max:?}"),
            Values::Names { names, numbered } => {
                let list = names.join(", ");
                if numbered { format!("one of: {list}, or 0-{}", names.len() - 1) } else { format!("one of: {list}") }
            }
            Values::Bool => "true or false".into(),
            Values::Other(what) => what.into(),
        }
    }
}

/// The option a bond's `KEY` (bonding.ko spelling, as on a bond or a command line) names.
pub fn kernel_option(key: &str) -> Option<&'static Opt> {
    ALL.iter().copied().find(|o| o.kernel == Some(key) && o.scope != Scope::Link)
}

/// The option `KEY` names in `bondctl set`: a bonding.ko name or a ZeroTier policy key.
pub fn live_option(key: &str) -> Option<&'static Opt> {
    ALL.iter().copied().find(|o| o.scope != Scope::Link && o.spelled(key))
}

/// Every bonding.ko name, for `--help` and suggestions.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    ALL.iter().filter(|o| o.scope != Scope::Link).filter_map(|o| o.kernel)
}

/// `bondctl up --help`'s list of bonding.ko options.
pub fn kernel_option_list() -> String {
    let names: Vec<&str> = kernel_names().collect();
    format!("bonding.ko options (see the README's bond keys): {}.", names.join(", "))
}

/// The options `bondctl set` changes, for its `--help`.
pub fn live_option_list() -> String {
    let names: Vec<String> = ALL
        .iter()
        .filter(|o| o.live && o.scope != Scope::Link)
        .map(|o| match (o.kernel, o.zerotier) {
            (Some(k), Some(z)) => format!("{k} ({z})"),
            (k, z) => k.or(z).unwrap_or("?").to_string(),
        })
        .collect();
    names.join(", ")
}

/// `bondctl set --help`'s list.
pub fn live_option_list_help() -> String {
    format!("Options a running bond takes:\n  {}", live_option_list())
}

/// The README's option tables: policy keys, link keys and bond keys.
pub fn markdown() -> String {
    let mut s = String::new();
    let row = |s: &mut String, key: String, o: &Opt| {
        let live = if o.live { "yes" } else { "" };
        s.push_str(&format!("| {key} | {} | {} | {} | {live} |\n", o.doc, o.values_text(), o.default));
    };
    s.push_str("Policy keys (under `settings.policies.NAME`, or directly under `settings` for a standard policy):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Policy && o.zerotier.is_some()) {
        let mut key = format!("`{}`", o.name());
        if let Some(a) = o.alias {
            key.push_str(&format!(" (or `{a}`)"));
        }
        if let Some(k) = o.kernel {
            key.push_str(&format!("; on a bond `{k}`"));
        }
        row(&mut s, key, o);
    }
    s.push_str("\nLink keys (under a policy's `links.NAME`; when a policy lists links, only those carry its traffic):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Link) {
        row(&mut s, format!("`{}`", o.name()), o);
    }
    s.push_str("\nBond keys (under `bonds.NAME`, bonding.ko's names; also `KEY=VALUE` on the command line):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Bond || (o.scope == Scope::Policy && o.zerotier.is_none())) {
        let mut key = format!("`{}`", o.kernel.unwrap_or("?"));
        if !o.modes.is_empty() {
            key.push_str(&format!(" ({})", o.modes_text()));
        }
        row(&mut s, key, o);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_named_and_documented_once() {
        let mut seen = std::collections::BTreeSet::new();
        for o in ALL {
            assert!(!o.doc.is_empty(), "{} has no doc", o.name());
            assert!(o.kernel.is_some() || o.zerotier.is_some(), "an option without a name");
            let scope = if o.scope == Scope::Link { "link" } else { "bond/policy" };
            for n in [o.kernel, o.zerotier, o.alias].into_iter().flatten() {
                assert!(seen.insert((scope, n)), "{n} is in the table twice");
            }
        }
    }

    #[test]
    fn durations_cannot_overflow_when_turned_into_nanoseconds() {
        for o in ALL {
            if let Values::Int { max, unit: Unit::Ms | Unit::Seconds, .. } = o.values {
                let scale = if matches!(o.values, Values::Int { unit: Unit::Seconds, .. }) { 1_000_000_000 } else { 1_000_000 };
                // Twice the longest, plus a century of uptime, still fits the clock's u64.
                let ns = (max as u128) * scale * 2 + 100 * 365 * 86_400 * 1_000_000_000;
                assert!(ns < u64::MAX as u128, "{}: {max} overflows", o.name());
            }
        }
    }

    #[test]
    fn values_are_checked_with_reasons() {
        assert_eq!(MIIMON.int(100), Ok(100));
        assert_eq!(MIIMON.int(u64::MAX), Err(format!("{} ms is outside 0..=3600000", u64::MAX)));
        assert_eq!(UP_DELAY.int(3_600_001), Err("3600001 ms is outside 0..=3600000".into()));
        assert_eq!(LACP_RATE.pick("fast"), Ok(1));
        assert_eq!(LACP_RATE.pick("1"), Ok(1));
        assert_eq!(LACP_RATE.pick("2"), Err("2 is not slow, fast, 0 or 1".into()));
        assert_eq!(AD_SELECT.pick("best"), Err("\"best\" is not stable, bandwidth, count or 0-2".into()));
        assert_eq!(BALANCE.pick("0"), Err("0 is not one of flow-dynamic, flow-static, packet".into()));
        assert_eq!(AD_ACTOR_SYS_PRIO.int_as::<u16>(0), Err("0 is outside 1..=65535".into()));
        assert_eq!(LINK_ALLOC.real(f64::NAN), Err("NaN is outside 0.0 to 255.0".into()));
    }

    #[test]
    fn names_are_found_by_every_spelling() {
        assert_eq!(live_option("updelay").map(Opt::name), Some("upDelay"));
        assert_eq!(live_option("upDelay").map(Opt::name), Some("upDelay"));
        assert_eq!(live_option("activeReselect").map(Opt::name), Some("linkSelectMethod"));
        assert_eq!(kernel_option("packets_per_slave").map(Opt::name), Some("packetsPerLink"));
        assert!(kernel_option("alloc").is_none());
        assert_eq!(LP_INTERVAL.modes_text(), "balance-tlb and balance-alb");
    }

    /// The README's tables are the table's: regenerate them with
    /// `BONDCTL_BLESS=1 cargo test -p bond-ctl readme_option_tables`.
    #[test]
    fn readme_option_tables_match_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = ("<!-- options:begin (generated from bond-ctl/src/config/options.rs) -->\n", "<!-- options:end -->");
        let start = readme.find(begin).expect("the README's options:begin marker") + begin.len();
        let stop = readme[start..].find(end).expect("the README's options:end marker") + start;
        let want = markdown();
        if readme[start..stop] != want {
            if std::env::var_os("BONDCTL_BLESS").is_some() {
                std::fs::write(path, format!("{}{want}{}", &readme[..start], &readme[stop..])).expect("writing README.md");
            } else {
                panic!(
                    "README.md's option tables differ from the option table; run BONDCTL_BLESS=1 cargo test -p bond-ctl readme_option_tables"
                );
            }
        }
    }
}
