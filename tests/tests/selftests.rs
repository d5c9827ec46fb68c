//! The Linux kernel's bonding selftests (`tools/testing/selftests/drivers/net/bonding/`), their
//! scenarios ported to this bond: the same topologies (a bond whose members plug into a bridge
//! with a plain host behind it, or two 802.3ad bonds facing each other), the same steps and the
//! same assertions, observed from outside the bond where the kernel's scripts do (nftables
//! counters on the switch's ports in place of their tc filters, ping, the members' address
//! lists) and from `bondctl status` where they read the bond's netlink attributes. Each test
//! names the script it ports; the bond is configured with bonding's option names.
//! (`bond_lacp_strict.sh`, with two bonds face to face: `selftests_lacp.rs`.)

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use bond_tests::{
    Daemon, Netns, cmd, poll_until,
    switch::{BOND_ADDR, SwitchLab, peer_addr},
    wait_until,
};
use serde_json::Value;

fn lab(links: usize, peers: usize, lines: &str) -> SwitchLab {
    SwitchLab::start(links, peers, lines).unwrap_or_else(|e| panic!("starting the lab ({lines:?}): {e:#}"))
}

fn status(lab: &SwitchLab) -> Value {
    lab.daemon().status().expect("bondctl status")
}

fn active(lab: &SwitchLab) -> Option<String> {
    status(lab)["active"].as_str().map(str::to_string)
}

/// The member index of `ethN`.
fn index(member: &str) -> usize {
    member.trim_start_matches("eth").parse().unwrap_or_else(|_| panic!("not a member name: {member}"))
}

