//! 802.3ad against an independent implementation: Open vSwitch, run entirely in user space
//! (`datapath_type=netdev`) in side B's namespace, with an LACP bond over B's ends of the links.

use std::time::{Duration, Instant};

use bond_tests::{Daemon, Lab, LabOptions, net::ping, ovs::Ovs};
use serde_json::Value;

fn wait_for(d: &Daemon, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let st = d.status().expect("status");
        if pred(&st) {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; status:\n{st:#}\nlog:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pings B until it answers (Open vSwitch enables a negotiated member on its own schedule).
fn reachable(lab: &Lab, within: Duration) {
    let start = Instant::now();
    while ping(lab, 3).is_err() {
        assert!(start.elapsed() < within, "B does not answer pings within {within:?}");
    }
    println!("B answers {:?} after we see the aggregate", start.elapsed());
}

fn distributing(s: &Value, name: &str) -> bool {
    let port = s["lacp"]["ports"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name));
    port.is_some_and(|p| p["mux_state"] == "collecting_distributing") && Daemon::member(s, name)["usable"] == true
}

/// A lab whose side B is Open vSwitch with an active LACP bond (fast rate, balance-tcp) over
/// its three links, and our 802.3ad bond on side A; returns once every port distributes.
fn ovs_lab() -> (Lab, Ovs, Duration) {
    ovs_lab_at("fast")
}

/// As [`ovs_lab`], both sides at LACP rate `rate` (`fast` or `slow`).
fn ovs_lab_at(rate: &str) -> (Lab, Ovs, Duration) {
    let lines = format!("mode: 802.3ad\nlacp_rate: {rate}");
    let lab = Lab::start(LabOptions::default().links(3).policy("").bond_lines(&lines).no_bond_b()).unwrap();
    let ovs = ovs_bond(&lab, &[&format!("other_config:lacp-time={rate}")]);
    let took = wait_for(lab.a.daemon(), Duration::from_secs(20), "negotiated with Open vSwitch", |s| {
        (0..3).all(|i| distributing(s, &format!("eth{i}")))
    });
    (lab, ovs, took)
}

/// Open vSwitch on side B of `lab`: bridge br0 (192.0.2.2) with an active LACP bond over B's
/// three links (balance-tcp), with `port_settings` on the bond's port.
fn ovs_bond(lab: &Lab, port_settings: &[&str]) -> Ovs {
    if !bond_tests::ovs::installed() {
        panic!("Open vSwitch is not installed (apt-get install openvswitch-switch; `cargo xtask setup` does it)");
    }
    // The user-space datapath leaves B's kernel stack on the members too: without arp_ignore it
    // would answer ARP for br0's address from a member's own MAC, which Open vSwitch does not
    // deliver to br0.
    lab.b.ns.sysctl("net.ipv4.conf.all.arp_ignore", "1").unwrap();
    let ovs = Ovs::start(&lab.b.ns, lab.dir()).unwrap();
    ovs.vsctl(&["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"]).unwrap();
    let mut args =
        vec!["add-bond", "br0", "lag", "eth0", "eth1", "eth2", "lacp=active", "--", "set", "port", "lag", "bond_mode=balance-tcp"];
    args.extend_from_slice(port_settings);
    ovs.vsctl(&args).unwrap();
    lab.b.ns.ip(&["addr", "add", "192.0.2.2/24", "dev", "br0"]).unwrap();
    lab.b.ns.ip(&["link", "set", "br0", "up"]).unwrap();
    // Open vSwitch's user-space datapath does not complete partial checksums: A's stack
    // computes them whole (ICMP is always whole; UDP and TCP would be dropped at br0).
    lab.a.ns.exec("ethtool", &["-K", &lab.a.bond, "tx", "off"]).unwrap();
    ovs
}

#[test]
fn interoperates_with_open_vswitch() {
    let (lab, ovs, took) = ovs_lab();
    println!("LACP with Open vSwitch: every port distributing after {took:?}");
    let st = lab.a.daemon().status().unwrap();
    let ours = st["lacp"]["system"].as_str().unwrap().to_string();
    let show = ovs.appctl(&["lacp/show", "lag"]).unwrap();
    println!("{show}");
    assert!(show.contains(&ours), "Open vSwitch sees our system id {ours} as its partner:\n{show}");
    assert!(show.contains("status: active negotiated"), "Open vSwitch negotiated:\n{show}");
    reachable(&lab, Duration::from_secs(10));

    // A member cut leaves the aggregate on both sides and comes back.
    lab.cut(2).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(3), "eth2 out", |s| !distributing(s, "eth2") && distributing(s, "eth0"));
    ping(&lab, 3).unwrap();
    lab.restore(2).unwrap();
    let back = wait_for(lab.a.daemon(), Duration::from_secs(15), "eth2 back", |s| distributing(s, "eth2"));
    println!("LACP with Open vSwitch: a restored member distributes again after {back:?}");
    ping(&lab, 3).unwrap();
    drop(ovs);
}

/// Datagrams from B (Open vSwitch's br0) to A over 16 flows, which balance-tcp spreads over
/// its members: 1,400 bytes each, so a rebalancing has load to move (Open vSwitch moves a flow
/// only where its members' loads differ by 100,000 bytes or more).
fn send_from_b(lab: &Lab, per_flow: u64) {
    let sockets: Vec<std::net::UdpSocket> =
        lab.b.ns.enter(|| (0..16).map(|i| std::net::UdpSocket::bind(("192.0.2.2", 41000 + i)).unwrap()).collect()).unwrap();
    for _ in 0..per_flow {
        for s in &sockets {
            let _ = s.send_to(&[0x5a; 1400], ("192.0.2.1", 9));
        }
    }
}

/// UDP datagrams to port 9 that came out of Open vSwitch's member on link `i`, as the wire
/// saw them (captured on the wire's end facing B).
fn udp_from_b_on_link(capture: &bond_tests::net::Capture) -> usize {
    capture.frames().iter().filter(|f| f.len() >= 38 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == [0, 9]).count()
}

#[test]
fn a_removed_member_is_given_up_by_open_vswitch_at_once_and_a_restart_loses_nothing() {
    let (mut lab, ovs, _) = ovs_lab();
    reachable(&lab, Duration::from_secs(10));
    let wire = lab.wire().expect("wire namespace");
    // Before: Open vSwitch sends some of the 16 flows on link 2 (once it has enabled the link
    // for the bond: reachable over the aggregate does not say every member is in it yet). Flows
    // it placed before then stay on the other members until it rebalances, every 10 s by
    // default: every second here, so the wait is short.
    ovs.vsctl(&["set", "port", "lag", "other_config:bond-rebalance-interval=1000"]).unwrap();
    let capture = bond_tests::net::Capture::open(wire, "b2").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut before = 0;
    while before == 0 && std::time::Instant::now() < deadline {
        send_from_b(&lab, 20);
        std::thread::sleep(Duration::from_millis(200));
        before = udp_from_b_on_link(&capture);
    }
    assert!(before > 0, "Open vSwitch uses link 2 before the removal:\n{}", ovs.appctl(&["lacp/show", "lag"]).unwrap_or_default());

    // Hitless restart: SIGKILL under a stream, a new daemon takes the aggregate over. It takes
    // 3.5 s to load its programs, as on a busy host: longer than Open vSwitch's fast-rate
    // timeout, so the old daemon's LACPDUs must go on meanwhile.
    let dropped_before = ovs.receive_drops().unwrap();
    let restart = bond_tests::net::kill_and_restart_under_stream(&mut lab, Duration::from_millis(3500)).unwrap();
    let dropped = ovs.receive_drops().unwrap() - dropped_before;
    println!("802.3ad against Open vSwitch, kill and restart: {restart:?}; Open vSwitch's sockets dropped {dropped} frames");
    let show = ovs.appctl(&["lacp/show", "lag"]).unwrap();
    let context = || format!("Open vSwitch:\n{show}\nits log:\n{}\nour log:\n{}", ovs.log_tail(40), lab.a.daemon().log());
    // Our side: every datagram went out on a link, through the kill and the takeover.
    assert_eq!(restart.lost_by_a, 0, "A's bond sent every datagram across the restart; {}", context());
    // Open vSwitch's side: had it timed our links out (no LACPDU for 3 s), it would have
    // dropped the stream for seconds. What it may lose instead is its own: its user-space
    // datapath reads each port by a packet socket with a 208 KiB buffer (about 130 ms of this
    // stream), which a busy host's stall of ovs-vswitchd overflows. Those drops are counted.
    assert!(
        restart.lost <= dropped,
        "Open vSwitch lost {} of {} datagrams, only {dropped} of them by its full sockets; {}",
        restart.lost,
        restart.sent,
        context()
    );

    // Clean exit: after remove-link, Open vSwitch stops sending on that link within a second.
    lab.a.daemon().ctl(&["remove-link", &lab.a.bond, "eth2"]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let _ = capture.frames();
    send_from_b(&lab, 20);
    std::thread::sleep(Duration::from_millis(200));
    let after = udp_from_b_on_link(&capture);
    let show = ovs.appctl(&["lacp/show", "lag"]).unwrap();
    println!("Open vSwitch on link 2: {before} datagrams before remove-link, {after} one second after");
    assert_eq!(after, 0, "Open vSwitch no longer sends on the removed member's link:\n{show}");
    drop(ovs);
}

#[test]
fn open_vswitch_interop_cuts_on_either_side_rates_and_a_vswitchd_restart() {
    // Fast rate: a member cut on Open vSwitch's side (its end goes down; our carrier stays) is
    // taken out by LACP's 3 s timeout; ovs-vswitchd restarted under traffic negotiates again.
    let (lab, ovs, _) = ovs_lab_at("fast");
    reachable(&lab, Duration::from_secs(10));
    lab.b.ns.ip(&["link", "set", "eth1", "down"]).unwrap();
    let out = wait_for(lab.a.daemon(), Duration::from_secs(5), "eth1 out after OVS's side went down", |s| {
        !distributing(s, "eth1") && distributing(s, "eth0") && distributing(s, "eth2")
    });
    println!("Open vSwitch, fast: a member cut on its side is out of our aggregate after {out:?}");
    assert!(out <= Duration::from_millis(3700), "within the fast timeout: {out:?}");
    ping(&lab, 3).unwrap();
    lab.b.ns.ip(&["link", "set", "eth1", "up"]).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(15), "eth1 back", |s| distributing(s, "eth1"));

    let stream = bond_tests::net::Stream::start(&lab, Duration::from_micros(500), 40_000).unwrap();
    bond_tests::wait_until(Duration::from_secs(5), "traffic flows", || stream.received() > 400);
    let restarted = Instant::now();
    ovs.restart_vswitchd().unwrap();
    let back = wait_for(lab.a.daemon(), Duration::from_secs(20), "every port distributing after the restart", |s| {
        (0..3).all(|i| distributing(s, &format!("eth{i}")))
    });
    bond_tests::wait_until(Duration::from_secs(10), "traffic flows again", || {
        let n = stream.received();
        std::thread::sleep(Duration::from_millis(100));
        stream.received() > n + 100
    });
    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = bond_tests::net::losses(sent, &got);
    println!(
        "Open vSwitch restarted under traffic: every port distributing again {back:?} later ({:?} after the restart began); \
         {lost} of {sent} datagrams lost (longest run {longest}, {} ms)",
        restarted.elapsed(),
        longest / 2
    );
    // Open vSwitch starts its datapath and LACP afresh (its own 2 s wait): our side keeps the
    // aggregate and carries on as soon as it does.
    assert!(longest <= 10_000, "traffic back within 5 s of the restart: {longest} datagrams lost in a row");
    drop(ovs);
    drop(lab);

    // Slow rate: negotiates; a member cut on our side (both carriers go) leaves and returns.
    let (lab, ovs, took) = ovs_lab_at("slow");
    println!("Open vSwitch, slow: every port distributing after {took:?}");
    reachable(&lab, Duration::from_secs(10));
    lab.cut(0).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(3), "eth0 out", |s| !distributing(s, "eth0") && distributing(s, "eth1"));
    ping(&lab, 3).unwrap();
    lab.restore(0).unwrap();
    wait_for(lab.a.daemon(), Duration::from_secs(15), "eth0 back", |s| distributing(s, "eth0"));
    ping(&lab, 3).unwrap();
    drop(ovs);
}

