//! `/etc/network/interfaces` with ifenslave's options: `iface bond0 inet static` with
//! `bond-slaves eth0 eth1` (or `bond-slaves none` and `bond-master bond0` in the members'
//! stanzas), `bond-mode`, `bond-miimon`, ... (`bond_mode` too), `address`, `netmask`,
//! `hwaddress`, `mtu`. Several files (`interfaces` and `interfaces.d/*`) read as one.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use super::{ConfigError, Loc, RawBond, unknown_key};
use crate::config::options as opt;

/// Words that start a stanza.
const STANZAS: &[&str] = &["iface", "mapping", "auto", "source", "source-directory", "rename", "no-auto-down", "no-scripts"];

/// ifenslave's options that are not bonding.ko's.
const OWN: &[&str] = &["slaves", "master", "queue_id", "give_a_chance"];

struct Opt {
    key: String,
    value: String,
    at: Loc,
}

/// An interface's stanzas (inet and inet6), merged.
struct Iface {
    at: Loc,
    methods: Vec<(String, String, Loc)>,
    opts: Vec<Opt>,
}

pub fn parse(files: &[(&Path, &str)]) -> Result<Vec<RawBond>, ConfigError> {
    let mut ifaces: Vec<(String, Iface)> = Vec::new();
    for (path, text) in files {
        stanzas(path, text, &mut ifaces)?;
    }
    let bond_key = |k: &str| k.strip_prefix("bond-").or_else(|| k.strip_prefix("bond_")).map(|k| k.replace('-', "_"));
    // Members by bond, in order of their stanzas.
    let mut masters: BTreeMap<String, Vec<(String, Loc)>> = BTreeMap::new();
    for (name, i) in &ifaces {
        for o in i.opts.iter().filter(|o| bond_key(&o.key).as_deref() == Some("master")) {
            masters.entry(o.value.clone()).or_default().push((name.clone(), o.at.clone()));
        }
    }
    // A bond: named by members, or with bond options of its own (not a member's).
    let is_bond = |name: &str, i: &Iface| {
        let keys: Vec<String> = i.opts.iter().filter_map(|o| bond_key(&o.key)).collect();
        masters.contains_key(name) || keys.iter().any(|k| k == "slaves") || (!keys.is_empty() && !keys.iter().any(|k| k == "master"))
    };
    for (bond, members) in &masters {
        if !ifaces.iter().any(|(n, _)| n == bond) {
            let (_, at) = &members[0];
            return Err(at.err("bond-master", format!("no `iface {bond}` stanza defines the bond")));
        }
    }
    let mut bonds = Vec::new();
    for (name, i) in ifaces.iter().filter(|(n, i)| is_bond(n, i)) {
        let mut b = RawBond::new(name, i.at.clone(), "bond-slaves");
        for (family, method, at) in &i.methods {
            if !["static", "manual"].contains(&method.as_str()) {
                b.skip(&format!("iface {name} {family}"), method, "bondctl sets static addresses only (no DHCP, no SLAAC)", at);
            }
        }
        let mut addresses = Vec::new();
        for o in &i.opts {
            match bond_key(&o.key) {
                Some(k) => bond_option(&mut b, &k, o)?,
                None => match o.key.as_str() {
                    "address" => addresses.push(o),
                    "netmask" => {}
                    "hwaddress" => b.opt("macaddress", o.value.clone(), &o.key, &o.at),
                    "mtu" => b.mtu(&o.key, &o.value, &o.at),
                    _ => b.skip(
                        &o.key,
                        &o.value,
                        "not a bond option: bondctl sets the bond's members, addresses and bonding options only",
                        &o.at,
                    ),
                },
            }
        }
        for a in addresses {
            let text = address(i, a).map_err(|r| a.at.err("address", r))?;
            b.addresses.push((text, a.at.clone()));
        }
        // Members' stanzas: `bond-master`, and options for the bond written there (ifenslave
        // applies those to the bond as it enslaves them).
        for (member, at) in masters.get(name).into_iter().flatten() {
            if !b.links.iter().any(|(l, _)| l == member) {
                b.links.push((member.clone(), at.clone()));
            }
            let (_, m) = ifaces.iter().find(|(n, _)| n == member).expect("the member's stanza");
            for o in &m.opts {
                let Some(k) = bond_key(&o.key).filter(|k| !OWN.contains(&k.as_str())) else { continue };
                if opt::kernel_option(&k).is_none() {
                    return Err(unknown_key(&o.at, &o.key, "a member's stanza", &known()));
                }
                let own = b.options.iter().find(|x| x.key == k).map(|x| (x.value.clone(), x.at.clone()));
                match own {
                    Some((v, _)) if v == o.value => {}
                    Some((v, at)) => {
                        return Err(o.at.err(&o.key, format!("{} here, {v} in iface {name} (at {})", o.value, at.show())));
                    }
                    None => bond_option(&mut b, &k, o)?,
                }
            }
        }
        bonds.push(b);
    }
    Ok(bonds)
}

