//! `bondctl set BOND KEY=VALUE...`: options changed on a running bond. Pure: from the bond's
//! specification and its policy in force to the changed ones, with every value checked by the
//! option table ([`super::options`]) as the file's are. All or nothing: one bad option and
//! nothing changes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    BondSpec, PolicySpec, kernel,
    model::ArpValidate,
    options::{self as opt, Opt},
    resolve,
};

/// What the options turn the bond's specification and policy into, and a line per change.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    pub spec: BondSpec,
    pub policy: PolicySpec,
    pub changes: Vec<String>,
    /// `active_slave` was given: that member is made active now, whatever the file says.
    pub made_active: bool,
}

/// Applies `KEY=VALUE` options (bonding.ko or ZeroTier spellings) to a copy of the bond's
/// specification and policy.
pub fn apply(spec: &BondSpec, policy: &PolicySpec, options: &[String]) -> Result<Changed, String> {
    if options.is_empty() {
        return Err(format!("nothing to set: give KEY=VALUE options ({})", opt::live_option_list()));
    }
    let mut out = Changed { spec: spec.clone(), policy: policy.clone(), changes: Vec::new(), made_active: false };
    for o in options {
        let (key, value) = o.split_once('=').ok_or_else(|| format!("\"{o}\" is not KEY=VALUE (e.g. miimon=100)"))?;
        let key = key.trim().trim_start_matches("bond-").trim_start_matches("bond_");
        let key = if key.contains('-') && opt::live_option(key).is_none() { key.replace('-', "_") } else { key.to_string() };
        let option = opt::live_option(&key).ok_or_else(|| unknown(&key))?;
        if option.at_restart {
            return Err(format!(
                "{key} is fixed while the programs run; change the file and restart the daemon (with --persist, as the service runs it, the new daemon adopts the bond without a gap and resizes the table)"
            ));
        }
        if !option.live {
            return Err(format!(
                "{key} cannot be changed on a running bond; change the file and `bondctl reload`, or take the bond down and up{}",
                if option.kernel == Some("mode") { " (`bondctl set-policy` switches policies)" } else { "" }
            ));
        }
        if !option.applies_to(policy.mode) {
            return Err(format!("{key} applies to {}; {} runs {}", option.modes_text(), spec.name, policy.mode.name()));
        }
        set(&mut out, option, value.trim()).map_err(|r| format!("{key}: {r}"))?;
        out.changes.push(format!("{}={}", option.name(), value.trim()));
    }
    resolve::check_arp_monitor(&out.spec.monitor).map_err(|(k, r)| format!("{k}: {r}"))?;
    resolve::check_whole_bond_mode(&out.spec.monitor, &out.policy).map_err(|(k, r)| format!("{k}: {r}"))?;
    Ok(out)
}

fn unknown(key: &str) -> String {
    let names = opt::ALL.iter().filter(|o| o.live && o.scope != opt::Scope::Link).flat_map(|o| [o.kernel, o.zerotier]).flatten();
    let hint = super::suggest::closest(key, names).map(|s| format!("; did you mean {s}?")).unwrap_or_default();
    format!("unknown option {key}{hint} (options a running bond takes: {})", opt::live_option_list())
}

fn int(o: &Opt, v: &str) -> Result<u64, String> {
    let n = v.parse::<u64>().map_err(|_| format!("\"{v}\" is not a number ({})", o.values_text()))?;
    o.int(n)
}

