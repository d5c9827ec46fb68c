//! From the parsed file to the validated [`Config`]: names resolve, values are in range, links
//! exist in their bond, defaults are applied.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use bond_common::config::{Balance, MAX_MEMBERS, MAX_POLICIES, Mode, XmitHash};

use super::{ConfigError, file, kernel, model::*, options as opt};
use crate::health::{
    punish::PunishConfig,
    quality::{Limits, Weights},
    reselect::SelectMethod,
};

/// `names()` of a wire enum without its trailing separator.
fn one_of(names: &str) -> &str {
    names.trim_end_matches(", ")
}

/// Validates the parsed file and applies defaults.
pub fn resolve(path: &Path, raw: file::File) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let policies = resolve_policies(path, &raw.settings, &mut warnings)?;
    let peers = resolve_peers(path, &raw.settings, &policies, &mut warnings)?;
    let classes = super::classes::resolve_classes(path, &raw.settings, &policies, &peers)?;
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    let default_policy = raw.settings.default_bonding_policy.clone().unwrap_or_else(|| DEFAULT_POLICY.to_string());
    if !policies.contains_key(&default_policy) {
        return Err(err(
            "settings.defaultBondingPolicy".into(),
            format!("unknown policy \"{default_policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
        ));
    }

    let (bonds, policies) = resolve_bonds(path, raw, policies, &peers, &classes, &default_policy, &mut warnings)?;
    Ok(Config { bonds, policies, warnings, peers, classes })
}

/// The standard policies, the custom ones and the overrides of standard ones under `settings`.
fn resolve_policies(
    path: &Path,
    settings: &file::Settings,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, PolicySpec>, ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    let mut policies: BTreeMap<String, PolicySpec> = Mode::ALL.iter().map(|&m| (m.name().to_string(), PolicySpec::standard(m))).collect();
    for (name, p) in &settings.policies {
        let key = format!("settings.policies.{name}");
        if Mode::from_name(name).is_some() {
            return Err(err(key, format!("\"{name}\" is a standard policy; give the custom policy another name")));
        }
        let base = match p.base_policy.as_deref() {
            Some(b) => b,
            // ZeroTier's examples name custom policies after their base ("aggressive-active-backup")
            // and sometimes leave basePolicy out.
            None => {
                let from_name = Mode::ALL.iter().map(|m| m.name()).filter(|m| name.ends_with(m)).max_by_key(|m| m.len());
                let b = from_name.ok_or_else(|| err(format!("{key}.basePolicy"), "missing: a custom policy needs a basePolicy".into()))?;
                warnings.push(format!("{key}.basePolicy: missing; taken from the policy's name: {b}"));
                b
            }
        };
        let mode = Mode::from_name(base)
            .ok_or_else(|| err(format!("{key}.basePolicy"), format!("unknown policy \"{base}\" (one of: {})", one_of(Mode::names()))))?;
        let mut spec = PolicySpec::standard(mode);
        spec.name = name.clone();
        apply_policy(path, &key, p, &mut spec)?;
        policies.insert(name.clone(), spec);
    }
    if policies.len() > MAX_POLICIES + Mode::ALL.len() {
        return Err(err("settings.policies".into(), format!("at most {MAX_POLICIES} custom policies")));
    }

    // ZeroTier writes overrides of a standard policy directly under `settings`.
    for (name, p) in settings.standard_overrides() {
        let key = format!("settings.{name}");
        if let Some(base) = p.base_policy.as_deref().filter(|b| *b != name) {
            return Err(err(format!("{key}.basePolicy"), format!("\"{base}\": an override of {name} cannot change its base policy")));
        }
        let spec = policies.get_mut(name).expect("standard policies are all there");
        apply_policy(path, &key, p, spec)?;
    }
    Ok(policies)
}

