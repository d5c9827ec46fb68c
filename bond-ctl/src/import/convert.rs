//! From the bonds a source defines ([`RawBond`]) to the configuration's YAML: every value checked
//! against the option table ([`crate::config::options`]) as the loader checks it; what has no
//! equivalent here (or only a partial one) left out with a `# not imported` comment and a
//! warning; the result loaded by [`crate::config::parse`] before it is returned.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use bond_common::config::Mode;

use super::{ConfigError, Imported, Loc, RawBond, RawOpt, Skip, Source};
use crate::config::options::{self as opt, Values};

/// bonding's modes in the order of their numbers.
pub const KERNEL_MODES: [&str; 7] = ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"];

/// A mode by bonding's name or number.
pub fn mode_name(v: &str) -> Option<&'static str> {
    let v = v.trim();
    v.parse::<usize>().ok().and_then(|n| KERNEL_MODES.get(n)).or_else(|| KERNEL_MODES.iter().find(|m| **m == v)).copied()
}

/// The order of the keys in the output.
const ORDER: &[&str] = &[
    "mode",
    "miimon",
    "updelay",
    "downdelay",
    "primary",
    "primary_reselect",
    "active_slave",
    "prio",
    "xmit_hash_policy",
    "packets_per_slave",
    "lacp_rate",
    "lacp_active",
    "ad_select",
    "min_links",
    "ad_actor_sys_prio",
    "ad_actor_system",
    "ad_user_port_key",
    "actor_port_prio",
    "tlb_dynamic_lb",
    "lp_interval",
    "arp_interval",
    "arp_ip_target",
    "ns_ip6_target",
    "arp_validate",
    "arp_all_targets",
    "arp_missed_max",
    "num_grat_arp",
    "num_unsol_na",
    "peer_notify_delay",
    "resend_igmp",
    "all_slaves_active",
    "fail_over_mac",
    "use_carrier",
    "lacp_strict",
    "broadcast_neighbor",
    "coupled_control",
    "macaddress",
];

/// bonding.ko's defaults, as a running bond shows them: left out of a running bond's import.
const KERNEL_DEFAULTS: &[(&str, &str)] = &[
    ("updelay", "0"),
    ("downdelay", "0"),
    ("primary_reselect", "always"),
    ("xmit_hash_policy", "layer2"),
    ("packets_per_slave", "1"),
    ("lacp_rate", "slow"),
    ("lacp_active", "on"),
    ("ad_select", "stable"),
    ("min_links", "0"),
    ("ad_actor_sys_prio", "65535"),
    ("ad_user_port_key", "0"),
    ("tlb_dynamic_lb", "1"),
    ("lp_interval", "1"),
    ("arp_interval", "0"),
    ("arp_validate", "none"),
    ("arp_all_targets", "any"),
    ("arp_missed_max", "2"),
    ("num_grat_arp", "1"),
    ("num_unsol_na", "1"),
    ("peer_notify_delay", "0"),
    ("resend_igmp", "1"),
    ("all_slaves_active", "0"),
    ("fail_over_mac", "none"),
    ("use_carrier", "1"),
    ("lacp_strict", "off"),
    ("broadcast_neighbor", "off"),
    ("coupled_control", "on"),
    ("ad_actor_system", "00:00:00:00:00:00"),
];

/// The ARP monitor's options, left out together.
const ARP_KEYS: &[&str] = &["arp_interval", "arp_ip_target", "ns_ip6_target", "arp_validate", "arp_all_targets", "arp_missed_max"];

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Scalar(String),
    List(Vec<String>),
    PerLink(BTreeMap<String, i64>),
}

/// A checked option and where it came from.
struct Kept {
    val: Val,
    src: RawOpt,
}

