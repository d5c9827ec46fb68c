//! 802.3ad: two of our bonds negotiate LACP and carry traffic on the aggregate; a member cut on
//! either side leaves and returns; a silent partner times out after 3 s (fast) but not within
//! seconds at the slow rate; mismatched keys make separate aggregators. The test against Open
//! vSwitch is in `lacp_ovs.rs`.

use std::time::{Duration, Instant};

use bond_tests::{Daemon, Lab, LabOptions, lab::TempDir, net::UdpFlows};
use serde_json::Value;

const LACP_FAST: &str = "mode: 802.3ad\nlacp_rate: fast\nxmit_hash_policy: layer3+4";

fn lab(links: usize, lines: &str) -> Lab {
    Lab::start(LabOptions::default().policy("").links(links).bond_lines(lines)).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Polls `d`'s status until `pred` holds; returns it and how long that took.
fn wait_for(d: &Daemon, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let s = d.status().expect("status");
        if pred(&s) {
            return (s, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; status:\n{s:#}\nlog:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["lacp"]["ports"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).unwrap_or(&Value::Null)
}

fn distributing(s: &Value, name: &str) -> bool {
    port(s, name)["mux_state"] == "collecting_distributing" && Daemon::member(s, name)["usable"] == true
}

fn all_distributing(s: &Value, links: usize) -> bool {
    (0..links).all(|i| distributing(s, &format!("eth{i}")))
}

/// Every datagram of 16 flows arrives; returns how many members on A carried them.
fn traffic_spreads(lab: &Lab) -> usize {
    let before = lab.a.daemon().status().unwrap();
    let flows = UdpFlows::new(lab, 16, 43000).unwrap();
    let sent = flows.send(20, 200).unwrap();
    let got = flows.receive(Duration::from_millis(300));
    assert_eq!(got.len() as u64, sent, "every datagram arrived");
    let after = lab.a.daemon().status().unwrap();
    let tx = |s: &Value, i: usize| Daemon::member(s, &format!("eth{i}"))["tx_packets"].as_u64().unwrap_or(0);
    (0..lab.links).filter(|&i| tx(&after, i) - tx(&before, i) >= 20).count()
}

#[test]
fn two_bonds_negotiate_carry_traffic_and_lose_and_regain_a_member() {
    let lab = lab(3, LACP_FAST);
    let (a, took) = wait_for(lab.a.daemon(), Duration::from_secs(10), "A's ports distributing", |s| all_distributing(s, 3));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B's ports distributing", |s| all_distributing(s, 3));
    println!("LACP: all ports collecting and distributing after {took:?}");
    // Each side sees the other as its partner, on one aggregator.
    let b = lab.b.daemon().status().unwrap();
    assert_eq!(port(&a, "eth0")["partner"]["system"], b["lacp"]["system"]);
    assert_eq!(a["lacp"]["aggregators"].as_array().unwrap().iter().filter(|g| g["ports"].as_array().unwrap().len() == 3).count(), 1);
    let text = lab.a.daemon().ctl(&["status", &lab.a.bond]).unwrap();
    assert!(text.contains("Aggregator ID") && text.contains("Partner Mac Address"), "status shows actor and partner:\n{text}");
    assert!(traffic_spreads(&lab) >= 2, "the hash spreads 16 flows over the aggregate");

    // Cut on A's side of the wire (B sees its carrier go too): both sides drop the member.
    lab.cut(1).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(2), "eth1 out on A", |s| !distributing(s, "eth1") && all_but(s, 1));
    wait_for(lab.b.daemon(), Duration::from_secs(2), "eth1 out on B", |s| !distributing(s, "eth1") && all_but(s, 1));
    assert!(traffic_spreads(&lab) >= 1);
    lab.restore(1).unwrap();
    let (_, back) = wait_for(lab.a.daemon(), Duration::from_secs(10), "eth1 back on A", |s| all_distributing(s, 3));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "eth1 back on B", |s| all_distributing(s, 3));
    println!("LACP: a restored member distributes again after {back:?}");
    assert!(traffic_spreads(&lab) >= 2);
}

fn all_but(s: &Value, gone: usize) -> bool {
    (0..3).filter(|&i| i != gone).all(|i| distributing(s, &format!("eth{i}")))
}

#[test]
fn a_silent_partner_times_out_after_3_s_at_the_fast_rate() {
    let lab = lab(2, LACP_FAST);
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A distributing", |s| all_distributing(s, 2));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B distributing", |s| all_distributing(s, 2));
    lab.drop_lacp_from_b(0).unwrap();
    let start = Instant::now();
    // The partner's last LACPDU was at most 1 s old: at least 2 s of its 3 s are left.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(distributing(&lab.a.daemon().status().unwrap(), "eth0"), "still in 1 s after the partner fell silent");
    let (s, _) = wait_for(lab.a.daemon(), Duration::from_secs(3), "eth0 timed out", |s| !distributing(s, "eth0"));
    let took = start.elapsed();
    println!("LACP fast: partner silent -> member out after {took:?}");
    assert!(took <= Duration::from_millis(3600), "out within the 3 s timeout (and a tick): {took:?}");
    assert!(distributing(&s, "eth1"), "the other member stays");
    lab.repair(0).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(10), "eth0 back", |s| all_distributing(s, 2));
}

