//! balance-tlb and balance-alb against plain hosts behind a switch (a bridge): transmit spread
//! over the members, receive on the active member (tlb) or spread by peer (alb), and a failed
//! member's peers moved to the others.

use std::{collections::BTreeSet, time::Duration};

use bond_tests::{Daemon, switch::SwitchLab};
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
    let got = lab.bond_sends(24, 20, 47000).unwrap();
    assert!(got.iter().all(|&n| n == 24 * 20), "every datagram arrived: {got:?}");
    let tx = deltas(&counters(&lab, "tx_packets"), &tx0);
    println!("tlb transmit per member: {tx:?}");
    assert!(tx.iter().all(|&n| n >= 20), "every member carries some flows: {tx:?}");

    // Receive: peers know the bond by its address alone, which the active member carries.
    for i in 0..4 {
        assert_eq!(lab.peer_entry(i).as_deref(), Some(bond_mac.as_str()), "peer {i} sends to the bond's address");
    }
    let rx0 = counters(&lab, "rx_packets");
    let got = lab.peers_send(100, 47100).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    println!("tlb receive per member: {rx:?} (active {active})");
    let a: usize = active.trim_start_matches("eth").parse().unwrap();
    assert!(rx[a] >= 400, "{rx:?}");
    assert!(rx.iter().enumerate().all(|(j, &n)| j == a || n < 10), "only the active member receives: {rx:?}");

    // The active member fails: another takes the bond's address (the switch learns it from a
    // learning packet) and receives from then on; no two members share an address.
    lab.cut(a).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = lab.daemon().status().unwrap();
    let next = status["active"].as_str().unwrap().to_string();
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
    // The controller tells peers that learnt the bond some other way within a round or two.
    std::thread::sleep(Duration::from_millis(600));
    let status = lab.daemon().status().unwrap();
    let mac_of: Vec<String> = (0..3).map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string()).collect();
    let entries: Vec<String> = (0..6).map(|i| lab.peer_entry(i).expect("peer knows the bond")).collect();
    let used: BTreeSet<&String> = entries.iter().collect();
    println!("alb: peers' entries for the bond {entries:?}; members {mac_of:?}");
    assert!(used.len() >= 2, "peers are given different members' addresses: {entries:?}");
    assert!(entries.iter().all(|e| mac_of.contains(e)), "each is a member's address");

    let rx0 = counters(&lab, "rx_packets");
    let got = lab.peers_send(100, 47200).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    println!("alb receive per member: {rx:?}");
    for (j, mac) in mac_of.iter().enumerate() {
        let peers = entries.iter().filter(|e| *e == mac).count() as u64;
        assert!(rx[j] >= peers * 100 && rx[j] < peers * 100 + 10, "member {j} received {} for {peers} peers", rx[j]);
    }

    // The member with most peers fails: they are told of the others, traffic goes on.
    let busiest = (0..3).max_by_key(|&j| entries.iter().filter(|e| **e == mac_of[j]).count()).unwrap();
    lab.cut(busiest).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = lab.daemon().status().unwrap();
    assert_eq!(Daemon::member(&status, &format!("eth{busiest}"))["usable"], false);
    let live_macs: Vec<String> = (0..3)
        .filter(|&j| j != busiest)
        .map(|j| Daemon::member(&status, &format!("eth{j}"))["mac"].as_str().unwrap().to_string())
        .collect();
    let entries: Vec<String> = (0..6).map(|i| lab.peer_entry(i).unwrap_or_default()).collect();
    println!("alb after eth{busiest} failed: {entries:?}");
    assert!(entries.iter().all(|e| live_macs.contains(e)), "every peer sends to a member that works: {entries:?} vs {live_macs:?}");
    let rx0 = counters(&lab, "rx_packets");
    let got = lab.peers_send(100, 47300).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram arrived after the failover: {got:?}");
    let rx = deltas(&counters(&lab, "rx_packets"), &rx0);
    println!("alb receive per member after the failover: {rx:?}");
}
