//! systemd-networkd units: the bond's `.netdev` (`[NetDev] Name= Kind=bond MACAddress=
//! MTUBytes=`, `[Bond]` with networkd's names of bonding's options), the members' `.network`
//! (`[Match] Name=eth0`, `[Network] Bond=bond0`, `PrimarySlave=`, `ActiveSlave=`) and the bond's
//! own `.network` (`Address=`). Times follow systemd.time: a bare number is seconds.

use std::path::Path;

use super::{
    ConfigError, Loc, RawBond, bool_01, duration_ms, duration_s,
    ini::{self, Section},
    unknown_key,
};

/// networkd's `[Bond]` key, bonding's option.
const BOND_KEYS: &[(&str, &str)] = &[
    ("Mode", "mode"),
    ("TransmitHashPolicy", "xmit_hash_policy"),
    ("LACPTransmitRate", "lacp_rate"),
    ("MIIMonitorSec", "miimon"),
    ("UpDelaySec", "updelay"),
    ("DownDelaySec", "downdelay"),
    ("LearnPacketIntervalSec", "lp_interval"),
    ("AdSelect", "ad_select"),
    ("AdActorSystemPriority", "ad_actor_sys_prio"),
    ("AdUserPortKey", "ad_user_port_key"),
    ("AdActorSystem", "ad_actor_system"),
    ("FailOverMACPolicy", "fail_over_mac"),
    ("ARPValidate", "arp_validate"),
    ("ARPIntervalSec", "arp_interval"),
    ("ARPIPTargets", "arp_ip_target"),
    ("ARPAllTargets", "arp_all_targets"),
    ("ARPMissedMax", "arp_missed_max"),
    ("PrimaryReselectPolicy", "primary_reselect"),
    ("ResendIGMP", "resend_igmp"),
    ("PacketsPerSlave", "packets_per_slave"),
    ("GratuitousARP", "num_grat_arp"),
    ("AllSlavesActive", "all_slaves_active"),
    ("DynamicTransmitLoadBalancing", "tlb_dynamic_lb"),
    ("MinLinks", "min_links"),
    ("PeerNotifyDelaySec", "peer_notify_delay"),
];

struct Unit<'a> {
    path: &'a Path,
    sections: Vec<Section>,
}

impl Unit<'_> {
    fn get(&self, section: &str, key: &str) -> Option<&ini::Entry> {
        ini::get(&self.sections, section, key)
    }
    fn at(&self, line: usize) -> Loc {
        Loc::new(self.path, line)
    }
    fn entries<'s>(&'s self, section: &'s str) -> impl Iterator<Item = &'s ini::Entry> {
        self.sections.iter().filter(move |s| s.name == section).flat_map(|s| &s.entries)
    }
    /// `[Match] Name=`'s names.
    fn names(&self) -> Vec<&str> {
        self.entries("Match").filter(|e| e.key == "Name").flat_map(|e| e.value.split_whitespace()).collect()
    }
}

pub fn parse(files: &[(&Path, &str)]) -> Result<Vec<RawBond>, ConfigError> {
    let units: Vec<Unit> = files.iter().map(|(p, t)| Ok(Unit { path: p, sections: ini::parse(p, t)? })).collect::<Result<_, _>>()?;
    let ext = |u: &Unit, e: &str| u.path.extension().is_some_and(|x| x == e);
    let mut bonds = Vec::new();
    for u in units.iter().filter(|u| ext(u, "netdev") && u.get("NetDev", "Kind").is_some_and(|k| k.value == "bond")) {
        let kind = u.get("NetDev", "Kind").expect("kind");
        let name = u.get("NetDev", "Name").ok_or_else(|| u.at(kind.line).err("NetDev.Name", "missing: the bond's device name"))?;
        let mut b = RawBond::new(&name.value, u.at(name.line), "Bond= (in a member's .network)");
        netdev(u, &mut b)?;
        bonds.push(b);
    }
    for u in units.iter().filter(|u| ext(u, "network")) {
        for bond_ref in u.entries("Network").filter(|e| e.key == "Bond") {
            let at = u.at(bond_ref.line);
            let b = bonds
                .iter_mut()
                .find(|b| b.name == bond_ref.value)
                .ok_or_else(|| at.err("Network.Bond", format!("no .netdev given defines bond {}", bond_ref.value)))?;
            let names = u.names();
            if names.is_empty() {
                return Err(at.err("Match.Name", "the member's .network matches no name (matching by other properties is not imported)"));
            }
            for n in &names {
                if n.contains(['*', '?', '[']) || n.starts_with('!') {
                    return Err(at.err("Match.Name", format!("\"{n}\" is a pattern: name the members")));
                }
                b.links.push((n.to_string(), at.clone()));
            }
            for (k, opt) in [("PrimarySlave", "primary"), ("ActiveSlave", "active_slave")] {
                if let Some(e) = u.get("Network", k) {
                    let key = format!("Network.{k}");
                    if bool_01(&e.value).map_err(|r| u.at(e.line).err(&key, r))? == "1" {
                        b.opt(opt, names[0], &key, &u.at(e.line));
                    }
                }
            }
        }
        // The bond's own .network.
        if let Some(b) = bonds.iter_mut().find(|b| u.names().contains(&b.name.as_str())) {
            own_network(u, b)?;
        }
    }
    Ok(bonds)
}

