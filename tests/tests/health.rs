//! Link health: silent failures, flapping, loss, primaries and failover order, delays, the ARP
//! monitor, broadcast dedup. Faults are injected with nftables (no carrier change) or by taking
//! the far end of a link down.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Capture, Stream, UdpFlows, losses, ping},
    wait_until,
};
use serde_json::Value;

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Polls side A's status until `pred` holds; returns it and how long that took.
fn wait_for(lab: &Lab, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let s = lab.a.daemon().status().expect("status");
        if pred(&s) {
            return (s, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; status:\n{s:#}\nlog:\n{}", lab.a.daemon().log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn member<'a>(s: &'a Value, name: &str) -> &'a Value {
    Daemon::member(s, name)
}

fn usable(s: &Value, name: &str) -> bool {
    member(s, name)["usable"] == true
}

fn events(s: &Value) -> String {
    s["events"].as_array().map(|e| e.iter().filter_map(|x| x["message"].as_str()).collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

#[test]
fn a_silent_link_is_detected_within_the_failover_interval() {
    // Probes every 10 ms; a link silent for 30 ms has failed.
    let lab = lab(LabOptions::default().policy("fast").settings("policies:\n  fast: { basePolicy: active-backup, failoverInterval: 30 }"));
    ping(&lab, 2).unwrap();
    wait_for(&lab, Duration::from_secs(5), "probes answered", |s| member(s, "eth0")["rx_probes"].as_u64().unwrap_or(0) > 0);
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "eth0 active", |s| s["active"] == "eth0");
    assert!(usable(&s, "eth0") && member(&s, "eth0")["state"] != "down", "eth0 healthy before the fault: {s:#}");
    let stream = Stream::start(&lab, Duration::from_millis(1), 3000).unwrap();
    wait_until(Duration::from_secs(2), "the stream arrives at B before the fault", || stream.received() >= 300);
    // Everything on eth0 is dropped in both directions; its carrier stays up. The fault is in
    // place somewhere between `impairing` and `impaired` (one nft transaction).
    let impairing = SystemTime::now();
    lab.impair(0, 100).unwrap();
    let impaired = SystemTime::now();
    let (s, seen) = wait_for(&lab, Duration::from_secs(5), "eth0 declared failed", |s| !usable(s, "eth0"));
    let nft_ms = impaired.duration_since(impairing).unwrap().as_secs_f64() * 1000.0;
    // The daemon's event says when it decided: from the fault (at the latest `impaired`) to then.
    let failed = Daemon::event_ms_after(&s, "eth0 failed: silent", impaired)
        .unwrap_or_else(|| panic!("an event says eth0 failed for silence: {}", events(&s)));
    let then = stream.received();
    wait_until(Duration::from_secs(2), "traffic arrives at B on another member", || stream.received() >= then + 300);
    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = losses(sent, &got);
    println!(
        "silent failure: eth0 failed {failed:.0} ms after the fault was in place (nft took {nft_ms:.0} ms), status showed it {seen:?} after (polled every 10 ms); {lost} of {sent} datagrams lost, longest gap {longest} ms"
    );
    let m = member(&s, "eth0");
    assert_eq!(m["usable"], false, "detected: not usable");
    assert_eq!(m["carrier"], true, "no carrier change");
    assert!(m["health"].as_str().unwrap().contains("silent"), "{m:#}");
    assert_ne!(s["active"], "eth0");
    // Detection: the silence is counted from eth0's last reply, which came before the fault,
    // and the daemon wakes when it reaches the 30 ms failover interval; so the decision is due
    // at most 30 ms after the fault. 20 ms more is for waking a daemon on a busy two-core
    // machine, and 1 ms for the event's millisecond rounding.
    assert!(failed <= 30.0 + 20.0 + 1.0, "eth0 declared failed {failed:.1} ms after the fault");
    // Seen from outside: the status read by polling (10 ms apart, and a bondctl status call
    // of a few ms each) shows it no later than those 30 + 20 ms plus a poll or two.
    assert!(seen <= Duration::from_millis(30 + 20 + 50), "status showed eth0 failed {seen:?} after the fault");
    // Seen at B, the traffic stops at the fault and resumes once the failure is decided: the
    // same 30 + 20 ms, and 10 ms for the 1 ms stream's own scheduling (measured: about 25 ms).
    assert!(longest <= 60, "traffic lost for {longest} ms");
    assert!(got.iter().any(|(q, _)| *q > sent - 100), "traffic continues on another member");
    lab.repair(0).unwrap();
    wait_for(&lab, Duration::from_secs(5), "eth0 back", |s| usable(s, "eth0"));
}

#[test]
fn a_flapping_link_is_punished_with_growing_refractory_periods_and_readmitted() {
    let lab = lab(LabOptions::default()
        .policy("p")
        .settings("policies:\n  p:\n    basePolicy: balance-rr\n    failoverInterval: 100\n    punishment: { base: 400, window: 30000 }"));
    let cut_and_restore = || {
        lab.cut(1).unwrap();
        wait_for(&lab, Duration::from_secs(5), "eth1 failed", |s| member(s, "eth1")["health"] != "up");
        lab.restore(1).unwrap();
        wait_for(&lab, Duration::from_secs(5), "eth1 healthy", |s| member(s, "eth1")["health"] == "up");
    };
    // First failure: not punished.
    cut_and_restore();
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "eth1 back after one failure", |s| usable(s, "eth1"));
    assert_eq!(member(&s, "eth1")["punished_ms"], 0);
    // Second failure within the window: punished with the base period.
    cut_and_restore();
    let (s, _) = wait_for(&lab, Duration::from_secs(1), "eth1 punished", |s| member(s, "eth1")["punished_ms"].as_u64().unwrap() > 0);
    let first = member(&s, "eth1")["punished_ms"].as_u64().unwrap();
    assert!(!usable(&s, "eth1"), "held out while punished");
    assert!(first <= 400, "base period: {first}");
    // Third, while still punished: base + twice what is left.
    cut_and_restore();
    let (s, _) =
        wait_for(&lab, Duration::from_secs(1), "eth1 punished again", |s| member(s, "eth1")["punished_ms"].as_u64().unwrap() > first);
    let second = member(&s, "eth1")["punished_ms"].as_u64().unwrap();
    println!("refractory periods: {first} ms, then {second} ms");
    assert!(second > first, "grows on repeats: {first} then {second}");
    // Healthy: the punishment fades and the link is readmitted.
    let (s, waited) = wait_for(&lab, Duration::from_secs(10), "eth1 readmitted", |s| usable(s, "eth1"));
    assert!(waited.as_millis() as u64 + 100 >= second.min(400), "readmitted only after fading ({waited:?})");
    let e = events(&s);
    assert!(e.contains("eth1 punished for flapping") && e.contains("eth1 readmitted"), "{e}");
}

#[test]
fn loss_on_one_link_lowers_its_allocation_and_moves_flows() {
    // Loss alone is scored, and (under a high limit) not avoided: the link keeps a smaller share.
    let lab = lab(LabOptions::default().policy("aw").settings(
        "policies:\n  aw:\n    basePolicy: balance-aware\n    failoverInterval: 150\n    quality: { plr: 1.0 }\n    qualityLimits: { plr: 0.5 }",
    ));
    ping(&lab, 2).unwrap();
    let alloc = |s: &Value, m: &str| member(s, m)["allocation"].as_f64().unwrap();
    let (s, _) =
        wait_for(&lab, Duration::from_secs(5), "probes answered", |s| member(s, "eth2")["quality"]["samples"].as_u64().unwrap() >= 32);
    let before = alloc(&s, "eth2");
    assert!((before - 1.0 / 3.0).abs() < 0.02, "equal shares to start with: {before}");
    let flows = UdpFlows::new(&lab, 200, 45000).unwrap();
    let tx_on_eth2 = |s: &Value| member(s, "eth2")["tx_bytes"].as_u64().unwrap();
    let tx_all = |s: &Value| (0..3).map(|i| member(s, &format!("eth{i}"))["tx_bytes"].as_u64().unwrap()).sum::<u64>();
    // The share of the flows' bytes on eth2, counted where A's frames arrive (the wire's end of
    // each link, before the impairment drops any), once every datagram has arrived there; the
    // daemon's own counters are read alongside.
    let share_on_wire = |sent: u64| -> f64 {
        let c0 = lab.wire_a_counters().unwrap();
        flows.send(5, 200).unwrap();
        let mut d = Vec::new();
        wait_until(Duration::from_secs(2), "the flows' datagrams arrive on the wire", || {
            d = lab.wire_a_counters().unwrap().iter().zip(&c0).map(|(a, b)| *a - *b).collect::<Vec<_>>();
            d.iter().map(|c| c.rx_packets).sum::<u64>() >= sent
        });
        d[2].rx_bytes as f64 / d.iter().map(|c| c.rx_bytes).sum::<u64>() as f64
    };
    let s0 = lab.a.daemon().status().unwrap();
    let wire_before = share_on_wire(1000);
    let s1 = lab.a.daemon().status().unwrap();
    let share_before = (tx_on_eth2(&s1) - tx_on_eth2(&s0)) as f64 / (tx_all(&s1) - tx_all(&s0)) as f64;

    lab.impair(2, 10).unwrap();
    let (s, took) = wait_for(&lab, Duration::from_secs(10), "eth2's allocation lowered", |s| alloc(s, "eth2") < before - 0.08);
    let after = alloc(&s, "eth2");
    let m = member(&s, "eth2");
    println!(
        "10% loss each way on eth2: measured plr {:.2}, score {:.2}, allocation {before:.3} -> {after:.3} after {took:?}",
        m["quality"]["plr"], m["score"]
    );
    assert!(m["quality"]["plr"].as_f64().unwrap() > 0.02, "loss measured: {m:#}");
    assert!(usable(&s, "eth2"), "not avoided under a 0.5 loss limit");
    let s2 = lab.a.daemon().status().unwrap();
    let wire_after = share_on_wire(1000);
    let s3 = lab.a.daemon().status().unwrap();
    let share_after = (tx_on_eth2(&s3) - tx_on_eth2(&s2)) as f64 / (tx_all(&s3) - tx_all(&s2)) as f64;
    println!(
        "share of the flows' bytes sent on eth2: {wire_before:.3} -> {wire_after:.3} arriving on the wire ({share_before:.3} -> {share_after:.3} by the daemon)"
    );
    assert!(wire_after < wire_before - 0.06, "flows moved off the lossy link (counted on the wire): {wire_before} -> {wire_after}");
    assert!(share_after < share_before - 0.06, "flows moved off the lossy link (the daemon's counters): {share_before} -> {share_after}");
    lab.repair(2).unwrap();
}

#[test]
fn loss_past_the_limit_avoids_the_link_and_punishes_it() {
    let lab = lab(LabOptions::default()
        .policy("aw")
        .settings("policies:\n  aw:\n    basePolicy: balance-aware\n    failoverInterval: 150\n    punishment: { base: 300 }"));
    ping(&lab, 2).unwrap();
    wait_for(&lab, Duration::from_secs(5), "probes answered", |s| member(s, "eth1")["quality"]["samples"].as_u64().unwrap() >= 32);
    // About 19% of round trips fail: past the default 5% limit, yet rarely long enough to look silent.
    lab.impair(1, 10).unwrap();
    let (s, _) = wait_for(&lab, Duration::from_secs(10), "eth1 avoided for loss", |s| {
        !usable(s, "eth1") && member(s, "eth1")["violations"][0].as_str().is_some_and(|v| v.starts_with("loss"))
    });
    let m = member(&s, "eth1");
    assert_eq!(m["allocation"], 0.0);
    assert!(events(&s).contains("eth1 misbehaves (loss"), "{}", events(&s));
    lab.repair(1).unwrap();
    // Losses age out of the window; the punishment fades; the link returns.
    wait_for(&lab, Duration::from_secs(20), "eth1 back", |s| usable(s, "eth1"));
}

// Repeated cuts within a minute would be punished as flapping; a short period keeps the test quick.
const SELECT: &str = "policies:
  ab-always: { basePolicy: active-backup, linkSelectMethod: always, failoverInterval: 300, punishment: { base: 50 }, links: { eth0: { mode: primary }, eth1: {}, eth2: {} } }
  ab-failure: { basePolicy: active-backup, linkSelectMethod: failure, failoverInterval: 300, punishment: { base: 50 }, links: { eth0: { mode: primary }, eth1: {}, eth2: {} } }
  ab-better: { basePolicy: active-backup, linkSelectMethod: better, failoverInterval: 300, punishment: { base: 50 }, links: { eth0: { mode: primary }, eth1: {}, eth2: {} } }
  ab-optimize: { basePolicy: active-backup, activeReselect: optimize, failoverInterval: 300, punishment: { base: 50 }, links: { eth0: { mode: primary }, eth1: {}, eth2: {} } }";

#[test]
fn the_primary_returns_or_not_according_to_link_select_method() {
    let lab = lab(LabOptions::default().policy("ab-always").settings(SELECT));
    for (method, returns) in [("always", true), ("failure", false), ("better", false), ("optimize", false)] {
        // Start from the primary active.
        lab.a.daemon().set_policy("ab-always").unwrap();
        wait_for(&lab, Duration::from_secs(5), "eth0 active", |s| s["active"] == "eth0");
        lab.a.daemon().set_policy(&format!("ab-{method}")).unwrap();
        lab.cut(0).unwrap();
        wait_for(&lab, Duration::from_secs(5), "failover to eth1", |s| s["active"] == "eth1");
        lab.restore(0).unwrap();
        wait_for(&lab, Duration::from_secs(5), "eth0 usable again", |s| usable(s, "eth0"));
        let want = if returns { "eth0" } else { "eth1" };
        let s = if returns {
            // Within the 300 ms this check has always allowed.
            wait_for(&lab, Duration::from_millis(300), &format!("linkSelectMethod {method}: the primary returns"), |s| {
                s["active"] == "eth0"
            })
            .0
        } else {
            // A return that does not happen cannot be waited for: give it those 300 ms.
            std::thread::sleep(Duration::from_millis(300));
            lab.a.daemon().status().unwrap()
        };
        assert_eq!(s["active"], want, "linkSelectMethod {method}: the primary {} return", if returns { "should" } else { "should not" });
    }
}

#[test]
fn a_returning_primary_that_is_better_takes_over_with_better() {
    // eth1 is made lossy (about 19% of round trips; not avoided, and too little to look silent
    // for 300 ms): once eth0 is back and measured, it scores clearly better.
    let lab = lab(LabOptions::default().policy("ab-better").settings(
        "policies:\n  ab-better: { basePolicy: active-backup, linkSelectMethod: better, failoverInterval: 300, qualityLimits: { plr: 0.95 }, links: { eth0: { mode: primary }, eth1: {}, eth2: { enabled: false } } }",
    ));
    wait_for(&lab, Duration::from_secs(5), "eth0 active", |s| s["active"] == "eth0");
    lab.impair(1, 10).unwrap();
    lab.cut(0).unwrap();
    wait_for(&lab, Duration::from_secs(5), "failover to eth1", |s| s["active"] == "eth1");
    lab.restore(0).unwrap();
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "eth0 usable", |s| usable(s, "eth0"));
    assert_eq!(s["active"], "eth1", "not taken back before eth0 is measured");
    let (s, took) = wait_for(&lab, Duration::from_secs(15), "better eth0 takes over", |s| s["active"] == "eth0");
    println!("the returning primary took over after {took:?}");
    assert!(!events(&s).contains("eth1 failed"), "eth1 never failed: {}\n{:#}", events(&s), member(&s, "eth1"));
    assert!(member(&s, "eth0")["score"].as_f64().unwrap() > member(&s, "eth1")["score"].as_f64().unwrap(), "{s:#}");
    lab.repair(1).unwrap();
}

#[test]
fn failover_to_chains_are_followed() {
    let lab = lab(LabOptions::default().policy("chain").settings(
        "policies:\n  chain: { basePolicy: active-backup, links: { eth0: { mode: primary, failoverTo: eth2 }, eth1: {}, eth2: { failoverTo: eth1 } } }",
    ));
    wait_for(&lab, Duration::from_secs(5), "eth0 active", |s| s["active"] == "eth0");
    lab.cut(0).unwrap();
    wait_for(&lab, Duration::from_secs(5), "eth0 -> eth2 (not eth1)", |s| s["active"] == "eth2");
    lab.cut(2).unwrap();
    wait_for(&lab, Duration::from_secs(5), "eth2 -> eth1", |s| s["active"] == "eth1");
    lab.restore(0).unwrap();
    lab.restore(2).unwrap();
    wait_for(&lab, Duration::from_secs(5), "primary eth0 back", |s| s["active"] == "eth0");
}

#[test]
fn up_delay_and_down_delay_are_honoured() {
    let lab = lab(LabOptions::default()
        .policy("d")
        .settings("policies:\n  d: { basePolicy: active-backup, upDelay: 600, downDelay: 400, links: { eth0: { mode: primary }, eth1: {}, eth2: {} } }"));
    wait_for(&lab, Duration::from_secs(5), "eth0 active", |s| s["active"] == "eth0");
    lab.cut(0).unwrap();
    let (_, down) = wait_for(&lab, Duration::from_secs(5), "eth0 out after downDelay", |s| !usable(s, "eth0"));
    lab.restore(0).unwrap();
    let (s, up) = wait_for(&lab, Duration::from_secs(5), "eth0 back after upDelay", |s| usable(s, "eth0"));
    println!("downDelay 400 ms: out after {down:?}; upDelay 600 ms: back after {up:?}");
    assert!(down >= Duration::from_millis(380), "left before downDelay: {down:?}");
    assert!(up >= Duration::from_millis(580), "back before upDelay: {up:?}");
    assert!(events(&s).contains("eth0 is healthy (healthy for upDelay 600 ms)"), "{}", events(&s));
    wait_for(&lab, Duration::from_secs(2), "primary active again", |s| s["active"] == "eth0");
}

#[test]
fn the_arp_monitor_detects_a_dead_target() {
    // B answers ARP on all of its links (broadcast), so every A member hears the target.
    let lab = lab(LabOptions::default()
        .policy("balance-rr")
        .b_policy("broadcast")
        .a_bond(&format!("arp_interval: 50\narp_ip_target: [{}]\narp_validate: all\narp_missed_max: 2", bond_tests::lab::ADDR_B)));
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "members up with ARP replies", |s| (0..3).all(|i| usable(s, &format!("eth{i}"))));
    assert!(s["members"][0]["health"] == "up");
    // The target goes away: nobody answers ARP for it any more.
    lab.b.ns.ip(&["addr", "del", &format!("{}/24", bond_tests::lab::ADDR_B), "dev", &lab.b.bond]).unwrap();
    let (s, took) = wait_for(&lab, Duration::from_secs(5), "members down", |s| (0..3).all(|i| !usable(s, &format!("eth{i}"))));
    println!("ARP target gone: all members down after {took:?} (arp_interval 50 ms x arp_missed_max 2)");
    assert!(member(&s, "eth0")["health"].as_str().unwrap().contains("monitor targets unreachable"));
    assert_eq!(member(&s, "eth0")["carrier"], true);
    // It comes back.
    lab.b.ns.ip(&["addr", "add", &format!("{}/24", bond_tests::lab::ADDR_B), "dev", &lab.b.bond]).unwrap();
    wait_for(&lab, Duration::from_secs(5), "members up again", |s| (0..3).all(|i| usable(s, &format!("eth{i}"))));
}

#[test]
fn dedup_delivers_each_broadcast_packet_once() {
    let lab = lab(LabOptions::default().policy("bd").settings("policies:\n  bd: { basePolicy: broadcast, dedup: true }"));
    ping(&lab, 2).unwrap();
    let flows = UdpFlows::new(&lab, 4, 46000).unwrap();
    let before = lab.b_member_counters().unwrap();
    let sent = flows.send(250, 300).unwrap();
    let got = flows.receive(Duration::from_millis(300));
    // Every copy arrived at B: each member's kernel counters saw every datagram.
    let d: Vec<u64> = lab.b_member_counters().unwrap().iter().zip(&before).map(|(a, b)| (*a - *b).rx_packets).collect();
    assert!(d.iter().all(|&n| n >= sent), "each of B's members received all {sent} datagrams: {d:?}");
    let mut copies: BTreeMap<u64, usize> = BTreeMap::new();
    for (seq, _) in &got {
        *copies.entry(*seq).or_default() += 1;
    }
    assert_eq!(copies.len() as u64, sent, "every datagram arrives");
    assert!(copies.values().all(|&n| n == 1), "each exactly once: {:?}", copies.values().filter(|n| **n != 1).count());
    let s = lab.b.daemon().status().unwrap();
    let dropped: u64 = (0..3).map(|i| member(&s, &format!("eth{i}"))["rx_dropped"].as_u64().unwrap()).sum();
    assert!(dropped >= 2 * sent, "the receiver dropped the other copies: {dropped}");
}

#[test]
fn probes_measure_each_link() {
    let lab = lab(LabOptions::default().policy("m").settings("policies:\n  m: { basePolicy: balance-xor, failoverInterval: 60 }"));
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "samples", |s| {
        (0..3).all(|i| member(s, &format!("eth{i}"))["quality"]["samples"].as_u64().unwrap_or(0) >= 8)
    });
    for i in 0..3 {
        let m = member(&s, &format!("eth{i}"));
        let q = &m["quality"];
        assert!(q["lat"].as_f64().unwrap() > 0.0 && q["lat"].as_f64().unwrap() < 50.0, "{m:#}");
        assert!(q["ltm"].as_f64().unwrap() >= q["lat"].as_f64().unwrap());
        assert_eq!(q["plr"], 0.0);
        assert_eq!(q["per"], 0.0);
        assert!(m["probes_answered"].as_u64().unwrap() > 0, "A answered B's probes too");
    }
}

