//! bonding.ko's options, as written in `modprobe bonding ...` lines, `/etc/network/interfaces`
//! (`bond-mode 1`) or on a bond in the file (`mode: active-backup`): a bond that gives the
//! options that shape transmission gets its own policy, named after the bond, built as the
//! kernel would behave (its defaults: balance-rr, layer2 hash, one packet per member in turn).

use std::path::Path;

use bond_common::config::{Balance, Mode, XmitHash};

use super::{ConfigError, LacpSpec, LinkSpec, PolicySpec, TlbSpec, file, model::MonitorStrategy, options as opt};
use crate::health::reselect::SelectMethod;
use crate::lacp::AdSelect;

/// Whether the bond gives any option that shapes its transmit policy.
pub fn shapes_policy(b: &file::Bond) -> bool {
    opt::ALL.iter().any(|o| o.scope == opt::Scope::Policy && o.kernel.is_some_and(|k| b.given(k)))
}

/// The bond's own policy from its kernel options, with `default_mode` when `mode` is not given.
/// It behaves as bonding.ko: health from carrier and the ARP / NS monitors, no peer probes and
/// no punishment, unless the bond asks for probes (`monitorStrategy`, `failoverInterval`).
pub fn policy(path: &Path, key: &str, name: &str, b: &file::Bond, default_mode: Mode) -> Result<PolicySpec, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mode = match b.mode.as_deref() {
        None => default_mode,
        Some(m) => mode(m).map_err(|r| err("mode", r))?,
    };
    let mut spec = PolicySpec::standard(mode);
    spec.name = name.to_string();
    spec.xmit_hash = XmitHash::Layer2;
    spec.packets_per_link = 1;
    spec.select_method = SelectMethod::Always;
    // Quiet on a shared segment: nothing bonding.ko would not send, nothing it would not do.
    spec.monitor = MonitorStrategy::Passive;
    spec.punishment = None;
    if let Some(ms) = b.failover_interval {
        spec.failover_interval = opt::FAILOVER_INTERVAL.int(ms).map_err(|r| err("failoverInterval", r))?;
        spec.monitor = MonitorStrategy::Active;
    }
    if let Some(m) = &b.monitor_strategy {
        spec.monitor = super::resolve::monitor_strategy(m).map_err(|r| err("monitorStrategy", r))?;
    }
    if spec.monitor != MonitorStrategy::Passive {
        // Asked for probes: ZeroTier's way with them, flapping links held out.
        spec.punishment = Some(Default::default());
    }
    if let Some(h) = &b.xmit_hash_policy {
        spec.xmit_hash = xmit_hash(h).map_err(|r| err("xmit_hash_policy", r))?;
    }
    if let Some(n) = b.packets_per_slave {
        spec.packets_per_link = opt::PACKETS_PER_LINK.int_as(n.into()).map_err(|r| err("packets_per_slave", r))?;
    }
    // balance-tlb / balance-alb: by load (tlb_dynamic_lb 1, the default), or by the hash.
    spec.balance = match b.tlb_dynamic_lb.map(|v| opt::TLB_DYNAMIC_LB.int(v.into())).transpose().map_err(|r| err("tlb_dynamic_lb", r))? {
        None | Some(1) => Balance::FlowDynamic,
        Some(_) => Balance::FlowStatic,
    };
    if b.tlb_dynamic_lb.is_some() && !matches!(mode, Mode::BalanceTlb | Mode::BalanceAlb) {
        return Err(err("tlb_dynamic_lb", format!("applies to balance-tlb and balance-alb, not {}", mode.name())));
    }
    spec.up_delay = opt::UP_DELAY.int(b.updelay.unwrap_or(0)).map_err(|r| err("updelay", r))?;
    spec.down_delay = opt::DOWN_DELAY.int(b.downdelay.unwrap_or(0)).map_err(|r| err("downdelay", r))?;
    if let Some(r) = &b.primary_reselect {
        spec.select_method = select_method(r).map_err(|r| err("primary_reselect", r))?;
    }
    // Every member carries the policy; `primary` marks one of them.
    for l in &b.links {
        let primary = b.primary.as_deref() == Some(l.as_str());
        spec.links.insert(l.clone(), LinkSpec { primary, enabled: true, ..LinkSpec::default() });
    }
    if let Some(p) = &b.primary
        && !b.links.contains(p)
    {
        return Err(err("primary", format!("\"{p}\" is not a link of the bond (links: {})", b.links.join(", "))));
    }
    Ok(spec)
}