/// `peerSpecificBonds`: destinations with their own policy.
fn resolve_peers(
    path: &Path,
    settings: &file::Settings,
    policies: &BTreeMap<String, PolicySpec>,
    warnings: &mut Vec<String>,
) -> Result<Vec<PeerPolicy>, ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    let mut peers = Vec::new();
    for (peer, policy) in &settings.peer_specific_bonds {
        let key = format!("settings.peerSpecificBonds.{peer}");
        if !policies.contains_key(policy) {
            return Err(err(
                key,
                format!("unknown policy \"{policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        }
        if peer.len() == 10 && peer.chars().all(|c| c.is_ascii_hexdigit()) {
            warnings.push(format!("{key}: \"{peer}\" is a ZeroTier node id, which names no peer here; ignored"));
            continue;
        }
        let parsed = Peer::parse(peer)
            .map_err(|r| err(key.clone(), format!("{r} (a peer is an IP address, a prefix, a MAC address or a ZeroTier node id)")))?;
        if peers.iter().any(|p: &PeerPolicy| p.peer == parsed) {
            return Err(err(key, format!("{parsed} is listed twice")));
        }
        if policies[policy].mode.runs_whole_bond() {
            return Err(err(
                key,
                format!("policy {policy} is {}, which runs a whole bond, not the traffic to one peer", policies[policy].mode.name()),
            ));
        }
        peers.push(PeerPolicy { peer: parsed, policy: policy.clone() });
    }
    let peer_policies: BTreeSet<&String> = peers.iter().map(|p| &p.policy).collect();
    if peer_policies.len() >= MAX_POLICIES {
        return Err(err(
            "settings.peerSpecificBonds".into(),
            format!("{} different policies; at most {} besides the default", peer_policies.len(), MAX_POLICIES - 1),
        ));
    }

    Ok(peers)
}

/// The bonds, each with its monitoring, mode options and policy (its own from bonding.ko
/// options, added to `policies`).
fn resolve_bonds(
    path: &Path,
    raw: file::File,
    mut policies: BTreeMap<String, PolicySpec>,
    peers: &[PeerPolicy],
    classes: &[ClassPolicy],
    default_policy: &str,
    warnings: &mut Vec<String>,
) -> Result<(Vec<BondSpec>, BTreeMap<String, PolicySpec>), ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    // A bond names a ZeroTier policy (its own `policy`, or the file's default one, given or
    // overridden under `settings`), or it runs as bonding.ko would, quiet on the wire.
    let default_is_zerotier =
        raw.settings.default_bonding_policy.is_some() || raw.settings.standard_overrides().iter().any(|(n, _)| *n == default_policy);
    let mut raw_bonds = raw.bonds;
    if raw_bonds.is_empty()
        && let Some(links) = implicit_bond_links(&raw.settings, default_policy)
    {
        // A ZeroTier-style file with settings only: one bond over the policy's links.
        raw_bonds.insert(IMPLICIT_BOND.to_string(), file::Bond { links, ..Default::default() });
    }
    let mut bonds = Vec::new();
    let mut all_links: BTreeMap<String, String> = BTreeMap::new();
    for (name, b) in raw_bonds {
        let key = format!("bonds.{name}");
        check_links(path, &key, &name, &b.links, &mut all_links)?;
        let addresses = b
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| parse_prefix(a).map_err(|r| err(format!("{key}.addresses[{i}]"), r)))
            .collect::<Result<Vec<_>, _>>()?;
        let shapes = kernel::shapes_policy(&b);
        let own_policy = shapes || (b.policy.is_none() && !default_is_zerotier);
        if let Some(p) = &b.policy {
            if shapes {
                return Err(err(
                    format!("{key}.policy"),
                    format!("\"{p}\" and the bond's kernel options (mode, primary, ...) both name a policy; give one"),
                ));
            }
            if let Some(k) = ["monitorStrategy", "failoverInterval"].into_iter().find(|k| b.given(k)) {
                return Err(err(format!("{key}.{k}"), format!("the bond runs policy {p}: give {k} in that policy")));
            }
        }
        if own_policy {
            if policies.contains_key(&name) {
                return Err(err(format!("{key}.mode"), format!("the bond's own policy would be named {name}, which is already a policy")));
            }
            // Transmit options without `mode` get bonding's default mode; a bond with none
            // of them, the project's default policy's.
            let default_mode = if shapes { Mode::BalanceRr } else { policies[default_policy].mode };
            policies.insert(name.clone(), kernel::policy(path, &key, &name, &b, default_mode)?);
        }
        let (lacp, tlb) = kernel::mode_options(path, &key, &b)?;
        let policy = if own_policy { name.clone() } else { b.policy.clone().unwrap_or_else(|| default_policy.to_string()) };
        let Some(spec) = policies.get(&policy) else {
            return Err(err(
                format!("{key}.policy"),
                format!("unknown policy \"{policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        };
        warnings.extend(kernel::warnings(path, &key, &b, spec.mode)?);
        if spec.mode.runs_whole_bond()
            && let Some(p) = peers.first()
        {
            return Err(err(
                format!("settings.peerSpecificBonds.{}", p.peer),
                format!("bond {name} runs {}, which applies to all its traffic: it cannot have peer-specific policies", spec.mode.name()),
            ));
        }
        if spec.mode.runs_whole_bond() && !classes.is_empty() {
            return Err(err(
                "settings.classSpecificBonds".into(),
                format!("bond {name} runs {}, which applies to all its traffic: it cannot have class-specific policies", spec.mode.name()),
            ));
        }
        check_policy_links(path, &format!("settings.policies.{policy}"), spec, &b.links)?;
        for p in peers.iter().map(|p| &p.policy).chain(classes.iter().map(|c| &c.policy)) {
            check_policy_links(path, &format!("settings.policies.{p}"), &policies[p], &b.links)?;
        }
        let monitor = bond_monitor(path, &key, &b)?;
        check_whole_bond_mode(&monitor, spec).map_err(|(k, r)| {
            let k = if k == "monitorStrategy" { format!("settings.policies.{policy}.{k}") } else { format!("{key}.{k}") };
            err(k, r)
        })?;
        let flow_table_size = opt::FLOW_TABLE_SIZE
            .int_as(b.flow_table_size.unwrap_or(bond_common::maps::FLOW_CAPACITY as u64))
            .map_err(|r| err(format!("{key}.flow_table_size"), r))?;
        let mtu = b.mtu.map(|v| opt::MTU.int_as(v)).transpose().map_err(|r| err(format!("{key}.mtu"), r))?;
        let mac = b.macaddress.as_deref().map(kernel::mac_address).transpose().map_err(|r| err(format!("{key}.macaddress"), r))?;
        let prio = kernel::per_link(&opt::PRIO, &b.prio, &b.links)
            .map_err(|(k, r)| err(format!("{key}.{k}"), r))?
            .into_iter()
            .map(|(l, v)| (l, v as i32))
            .collect();
        if let Some(a) = &b.active_slave
            && !b.links.contains(a)
        {
            return Err(err(format!("{key}.active_slave"), format!("\"{a}\" is not a link of the bond (links: {})", b.links.join(", "))));
        }
        if let Some(v) = b.use_carrier {
            opt::USE_CARRIER.int(v.into()).map_err(|_| {
                err(format!("{key}.use_carrier"), format!("{v}: only 1 (carrier is read from the device; Linux 6.18 dropped 0 too)"))
            })?;
        }
        let probe_key = b.probe_key.as_deref().map(kernel::probe_key).transpose().map_err(|r| err(format!("{key}.probeKey"), r))?;
        if probe_key.is_some() && policies[&policy].monitor == MonitorStrategy::Passive {
            warnings.push(format!("{key}.probeKey: the bond sends no probes (monitorStrategy passive); the key is unused"));
        }
        bonds.push(BondSpec {
            name,
            links: b.links,
            addresses,
            policy,
            monitor,
            lacp,
            tlb,
            flow_table_size,
            mac,
            mtu,
            prio,
            active_slave: b.active_slave,
            probe_key,
        });
    }
    Ok((bonds, policies))
}

/// A bond's name and links: valid interface names, at least one, at most `MAX_MEMBERS`, none
/// twice, none in another bond (`all_links`: link -> bond, so far).
fn check_links(path: &Path, key: &str, name: &str, links: &[String], all_links: &mut BTreeMap<String, String>) -> Result<(), ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    check_ifname(name).map_err(|r| err(key.to_string(), r))?;
    if links.is_empty() {
        return Err(err(format!("{key}.links"), "a bond needs at least one link".into()));
    }
    if links.len() > MAX_MEMBERS {
        return Err(err(format!("{key}.links"), format!("at most {MAX_MEMBERS} links per bond")));
    }
    let mut seen = BTreeSet::new();
    for (i, l) in links.iter().enumerate() {
        let lkey = format!("{key}.links[{i}]");
        check_ifname(l).map_err(|r| err(lkey.clone(), r))?;
        if l == name {
            return Err(err(lkey, "a bond cannot be its own member".into()));
        }
        if !seen.insert(l.clone()) {
            return Err(err(lkey, format!("\"{l}\" is listed twice")));
        }
        if let Some(other) = all_links.insert(l.clone(), name.to_string()) {
            return Err(err(lkey, format!("\"{l}\" is already a member of bond {other}")));
        }
    }
    Ok(())
}

/// Name of the bond a settings-only file makes.
pub const IMPLICIT_BOND: &str = "bond0";

/// The links of the default policy (custom, or a standard one overridden under `settings`), in
/// the order written.
fn implicit_bond_links(settings: &file::Settings, default_policy: &str) -> Option<Vec<String>> {
    let p = settings
        .policies
        .get(default_policy)
        .or_else(|| settings.standard_overrides().into_iter().find(|(n, _)| *n == default_policy).map(|(_, p)| p))?;
    (!p.links.is_empty()).then(|| p.links.keys().cloned().collect())
}

fn apply_policy(path: &Path, key: &str, p: &file::Policy, spec: &mut PolicySpec) -> Result<(), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    if let Some(n) = p.packets_per_link {
        spec.packets_per_link = opt::PACKETS_PER_LINK.int_as(n.into()).map_err(|r| err("packetsPerLink", r))?;
    }
    if let Some(h) = &p.xmit_hash_policy {
        spec.xmit_hash = xmit_hash(h).map_err(|r| err("xmitHashPolicy", r))?;
    }
    if let Some(b) = &p.balance_policy {
        spec.balance = balance(b).map_err(|r| err("balancePolicy", r))?;
    }
    if let Some(ms) = p.failover_interval {
        spec.failover_interval = opt::FAILOVER_INTERVAL.int(ms).map_err(|r| err("failoverInterval", r))?;
    }
    if let Some(ms) = p.up_delay {
        spec.up_delay = opt::UP_DELAY.int(ms).map_err(|r| err("upDelay", r))?;
    }
    if let Some(ms) = p.down_delay {
        spec.down_delay = opt::DOWN_DELAY.int(ms).map_err(|r| err("downDelay", r))?;
    }
    if let Some(m) = &p.monitor_strategy {
        spec.monitor = monitor_strategy(m).map_err(|r| err("monitorStrategy", r))?;
    }
    if let Some(q) = &p.quality {
        spec.weights = quality_weights(q).map_err(|r| err("quality", r))?;
    }
    apply_quality_and_punishment(path, key, p, spec)?;
    if let Some(ms) = p.flow_expiry {
        spec.flow_expiry = opt::FLOW_EXPIRY.int(ms).map_err(|r| err("flowExpiry", r))?;
    }
    apply_links(path, key, p, spec)
}

/// A policy's quality limits, dedup and punishment (see [`apply_policy`]).
fn apply_quality_and_punishment(path: &Path, key: &str, p: &file::Policy, spec: &mut PolicySpec) -> Result<(), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
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
        let pick = |v: Option<u64>, d: u64, k: &str| opt::PUNISHMENT_MS.int(v.unwrap_or(d)).map_err(|r| err(&format!("punishment.{k}"), r));
        let punishment = PunishConfig {
            base: pick(pun.base, d.base, "base")?,
            max: pick(pun.max, d.max, "max")?,
            window: pick(pun.window, d.window, "window")?,
        };
        if punishment.max < punishment.base {
            return Err(err("punishment.max", format!("{} ms is less than base {} ms", punishment.max, punishment.base)));
        }
        spec.punishment = Some(punishment);
    }
    Ok(())
}

/// A policy's links: their settings, failover order, allocation shares, and the link
/// selection method that follows from them (see [`apply_policy`]).
fn apply_links(path: &Path, key: &str, p: &file::Policy, spec: &mut PolicySpec) -> Result<(), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    for (name, l) in &p.links {
        spec.links.insert(name.clone(), link_spec(path, key, name, l)?);
    }
    for (name, l) in &spec.links {
        if let Some(to) = &l.failover_to
            && !spec.links.contains_key(to)
        {
            return Err(err(&format!("links.{name}.failoverTo"), format!("\"{to}\" is not one of this policy's links")));
        }
    }
    // Shares (all 1.0 or less) must sum to 1.0; ZeroTier's relative values (0-255) are scaled.
    let allocs: Vec<f64> = spec.links.values().filter_map(|l| l.alloc).collect();
    let sum: f64 = allocs.iter().sum();
    if allocs.iter().all(|a| *a <= 1.0) {
        if !allocs.is_empty() && (sum - 1.0).abs() > 0.001 {
            return Err(err("links", format!("the alloc shares sum to {sum}, not 1.0")));
        }
    } else {
        for l in spec.links.values_mut() {
            l.alloc = l.alloc.map(|a| a / sum);
        }
    }
    // ZeroTier: "optimize" unless the user gave failover guidance, then "always".
    let guided = spec.links.values().any(|l| l.primary || l.failover_to.is_some());
    spec.select_method = match &p.link_select_method {
        Some(m) => select_method(m).map_err(|r| err("linkSelectMethod", r))?,
        None if guided => SelectMethod::Always,
        None => SelectMethod::Optimize,
    };
    Ok(())
}