#[test]
fn a_silent_partner_stays_in_for_seconds_at_the_slow_rate() {
    let lab = lab(2, "mode: 802.3ad\nlacp_rate: slow");
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A distributing", |s| all_distributing(s, 2));
    lab.drop_lacp_from_b(0).unwrap();
    // A timeout that does not happen cannot be waited for: watch for 5 s, past the fast 3 s.
    std::thread::sleep(Duration::from_secs(5));
    let s = lab.a.daemon().status().unwrap();
    assert!(distributing(&s, "eth0"), "slow rate: the partner has 90 s, not 3 s");
    assert_eq!(port(&s, "eth0")["rx_state"], "current");
}

#[test]
fn mismatched_keys_form_separate_aggregators() {
    // B runs two bonds with one system id but different keys, two links each: A sees one
    // partner system with two keys, so two aggregators, of which one carries traffic.
    let lab = Lab::start(LabOptions::default().links(4).policy("").bond_lines(LACP_FAST).no_bond_b()).unwrap();
    let dir = TempDir::new().unwrap();
    let mut daemons = Vec::new();
    for (k, links) in [(1, "eth0, eth1"), (2, "eth2, eth3")] {
        let bond = bond_tests::unique_name("bk");
        let addr = format!("192.0.2.{}/24", 1 + k);
        let cfg = dir.path().join(format!("{bond}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "bonds:\n  {bond}:\n    links: [{links}]\n    addresses: [{addr}]\n    mode: 802.3ad\n    lacp_rate: fast\n    ad_actor_system: 02:00:00:00:be:ef\n    ad_user_port_key: {k}\n"
            ),
        )
        .unwrap();
        daemons.push(Daemon::start(&lab.b.ns, &cfg, &bond, dir.path()).unwrap());
    }
    // B's two bonds start one after the other: A may distribute on the first before it has
    // heard the second, so wait for both keys, each on both its links.
    let of_b = |s: &Value| -> Vec<Value> {
        let aggs = s["lacp"]["aggregators"].as_array().cloned().unwrap_or_default();
        aggs.into_iter().filter(|g| g["partner_system"] == "02:00:00:00:be:ef").collect()
    };
    let (s, _) = wait_for(lab.a.daemon(), Duration::from_secs(12), "one aggregator distributing, both of B's keys heard", |s| {
        let both_keys = of_b(s);
        let whole = both_keys.iter().all(|g| g["ports"].as_array().map_or(0, Vec::len) == 2);
        s["lacp"]["distributing"].as_u64().unwrap_or(0).count_ones() == 2 && both_keys.len() == 2 && whole
    });
    let aggs = of_b(&s);
    assert_eq!(aggs.len(), 2, "two aggregators for one partner with two keys:\n{s:#}");
    assert_ne!(aggs[0]["partner_key"], aggs[1]["partner_key"]);
    assert_eq!(aggs.iter().filter(|g| g["selected"] == true).count(), 1, "one is selected");
    for g in &aggs {
        let slots: Vec<u64> = g["ports"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
        assert_eq!(slots.len(), 2);
        let dist = s["lacp"]["distributing"].as_u64().unwrap();
        let carrying = slots.iter().all(|sl| dist & (1 << sl) != 0);
        assert_eq!(carrying, g["selected"] == true, "only the selected aggregator's ports distribute:\n{s:#}");
    }
    // The standby aggregator's members are held out by LACP, not failed: no link failure is
    // counted, and the status says why they carry nothing.
    let standby = aggs.iter().find(|g| g["selected"] != true).unwrap();
    for slot in standby["ports"].as_array().unwrap().iter().filter_map(Value::as_u64) {
        let m = s["members"].as_array().unwrap().iter().find(|m| m["slot"] == slot).unwrap();
        assert_eq!((m["usable"].as_bool(), m["link_failures"].as_u64()), (Some(false), Some(0)), "{m:#}");
        assert!(m["not_usable"].as_str().unwrap_or_default().contains("LACP"), "{m:#}");
    }
    // Traffic reaches the bond behind the selected aggregator (B1 on eth0-1, B2 on eth2-3).
    let selected = aggs.iter().find(|g| g["selected"] == true).unwrap();
    let on_first = selected["ports"].as_array().unwrap().iter().any(|p| p.as_u64() == Some(0));
    let target = if on_first { "192.0.2.2" } else { "192.0.2.3" };
    lab.a.ns.exec("ping", &["-q", "-c", "2", "-i", "0.05", "-W", "2", target]).unwrap();
    drop(daemons);
}

#[test]
fn a_removed_member_leaves_the_partners_aggregate_at_once() {
    // The slow rate: without a last LACPDU the partner would keep the link for 90 s.
    let lab = lab(3, "mode: 802.3ad\nlacp_rate: slow\nxmit_hash_policy: layer3+4");
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A's ports distributing", |s| all_distributing(s, 3));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B's ports distributing", |s| all_distributing(s, 3));
    lab.a.daemon().ctl(&["remove-link", &lab.a.bond, "eth2"]).unwrap();
    let (_, took) = wait_for(lab.b.daemon(), Duration::from_secs(2), "B takes eth2 out", |s| !distributing(s, "eth2"));
    println!("the partner stopped distributing on the removed link after {took:?}");
    assert!(distributing(&lab.b.daemon().status().unwrap(), "eth0"), "the rest of the aggregate stays");
}

#[test]
fn a_flood_of_markers_and_malformed_lacpdus_neither_starves_the_daemon_nor_breaks_the_aggregate() {
    let lab = lab(2, LACP_FAST);
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A's ports distributing", |s| all_distributing(s, 2));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B's ports distributing", |s| all_distributing(s, 2));
    let wire = lab.wire().expect("wire namespace");
    let flooder = bond_tests::net::RawSender::open(wire, "a0").unwrap();
    let slow = |payload: &[u8]| {
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x66, 0x88, 0x09];
        f.extend_from_slice(payload);
        f.resize(14 + 110, 0);
        f
    };
    // Marker information PDUs (each asks for a response) and LACPDUs too short to be read.
    let marker = slow(&[0x02, 0x01, 0x01, 0x10, 0, 1, 0x02, 0, 0, 0, 0, 0x66, 0, 0, 0, 7]);
    let mut short = slow(&[0x01, 0x01, 0x01, 0x14]);
    short.truncate(14 + 8);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, slowest) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut n = 0u64;
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && start.elapsed() < Duration::from_secs(5) {
                for f in [&marker, &short] {
                    if flooder.send(f).is_ok() {
                        n += 1;
                    }
                }
            }
            n
        });
        // The daemon answers while the flood runs, and the other member stays in the aggregate.
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let t = Instant::now();
            let st = lab.a.daemon().status().unwrap();
            slowest = slowest.max(t.elapsed());
            assert!(distributing(&st, "eth1"), "eth1 stays in the aggregate during the flood");
            std::thread::sleep(Duration::from_millis(150));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (flood.join().unwrap(), slowest)
    });
    println!("LACP flood: {sent} slow-protocol frames in about 1.5 s; slowest status answer {slowest:?}");
    assert!(sent > 10_000, "a flood: {sent}");
    assert!(slowest < Duration::from_millis(500), "the daemon keeps answering: {slowest:?}");
    // After it, both ports negotiate on as before.
    wait_for(lab.a.daemon(), Duration::from_secs(5), "A's ports distributing after the flood", |s| all_distributing(s, 2));
    assert_eq!(traffic_spreads(&lab), 2, "traffic on both members");
}