/// The configuration for the bonds, or the first error.
pub fn convert(source: Source, files: &[String], bonds: Vec<RawBond>) -> Result<Imported, ConfigError> {
    let mut names: BTreeMap<&str, &Loc> = BTreeMap::new();
    let mut members: BTreeMap<&str, (&str, &Loc)> = BTreeMap::new();
    for b in &bonds {
        if let Some(prev) = names.insert(&b.name, &b.at) {
            return Err(b.at.err(&b.name, format!("bond {} is defined twice (also at {})", b.name, prev.show())));
        }
        if b.links.is_empty() {
            return Err(b.at.err(b.members_key, format!("bond {} has no members", b.name)));
        }
        for (l, at) in &b.links {
            match members.insert(l, (&b.name, at)) {
                Some((other, _)) if other == b.name => return Err(at.err(b.members_key, format!("{l} is listed twice in bond {other}"))),
                Some((other, prev)) => {
                    return Err(at.err(b.members_key, format!("{l} is already a member of bond {other} (at {})", prev.show())));
                }
                None => {}
            }
        }
    }
    let mut yaml = format!("# Imported by `bondctl import` from {}: {}\nbonds:\n", source.name(), files.join(", "));
    let mut warnings = Vec::new();
    let first = bonds.first().map(|b| b.at.clone());
    for b in bonds {
        let (block, skipped) = bond(b)?;
        yaml.push_str(&block);
        for s in skipped {
            warnings.push(format!("{}: {}: not imported: {}", s.at.show(), s.key, s.reason));
        }
    }
    // Whatever passes here passes `bondctl check` (but for the interfaces' existence).
    if let Err(e) = crate::config::parse(Path::new("(import)"), &yaml) {
        let at = first.unwrap_or_else(|| Loc::new(Path::new("(import)"), None));
        return Err(at.err(e.key.clone(), format!("the result does not load: {e}")));
    }
    Ok(Imported { yaml, warnings })
}

/// One bond's YAML block and what it leaves out.
fn bond(b: RawBond) -> Result<(String, Vec<Skip>), ConfigError> {
    let mut skipped = b.skipped.clone();
    let links: Vec<String> = b.links.iter().map(|(l, _)| l.clone()).collect();
    let modes: Vec<&RawOpt> = b.options.iter().filter(|o| o.key == "mode").collect();
    if let [first, second, ..] = modes[..] {
        return Err(second.at.err(&second.src_key, format!("the mode is given twice (also as {} at {})", first.src_key, first.at.show())));
    }
    let mode_opt = modes.first();
    let mode = match mode_opt {
        Some(o) => mode_name(&o.value)
            .ok_or_else(|| o.at.err(&o.src_key, format!("unknown mode \"{}\" (0-6, or {})", o.value, KERNEL_MODES.join(", "))))?,
        None => KERNEL_MODES[0],
    };
    let m = Mode::from_name(mode).expect("bonding's modes are modes here");
    let mut kept: BTreeMap<&'static str, Kept> = BTreeMap::new();
    for o in b.options.iter().filter(|o| o.key != "mode") {
        let Some(table) = opt::kernel_option(&o.key) else {
            return Err(o.at.err(&o.src_key, format!("{} is not an option here", o.key)));
        };
        let key = table.kernel.unwrap_or("?");
        let at_default = KERNEL_DEFAULTS.iter().any(|(k, d)| *k == key && *d == o.value.trim());
        if b.kernel_state && (at_default || !table.applies_to(m)) {
            continue;
        }
        let val = match check(table, o)? {
            Ok(v) => v,
            Err(reason) => {
                skipped.push(skip(o, reason));
                continue;
            }
        };
        if !table.applies_to(m) {
            skipped.push(skip(o, format!("applies to {}, which this bond ({mode}) does not run", table.modes_text())));
            continue;
        }
        if matches!(&val, Val::List(l) if l.is_empty()) {
            continue;
        }
        match (kept.get_mut(key), val) {
            (Some(Kept { val: Val::List(l), .. }), Val::List(more)) => l.extend(more),
            (Some(Kept { val: Val::PerLink(l), .. }), Val::PerLink(more)) => l.extend(more),
            (Some(prev), _) => {
                return Err(o.at.err(&o.src_key, format!("{key} is given twice (also as {} at {})", prev.src.src_key, prev.src.at.show())));
            }
            (None, val) => {
                kept.insert(key, Kept { val, src: o.clone() });
            }
        }
    }
    cross_checks(&mut kept, &mut skipped, &links, m);

    let mut out = format!("  {}:\n    links: {}\n", b.name, flow_list(&links));
    if !b.addresses.is_empty() {
        out.push_str(&format!("    addresses: {}\n", flow_list(&b.addresses.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>())));
    }
    out.push_str(&format!("    mode: {}\n", scalar(mode)));
    let mut keys: Vec<&&str> = kept.keys().collect();
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == *k).unwrap_or(ORDER.len()));
    for k in keys {
        let v = match &kept[*k].val {
            Val::Scalar(s) => scalar(s),
            Val::List(l) => flow_list(l),
            Val::PerLink(m) => format!("{{{}}}", m.iter().map(|(l, n)| format!("{}: {n}", scalar(l))).collect::<Vec<_>>().join(", ")),
        };
        out.push_str(&format!("    {k}: {v}\n"));
    }
    for s in &skipped {
        let value = if s.value.is_empty() { String::new() } else { format!(" = {}", s.value) };
        out.push_str(&format!("    # not imported: {}{value}: {}\n", s.key, s.reason));
    }
    Ok((out, skipped))
}