/// One link's settings in a policy (`links.NAME`).
fn link_spec(path: &Path, key: &str, name: &str, l: &file::Link) -> Result<LinkSpec, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let lkey = format!("links.{name}");
    check_ifname(name).map_err(|r| err(&lkey, r))?;
    let primary = match &l.mode {
        None => false,
        Some(m) => opt::LINK_MODE.pick(m).map_err(|r| err(&format!("{lkey}.mode"), r))? == 0,
    };
    if let Some(a) = l.alloc {
        opt::LINK_ALLOC
            .real(a)
            .map_err(|r| err(&format!("{lkey}.alloc"), format!("{r}: neither a share (0.0 to 1.0) nor a relative value")))?;
    }
    let ipv_pref =
        match l.ipv_pref.map(|v| opt::LINK_IPV_PREF.pick(&v.to_string())).transpose().map_err(|r| err(&format!("{lkey}.ipvPref"), r))? {
            Some(1) => IpvPref::V4,
            Some(2) => IpvPref::V6,
            _ => IpvPref::Any,
        };
    if l.mode.as_deref() == Some("spare") && l.failover_to.is_some() {
        return Err(err(&format!("{lkey}.failoverTo"), "a spare link has no failoverTo: it is what others fail over to".into()));
    }
    let ms = |o: &opt::Opt, v: Option<u64>| v.map(|ms| o.int(ms)).transpose().map_err(|r| err(&format!("{lkey}.{}", o.name()), r));
    Ok(LinkSpec {
        speed: l.speed,
        alloc: l.alloc,
        primary,
        failover_to: l.failover_to.clone(),
        enabled: l.enabled.unwrap_or(true),
        failover_interval: ms(&opt::LINK_FAILOVER_INTERVAL, l.failover_interval)?,
        ipv_pref,
        up_delay: ms(&opt::LINK_UP_DELAY, l.up_delay)?,
        down_delay: ms(&opt::LINK_DOWN_DELAY, l.down_delay)?,
    })
}

