//! The validated configuration. Everything here has passed [`resolve`]: names resolve, values
//! are in range, links exist in their bond.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use bond_common::config::{Balance, MAX_MEMBERS, MAX_POLICIES, Mode, XmitHash};

use super::{ConfigError, file};
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
    /// Member interfaces in order; a member's position is its slot.
    pub links: Vec<String>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// Name of the policy in force (a key of [`Config::policies`]).
    pub policy: String,
    pub monitor: BondMonitor,
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
}

/// Default carrier polling interval (ms). bonding.ko's miimon is 100 ms; polling is one ioctl
/// per member, so a short interval costs little and bounds carrier-loss detection.
pub const DEFAULT_MIIMON: u64 = 5;

impl Default for BondMonitor {
    fn default() -> Self {
        BondMonitor { miimon: DEFAULT_MIIMON, arp: None, num_grat_arp: 1, num_unsol_na: 1 }
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
    const NAMES: [(&'static str, ArpValidate); 7] = [
        ("none", ArpValidate::None),
        ("active", ArpValidate::Active),
        ("backup", ArpValidate::Backup),
        ("all", ArpValidate::All),
        ("filter", ArpValidate::Filter),
        ("filter_active", ArpValidate::FilterActive),
        ("filter_backup", ArpValidate::FilterBackup),
    ];

    /// By name or by bonding's number (0-6).
    pub fn parse(s: &str) -> Option<ArpValidate> {
        let by_number = s.parse::<usize>().ok().and_then(|n| Self::NAMES.get(n)).map(|(_, v)| *v);
        by_number.or_else(|| Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| *v))
    }

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
    pub punishment: PunishConfig,
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
/// Shortest `failoverInterval` (ms): probes go out every third of it.
pub const MIN_FAILOVER_INTERVAL: u64 = 10;
/// ZeroTier forgets flows idle for 243 s.
pub const DEFAULT_FLOW_EXPIRY: u64 = 243_000;

impl PolicySpec {
    /// A standard policy with its defaults.
    pub fn standard(mode: Mode) -> PolicySpec {
        PolicySpec {
            name: mode.name().to_string(),
            mode,
            packets_per_link: DEFAULT_PACKETS_PER_LINK,
            // ZeroTier's documented balance-xor hash; kernel-style `mode=2` lines get layer2.
            xmit_hash: XmitHash::ZeroTier,
            balance: Balance::FlowDynamic,
            links: BTreeMap::new(),
            failover_interval: DEFAULT_FAILOVER_INTERVAL,
            up_delay: 0,
            down_delay: 0,
            select_method: SelectMethod::Optimize,
            monitor: MonitorStrategy::Active,
            weights: Weights::default(),
            limits: Limits::default(),
            dedup: false,
            punishment: PunishConfig::default(),
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

    /// Whether `link` carries this policy's traffic.
    pub fn uses_link(&self, link: &str) -> bool {
        if self.links.is_empty() {
            return true;
        }
        self.links.get(link).is_some_and(|l| l.enabled)
    }
}

/// `names()` of a wire enum without its trailing separator.
fn one_of(names: &str) -> &str {
    names.trim_end_matches(", ")
}

/// Validates the parsed file and applies defaults.
pub fn resolve(path: &Path, raw: file::File) -> Result<Config, ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);

    let mut policies: BTreeMap<String, PolicySpec> =
        Mode::ALL.iter().map(|&m| (m.name().to_string(), PolicySpec::standard(m))).collect();
    for (name, p) in &raw.settings.policies {
        let key = format!("settings.policies.{name}");
        if Mode::from_name(name).is_some() {
            return Err(err(key, format!("\"{name}\" is a standard policy; give the custom policy another name")));
        }
        let base = p
            .base_policy
            .as_deref()
            .ok_or_else(|| err(format!("{key}.basePolicy"), "missing: a custom policy needs a basePolicy".into()))?;
        let mode = Mode::from_name(base).ok_or_else(|| {
            err(
                format!("{key}.basePolicy"),
                format!("unknown policy \"{base}\" (one of: {})", one_of(Mode::names())),
            )
        })?;
        let mut spec = PolicySpec::standard(mode);
        spec.name = name.clone();
        apply_policy(path, &key, p, &mut spec)?;
        policies.insert(name.clone(), spec);
    }
    if policies.len() > MAX_POLICIES + Mode::ALL.len() {
        return Err(err("settings.policies".into(), format!("at most {MAX_POLICIES} custom policies")));
    }

    let default_policy = raw.settings.default_bonding_policy.clone().unwrap_or_else(|| DEFAULT_POLICY.to_string());
    if !policies.contains_key(&default_policy) {
        return Err(err(
            "settings.defaultBondingPolicy".into(),
            format!("unknown policy \"{default_policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
        ));
    }

    let mut bonds = Vec::new();
    let mut all_links: BTreeMap<String, String> = BTreeMap::new();
    for (name, b) in raw.bonds {
        let key = format!("bonds.{name}");
        check_ifname(&name).map_err(|r| err(key.clone(), r))?;
        if b.links.is_empty() {
            return Err(err(format!("{key}.links"), "a bond needs at least one link".into()));
        }
        if b.links.len() > MAX_MEMBERS {
            return Err(err(format!("{key}.links"), format!("at most {MAX_MEMBERS} links per bond")));
        }
        let mut seen = BTreeSet::new();
        for (i, l) in b.links.iter().enumerate() {
            let lkey = format!("{key}.links[{i}]");
            check_ifname(l).map_err(|r| err(lkey.clone(), r))?;
            if l == &name {
                return Err(err(lkey, "a bond cannot be its own member".into()));
            }
            if !seen.insert(l.clone()) {
                return Err(err(lkey, format!("\"{l}\" is listed twice")));
            }
            if let Some(other) = all_links.insert(l.clone(), name.clone()) {
                return Err(err(lkey, format!("\"{l}\" is already a member of bond {other}")));
            }
        }
        let addresses = b
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| parse_prefix(a).map_err(|r| err(format!("{key}.addresses[{i}]"), r)))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = b.policy.clone().unwrap_or_else(|| default_policy.clone());
        let Some(spec) = policies.get(&policy) else {
            return Err(err(
                format!("{key}.policy"),
                format!("unknown policy \"{policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        };
        check_policy_links(path, &format!("settings.policies.{policy}"), spec, &b.links)?;
        let monitor = bond_monitor(path, &key, &b)?;
        bonds.push(BondSpec { name, links: b.links, addresses, policy, monitor });
    }
    Ok(Config { bonds, policies })
}

fn apply_policy(path: &Path, key: &str, p: &file::Policy, spec: &mut PolicySpec) -> Result<(), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    if let Some(n) = p.packets_per_link {
        spec.packets_per_link = n;
    }
    if let Some(h) = &p.xmit_hash_policy {
        spec.xmit_hash = XmitHash::from_name(h).ok_or_else(|| {
            err("xmitHashPolicy", format!("unknown hash \"{h}\" (one of: {})", one_of(XmitHash::names())))
        })?;
    }
    if let Some(b) = &p.balance_policy {
        spec.balance = Balance::from_name(b).ok_or_else(|| {
            err("balancePolicy", format!("unknown balance policy \"{b}\" (one of: {})", one_of(Balance::names())))
        })?;
    }
    if let Some(ms) = p.failover_interval {
        spec.failover_interval = check_failover_interval(ms).map_err(|r| err("failoverInterval", r))?;
    }
    if let Some(ms) = p.up_delay {
        spec.up_delay = check_delay(ms).map_err(|r| err("upDelay", r))?;
    }
    if let Some(ms) = p.down_delay {
        spec.down_delay = check_delay(ms).map_err(|r| err("downDelay", r))?;
    }
    if let Some(m) = &p.monitor_strategy {
        spec.monitor = match m.as_str() {
            "passive" => MonitorStrategy::Passive,
            "active" | "default" => MonitorStrategy::Active,
            "dynamic" => MonitorStrategy::Dynamic,
            other => return Err(err("monitorStrategy", format!("unknown strategy \"{other}\" (one of: passive, active, dynamic)"))),
        };
    }
    if let Some(q) = &p.quality {
        spec.weights = quality_weights(q).map_err(|r| err("quality", r))?;
    }
    if let Some(q) = &p.quality_limits {
        let d = Limits::default();
        let pick = |v: Option<f64>, d: f64, k: &str| match v {
            Some(x) if !(x.is_finite() && x > 0.0) => Err(err(&format!("qualityLimits.{k}"), format!("{x} is not a positive limit"))),
            v => Ok(v.unwrap_or(d)),
        };
        spec.limits = Limits {
            lat: pick(q.lat, d.lat, "lat")?,
            ltm: pick(q.ltm, d.ltm, "ltm")?,
            pdv: pick(q.pdv, d.pdv, "pdv")?,
            plr: pick(q.plr, d.plr, "plr")?,
            per: pick(q.per, d.per, "per")?,
        };
    }
    if let Some(d) = p.dedup {
        if spec.mode != Mode::Broadcast {
            return Err(err("dedup", format!("dedup applies to broadcast, not {}", spec.mode.name())));
        }
        spec.dedup = d;
    }
    if let Some(pun) = &p.punishment {
        let d = PunishConfig::default();
        spec.punishment = PunishConfig { base: pun.base.unwrap_or(d.base), max: pun.max.unwrap_or(d.max), window: pun.window.unwrap_or(d.window) };
        if spec.punishment.max < spec.punishment.base {
            return Err(err("punishment.max", format!("{} ms is less than base {} ms", spec.punishment.max, spec.punishment.base)));
        }
    }
    if let Some(ms) = p.flow_expiry {
        if ms == 0 {
            return Err(err("flowExpiry", "0 would forget every flow at once".into()));
        }
        spec.flow_expiry = ms;
    }
    for (name, l) in &p.links {
        let lkey = format!("links.{name}");
        check_ifname(name).map_err(|r| err(&lkey, r))?;
        let primary = match l.mode.as_deref() {
            None | Some("spare") => false,
            Some("primary") => true,
            Some(other) => return Err(err(&format!("{lkey}.mode"), format!("\"{other}\" is neither primary nor spare"))),
        };
        if let Some(a) = l.alloc
            && !(0.0..=1.0).contains(&a)
        {
            return Err(err(&format!("{lkey}.alloc"), format!("{a} is not a share between 0.0 and 1.0")));
        }
        let ipv_pref = match l.ipv_pref {
            None | Some(0) | Some(46) | Some(64) => IpvPref::Any,
            Some(4) => IpvPref::V4,
            Some(6) => IpvPref::V6,
            Some(v) => return Err(err(&format!("{lkey}.ipvPref"), format!("{v} is not one of 0, 4, 6, 46, 64"))),
        };
        if l.mode.as_deref() == Some("spare") && l.failover_to.is_some() {
            return Err(err(&format!("{lkey}.failoverTo"), "a spare link has no failoverTo: it is what others fail over to".into()));
        }
        let failover_interval = match l.failover_interval {
            Some(ms) => Some(check_failover_interval(ms).map_err(|r| err(&format!("{lkey}.failoverInterval"), r))?),
            None => None,
        };
        let delay = |v: Option<u64>, k: &str| match v {
            Some(ms) => check_delay(ms).map(Some).map_err(|r| err(&format!("{lkey}.{k}"), r)),
            None => Ok(None),
        };
        spec.links.insert(
            name.clone(),
            LinkSpec {
                speed: l.speed,
                alloc: l.alloc,
                primary,
                failover_to: l.failover_to.clone(),
                enabled: l.enabled.unwrap_or(true),
                failover_interval,
                ipv_pref,
                up_delay: delay(l.up_delay, "upDelay")?,
                down_delay: delay(l.down_delay, "downDelay")?,
            },
        );
    }
    for (name, l) in &spec.links {
        if let Some(to) = &l.failover_to
            && !spec.links.contains_key(to)
        {
            return Err(err(&format!("links.{name}.failoverTo"), format!("\"{to}\" is not one of this policy's links")));
        }
    }
    let allocs: Vec<f64> = spec.links.values().filter_map(|l| l.alloc).collect();
    if !allocs.is_empty() {
        let sum: f64 = allocs.iter().sum();
        if (sum - 1.0).abs() > 0.001 {
            return Err(err("links", format!("the alloc shares sum to {sum}, not 1.0")));
        }
    }
    // ZeroTier: "optimize" unless the user gave failover guidance, then "always".
    let guided = spec.links.values().any(|l| l.primary || l.failover_to.is_some());
    spec.select_method = match &p.link_select_method {
        Some(m) => SelectMethod::from_name(m).ok_or_else(|| {
            err("linkSelectMethod", format!("unknown method \"{m}\" (one of: always, better, failure, optimize)"))
        })?,
        None if guided => SelectMethod::Always,
        None => SelectMethod::Optimize,
    };
    Ok(())
}

fn check_failover_interval(ms: u64) -> Result<u64, String> {
    if (MIN_FAILOVER_INTERVAL..=3_600_000).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("{ms} ms is outside {MIN_FAILOVER_INTERVAL}..=3600000"))
    }
}

fn check_delay(ms: u64) -> Result<u64, String> {
    if ms <= 3_600_000 { Ok(ms) } else { Err(format!("{ms} ms is longer than an hour")) }
}

fn quality_weights(q: &file::QualityWeights) -> Result<Weights, String> {
    let w = Weights {
        lat: q.lat.unwrap_or(0.0),
        ltm: q.ltm.unwrap_or(0.0),
        pdv: q.pdv.unwrap_or(0.0),
        plr: q.plr.unwrap_or(0.0),
        per: q.per.unwrap_or(0.0),
        avl: q.avl.unwrap_or(0.0),
    };
    for (k, v) in [("lat", w.lat), ("ltm", w.ltm), ("pdv", w.pdv), ("plr", w.plr), ("per", w.per), ("avl", w.avl)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{k}: {v} is not a weight between 0.0 and 1.0"));
        }
    }
    if (w.sum() - 1.0).abs() > 0.001 {
        return Err(format!("the weights sum to {}, not 1.0", w.sum()));
    }
    Ok(w)
}

/// The bond's monitoring options (bonding.ko names).
fn bond_monitor(path: &Path, key: &str, b: &file::Bond) -> Result<BondMonitor, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut m = BondMonitor::default();
    if let Some(v) = b.miimon {
        m.miimon = v;
    }
    for (k, v, field) in [("num_grat_arp", b.num_grat_arp, &mut m.num_grat_arp), ("num_unsol_na", b.num_unsol_na, &mut m.num_unsol_na)] {
        match v {
            Some(n) if n > 255 => return Err(err(k, format!("{n} is outside 0..=255"))),
            Some(n) => *field = n,
            None => {}
        }
    }
    let ip_targets = b
        .arp_ip_target
        .iter()
        .enumerate()
        .map(|(i, t)| t.parse::<Ipv4Addr>().map_err(|_| err(&format!("arp_ip_target[{i}]"), format!("\"{t}\" is not an IPv4 address"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ns_targets = b
        .ns_ip6_target
        .iter()
        .enumerate()
        .map(|(i, t)| t.parse::<Ipv6Addr>().map_err(|_| err(&format!("ns_ip6_target[{i}]"), format!("\"{t}\" is not an IPv6 address"))))
        .collect::<Result<Vec<_>, _>>()?;
    for (k, n) in [("arp_ip_target", ip_targets.len()), ("ns_ip6_target", ns_targets.len())] {
        if n > 16 {
            return Err(err(k, format!("{n} targets; at most 16")));
        }
    }
    let interval = b.arp_interval.unwrap_or(0);
    if interval == 0 {
        if !ip_targets.is_empty() || !ns_targets.is_empty() {
            return Err(err("arp_interval", "targets are set but arp_interval is 0: nothing would monitor them".into()));
        }
        return Ok(m);
    }
    if ip_targets.is_empty() && ns_targets.is_empty() {
        return Err(err("arp_ip_target", "arp_interval is set but there is no arp_ip_target or ns_ip6_target".into()));
    }
    let validate = match &b.arp_validate {
        Some(v) => ArpValidate::parse(v).ok_or_else(|| {
            err("arp_validate", format!("unknown value \"{v}\" (one of: none, active, backup, all, filter, filter_active, filter_backup)"))
        })?,
        None => ArpValidate::None,
    };
    let all_targets = match b.arp_all_targets.as_deref() {
        None | Some("any") | Some("0") => false,
        Some("all") | Some("1") => true,
        Some(v) => return Err(err("arp_all_targets", format!("\"{v}\" is neither any nor all"))),
    };
    let missed_max = b.arp_missed_max.unwrap_or(2);
    if !(1..=255).contains(&missed_max) {
        return Err(err("arp_missed_max", format!("{missed_max} is outside 1..=255")));
    }
    m.arp = Some(ArpMonitor { interval, ip_targets, ns_targets, validate, all_targets, missed_max });
    Ok(m)
}

/// A policy's per-link settings must name links of the bond that uses it.
pub fn check_policy_links(path: &Path, key: &str, spec: &PolicySpec, bond_links: &[String]) -> Result<(), ConfigError> {
    for name in spec.links.keys() {
        if !bond_links.contains(name) {
            return Err(ConfigError::new(
                path,
                format!("{key}.links.{name}"),
                format!("\"{name}\" is not a link of the bond (links: {})", bond_links.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Interface names as the kernel accepts them: 1 to 15 bytes, no '/', ':' or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("\"{name}\" is not a valid interface name (1 to 15 characters)"));
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("\"{name}\" is not a valid interface name (no '/', ':' or spaces)"));
    }
    Ok(())
}

/// `ADDR/PREFIX`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = s.split_once('/').ok_or_else(|| format!("\"{s}\" is not ADDRESS/PREFIX"))?;
    let addr: IpAddr = a.parse().map_err(|_| format!("\"{a}\" is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("\"{p}\" is not a prefix length 0..={max}"))?;
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn ok(text: &str) -> Config {
        parse(Path::new("bond.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bad(text: &str) -> String {
        parse(Path::new("bond.yaml"), text).expect_err("should be rejected").to_string()
    }

    #[test]
    fn issue_example_loads() {
        let c = ok("
bonds:
  bond0:
    links: [eth0, eth1, eth2]
    addresses: [198.51.100.1/24]
    policy: balance-xor
settings:
  defaultBondingPolicy: active-backup
  policies:
    my-rr: { basePolicy: balance-rr, packetsPerLink: 1 }
    my-xor: { basePolicy: balance-xor, xmitHashPolicy: layer2+3 }
");
        let b = c.bond("bond0").unwrap();
        assert_eq!(b.links, ["eth0", "eth1", "eth2"]);
        assert_eq!(b.addresses, [("198.51.100.1".parse().unwrap(), 24)]);
        assert_eq!(b.policy, "balance-xor");
        assert_eq!(c.policy("my-rr").unwrap().packets_per_link, 1);
        assert_eq!(c.policy("my-rr").unwrap().mode, Mode::BalanceRr);
        assert_eq!(c.policy("my-xor").unwrap().xmit_hash, XmitHash::Layer23);
    }

    #[test]
    fn defaults() {
        let c = ok("bonds: { bond0: { links: [a, b] } }");
        assert_eq!(c.bond("bond0").unwrap().policy, "active-backup");
        let rr = c.policy("balance-rr").unwrap();
        assert_eq!(rr.packets_per_link, 64);
        assert_eq!(c.policy("balance-xor").unwrap().xmit_hash, XmitHash::ZeroTier);
        assert_eq!(c.policy("balance-aware").unwrap().balance, Balance::FlowDynamic);
    }

    #[test]
    fn json_is_accepted() {
        let c = parse(Path::new("b.json"), r#"{"bonds": {"bond0": {"links": ["a"], "policy": "broadcast"}}}"#).unwrap();
        assert_eq!(c.bond("bond0").unwrap().policy, "broadcast");
    }

    #[test]
    fn errors_name_key_and_reason() {
        let e = bad("bonds: { bond0: { links: [a], policy: nope } }");
        assert!(e.starts_with("bond.yaml: bonds.bond0.policy: unknown policy \"nope\""), "{e}");
        let e = bad("bonds: { bond0: { links: [a], polcy: x } }");
        assert!(e.contains("bonds.bond0") && e.contains("unknown field `polcy`"), "{e}");
        assert!(e.starts_with("bond.yaml:1:"), "line number: {e}");
        let e = bad("settings: { policies: { p: { basePolicy: balance-xor, xmitHashPolicy: layer5 } } }");
        assert!(e.contains("settings.policies.p.xmitHashPolicy: unknown hash \"layer5\""), "{e}");
        let e = bad("settings: { policies: { balance-rr: { basePolicy: balance-rr } } }");
        assert!(e.contains("is a standard policy"), "{e}");
        let e = bad("bonds: { bond0: { links: [a, a] } }");
        assert!(e.contains("bonds.bond0.links[1]: \"a\" is listed twice"), "{e}");
        let e = bad("bonds: { bond0: { links: [a], addresses: [10.0.0.1] } }");
        assert!(e.contains("bonds.bond0.addresses[0]"), "{e}");
        let e = bad("bonds: { b0: { links: [a] }, b1: { links: [a] } }");
        assert!(e.contains("already a member of bond b0"), "{e}");
        let e = bad("bonds: { bond0: { links: [] } }");
        assert!(e.contains("at least one link"), "{e}");
    }

    #[test]
    fn policy_links_must_belong_to_the_bond() {
        let e = bad("
bonds: { bond0: { links: [a, b], policy: p } }
settings: { policies: { p: { basePolicy: balance-aware, links: { c: { alloc: 1.0 } } } } }
");
        assert!(e.contains("settings.policies.p.links.c: \"c\" is not a link of the bond"), "{e}");
    }

    #[test]
    fn health_settings_resolve() {
        let c = ok("
bonds:
  bond0:
    links: [a, b]
    policy: ab
    arp_interval: 100
    arp_ip_target: [192.0.2.9]
    arp_validate: all
    num_grat_arp: 3
settings:
  policies:
    ab:
      basePolicy: active-backup
      failoverInterval: 30
      downDelay: 20
      activeReselect: better
      pathMonitorStrategy: dynamic
      quality: { lat: 0.5, plr: 0.5 }
      links:
        a: { mode: primary, failoverTo: b, ipvPref: 4, upDelay: 100 }
        b: { mode: spare }
");
        let p = c.policy("ab").unwrap();
        assert_eq!((p.failover_interval, p.down_delay, p.select_method), (30, 20, SelectMethod::Better));
        assert_eq!(p.monitor, MonitorStrategy::Dynamic);
        assert_eq!((p.weights.lat, p.weights.plr, p.weights.pdv), (0.5, 0.5, 0.0));
        assert_eq!(p.link_timing("a"), (30, 100, 20));
        assert_eq!(p.ipv_pref("a"), IpvPref::V4);
        let m = &c.bond("bond0").unwrap().monitor;
        let arp = m.arp.as_ref().unwrap();
        assert_eq!((arp.interval, arp.validate, arp.missed_max, m.num_grat_arp), (100, ArpValidate::All, 2, 3));
        assert_eq!(arp.ip_targets, ["192.0.2.9".parse::<Ipv4Addr>().unwrap()]);
    }

    #[test]
    fn select_method_default_follows_failover_guidance() {
        let c = ok("settings: { policies: { g: { basePolicy: active-backup, links: { a: { mode: primary } } }, n: { basePolicy: active-backup } } }");
        assert_eq!(c.policy("g").unwrap().select_method, SelectMethod::Always);
        assert_eq!(c.policy("n").unwrap().select_method, SelectMethod::Optimize);
    }

    #[test]
    fn health_settings_are_validated() {
        for (text, want) in [
            ("settings: { policies: { p: { basePolicy: broadcast, quality: { lat: 0.5, plr: 0.4 } } } }", "settings.policies.p.quality: the weights sum to 0.9"),
            ("settings: { policies: { p: { basePolicy: broadcast, failoverInterval: 5 } } }", "settings.policies.p.failoverInterval: 5 ms is outside"),
            ("settings: { policies: { p: { basePolicy: balance-xor, dedup: true } } }", "dedup applies to broadcast"),
            ("settings: { policies: { p: { basePolicy: active-backup, links: { a: { ipvPref: 5 } } } } }", "links.a.ipvPref: 5 is not one of"),
            ("settings: { policies: { p: { basePolicy: active-backup, links: { a: { mode: spare, failoverTo: b }, b: {} } } } }", "links.a.failoverTo: a spare link has no failoverTo"),
            ("settings: { policies: { p: { basePolicy: balance-aware, links: { a: { alloc: 0.5 }, b: { alloc: 0.4 } } } } }", "the alloc shares sum to 0.9"),
            ("settings: { policies: { p: { basePolicy: active-backup, linkSelectMethod: sometimes } } }", "unknown method \"sometimes\""),
            ("bonds: { b: { links: [a], arp_interval: 100 } }", "bonds.b.arp_ip_target: arp_interval is set but there is no"),
            ("bonds: { b: { links: [a], arp_ip_target: [192.0.2.1] } }", "bonds.b.arp_interval: targets are set"),
            ("bonds: { b: { links: [a], arp_interval: 10, arp_ip_target: [nope] } }", "bonds.b.arp_ip_target[0]: \"nope\" is not an IPv4 address"),
            ("bonds: { b: { links: [a], arp_interval: 10, arp_ip_target: [192.0.2.1], arp_validate: maybe } }", "bonds.b.arp_validate: unknown value"),
        ] {
            let e = bad(text);
            assert!(e.contains(want), "{text}\n  gave: {e}\n  want: {want}");
        }
    }

    #[test]
    fn arp_validate_takes_numbers_too() {
        assert_eq!(ArpValidate::parse("3"), Some(ArpValidate::All));
        assert_eq!(ArpValidate::parse("filter_backup"), Some(ArpValidate::FilterBackup));
        assert_eq!(ArpValidate::parse("7"), None);
    }

    #[test]
    fn malformed_yaml_reports_line() {
        let e = parse(Path::new("x.yaml"), "bonds:\n  bond0: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }
}