#[test]
fn probe_replies_say_what_each_link_delivered() {
    // 2,000 datagrams/s of 64 bytes (106-byte frames) spread packet by packet over three links:
    // about 0.57 Mbit/s arrive on each of B's members, which B's replies report.
    let lab = lab(LabOptions::default()
        .policy("m")
        .settings("policies:\n  m: { basePolicy: balance-rr, packetsPerLink: 1, failoverInterval: 300 }"));
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    stream.flowed(2_000, "before measuring");
    std::thread::sleep(Duration::from_millis(500));
    let s = lab.a.daemon().status().unwrap();
    stream.finish().unwrap();
    let delivered: Vec<f64> = (0..3).map(|i| member(&s, &format!("eth{i}"))["delivered_bps"].as_f64().unwrap_or(0.0)).collect();
    let sent = 2_000.0 * 106.0 * 8.0;
    let total: f64 = delivered.iter().sum();
    println!("delivered per link {delivered:.0?} bit/s, {total:.0} in all; {sent:.0} sent");
    assert!((0.7 * sent..1.5 * sent).contains(&total), "{total:.0} bit/s delivered in all, {sent:.0} sent: {delivered:?}");
    assert!(delivered.iter().all(|d| *d > 0.2 * sent / 3.0), "every link delivered its part: {delivered:?}");
    let text = lab.a.daemon().ctl(&["status", &lab.a.bond]).unwrap();
    assert!(text.contains("Delivered: "), "{text}");
}

