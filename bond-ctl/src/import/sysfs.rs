//! A running bond's `/sys/class/net/BOND/bonding/` directory, as a map of file name to content
//! (`mode` "active-backup 1", `slaves` "eth0 eth1", `arp_ip_target` "192.0.2.1,192.0.2.2",
//! ...); `../mtu` may hold the device's MTU. The bond is named after the directory above
//! `bonding`.

use std::{collections::BTreeMap, path::Path};

use super::{ConfigError, Loc, RawBond};
use crate::config::options as opt;

/// Files of state, not configuration.
const STATE: &[&str] =
    &["active_slave", "mii_status", "ad_aggregator", "ad_num_ports", "ad_actor_key", "ad_partner_key", "ad_partner_mac", "queue_id"];

pub fn parse(path: &Path, files: &BTreeMap<String, String>) -> Result<RawBond, ConfigError> {
    let dir = if path.file_name().is_some_and(|n| n == "bonding") { path.parent().unwrap_or(path) } else { path };
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("bond0");
    let at = |f: &str| Loc::new(&path.join(f), 1);
    let mut b = RawBond::new(name, Loc::new(path, None), "slaves");
    b.kernel_state = true;
    if !files.contains_key("mode") {
        return Err(at("mode").err("mode", "missing: not a bond's bonding directory"));
    }
    for (file, content) in files {
        let value = content.trim();
        let loc = at(file);
        match file.as_str() {
            "slaves" => b.links.extend(value.split_whitespace().map(|l| (l.to_string(), loc.clone()))),
            "../mtu" => {
                if value != "1500" {
                    b.mtu("mtu", value, &loc);
                }
            }
            "peer_notif_delay" => b.opt("peer_notify_delay", value, file, &loc),
            f if STATE.contains(&f) => {}
            f => match opt::kernel_option(f) {
                // Named values are shown with their number: "active-backup 1".
                Some(o) if matches!(o.values, opt::Values::Names { .. }) || f == "mode" => {
                    b.opt(f, value.split_whitespace().next().unwrap_or(""), file, &loc)
                }
                Some(_) => b.opt(f, value, file, &loc),
                None => b.skip(f, value, "not known to this version of bondctl import", &loc),
            },
        }
    }
    b.skip(
        "addresses",
        "",
        format!("sysfs's bonding directory does not hold them: add the bond's addresses (`ip -br address show {name}`)"),
        &b.at.clone(),
    );
    Ok(b)
}
