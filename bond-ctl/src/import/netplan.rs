//! netplan YAML: `network.bonds.NAME` with `interfaces`, `parameters` (netplan's names for
//! bonding's options), `addresses`, `macaddress`, `mtu`. Durations are milliseconds unless a
//! unit is given (`100ms`, `1s`), but `learn-packet-interval`, which is seconds.

use std::path::Path;

use serde_yaml::Value;

use super::{ConfigError, Loc, RawBond, duration_ms, duration_s, unknown_key};

/// netplan's parameter, bonding's option.
const PARAMETERS: &[(&str, &str)] = &[
    ("mode", "mode"),
    ("lacp-rate", "lacp_rate"),
    ("mii-monitor-interval", "miimon"),
    ("min-links", "min_links"),
    ("transmit-hash-policy", "xmit_hash_policy"),
    ("ad-select", "ad_select"),
    ("all-slaves-active", "all_slaves_active"),
    ("arp-interval", "arp_interval"),
    ("arp-ip-targets", "arp_ip_target"),
    ("arp-validate", "arp_validate"),
    ("arp-all-targets", "arp_all_targets"),
    ("up-delay", "updelay"),
    ("down-delay", "downdelay"),
    ("fail-over-mac-policy", "fail_over_mac"),
    ("gratuitous-arp", "num_grat_arp"),
    // netplan's older spelling.
    ("gratuitious-arp", "num_grat_arp"),
    ("packets-per-slave", "packets_per_slave"),
    ("primary-reselect-policy", "primary_reselect"),
    ("resend-igmp", "resend_igmp"),
    ("learn-packet-interval", "lp_interval"),
    ("primary", "primary"),
];

/// netplan's other keys of a device: known, not the bond's business here.
const DEVICE_KEYS: &[&str] = &[
    "renderer",
    "dhcp4",
    "dhcp6",
    "dhcp-identifier",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "accept-ra",
    "ipv6-address-generation",
    "ipv6-address-token",
    "ipv6-mtu",
    "ipv6-privacy",
    "link-local",
    "ignore-carrier",
    "critical",
    "gateway4",
    "gateway6",
    "nameservers",
    "optional",
    "optional-addresses",
    "activation-mode",
    "routes",
    "routing-policy",
    "neigh-suppress",
    "networkmanager",
    "openvswitch",
];

/// The bonds of the files (netplan merges its files; a bond in two of them is refused here).
pub fn parse(files: &[(&Path, &str)]) -> Result<Vec<RawBond>, ConfigError> {
    let mut bonds = Vec::new();
    for (path, text) in files {
        bonds.extend(parse_one(path, text)?);
    }
    Ok(bonds)
}

fn parse_one(path: &Path, text: &str) -> Result<Vec<RawBond>, ConfigError> {
    let at = |keys: &[&str]| Loc::new(path, yaml_line(text, keys));
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| Loc::new(path, e.location().map(|l| l.line())).err("(file)", format!("not YAML: {e}")))?;
    let Some(network) = doc.get("network") else {
        return Err(Loc::new(path, 1).err("network", "missing: not a netplan file"));
    };
    let Some(bonds) = network.get("bonds") else { return Ok(Vec::new()) };
    let bonds = bonds.as_mapping().ok_or_else(|| at(&["network", "bonds"]).err("network.bonds", "not a mapping"))?;
    let mut out = Vec::new();
    for (name, def) in bonds {
        let name = text_of(name).unwrap_or_default();
        let key = format!("network.bonds.{name}");
        let mut b = RawBond::new(&name, at(&["network", "bonds", &name]), "interfaces");
        let def = def.as_mapping().ok_or_else(|| b.at.err(&key, "not a mapping"))?;
        for (k, v) in def {
            let k = text_of(k).unwrap_or_default();
            let loc = at(&["network", "bonds", &name, &k]);
            let fk = format!("{key}.{k}");
            match k.as_str() {
                "interfaces" => {
                    for (i, l) in list(v).ok_or_else(|| loc.err(&fk, "not a list of interfaces"))?.into_iter().enumerate() {
                        b.links.push((l, Loc::new(path, loc.line.map(|n| n + usize::from(!inline(text, n)) * (i + 1)))));
                    }
                }
                "addresses" => {
                    for a in v.as_sequence().ok_or_else(|| loc.err(&fk, "not a list"))? {
                        match (text_of(a), a.as_mapping()) {
                            (Some(a), _) => b.addresses.push((a, loc.clone())),
                            // `- 192.0.2.1/24: {label: ..., lifetime: ...}`
                            (None, Some(m)) if m.len() == 1 => {
                                let (a, opts) = m.iter().next().expect("one entry");
                                let a = text_of(a).unwrap_or_default();
                                b.skip(&format!("{fk}.{a}"), &flat(opts), "address options (label, lifetime) are not kept", &loc);
                                b.addresses.push((a, loc.clone()));
                            }
                            _ => return Err(loc.err(&fk, format!("\"{}\" is not an address", flat(a)))),
                        }
                    }
                }
                "macaddress" => b.opt("macaddress", flat(v), &fk, &loc),
                "mtu" => b.mtu(&fk, &flat(v), &loc),
                "parameters" => parameters(path, text, &name, v, &mut b)?,
                k if DEVICE_KEYS.contains(&k) => {
                    b.skip(&fk, &flat(v), "not a bond option: bondctl sets the bond's members, addresses and bonding options only", &loc)
                }
                _ => {
                    let known: Vec<&str> = ["interfaces", "addresses", "macaddress", "mtu", "parameters"]
                        .into_iter()
                        .chain(DEVICE_KEYS.iter().copied())
                        .collect();
                    return Err(unknown_key(&loc, &fk, "a netplan bond", &known));
                }
            }
        }
        out.push(b);
    }
    Ok(out)
}

