//! Members plugged into a switch (a bridge in its own namespace) with plain hosts on its other
//! ports, nothing of ours on the far side: active-backup with the ARP monitor and 802.3ad
//! (whose switch does not speak LACP) reach the hosts, and after a silent failure the switch
//! learns the bond's new port from its announcements. balance-tlb and balance-alb on a switch
//! are in `tlb.rs`.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use bond_tests::{
    Daemon,
    net::{parse_payload, payload, set_rcvbuf},
    switch::{BOND_ADDR, SwitchLab, peer_addr},
    wait_until,
};

fn lab(links: usize, peers: usize, lines: &str) -> SwitchLab {
    SwitchLab::start(links, peers, lines).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Peer `i` sends `count` datagrams to the bond, one every `gap`, while `during` runs (after
/// a quarter of them); returns how many arrived and the time the sending took.
fn stream_from_peer(lab: &SwitchLab, i: usize, count: u64, gap: Duration, during: impl FnOnce()) -> (u64, Duration) {
    let rx = lab.a.enter(|| UdpSocket::bind((BOND_ADDR, 48000))).unwrap().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    set_rcvbuf(&rx, 8 << 20);
    let tx = lab.peers[i].enter(|| UdpSocket::bind((peer_addr(i).as_str(), 0))).unwrap().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for seq in 0..count {
            let _ = tx.send_to(&payload(seq, i as u32, 200), (BOND_ADDR, 48000));
            std::thread::sleep(gap);
        }
        started.elapsed()
    });
    std::thread::sleep(gap * (count / 4) as u32);
    during();
    let took = sender.join().unwrap();
    let mut got = 0;
    let mut buf = [0u8; 2048];
    while let Ok(n) = rx.recv(&mut buf) {
        got += u64::from(parse_payload(&buf[..n]).is_some());
    }
    (got, took)
}

fn bond_mac(lab: &SwitchLab) -> String {
    lab.daemon().status().unwrap()["mac"].as_str().unwrap().to_string()
}

#[test]
fn active_backup_on_a_switch_fails_over_a_silent_link_and_the_switch_learns_the_new_port() {
    // The ARP monitor asks peer 0 (a plain host) through the switch.
    let lines = format!("mode: active-backup\narp_interval: 20\narp_ip_target: [{}]\narp_validate: all\narp_missed_max: 2", peer_addr(0));
    let lab = lab(2, 2, &lines);
    lab.peers_ping().unwrap();
    let status = lab.daemon().status().unwrap();
    let active = status["active"].as_str().unwrap().to_string();
    let j: usize = active.trim_start_matches("eth").parse().unwrap();
    let mac = bond_mac(&lab);
    wait_until(Duration::from_secs(3), "the switch knows the bond on its active member's port", || {
        lab.port_of(&mac).as_deref() == Some(format!("a{j}").as_str())
    });
    // Steady: the bond's address stays on the active member's port (backups do not move it).
    let (got, _) = stream_from_peer(&lab, 1, 400, Duration::from_millis(1), || {});
    assert_eq!(got, 400, "every datagram arrives before the failure");
    assert_eq!(lab.port_of(&mac).as_deref(), Some(format!("a{j}").as_str()), "the switch did not move the bond's address");

    // The active member's cable goes silent (its carrier stays): the ARP monitor finds it,
    // another member takes over and announces the bond, and the switch learns its port.
    let count = 2000;
    let (got, took) = stream_from_peer(&lab, 1, count, Duration::from_millis(1), || lab.silence(j).unwrap());
    let status = lab.daemon().status().unwrap();
    let next = status["active"].as_str().unwrap().to_string();
    assert_ne!(next, active, "another member is active: {status}");
    let k = next.trim_start_matches("eth");
    assert_eq!(lab.port_of(&mac).as_deref(), Some(format!("a{k}").as_str()), "the switch learnt the bond's new port");
    let lost_ms = (count - got) as f64 * took.as_secs_f64() * 1000.0 / count as f64;
    println!("active-backup on a switch: {} of {count} datagrams lost at the silent failure, about {lost_ms:.0} ms", count - got);
    // 2 x 20 ms of missed ARP replies, the failover and the announcement; generous for a
    // loaded machine (the bench measures it).
    assert!(lost_ms < 500.0, "the loss is bounded: {lost_ms:.0} ms");
    assert!(Daemon::member(&status, &active)["usable"] == false);
    lab.peers_ping().unwrap();
}

#[test]
fn lacp_on_a_switch_that_speaks_no_lacp_still_reaches_the_hosts_through_a_failover() {
    let lab = lab(2, 2, "mode: 802.3ad\nlacp_rate: fast");
    // No partner answers LACP: each port is an aggregator of its own, and one carries traffic.
    wait_until(Duration::from_secs(10), "a member carries traffic without a LACP partner", || {
        let s = lab.daemon().status().unwrap();
        s["members"].as_array().unwrap().iter().any(|m| m["usable"] == true)
    });
    lab.peers_ping().unwrap();
    let got = lab.bond_sends(4, 25, 48100).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram reaches the hosts: {got:?}");
    let status = lab.daemon().status().unwrap();
    let used: Vec<String> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["usable"] == true)
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    let j: usize = used[0].trim_start_matches("eth").parse().unwrap();
    lab.cut(j).unwrap();
    wait_until(Duration::from_secs(10), "the other member carries traffic", || {
        let s = lab.daemon().status().unwrap();
        s["members"].as_array().unwrap().iter().any(|m| m["usable"] == true && m["name"] != used[0].as_str())
    });
    lab.peers_ping().unwrap();
    let got = lab.peers_send(100, 48200).unwrap();
    assert!(got.iter().all(|&n| n == 100), "every datagram from the hosts arrives after the failover: {got:?}");
}