/// `xmitHashPolicy`, by name.
pub(super) fn xmit_hash(h: &str) -> Result<XmitHash, String> {
    XmitHash::from_name(h).ok_or_else(|| format!("unknown hash \"{h}\" ({})", opt::XMIT_HASH.values_text()))
}

/// `balancePolicy`.
pub(super) fn balance(b: &str) -> Result<Balance, String> {
    opt::BALANCE.pick(b)?;
    Balance::from_name(b).ok_or_else(|| format!("unknown balance policy \"{b}\""))
}

/// `monitorStrategy` (`default` is ZeroTier's name for active).
pub(super) fn monitor_strategy(m: &str) -> Result<MonitorStrategy, String> {
    Ok([MonitorStrategy::Passive, MonitorStrategy::Active, MonitorStrategy::Dynamic, MonitorStrategy::Active]
        [opt::MONITOR_STRATEGY.pick(m)?])
}

/// `linkSelectMethod`, by name.
pub(super) fn select_method(m: &str) -> Result<SelectMethod, String> {
    SelectMethod::from_name(m).ok_or_else(|| format!("unknown method \"{m}\" (one of: always, better, failure, optimize)"))
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
        m.miimon = opt::MIIMON.int(v).map_err(|r| err("miimon", r))?;
    }
    for (o, v, field) in [
        (&opt::NUM_GRAT_ARP, b.num_grat_arp, &mut m.num_grat_arp),
        (&opt::NUM_UNSOL_NA, b.num_unsol_na, &mut m.num_unsol_na),
        (&opt::RESEND_IGMP, b.resend_igmp, &mut m.resend_igmp),
    ] {
        if let Some(n) = v {
            *field = o.int_as(n.into()).map_err(|r| err(o.name(), r))?;
        }
    }
    if let Some(v) = b.peer_notify_delay {
        m.peer_notify_delay = opt::PEER_NOTIFY_DELAY.int(v).map_err(|r| err("peer_notify_delay", r))?;
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
    let interval = opt::ARP_INTERVAL.int(b.arp_interval.unwrap_or(0)).map_err(|r| err("arp_interval", r))?;
    if interval == 0 && ip_targets.is_empty() && ns_targets.is_empty() {
        return Ok(m);
    }
    let validate = match &b.arp_validate {
        Some(v) => ArpValidate::ALL[opt::ARP_VALIDATE.pick(v).map_err(|r| err("arp_validate", r))?],
        None => ArpValidate::None,
    };
    let all_targets = match &b.arp_all_targets {
        Some(v) => opt::ARP_ALL_TARGETS.pick(v).map_err(|r| err("arp_all_targets", r))? == 1,
        None => false,
    };
    let missed_max = opt::ARP_MISSED_MAX.int_as(b.arp_missed_max.unwrap_or(2).into()).map_err(|r| err("arp_missed_max", r))?;
    m.arp = Some(ArpMonitor { interval, ip_targets, ns_targets, validate, all_targets, missed_max });
    check_arp_monitor(&m).map_err(|(k, r)| err(&k, r))?;
    Ok(m)
}