fn parameters(path: &Path, text: &str, name: &str, v: &Value, b: &mut RawBond) -> Result<(), ConfigError> {
    let base = ["network", "bonds", name, "parameters"];
    let at = |k: &str| Loc::new(path, yaml_line(text, &[&base[..], &[k]].concat()));
    let map = v.as_mapping().ok_or_else(|| at("").err(format!("network.bonds.{name}.parameters"), "not a mapping"))?;
    for (k, v) in map {
        let k = text_of(k).unwrap_or_default();
        let loc = at(&k);
        let fk = format!("network.bonds.{name}.parameters.{k}");
        let Some((_, kernel)) = PARAMETERS.iter().find(|(p, _)| *p == k) else {
            let known: Vec<&str> = PARAMETERS.iter().map(|(p, _)| *p).collect();
            return Err(unknown_key(&loc, &fk, "a netplan bond's parameters", &known));
        };
        let value = flat(v);
        let bad = |r: String| loc.err(&fk, r);
        match *kernel {
            "miimon" | "arp_interval" | "updelay" | "downdelay" => {
                b.opt(kernel, duration_ms(&value, 1).map_err(bad)?.to_string(), &fk, &loc)
            }
            "lp_interval" => b.opt(kernel, duration_s(&value, 1000).map_err(bad)?.to_string(), &fk, &loc),
            "all_slaves_active" => b.opt(kernel, super::bool_01(&value).map_err(bad)?, &fk, &loc),
            "arp_ip_target" => b.opt(kernel, list(v).ok_or_else(|| bad("not a list of addresses".into()))?.join(","), &fk, &loc),
            // networkd's GratuitousARP= sets the kernel's one count of both.
            "num_grat_arp" => {
                b.opt("num_grat_arp", value.clone(), &fk, &loc);
                b.opt("num_unsol_na", value, &fk, &loc);
            }
            _ => b.opt(kernel, value, &fk, &loc),
        }
    }
    Ok(())
}

/// A scalar's text (numbers and booleans as written).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value for messages.
fn flat(v: &Value) -> String {
    text_of(v).unwrap_or_else(|| serde_json::to_string(v).unwrap_or_default())
}

/// A list of scalars (or one scalar).
fn list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(s) => s.iter().map(text_of).collect(),
        v => text_of(v).map(|s| vec![s]),
    }
}

/// Whether line `n` holds a flow list (`[a, b]`) after its key.
fn inline(text: &str, n: usize) -> bool {
    text.lines().nth(n - 1).is_some_and(|l| l.contains('['))
}

/// The line of the key at `keys` (each looked up inside the previous one's block), if written
/// as a plain `key:`.
pub fn yaml_line(text: &str, keys: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut from, mut to, mut found, mut own) = (0, lines.len(), None, None::<usize>);
    for k in keys.iter().filter(|k| !k.is_empty()) {
        let i = (from..to).find(|&i| {
            let t = lines[i].trim_start().trim_start_matches("- ");
            let deeper = own.is_none_or(|o| indent(lines[i]) > o);
            deeper && [format!("{k}:"), format!("\"{k}\":"), format!("'{k}':")].iter().any(|p| t.starts_with(p.as_str()))
        })?;
        own = Some(indent(lines[i]));
        found = Some(i + 1);
        from = i + 1;
        to = (from..lines.len()).find(|&j| !lines[j].trim().is_empty() && indent(lines[j]) <= indent(lines[i])).unwrap_or(lines.len());
    }
    found
}