#[test]
fn the_dynamic_strategy_probes_only_quiet_links() {
    // A sends a constant stream over all three links; B's members receive a packet every
    // 3 ms, which proves them alive, so B stops probing until the stream ends.
    let lab = lab(LabOptions::default()
        .policy("dyn")
        .settings("policies:\n  dyn: { basePolicy: balance-rr, packetsPerLink: 1, failoverInterval: 60, monitorStrategy: dynamic }"));
    ping(&lab, 2).unwrap();
    let b_probes = || {
        let s = lab.b.daemon().status().unwrap();
        (0..3).map(|i| member(&s, &format!("eth{i}"))["tx_probes"].as_u64().unwrap()).sum::<u64>()
    };
    // B's probe requests as they arrive on the wire (`W:b<i>`), besides B's own count.
    let wire = lab.wire().expect("wire namespace");
    let caps: Vec<Capture> = (0..3).map(|i| Capture::open(wire, &format!("b{i}")).unwrap()).collect();
    let wire_probes = || -> u64 {
        let is_request = |f: &Vec<u8>| f.len() > 19 && f[12..14] == [0x88, 0xb5] && f[19] == 1;
        caps.iter().map(|c| c.frames().iter().filter(|f| is_request(f)).count() as u64).sum()
    };
    // Each count is over a one-second window: a rate, measured by waiting that long.
    let p0 = b_probes();
    wire_probes();
    std::thread::sleep(Duration::from_secs(1));
    let quiet = b_probes() - p0;
    let quiet_wire = wire_probes();
    let stream = Stream::start(&lab, Duration::from_millis(1), 1500).unwrap();
    // The links carry traffic (a 200 ms head start, so that no probe due before it counts).
    wait_until(Duration::from_secs(2), "the stream arrives at B", || stream.received() >= 200);
    let p1 = b_probes();
    wire_probes();
    std::thread::sleep(Duration::from_secs(1));
    let busy = b_probes() - p1;
    let busy_wire = wire_probes();
    let (sent, got) = stream.finish().unwrap();
    println!(
        "probes B sent in one second: {quiet} on quiet links, {busy} while they carry traffic (on the wire: {quiet_wire}, {busy_wire})"
    );
    assert!(quiet_wire >= 100, "quiet links are probed every 20 ms (counted on the wire): {quiet_wire}");
    assert!(busy_wire <= 10, "busy links are not probed (counted on the wire): {busy_wire}");
    assert!(quiet >= 100, "quiet links are probed every 20 ms: {quiet}");
    assert!(busy <= 10, "busy links are not probed: {busy}");
    assert_eq!(losses(sent, &got).0, 0);
    let s = lab.b.daemon().status().unwrap();
    assert!((0..3).all(|i| usable(&s, &format!("eth{i}"))), "traffic kept every link alive");
}