/// bonding's modes in the order of their numbers.
const KERNEL_MODES: [Mode; 7] =
    [Mode::BalanceRr, Mode::ActiveBackup, Mode::BalanceXor, Mode::Broadcast, Mode::Lacp, Mode::BalanceTlb, Mode::BalanceAlb];

pub(super) fn mode(m: &str) -> Result<Mode, String> {
    let by_number = m.parse::<usize>().ok().and_then(|n| KERNEL_MODES.get(n)).copied();
    by_number.or_else(|| KERNEL_MODES.into_iter().find(|k| k.name() == m)).ok_or_else(|| {
        let names: Vec<&str> = KERNEL_MODES.iter().map(|k| k.name()).collect();
        format!("unknown mode \"{m}\" (0-6, or {})", names.join(", "))
    })
}

/// A transmit hash by name or by bonding's number (0-5; `zerotier` has none).
pub(super) fn xmit_hash(h: &str) -> Result<XmitHash, String> {
    let opt::Values::Names { names, .. } = opt::XMIT_HASH.values else { unreachable!() };
    let by_number = h.parse::<usize>().ok().filter(|n| *n < 6).map(|n| names[n]);
    // bonding's own names in the message (`zerotier` is taken too).
    XmitHash::from_name(by_number.unwrap_or(h)).ok_or_else(|| format!("unknown hash \"{h}\" ({}, or 0-5)", names[..6].join(", ")))
}

/// `primary_reselect`: bonding's three methods (not ZeroTier's `optimize`).
pub(super) fn select_method(r: &str) -> Result<SelectMethod, String> {
    match opt::SELECT_METHOD.pick(r) {
        Ok(0) => Ok(SelectMethod::Always),
        Ok(1) => Ok(SelectMethod::Better),
        Ok(2) => Ok(SelectMethod::Failure),
        // `optimize` is ZeroTier's (a policy's linkSelectMethod takes it).
        _ => Err(format!("unknown value \"{r}\" (always, better, failure, or 0-2)")),
    }
}

/// The bond's 802.3ad and balance-tlb / balance-alb options, checked.
pub fn mode_options(path: &Path, key: &str, b: &file::Bond) -> Result<(LacpSpec, TlbSpec), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut lacp = LacpSpec::default();
    if let Some(v) = &b.lacp_rate {
        lacp.fast = lacp_rate(v).map_err(|r| err("lacp_rate", r))?;
    }
    if let Some(v) = &b.lacp_active {
        lacp.active = opt::LACP_ACTIVE.pick(v).map_err(|r| err("lacp_active", r))? == 1;
    }
    if let Some(v) = &b.ad_select {
        lacp.select = [AdSelect::Stable, AdSelect::Bandwidth, AdSelect::Count, AdSelect::ActorPortPrio]
            [opt::AD_SELECT.pick(v).map_err(|r| err("ad_select", r))?];
    }
    for (o, v, field) in [
        (&opt::LACP_STRICT, &b.lacp_strict, &mut lacp.strict),
        (&opt::BROADCAST_NEIGHBOR, &b.broadcast_neighbor, &mut lacp.broadcast_neighbor),
        (&opt::COUPLED_CONTROL, &b.coupled_control, &mut lacp.coupled),
    ] {
        if let Some(v) = v {
            *field = o.pick(v).map_err(|r| err(o.name(), r))? == 1;
        }
    }
    if !lacp.coupled {
        return Err(err(
            "coupled_control",
            "off (independent control) is not supported: a member here collects and distributes as one state, as with on".into(),
        ));
    }
    lacp.port_priority =
        per_link(&opt::ACTOR_PORT_PRIO, &b.actor_port_prio.iter().map(|(l, v)| (l.clone(), *v as i64)).collect(), &b.links)
            .map_err(|(k, r)| err(&k, r))?
            .into_iter()
            .map(|(l, v)| (l, v as u16))
            .collect();
    if let Some(v) = b.ad_actor_sys_prio {
        lacp.system_priority = opt::AD_ACTOR_SYS_PRIO.int_as(v.into()).map_err(|r| err("ad_actor_sys_prio", r))?;
    }
    if let Some(v) = b.ad_user_port_key {
        lacp.user_port_key = opt::AD_USER_PORT_KEY.int_as(v.into()).map_err(|r| err("ad_user_port_key", r))?;
    }
    if let Some(v) = &b.ad_actor_system {
        let mac = crate::mac::parse_mac(v).ok_or_else(|| err("ad_actor_system", format!("\"{v}\" is not a MAC address")))?;
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(err("ad_actor_system", format!("{v} is a multicast or null address; a system id must be a unicast address")));
        }
        lacp.system = Some(mac);
    }
    if let Some(n) = b.min_links {
        lacp.min_links = opt::MIN_LINKS.int_as(n.into()).map_err(|r| err("min_links", r))?;
    }
    let mut tlb = TlbSpec::default();
    if let Some(v) = b.lp_interval {
        tlb.lp_interval = opt::LP_INTERVAL.int(v).map_err(|r| err("lp_interval", r))?;
    }
    Ok((lacp, tlb))
}