fn mac_of(ns: &bond_tests::Netns, dev: &str) -> Vec<u8> {
    let v: Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
    v[0]["address"].as_str().unwrap().split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

#[test]
fn frames_arriving_on_a_port_that_is_not_collecting_are_dropped_and_counted() {
    let lab = lab(2, LACP_FAST);
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A distributing", |s| all_distributing(s, 2));
    lab.drop_lacp_from_b(0).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(5), "eth0 out of the aggregate", |s| !distributing(s, "eth0"));
    // B's side still sends on eth0 (a partner that has not noticed, or a standby port the
    // switch floods to): frames to A's bond, straight out of B's members.
    let mut frame = mac_of(&lab.a.ns, &lab.a.bond);
    frame.extend(mac_of(&lab.b.ns, &lab.b.bond));
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(b"not collecting test payload, forty-six bytes!!");
    let capture = bond_tests::net::Capture::open(&lab.a.ns, &lab.a.bond).unwrap();
    let before = lab.a.daemon().status().unwrap();
    for member in ["eth0", "eth1"] {
        let sender = bond_tests::net::RawSender::open(&lab.b.ns, member).unwrap();
        for _ in 0..20 {
            sender.send(&frame).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let arrived = capture.frames().iter().filter(|f| f[..] == frame[..]).count();
    let after = lab.a.daemon().status().unwrap();
    let dropped = |s: &Value| Daemon::member(s, "eth0")["rx_dropped"].as_u64().unwrap();
    assert_eq!(arrived, 20, "only the collecting member's frames reach the bond");
    assert!(dropped(&after) - dropped(&before) >= 20, "eth0's are counted as dropped");
    // Slow-protocol frames still reach the controller there: with LACP back, eth0 rejoins.
    lab.repair(0).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(10), "eth0 back", |s| all_distributing(s, 2));
}

#[test]
fn a_killed_daemon_restarted_takes_the_aggregate_over_without_a_new_negotiation() {
    // Hitless restart and upgrade under 802.3ad: the new daemon goes on from the LACP state the
    // old one wrote down, so the partner sees no change and traffic does not pause.
    let mut lab = lab(3, LACP_FAST);
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A distributing", |s| all_distributing(s, 3));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B distributing", |s| all_distributing(s, 3));
    let partner_events = |lab: &Lab| lab.b.daemon().ctl(&["events", &lab.b.bond]).unwrap().lines().count();
    let before = partner_events(&lab);
    // The new daemon takes 3.5 s to load its programs, as on a busy host: longer than the
    // partner's fast-rate timeout, so the old daemon's LACPDUs must go on meanwhile.
    let restart = bond_tests::net::kill_and_restart_under_stream(&mut lab, Duration::from_millis(3500)).unwrap();
    let s = lab.a.daemon().status().unwrap();
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    println!("802.3ad kill and restart: {restart:?}");
    assert!(events.contains("took over the running aggregate (3 ports distributing)"), "{events}");
    assert!(all_distributing(&s, 3), "A distributes on every port");
    assert_eq!(restart.lost, 0, "no datagram lost; log:\n{}", lab.a.daemon().log());
    assert!(all_distributing(&lab.b.daemon().status().unwrap(), 3), "the partner distributes on every port");
    assert_eq!(partner_events(&lab), before, "the partner saw nothing happen");
}

