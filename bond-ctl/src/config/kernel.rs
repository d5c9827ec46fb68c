//! bonding.ko's options, as written in `modprobe bonding ...` lines, `/etc/network/interfaces`
//! (`bond-mode 1`) or on a bond in the file (`mode: active-backup`): a bond that gives the
//! options that shape transmission gets its own policy, named after the bond, built as the
//! kernel would behave (its defaults: balance-rr, layer2 hash, one packet per member in turn).

use std::path::Path;

use bond_common::config::{Mode, XmitHash};

use super::{ConfigError, LinkSpec, PolicySpec, file};
use crate::health::reselect::SelectMethod;

/// Whether the bond gives any option that shapes its transmit policy.
pub fn shapes_policy(b: &file::Bond) -> bool {
    b.mode.is_some()
        || b.updelay.is_some()
        || b.downdelay.is_some()
        || b.primary.is_some()
        || b.primary_reselect.is_some()
        || b.xmit_hash_policy.is_some()
        || b.packets_per_slave.is_some()
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
        "4" | "802.3ad" | "5" | "balance-tlb" | "6" | "balance-alb" => {
            Err(format!("mode {m} (802.3ad, balance-tlb, balance-alb) is not implemented yet; modes 0-3 are"))
        }
        other => Err(format!("unknown mode \"{other}\" (0-6, or balance-rr, active-backup, balance-xor, broadcast, ...)")),
    }
}

fn xmit_hash(h: &str) -> Option<XmitHash> {
    let by_number = ["layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"];
    let name = h.parse::<usize>().ok().and_then(|n| by_number.get(n).copied()).unwrap_or(h);
    XmitHash::from_name(name)
}

/// Options that are valid but change nothing here (as warnings), and invalid values of any of
/// them (as errors).
pub fn warnings(path: &Path, key: &str, b: &file::Bond) -> Result<Vec<String>, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    let mut w = Vec::new();
    let mut not_here = |k: &str, what: &str| w.push(format!("{key}.{k}: applies to {what}, which this bond does not run; ignored"));
    if let Some(v) = &b.lacp_rate {
        if !matches!(v.as_str(), "slow" | "fast" | "0" | "1") {
            return Err(err("lacp_rate", format!("\"{v}\" is not slow, fast, 0 or 1")));
        }
        not_here("lacp_rate", "802.3ad");
    }
    if let Some(v) = &b.ad_select {
        if !matches!(v.as_str(), "stable" | "bandwidth" | "count" | "0" | "1" | "2") {
            return Err(err("ad_select", format!("\"{v}\" is not stable, bandwidth, count or 0-2")));
        }
        not_here("ad_select", "802.3ad");
    }
    if b.min_links.is_some() {
        not_here("min_links", "802.3ad");
    }
    if let Some(v) = b.tlb_dynamic_lb {
        if v > 1 {
            return Err(err("tlb_dynamic_lb", format!("{v} is not 0 or 1")));
        }
        not_here("tlb_dynamic_lb", "balance-tlb and balance-alb");
    }
    if let Some(v) = b.lp_interval {
        if v == 0 {
            return Err(err("lp_interval", "0 is not an interval (seconds, 1 or more)".into()));
        }
        not_here("lp_interval", "balance-tlb and balance-alb");
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
