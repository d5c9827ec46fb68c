//! balance-tlb and balance-alb against plain hosts behind a switch (a bridge): transmit spread
//! over the members, receive on the active member (tlb) or spread by peer (alb), and a failed
//! member's peers moved to the others.

use std::{collections::BTreeSet, time::Duration};

use bond_tests::{Daemon, switch::SwitchLab, wait_until};
use serde_json::Value;

fn lab(links: usize, peers: usize, lines: &str) -> SwitchLab {
    SwitchLab::start(links, peers, lines).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

fn member_counter(status: &Value, name: &str, key: &str) -> u64 {
    Daemon::member(status, name)[key].as_u64().unwrap_or(0)
}

fn counters(lab: &SwitchLab, key: &str) -> Vec<u64> {
    let s = lab.daemon().status().unwrap();
    (0..lab.links).map(|j| member_counter(&s, &format!("eth{j}"), key)).collect()
}

fn deltas(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Per member, what the switch counted on its port to it: (frames it received from the bond,
/// frames it delivered to the bond).
fn port_counts(lab: &SwitchLab) -> (Vec<u64>, Vec<u64>) {
    let c = lab.port_counters().unwrap();
    (c.iter().map(|c| c.rx_packets).collect(), c.iter().map(|c| c.tx_packets).collect())
}

#[test]
fn tlb_spreads_transmit_and_receives_on_the_active_member() {
    let lab = lab(3, 4, "mode: balance-tlb");
    lab.peers_ping().unwrap();
    let status = lab.daemon().status().unwrap();
    let active = status["active"].as_str().expect("tlb has an active member").to_string();
    let bond_mac = status["mac"].as_str().unwrap().to_string();
    assert_eq!(Daemon::member(&status, &active)["mac"], bond_mac, "the active member carries the bond's address");
    let macs: BTreeSet<String> = (0..3).map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string()).collect();
    assert_eq!(macs.len(), 3, "every member has an address of its own: {macs:?}");

    // Transmit: 24 flows to 4 peers, spread over every member.
    let tx0 = counters(&lab, "tx_packets");
    let (sw_rx0, _) = port_counts(&lab);
    let got = lab.bond_sends(24, 20, 47000).unwrap();
    assert!(got.iter().all(|&n| n == 24 * 20), "every datagram arrived: {got:?}");
    let tx = deltas(&counters(&lab, "tx_packets"), &tx0);
    let sw_rx = deltas(&port_counts(&lab).0, &sw_rx0);
    println!("tlb transmit per member: {sw_rx:?} arriving at the switch ({tx:?} by the daemon)");
    assert!(sw_rx.iter().all(|&n| n >= 20), "every member carries some flows (counted at the switch): {sw_rx:?}");
    assert!(tx.iter().all(|&n| n >= 20), "every member carries some flows: {tx:?}");

    // Receive: peers know the bond by its address alone, which the active member carries.
    for i in 0..4 {
        assert_eq!(lab.peer_entry(i).as_deref(), Some(bond_mac.as_str()), "peer {i} sends to the bond's address");
    }
    let rx0 = counters(&lab, "rx_packets");
    let (_, sw_tx0) = port_counts(&lab);
    let got = lab.peers_send(100, 47100).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    let sw_tx = deltas(&port_counts(&lab).1, &sw_tx0);
    println!("tlb receive per member: {sw_tx:?} sent by the switch ({rx:?} by the daemon; active {active})");
    let a: usize = active.trim_start_matches("eth").parse().unwrap();
    assert!(sw_tx[a] >= 400, "the switch sends to the active member (counted at the switch): {sw_tx:?}");
    assert!(sw_tx.iter().enumerate().all(|(j, &n)| j == a || n < 10), "only the active member receives (counted at the switch): {sw_tx:?}");
    assert!(rx[a] >= 400, "{rx:?}");
    assert!(rx.iter().enumerate().all(|(j, &n)| j == a || n < 10), "only the active member receives: {rx:?}");

    // The active member fails: another takes the bond's address (the switch learns it from a
    // learning packet) and receives from then on; no two members share an address.
    lab.cut(a).unwrap();
    let mut status = Value::Null;
    let took = wait_until(Duration::from_secs(5), "another member active with the bond's address", || {
        status = lab.daemon().status().unwrap();
        status["active"].as_str().is_some_and(|n| n != active && Daemon::member(&status, n)["mac"] == bond_mac)
    });
    let next = status["active"].as_str().unwrap().to_string();
    // The switch learns where the address went from the learning packet: wait for its entry.
    let learnt = wait_until(Duration::from_secs(5), "the switch learns the bond's address on the new active member", || {
        lab.port_of(&bond_mac).as_deref() == Some(format!("a{}", next.trim_start_matches("eth")).as_str())
    });
    println!("tlb: {next} active with the bond's address {took:?} after the cut; the switch learnt it {learnt:?} later");
    assert_ne!(next, active);
    assert_eq!(Daemon::member(&status, &next)["mac"], bond_mac, "the new active member carries the bond's address");
    let macs: BTreeSet<String> = (0..3).map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string()).collect();
    assert_eq!(macs.len(), 3, "addresses stay distinct: {macs:?}");
    let got = lab.peers_send(100, 47400).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived after the failover: {got:?}");
}

#[test]
fn alb_spreads_receive_by_peer_and_moves_a_failed_members_peers() {
    let lab = lab(3, 6, "mode: balance-alb");
    lab.peers_ping().unwrap();
    let status = lab.daemon().status().unwrap();
    let mac_of: Vec<String> = (0..3).map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string()).collect();
    // The controller tells peers that learnt the bond some other way within a round or two.
    let mut entries: Vec<String> = Vec::new();
    let took = bond_tests::poll_until(Duration::from_secs(3), || {
        entries = (0..6).map(|i| lab.peer_entry(i).unwrap_or_default()).collect();
        entries.iter().collect::<BTreeSet<_>>().len() >= 2 && entries.iter().all(|e| mac_of.contains(e))
    });
    println!("alb: peers told of members' addresses after {took:?}");
    assert!(entries.iter().all(|e| !e.is_empty()), "every peer knows the bond: {entries:?}");
    let used: BTreeSet<&String> = entries.iter().collect();
    println!("alb: peers' entries for the bond {entries:?}; members {mac_of:?}");
    assert!(used.len() >= 2, "peers are given different members' addresses: {entries:?}");
    assert!(entries.iter().all(|e| mac_of.contains(e)), "each is a member's address");

    let rx0 = counters(&lab, "rx_packets");
    let (_, sw_tx0) = port_counts(&lab);
    let got = lab.peers_send(100, 47200).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    let sw_tx = deltas(&port_counts(&lab).1, &sw_tx0);
    println!("alb receive per member: {sw_tx:?} sent by the switch ({rx:?} by the daemon)");
    for (j, mac) in mac_of.iter().enumerate() {
        let peers = entries.iter().filter(|e| *e == mac).count() as u64;
        assert!(sw_tx[j] >= peers * 100 && sw_tx[j] < peers * 100 + 10, "member {j}: the switch sent it {} for {peers} peers", sw_tx[j]);
        assert!(rx[j] >= peers * 100 && rx[j] < peers * 100 + 10, "member {j} received {} for {peers} peers", rx[j]);
    }

    // The member with most peers fails: they are told of the others, traffic goes on.
    let busiest = (0..3).max_by_key(|&j| entries.iter().filter(|e| **e == mac_of[j]).count()).unwrap();
    lab.cut(busiest).unwrap();
    let mut status = Value::Null;
    wait_until(Duration::from_secs(5), "the cut member out of use", || {
        status = lab.daemon().status().unwrap();
        Daemon::member(&status, &format!("eth{busiest}"))["usable"] == false
    });
    let live_macs: Vec<String> = (0..3)
        .filter(|&j| j != busiest)
        .map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string())
        .collect();
    let mut entries: Vec<String> = Vec::new();
    let took = bond_tests::poll_until(Duration::from_secs(3), || {
        entries = (0..6).map(|i| lab.peer_entry(i).unwrap_or_default()).collect();
        entries.iter().all(|e| live_macs.contains(e))
    });
    println!("alb: peers moved off eth{busiest} after {took:?}");
    println!("alb after eth{busiest} failed: {entries:?}");
    assert!(entries.iter().all(|e| live_macs.contains(e)), "every peer sends to a member that works: {entries:?} vs {live_macs:?}");
    let rx0 = counters(&lab, "rx_packets");
    let got = lab.peers_send(100, 47300).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived after the failover: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    println!("alb receive per member after the failover: {rx:?}");
}