#[test]
fn failover_announces_the_bond_with_gratuitous_arps() {
    let lab = lab(LabOptions::default().policy("active-backup").a_bond("num_grat_arp: 3"));
    ping(&lab, 2).unwrap();
    let (s, _) = wait_for(&lab, Duration::from_secs(5), "an active member", |s| s["active"].is_string());
    let active: usize = s["active"].as_str().unwrap().trim_start_matches("eth").parse().unwrap();
    let caps: Vec<Capture> = (0..3).map(|i| Capture::open(&lab.b.ns, &format!("eth{i}")).unwrap()).collect();
    lab.cut(active).unwrap();
    let (s, _) =
        wait_for(&lab, Duration::from_secs(5), "a new active member", |s| s["active"].is_string() && s["active"] != format!("eth{active}"));
    let new: usize = s["active"].as_str().unwrap().trim_start_matches("eth").parse().unwrap();
    let a_addr: std::net::Ipv4Addr = lab.a.addr.parse().unwrap();
    let gratuitous = |frames: Vec<Vec<u8>>| {
        frames
            .iter()
            .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[28..32] == a_addr.octets() && f[38..42] == a_addr.octets())
            .count()
    };
    let mut counts = vec![0usize; 3];
    let count = |counts: &mut Vec<usize>| {
        for (n, c) in counts.iter_mut().zip(&caps) {
            *n += gratuitous(c.frames());
        }
    };
    let _ = bond_tests::poll_until(Duration::from_secs(2), || {
        count(&mut counts);
        counts[new] >= 3
    });
    // Announcements are spaced by the carrier polling interval: a fourth one, or one on
    // another member, would have come within 200 ms (nothing tells that none is coming).
    std::thread::sleep(Duration::from_millis(200));
    count(&mut counts);
    println!("gratuitous ARPs from A per member after failing over to eth{new}: {counts:?}");
    assert_eq!(counts[new], 3, "num_grat_arp announcements on the new active member");
    assert_eq!(counts.iter().sum::<usize>(), 3, "and nowhere else");
    let e = events(&lab.a.daemon().status().unwrap());
    assert!(e.contains(&format!("announcing the bond's addresses on eth{new}")), "{e}");
}

