//! bonding.ko's options, as written in `modprobe bonding ...` lines, `/etc/network/interfaces`
//! (`bond-mode 1`) or on a bond in the file (`mode: active-backup`): a bond that gives the
//! options that shape transmission gets its own policy, named after the bond, built as the
//! kernel would behave (its defaults: balance-rr, layer2 hash, one packet per member in turn).

use std::path::Path;

use bond_common::config::{Balance, Mode, XmitHash};

use super::{ConfigError, LacpSpec, LinkSpec, PolicySpec, TlbSpec, file};
use crate::health::reselect::SelectMethod;
use crate::lacp::AdSelect;

/// Whether the bond gives any option that shapes its transmit policy.
pub fn shapes_policy(b: &file::Bond) -> bool {
    b.mode.is_some()
        || b.updelay.is_some()
        || b.downdelay.is_some()
        || b.primary.is_some()
        || b.primary_reselect.is_some()
        || b.xmit_hash_policy.is_some()
        || b.packets_per_slave.is_some()
        || b.tlb_dynamic_lb.is_some()
}

/// The bond's own policy from its kernel options.
pub fn policy(path: &Path, key: &str, name: &str, b: &file::Bond) -> Result<PolicySpec, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mode = match b.mode.as_deref() {
        None => Mode::BalanceRr,
        Some(m) => mode(m).map_err(|r| err("mode", r))?,
    };
    let mut spec = PolicySpec::standard(mode);
    spec.name = name.to_string();
    spec.xmit_hash = XmitHash::Layer2;
    spec.packets_per_link = 1;
    spec.select_method = SelectMethod::Always;
    if let Some(h) = &b.xmit_hash_policy {
        spec.xmit_hash = xmit_hash(h).ok_or_else(|| {
            err("xmit_hash_policy", format!("unknown hash \"{h}\" (layer2, layer3+4, layer2+3, encap2+3, encap3+4, vlan+srcmac, or 0-5)"))
        })?;
    }
    if let Some(n) = b.packets_per_slave {
        spec.packets_per_link = n;
    }
    // balance-tlb / balance-alb: by load (tlb_dynamic_lb 1, the default), or by the hash.
    spec.balance = match b.tlb_dynamic_lb {
        None | Some(1) => Balance::FlowDynamic,
        Some(0) => Balance::FlowStatic,
        Some(v) => return Err(err("tlb_dynamic_lb", format!("{v} is not 0 or 1"))),
    };
    if b.tlb_dynamic_lb.is_some() && !matches!(mode, Mode::BalanceTlb | Mode::BalanceAlb) {
        return Err(err("tlb_dynamic_lb", format!("applies to balance-tlb and balance-alb, not {}", mode.name())));
    }
    spec.up_delay = b.updelay.unwrap_or(0);
    spec.down_delay = b.downdelay.unwrap_or(0);
    if let Some(r) = &b.primary_reselect {
        spec.select_method = match r.as_str() {
            "always" | "0" => SelectMethod::Always,
            "better" | "1" => SelectMethod::Better,
            "failure" | "2" => SelectMethod::Failure,
            other => return Err(err("primary_reselect", format!("unknown value \"{other}\" (always, better, failure, or 0-2)"))),
        };
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

fn mode(m: &str) -> Result<Mode, String> {
    match m {
        "0" | "balance-rr" => Ok(Mode::BalanceRr),
        "1" | "active-backup" => Ok(Mode::ActiveBackup),
        "2" | "balance-xor" => Ok(Mode::BalanceXor),
        "3" | "broadcast" => Ok(Mode::Broadcast),
        "4" | "802.3ad" => Ok(Mode::Lacp),
        "5" | "balance-tlb" => Ok(Mode::BalanceTlb),
        "6" | "balance-alb" => Ok(Mode::BalanceAlb),
        other => Err(format!(
            "unknown mode \"{other}\" (0-6, or balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb)"
        )),
    }
}

fn xmit_hash(h: &str) -> Option<XmitHash> {
    let by_number = ["layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"];
    let name = h.parse::<usize>().ok().and_then(|n| by_number.get(n).copied()).unwrap_or(h);
    XmitHash::from_name(name)
}

/// The bond's 802.3ad and balance-tlb / balance-alb options, checked.
pub fn mode_options(path: &Path, key: &str, b: &file::Bond) -> Result<(LacpSpec, TlbSpec), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut lacp = LacpSpec::default();
    if let Some(v) = &b.lacp_rate {
        lacp.fast = match v.as_str() {
            "slow" | "0" => false,
            "fast" | "1" => true,
            _ => return Err(err("lacp_rate", format!("\"{v}\" is not slow, fast, 0 or 1"))),
        };
    }
    if let Some(v) = &b.lacp_active {
        lacp.active = match v.as_str() {
            "on" | "1" => true,
            "off" | "0" => false,
            _ => return Err(err("lacp_active", format!("\"{v}\" is not on, off, 1 or 0"))),
        };
    }
    if let Some(v) = &b.ad_select {
        lacp.select = match v.as_str() {
            "stable" | "0" => AdSelect::Stable,
            "bandwidth" | "1" => AdSelect::Bandwidth,
            "count" | "2" => AdSelect::Count,
            _ => return Err(err("ad_select", format!("\"{v}\" is not stable, bandwidth, count or 0-2"))),
        };
    }
    if let Some(v) = b.ad_actor_sys_prio {
        lacp.system_priority =
            u16::try_from(v).ok().filter(|p| *p >= 1).ok_or_else(|| err("ad_actor_sys_prio", format!("{v} is outside 1..=65535")))?;
    }
    if let Some(v) = b.ad_user_port_key {
        lacp.user_port_key =
            u16::try_from(v).ok().filter(|k| *k <= 1023).ok_or_else(|| err("ad_user_port_key", format!("{v} is outside 0..=1023")))?;
    }
    if let Some(v) = &b.ad_actor_system {
        let mac = crate::sys::parse_mac(v).ok_or_else(|| err("ad_actor_system", format!("\"{v}\" is not a MAC address")))?;
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(err("ad_actor_system", format!("{v} is a multicast or null address; a system id must be a unicast address")));
        }
        lacp.system = Some(mac);
    }
    if let Some(n) = b.min_links {
        lacp.min_links = n;
    }
    let mut tlb = TlbSpec::default();
    if let Some(v) = b.lp_interval {
        if v == 0 || v > 0x7fff_ffff {
            return Err(err("lp_interval", format!("{v} is not an interval (seconds, 1 to 2147483647)")));
        }
        tlb.lp_interval = v;
    }
    Ok((lacp, tlb))
}

