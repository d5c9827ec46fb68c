//! NetworkManager keyfiles (`/etc/NetworkManager/system-connections/*.nmconnection`): the bond's
//! profile (`[connection] type=bond interface-name=bond0`, `[bond]` with bonding's options under
//! their own names, `[ethernet] cloned-mac-address= mtu=`, `[ipv4]`/`[ipv6]` `address1=`) and
//! its ports' (`master=` or `controller=` naming the bond's interface, uuid or id, with
//! `slave-type=bond` or `port-type=bond`; `[bond-port] prio=`).

use std::path::Path;

use super::{
    ConfigError, Loc, RawBond,
    ini::{self, Section},
    unknown_key,
};
use crate::config::options as opt;

/// NetworkManager's own `[bond]` options (not bonding.ko's).
const NM_ONLY: &[&str] = &["balance_slb"];

struct Profile<'a> {
    path: &'a Path,
    sections: Vec<Section>,
}

impl Profile<'_> {
    fn get(&self, section: &str, key: &str) -> Option<&ini::Entry> {
        ini::get(&self.sections, section, key)
    }
    fn at(&self, line: usize) -> Loc {
        Loc::new(self.path, line)
    }
}

pub fn parse(files: &[(&Path, &str)]) -> Result<Vec<RawBond>, ConfigError> {
    let profiles: Vec<Profile> =
        files.iter().map(|(p, t)| Ok(Profile { path: p, sections: ini::parse(p, t)? })).collect::<Result<_, _>>()?;
    let mut bonds = Vec::new();
    let mut ids: Vec<[Option<String>; 3]> = Vec::new();
    for p in profiles.iter().filter(|p| p.get("connection", "type").is_some_and(|t| t.value == "bond")) {
        let t = p.get("connection", "type").expect("typed");
        let name = p
            .get("connection", "interface-name")
            .ok_or_else(|| p.at(t.line).err("connection.interface-name", "missing: the bond's device name"))?;
        let mut b = RawBond::new(&name.value, p.at(name.line), "ports (master=)");
        bond_profile(p, &mut b)?;
        ids.push([
            Some(name.value.clone()),
            p.get("connection", "uuid").map(|e| e.value.clone()),
            p.get("connection", "id").map(|e| e.value.clone()),
        ]);
        bonds.push(b);
    }
    // Ports, in the order of the files.
    for p in &profiles {
        let controller = p.get("connection", "controller").or_else(|| p.get("connection", "master"));
        let port_type = p.get("connection", "port-type").or_else(|| p.get("connection", "slave-type"));
        let (Some(c), Some(pt)) = (controller, port_type) else { continue };
        if pt.value != "bond" {
            continue;
        }
        let key = format!("connection.{}", c.key);
        let i = ids
            .iter()
            .position(|id| id.iter().flatten().any(|v| *v == c.value))
            .ok_or_else(|| p.at(c.line).err(&key, format!("\"{}\" is no bond's interface-name, uuid or id in the files given", c.value)))?;
        let Some(ifname) = p.get("connection", "interface-name") else {
            return Err(p
                .at(c.line)
                .err("connection.interface-name", "missing: a port must name its device (matching by MAC address is not imported)"));
        };
        let at = p.at(ifname.line);
        let b = &mut bonds[i];
        b.links.push((ifname.value.clone(), at));
        for e in p.sections.iter().filter(|s| s.name == "bond-port").flat_map(|s| &s.entries) {
            let at = p.at(e.line);
            match e.key.as_str() {
                "prio" => b.opt("prio", format!("{}:{}", ifname.value, e.value), "bond-port.prio", &at),
                "queue-id" if e.value == "0" => {}
                k => b.skip(&format!("bond-port.{k}"), &e.value, "no equivalent here", &at),
            }
        }
    }
    Ok(bonds)
}

fn bond_profile(p: &Profile, b: &mut RawBond) -> Result<(), ConfigError> {
    for s in &p.sections {
        for e in &s.entries {
            let at = p.at(e.line);
            let key = format!("{}.{}", s.name, e.key);
            match (s.name.as_str(), e.key.as_str()) {
                ("bond", "peer_notif_delay") => b.opt("peer_notify_delay", e.value.clone(), &key, &at),
                ("bond", k) if NM_ONLY.contains(&k) => b.skip(&key, &e.value, "NetworkManager's own option; no equivalent here", &at),
                ("bond", k) if opt::kernel_option(k).is_some() => b.opt(k, e.value.clone(), &key, &at),
                ("bond", _) => {
                    let known: Vec<&str> = opt::kernel_names().chain(NM_ONLY.iter().copied()).chain(["peer_notif_delay"]).collect();
                    return Err(unknown_key(&at, &key, "[bond]", &known));
                }
                ("ethernet", "cloned-mac-address") => match e.value.as_str() {
                    "preserve" | "permanent" | "random" | "stable" | "stable-ssid" => {
                        b.skip(&key, &e.value, "only a fixed address here (else the first member's)", &at)
                    }
                    v => b.opt("macaddress", v, &key, &at),
                },
                ("ethernet", "mtu") if e.value != "0" && e.value != "auto" => b.mtu(&key, &e.value, &at),
                ("ethernet", "mtu") => {}
                ("ethernet", _) => b.skip(&key, &e.value, "no equivalent on a bond here", &at),
                ("ipv4" | "ipv6", k) if k == "addresses" || k.strip_prefix("address").is_some_and(|n| n.parse::<u32>().is_ok()) => {
                    for a in e.value.split(';').filter(|a| !a.trim().is_empty()) {
                        let (addr, gw) = a.split_once(',').map_or((a, None), |(a, g)| (a, Some(g)));
                        b.addresses.push((addr.trim().to_string(), at.clone()));
                        if let Some(g) = gw.filter(|g| !g.trim().is_empty()) {
                            b.skip(&format!("{key} gateway"), g.trim(), "routes are not bondctl's: add the default route yourself", &at);
                        }
                    }
                }
                ("ipv4", "method") if ["auto", "shared"].contains(&e.value.as_str()) => {
                    b.skip(&key, &e.value, "bondctl sets static addresses only (no DHCP)", &at)
                }
                ("ipv6", "method") if ["dhcp", "shared"].contains(&e.value.as_str()) => {
                    b.skip(&key, &e.value, "bondctl sets static addresses only (no DHCPv6)", &at)
                }
                ("ipv4" | "ipv6", k) if k == "gateway" || k.starts_with("dns") || k.starts_with("route") => {
                    b.skip(&key, &e.value, "routes and DNS are not bondctl's: the bond device is an ordinary interface for them", &at)
                }
                // Profile metadata (id, uuid, autoconnect) and settings of no bond.
                _ => {}
            }
        }
    }
    Ok(())
}