fn netdev(u: &Unit, b: &mut RawBond) -> Result<(), ConfigError> {
    for e in u.entries("NetDev") {
        let at = u.at(e.line);
        match e.key.as_str() {
            "MACAddress" if e.value != "none" => b.opt("macaddress", e.value.clone(), "NetDev.MACAddress", &at),
            "MTUBytes" => b.mtu("NetDev.MTUBytes", &e.value, &at),
            _ => {}
        }
    }
    for e in u.entries("Bond") {
        let at = u.at(e.line);
        let key = format!("Bond.{}", e.key);
        let Some((_, kernel)) = BOND_KEYS.iter().find(|(k, _)| *k == e.key) else {
            let known: Vec<&str> = BOND_KEYS.iter().map(|(k, _)| *k).collect();
            return Err(unknown_key(&at, &key, "[Bond]", &known));
        };
        let bad = |r: String| at.err(&key, r);
        let v = e.value.clone();
        match *kernel {
            "miimon" | "updelay" | "downdelay" | "arp_interval" | "peer_notify_delay" => {
                b.opt(kernel, duration_ms(&v, 1000).map_err(bad)?.to_string(), &key, &at)
            }
            "lp_interval" => b.opt(kernel, duration_s(&v, 1000).map_err(bad)?.to_string(), &key, &at),
            "all_slaves_active" | "tlb_dynamic_lb" => b.opt(kernel, bool_01(&v).map_err(bad)?, &key, &at),
            "arp_ip_target" => b.opt(kernel, v.split_whitespace().collect::<Vec<_>>().join(","), &key, &at),
            // GratuitousARP= sets the kernel's one count of both.
            "num_grat_arp" => {
                b.opt("num_grat_arp", v.clone(), &key, &at);
                b.opt("num_unsol_na", v, &key, &at);
            }
            _ => b.opt(kernel, v, &key, &at),
        }
    }
    Ok(())
}

/// Addresses of the bond's `.network`; what else it sets is not the bond's business here.
fn own_network(u: &Unit, b: &mut RawBond) -> Result<(), ConfigError> {
    for s in &u.sections {
        for e in &s.entries {
            let at = u.at(e.line);
            let key = format!("{}.{}", s.name, e.key);
            match (s.name.as_str(), e.key.as_str()) {
                ("Network" | "Address", "Address") => b.addresses.push((e.value.clone(), at)),
                ("Network", "DHCP") if e.value != "no" && e.value != "false" => {
                    b.skip(&key, &e.value, "bondctl sets static addresses only (no DHCP)", &at)
                }
                ("Network", "Gateway" | "DNS" | "Domains") | ("Route", _) => {
                    b.skip(&key, &e.value, "routes and DNS are not bondctl's: the bond device is an ordinary interface for them", &at)
                }
                ("Link", "MTUBytes") => b.mtu(&key, &e.value, &at),
                ("Link", "MACAddress") => b.opt("macaddress", e.value.clone(), &key, &at),
                _ => {}
            }
        }
    }
    Ok(())
}