#[test]
fn mismatched_rates_and_a_passive_side_still_aggregate() {
    // A asks for the fast rate, B the slow one: each sends at the rate its partner asks for.
    let lab = Lab::start(LabOptions::default().links(2).policy("").bond_lines("mode: 802.3ad").a_bond("lacp_rate: fast")).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(10), "A distributing", |s| all_distributing(s, 2));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B distributing", |s| all_distributing(s, 2));
    let sent = |d: &Daemon| -> u64 { port(&d.status().unwrap(), "eth0")["pdus_sent"].as_u64().unwrap() };
    let (a0, b0) = (sent(lab.a.daemon()), sent(lab.b.daemon()));
    std::thread::sleep(Duration::from_secs(5));
    let (a, b) = (sent(lab.a.daemon()) - a0, sent(lab.b.daemon()) - b0);
    println!("LACPDUs in 5 s on eth0: A (fast, partner slow) {a}, B (slow, partner fast) {b}");
    assert!(b >= 4, "B sends every second, as A asks: {b}");
    assert!(a <= 1, "A sends every 30 s, as B asks: {a}");
    assert!(traffic_spreads(&lab) >= 1);
    drop(lab);

    // lacp_active off on A: B (active) starts the talk and A answers; they aggregate.
    let lab = Lab::start(LabOptions::default().links(2).policy("").bond_lines("mode: 802.3ad\nlacp_rate: fast").a_bond("lacp_active: off"))
        .unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(10), "passive A distributing", |s| all_distributing(s, 2));
    wait_for(lab.b.daemon(), Duration::from_secs(5), "B distributing", |s| all_distributing(s, 2));
    let s = lab.a.daemon().status().unwrap();
    assert_eq!(port(&s, "eth0")["actor"]["state"].as_u64().unwrap() & 1, 0, "A says it is passive");
    assert!(traffic_spreads(&lab) >= 1);
}
