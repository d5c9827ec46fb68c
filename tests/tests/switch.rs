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

/// Two bonds plugged into one switch, two members each: A (192.0.2.1) on ports a0, a1 and B
/// (192.0.2.2) on b0, b1. Field order: the daemons stop before the namespaces go.
struct TwoBonds {
    a: Daemon,
    b: Daemon,
    ns_a: bond_tests::Netns,
    ns_b: bond_tests::Netns,
    sw: bond_tests::Netns,
    dir: bond_tests::lab::TempDir,
}

impl TwoBonds {
    fn start(policy: &str) -> TwoBonds {
        let dir = bond_tests::lab::TempDir::new().unwrap();
        let (ns_a, ns_b, sw) = (
            bond_tests::Netns::new("sw2-a-").unwrap(),
            bond_tests::Netns::new("sw2-b-").unwrap(),
            bond_tests::Netns::new("sw2-s-").unwrap(),
        );
        for ns in [&ns_a, &ns_b, &sw] {
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1").unwrap();
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1").unwrap();
        }
        sw.ip(&["link", "add", "sw0", "type", "bridge"]).unwrap();
        sw.ip(&["link", "set", "sw0", "up"]).unwrap();
        let mut daemons = Vec::new();
        for (side, ns, addr) in [("a", &ns_a, "192.0.2.1"), ("b", &ns_b, "192.0.2.2")] {
            for j in 0..2 {
                let port = format!("{side}{j}");
                sw.ip(&["link", "add", &port, "type", "veth", "peer", "name", &format!("eth{j}"), "netns", ns.name()]).unwrap();
                sw.ip(&["link", "set", &port, "master", "sw0", "up"]).unwrap();
                ns.ip(&["link", "set", &format!("eth{j}"), "up"]).unwrap();
            }
            let config = dir.path().join(format!("{side}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "bonds:\n  bond0:\n    links: [eth0, eth1]\n    addresses: [{addr}/24]\n    policy: ab\n\
                     settings:\n  policies:\n    ab: {{ basePolicy: {policy}, failoverInterval: 300 }}\n"
                ),
            )
            .unwrap();
            daemons.push(Daemon::start(ns, &config, "bond0", dir.path()).unwrap_or_else(|e| panic!("starting bond {side}: {e:#}")));
        }
        let b = daemons.pop().unwrap();
        let a = daemons.pop().unwrap();
        TwoBonds { a, b, ns_a, ns_b, sw, dir }
    }