#[test]
fn ipv_pref_keeps_ipv4_off_links_that_carry_ipv6_only() {
    let lab = lab(LabOptions::default().policy("v").settings(
        "policies:\n  v: { basePolicy: balance-rr, packetsPerLink: 1, links: { eth0: { ipvPref: 6 }, eth1: { ipvPref: 4 }, eth2: { ipvPref: 6 } } }",
    ));
    ping(&lab, 2).unwrap();
    let caps: Vec<bond_tests::net::Capture> =
        (0..3).map(|i| bond_tests::net::Capture::open(&lab.b.ns, &format!("eth{i}")).unwrap()).collect();
    let flows = UdpFlows::new(&lab, 8, 48000).unwrap();
    let sent = flows.send(50, 200).unwrap();
    let got = flows.receive(Duration::from_millis(300));
    assert_eq!(got.len() as u64, sent, "every datagram arrives");
    let arrived: Vec<usize> = caps.iter().map(|c| c.test_datagrams().len()).collect();
    assert_eq!(arrived, [0, sent as usize, 0], "IPv4 only on the link that carries it");
}

#[test]
fn idle_flows_are_forgotten_after_flow_expiry() {
    let lab = lab(LabOptions::default().policy("x").settings("policies:\n  x: { basePolicy: balance-xor, flowExpiry: 1000 }"));
    ping(&lab, 2).unwrap();
    let flows = UdpFlows::new(&lab, 16, 49000).unwrap();
    // The flow table samples one packet in 16: 300 packets leave a flow unseen with odds 4e-9.
    flows.send(300, 200).unwrap();
    let listed = |lab: &Lab| -> usize {
        let out = lab.a.daemon().ctl(&["flows", &lab.a.bond, "--json"]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().filter(|f| f["src"].as_str().unwrap().contains(":49")).count()
    };
    assert_eq!(listed(&lab), 16, "every flow recorded");
    // Idle for 1 s, and the expiry runs every second: gone within about 2 s.
    let start = Instant::now();
    while listed(&lab) > 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "idle flows still listed after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(start.elapsed() >= Duration::from_millis(900), "not forgotten before flowExpiry: {:?}", start.elapsed());
}

#[test]
fn another_protocol_on_the_probes_ethertype_reaches_the_bond_and_is_not_answered() {
    // 0x88b5 is the IEEE local experimental EtherType: other protocols use it too.
    let lab = lab(LabOptions::default().policy("balance-xor"));
    let wire = lab.wire().expect("wire namespace");
    let capture = bond_tests::net::Capture::open(&lab.a.ns, &lab.a.bond).unwrap();
    let sender = bond_tests::net::RawSender::open(wire, "a0").unwrap();
    let before = member(&lab.a.daemon().status().unwrap(), "eth0").clone();
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0x88, 0xb5]);
    frame.extend_from_slice(&[0x88, 0xb5]);
    // Long enough to be read as a probe, with a type byte of a probe request.
    frame.extend((0..100u8).map(|i| if i == 5 { 1 } else { i.wrapping_mul(7) }));
    for _ in 0..5 {
        sender.send(&frame).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let arrived = capture.frames().iter().filter(|f| f.len() >= 14 && f[12..14] == [0x88, 0xb5] && f[6..12] == frame[6..12]).count();
    assert_eq!(arrived, 5, "every foreign frame reaches the bond device");
    let after = member(&lab.a.daemon().status().unwrap(), "eth0").clone();
    assert_eq!(after["probe_errors"], before["probe_errors"], "not counted as broken probes");
    let answered = after["probes_answered"].as_u64().unwrap() - before["probes_answered"].as_u64().unwrap();
    // B's own requests are answered meanwhile (every third of the failover interval).
    assert!(answered < 5, "not answered as probe requests: {answered}");
}