fn events(s: &Value) -> Vec<String> {
    s["events"].as_array().map(|e| e.iter().filter_map(|x| x["message"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Takes switch port `a<j>` up again (`SwitchLab::cut` took it down).
fn restore(lab: &SwitchLab, j: usize) {
    lab.sw.ip(&["link", "set", &format!("a{j}"), "up"]).unwrap();
}

/// `ping` from `ns` (iputils; like the kernel's scripts it counts at least one reply as
/// success): (transmitted, received).
fn ping(ns: &Netns, to: &str, count: u32, interval: &str, wait: &str) -> (u32, u32) {
    let count = count.to_string();
    let out = cmd::output("ip", &["netns", "exec", ns.name(), "ping", "-n", "-q", "-c", &count, "-i", interval, "-W", wait, to])
        .expect("running ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_default();
    let number_before = |what: &str| -> u32 {
        line.split(", ").find(|p| p.contains(what)).and_then(|p| p.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    (number_before("transmitted"), number_before("received"))
}

/// Pings (one echo, 100 ms to answer, as the scripts' `slowwait 2 ping -c 1 -W 0.1`) until
/// one is answered: how long that took, or None when none was within `budget`.
fn ping_until(ns: &Netns, to: &str, budget: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < budget {
        let attempt = Instant::now();
        if ping(ns, to, 1, "1", "0.1").1 > 0 {
            return Some(start.elapsed());
        }
        // An echo that could not even be sent fails at once: no busy loop.
        if attempt.elapsed() < Duration::from_millis(50) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    None
}

/// The scripts' `bond_check_connection`: wait up to 2 s for a first answer, then 5 echoes
/// 100 ms apart of which at least one must be answered. Returns how many were.
#[track_caller]
fn check_connection(ns: &Netns, to: &str, what: &str) -> u32 {
    let _ = ping_until(ns, to, Duration::from_secs(2));
    let (sent, got) = ping(ns, to, 5, "0.1", "1");
    assert!(got > 0, "{what}: no echo reply from {to} ({got} of {sent})");
    got
}

/// Named nftables counters on ingress hooks of devices in one namespace: what a device
/// received, counted before anything else there sees it (the scripts count with tc flower
/// filters on the same side of the link).
struct NftCounters<'a> {
    ns: &'a Netns,
    table: String,
}

impl<'a> NftCounters<'a> {
    /// `rules`: (counter name, device, the match before `counter`).
    fn install(ns: &'a Netns, dir: &Path, table: &str, rules: &[(String, String, String)]) -> NftCounters<'a> {
        let mut script = format!("table netdev {table} {{\n");
        for (name, _, _) in rules {
            script.push_str(&format!(" counter {name} {{ }}\n"));
        }
        let mut devices: Vec<&String> = rules.iter().map(|(_, d, _)| d).collect();
        devices.sort();
        devices.dedup();
        for dev in devices {
            script.push_str(&format!(" chain in_{dev} {{\n  type filter hook ingress device \"{dev}\" priority -10;\n"));
            for (name, _, m) in rules.iter().filter(|(_, d, _)| d == dev) {
                script.push_str(&format!("  {m} counter name \"{name}\"\n"));
            }
            script.push_str(" }\n");
        }
        script.push_str("}\n");
        let path = dir.join(format!("{table}.nft"));
        std::fs::write(&path, &script).unwrap();
        ns.exec("nft", &["-f", &path.to_string_lossy()]).unwrap_or_else(|e| panic!("loading\n{script}: {e:#}"));
        NftCounters { ns, table: table.into() }
    }

    /// Every counter's packets (`nft -j list table`).
    fn read(&self) -> BTreeMap<String, u64> {
        let out = self.ns.exec("nft", &["-j", "list", "table", "netdev", &self.table]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| {
                let c = &o["counter"];
                Some((c["name"].as_str()?.to_string(), c["packets"].as_u64()?))
            })
            .collect()
    }

    fn get(&self, name: &str) -> u64 {
        self.read().get(name).copied().unwrap_or_else(|| panic!("no counter {name}"))
    }
}

// ------------------------------------------------------------------------------------------
// mode-1-recovery-updelay.sh, mode-2-recovery-updelay.sh

/// Both members flap so that the only member with carrier is still in its updelay window:
/// eth0's switch port goes down, 2 s later up (eth0 starts its updelay), and at once eth1's
/// goes down. With no member up, the bond must use the recovering member at once rather than
/// after `updelay` (bonding.txt 13.1): ping must work again within 2 s for every updelay up to
/// 10 s (a bond that waits out its updelay fails from 2000 ms on). At updelay 2000 it also
/// checks that a member returning while another is up does wait its updelay: the quick
/// recovery is the exception, not updelay ignored. Returns one line per updelay that failed.
fn recovery_with_updelay(mode: u8) -> Vec<String> {
    let mut failed = Vec::new();
    for updelay in [0u64, 200, 500, 1000, 2000, 5000, 10000] {
        let lab = lab(2, 1, &format!("mode: {mode}\nmiimon: 100\nupdelay: {updelay}"));
        let target = peer_addr(0);
        let first = ping_until(&lab.a, &target, Duration::from_secs(2));
        assert!(first.is_some(), "mode {mode} updelay {updelay}: no connectivity at the start\n{:#}", status(&lab));
        lab.cut(0).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let s = status(&lab);
        assert_eq!(Daemon::member(&s, "eth0")["usable"], false, "mode {mode} updelay {updelay}: eth0 out after its port went down: {s:#}");
        restore(&lab, 0);
        lab.cut(1).unwrap();
        let cut = Instant::now();
        let back = ping_until(&lab.a, &target, Duration::from_secs(2));
        // For the report, how long it did take when it took too long (bounded by the updelay).
        let late = match back {
            Some(_) => None,
            None => ping_until(&lab.a, &target, Duration::from_millis(updelay + 1000)).map(|_| cut.elapsed()),
        };
        let s = status(&lab);
        let eth0 = Daemon::member(&s, "eth0");
        // What the daemon says it did (not asserted: its wording is its own).
        let early = events(&s).into_iter().find(|e| e.starts_with("eth0 used at once")).unwrap_or_else(|| "-".into());
        match back {
            Some(took) => println!(
                "mode {mode} updelay {updelay:>5} ms: ping answered {:.0} ms after eth1's port went down (eth0 usable: {}); event: {early}",
                took.as_secs_f64() * 1000.0,
                eth0["usable"],
            ),
            None => {
                let line = format!(
                    "mode {mode} updelay {updelay} ms: no ping answered within 2 s of eth1's port going down ({}); eth0: {}",
                    late.map_or("not within updelay + 1 s either".to_string(), |t| format!(
                        "answered after {:.0} ms",
                        t.as_secs_f64() * 1000.0
                    )),
                    eth0
                );
                println!("{line}");
                failed.push(line);
            }
        }
        if updelay == 2000 {
            // The scenario is the exception: with a member up, a returning one does wait its
            // updelay (eth1's port back while eth0 carries the traffic).
            restore(&lab, 1);
            let back = Instant::now();
            wait_until(Duration::from_secs(5), "eth1 usable after its updelay", || Daemon::member(&status(&lab), "eth1")["usable"] == true);
            let waited = back.elapsed();
            println!(
                "mode {mode} updelay {updelay:>5} ms: with eth0 up, eth1 usable {:.0} ms after its port came back",
                waited.as_secs_f64() * 1000.0
            );
            assert!(waited >= Duration::from_millis(updelay - 200), "mode {mode}: eth1 waited its updelay of {updelay} ms only {waited:?}");
        }
    }
    failed
}

/// Ports `mode-1-recovery-updelay.sh`: active-backup, miimon 100, updelay 0 to 10000 ms.
#[test]
fn mode_1_recovery_with_updelay_uses_the_recovering_member_when_none_is_up() {
    let failed = recovery_with_updelay(1);
    assert!(failed.is_empty(), "the bond did not recover within 2 s:\n{}", failed.join("\n"));
}

/// Ports `mode-2-recovery-updelay.sh`: balance-xor, miimon 100, updelay 0 to 10000 ms.
#[test]
fn mode_2_recovery_with_updelay_uses_the_recovering_member_when_none_is_up() {
    let failed = recovery_with_updelay(2);
    assert!(failed.is_empty(), "the bond did not recover within 2 s:\n{}", failed.join("\n"));
}

// ------------------------------------------------------------------------------------------
// bond_options.sh: num_grat_arp

/// After a failover, exactly `n` gratuitous ARPs (requests with sender = target = the bond's
/// address) arrive on the switch port of the new active member, `peer_notify_delay` apart.
fn garp_after_failover(n: u64) {
    let lab = lab(3, 1, &format!("mode: active-backup\nmiimon: 10\nnum_grat_arp: {n}\npeer_notify_delay: 100"));
    check_connection(&lab.a, &peer_addr(0), &format!("num_grat_arp {n}: setup"));
    let rules: Vec<(String, String, String)> = (0..3)
        .map(|j| {
            (format!("garp_a{j}"), format!("a{j}"), format!("arp operation request arp saddr ip {BOND_ADDR} arp daddr ip {BOND_ADDR}"))
        })
        .collect();
    let counters = NftCounters::install(&lab.sw, lab.dir(), "garp", &rules);
    // Announcements from the bond's start (if any) are over: nothing new for 500 ms.
    let mut last = counters.read();
    let mut quiet_since = Instant::now();
    let _ = poll_until(Duration::from_millis(n * 100 + 3000), || {
        let now = counters.read();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
        quiet_since.elapsed() >= Duration::from_millis(500)
    });
    let base = counters.read();
    let old = active(&lab).expect("an active member");
    let j = index(&old);
    let cut = Instant::now();
    lab.cut(j).unwrap();
    let mut new = String::new();
    wait_until(Duration::from_secs(2), "another member active after the active one's port went down", || {
        new = active(&lab).unwrap_or_default();
        !new.is_empty() && new != old
    });
    let k = index(&new);
    let name = format!("garp_a{k}");
    // Every increment's time, from the cut; until n arrived or n x 100 ms + 5 s passed.
    let mut times: Vec<f64> = Vec::new();
    let deadline = Duration::from_millis(n * 100 + 5000);
    while cut.elapsed() < deadline && (times.len() as u64) < n {
        let c = counters.get(&name) - base[&name];
        while (times.len() as u64) < c {
            times.push(cut.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // No more after: 1.5 s, fifteen of the 100 ms intervals.
    std::thread::sleep(Duration::from_millis(1500));
    let after = counters.read();
    let total = after[&name] - base[&name];
    let other = (0..3).find(|&m| m != j && m != k).unwrap();
    let on_other = after[&format!("garp_a{other}")] - base[&format!("garp_a{other}")];
    let (first, last) = (times.first().copied().unwrap_or(f64::NAN), times.last().copied().unwrap_or(f64::NAN));
    let mean_gap = if times.len() > 1 { (last - first) / (times.len() - 1) as f64 } else { f64::NAN };
    println!(
        "num_grat_arp {n}: {total} gratuitous ARPs on a{k} (new active {new}, was {old}); first {first:.0} ms, n-th {last:.0} ms after the cut, \
         mean spacing {mean_gap:.0} ms; on the other backup's port a{other}: {on_other}"
    );
    assert_eq!(total, n, "exactly num_grat_arp gratuitous ARPs on the new active member's port (times {times:?})");
    assert_eq!(on_other, 0, "none from the backup member");
    // peer_notify_delay 100 (10 miimon intervals): spread over (n - 1) x 100 ms, not a burst.
    assert!(last - first >= (n - 1) as f64 * 80.0, "spaced by peer_notify_delay: first {first:.0} ms, last {last:.0} ms");
}

/// Ports `bond_options.sh` `num_grat_arp` (garp_test): active-backup, miimon 10,
/// peer_notify_delay 100, num_grat_arp 10 and 20.
#[test]
fn num_grat_arp_sends_exactly_that_many_gratuitous_arps_after_a_failover() {
    for n in [10, 20] {
        garp_after_failover(n);
    }
}

// ------------------------------------------------------------------------------------------
// bond_options.sh: arp_validate

/// Ports `bond_options.sh` `arp_validate` (arp_validate_arp): active-backup with the ARP
/// monitor (100 ms, the plain host as target) under every arp_validate value 0-6: the
/// connection works and, over 3 s of probing, every member stays up, with no link failure and
/// no "failed" event: backups too are judged alive (by the active member's requests the
/// switch floods to them, or whatever the validation counts).
#[test]
fn arp_validate_0_to_6_leaves_every_member_up() {
    let mut failed = Vec::new();
    for v in 0..=6 {
        let lab = lab(3, 1, &format!("mode: active-backup\narp_interval: 100\narp_ip_target: [{}]\narp_validate: {v}", peer_addr(0)));
        let answered = check_connection(&lab.a, &peer_addr(0), &format!("arp_validate {v}"));
        let start = Instant::now();
        let mut not_usable: BTreeMap<String, String> = BTreeMap::new();
        while start.elapsed() < Duration::from_secs(3) {
            let s = status(&lab);
            for m in s["members"].as_array().unwrap() {
                if m["usable"] != true || m["state"] != "up" {
                    not_usable.entry(m["name"].as_str().unwrap().to_string()).or_insert_with(|| m["health"].to_string());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let s = status(&lab);
        let members = s["members"].as_array().unwrap();
        let failures: Vec<u64> = members.iter().map(|m| m["link_failures"].as_u64().unwrap_or(u64::MAX)).collect();
        let health: Vec<&str> = members.iter().map(|m| m["health"].as_str().unwrap_or("?")).collect();
        let up: Vec<bool> = members.iter().map(|m| m["usable"] == true && m["state"] == "up").collect();
        let failed_events: Vec<String> = events(&s).into_iter().filter(|e| e.contains("failed")).collect();
        let arp_sent: Vec<u64> = members.iter().map(|m| m["tx_packets"].as_u64().unwrap_or(0)).collect();
        println!(
            "arp_validate {v}: {answered}/5 echoes answered; after 3 s members up {up:?}, link failures {failures:?}, health {health:?}, \
             tx packets {arp_sent:?}; not usable at some point: {not_usable:?}; failed events: {failed_events:?}"
        );
        if !up.iter().all(|&u| u) || failures.iter().any(|&f| f != 0) || !failed_events.is_empty() || !not_usable.is_empty() {
            failed.push(format!(
                "arp_validate {v}: up {up:?}, link failures {failures:?}, not usable at some point {not_usable:?}, events {failed_events:?}"
            ));
        }
    }
    assert!(failed.is_empty(), "spurious member failures:\n{}", failed.join("\n"));
}

// ------------------------------------------------------------------------------------------
// bond_options.sh: prio

/// Waits (up to 5 s) for the active member to be `expected` after `what`; when `expected` is
/// the member already active, watches for 1 s that it stays so. Then checks the connection.
#[track_caller]
fn expect_active(lab: &SwitchLab, label: &str, what: &str, before: &str, expected: &str) {
    let start = Instant::now();
    let mut now = String::new();
    if expected == before {
        std::thread::sleep(Duration::from_secs(1));
        now = active(lab).unwrap_or_default();
    } else {
        let _ = poll_until(Duration::from_secs(5), || {
            now = active(lab).unwrap_or_default();
            now == expected
        });
    }
    let took = start.elapsed().as_secs_f64() * 1000.0;
    if now == expected && expected != before {
        println!("{label}: {what}: active {now} ({took:.0} ms)");
    } else {
        println!("{label}: {what}: active {now} (expected {expected}; watched {took:.0} ms)");
    }
    let s = status(lab);
    assert_eq!(now, expected, "{label}: after {what} the active member is {expected}\nevents:\n{}", events(&s).join("\n"));
    check_connection(&lab.a, &peer_addr(0), &format!("{label}: {what}"));
}

/// `bond_options.sh` `prio_test` for one primary_reselect value: primary eth1, prio eth0 0,
/// eth1 10, eth2 11, links cut and restored at the switch.
fn prio_test(mode_lines: &str, reselect: u8) {
    let label = format!("{} primary_reselect {reselect}", mode_lines.replace(": ", " ").replace('\n', " "));
    let lab = lab(3, 1, &format!("{mode_lines}\nprimary: eth1\nprimary_reselect: {reselect}\nprio: {{ eth0: 0, eth1: 10, eth2: 11 }}"));
    let bond = lab.bond.clone();
    lab.daemon().ctl(&["set", &bond, "active_slave=eth1"]).unwrap();
    expect_active(&lab, &label, "setup (active_slave eth1)", "eth1", "eth1");
    // The primary fails: the highest prio of the rest (eth2, 11 > 0).
    lab.cut(1).unwrap();
    expect_active(&lab, &label, "eth1 down", "eth1", "eth2");
    lab.cut(2).unwrap();
    expect_active(&lab, &label, "eth2 down", "eth2", "eth0");
    // eth2 back: its higher prio takes over only under `always`.
    restore(&lab, 2);
    let now = if reselect == 0 { "eth2" } else { "eth0" };
    expect_active(&lab, &label, "eth2 up", "eth0", now);
    // The primary back: it takes over under `always` (primary before prio); `better` keeps the
    // active member (equal speeds); `failure` keeps it until it fails.
    restore(&lab, 1);
    match reselect {
        0 => expect_active(&lab, &label, "eth1 up", now, "eth1"),
        1 => expect_active(&lab, &label, "eth1 up", now, now),
        _ => {
            expect_active(&lab, &label, "eth1 up", now, now);
            lab.cut(index(now)).unwrap();
            expect_active(&lab, &label, &format!("{now} down"), now, "eth1");
        }
    }
    if reselect == 0 {
        // Prios changed live, signed 32-bit: the primary stays; when it fails, the highest prio.
        lab.daemon().ctl(&["set", &bond, "prio=eth0:1000000,eth1:0,eth2:-50"]).unwrap();
        expect_active(&lab, &label, "prio eth0 1000000, eth1 0, eth2 -50", "eth1", "eth1");
        lab.cut(1).unwrap();
        expect_active(&lab, &label, "eth1 down with the new prios", "eth1", "eth0");
    }
}

/// Ports `bond_options.sh` `prio` for `mode active-backup miimon 100 primary eth1
/// primary_reselect 0|1|2`.
#[test]
fn prio_and_primary_reselect_choose_the_active_member_active_backup_miimon() {
    for r in 0..=2 {
        prio_test("mode: active-backup\nmiimon: 100", r);
    }
}

/// Ports `bond_options.sh` `prio` for `mode active-backup arp_interval 100 arp_ip_target
/// <gateway> primary eth1 primary_reselect 0|1|2` (the plain host stands in for the gateway).
#[test]
fn prio_and_primary_reselect_choose_the_active_member_active_backup_arp_monitor() {
    for r in 0..=2 {
        prio_test(&format!("mode: active-backup\narp_interval: 100\narp_ip_target: [{}]", peer_addr(0)), r);
    }
}

/// Ports `bond_options.sh` `prio` for `mode balance-tlb miimon 100 primary eth1
/// primary_reselect 0|1|2`.
#[test]
fn prio_and_primary_reselect_choose_the_active_member_balance_tlb() {
    for r in 0..=2 {
        prio_test("mode: balance-tlb\nmiimon: 100", r);
    }
}

/// Ports `bond_options.sh` `prio` for `mode balance-alb miimon 100 primary eth1
/// primary_reselect 0|1|2`.
#[test]
fn prio_and_primary_reselect_choose_the_active_member_balance_alb() {
    for r in 0..=2 {
        prio_test("mode: balance-alb\nmiimon: 100", r);
    }
}

// ------------------------------------------------------------------------------------------
// bond_macvlan_ipvlan.sh

/// Two uppers of `kind` (`macvlan` mode bridge, or `ipvlan` mode l2) made on the bond and moved
/// into namespaces of their own (192.0.2.21 and .22): the plain host, the bond and both uppers
/// reach each other, both ways (the script's pairs, IPv4).
fn xvlan_over_bond(mode: &str, kind: &str, kind_mode: &str) {
    let lab = lab(2, 1, &format!("mode: {mode}"));
    let uppers: Vec<Netns> = (0..2).map(|_| Netns::new("st-xv-").unwrap()).collect();
    for (i, ns) in uppers.iter().enumerate() {
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1").unwrap();
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1").unwrap();
        // The same name twice, as the script does: each moves out before the next is made.
        lab.a.ip(&["link", "add", "link", &lab.bond, "name", "xv0", "type", kind, "mode", kind_mode]).unwrap();
        lab.a.ip(&["link", "set", "xv0", "netns", ns.name()]).unwrap();
        ns.ip(&["addr", "add", &format!("192.0.2.{}/24", 21 + i), "dev", "xv0"]).unwrap();
        ns.ip(&["link", "set", "xv0", "up"]).unwrap();
    }
    let host = &lab.peers[0];
    let (host_ip, x1, x2) = (peer_addr(0), "192.0.2.21", "192.0.2.22");
    let pairs: Vec<(String, &Netns, &str)> = vec![
        ("host -> bond".into(), host, BOND_ADDR),
        (format!("host -> {kind} 1"), host, x1),
        (format!("host -> {kind} 2"), host, x2),
        (format!("{kind} 1 -> {kind} 2"), &uppers[0], x2),
        ("bond -> host".into(), &lab.a, &host_ip),
        (format!("{kind} 1 -> host"), &uppers[0], &host_ip),
        (format!("{kind} 2 -> host"), &uppers[1], &host_ip),
        (format!("{kind} 2 -> {kind} 1"), &uppers[1], x1),
    ];
    // The uppers learn their neighbours first (the script sleeps 2 s).
    let _ = ping_until(&uppers[0], &host_ip, Duration::from_secs(2));
    let _ = ping_until(&uppers[1], &host_ip, Duration::from_secs(2));
    let mut results = Vec::new();
    for (what, ns, to) in pairs {
        std::thread::sleep(Duration::from_millis(250));
        let (sent, got) = ping(ns, to, 4, "0.1", "1");
        results.push(format!("{what} {got}/{sent}"));
        assert!(got > 0, "{mode}/{kind} {kind_mode}: {what} ({to}): no echo reply ({results:?})\n{:#}", status(&lab));
    }
    println!("{mode}/{kind} {kind_mode}: {}", results.join(", "));
}

/// Ports `bond_macvlan_ipvlan.sh`, the macvlan half: `macvlan mode bridge` over an
/// active-backup, balance-tlb and balance-alb bond.
#[test]
fn macvlans_over_the_bond_reach_the_host_and_each_other_in_active_backup_tlb_and_alb() {
    for mode in ["active-backup", "balance-tlb", "balance-alb"] {
        xvlan_over_bond(mode, "macvlan", "bridge");
    }
}

/// Ports `bond_macvlan_ipvlan.sh`, the ipvlan half: `ipvlan mode l2` over an active-backup,
/// balance-tlb and balance-alb bond; recorded as skipped on kernels without ipvlan.
#[test]
fn ipvlans_over_the_bond_reach_the_host_and_each_other_in_active_backup_tlb_and_alb() {
    const TEST: &str = "ipvlans_over_the_bond_reach_the_host_and_each_other_in_active_backup_tlb_and_alb";
    {
        let probe = Netns::new("st-iv-").unwrap();
        probe.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]).unwrap();
        if let Err(e) = probe.ip(&["link", "add", "link", "v0", "name", "iv0", "type", "ipvlan", "mode", "l2"]) {
            bond_tests::skip(TEST, &format!("no ipvlan in this kernel ({e})"));
            return;
        }
    }
    for mode in ["active-backup", "balance-tlb", "balance-alb"] {
        xvlan_over_bond(mode, "ipvlan", "l2");
    }
}

// ------------------------------------------------------------------------------------------
// bond-break-lacpdu-tx.sh

const NEW_MAC: &str = "02:54:00:3b:7c:a6";

fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-j", "link", "show", "dev", dev]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

/// Ports `bond-break-lacpdu-tx.sh`: an 802.3ad bond (lacp_rate fast, no partner) made a port
/// of a bridge, then given a new MAC address, keeps sending LACPDUs: at least 2 slow-protocol
/// frames reach the switch from a member within 15 s of the change; the members carry the new
/// address, and the LACPDUs the new system id (so they were sent after the change). As in the
/// script, where the bond is made, bridged, given its address and enslaves its ports before
/// the count starts, all this happens in the bond's first second: the LACPDUs counted are
/// those of its first seconds without a partner (every second while the ports wait for one;
/// once they default, 802.1AX and bonding send every 30 s).
#[test]
fn lacpdus_keep_flowing_after_the_mac_of_a_bridged_802_3ad_bond_changes() {
    let lab = lab(2, 0, "mode: 802.3ad\nlacp_rate: fast");
    let up = Instant::now();
    let rules: Vec<(String, String, String)> = (0..2)
        .flat_map(|j| {
            [
                (format!("lacp_a{j}"), format!("a{j}"), "ether type 0x8809".to_string()),
                // The actor's system id: bytes 20..26 of the frame (after subtype, version,
                // TLV type and length, system priority).
                (format!("lacp_new_a{j}"), format!("a{j}"), format!("ether type 0x8809 @ll,160,48 0x{}", NEW_MAC.replace(':', ""))),
            ]
        })
        .collect();
    let counters = NftCounters::install(&lab.sw, lab.dir(), "lacp", &rules);
    lab.a.ip(&["link", "add", "fab-br0", "type", "bridge"]).unwrap();
    lab.a.ip(&["link", "set", "fab-br0", "up"]).unwrap();
    lab.a.ip(&["link", "set", &lab.bond, "master", "fab-br0"]).unwrap();
    let base = counters.read();
    let changed = Instant::now();
    lab.a.ip(&["link", "set", &lab.bond, "address", NEW_MAC]).unwrap();
    let change_at = changed.duration_since(up);
    let delta = |name: &str| counters.get(name) - base[name];
    let took = poll_until(Duration::from_secs(15), || {
        std::thread::sleep(Duration::from_millis(50));
        delta("lacp_a0") >= 2 && delta("lacp_new_a0") >= 2
    });
    let after = counters.read();
    let d = |name: &str| after[name] - base[name];
    let s = status(&lab);
    let members: Vec<String> = (0..2).map(|j| mac_of(&lab.a, &format!("eth{j}"))).collect();
    println!(
        "LACPDUs after the MAC change ({change_at:?} after the daemon was ready): {} on a0 ({} with system id {NEW_MAC}), {} on a1 ({}), \
         counted for {:.1} s; bond MAC {}, LACP system {}, members {members:?}",
        d("lacp_a0"),
        d("lacp_new_a0"),
        d("lacp_a1"),
        d("lacp_new_a1"),
        changed.elapsed().as_secs_f64(),
        s["mac"],
        s["lacp"]["system"]
    );
    assert!(took.is_ok(), "at least 2 LACPDUs from eth0 within 15 s of the change, with the new system id");
    assert_eq!(s["mac"], NEW_MAC, "the bond has the new address");
    assert!(members.iter().all(|m| m == NEW_MAC), "every member carries the bond's new address: {members:?}");
}

// ------------------------------------------------------------------------------------------
// dev_addr_lists.sh

const MACVLAN_MAC: &str = "02:00:00:12:34:56";
const LACPDU_MC: &str = "01:80:c2:00:00:02";
/// The solicited-node multicast group of fe80::78:9abc.
const SOLICITED_MC: &str = "33:33:ff:78:9a:bc";

/// The addresses `bridge fdb show dev DEV` lists for a device that is no bridge port: its
/// unicast and multicast filter.
fn addr_list(ns: &Netns, dev: &str) -> Vec<String> {
    let out = ns.exec("bridge", &["fdb", "show", "dev", dev]).unwrap_or_default();
    out.lines().filter(|l| l.contains(" self")).filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

/// (flags, promiscuity count) of a device.
fn promisc(ns: &Netns, dev: &str) -> (Vec<String>, u64) {
    let out = ns.ip(&["-j", "-d", "link", "show", "dev", dev]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let flags = v[0]["flags"].as_array().map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    (flags, v[0]["promiscuity"].as_u64().unwrap_or(0))
}

fn unicast(addrs: &[String]) -> Vec<String> {
    addrs.iter().filter(|a| u8::from_str_radix(&a[..2], 16).is_ok_and(|b| b & 1 == 0)).cloned().collect()
}

/// Ports `dev_addr_lists.sh` (bond_cleanup_mode1 / bond_cleanup_mode4, and for 802.3ad what
/// bond_listen_lacpdu_multicast looks at): a macvlan on the bond puts its address in every
/// member's unicast filter, without the members being put in promiscuous mode; deleting the
/// macvlan takes it out again; an IPv6 address on the bond has its solicited-node group
/// received by every member (in its multicast filter, or all-multicast, which is what this
/// daemon does), and 802.3ad has the LACPDU group in every member's filter; a bond removed
/// (the daemon stopped) leaves none of these, nor any unicast address or flag of its own, on
/// any member.
#[test]
fn a_macvlan_address_reaches_every_members_filter_and_leaves_it_with_the_bond() {
    for mode in ["active-backup", "802.3ad"] {
        let mut lab = lab(2, 0, &format!("mode: {mode}"));
        let members = ["eth0", "eth1"];
        let has = |lab: &SwitchLab, m: &str, a: &str| addr_list(&lab.a, m).iter().any(|x| x == a);
        let add = |lab: &SwitchLab| {
            lab.a
                .ip(&["link", "add", "link", &lab.bond, "name", "mv0", "up", "address", MACVLAN_MAC, "type", "macvlan", "mode", "bridge"])
                .unwrap()
        };
        add(&lab);
        let took = wait_until(Duration::from_secs(5), &format!("{mode}: the macvlan's address in every member's unicast filter"), || {
            members.iter().all(|m| has(&lab, m, MACVLAN_MAC))
        });
        let flags: Vec<(Vec<String>, u64)> = members.iter().map(|m| promisc(&lab.a, m)).collect();
        let lists: Vec<Vec<String>> = members.iter().map(|m| addr_list(&lab.a, m)).collect();
        println!(
            "{mode}: {MACVLAN_MAC} on every member after {took:?}; members' lists {lists:?}; PROMISC flag {:?}, promiscuity {:?} \
             (a veth, filtering no unicast itself, counts one for a unicast list); {LACPDU_MC} listed: {:?}",
            flags.iter().map(|(f, _)| f.iter().any(|x| x == "PROMISC")).collect::<Vec<_>>(),
            flags.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            lists.iter().map(|l| l.iter().any(|x| x == LACPDU_MC)).collect::<Vec<_>>(),
        );
        for (m, (f, _)) in members.iter().zip(&flags) {
            assert!(!f.iter().any(|x| x == "PROMISC"), "{mode}: {m} was made promiscuous: {f:?}");
        }
        if mode == "802.3ad" {
            // bond_listen_lacpdu_multicast: the LACPDU group is in the members' filters while
            // the bond runs.
            for (m, l) in members.iter().zip(&lists) {
                assert!(l.iter().any(|x| x == LACPDU_MC), "{mode}: {LACPDU_MC} in {m}'s multicast filter: {l:?}");
            }
        }
        // The script's IPv6 address on the bond: its solicited-node group reaches the members
        // (the lab turned IPv6 off: on for the bond alone). The daemon does not copy the bond's
        // group list: members run all-multicast instead (the manual), which receives the group
        // just as well; either is accepted.
        lab.a.sysctl(&format!("net.ipv6.conf.{}.disable_ipv6", lab.bond), "0").unwrap();
        lab.a.ip(&["addr", "add", "fe80::78:9abc/64", "dev", &lab.bond]).unwrap();
        let receives_group = |lab: &SwitchLab, m: &str| has(lab, m, SOLICITED_MC) || promisc(&lab.a, m).0.iter().any(|f| f == "ALLMULTI");
        wait_until(Duration::from_secs(10), &format!("{mode}: the bond in {SOLICITED_MC}"), || has(&lab, &lab.bond, SOLICITED_MC));
        let took = wait_until(Duration::from_secs(10), &format!("{mode}: every member receives {SOLICITED_MC}"), || {
            members.iter().all(|m| receives_group(&lab, m))
        });
        println!(
            "{mode}: {SOLICITED_MC} (fe80::78:9abc's solicited-node group) received by every member after {took:?}: in their lists {:?}, ALLMULTI {:?}",
            members.iter().map(|m| has(&lab, m, SOLICITED_MC)).collect::<Vec<_>>(),
            members.iter().map(|m| promisc(&lab.a, m).0.iter().any(|f| f == "ALLMULTI")).collect::<Vec<_>>()
        );
        lab.a.ip(&["link", "del", "mv0"]).unwrap();
        let took = wait_until(Duration::from_secs(5), &format!("{mode}: the macvlan's address out of every member's filter"), || {
            members.iter().all(|m| !has(&lab, m, MACVLAN_MAC))
        });
        println!("{mode}: {MACVLAN_MAC} gone from every member {took:?} after the macvlan was deleted");
        // Again, and this time the bond goes with the macvlan on it.
        add(&lab);
        wait_until(Duration::from_secs(5), &format!("{mode}: the macvlan's address back"), || {
            members.iter().all(|m| has(&lab, m, MACVLAN_MAC))
        });
        let exit = lab.daemon.as_mut().unwrap().stop().unwrap();
        assert!(exit.success(), "{mode}: the daemon exits cleanly: {exit}");
        let lists: Vec<Vec<String>> = members.iter().map(|m| addr_list(&lab.a, m)).collect();
        let flags: Vec<(Vec<String>, u64)> = members.iter().map(|m| promisc(&lab.a, m)).collect();
        println!(
            "{mode}: after the daemon stopped, members' lists {lists:?}, promiscuity {:?}, flags {:?}",
            flags.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            flags.iter().map(|(f, _)| f.join(",")).collect::<Vec<_>>()
        );
        for (m, l) in members.iter().zip(&lists) {
            assert!(!l.iter().any(|x| x == MACVLAN_MAC), "{mode}: {MACVLAN_MAC} left on {m}: {l:?}");
            assert!(!l.iter().any(|x| x == LACPDU_MC), "{mode}: {LACPDU_MC} left on {m}: {l:?}");
            assert!(!l.iter().any(|x| x == SOLICITED_MC), "{mode}: {SOLICITED_MC} left on {m}: {l:?}");
            assert!(unicast(l).is_empty(), "{mode}: unicast addresses left on {m}: {l:?}");
        }
        for (m, (f, _)) in members.iter().zip(&flags) {
            assert!(!f.iter().any(|x| x == "ALLMULTI" || x == "PROMISC"), "{mode}: {m}'s flags restored: {f:?}");
        }
    }
}