/// One option's value into the specification (the table's generic setter, as bonding's
/// `__bond_opt_set`).
fn set(out: &mut Changed, o: &Opt, v: &str) -> Result<(), String> {
    let (m, p) = (&mut out.spec.monitor, &mut out.policy);
    match o.name() {
        "miimon" => m.miimon = int(o, v)?,
        "num_grat_arp" => m.num_grat_arp = int(o, v)? as u32,
        "num_unsol_na" => m.num_unsol_na = int(o, v)? as u32,
        "arp_interval" => {
            let interval = int(o, v)?;
            match (&mut m.arp, interval) {
                (Some(a), 0) if a.ip_targets.is_empty() && a.ns_targets.is_empty() => m.arp = None,
                (Some(a), _) => a.interval = interval,
                (None, 0) => {}
                (None, _) => m.arp = Some(arp_monitor(interval)),
            }
        }
        "arp_ip_target" | "ns_ip6_target" => {
            let a = m.arp.get_or_insert_with(|| arp_monitor(0));
            let targets: Vec<&str> = v.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
            if targets.len() > 16 {
                return Err(format!("{} targets; at most 16", targets.len()));
            }
            if o.name() == "arp_ip_target" {
                a.ip_targets = targets
                    .iter()
                    .map(|t| t.parse::<Ipv4Addr>().map_err(|_| format!("\"{t}\" is not an IPv4 address")))
                    .collect::<Result<_, _>>()?;
            } else {
                a.ns_targets = targets
                    .iter()
                    .map(|t| t.parse::<Ipv6Addr>().map_err(|_| format!("\"{t}\" is not an IPv6 address")))
                    .collect::<Result<_, _>>()?;
            }
            if a.interval == 0 && a.ip_targets.is_empty() && a.ns_targets.is_empty() {
                m.arp = None;
            }
        }
        "arp_validate" => m.arp.get_or_insert_with(|| arp_monitor(0)).validate = ArpValidate::ALL[o.pick(v)?],
        "arp_all_targets" => m.arp.get_or_insert_with(|| arp_monitor(0)).all_targets = o.pick(v)? == 1,
        "arp_missed_max" => m.arp.get_or_insert_with(|| arp_monitor(0)).missed_max = int(o, v)? as u32,
        "peer_notify_delay" => m.peer_notify_delay = int(o, v)?,
        "resend_igmp" => m.resend_igmp = int(o, v)? as u32,
        "prio" | "actor_port_prio" => {
            // Per member, merged into what the bond has (bonding sets it one member at a time).
            let given = kernel::per_link(o, &kernel::parse_per_link(v)?, &out.spec.links).map_err(|(_, r)| r)?;
            for (link, n) in given {
                if o.name() == "prio" {
                    out.spec.prio.insert(link, n as i32);
                } else {
                    out.spec.lacp.port_priority.insert(link, n as u16);
                }
            }
        }
        "active_slave" => {
            if !out.spec.links.iter().any(|l| l == v) {
                return Err(format!("\"{v}\" is not a link of the bond (links: {})", out.spec.links.join(", ")));
            }
            out.spec.active_slave = Some(v.to_string());
            out.made_active = true;
        }
        "macaddress" => out.spec.mac = Some(kernel::mac_address(v)?),
        "lacp_strict" => out.spec.lacp.strict = o.pick(v)? == 1,
        "broadcast_neighbor" => out.spec.lacp.broadcast_neighbor = o.pick(v)? == 1,
        "lacp_rate" => out.spec.lacp.fast = kernel::lacp_rate(v)?,
        "min_links" => out.spec.lacp.min_links = int(o, v)? as u32,
        "lp_interval" => out.spec.tlb.lp_interval = int(o, v)?,
        "packetsPerLink" => p.packets_per_link = int(o, v)? as u32,
        "xmitHashPolicy" => p.xmit_hash = kernel::xmit_hash(v)?,
        "balancePolicy" => p.balance = resolve::balance(v)?,
        "failoverInterval" => p.failover_interval = int(o, v)?,
        "upDelay" => p.up_delay = int(o, v)?,
        "downDelay" => p.down_delay = int(o, v)?,
        "flowExpiry" => p.flow_expiry = int(o, v)?,
        "monitorStrategy" => p.monitor = resolve::monitor_strategy(v)?,
        "linkSelectMethod" => p.select_method = resolve::select_method(v).or_else(|_| kernel::select_method(v))?,
        "primary" => {
            if !out.spec.links.iter().any(|l| l == v) {
                return Err(format!("\"{v}\" is not a link of the bond (links: {})", out.spec.links.join(", ")));
            }
            for l in &out.spec.links {
                let link = p.links.entry(l.clone()).or_insert_with(|| super::LinkSpec { enabled: true, ..Default::default() });
                link.primary = l == v;
            }
            // `optimize` would not prefer it: as a file that names a primary without a
            // linkSelectMethod, the primary takes the role back (`always`). A
            // linkSelectMethod later on the same command line still has the last word.
            if p.select_method == crate::health::reselect::SelectMethod::Optimize {
                p.select_method = crate::health::reselect::SelectMethod::Always;
            }
        }
        other => return Err(format!("{other} has no setter")),
    }
    Ok(())
}