fn skip(o: &RawOpt, reason: String) -> Skip {
    Skip { at: o.at.clone(), key: o.src_key.clone(), value: o.value.clone(), reason }
}

/// An option's value as the configuration writes it (`Ok(Ok)`), or why it is not imported
/// (`Ok(Err)`): a value bonding takes and this project does not. Values bonding would not
/// take either are errors.
fn check(table: &opt::Opt, o: &RawOpt) -> Result<Result<Val, String>, ConfigError> {
    let v = o.value.trim();
    let bad = |what: String| o.at.err(&o.src_key, what);
    let key = table.kernel.unwrap_or("?");
    Ok(match table.values {
        Values::Int { .. } => {
            let n: u64 = v.parse().map_err(|_| bad(format!("\"{v}\" is not a whole number")))?;
            match (key, table.int(n)) {
                ("use_carrier", Err(_)) => Err("only 1 here: carrier is read from the device itself".into()),
                ("all_slaves_active", Ok(0)) => Err("frames arriving on backup members are delivered here in any case (as with 1)".into()),
                (_, Ok(n)) => Ok(Val::Scalar(n.to_string())),
                (_, Err(r)) => Err(format!("{r} here")),
            }
        }
        Values::Names { names, .. } => {
            let v = match (key, v.parse::<usize>()) {
                ("xmit_hash_policy", Ok(n)) if n < 6 => names[n],
                _ => v,
            };
            let i = table.pick(v).map_err(bad)?;
            match (key, i) {
                ("primary_reselect", 3) | ("xmit_hash_policy", 6) => return Err(bad(format!("\"{v}\" is not bonding's"))),
                ("fail_over_mac", 1 | 2) => Err("only none here: every member carries the bond's MAC address".into()),
                ("coupled_control", 0) => Err("only on here: a member collects and distributes as one state".into()),
                _ => Ok(Val::Scalar(names[i].to_string())),
            }
        }
        Values::PerLink { .. } => {
            let (link, n) = v.split_once(':').ok_or_else(|| bad(format!("\"{v}\" is not LINK:N")))?;
            let n: i64 = n.trim().parse().map_err(|_| bad(format!("\"{n}\" is not a number")))?;
            match table.per_link(n) {
                Ok(n) => Ok(Val::PerLink(BTreeMap::from([(link.trim().to_string(), n)]))),
                Err(r) => Err(format!("{r} here")),
            }
        }
        Values::Other(_) => match key {
            "arp_ip_target" | "ns_ip6_target" => {
                let items: Vec<String> = v.split([',', ' ', '\t']).filter(|t| !t.is_empty()).map(str::to_string).collect();
                for t in &items {
                    let ok = if key == "arp_ip_target" { t.parse::<Ipv4Addr>().is_ok() } else { t.parse::<Ipv6Addr>().is_ok() };
                    if !ok {
                        return Err(bad(format!("\"{t}\" is not an IPv{} address", if key == "arp_ip_target" { 4 } else { 6 })));
                    }
                }
                Ok(Val::List(items))
            }
            "macaddress" | "ad_actor_system" => {
                let a = v.strip_prefix("ether").map_or(v, str::trim);
                let mac = crate::mac::parse_mac(a).ok_or_else(|| bad(format!("\"{v}\" is not a MAC address")))?;
                if mac[0] & 1 != 0 || mac == [0; 6] {
                    Err(format!("{a} is a multicast or null address; the configuration takes a unicast one"))
                } else {
                    Ok(Val::Scalar(crate::mac::format_mac(&mac)))
                }
            }
            "primary" | "active_slave" => Ok(if v.is_empty() { Val::List(Vec::new()) } else { Val::Scalar(v.to_string()) }),
            _ => Err("not imported by this version".into()),
        },
        Values::Real { .. } | Values::Bool => Err("not imported by this version".into()),
    })
}

