//! Operating a running bond without losing packets: policy switches, reloads, members added
//! and removed, live options, events, metrics, the MTU, multicast groups, devices deleted.
//! (The daemon killed, restarted and adopting a bond: `restarts.rs`.)

use std::{fs, time::Duration};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Stream, losses, ping},
    wait_until,
};

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

fn member_names(status: &serde_json::Value) -> Vec<String> {
    status["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn policy_switches_reloads_and_member_changes_lose_nothing() {
    let lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 2).unwrap();
    let a = lab.a.daemon();
    let bond = lab.a.bond.as_str();
    let active = a.status().unwrap()["active"].as_str().unwrap().to_string();
    // One datagram every 500 µs for as long as the changes take (bounded: 40 000 = 20 s).
    let stream = Stream::start(&lab, Duration::from_micros(500), 40_000).unwrap();
    // Between steps the stream runs on for 300 ms worth of datagrams (600), all arrived at B.
    let pause = || stream.flowed(600, "between steps");
    pause();
    let mut steps = Vec::new();
    for policy in ["balance-rr", "balance-aware", "balance-xor", "active-backup"] {
        steps.push(a.ctl(&["set-policy", bond, policy]).unwrap());
        pause();
    }
    // The active member leaves (its traffic moves first), then comes back.
    steps.push(a.ctl(&["remove-link", bond, &active]).unwrap());
    pause();
    let s = a.status().unwrap();
    assert!(!member_names(&s).contains(&active), "{active} left: {s}");
    assert_ne!(s["active"], active.as_str());
    steps.push(a.ctl(&["add-link", bond, &active]).unwrap());
    pause();
    let s = a.status().unwrap();
    assert_eq!(Daemon::member(&s, &active)["usable"], true, "{active} is back and usable: {s}");

    // A reload that changes the policy and drops a member, then one back to the original.
    let path = lab.config_path(&lab.a);
    let original = fs::read_to_string(&path).unwrap();
    let changed =
        original.replace("policy: active-backup", "policy: balance-rr").replace("links: [eth0, eth1, eth2]", "links: [eth0, eth2]");
    assert_ne!(changed, original);
    fs::write(&path, &changed).unwrap();
    steps.push(a.ctl(&["reload", bond]).unwrap());
    pause();
    let s = a.status().unwrap();
    assert_eq!(s["policy"]["name"], "balance-rr");
    assert_eq!(member_names(&s), ["eth0", "eth2"], "{s}");
    fs::write(&path, &original).unwrap();
    steps.push(a.ctl(&["reload", bond]).unwrap());
    pause();
    let s = a.status().unwrap();
    assert_eq!(s["policy"]["name"], "active-backup");
    assert_eq!(member_names(&s).len(), 3);

    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = losses(sent, &got);
    println!("steps:\n{}", steps.join(""));
    println!("{lost} of {sent} datagrams lost (longest run {longest})");
    assert!(sent > 5_000, "the stream ran through the changes ({sent} sent)");
    assert_eq!(lost, 0, "no datagram lost; daemon log:\n{}", a.log());
    let events = a.ctl(&["events", bond]).unwrap();
    for what in ["policy active-backup -> balance-rr", &format!("member {active} removed"), &format!("member {active} added"), "(reload)"] {
        assert!(events.contains(what), "event {what:?} in:\n{events}");
    }
}

