//! Configuration loading: examples that load, and bad files with their errors.

use std::{net::Ipv4Addr, path::Path};

use bond_common::config::{Balance, Mode, XmitHash};

use super::{model::*, parse};
use crate::health::reselect::SelectMethod;

fn ok(text: &str) -> Config {
    parse(Path::new("bond.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn bad(text: &str) -> String {
    parse(Path::new("bond.yaml"), text).expect_err("should be rejected").to_string()
}

#[test]
fn issue_example_loads() {
    let c = ok("
bonds:
  bond0:
    links: [eth0, eth1, eth2]
    addresses: [198.51.100.1/24]
    policy: balance-xor
settings:
  defaultBondingPolicy: active-backup
  policies:
    my-rr: { basePolicy: balance-rr, packetsPerLink: 1 }
    my-xor: { basePolicy: balance-xor, xmitHashPolicy: layer2+3 }
");
    let b = c.bond("bond0").unwrap();
    assert_eq!(b.links, ["eth0", "eth1", "eth2"]);
    assert_eq!(b.addresses, [("198.51.100.1".parse().unwrap(), 24)]);
    assert_eq!(b.policy, "balance-xor");
    assert_eq!(c.policy("my-rr").unwrap().packets_per_link, 1);
    assert_eq!(c.policy("my-rr").unwrap().mode, Mode::BalanceRr);
    assert_eq!(c.policy("my-xor").unwrap().xmit_hash, XmitHash::Layer23);
}

#[test]
fn defaults() {
    let c = ok("bonds: { bond0: { links: [a, b] } }");
    // No ZeroTier policy named: the bond runs as bonding.ko would (active-backup, the default
    // policy's mode), without probes or punishment.
    assert_eq!(c.bond("bond0").unwrap().policy, "bond0");
    let own = c.policy("bond0").unwrap();
    assert_eq!(
        (own.mode, own.monitor, own.punishment, own.select_method),
        (Mode::ActiveBackup, MonitorStrategy::Passive, None, SelectMethod::Always)
    );
    let named = ok("bonds: { bond0: { links: [a, b], policy: active-backup } }");
    assert_eq!(named.bond("bond0").unwrap().policy, "active-backup", "a ZeroTier policy by name");
    assert_eq!(named.policy("active-backup").unwrap().monitor, MonitorStrategy::Active, "probes, as ZeroTier");
    let by_default = ok("settings: { defaultBondingPolicy: balance-xor }\nbonds: { bond0: { links: [a, b] } }");
    assert_eq!(by_default.bond("bond0").unwrap().policy, "balance-xor", "the file's default policy is a ZeroTier one");
    let overridden = ok("settings: { active-backup: { failoverInterval: 900 } }\nbonds: { bond0: { links: [a, b] } }");
    assert_eq!(overridden.bond("bond0").unwrap().policy, "active-backup", "the default policy overridden under settings");
    let e = bad("bonds: { bond0: { links: [a, b], policy: balance-xor, monitorStrategy: passive } }");
    assert!(e.contains("bonds.bond0.monitorStrategy") && e.contains("give monitorStrategy in that policy"), "{e}");
    let rr = c.policy("balance-rr").unwrap();
    assert_eq!(rr.packets_per_link, 64);
    assert_eq!(c.policy("balance-xor").unwrap().xmit_hash, XmitHash::ZeroTier);
    assert_eq!(c.policy("balance-aware").unwrap().balance, Balance::FlowDynamic);
}

#[test]
fn the_flow_table_size_is_a_bond_setting_within_its_range() {
    assert_eq!(ok("bonds: { bond0: { links: [a] } }").bond("bond0").unwrap().flow_table_size, 65536);
    assert_eq!(ok("bonds: { bond0: { links: [a], flow_table_size: 1048576 } }").bond("bond0").unwrap().flow_table_size, 1 << 20);
    let e = bad("bonds: { bond0: { links: [a], flow_table_size: 100 } }");
    assert!(e.contains("bonds.bond0.flow_table_size") && e.contains("1024..=4194304"), "{e}");
    let e = bad("bonds: { bond0: { links: [a], flow_table_size: 8388608 } }");
    assert!(e.contains("bonds.bond0.flow_table_size"), "{e}");
}

#[test]
fn json_is_accepted() {
    let c = parse(Path::new("b.json"), r#"{"bonds": {"bond0": {"links": ["a"], "policy": "broadcast"}}}"#).unwrap();
    assert_eq!(c.bond("bond0").unwrap().policy, "broadcast");
}

#[test]
fn errors_name_key_and_reason() {
    let e = bad("bonds: { bond0: { links: [a], policy: nope } }");
    assert!(e.starts_with("bond.yaml:1: bonds.bond0.policy: unknown policy \"nope\""), "{e}");
    let e = bad("bonds: { bond0: { links: [a], polcy: x } }");
    assert!(e.contains("bonds.bond0") && e.contains("unknown field `polcy`"), "{e}");
    assert!(e.starts_with("bond.yaml:1:"), "line number: {e}");
    let e = bad("settings: { policies: { p: { basePolicy: balance-xor, xmitHashPolicy: layer5 } } }");
    assert!(e.contains("settings.policies.p.xmitHashPolicy: unknown hash \"layer5\""), "{e}");
    let e = bad("settings: { policies: { balance-rr: { basePolicy: balance-rr } } }");
    assert!(e.contains("is a standard policy"), "{e}");
    let e = bad("bonds: { bond0: { links: [a, a] } }");
    assert!(e.contains("bonds.bond0.links[1]: \"a\" is listed twice"), "{e}");
    let e = bad("bonds: { bond0: { links: [a], addresses: [10.0.0.1] } }");
    assert!(e.contains("bonds.bond0.addresses[0]"), "{e}");
    let e = bad("bonds: { b0: { links: [a] }, b1: { links: [a] } }");
    assert!(e.contains("already a member of bond b0"), "{e}");
    let e = bad("bonds: { bond0: { links: [] } }");
    assert!(e.contains("at least one link"), "{e}");
}

#[test]
fn policy_links_must_belong_to_the_bond() {
    let e = bad("
bonds: { bond0: { links: [a, b], policy: p } }
settings: { policies: { p: { basePolicy: balance-aware, links: { c: { alloc: 1.0 } } } } }
");
    assert!(e.contains("settings.policies.p.links.c: \"c\" is not a link of the bond"), "{e}");
}

#[test]
fn health_settings_resolve() {
    let c = ok("
bonds:
  bond0:
    links: [a, b]
    policy: ab
    arp_interval: 100
    arp_ip_target: [192.0.2.9]
    arp_validate: all
    num_grat_arp: 3
settings:
  policies:
    ab:
      basePolicy: active-backup
      failoverInterval: 30
      downDelay: 20
      activeReselect: better
      pathMonitorStrategy: dynamic
      quality: { lat: 0.5, plr: 0.5 }
      links:
        a: { mode: primary, failoverTo: b, ipvPref: 4, upDelay: 100 }
        b: { mode: spare }
");
    let p = c.policy("ab").unwrap();
    assert_eq!((p.failover_interval, p.down_delay, p.select_method), (30, 20, SelectMethod::Better));
    assert_eq!(p.monitor, MonitorStrategy::Dynamic);
    assert_eq!((p.weights.lat, p.weights.plr, p.weights.pdv), (0.5, 0.5, 0.0));
    assert_eq!(p.link_timing("a"), (30, 100, 20));
    assert_eq!(p.ipv_pref("a"), IpvPref::V4);
    let m = &c.bond("bond0").unwrap().monitor;
    let arp = m.arp.as_ref().unwrap();
    assert_eq!((arp.interval, arp.validate, arp.missed_max, m.num_grat_arp), (100, ArpValidate::All, 2, 3));
    assert_eq!(arp.ip_targets, ["192.0.2.9".parse::<Ipv4Addr>().unwrap()]);
}

#[test]
fn select_method_default_follows_failover_guidance() {
    let c = ok(
        "settings: { policies: { g: { basePolicy: active-backup, links: { a: { mode: primary } } }, n: { basePolicy: active-backup } } }",
    );
    assert_eq!(c.policy("g").unwrap().select_method, SelectMethod::Always);
    assert_eq!(c.policy("n").unwrap().select_method, SelectMethod::Optimize);
}

#[test]
fn health_settings_are_validated() {
    for (text, want) in [
        (
            "settings: { policies: { p: { basePolicy: broadcast, quality: { lat: 0.5, plr: 0.4 } } } }",
            "settings.policies.p.quality: the weights sum to 0.9",
        ),
        (
            "settings: { policies: { p: { basePolicy: broadcast, failoverInterval: 5 } } }",
            "settings.policies.p.failoverInterval: 5 ms is outside",
        ),
        ("settings: { policies: { p: { basePolicy: balance-xor, dedup: true } } }", "dedup applies to broadcast"),
        ("settings: { policies: { p: { basePolicy: active-backup, links: { a: { ipvPref: 5 } } } } }", "links.a.ipvPref: 5 is not one of"),
        (
            "settings: { policies: { p: { basePolicy: active-backup, links: { a: { mode: spare, failoverTo: b }, b: {} } } } }",
            "links.a.failoverTo: a spare link has no failoverTo",
        ),
        (
            "settings: { policies: { p: { basePolicy: balance-aware, links: { a: { alloc: 0.5 }, b: { alloc: 0.4 } } } } }",
            "the alloc shares sum to 0.9",
        ),
        ("settings: { policies: { p: { basePolicy: active-backup, linkSelectMethod: sometimes } } }", "unknown method \"sometimes\""),
        ("bonds: { b: { links: [a], arp_interval: 100 } }", "bonds.b.arp_ip_target: arp_interval is set but there is no"),
        ("bonds: { b: { links: [a], arp_ip_target: [192.0.2.1] } }", "bonds.b.arp_interval: targets are set"),
        (
            "bonds: { b: { links: [a], arp_interval: 10, arp_ip_target: [nope] } }",
            "bonds.b.arp_ip_target[0]: \"nope\" is not an IPv4 address",
        ),
        (
            "bonds: { b: { links: [a], arp_interval: 10, arp_ip_target: [192.0.2.1], arp_validate: maybe } }",
            "bonds.b.arp_validate: \"maybe\" is not none, active",
        ),
    ] {
        let e = bad(text);
        assert!(e.contains(want), "{text}\n  gave: {e}\n  want: {want}");
    }
}

#[test]
fn arp_validate_takes_numbers_too() {
    let pick = |v: &str| super::options::ARP_VALIDATE.pick(v).ok().map(|i| ArpValidate::ALL[i]);
    assert_eq!(pick("3"), Some(ArpValidate::All));
    assert_eq!(pick("filter_backup"), Some(ArpValidate::FilterBackup));
    assert_eq!(pick("7"), None);
}

/// Every bonding.ko option of the table is a key of a bond in the file, known to
/// `file::Bond::given`, and the file knows no bond key the table lacks.
#[test]
fn the_file_and_the_option_table_know_the_same_bond_keys() {
    use super::options::{ALL, Scope, Values};
    for o in ALL.iter().filter(|o| o.scope != Scope::Link) {
        let Some(k) = o.kernel else { continue };
        let value = match o.values {
            Values::Int { .. } => "1",
            Values::PerLink { .. } => "{ a: 1 }",
            Values::Other(what) if what.contains("addresses") => "[192.0.2.1]",
            _ => "x",
        };
        let raw: super::file::File =
            serde_yaml::from_str(&format!("bonds: {{ b: {{ links: [a], {k}: {value} }} }}")).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert!(raw.bonds["b"].given(k), "file::Bond::given does not know {k}");
    }
    let e = serde_yaml::from_str::<super::file::File>("bonds: { b: { links: [a], nope: 1 } }").unwrap_err().to_string();
    let expected: Vec<&str> = e.split('`').skip(3).step_by(2).collect();
    for k in expected.iter().filter(|k| !["links", "addresses", "policy"].contains(k)) {
        assert!(super::options::live_option(k).is_some(), "the file takes {k} on a bond; the option table does not have it");
    }
}

#[test]
fn malformed_yaml_reports_line() {
    let e = parse(Path::new("x.yaml"), "bonds:\n  bond0: [\n").unwrap_err();
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn peer_specific_bonds_by_address_prefix_and_mac() {
    let c = ok("settings:
  peerSpecificBonds:
    192.0.2.7: balance-rr
    198.51.100.77/24: broadcast
    fd00::1: balance-xor
    02-00-00-00-00-0A: active-backup
    abcdef0123: balance-rr
bonds:
  bond0:
    links: [eth0, eth1]
");
    let peers: Vec<(String, &str)> = c.peers.iter().map(|p| (p.peer.to_string(), p.policy.as_str())).collect();
    assert_eq!(
        peers,
        [
            ("192.0.2.7/32".to_string(), "balance-rr"),
            ("198.51.100.0/24".to_string(), "broadcast"),
            ("fd00::1/128".to_string(), "balance-xor"),
            ("02:00:00:00:00:0a".to_string(), "active-backup"),
        ]
    );
    assert!(c.warnings.iter().any(|w| w.contains("abcdef0123") && w.contains("ZeroTier node id")));
}

#[test]
fn bad_peers_are_refused() {
    for (peer, reason) in [
        ("192.0.2.300", "is not an IP address, prefix or MAC address"),
        ("192.0.2.0/33", "is not a prefix length"),
        ("02:00:00:00:00", "is not an IP address, prefix or MAC address"),
    ] {
        let text = format!("settings:\n  peerSpecificBonds:\n    \"{peer}\": balance-rr\n");
        let e = bad(&text);
        assert!(e.contains(&format!("settings.peerSpecificBonds.{peer}: ")), "{e}");
        assert!(e.contains(reason), "{peer}: {e}");
    }
    let e = bad("settings:\n  peerSpecificBonds:\n    192.0.2.7: balance-rr\n    192.0.2.7/32: broadcast\n");
    assert!(e.contains("listed twice"), "{e}");
    // Modes that run the whole bond are no peer policies, and their bonds have none.
    let e = bad("settings:\n  peerSpecificBonds:\n    192.0.2.7: 802.3ad\n");
    assert!(e.contains("runs a whole bond"), "{e}");
    let e = bad("bonds:\n  b:\n    links: [e0]\n    mode: balance-alb\nsettings:\n  peerSpecificBonds:\n    192.0.2.7: balance-rr\n");
    assert!(e.contains("cannot have peer-specific policies"), "{e}");
    let e = bad("bonds:\n  b:\n    links: [e0]\n    mode: 802.3ad\n    arp_interval: 100\n    arp_ip_target: [192.0.2.1]\n");
    assert!(e.contains("bonds.b.arp_interval: the ARP monitor does not work with 802.3ad"), "{e}");
    let e = bad(
        "bonds:\n  b:\n    links: [e0]\n    policy: t\nsettings:\n  policies:\n    t:\n      basePolicy: balance-tlb\n      monitorStrategy: active\n",
    );
    assert!(e.contains("settings.policies.t.monitorStrategy: peer probes do not work with balance-tlb"), "{e}");
}

#[test]
fn class_specific_bonds_are_ordered_most_specific_first() {
    let c = ok("settings:
  policies:
    voice: { basePolicy: broadcast, dedup: true }
    bulk: { basePolicy: balance-aware }
  classSpecificBonds:
    - { protocol: tcp, policy: bulk }
    - { dscp: ef, policy: voice }
    - { protocol: udp, ports: 5004-5010, policy: voice }
    - { protocol: udp, ports: 5060, dscp: 46, policy: voice }
    - { dscp: af41, policy: bulk }
bonds:
  bond0:
    links: [eth0, eth1]
");
    let classes: Vec<(String, &str)> = c.classes.iter().map(|c| (c.to_string(), c.policy.as_str())).collect();
    assert_eq!(
        classes,
        [
            ("dscp 46 udp port 5060".to_string(), "voice"),
            ("udp ports 5004-5010".to_string(), "voice"),
            ("tcp".to_string(), "bulk"),
            ("dscp 46".to_string(), "voice"),
            ("dscp 34".to_string(), "bulk"),
        ],
        "most fields first, then the narrower port range, then the file's order"
    );
}

#[test]
fn bad_class_specific_bonds_are_refused_naming_the_entry_and_key() {
    for (entry, key, reason) in [
        ("{ dscp: 64, policy: broadcast }", "[0].dscp", "is not a DSCP code point"),
        ("{ dscp: af51, policy: broadcast }", "[0].dscp", "is not a DSCP code point"),
        ("{ protocol: quic, policy: broadcast }", "[0].protocol", "is not a protocol"),
        ("{ protocol: udp, ports: 5010-5004, policy: broadcast }", "[0].ports", "low end is above its high end"),
        ("{ ports: 0, policy: broadcast }", "[0].ports", "is not a port"),
        ("{ protocol: icmp, ports: 7, policy: broadcast }", "[0].ports", "has no ports"),
        ("{ policy: broadcast }", "[0]", "matches nothing"),
        ("{ dscp: ef, policy: nope }", "[0].policy", "unknown policy \"nope\""),
        ("{ dscp: ef, policy: 802.3ad }", "[0].policy", "runs a whole bond"),
    ] {
        let e = bad(&format!("settings:\n  classSpecificBonds:\n    - {entry}\n"));
        assert!(e.contains(&format!("settings.classSpecificBonds{key}: ")) && e.contains(reason), "{entry}: {e}");
    }
    let e = bad("settings:\n  classSpecificBonds:\n    - { dscp: ef, policy: broadcast }\n    - { dscp: 46, policy: balance-rr }\n");
    assert!(e.contains("settings.classSpecificBonds[1]: dscp 46 is listed twice"), "{e}");
    let e = bad("settings:\n  classSpecificBonds:\n    - { dscp: ef, policy: broadcast, vlan: 5 }\n");
    assert!(e.contains("unknown field `vlan`"), "{e}");
    let e =
        bad("bonds:\n  b:\n    links: [e0]\n    mode: 802.3ad\nsettings:\n  classSpecificBonds:\n    - { dscp: ef, policy: broadcast }\n");
    assert!(e.contains("cannot have class-specific policies"), "{e}");
}

#[test]
fn errors_found_after_parsing_name_their_line() {
    let text = "bonds:\n  bond0:\n    links: [eth0, eth1]\nsettings:\n  policies:\n    p:\n      basePolicy: active-backup\n      links:\n        eth0:\n          failoverInterval: 5\n";
    let e = super::parse(std::path::Path::new("x.yaml"), text).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("settings.policies.p.links.eth0.failoverInterval", Some(10)), "{e}");
    let json = "{\n  \"bonds\": { \"bond0\": { \"links\": [\"eth0\"], \"policy\": \"nope\" } }\n}\n";
    let e = super::parse(std::path::Path::new("x.json"), json).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("bonds.bond0.policy", Some(2)), "{e}");
    // Within the key's block only: bond0 has no links line, bond1's is not it.
    let text = "bonds:\n  bond0:\n    policy: x\n  bond1:\n    links: [e]\n";
    assert_eq!(super::key_line(text, "bonds.bond0.links"), None);
    assert_eq!(super::key_line(text, "bonds.bond1.links"), Some(5));
    // Not written as such: no line rather than a wrong one.
    assert_eq!(super::key_line("settings:\n  peerSpecificBonds:\n    192.0.2.7: x\n", "settings.peerSpecificBonds.192.0.2.7"), None);
}

/// The bond keys bonding.ko has gained and this project's own, read and checked: bad values
/// name the bond, the key (and the member) and the reason.
#[test]
fn new_bond_keys_are_read_and_bad_values_named() {
    let c = ok(
        "bonds:\n  b:\n    links: [e0, e1]\n    mode: 1\n    macaddress: 02:00:00:00:00:0a\n    prio: { e1: -50 }\n    active_slave: e1\n    peer_notify_delay: 100\n    resend_igmp: 3\n    use_carrier: 1\n",
    );
    let b = c.bond("b").unwrap();
    assert_eq!((b.mac, b.prio_of("e1"), b.prio_of("e0"), b.active_slave.as_deref()), (Some([2, 0, 0, 0, 0, 0x0a]), -50, 0, Some("e1")));
    assert_eq!((b.monitor.peer_notify_delay, b.monitor.resend_igmp), (100, 3));
    let hw = ok("bonds:\n  b:\n    links: [e0]\n    hwaddress: ether 02:00:00:00:00:0b\n");
    assert_eq!(hw.bond("b").unwrap().mac, Some([2, 0, 0, 0, 0, 0x0b]), "ifupdown's spelling");
    let lacp = ok(
        "bonds:\n  b:\n    links: [e0, e1]\n    mode: 802.3ad\n    lacp_strict: on\n    ad_select: actor_port_prio\n    actor_port_prio: { e0: 1000 }\n    broadcast_neighbor: 1\n",
    );
    let l = &lacp.bond("b").unwrap().lacp;
    assert!(l.strict && l.broadcast_neighbor && l.select == crate::lacp::AdSelect::ActorPortPrio);
    assert_eq!(l.port_priority.get("e0"), Some(&1000));
    let keyed = ok("bonds:\n  b:\n    links: [e0]\n    policy: active-backup\n    probeKey: sixteen characters\n");
    assert!(keyed.bond("b").unwrap().probe_key.is_some());
    for (yaml, want) in [
        ("macaddress: 01:00:5e:00:00:01", "bonds.b.macaddress: 01:00:5e:00:00:01 is a multicast address"),
        ("macaddress: 00:00:00:00:00:00", "is the null address"),
        ("macaddress: nope", "\"nope\" is not a MAC address"),
        ("prio: { e9: 1 }", "bonds.b.prio.e9: \"e9\" is not a link of the bond"),
        ("prio: { e0: 3000000000 }", "bonds.b.prio.e0: 3000000000 is outside"),
        ("actor_port_prio: { e0: 70000 }", "bonds.b.actor_port_prio.e0: 70000 is outside 0..=65535"),
        ("active_slave: e9", "bonds.b.active_slave: \"e9\" is not a link of the bond"),
        ("use_carrier: 0", "bonds.b.use_carrier: 0: only 1"),
        ("mode: 4\n    coupled_control: off", "bonds.b.coupled_control: off (independent control) is not supported"),
        ("peer_notify_delay: 300001", "bonds.b.peer_notify_delay: 300001 ms is outside 0..=300000"),
        ("resend_igmp: 256", "bonds.b.resend_igmp: 256 is outside 0..=255"),
        ("policy: active-backup\n    probeKey: short", "bonds.b.probeKey: 5 characters; give at least 16"),
    ] {
        let e = bad(&format!("bonds:\n  b:\n    links: [e0, e1]\n    {yaml}\n"));
        assert!(e.contains(want), "{yaml}: {e}");
    }
}