/// A per-member option's values (`prio`, `actor_port_prio`): each a link of the bond, each value
/// in range. Errors are (key, reason).
pub fn per_link(
    o: &opt::Opt,
    values: &std::collections::BTreeMap<String, i64>,
    links: &[String],
) -> Result<std::collections::BTreeMap<String, i64>, (String, String)> {
    let mut out = std::collections::BTreeMap::new();
    for (link, v) in values {
        if !links.contains(link) {
            return Err((format!("{}.{link}", o.name()), format!("\"{link}\" is not a link of the bond (links: {})", links.join(", "))));
        }
        out.insert(link.clone(), o.per_link(*v).map_err(|r| (format!("{}.{link}", o.name()), r))?);
    }
    Ok(out)
}

/// `LINK:N,LINK:N` (the command line's form of a per-member option) as a map.
pub fn parse_per_link(v: &str) -> Result<std::collections::BTreeMap<String, i64>, String> {
    let mut out = std::collections::BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (link, n) = item.split_once(':').ok_or_else(|| format!("\"{item}\" is not LINK:N (e.g. eth1:10)"))?;
        let n = n.trim().parse::<i64>().map_err(|_| format!("\"{n}\" is not a number (in \"{item}\")"))?;
        if out.insert(link.trim().to_string(), n).is_some() {
            return Err(format!("{} is given twice", link.trim()));
        }
    }
    Ok(out)
}

/// `macaddress` (or ifupdown's `hwaddress [ether] ADDR`): a unicast, non-zero address.
pub fn mac_address(v: &str) -> Result<[u8; 6], String> {
    let a = v.trim().strip_prefix("ether").map_or(v.trim(), str::trim);
    let mac = crate::mac::parse_mac(a).ok_or_else(|| format!("\"{v}\" is not a MAC address"))?;
    if mac[0] & 1 != 0 {
        return Err(format!("{a} is a multicast address; a bond's address must be unicast"));
    }
    if mac == [0; 6] {
        return Err(format!("{a} is the null address"));
    }
    Ok(mac)
}

/// `probeKey`: a passphrase of at least 16 characters, turned into the 128-bit key of the
/// replies' keyed hash (both bonds derive the same key from the same text).
pub fn probe_key(v: &str) -> Result<[u8; 16], String> {
    if v.chars().count() < 16 {
        return Err(format!("{} characters; give at least 16 (the same on both bonds)", v.chars().count()));
    }
    // A fixed key: both bonds must derive the same key from the same passphrase.
    let h = siphasher::sip128::SipHasher24::new_with_keys(0x626f_6e64_6374_6c00, 0x7072_6f62_656b_6579);
    Ok(siphasher::sip128::Hasher128::finish128(&{
        let mut h = h;
        std::hash::Hasher::write(&mut h, v.as_bytes());
        h
    })
    .as_bytes())
}

