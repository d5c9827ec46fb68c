//! The seed examples as fixtures (`tests/fixtures/`): ZeroTier's guide and bonding.ko option
//! lines load unchanged and mean what their documents say.

use std::path::Path;

use bond_common::config::{Balance, Mode, XmitHash};

use super::{Config, bond_yaml, model::MonitorStrategy, parse};
use crate::health::reselect::SelectMethod;

macro_rules! zerotier {
    ($name:literal) => {
        load($name, include_str!(concat!("../../../tests/fixtures/zerotier/", $name)))
    };
}

fn load(name: &str, text: &str) -> Config {
    parse(Path::new(name), text).unwrap_or_else(|e| panic!("{name} does not load: {e}"))
}

#[test]
fn default_policy_only() {
    let c = zerotier!("01-default-policy.json");
    assert!(c.bonds.is_empty(), "no links named: no bond");
    assert!(c.policy("active-backup").is_some());
}

#[test]
fn custom_policy_with_path_monitor_strategy() {
    let c = zerotier!("02-custom-policy.json");
    let p = c.policy("aggressive-active-backup").unwrap();
    assert_eq!((p.mode, p.failover_interval, p.monitor), (Mode::ActiveBackup, 250, MonitorStrategy::Dynamic));
}

#[test]
fn two_primaries_fail_over_to_a_spare() {
    let c = zerotier!("03-specifying-links.json");
    assert!(c.warnings.iter().any(|w| w.contains("taken from the policy's name: active-backup")), "{:?}", c.warnings);
    let b = c.bond("bond0").expect("a settings-only file makes bond0");
    assert_eq!(b.links, ["eth0", "eth1", "eth2"], "in the order written");
    assert_eq!(b.policy, "aggressive-active-backup");
    let p = c.policy(&b.policy).unwrap();
    assert!(p.links["eth0"].primary && p.links["eth1"].primary && !p.links["eth2"].primary);
    assert_eq!(p.links["eth0"].failover_to.as_deref(), Some("eth2"));
    assert_eq!(p.select_method, SelectMethod::Always, "explicit links: always");
    assert!(p.ipv_pref("eth0").carries_v4() && p.ipv_pref("eth0").carries_v6());
    assert!(!p.ipv_pref("eth2").carries_v4() && p.ipv_pref("eth2").carries_v6());
}

#[test]
fn peer_specific_bonds_by_node_id_warn() {
    let c = zerotier!("04-peer-specific-bonds.json");
    assert_eq!(c.warnings.iter().filter(|w| w.contains("ZeroTier node id")).count(), 3, "{:?}", c.warnings);
    let p = c.policy("my-custom-balance-aware").unwrap();
    assert_eq!((p.mode, p.failover_interval, p.monitor), (Mode::BalanceAware, 2000, MonitorStrategy::Dynamic));
}

#[test]
fn standard_policy_overridden_under_settings() {
    let c = zerotier!("05-active-backup-override.json");
    let p = c.policy("active-backup").unwrap();
    assert_eq!(p.select_method, SelectMethod::Always);
    assert!(p.links["eth0"].primary);
    assert_eq!(c.bond("bond0").unwrap().links, ["eth0", "eth1", "eth2", "eth3"]);
}

#[test]
fn balance_policies() {
    for (c, want) in [
        (zerotier!("06-balance-aware-flow-dynamic.json"), Balance::FlowDynamic),
        (zerotier!("06-balance-aware-flow-static.json"), Balance::FlowStatic),
        (zerotier!("06-balance-aware-packet.json"), Balance::Packet),
    ] {
        assert_eq!(c.policy("balance-aware").unwrap().balance, want);
    }
}

#[test]
fn quality_weights_with_comments_and_a_trailing_comma() {
    let c = zerotier!("07-quality-weights.json");
    let w = c.policy("balance-aware").unwrap().weights;
    assert_eq!((w.lat, w.ltm, w.pdv, w.plr, w.per, w.avl), (0.3, 0.2, 0.3, 0.1, 0.1, 0.0));
}

#[test]
fn speeds_and_allocations() {
    let c = zerotier!("08-speed.json");
    assert_eq!(c.policy("balance-aware").unwrap().links["eth1"].speed, Some(1000));
    let c = zerotier!("09-alloc.json");
    let p = c.policy("balance-aware").unwrap();
    assert_eq!(p.links["eth0"].alloc, Some(0.5));
    assert_eq!(c.bond("bond0").unwrap().links.len(), 3);
}

fn kernel_line(line: &str) -> Result<Config, super::ConfigError> {
    let mut words = line.split_whitespace();
    let links: Vec<String> = words.next().unwrap().split(',').map(String::from).collect();
    let options: Vec<String> = words.map(String::from).collect();
    parse(Path::new("(command line)"), &bond_yaml("bond0", &links, &[], &options).unwrap())
}

