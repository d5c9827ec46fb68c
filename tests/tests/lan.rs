//! A bond on a shared LAN (`bond_tests::lan`): what plain hosts behind the switch receive of
//! it, bonding's behaviour for a bond configured the bonding.ko way, multicast following a
//! failover behind a snooping switch, and the bond's MAC address changed while it runs.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddrV6, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bond_tests::{
    Netns,
    lan::{Lan, LanOptions, bond_addr, count, host_addr},
    wait_until,
};

fn lan(o: LanOptions) -> Lan {
    Lan::start(o).unwrap_or_else(|e| panic!("starting the LAN: {e:#}"))
}

fn events(s: &serde_json::Value) -> String {
    s["events"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join("\n")
}

/// Counts probe frames (EtherType 0x88b5) and all frames arriving at plain host `i`.
fn count_at_host(lan: &Lan, i: usize) {
    Lan::count_on(&lan.hosts[i], lan.dir(), "probes", "eth0", "ether type 0x88b5").unwrap();
    Lan::count_on(&lan.hosts[i], lan.dir(), "frames", "eth0", "").unwrap();
}

/// A bond configured with bonding.ko's options (`mode=active-backup miimon=100`) sends nothing
/// bonding.ko would not: no probe frame reaches the other hosts of the segment, and a member
/// that flaps is used again as soon as its carrier is back (no punishment).
#[test]
fn a_bond_configured_the_bonding_way_is_quiet_and_punishes_nothing() {
    let lan =
        lan(LanOptions { bonds: vec![2], hosts: 1, bond_lines: vec!["mode: active-backup\nmiimon: 100".into()], ..Default::default() });
    // Counted from a second after the start, once the daemon's own start is done.
    std::thread::sleep(Duration::from_secs(1));
    count_at_host(&lan, 0);
    Lan::count_on(&lan.hosts[0], lan.dir(), "arps", "eth0", "ether type arp").unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let (probes, all) = (count(&lan.hosts[0], "probes").unwrap(), count(&lan.hosts[0], "frames").unwrap());
    let arp = count(&lan.hosts[0], "arps").unwrap();
    let status = lan.daemon(0).status().unwrap();
    println!("idle 6 s: the host received {probes} probe frames, {all} frames in all ({arp} ARP)");
    assert_eq!(probes, 0, "no peer probes from a bond of bonding's options");
    assert_eq!(all, 0, "nothing at all while idle ({arp} ARP); the bond's events:\n{}", events(&status));
    assert!(status["probes"].is_null(), "status says no probes go out: {status}");

    // The backup's cable flaps six times in ten seconds.
    let backup = if status["active"] == "eth0" { 1 } else { 0 };
    let port = Lan::port(0, backup);
    for _ in 0..6 {
        lan.sw.ip(&["link", "set", &port, "down"]).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        lan.sw.ip(&["link", "set", &port, "up"]).unwrap();
        std::thread::sleep(Duration::from_millis(800));
    }
    let took = wait_until(Duration::from_secs(2), "the flapping backup is usable again", || {
        let s = lan.daemon(0).status().unwrap();
        s["members"][backup]["usable"] == true
    });
    let s = lan.daemon(0).status().unwrap();
    println!("usable {took:?} after its last flap; link failures {}", s["members"][backup]["link_failures"]);
    assert!(!events(&s).contains("punish"), "bonding punishes nothing: {}", events(&s));
    assert_eq!(s["members"][backup]["punished_ms"], 0);
}

/// A ZeroTier-style bond with no peer on the segment: discovery broadcasts, a probe per member
/// every third of `failoverInterval`, then after 30 s one per member every 10 s, said in its
/// status. (What the manual's table of a segment's frames per second rests on.)
#[test]
fn probes_with_no_peer_quiet_down_to_one_discovery_frame_per_member_every_10_s() {
    let lan = lan(LanOptions {
        bonds: vec![2],
        hosts: 1,
        bond_lines: vec!["policy: zt".into()],
        settings: "policies:\n  zt: { basePolicy: active-backup }".into(),
        ..Default::default()
    });
    count_at_host(&lan, 0);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let early = count(&lan.hosts[0], "probes").unwrap();
    println!("first 10 s: {early} probe frames at the host ({:.2}/s)", early as f64 / 10.0);
    assert!((8..=20).contains(&early), "about one per member every 1.7 s while discovering: {early}");
    std::thread::sleep(Duration::from_secs(32).saturating_sub(start.elapsed()));
    let before = count(&lan.hosts[0], "probes").unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let quiet = count(&lan.hosts[0], "probes").unwrap() - before;
    println!("after 32 s, 20 s: {quiet} probe frames at the host ({:.2}/s)", quiet as f64 / 20.0);
    assert!(quiet <= 2 * 2 + 1, "at most one per member every 10 s: {quiet}");
    let status = lan.daemon(0).status().unwrap();
    let p = status["probes"].as_str().unwrap_or_default().to_string();
    assert!(p.contains("no peer bond has answered") && p.contains("every 10 s"), "{p}");
}

/// Two ZeroTier-style bonds on one segment find each other by broadcast and then probe each
/// other by unicast: the switch delivers those to the peer's port alone, so the other hosts
/// receive (next to) nothing; with a shared `probeKey` each still measures its links.
#[test]
fn peer_bonds_probe_each_other_by_unicast_and_other_hosts_hear_nothing() {
    let zt = "policy: zt\nprobeKey: a shared secret of the two bonds".to_string();
    let lan = lan(LanOptions {
        bonds: vec![2, 2],
        hosts: 1,
        bond_lines: vec![zt.clone(), zt],
        settings: "policies:\n  zt: { basePolicy: active-backup, failoverInterval: 1500 }".into(),
        ..Default::default()
    });
    wait_until(Duration::from_secs(10), "both bonds probe their peer by unicast", || {
        (0..2).all(|n| {
            let s = lan.daemon(n).status().unwrap();
            s["probes"] == "to the peer bond, by unicast" && s["members"].as_array().unwrap().iter().all(|m| m["probe_peer"].is_string())
        })
    });
    // The switch has learnt every probe address by now.
    std::thread::sleep(Duration::from_secs(1));
    count_at_host(&lan, 0);
    std::thread::sleep(Duration::from_secs(10));
    let probes = count(&lan.hosts[0], "probes").unwrap();
    let s = lan.daemon(0).status().unwrap();
    let answered: Vec<u64> = s["members"].as_array().unwrap().iter().map(|m| m["rx_probes"].as_u64().unwrap()).collect();
    println!(
        "10 s of two bonds probing each other (2 members each, 1.5 s interval): the host received {probes} probe frames; replies {answered:?}"
    );
    assert!(probes <= 2, "unicast probes reach the peer's port only: {probes}");
    assert!(answered.iter().all(|&a| a >= 10), "every link measured: {answered:?}");
    assert!(s["members"].as_array().unwrap().iter().all(|m| m["probe_errors"] == 0), "keyed replies all check out: {s}");
}

/// Datagrams to `group`, a steady stream from host 0 while `running`: (sent by the thread).
fn stream(lan: &Lan, group: std::net::SocketAddr, running: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let host = lan.hosts[0].name().to_string();
    let src = host_addr(0);
    std::thread::spawn(move || {
        let tx = bond_tests::ns::enter_named(&host, || {
            if group.is_ipv4() { UdpSocket::bind((src.as_str(), 0)) } else { UdpSocket::bind("[::]:0") }
        })
        .unwrap()
        .unwrap();
        let mut sent = 0u64;
        while running.load(Ordering::Relaxed) {
            if let Err(e) = tx.send_to(&sent.to_be_bytes(), group)
                && sent == 0
            {
                eprintln!("sending to {group}: {e}");
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    })
}

/// Whether datagrams arrive on `rx` within `within`; the time the first took.
fn arrives(rx: &UdpSocket, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    // Drain what arrived before.
    rx.set_nonblocking(true).unwrap();
    while rx.recv(&mut buf).is_ok() {}
    rx.set_nonblocking(false).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while start.elapsed() < within {
        if rx.recv(&mut buf).is_ok() {
            return Some(start.elapsed());
        }
    }
    None
}

/// The switch drops its own queries towards the bond's ports: on a carrier change a Linux
/// bridge queries every port at once, which would hide a missing report (only the bond's
/// report may move the groups here).
fn drop_queries_to_the_bond(lan: &Lan, ports: &[String]) {
    let names: Vec<String> = ports.iter().map(|p| format!("\"{p}\"")).collect();
    let set = names.join(", ");
    let script = format!(
        "table bridge noquery {{\n chain out {{ type filter hook output priority 0;\n  oifname {{ {set} }} igmp type membership-query drop;\n  oifname {{ {set} }} icmpv6 type mld-listener-query drop;\n }}\n}}\n"
    );
    let path = lan.dir().join("noquery.nft");
    std::fs::write(&path, script).unwrap();
    lan.sw.exec("nft", &["-f", &path.to_string_lossy()]).unwrap();
}

/// `resend_igmp` (bonding's, default 1): after a failover behind a snooping switch that
/// floods no unregistered multicast and whose queries do not reach the bond, a joined IPv4 and
/// IPv6 group is received again within 2 s only because the new active member sent the
/// bond's membership reports; with `resend_igmp: 0` it is not (the switch would wait for its
/// next query, minutes on many).
#[test]
fn a_snooping_switch_moves_the_bonds_groups_at_a_failover_with_resend_igmp() {
    for resend in [1, 0] {
        let lan = lan(LanOptions {
            bonds: vec![2],
            hosts: 1,
            bond_lines: vec![format!("mode: active-backup\nmiimon: 10\nresend_igmp: {resend}\nprimary: eth0")],
            ipv6: true,
            snooping: Some(600),
            ..Default::default()
        });
        let ports = [Lan::port(0, 0), Lan::port(0, 1)];
        for p in &ports {
            lan.sw.exec("bridge", &["link", "set", "dev", p, "mcast_flood", "off"]).unwrap();
        }
        drop_queries_to_the_bond(&lan, &ports);
        let b = &lan.bonds[0];
        let ifindex: u32 = b
            .ip(&["-j", "link", "show", "bond0"])
            .map(|o| serde_json::from_str::<serde_json::Value>(&o).unwrap()[0]["ifindex"].as_u64().unwrap() as u32)
            .unwrap();
        wait_until(Duration::from_secs(5), "the bond's link-local address is ready", || {
            b.ip(&["-6", "addr", "show", "dev", "bond0", "scope", "link"]).is_ok_and(|o| o.contains("fe80") && !o.contains("tentative"))
        });
        let group4 = Ipv4Addr::new(239, 1, 1, 1);
        let group6: Ipv6Addr = "ff0e::1:1".parse().unwrap();
        let rx4 = b.enter(|| UdpSocket::bind(("0.0.0.0", 45001))).unwrap().unwrap();
        rx4.join_multicast_v4(&group4, &bond_addr(0).parse().unwrap()).unwrap();
        let rx6 = b.enter(|| UdpSocket::bind("[::]:45002")).unwrap().unwrap();
        rx6.join_multicast_v6(&group6, ifindex).unwrap();
        wait_until(Duration::from_secs(5), "the switch learnt both groups on eth0's port", || {
            let mdb = lan.sw.exec("bridge", &["mdb", "show"]).unwrap_or_default();
            mdb.contains(&format!("port {} grp 239.1.1.1", ports[0])) && mdb.contains(&format!("port {} grp ff0e::1:1", ports[0]))
        });
        lan.wait_for_snooping();
        let running = Arc::new(AtomicBool::new(true));
        let host_if = lan.hosts[0].ip(&["-j", "link", "show", "eth0"]).unwrap();
        let host_if = serde_json::from_str::<serde_json::Value>(&host_if).unwrap()[0]["ifindex"].as_u64().unwrap() as u32;
        let t4 = stream(&lan, (group4, 45001).into(), running.clone());
        let t6 = stream(&lan, SocketAddrV6::new(group6, 45002, 0, host_if).into(), running.clone());
        let (flow4, flow6) = (arrives(&rx4, Duration::from_secs(2)), arrives(&rx6, Duration::from_secs(2)));
        assert!(
            flow4.is_some() && flow6.is_some(),
            "the streams flow: {flow4:?} {flow6:?}\n{}\n{}\n{}",
            lan.sw.exec("bridge", &["mdb", "show"]).unwrap_or_default(),
            lan.sw.ip(&["-s", "link", "show", &ports[0]]).unwrap_or_default(),
            lan.hosts[0].ip(&["-s", "link", "show", "eth0"]).unwrap_or_default()
        );

        // eth0's cable is cut at the switch (its port and its groups go): eth1 takes over.
        lan.sw.ip(&["link", "set", &ports[0], "down"]).unwrap();
        let (back4, back6) = (arrives(&rx4, Duration::from_secs(3)), arrives(&rx6, Duration::from_secs(3)));
        running.store(false, Ordering::Relaxed);
        let (sent4, sent6) = (t4.join().unwrap(), t6.join().unwrap());
        let s = lan.daemon(0).status().unwrap();
        println!("resend_igmp {resend}: IPv4 group back after {back4:?}, IPv6 after {back6:?} ({sent4}/{sent6} sent)");
        assert_eq!(s["active"], "eth1", "{s}");
        if resend > 0 {
            assert!(back4.is_some_and(|t| t < Duration::from_secs(2)), "IPv4 multicast again within 2 s: {back4:?}");
            assert!(back6.is_some_and(|t| t < Duration::from_secs(2)), "IPv6 multicast again within 2 s: {back6:?}");
            assert!(events(&s).contains("membership reports for the bond's multicast groups sent on eth1"), "{}", events(&s));
        } else {
            assert!(back4.is_none() && back6.is_none(), "without reports the switch has no port for the groups: {back4:?} {back6:?}");
        }
    }
}

fn link_mac(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-j", "link", "show", dev]).unwrap();
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["address"].as_str().unwrap().to_string()
}

fn host_entry(lan: &Lan) -> Option<String> {
    let out = lan.hosts[0].ip(&["-j", "neigh", "show", &bond_addr(0), "dev", "eth0"]).ok()?;
    serde_json::from_str::<serde_json::Value>(&out).ok()?[0]["lladdr"].as_str().map(str::to_string)
}

/// The bond's MAC address: set by `macaddress`, then changed on the running bond by `ip link
/// set bond0 address` and by `bondctl set bond0 macaddress=`, each time with bonding's
/// consequences: the members carry it, hosts learn it from the bond's gratuitous ARP without
/// asking, the switch learns it on the active member's port; a multicast address is refused
/// and changes nothing.
#[test]
fn the_bonds_mac_address_is_set_and_changed_while_it_runs() {
    let lan = lan(LanOptions {
        bonds: vec![2],
        hosts: 1,
        bond_lines: vec!["mode: active-backup\nmiimon: 50\nmacaddress: 02:11:22:33:44:01".into()],
        ..Default::default()
    });
    let b = &lan.bonds[0];
    assert_eq!(link_mac(b, "bond0"), "02:11:22:33:44:01");
    lan.hosts[0].exec("ping", &["-q", "-c", "1", "-W", "2", &bond_addr(0)]).unwrap();
    assert_eq!(host_entry(&lan).as_deref(), Some("02:11:22:33:44:01"));
    // The host's entry stays fresh for the checks below (it learns only from announcements).
    for (how, mac) in [("ip link set", "02:11:22:33:44:02"), ("bondctl set", "02:11:22:33:44:03")] {
        let t = Instant::now();
        if how == "ip link set" {
            b.ip(&["link", "set", "bond0", "address", mac]).unwrap();
        } else {
            let out = lan.daemon(0).ctl(&["set", "bond0", &format!("macaddress={mac}")]).unwrap();
            assert!(out.contains("macaddress"), "{out}");
        }
        wait_until(Duration::from_secs(2), &format!("{how}: members carry {mac}"), || {
            link_mac(b, "eth0") == mac && link_mac(b, "eth1") == mac && link_mac(b, "bond0") == mac
        });
        wait_until(Duration::from_secs(2), &format!("{how}: the host learnt {mac} from the bond's announcement"), || {
            host_entry(&lan).as_deref() == Some(mac)
        });
        println!("{how}: members and the host have {mac} after {:?}", t.elapsed());
        lan.hosts[0].exec("ping", &["-q", "-c", "1", "-W", "2", &bond_addr(0)]).unwrap();
        let s = lan.daemon(0).status().unwrap();
        assert_eq!(s["mac"], mac);
        assert!(events(&s).contains(&format!("the bond's MAC address is {mac}")), "{}", events(&s));
    }
    let e = lan.daemon(0).ctl(&["set", "bond0", "macaddress=01:00:5e:00:00:01"]).unwrap_err().to_string();
    assert!(e.contains("multicast"), "{e}");
    assert_eq!(link_mac(b, "bond0"), "02:11:22:33:44:03", "nothing changed");
}

/// A bond an earlier version made on an `ifb` device keeps working when this version takes it
/// (and adopts it after a SIGKILL), but an ifb refuses a new address: `bondctl set` says so and
/// what to do, and nothing changes.
#[test]
fn an_earlier_versions_ifb_bond_is_taken_over_and_its_address_change_refused_with_the_way_out() {
    let mut lan = lan(LanOptions {
        bonds: vec![2],
        hosts: 1,
        bond_lines: vec!["mode: active-backup".into()],
        legacy_ifb: true,
        ..Default::default()
    });
    let kind = |lan: &Lan| lan.bonds[0].ip(&["-d", "link", "show", "bond0"]).unwrap();
    assert!(kind(&lan).contains("ifb"), "{}", kind(&lan));
    lan.hosts[0].exec("ping", &["-q", "-c", "1", "-W", "2", &bond_addr(0)]).unwrap();
    let before = link_mac(&lan.bonds[0], "bond0");
    let e = lan.daemon(0).ctl(&["set", "bond0", "macaddress=02:11:22:33:44:09"]).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains("ifb") && e.contains("bondctl down bond0"), "{e}");
    assert_eq!(link_mac(&lan.bonds[0], "bond0"), before, "nothing changed");
    // SIGKILL and a new daemon: the ifb bond is adopted and forwards.
    let mut old = lan.daemons[0].take().unwrap();
    old.kill().unwrap();
    old.hand_over();
    let config = lan.dir().join("bond0.yaml");
    lan.daemons[0] = Some(bond_tests::Daemon::start(&lan.bonds[0], &config, "bond0", lan.dir()).unwrap());
    let s = lan.daemon(0).status().unwrap_or_else(|e| panic!("{e:#}\n{}", lan.daemon(0).log()));
    assert!(events(&s).contains("adopted the running bond"), "{}", events(&s));
    assert!(kind(&lan).contains("ifb"));
    lan.hosts[0].exec("ping", &["-q", "-c", "1", "-W", "2", &bond_addr(0)]).unwrap();
}

/// `lacp_strict` behind an ordinary switch, as the kernel's `bond_lacp_strict.sh` sets it up:
/// a Linux bridge never forwards LACPDUs (01:80:c2:00:00:02 is link-local), so the 802.3ad
/// bond hears no partner on either member while their carrier is up. Off (bonding's default):
/// one member carries traffic anyway and a host behind the switch reaches the bond; on (set
/// live): nothing is carried and the bond device is not running; off again: reachable again.
#[test]
fn lacp_strict_decides_whether_a_bond_behind_a_bridge_without_lacp_carries_traffic() {
    let lan = lan(LanOptions { bonds: vec![2], hosts: 1, bond_lines: vec!["mode: 802.3ad\nlacp_rate: fast".into()], ..Default::default() });
    let ping = |lan: &Lan| lan.hosts[0].exec("ping", &["-q", "-c", "1", "-W", "1", &bond_addr(0)]).is_ok();
    let operstate = |lan: &Lan| {
        let out = lan.bonds[0].ip(&["-j", "link", "show", "bond0"]).unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["operstate"].as_str().unwrap_or("").to_string()
    };
    let took = wait_until(Duration::from_secs(10), "lacp_strict off: the host reaches the bond with no LACP partner", || ping(&lan));
    let s = lan.daemon(0).status().unwrap();
    let ports = s["lacp"]["ports"].as_array().unwrap();
    assert!(ports.iter().all(|p| p["rx_state"] != "current"), "the bridge passed no LACPDU: {s:#}");
    println!("lacp_strict off: reachable {took:?} after the start, no port hearing a partner; bond {}", operstate(&lan));
    assert_eq!(operstate(&lan), "UP");

    lan.daemon(0).ctl(&["set", "bond0", "lacp_strict=on"]).unwrap();
    let took = wait_until(Duration::from_secs(3), "lacp_strict on: the bond is not running", || operstate(&lan) != "UP");
    let reached = (0..3).filter(|_| ping(&lan)).count();
    println!("lacp_strict on: not running {took:?} after the set ({}); {reached} of 3 pings answered", operstate(&lan));
    assert_eq!(reached, 0, "lacp_strict on: nothing carried without a LACP partner");

    lan.daemon(0).ctl(&["set", "bond0", "lacp_strict=off"]).unwrap();
    let took = wait_until(Duration::from_secs(5), "lacp_strict off again: the host reaches the bond", || ping(&lan));
    println!("lacp_strict off again: reachable {took:?} after the set");
    assert_eq!(operstate(&lan), "UP");
}