/// `lacp_rate`: whether fast.
pub(super) fn lacp_rate(v: &str) -> Result<bool, String> {
    Ok(opt::LACP_RATE.pick(v)? == 1)
}

/// Options that are valid but change nothing here: those of a mode the bond does not run, and
/// `all_slaves_active` 0. Invalid values of the latter are errors.
pub fn warnings(path: &Path, key: &str, b: &file::Bond, mode: Mode) -> Result<Vec<String>, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut w = Vec::new();
    // tlb_dynamic_lb shapes the policy and is refused outside its modes (see `policy`).
    let given = opt::ALL.iter().filter(|o| o.scope == opt::Scope::Bond && o.kernel.is_some_and(|k| b.given(k)));
    for o in given.filter(|o| !o.applies_to(mode)) {
        w.push(format!("{key}.{}: applies to {}, which this bond does not run; ignored", o.name(), o.modes_text()));
    }
    let all_slaves_active = b.all_slaves_active.map(|v| opt::ALL_SLAVES_ACTIVE.int(v.into())).transpose();
    if all_slaves_active.map_err(|r| err("all_slaves_active", r))? == Some(0) {
        w.push(format!("{key}.all_slaves_active: frames arriving on backup members are delivered in any case (as with 1)"));
    }
    if let Some(v) = b.fail_over_mac.as_deref()
        && opt::FAIL_OVER_MAC.pick(v).map_err(|r| err("fail_over_mac", r))? != 0
    {
        return Err(err("fail_over_mac", format!("{v} is not supported: every member carries the bond's MAC address (none)")));
    }
    Ok(w)
}

/// A bond from `key=value` options as `modprobe bonding` and `/etc/network/interfaces` write
/// them (`mode=1`, `bond-miimon=100`, `arp_ip_target=192.0.2.1,192.0.2.2`), as YAML for the
/// file parser, so the command line and the file share every check.
pub fn bond_yaml(name: &str, links: &[String], addresses: &[String], options: &[String]) -> Result<String, String> {
    let mut bond = serde_yaml::Mapping::new();
    bond.insert("links".into(), links.iter().map(|l| serde_yaml::Value::from(l.as_str())).collect::<Vec<_>>().into());
    if !addresses.is_empty() {
        bond.insert("addresses".into(), addresses.iter().map(|a| serde_yaml::Value::from(a.as_str())).collect::<Vec<_>>().into());
    }
    for o in options {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("\"{o}\" is not KEY=VALUE (e.g. mode=1)"))?;
        let k = k.trim().trim_start_matches("bond-").trim_start_matches("bond_").replace('-', "_");
        // Unknown keys are left to the file's parser, which names them with a suggestion.
        let values = opt::kernel_option(&k).or_else(|| opt::live_option(&k)).map(|o| o.values);
        let value: serde_yaml::Value = match values {
            Some(opt::Values::Other(what)) if what.contains("addresses") => {
                v.split(',').filter(|t| !t.is_empty()).map(serde_yaml::Value::from).collect::<Vec<_>>().into()
            }
            Some(opt::Values::PerLink { .. }) => {
                let map = parse_per_link(v).map_err(|r| format!("{k}: {r}"))?;
                map.into_iter()
                    .map(|(l, n)| (serde_yaml::Value::from(l), serde_yaml::Value::from(n)))
                    .collect::<serde_yaml::Mapping>()
                    .into()
            }
            // Text whatever it looks like (a passphrase of digits, an address).
            Some(opt::Values::Other(_)) => v.into(),
            _ => match v.parse::<u64>() {
                Ok(n) => n.into(),
                Err(_) => v.into(),
            },
        };
        if bond.insert(k.clone().into(), value).is_some() {
            return Err(format!("{k} is given twice"));
        }
    }
    let mut bonds = serde_yaml::Mapping::new();
    bonds.insert(name.into(), bond.into());
    let mut root = serde_yaml::Mapping::new();
    root.insert("bonds".into(), bonds.into());
    serde_yaml::to_string(&root).map_err(|e| e.to_string())
}