/// 802.3ad, balance-tlb and balance-alb refuse the ARP monitor and peer probes: both send from
/// every member with the bond's address, which these modes keep on one member (tlb, alb) or hash
/// onto one port of the partner's aggregate (802.3ad). Errors are (key, reason).
pub(super) fn check_whole_bond_mode(monitor: &BondMonitor, policy: &PolicySpec) -> Result<(), (String, String)> {
    if !policy.mode.runs_whole_bond() {
        return Ok(());
    }
    let mode = policy.mode.name();
    if monitor.arp.is_some() {
        return Err((
            "arp_interval".into(),
            format!("the ARP monitor does not work with {mode} (bonding refuses it too); links are watched by miimon"),
        ));
    }
    if policy.monitor != MonitorStrategy::Passive {
        return Err((
            "monitorStrategy".into(),
            format!("peer probes do not work with {mode}; use passive (links are watched by miimon and, under 802.3ad, LACP)"),
        ));
    }
    Ok(())
}

/// The ARP / NS monitor's settings fit together. Errors are (key, reason).
pub(super) fn check_arp_monitor(m: &BondMonitor) -> Result<(), (String, String)> {
    let Some(a) = &m.arp else { return Ok(()) };
    for (k, n) in [("arp_ip_target", a.ip_targets.len()), ("ns_ip6_target", a.ns_targets.len())] {
        if n > 16 {
            return Err((k.into(), format!("{n} targets; at most 16")));
        }
    }
    let no_targets = a.ip_targets.is_empty() && a.ns_targets.is_empty();
    match (a.interval, no_targets) {
        (0, false) => Err(("arp_interval".into(), "targets are set but arp_interval is 0: nothing would monitor them".into())),
        (_, true) => Err(("arp_ip_target".into(), "arp_interval is set but there is no arp_ip_target or ns_ip6_target".into())),
        _ => Ok(()),
    }
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