#[test]
fn bonding_option_lines_load() {
    let text = include_str!("../../../tests/fixtures/kernel/options.txt");
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        kernel_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

#[test]
fn the_guides_example_line_means_what_it_says() {
    for line in [
        "eth0,eth1 mode=1 miimon=100 updelay=200 downdelay=200 primary=eth0",
        "eth0,eth1 bond-mode=1 bond-miimon=100 bond-updelay=200 bond-downdelay=200 bond-primary=eth0",
    ] {
        let c = kernel_line(line).unwrap();
        let b = c.bond("bond0").unwrap();
        assert_eq!(b.monitor.miimon, 100);
        assert_eq!(b.policy, "bond0", "the bond's own policy");
        let p = c.policy("bond0").unwrap();
        assert_eq!((p.mode, p.up_delay, p.down_delay), (Mode::ActiveBackup, 200, 200));
        assert!(p.links["eth0"].primary && !p.links["eth1"].primary);
        assert!(p.uses_link("eth1"), "primary= does not restrict the members");
        assert_eq!(p.select_method, SelectMethod::Always);
        assert_eq!((p.monitor, p.punishment), (MonitorStrategy::Passive, None), "as bonding.ko: no probes, no punishment");
    }
    let c = kernel_line("eth0,eth1 mode=balance-xor xmit_hash_policy=layer3+4").unwrap();
    assert_eq!(c.policy("bond0").unwrap().xmit_hash, XmitHash::Layer34);
    let c = kernel_line("eth0,eth1 mode=2").unwrap();
    assert_eq!(c.policy("bond0").unwrap().xmit_hash, XmitHash::Layer2, "the kernel's default hash");
    let c = kernel_line("eth0,eth1 lacp_rate=fast").unwrap();
    assert!(c.warnings[0].contains("802.3ad"), "{:?}", c.warnings);
    let b = c.bond("bond0").unwrap();
    assert_eq!(b.policy, "bond0", "bonding's options: the bond's own policy");
    let p = c.policy("bond0").unwrap();
    assert_eq!((p.mode, p.monitor), (Mode::ActiveBackup, MonitorStrategy::Passive), "no mode given: the default policy's, quiet");
    let c = kernel_line("eth0,eth1 mode=1 monitorStrategy=passive").unwrap();
    assert_eq!(c.policy("bond0").unwrap().monitor, MonitorStrategy::Passive, "monitorStrategy on the command line");
    let c = kernel_line("eth0,eth1 mode=1 failoverInterval=600").unwrap();
    let p = c.policy("bond0").unwrap();
    assert_eq!((p.monitor, p.failover_interval), (MonitorStrategy::Active, 600), "asked for probes");
    assert!(p.punishment.is_some(), "and with them punishment of flapping links");
    let c = kernel_line("eth0,eth1 mode=1 monitorStrategy=dynamic failoverInterval=600").unwrap();
    assert_eq!(c.policy("bond0").unwrap().monitor, MonitorStrategy::Dynamic);
    let c = kernel_line("eth0,eth1 mode=4 lacp_rate=fast ad_select=count ad_actor_sys_prio=100 ad_user_port_key=5 min_links=2").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let b = c.bond("bond0").unwrap();
    assert_eq!(c.policy("bond0").unwrap().mode, Mode::Lacp);
    assert_eq!(
        (b.lacp.fast, b.lacp.active, b.lacp.select, b.lacp.system_priority, b.lacp.user_port_key, b.lacp.min_links),
        (true, true, crate::lacp::AdSelect::Count, 100, 5, 2)
    );
    let c = kernel_line("eth0,eth1 mode=balance-alb tlb_dynamic_lb=0 lp_interval=3").unwrap();
    let p = c.policy("bond0").unwrap();
    assert_eq!((p.mode, p.uses_buckets()), (Mode::BalanceAlb, false), "tlb_dynamic_lb=0: by the hash");
    assert_eq!(c.bond("bond0").unwrap().tlb.lp_interval, 3);
    assert!(kernel_line("eth0,eth1 mode=5").unwrap().policy("bond0").unwrap().uses_buckets(), "by load by default");
    let c = kernel_line("eth0,eth1 mode=1 lp_interval=3").unwrap();
    assert!(c.warnings[0].contains("lp_interval: applies to balance-tlb"), "{:?}", c.warnings);
}

#[test]
fn bad_kernel_options_are_rejected_with_reasons() {
    for (line, key, reason) in [
        ("eth0,eth1 mode=9", "bonds.bond0.mode", "unknown mode \"9\""),
        ("eth0,eth1 mode=4 ad_user_port_key=1024", "bonds.bond0.ad_user_port_key", "outside 0..=1023"),
        ("eth0,eth1 mode=4 ad_actor_sys_prio=0", "bonds.bond0.ad_actor_sys_prio", "outside 1..=65535"),
        ("eth0,eth1 mode=4 lacp_active=maybe", "bonds.bond0.lacp_active", "not off, on"),
        ("eth0,eth1 mode=5 lp_interval=0", "bonds.bond0.lp_interval", "0 s is outside 1..=2147483647"),
        ("eth0,eth1 mode=6 tlb_dynamic_lb=2", "bonds.bond0.tlb_dynamic_lb", "not 0 or 1"),
        ("eth0,eth1 primary=eth7", "bonds.bond0.primary", "not a link of the bond"),
        ("eth0,eth1 primary_reselect=sometimes", "bonds.bond0.primary_reselect", "unknown value"),
        ("eth0,eth1 fail_over_mac=00:11:22:33:44:55", "bonds.bond0.fail_over_mac", "not none, active, follow"),
        ("eth0,eth1 miimon=fast", "bonds.bond0.miimon", "invalid type"),
        ("eth0,eth1 mimon=100", "bonds.bond0", "did you mean `miimon`?"),
    ] {
        let e = kernel_line(line).expect_err(line);
        assert_eq!(e.key, key, "{line}: {e}");
        assert!(e.reason.contains(reason), "{line}: {e}");
    }
}