/// A monitor set up by `set` one option at a time (checked whole at the end).
fn arp_monitor(interval: u64) -> super::model::ArpMonitor {
    super::model::ArpMonitor {
        interval,
        ip_targets: Vec::new(),
        ns_targets: Vec::new(),
        validate: ArpValidate::None,
        all_targets: false,
        missed_max: 2,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn bond(yaml: &str) -> (BondSpec, PolicySpec) {
        let c = super::super::parse(Path::new("t.yaml"), yaml).unwrap();
        let b = c.bonds[0].clone();
        let p = c.policy(&b.policy).unwrap().clone();
        (b, p)
    }

    fn set_all(b: &(BondSpec, PolicySpec), opts: &[&str]) -> Result<Changed, String> {
        apply(&b.0, &b.1, &opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn live_options_change_the_spec_by_either_name() {
        let b = bond("bonds: { bond0: { links: [a, b], mode: 1 } }");
        let c = set_all(&b, &["miimon=50", "updelay=200", "downDelay=100", "failoverInterval=300", "num_grat_arp=3", "primary=b"]).unwrap();
        assert_eq!(c.spec.monitor.miimon, 50);
        assert_eq!(c.spec.monitor.num_grat_arp, 3);
        assert_eq!((c.policy.up_delay, c.policy.down_delay, c.policy.failover_interval), (200, 100, 300));
        assert!(c.policy.links["b"].primary && !c.policy.links["a"].primary);
        let zt = bond("bonds: { bond0: { links: [a, b], policy: active-backup } }");
        assert_eq!(zt.1.select_method, crate::health::reselect::SelectMethod::Optimize);
        let primary = set_all(&zt, &["primary=b"]).unwrap();
        assert_eq!(primary.policy.select_method, crate::health::reselect::SelectMethod::Always, "a primary that optimize would ignore");
        let then_better = set_all(&zt, &["primary=b", "linkSelectMethod=better"]).unwrap();
        assert_eq!(then_better.policy.select_method, crate::health::reselect::SelectMethod::Better);
        assert_eq!(c.changes, ["miimon=50", "upDelay=200", "downDelay=100", "failoverInterval=300", "num_grat_arp=3", "primary=b"]);
    }

    #[test]
    fn a_bad_option_changes_nothing_and_says_why() {
        let b = bond("bonds: { bond0: { links: [a, b], mode: 1 } }");
        for (opts, want) in [
            (&["miimon=50", "updelay=99999999"][..], "updelay: 99999999 ms is outside 0..=3600000"),
            (&["miimon=18446744073709551615"], "miimon: 18446744073709551615 ms is outside 0..=3600000"),
            (&["miimon=soon"], "miimon: \"soon\" is not a number"),
            (&["mimon=5"], "unknown option mimon; did you mean miimon?"),
            (&["mode=4"], "mode cannot be changed on a running bond"),
            (&["lacp_rate=fast"], "lacp_rate applies to 802.3ad; bond0 runs active-backup"),
            (&["primary=c"], "primary: \"c\" is not a link of the bond"),
            (&["arp_interval=100"], "arp_ip_target: arp_interval is set but there is no arp_ip_target"),
            (&["miimon"], "\"miimon\" is not KEY=VALUE"),
            (&[], "nothing to set"),
        ] {
            let e = set_all(&b, opts).unwrap_err();
            assert!(e.contains(want), "{opts:?}: {e}");
        }
    }

    #[test]
    fn the_arp_monitor_is_set_whole() {
        let b = bond("bonds: { bond0: { links: [a, b], mode: 1 } }");
        let c = set_all(&b, &["arp_interval=100", "arp_ip_target=192.0.2.1,192.0.2.2", "arp_validate=3"]).unwrap();
        let a = c.spec.monitor.arp.unwrap();
        assert_eq!((a.interval, a.ip_targets.len(), a.validate), (100, 2, ArpValidate::All));
        let b = bond("bonds: { bond0: { links: [a, b], mode: 1, arp_interval: 100, arp_ip_target: [192.0.2.1] } }");
        assert!(set_all(&b, &["arp_interval=0"]).unwrap_err().contains("targets are set but arp_interval is 0"));
        assert_eq!(set_all(&b, &["arp_interval=0", "arp_ip_target="]).unwrap().spec.monitor.arp, None);
    }

    #[test]
    fn per_member_options_merge_and_name_their_member() {
        let b = bond("bonds: { bond0: { links: [a, b, c], mode: 1, prio: { a: 5 } } }");
        let c = set_all(&b, &["prio=b:10,c:-50"]).unwrap();
        assert_eq!(c.spec.prio.get("a"), Some(&5), "kept");
        assert_eq!((c.spec.prio.get("b"), c.spec.prio.get("c")), (Some(&10), Some(&-50)));
        assert!(set_all(&b, &["prio=d:1"]).unwrap_err().contains("prio: \"d\" is not a link of the bond"));
        assert!(set_all(&b, &["prio=b"]).unwrap_err().contains("\"b\" is not LINK:N"));
        assert_eq!(set_all(&b, &["active_slave=c"]).unwrap().spec.active_slave.as_deref(), Some("c"));
        assert_eq!(set_all(&b, &["peer_notify_delay=100", "resend_igmp=3"]).unwrap().spec.monitor.peer_notify_delay, 100);
        assert!(set_all(&b, &["resend_igmp=256"]).unwrap_err().contains("outside 0..=255"));
        assert_eq!(set_all(&b, &["macaddress=02:11:22:33:44:55"]).unwrap().spec.mac, Some([2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert!(set_all(&b, &["macaddress=01:00:5e:00:00:01"]).unwrap_err().contains("multicast"));
        assert!(set_all(&b, &["lacp_strict=on"]).unwrap_err().contains("applies to 802.3ad"));
        let lacp = bond("bonds: { bond0: { links: [a, b], mode: 4 } }");
        let c = set_all(&lacp, &["lacp_strict=on", "actor_port_prio=a:1000", "broadcast_neighbor=1"]).unwrap();
        assert!(c.spec.lacp.strict && c.spec.lacp.broadcast_neighbor);
        assert_eq!(c.spec.lacp.port_priority.get("a"), Some(&1000));
    }

    #[test]
    fn lacp_rate_changes_under_802_3ad() {
        let b = bond("bonds: { bond0: { links: [a, b], mode: 4 } }");
        assert!(set_all(&b, &["lacp_rate=fast"]).unwrap().spec.lacp.fast);
        assert_eq!(set_all(&b, &["min_links=2"]).unwrap().spec.lacp.min_links, 2);
        assert!(set_all(&b, &["flow_table_size=1048576"]).unwrap_err().contains("restart the daemon"));
        assert!(set_all(&b, &["min_links=17"]).unwrap_err().contains("outside 0..=16"));
        assert!(set_all(&b, &["monitorStrategy=active"]).unwrap_err().contains("peer probes do not work with 802.3ad"));
    }
}