/// What depends on other options and the members.
fn cross_checks(kept: &mut BTreeMap<&'static str, Kept>, skipped: &mut Vec<Skip>, links: &[String], m: Mode) {
    let mut drop = |kept: &mut BTreeMap<&'static str, Kept>, k: &str, reason: &str| {
        if let Some(o) = kept.remove(k) {
            skipped.push(skip(&o.src, reason.to_string()));
        }
    };
    for k in ["primary", "active_slave"] {
        if let Some(Kept { val: Val::Scalar(l), .. }) = kept.get(k)
            && !links.contains(l)
        {
            drop(kept, k, &format!("{l} is not a member of the bond"));
        }
    }
    for k in ["prio", "actor_port_prio"] {
        if let Some(Kept { val: Val::PerLink(map), .. }) = kept.get(k)
            && let Some(l) = map.keys().find(|l| !links.contains(l))
        {
            drop(kept, k, &format!("{l} is not a member of the bond"));
        }
    }
    let interval = match kept.get("arp_interval").map(|k| &k.val) {
        Some(Val::Scalar(n)) => n.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    let targets: usize = ["arp_ip_target", "ns_ip6_target"]
        .iter()
        .map(|k| match kept.get(k).map(|k| &k.val) {
            Some(Val::List(l)) => l.len(),
            _ => 0,
        })
        .sum();
    let reason = if m.runs_whole_bond() && (interval > 0 || targets > 0) {
        Some(format!("the ARP monitor does not work with {} (bonding refuses it too); links are watched by miimon", m.name()))
    } else if interval > 0 && targets == 0 {
        Some("no arp_ip_target or ns_ip6_target: the ARP monitor would have nothing to ask".to_string())
    } else if interval == 0 && targets > 0 {
        Some("arp_interval is 0: nothing would monitor the targets".to_string())
    } else if ["arp_ip_target", "ns_ip6_target"].iter().any(|k| matches!(kept.get(k).map(|k| &k.val), Some(Val::List(l)) if l.len() > 16)) {
        Some("more than 16 targets (bonding's limit too)".to_string())
    } else {
        None
    };
    if let Some(r) = reason {
        for k in ARP_KEYS {
            drop(kept, k, &r);
        }
    }
}

/// A YAML scalar: plain when it reads back as the same string, else double-quoted.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+/-".contains(c))
        && !s.starts_with(['-', '.'])
        && s.parse::<f64>().is_err()
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"].contains(&s.to_ascii_lowercase().as_str());
    if plain || s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `[a, b]`.
fn flow_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| scalar(i)).collect::<Vec<_>>().join(", "))
}