/// ifenslave's and bonding.ko's names of options, for suggestions.
fn known() -> Vec<String> {
    opt::kernel_names().chain(OWN.iter().copied()).map(|k| format!("bond-{}", k.replace('_', "-"))).collect()
}

/// One `bond-*` option of the bond's stanza.
fn bond_option(b: &mut RawBond, k: &str, o: &Opt) -> Result<(), ConfigError> {
    match k {
        "slaves" => match o.value.as_str() {
            "none" => {}
            "all" => return Err(o.at.err(&o.key, "`all` (every Ethernet interface): name the members")),
            v => b.links.extend(v.split_whitespace().map(|l| (l.to_string(), o.at.clone()))),
        },
        "master" => return Err(o.at.err(&o.key, "a bond inside a bond")),
        "queue_id" | "give_a_chance" => b.skip(&o.key, &o.value, "no equivalent here", &o.at),
        "arp_ip_target" | "ns_ip6_target" => {
            b.opt(k, o.value.split([' ', ',']).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(","), &o.key, &o.at)
        }
        "peer_notif_delay" => b.opt("peer_notify_delay", o.value.clone(), &o.key, &o.at),
        k if opt::kernel_option(k).is_some() => b.opt(k, o.value.clone(), &o.key, &o.at),
        _ => return Err(unknown_key(&o.at, &o.key, &format!("iface {}", b.name), &known())),
    }
    Ok(())
}

/// `address A/P`, or `address A` with `netmask` (dotted or a length) in the same stanza.
fn address(i: &Iface, a: &Opt) -> Result<String, String> {
    if a.value.contains('/') {
        return Ok(a.value.clone());
    }
    let ip: IpAddr = a.value.parse().map_err(|_| format!("\"{}\" is not an IP address", a.value))?;
    // The netmask written after this address and before the next one.
    let mask = i.opts.iter().skip_while(|o| !std::ptr::eq(*o, a)).skip(1).take_while(|o| o.key != "address").find(|o| o.key == "netmask");
    let Some(mask) = mask else { return Err(format!("{} has no netmask: write ADDRESS/PREFIX", a.value)) };
    let prefix = match mask.value.parse::<u8>() {
        Ok(p) => p,
        Err(_) => {
            let m: std::net::Ipv4Addr = mask.value.parse().map_err(|_| format!("netmask \"{}\" is not a mask", mask.value))?;
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("netmask {} is not contiguous", mask.value));
            }
            bits.leading_ones() as u8
        }
    };
    Ok(format!("{ip}/{prefix}"))
}

/// Splits the files into stanzas; options of `iface` stanzas are kept by interface.
fn stanzas(path: &Path, text: &str, ifaces: &mut Vec<(String, Iface)>) -> Result<(), ConfigError> {
    let mut current: Option<usize> = None;
    let mut pending: Option<(String, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let (line, start) = match pending.take() {
            Some((acc, s)) => (format!("{acc} {}", raw.trim()), s),
            None => (raw.trim().to_string(), n),
        };
        if let Some(l) = line.strip_suffix('\\') {
            pending = Some((l.trim_end().to_string(), start));
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = Loc::new(path, start);
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first == "iface" {
            let (Some(name), Some(family), Some(method)) = (words.next(), words.next(), words.next()) else {
                return Err(at.err("iface", "expected `iface NAME FAMILY METHOD`"));
            };
            let idx = match ifaces.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    ifaces.push((name.to_string(), Iface { at: at.clone(), methods: Vec::new(), opts: Vec::new() }));
                    ifaces.len() - 1
                }
            };
            ifaces[idx].1.methods.push((family.to_string(), method.to_string(), at));
            current = Some(idx);
        } else if STANZAS.contains(&first) || first.starts_with("allow-") {
            current = None;
        } else if let Some(i) = current {
            let value = line[first.len()..].trim().to_string();
            ifaces[i].1.opts.push(Opt { key: first.to_string(), value, at });
        }
        // Lines of `mapping` stanzas (script, map) and others are not ours.
    }
    Ok(())
}