/// Options that are valid but change nothing here: those of a mode the bond does not run, and
/// `all_slaves_active`. Invalid values of the latter are errors.
pub fn warnings(path: &Path, key: &str, b: &file::Bond, mode: Mode) -> Result<Vec<String>, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut w = Vec::new();
    let lacp_options = [
        ("lacp_rate", b.lacp_rate.is_some()),
        ("lacp_active", b.lacp_active.is_some()),
        ("ad_select", b.ad_select.is_some()),
        ("ad_actor_sys_prio", b.ad_actor_sys_prio.is_some()),
        ("ad_user_port_key", b.ad_user_port_key.is_some()),
        ("ad_actor_system", b.ad_actor_system.is_some()),
        ("min_links", b.min_links.is_some()),
    ];
    if mode != Mode::Lacp {
        for (k, _) in lacp_options.iter().filter(|(_, given)| *given) {
            w.push(format!("{key}.{k}: applies to 802.3ad, which this bond does not run; ignored"));
        }
    }
    if b.lp_interval.is_some() && !matches!(mode, Mode::BalanceTlb | Mode::BalanceAlb) {
        w.push(format!("{key}.lp_interval: applies to balance-tlb and balance-alb, which this bond does not run; ignored"));
    }
    match b.all_slaves_active {
        None | Some(1) => {}
        Some(0) => w.push(format!("{key}.all_slaves_active: frames arriving on backup members are delivered in any case (as with 1)")),
        Some(v) => return Err(err("all_slaves_active", format!("{v} is not 0 or 1"))),
    }
    match b.fail_over_mac.as_deref() {
        None | Some("none") | Some("0") => {}
        Some(v @ ("active" | "1" | "follow" | "2")) => {
            return Err(err("fail_over_mac", format!("{v} is not supported: every member carries the bond's MAC address (none)")));
        }
        Some(v) => return Err(err("fail_over_mac", format!("\"{v}\" is not none, active, follow or 0-2"))),
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
        let value: serde_yaml::Value = if k == "arp_ip_target" || k == "ns_ip6_target" {
            v.split(',').filter(|t| !t.is_empty()).map(serde_yaml::Value::from).collect::<Vec<_>>().into()
        } else if let Ok(n) = v.parse::<u64>() {
            n.into()
        } else {
            v.into()
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