    fn port_of(&self, mac: &str) -> Option<String> {
        let out = self.sw.exec("bridge", &["-j", "fdb", "show", "br", "sw0"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v.as_array()?.iter().find(|e| e["mac"] == mac && e["ifname"].is_string()).and_then(|e| e["ifname"].as_str()).map(str::to_string)
    }

    /// Makes switch port `port`'s cable silent, carrier up.
    fn silence(&self, port: &str) {
        let script = format!(
            "table netdev silence {{\n chain in {{ type filter hook ingress device \"{port}\" priority 0; policy drop; }}\n \
             chain out {{ type filter hook egress device \"{port}\" priority 0; policy drop; }}\n}}\n"
        );
        let path = self.dir.path().join("silence.nft");
        std::fs::write(&path, script).unwrap();
        self.sw.exec("nft", &["-f", &path.to_string_lossy()]).unwrap();
    }
}

#[test]
fn two_bonds_behind_one_switch_probe_each_link_without_moving_their_addresses() {
    let lab = TwoBonds::start("active-backup");
    let pings = |from: &bond_tests::Netns, to: &str| from.exec("ping", &["-q", "-c", "2", "-i", "0.2", "-W", "2", to]).is_ok();
    assert!(pings(&lab.ns_a, "192.0.2.2"), "A reaches B through the switch");
    // Every member of both bonds is measured by probes answered through the switch.
    for d in [&lab.a, &lab.b] {
        wait_until(Duration::from_secs(10), "probes answered on every member", || {
            let s = d.status().unwrap();
            ["eth0", "eth1"].iter().all(|m| Daemon::member(&s, m)["quality"]["samples"].as_u64().unwrap_or(0) >= 4)
        });
    }
    // Probes go out on backups too, yet the switch keeps each bond's address on its active
    // member's port: probes carry the member's own probe address, not the bond's.
    let (s_a, s_b) = (lab.a.status().unwrap(), lab.b.status().unwrap());
    let (mac_a, mac_b) = (s_a["mac"].as_str().unwrap().to_string(), s_b["mac"].as_str().unwrap().to_string());
    let (act_a, act_b) = (s_a["active"].as_str().unwrap().to_string(), s_b["active"].as_str().unwrap().to_string());
    assert!(pings(&lab.ns_b, "192.0.2.1"));
    // Each member probes every 100 ms: a probe carrying the bond's address would move it.
    for _ in 0..100 {
        assert_eq!(
            lab.port_of(&mac_a),
            Some(format!("a{}", act_a.trim_start_matches("eth"))),
            "A's address stays on its active member's port"
        );
        assert_eq!(
            lab.port_of(&mac_b),
            Some(format!("b{}", act_b.trim_start_matches("eth"))),
            "B's address stays on its active member's port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A answers B's requests (each reaches both of A's members), never its own that the
    // switch floods back to its other member.
    let total =
        |s: &serde_json::Value, key: &str| -> u64 { ["eth0", "eth1"].iter().map(|m| Daemon::member(s, m)[key].as_u64().unwrap()).sum() };
    let (s_a, s_b) = (lab.a.status().unwrap(), lab.b.status().unwrap());
    let (answered, sent_by_b, sent_by_a) = (total(&s_a, "probes_answered"), total(&s_b, "tx_probes"), total(&s_a, "tx_probes"));
    println!("A answered {answered} probes; B sent {sent_by_b}, A sent {sent_by_a}");
    assert!(answered <= 2 * sent_by_b + 8, "A answered more than B's requests: {answered} > 2 x {sent_by_b} (A sent {sent_by_a})");
    // Traffic from B to A goes to A's active member's port, not its backup's.
    let backup = if act_a == "eth0" { "eth1" } else { "eth0" };
    let backup_port = format!("a{}", backup.trim_start_matches("eth"));
    let before = lab.sw.counters(&backup_port).unwrap().tx_packets;
    let rx = lab.ns_a.enter(|| UdpSocket::bind(("192.0.2.1", 48300))).unwrap().unwrap();
    let tx = lab.ns_b.enter(|| UdpSocket::bind(("192.0.2.2", 0))).unwrap().unwrap();
    for seq in 0..2000 {
        tx.send_to(&payload(seq, 0, 200), ("192.0.2.1", 48300)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rx);
    let to_backup = lab.sw.counters(&backup_port).unwrap().tx_packets - before;
    println!("two bonds on a switch: {to_backup} frames reached A's backup port while B sent 2000 datagrams to A");
    assert!(to_backup < 400, "B's traffic for A went to A's backup port: {to_backup} frames");
    // A's backup goes silent at the switch: A finds that link failed, and only that one; B's
    // links (which answered A's probes on it) stay healthy.
    lab.silence(&format!("a{}", backup.trim_start_matches("eth")));
    wait_until(Duration::from_secs(10), "A's silent member fails", || Daemon::member(&lab.a.status().unwrap(), backup)["usable"] == false);
    std::thread::sleep(Duration::from_millis(500));
    let s = lab.a.status().unwrap();
    assert_eq!(Daemon::member(&s, &act_a)["usable"], true, "A's active member is healthy: {s}");
    let s = lab.b.status().unwrap();
    assert!(["eth0", "eth1"].iter().all(|m| Daemon::member(&s, m)["usable"] == true), "B's members are healthy: {s}");
    assert!(pings(&lab.ns_a, "192.0.2.2"));
}