/// `GET /metrics` from inside A's namespace.
fn scrape(lab: &Lab, port: u16) -> String {
    use std::io::{Read, Write};
    lab.a
        .ns
        .enter(|| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .unwrap()
}

#[test]
fn metrics_endpoint_reports_members_and_failovers() {
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    let path = lab.config_path(&lab.a);
    let dir = lab.dir().to_path_buf();
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    // The namespace's own loopback: no port is shared with anything else.
    lab.a.ns.ip(&["link", "set", "lo", "up"]).unwrap();
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, &["--metrics", "127.0.0.1:9469"]).unwrap());
    ping(&lab, 1).unwrap();
    let bond = lab.a.bond.clone();
    let text = scrape(&lab, 9469);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        format!("node_bonding_slaves{{master=\"{bond}\"}} 3"),
        format!("node_bonding_active{{master=\"{bond}\"}} 3"),
        format!("bondctl_member_up{{bond=\"{bond}\",member=\"eth1\"}} 1"),
        format!("bondctl_bond_failovers_total{{bond=\"{bond}\"}} 0"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    let active = lab.a.daemon().status().unwrap()["active"].as_str().unwrap().to_string();
    lab.cut(active.trim_start_matches("eth").parse().unwrap()).unwrap();
    let after = [
        format!("node_bonding_active{{master=\"{bond}\"}} 2"),
        format!("bondctl_member_up{{bond=\"{bond}\",member=\"{active}\"}} 0"),
        format!("bondctl_member_link_failures_total{{bond=\"{bond}\",member=\"{active}\"}} 1"),
        format!("bondctl_bond_failovers_total{{bond=\"{bond}\"}} 1"),
    ];
    // Scraped until the failover shows (it did within 300 ms before; allowed 2 s now).
    let mut text = String::new();
    let _ = bond_tests::poll_until(Duration::from_secs(2), || {
        text = scrape(&lab, 9469);
        after.iter().all(|line| text.lines().any(|l| l == line))
    });
    for line in &after {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

/// Member of each test flow (by source port), from `bondctl flows --json`.
fn flow_members(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    let out = lab.a.daemon().ctl(&["flows", &lab.a.bond, "--top", "100", "--json"]).unwrap();
    let flows: serde_json::Value = serde_json::from_str(&out).unwrap();
    flows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["proto"] == "udp" && f["dst"].as_str().unwrap().ends_with(&format!(":{}", bond_tests::net::RX_PORT)))
        .map(|f| (f["src"].as_str().unwrap().to_string(), f["member"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn flows_stay_on_their_member_when_others_join_or_leave() {
    // flow-static. The flow table samples one packet in 16 per CPU: 160 datagrams a flow make
    // each flow's entry (and its member after a move) all but certain (1 - (15/16)^160).
    const PER_FLOW: u64 = 160;
    let settings = "balance-aware:\n  balancePolicy: flow-static";
    let lab = lab(LabOptions::default().policy("balance-aware").settings(settings));
    let a = lab.a.daemon();
    let bond = lab.a.bond.as_str();
    // Members join on the receiving side first and leave it last, so nothing is sent on a
    // link whose far end is not (or no longer) in the far bond.
    let on_both = |cmd: &str, link: &str| {
        let sides = [(a, bond), (lab.b.daemon(), lab.b.bond.as_str())];
        let order: Vec<_> = if cmd == "add-link" { sides.iter().rev().collect() } else { sides.iter().collect() };
        for (d, b) in order {
            d.ctl(&[cmd, b, link]).unwrap();
        }
    };
    on_both("remove-link", "eth2");
    ping(&lab, 1).unwrap();
    let flows = bond_tests::net::UdpFlows::new(&lab, 16, 41000).unwrap();
    flows.send(PER_FLOW, 64).unwrap();
    let before = flow_members(&lab);
    assert_eq!(before.len(), 16, "{before:?}");
    assert!(before.values().all(|m| m == "eth0" || m == "eth1"));

    on_both("add-link", "eth2");
    flows.send(PER_FLOW, 64).unwrap();
    assert_eq!(flow_members(&lab), before, "adding a member moves no flow");
    // ... and the new member carries new flows.
    let newer: Vec<std::net::UdpSocket> =
        lab.a.ns.enter(|| (0..16).map(|i| std::net::UdpSocket::bind((lab.a.addr, 42000 + i)).unwrap()).collect()).unwrap();
    for _ in 0..PER_FLOW {
        for s in &newer {
            bond_tests::net::send_retrying(s, &bond_tests::net::payload(0, 99, 64), flows.dst).unwrap();
        }
    }
    let all = flow_members(&lab);
    let on_eth2 = all.iter().filter(|(f, m)| !before.contains_key(*f) && *m == "eth2").count();
    assert!(on_eth2 >= 2, "new flows use eth2: {all:?}");

    // eth1 leaves: only its flows move.
    on_both("remove-link", "eth1");
    flows.send(PER_FLOW, 64).unwrap();
    let after = flow_members(&lab);
    for (flow, member) in &before {
        if member == "eth0" {
            assert_eq!(&after[flow], "eth0", "{flow} stays on eth0");
        } else {
            assert_ne!(&after[flow], "eth1", "{flow} left eth1");
        }
    }
    let got = flows.receive(Duration::from_millis(300));
    assert_eq!(got.len() as u64, 16 * 4 * PER_FLOW, "every datagram arrived");
}

#[test]
fn set_changes_live_options_without_loss_and_a_bad_option_changes_nothing() {
    let lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 2).unwrap();
    let a = lab.a.daemon();
    let bond = lab.a.bond.as_str();
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    stream.flowed(600, "before the change");
    let out = a.ctl(&["set", bond, "miimon=20", "updelay=300", "failoverInterval=600", "num_grat_arp=2"]).unwrap();
    assert!(out.contains("miimon=20 upDelay=300 failoverInterval=600 num_grat_arp=2"), "{out}");
    stream.flowed(600, "after the change");

    // Refused whole, with the reason: nothing of it is applied.
    for (opts, why) in [
        (&["miimon=10", "updelay=99999999"][..], "updelay: 99999999 ms is outside 0..=3600000"),
        (&["mimon=10"], "did you mean miimon?"),
        (&["mode=4"], "cannot be changed on a running bond"),
        (&["lacp_rate=fast"], "applies to 802.3ad"),
    ] {
        let mut args = vec!["set", bond];
        args.extend_from_slice(opts);
        let e = a.ctl(&args).expect_err("a bad option is refused");
        assert!(format!("{e:#}").contains(why), "{opts:?}: {e:#}");
    }
    let events = a.ctl(&["events", bond]).unwrap();
    assert_eq!(events.matches("set miimon").count(), 1, "only the good change is recorded:\n{events}");

    // The new updelay holds a recovered backup out for 300 ms (the file said 0).
    let s = a.status().unwrap();
    let active = s["active"].as_str().unwrap().to_string();
    let backup = (0..3).map(|i| format!("eth{i}")).find(|m| *m != active).unwrap();
    let i: usize = backup.trim_start_matches("eth").parse().unwrap();
    lab.cut(i).unwrap();
    wait_until(Duration::from_secs(2), "the backup is down", || Daemon::member(&a.status().unwrap(), &backup)["usable"] == false);
    lab.restore(i).unwrap();
    let took = wait_until(Duration::from_secs(3), "the backup is usable again", || {
        Daemon::member(&a.status().unwrap(), &backup)["usable"] == true
    });
    assert!(took >= Duration::from_millis(250), "usable again after {took:?}, before updelay's 300 ms");

    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    assert_eq!(lost, 0, "no datagram lost; daemon log:\n{}", a.log());
}

use bond_tests::cmd::Reaped;

#[test]
fn events_follow_streams_events_as_they_happen() {
    use std::io::BufRead;
    let lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 1).unwrap();
    let mut child = Reaped(
        std::process::Command::new(bond_tests::lab::bondctl())
            .args(["--netns", lab.a.ns.name(), "events", &lab.a.bond, "--follow", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // What happened before: the bond came up.
    let first: serde_json::Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(first["seq"], 1, "{first}");
    let active = lab.a.daemon().status().unwrap()["active"].as_str().unwrap().to_string();
    lab.cut(active.trim_start_matches("eth").parse().unwrap()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &serde_json::Value| e["kind"] == "active") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no failover event streamed; got {seen:?}"));
        seen.push(serde_json::from_str(&line).unwrap());
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "each event once, in order: {seqs:?}");
    assert!(seen.iter().any(|e| e["message"].as_str().unwrap().contains(&format!("{active} failed"))), "{seen:?}");
}

#[test]
fn the_bonds_mtu_reaches_its_members_and_jumbo_frames_pass() {
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 1).unwrap();
    let mtu = |ns: &bond_tests::Netns, dev: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
        v[0]["mtu"].as_u64().unwrap()
    };
    let original = mtu(&lab.a.ns, "eth0");
    // The wire between the sides carries jumbo frames too.
    let wire = lab.wire().expect("wire namespace");
    for i in 0..lab.links {
        for end in ["a", "b"] {
            wire.ip(&["link", "set", &format!("{end}{i}"), "mtu", "9000"]).unwrap();
        }
    }
    for side in [&lab.a, &lab.b] {
        side.ns.ip(&["link", "set", &side.bond, "mtu", "9000"]).unwrap();
    }
    for side in [&lab.a, &lab.b] {
        wait_until(Duration::from_secs(2), "every member takes the bond's MTU", || {
            (0..3).all(|i| mtu(&side.ns, &format!("eth{i}")) == 9000)
        });
    }
    let out = lab.a.ns.exec("ping", &["-q", "-c", "2", "-i", "0.1", "-W", "2", "-s", "8900", "-M", "do", bond_tests::lab::ADDR_B]).unwrap();
    assert!(out.contains("2 received"), "jumbo frames pass end to end unfragmented: {out}");
    // A clean stop gives the members their own MTU back.
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    assert!((0..3).all(|i| mtu(&lab.a.ns, &format!("eth{i}")) == original), "members have their own MTU back");
}

#[test]
fn members_receive_every_multicast_group_and_get_their_flags_back() {
    let mut lab = lab(LabOptions::default().policy("balance-xor"));
    let allmulti = |ns: &bond_tests::Netns, dev: &str| -> bool {
        let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
        v[0]["flags"].as_array().unwrap().iter().any(|f| f == "ALLMULTI")
    };
    // A NIC filters multicast in hardware: groups the bond joins (IPv6 neighbour discovery,
    // `ip maddr add`) reach it only through members that receive every group.
    for i in 0..lab.links {
        assert!(allmulti(&lab.a.ns, &format!("eth{i}")), "eth{i} receives all multicast while a member");
    }
    assert!(!allmulti(&lab.a.ns, &lab.a.bond), "the bond device itself keeps its own flags");
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    for i in 0..lab.links {
        assert!(!allmulti(&lab.a.ns, &format!("eth{i}")), "eth{i} has its own flags back");
    }
}

fn ifindex(ns: &bond_tests::Netns, dev: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
    v[0]["ifindex"].as_u64().unwrap()
}

#[test]
fn a_member_whose_device_is_deleted_is_released_and_taken_back_when_it_appears_again() {
    let lab = lab(LabOptions::default().policy("balance-xor").direct());
    ping(&lab, 1).unwrap();
    let before = ifindex(&lab.a.ns, "eth2");
    // A driver reset, a VF re-created, a USB NIC replugged: the device goes (both ends of the
    // veth pair, so both bonds see it) ...
    lab.a.ns.ip(&["link", "del", "eth2"]).unwrap();
    for side in [&lab.a, &lab.b] {
        wait_until(Duration::from_secs(3), "the vanished member is released", || {
            let s = side.daemon().status().unwrap();
            let m = Daemon::member(&s, "eth2");
            m["usable"] == false && m["not_usable"].as_str().is_some_and(|r| r.contains("deleted"))
        });
    }
    let status = lab.a.daemon().status().unwrap();
    assert!(Daemon::event_ms_after(&status, "eth2: its device was deleted", std::time::UNIX_EPOCH).is_some(), "an event says so");
    assert!(!lab.a.pins().join("link_ingress_eth2").exists(), "no pinned program link is left for the deleted device");
    ping(&lab, 2).unwrap();
    // A device of its name but the wrong kind is refused with an event; the bond runs on.
    lab.a.ns.ip(&["link", "add", "eth2", "type", "bridge"]).unwrap();
    lab.a.ns.ip(&["link", "set", "eth2", "up"]).unwrap();
    wait_until(Duration::from_secs(3), "a warning about the wrong kind of device", || {
        let s = lab.a.daemon().status().unwrap();
        Daemon::event_ms_after(&s, "eth2 appeared again but could not be taken back", std::time::UNIX_EPOCH).is_some()
    });
    ping(&lab, 1).unwrap();
    lab.a.ns.ip(&["link", "del", "eth2"]).unwrap();
    // ... and comes back under the same name with a new ifindex.
    lab.a.ns.ip(&["link", "add", "eth2", "type", "veth", "peer", "name", "eth2", "netns", lab.b.ns.name()]).unwrap();
    lab.a.ns.ip(&["link", "set", "eth2", "up"]).unwrap();
    lab.b.ns.ip(&["link", "set", "eth2", "up"]).unwrap();
    let after = ifindex(&lab.a.ns, "eth2");
    assert_ne!(before, after, "the new device is another one");
    for side in [&lab.a, &lab.b] {
        wait_until(Duration::from_secs(5), "the member is taken back on its new device", || {
            let s = side.daemon().status().unwrap();
            let m = Daemon::member(&s, "eth2");
            m["usable"] == true && m["ifindex"].as_u64() == Some(ifindex(&side.ns, "eth2"))
        });
    }
    assert_eq!(lab.a.ns.link_macs(lab.links)[2], lab.a.ns.link_macs(lab.links)[0], "the new device has the bond's MAC address");
    assert!(lab.a.pins().join("link_ingress_eth2").exists(), "and its receive program");
    // Traffic uses it again: flows spread over all three members reach B on eth2 too.
    let rx = |lab: &Lab| lab.b_member_counters().unwrap()[2].rx_packets;
    let from = rx(&lab);
    let flows = bond_tests::net::UdpFlows::new(&lab, 16, 47000).unwrap();
    flows.send(20, 64).unwrap();
    let got = flows.receive(Duration::from_millis(300));
    assert_eq!(got.len(), 16 * 20, "every datagram arrives");
    assert!(rx(&lab) > from + 10, "eth2 carries its share again");
    let status = lab.a.daemon().status().unwrap();
    assert!(Daemon::event_ms_after(&status, "member eth2 is back", std::time::UNIX_EPOCH).is_some(), "an event says so");
}

#[test]
fn deleting_the_bond_device_stops_that_bond_with_an_error_and_restores_its_members() {
    let mut lab = lab(LabOptions::default().policy("active-backup").direct());
    ping(&lab, 1).unwrap();
    let bond_mac = lab.a.ns.link_macs(lab.links)[0].clone();
    lab.a.ns.ip(&["link", "del", &lab.a.bond]).unwrap();
    let d = lab.a.daemon.as_mut().unwrap();
    let exited = bond_tests::poll_until(Duration::from_secs(5), || d.try_exit().is_some());
    assert!(exited.is_ok(), "the daemon stops:\n{}", d.log());
    let status = d.try_exit().unwrap();
    assert!(!status.success(), "with an error a supervisor sees");
    assert!(d.log().contains("deleted from outside"), "saying why:\n{}", d.log());
    assert!(!lab.a.pins().exists(), "no program is left redirecting into the deleted device");
    // The bond took eth0's address: eth0 has it back as its own, the others theirs.
    let now = lab.a.ns.link_macs(lab.links);
    assert!(now[0] == bond_mac && now[1..].iter().all(|m| *m != bond_mac), "members have their own MAC addresses back: {now:?}");
}
