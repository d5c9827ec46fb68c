//! A running bond's `/proc/net/bonding/BOND`: `Bonding Mode: fault-tolerance (active-backup)`,
//! `MII Polling Interval (ms): 100`, `Slave Interface: eth0`, ... as bonding's `bond_procfs.c`
//! writes them. The bond is named after the file. Lines of state (MII Status, counters, LACP
//! partners) are not configuration and are passed over.

use std::path::Path;

use super::{ConfigError, Loc, RawBond};

/// bonding's long mode names (`bond_mode_name`).
const MODES: &[(&str, &str)] = &[
    ("load balancing (round-robin)", "balance-rr"),
    ("fault-tolerance (active-backup)", "active-backup"),
    ("load balancing (xor)", "balance-xor"),
    ("fault-tolerance (broadcast)", "broadcast"),
    ("IEEE 802.3ad Dynamic link aggregation", "802.3ad"),
    ("transmit load balancing", "balance-tlb"),
    ("adaptive load balancing", "balance-alb"),
];

/// Line label, bonding's option (numbers and names as shown).
const LINES: &[(&str, &str)] = &[
    ("MII Polling Interval (ms)", "miimon"),
    ("Up Delay (ms)", "updelay"),
    ("Down Delay (ms)", "downdelay"),
    ("Peer Notification Delay (ms)", "peer_notify_delay"),
    ("ARP Polling Interval (ms)", "arp_interval"),
    ("ARP Missed Max", "arp_missed_max"),
    ("ARP IP target/s (n.n.n.n form)", "arp_ip_target"),
    ("NS IPv6 target/s (xx::xx form)", "ns_ip6_target"),
    ("LACP active", "lacp_active"),
    ("LACP rate", "lacp_rate"),
    ("Min links", "min_links"),
    ("Aggregator selection policy (ad_select)", "ad_select"),
    ("System priority", "ad_actor_sys_prio"),
];

pub fn parse(path: &Path, text: &str) -> Result<RawBond, ConfigError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("bond0");
    let mut b = RawBond::new(name, Loc::new(path, 1), "Slave Interface");
    b.kernel_state = true;
    let mut member: Option<String> = None;
    let mut actor_details = false;
    let mut seen_mode = false;
    for (n, line) in text.lines().enumerate() {
        let at = Loc::new(path, n + 1);
        let t = line.trim();
        if t.starts_with("details actor lacp pdu") {
            actor_details = true;
            continue;
        }
        if t.starts_with("details partner lacp pdu") {
            actor_details = false;
            continue;
        }
        let Some((label, value)) = t.split_once(':') else { continue };
        let value = value.trim();
        if label == "Slave Interface" {
            b.links.push((value.to_string(), at));
            member = Some(value.to_string());
            actor_details = false;
            continue;
        }
        if let Some(m) = &member {
            // A member's lines: only its LACP port priority is configuration.
            if actor_details && label == "port priority" && value != "255" {
                b.opt("actor_port_prio", format!("{m}:{value}"), "port priority", &at);
            }
            continue;
        }
        match label {
            "Bonding Mode" => {
                let (mode, fom) = match value.split_once(" (fail_over_mac ") {
                    Some((m, f)) => (m, Some(f.trim_end_matches(')'))),
                    None => (value, None),
                };
                let mode = MODES
                    .iter()
                    .find(|(l, _)| *l == mode)
                    .map(|(_, k)| *k)
                    .ok_or_else(|| at.err(label, format!("unknown mode \"{mode}\"")))?;
                b.opt("mode", mode, label, &at);
                if let Some(f) = fom {
                    b.opt("fail_over_mac", f, "fail_over_mac", &at);
                }
                seen_mode = true;
            }
            "Transmit Hash Policy" => b.opt("xmit_hash_policy", first_word(value), label, &at),
            "Primary Slave" if value != "None" => {
                let (p, reselect) = match value.split_once(" (primary_reselect ") {
                    Some((p, r)) => (p, Some(r.trim_end_matches(')'))),
                    None => (value, None),
                };
                b.opt("primary", p, label, &at);
                if let Some(r) = reselect {
                    b.opt("primary_reselect", r, "primary_reselect", &at);
                }
            }
            _ => {
                if let Some((_, k)) = LINES.iter().find(|(l, _)| *l == label) {
                    let v = if k.ends_with("target") { value.replace(' ', "") } else { value.to_string() };
                    b.opt(k, v, label, &at);
                }
            }
        }
    }
    if !seen_mode {
        return Err(Loc::new(path, 1).err("Bonding Mode", "missing: not a /proc/net/bonding file"));
    }
    b.skip(
        "(file)",
        "",
        "/proc/net/bonding does not show the addresses, the MAC address, MTU, arp_validate, arp_all_targets, num_grat_arp, num_unsol_na, resend_igmp, packets_per_slave, lp_interval, tlb_dynamic_lb, all_slaves_active, ad_user_port_key or primary_reselect without a primary: import /sys/class/net/BOND/bonding for them",
        &Loc::new(path, None),
    );
    Ok(b)
}

/// `layer3+4 (1)` -> `layer3+4`.
fn first_word(v: &str) -> &str {
    v.split_whitespace().next().unwrap_or(v)
}