#[test]
fn forged_probe_replies_neither_keep_a_silent_link_alive_nor_count() {
    // A third party on the wire learns the bond's sender id and sequence numbers from its
    // requests and, once eth0 goes silent, forges replies for eth0's next requests. Without the
    // nonce each request carries (and the send time the data plane keeps), they do not count.
    let lab = lab(LabOptions::default().policy("fast").settings("policies:\n  fast: { basePolicy: active-backup, failoverInterval: 300 }"));
    ping(&lab, 2).unwrap();
    wait_for(&lab, Duration::from_secs(5), "probes answered on eth0", |s| member(s, "eth0")["rx_probes"].as_u64().unwrap_or(0) > 2);
    let wire = lab.wire().expect("wire namespace");
    let capture = bond_tests::net::Capture::open(wire, "a0").unwrap();
    let request = wait_for_request(&capture);
    let seq = u32::from_le_bytes(request[22..26].try_into().unwrap());
    let errors_before = member(&lab.a.daemon().status().unwrap(), "eth0")["probe_errors"].as_u64().unwrap();
    lab.impair(0, 100).unwrap();
    let silenced = SystemTime::now();
    let forger = bond_tests::net::RawSender::open(wire, "a0").unwrap();
    let mut forged = 0;
    // Every 5 ms for a second: replies to the next 200 requests, each with a guessed nonce.
    for k in 0..200u32 {
        let mut reply = request.clone();
        reply[0..6].copy_from_slice(&[0xff; 6]);
        reply[14 + 5] = 2; // a reply
        reply[22..26].copy_from_slice(&seq.wrapping_add(k / 4).to_le_bytes());
        reply[30..38].copy_from_slice(&u64::from(k).to_le_bytes());
        if forger.send(&reply).is_ok() {
            forged += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (s, _) = wait_for(&lab, Duration::from_secs(3), "eth0 declared failed", |s| !usable(s, "eth0"));
    let failed = Daemon::event_ms_after(&s, "eth0 failed: silent", silenced).expect("failed for silence");
    let errors = member(&s, "eth0")["probe_errors"].as_u64().unwrap() - errors_before;
    println!("forged replies: {forged} sent; eth0 failed {failed:.0} ms after it went silent; {errors} counted as probe errors");
    assert!(failed < 300.0 + 50.0, "the forgeries did not keep eth0 alive: failed after {failed} ms");
    assert!(errors >= 100, "the forgeries are counted as probe errors, not replies: {errors}");
    lab.repair(0).unwrap();
}

/// The first probe request A sends on link 0, as captured in the wire.
fn wait_for_request(capture: &bond_tests::net::Capture) -> Vec<u8> {
    let mut found = None;
    wait_until(Duration::from_secs(3), "a probe request on the wire", || {
        found = capture.frames().into_iter().find(|f| f.len() >= 14 + 32 && f[12..14] == [0x88, 0xb5] && f[14 + 5] == 1);
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_flood_of_probe_requests_is_answered_at_a_bounded_rate() {
    // A copy of A's request, sent 5,000 times as fast as possible towards B: B answers at most
    // 200 per member per 100 ms on each CPU, counts the rest as probe errors, and is no
    // reflector for whoever floods it.
    let lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 2).unwrap();
    let wire = lab.wire().expect("wire namespace");
    let request = wait_for_request(&bond_tests::net::Capture::open(wire, "a0").unwrap());
    let flooder = bond_tests::net::RawSender::open(wire, "b0").unwrap();
    let before = member(&lab.b.daemon().status().unwrap(), "eth0").clone();
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    for _ in 0..5000 {
        if flooder.send(&request).is_ok() {
            sent += 1;
        }
    }
    let windows = started.elapsed().as_nanos() as u64 / 100_000_000 + 2;
    std::thread::sleep(Duration::from_millis(200));
    let after = member(&lab.b.daemon().status().unwrap(), "eth0").clone();
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    let (answered, refused) = (delta("probes_answered"), delta("probe_errors"));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // A's own requests are answered meanwhile too (a few per 100 ms).
    let bound = 200 * cpus * windows + 20;
    println!("probe request flood: {sent} sent over {:?}, {answered} answered (bound {bound}), {refused} refused", started.elapsed());
    assert!(answered <= bound, "{answered} answered, at most {bound} allowed");
    assert!(answered >= 100, "requests are still answered: {answered}");
    assert!(refused + answered + 20 >= sent, "every request not answered is counted: {refused} + {answered} of {sent}");
}
