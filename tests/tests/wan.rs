//! WAN bonding between two sites, the case ZeroTier's users bond for: each site has two uplinks,
//! each path goes through the link emulator with its own delay and loss, a VXLAN tunnel runs
//! over each path, and the bond's members are the tunnels.
//!
//! ```text
//!   site A                         wire (emulators)               site B
//!   bond0 = vx0 + vx1               a0 <-> b0  (path 0)            bond0 = vx0 + vx1
//!   vx<i> over up<i> 203.0.113.x    a1 <-> b1  (path 1)            vx<i> over up<i>
//! ```

use std::time::{Duration, Instant};

use bond_tests::{
    Daemon, Netns,
    emu::Impairment,
    wait_until,
    wan::{Tunnel, Wan},
};
use serde_json::Value;

fn mtu(ns: &Netns, dev: &str) -> u64 {
    let v: Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
    v[0]["mtu"].as_u64().unwrap()
}

/// Status of site A's bond once every member has a full window of probes since `since`.
fn measured(wan: &Wan, since: Instant) -> Value {
    let mut s = Value::Null;
    wait_until(Duration::from_secs(25), "a window of probes on every tunnel", || {
        s = wan.a.status().unwrap();
        since.elapsed() > Duration::from_millis(7000)
            && s["members"].as_array().unwrap().iter().all(|m| m["quality"]["samples"].as_u64().unwrap_or(0) >= 48)
    });
    s
}

/// Silences site A's active tunnel's path: both sites move to another tunnel (each finds the
/// silence on its own) and traffic crosses there.
fn fails_over_when_the_active_path_goes_silent(wan: &Wan) {
    let active = wan.a.status().unwrap()["active"].as_str().unwrap().to_string();
    let i: usize = active.trim_start_matches("vx").parse().unwrap();
    wan.emulators[i].set_both(Impairment { loss: 1.0, ..Default::default() });
    for (site, d) in [("A", &wan.a), ("B", &wan.b)] {
        wait_until(Duration::from_secs(5), &format!("site {site} on the other tunnel"), || {
            d.status().unwrap()["active"] != active.as_str()
        });
    }
    assert!(wan.ping(56), "traffic crosses on the other path");
}

fn lat(s: &Value, m: &str) -> f64 {
    Daemon::member(s, m)["quality"]["lat"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn active_backup_over_vxlan_tunnels_fits_their_mtu_measures_each_path_and_fails_over() {
    let started = Instant::now();
    let paths = [Impairment::delay_ms(10), Impairment { delay: Duration::from_millis(2), loss: 0.01, ..Default::default() }];
    let wan = Wan::start(&paths, "{ basePolicy: active-backup, failoverInterval: 300 }").unwrap_or_else(|e| panic!("{e:#}"));
    // The bond's MTU is its smallest member's: VXLAN's 1450 over 1500-byte paths.
    assert_eq!(mtu(&wan.site_a, "vx0"), 1450);
    assert_eq!(mtu(&wan.site_a, "bond0"), 1450, "the bond takes the tunnels' MTU");
    assert!(wan.ping(1422), "1,450-byte packets cross unfragmented");
    assert!(!wan.ping(1423), "one byte more does not fit");
    // Probes measure each path through its tunnel: 2 x 10 ms and 2 x 2 ms.
    let s = measured(&wan, started);
    println!("WAN: vx0 {:.1} ms, vx1 {:.1} ms round trips", lat(&s, "vx0"), lat(&s, "vx1"));
    // Within a few ms: the other WAN test's emulators share the two cores.
    assert!((20.0..27.0).contains(&lat(&s, "vx0")) && (4.0..9.0).contains(&lat(&s, "vx1")), "{:#}", s["members"]);
    assert!(lat(&s, "vx0") > lat(&s, "vx1") + 10.0, "the slower path measures slower");
    // The active tunnel's path goes silent: the bond fails over to the other.
    fails_over_when_the_active_path_goes_silent(&wan);
}

#[test]
fn balance_aware_over_vxlan_tunnels_puts_more_traffic_on_the_better_path() {
    let started = Instant::now();
    let policy =
        "{ basePolicy: balance-aware, failoverInterval: 300, quality: { lat: 1.0, ltm: 0.0, pdv: 0.0, plr: 0.0, per: 0.0, avl: 0.0 } }";
    let wan = Wan::start(&[Impairment::delay_ms(40), Impairment::delay_ms(5)], policy).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(wan.ping(56));
    let s = measured(&wan, started);
    std::thread::sleep(Duration::from_millis(700));
    let s2 = wan.a.status().unwrap();
    let alloc = |m: &str| Daemon::member(&s2, m)["allocation"].as_f64().unwrap();
    let (l0, l1) = (lat(&s, "vx0"), lat(&s, "vx1"));
    let (s0, s1) = ((-4.0 * l0 / 500.0).exp(), (-4.0 * l1 / 500.0).exp());
    println!(
        "WAN balance-aware: round trips {l0:.1} / {l1:.1} ms, allocation {:.3} / {:.3} (formula {:.3})",
        alloc("vx0"),
        alloc("vx1"),
        s1 / (s0 + s1)
    );
    assert!((alloc("vx1") - s1 / (s0 + s1)).abs() < 0.03, "the better path gets its share");
    assert!(alloc("vx1") > alloc("vx0"));
}

#[test]
fn active_backup_over_gretap_tunnels_where_the_kernel_has_them() {
    if !Tunnel::Gretap.available() {
        bond_tests::skip("active_backup_over_gretap_tunnels_where_the_kernel_has_them", "no GRETAP in this kernel");
        return;
    }
    let paths = [Impairment::delay_ms(5), Impairment::delay_ms(1)];
    let wan =
        Wan::start_with(&paths, "{ basePolicy: active-backup, failoverInterval: 300 }", Tunnel::Gretap).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(mtu(&wan.site_a, "bond0"), mtu(&wan.site_a, "vx0"), "the bond takes the tunnels' MTU");
    assert!(wan.ping(56));
    fails_over_when_the_active_path_goes_silent(&wan);
}