#[test]
fn open_vswitch_falls_back_to_active_backup_only_when_told_to() {
    // Our bond in active-backup (no LACP) facing Open vSwitch's LACP bond: with
    // lacp-fallback-ab it gives up on LACP and carries traffic as active-backup; without it, it
    // keeps every member disabled, as 802.3ad requires, and nothing passes.
    for fallback in [true, false] {
        let lab = Lab::start(LabOptions::default().links(3).policy("active-backup").no_bond_b()).unwrap();
        let setting = format!("other_config:lacp-fallback-ab={fallback}");
        let ovs = ovs_bond(&lab, &["other_config:lacp-time=fast", &setting]);
        // Two active-backup ends must agree on the member (Open vSwitch drops what arrives on
        // its backups): only the link Open vSwitch chose (or eth0) is left up.
        std::thread::sleep(Duration::from_secs(3));
        let show = ovs.appctl(&["bond/show", "lag"]).unwrap_or_default();
        let chosen = show
            .lines()
            .find_map(|l| l.strip_prefix("active member mac: "))
            .and_then(|l| l.rsplit_once("(eth"))
            .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<usize>().ok())
            .unwrap_or(0);
        for i in (0..3).filter(|i| *i != chosen) {
            lab.cut(i).unwrap();
        }
        let start = Instant::now();
        let mut answered = None;
        while start.elapsed() < Duration::from_secs(15) {
            if ping(&lab, 1).is_ok() {
                answered = Some(start.elapsed());
                break;
            }
        }
        let show = ovs.appctl(&["bond/show", "lag"]).unwrap_or_default();
        println!("Open vSwitch, lacp-fallback-ab={fallback}: {answered:?} until B answers");
        match fallback {
            true => assert!(answered.is_some(), "with the fallback, traffic passes:\n{show}"),
            false => assert!(answered.is_none(), "without it, Open vSwitch carries nothing for a bond without LACP:\n{show}"),
        }
        drop(ovs);
    }
}
