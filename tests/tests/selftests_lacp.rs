//! The kernel's bonding selftest `bond_lacp_strict.sh`
//! (`tools/testing/selftests/drivers/net/bonding/`), ported as `selftests.rs` ports the others:
//! two 802.3ad bonds face to face, `lacp_strict` off and on, partners that stop sending
//! LACPDUs. In a file of its own: its helpers (ports' LACP state, waiting on a status) serve it
//! alone.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use bond_tests::{Daemon, Lab, LabOptions, Netns};
use serde_json::Value;

fn port<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["lacp"]["ports"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).unwrap_or(&Value::Null)
}

/// Collecting and distributing with a partner that speaks LACP (the script's port state & 48).
fn negotiated(s: &Value, name: &str) -> bool {
    port(s, name)["rx_state"] == "current"
        && port(s, name)["mux_state"] == "collecting_distributing"
        && Daemon::member(s, name)["usable"] == true
}

fn usable_members(s: &Value) -> Vec<String> {
    s["members"].as_array().unwrap().iter().filter(|m| m["usable"] == true).map(|m| m["name"].as_str().unwrap().to_string()).collect()
}

fn operstate(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-j", "link", "show", "dev", dev]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["operstate"].as_str().unwrap_or_default().to_string()
}

/// Polls `d`'s status until `pred` holds; returns it and the time it took.
#[track_caller]
fn wait_status(d: &Daemon, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let s = d.status().expect("status");
        if pred(&s) {
            return (s, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; status:\n{s:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many frames leave A's members (counted at the wire's ends facing A) while A sends 200
/// datagrams to a neighbour with a permanent entry (no ARP needed with LACP down).
fn a_sends(lab: &Lab) -> u64 {
    let before: u64 = lab.wire_a_counters().unwrap().iter().map(|c| c.rx_packets).sum();
    let tx = lab.a.ns.enter(|| UdpSocket::bind((lab.a.addr, 0))).unwrap().unwrap();
    for seq in 0..200 {
        let _ = tx.send_to(&bond_tests::net::payload(seq, 0, 100), ("192.0.2.99", 9));
    }
    std::thread::sleep(Duration::from_millis(200));
    let after: u64 = lab.wire_a_counters().unwrap().iter().map(|c| c.rx_packets).sum();
    after - before
}

/// Ports `bond_lacp_strict.sh`: two 802.3ad bonds (lacp_rate fast, min_links 1) whose links
/// stay up while the wire stops passing the partner's LACPDUs. lacp_strict off (the default):
/// with no LACP on any link one member still carries traffic; `lacp_strict on` (set live):
/// nothing does, the bond is not running; off again: it carries; LACPDUs back: both members
/// collecting and distributing; strict on then keeps a negotiated aggregate, and with LACP
/// lost on every link carries nothing. (The script stops LACP with a bridge that forwards
/// or blocks the slow-protocol frames; here the wire namespace drops B's LACPDUs with
/// nftables, so A, the bond under test, hears no partner while the links' carrier stays up.)
#[test]
fn lacp_strict_off_falls_back_to_one_member_and_on_carries_nothing_without_lacp() {
    let lab = Lab::start(LabOptions::default().policy("").links(2).bond_lines("mode: 802.3ad\nlacp_rate: fast\nmin_links: 1"))
        .unwrap_or_else(|e| panic!("starting the lab: {e:#}"));
    let (a, bond) = (lab.a.daemon(), lab.a.bond.clone());
    lab.a.ns.ip(&["neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", &bond, "nud", "permanent"]).unwrap();
    let both = |s: &Value| negotiated(s, "eth0") && negotiated(s, "eth1");
    let (_, took) = wait_status(a, Duration::from_secs(10), "1: both ports collecting and distributing", both);
    wait_status(lab.b.daemon(), Duration::from_secs(5), "1: B's ports collecting and distributing", both);
    let sent = a_sends(&lab);
    println!("lacp_strict 1: negotiated after {took:?}; 200 datagrams -> {sent} frames on the wire; bond {}", operstate(&lab.a.ns, &bond));
    assert!(sent >= 200);

    // LACPDUs from the partner stop on eth0, then on eth1 (the links stay up).
    lab.drop_lacp_from_b(0).unwrap();
    let (_, took) = wait_status(a, Duration::from_secs(6), "6: eth0 out, eth1 in", |s| !negotiated(s, "eth0") && negotiated(s, "eth1"));
    println!("lacp_strict 6: eth0 out {took:?} after its partner's LACPDUs stopped");
    lab.drop_lacp_from_b(1).unwrap();
    let (s, took) = wait_status(a, Duration::from_secs(8), "7: no port hears its partner, one member carries traffic anyway", |s| {
        ["eth0", "eth1"].iter().all(|m| port(s, m)["rx_state"] != "current") && !usable_members(s).is_empty()
    });
    let sent = a_sends(&lab);
    let state = operstate(&lab.a.ns, &bond);
    println!(
        "lacp_strict 7 (off): no LACP partner on any port after {took:?}: usable {:?}, rx states {}/{}; 200 datagrams -> {sent} frames on the wire; bond {state}",
        usable_members(&s),
        port(&s, "eth0")["rx_state"],
        port(&s, "eth1")["rx_state"]
    );
    assert!(sent >= 200, "lacp_strict off: the bond still carries traffic without a LACP partner ({sent} frames)");
    assert_eq!(state, "UP", "lacp_strict off: the bond is running");

    // Strict on, live: nothing carries traffic, at once.
    a.ctl(&["set", &bond, "lacp_strict=on"]).unwrap();
    let (s, took) = wait_status(a, Duration::from_secs(2), "8: lacp_strict on: no member usable", |s| usable_members(s).is_empty());
    let sent = a_sends(&lab);
    let state = operstate(&lab.a.ns, &bond);
    let dropped =
        a.status().unwrap()["counters"]["tx_no_member"].as_u64().unwrap_or(0) - s["counters"]["tx_no_member"].as_u64().unwrap_or(0);
    println!(
        "lacp_strict 8 (on): no member usable {took:?} after the set; 200 datagrams -> {sent} frames on the wire, {dropped} dropped for want of a member; bond {state}"
    );
    assert!(sent < 20, "lacp_strict on: nothing carried ({sent} frames left A)");
    assert_ne!(state, "UP", "lacp_strict on: the bond is not running");

    a.ctl(&["set", &bond, "lacp_strict=off"]).unwrap();
    let (_, took) = wait_status(a, Duration::from_secs(2), "9: lacp_strict off: a member usable again", |s| !usable_members(s).is_empty());
    let sent = a_sends(&lab);
    let state = operstate(&lab.a.ns, &bond);
    println!("lacp_strict 9 (off again): a member usable {took:?} after the set; 200 datagrams -> {sent} frames on the wire; bond {state}");
    assert!(sent >= 200, "lacp_strict off again: the bond carries traffic ({sent} frames)");
    assert_eq!(state, "UP");

    // LACPDUs back, one link then the other.
    lab.repair(0).unwrap();
    let (_, took) = wait_status(a, Duration::from_secs(10), "10: eth0 negotiated again", |s| negotiated(s, "eth0"));
    println!("lacp_strict 10: eth0 collecting and distributing {took:?} after its partner's LACPDUs returned");
    lab.repair(1).unwrap();
    let (_, took) = wait_status(a, Duration::from_secs(10), "11: both negotiated again", both);
    println!("lacp_strict 11: both collecting and distributing {took:?} after eth1's LACPDUs returned");

    // Strict on with a negotiated aggregate: nothing changes.
    a.ctl(&["set", &bond, "lacp_strict=on"]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let s = a.status().unwrap();
    let sent = a_sends(&lab);
    println!("lacp_strict 12 (on, negotiated): usable {:?}; 200 datagrams -> {sent} frames on the wire", usable_members(&s));
    assert!(both(&s), "lacp_strict on keeps a negotiated aggregate: {s:#}");
    assert!(sent >= 200);

    // Strict on and LACP lost on every link: nothing carries traffic.
    lab.drop_lacp_from_b(0).unwrap();
    lab.drop_lacp_from_b(1).unwrap();
    let (s, took) =
        wait_status(a, Duration::from_secs(8), "18: lacp_strict on, no LACP: no member usable", |s| usable_members(s).is_empty());
    let sent = a_sends(&lab);
    let state = operstate(&lab.a.ns, &bond);
    println!(
        "lacp_strict 18 (on): LACP lost on both links -> no member usable after {took:?} (rx states {}/{}); 200 datagrams -> {sent} frames; bond {state}",
        port(&s, "eth0")["rx_state"],
        port(&s, "eth1")["rx_state"]
    );
    assert!(sent < 20, "lacp_strict on without LACP: nothing carried ({sent} frames)");
    assert_ne!(state, "UP");
    lab.repair(0).unwrap();
    lab.repair(1).unwrap();
    let (_, took) = wait_status(a, Duration::from_secs(10), "19: both negotiated again under lacp_strict on", both);
    println!("lacp_strict 19 (on): both collecting and distributing {took:?} after LACPDUs returned");
}
