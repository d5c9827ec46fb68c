//! Operating a running bond without losing packets: policy switches, reloads, members added
//! and removed, and the daemon killed and restarted (the data plane runs on without it).

use std::{fs, time::Duration};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Stream, losses, ping},
    wait_until,
};

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Waits until `n` more of the stream's datagrams have arrived at B: traffic flowed through
/// whatever state the bond is in now.
fn flowed(stream: &Stream, n: u64, what: &str) {
    let from = stream.received();
    wait_until(Duration::from_secs(5), &format!("{n} datagrams arrive at B {what}"), || stream.received() >= from + n);
}

fn member_names(status: &serde_json::Value) -> Vec<String> {
    status["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
}

/// MAC address of each of A's interfaces eth0..
fn macs(lab: &Lab) -> Vec<String> {
    (0..lab.links)
        .map(|i| {
            let out = lab.a.ns.ip(&["-j", "link", "show", &format!("eth{i}")]).unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v[0]["address"].as_str().unwrap().to_string()
        })
        .collect()
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
    let pause = || flowed(&stream, 600, "between steps");
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

/// Where A's bond keeps its pins and its state file.
fn pins(lab: &Lab) -> std::path::PathBuf {
    bond_tests::lab::pin_dir(lab.a.ns.name(), &lab.a.bond).unwrap()
}

fn state_file(lab: &Lab) -> std::path::PathBuf {
    bond_tests::lab::state_file(lab.a.ns.name(), &lab.a.bond).unwrap()
}

/// Ids of the BPF links pinned for A's bond.
fn link_ids(lab: &Lab) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(pins(lab))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("link_"))
        .map(|p| {
            let out = bond_tests::cmd::run("bpftool", &["-j", "link", "show", "pinned", &p.to_string_lossy()]).unwrap();
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn killed_daemon_leaves_a_working_bond_and_a_new_one_adopts_it() {
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 2).unwrap();
    let own_macs = {
        // The members' own addresses are only known from before the bond took them: the lab
        // gives veths random ones, so read them back from the saved state.
        let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(state_file(&lab)).unwrap()).unwrap();
        saved["members"].as_array().unwrap().iter().map(|m| m["mac"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let before = lab.a.daemon().status().unwrap();
    let old_links = link_ids(&lab);
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    flowed(&stream, 600, "before the kill");
    lab.kill_a().unwrap();
    // Nobody runs the bond now: the kernel still does (700 ms worth of traffic arrives).
    flowed(&stream, 1400, "with no daemon");
    lab.restart_a().unwrap();
    flowed(&stream, 1000, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = losses(sent, &got);
    println!("kill and restart: {lost} of {sent} datagrams lost (longest run {longest})");
    assert_eq!(lost, 0, "no datagram lost; log:\n{}", lab.a.daemon().log());

    let after = lab.a.daemon().status().unwrap();
    assert_eq!(after["active"], before["active"], "the active member is kept");
    assert_eq!(after["ifindex"], before["ifindex"], "the same bond device");
    assert!(after["generation"].as_u64() > before["generation"].as_u64(), "generations go on from the adopted config");
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}");
    // The old links were released (their ids are gone), new ones pinned in their place, no
    // stray pins.
    let new_links = link_ids(&lab);
    assert_eq!(new_links.len(), 4, "one transmit and three receive links: {new_links:?}");
    for id in &old_links {
        assert!(!new_links.contains(id), "link {id} replaced");
        assert!(bond_tests::cmd::run("bpftool", &["link", "show", "id", &id.to_string()]).is_err(), "link {id} released");
    }
    ping(&lab, 2).unwrap();

    // The adopted state includes the members' own settings: a clean stop restores them.
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    assert_eq!(macs(&lab), own_macs, "members have their own MAC addresses back");
    assert!(!pins(&lab).exists(), "pins removed");
}

#[test]
fn a_daemon_started_under_ip_netns_exec_pins_on_the_host_and_survives_sigkill() {
    // `ip netns exec` gives the daemon a private mount namespace with a fresh /sys: pins in a
    // BPF filesystem mounted there would go with it at SIGKILL, and the bond would stop.
    let mut lab = lab(LabOptions::default().policy("balance-xor").a_under_ip_netns_exec());
    ping(&lab, 2).unwrap();
    assert!(pins(&lab).join("config").exists(), "the bond pins into the host's BPF filesystem: {}", pins(&lab).display());
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    flowed(&stream, 600, "before the kill");
    lab.kill_a().unwrap();
    flowed(&stream, 1400, "with no daemon");
    lab.restart_a().unwrap();
    flowed(&stream, 600, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = losses(sent, &got);
    println!("ip netns exec, kill and restart: {lost} of {sent} datagrams lost (longest run {longest})");
    assert_eq!(lost, 0, "no datagram lost; log:\n{}", lab.a.daemon().log());
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}");
}

#[test]
fn down_removes_a_bond_no_daemon_runs() {
    let mut lab = lab(LabOptions::default().policy("balance-xor"));
    ping(&lab, 1).unwrap();
    let bond = lab.a.bond.clone();
    let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(state_file(&lab)).unwrap()).unwrap();
    let own_macs: Vec<String> = saved["members"].as_array().unwrap().iter().map(|m| m["mac"].as_str().unwrap().to_string()).collect();
    lab.a.daemon.as_mut().unwrap().kill().unwrap();
    // Still forwarding without a daemon.
    ping(&lab, 2).unwrap();
    let out = lab.a.daemon().ctl(&["down", &bond]).unwrap();
    assert!(out.contains("removed"), "{out}");
    assert!(lab.a.ns.ip(&["link", "show", &bond]).is_err(), "bond device deleted");
    assert!(!pins(&lab).exists(), "pins removed");
    assert!(!state_file(&lab).exists(), "state file removed");
    assert_eq!(macs(&lab), own_macs, "members have their own MAC addresses back");
    let again = lab.a.daemon().ctl(&["down", &bond]).unwrap_err().to_string();
    assert!(again.contains("there is no bond"), "{again}");
}

#[test]
fn persist_leaves_the_bond_running_on_sigterm() {
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    let path = lab.config_path(&lab.a);
    let dir = lab.dir().to_path_buf();
    // Replace A's daemon by one that persists.
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, &["--persist"]).unwrap());
    ping(&lab, 1).unwrap();
    let stream = Stream::start(&lab, Duration::from_micros(500), 10_000).unwrap();
    flowed(&stream, 400, "before the stop");
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    flowed(&stream, 600, "with the daemon stopped");
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, &["--persist"]).unwrap());
    flowed(&stream, 600, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    assert_eq!(lost, 0, "service restart with --persist loses nothing ({sent} sent); log:\n{}", lab.a.daemon().log());
    // `down` through the daemon removes it for good, and the daemon exits with its last bond.
    let out = lab.a.daemon().ctl(&["down", &lab.a.bond]).unwrap();
    assert!(out.contains("removed"), "{out}");
    assert!(lab.a.ns.ip(&["link", "show", &lab.a.bond]).is_err(), "bond device deleted");
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
    // flow-static: every packet of a flow is recorded, so each flow's member is known exactly.
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
    flows.send(20, 64).unwrap();
    let before = flow_members(&lab);
    assert_eq!(before.len(), 16, "{before:?}");
    assert!(before.values().all(|m| m == "eth0" || m == "eth1"));

    on_both("add-link", "eth2");
    flows.send(20, 64).unwrap();
    assert_eq!(flow_members(&lab), before, "adding a member moves no flow");
    // ... and the new member carries new flows.
    let newer: Vec<std::net::UdpSocket> =
        lab.a.ns.enter(|| (0..16).map(|i| std::net::UdpSocket::bind((lab.a.addr, 42000 + i)).unwrap()).collect()).unwrap();
    for _ in 0..20 {
        for s in &newer {
            bond_tests::net::send_retrying(s, &bond_tests::net::payload(0, 99, 64), flows.dst).unwrap();
        }
    }
    let all = flow_members(&lab);
    let on_eth2 = all.iter().filter(|(f, m)| !before.contains_key(*f) && *m == "eth2").count();
    assert!(on_eth2 >= 2, "new flows use eth2: {all:?}");

    // eth1 leaves: only its flows move.
    on_both("remove-link", "eth1");
    flows.send(20, 64).unwrap();
    let after = flow_members(&lab);
    for (flow, member) in &before {
        if member == "eth0" {
            assert_eq!(&after[flow], "eth0", "{flow} stays on eth0");
        } else {
            assert_ne!(&after[flow], "eth1", "{flow} left eth1");
        }
    }
    let got = flows.receive(Duration::from_millis(300));
    assert_eq!(got.len(), 16 * 60 + 16 * 20, "every datagram arrived");
}

#[test]
fn set_changes_live_options_without_loss_and_a_bad_option_changes_nothing() {
    let lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 2).unwrap();
    let a = lab.a.daemon();
    let bond = lab.a.bond.as_str();
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    flowed(&stream, 600, "before the change");
    let out = a.ctl(&["set", bond, "miimon=20", "updelay=300", "failoverInterval=600", "num_grat_arp=2"]).unwrap();
    assert!(out.contains("miimon=20 upDelay=300 failoverInterval=600 num_grat_arp=2"), "{out}");
    flowed(&stream, 600, "after the change");

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
fn a_corrupt_state_file_leaves_the_running_bond_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 1).unwrap();
    let (bond, netns) = (lab.a.bond.clone(), lab.a.ns.name().to_string());
    let state = state_file(&lab).to_string_lossy().to_string();
    assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o600, "the state file is root's alone");
    let original = fs::read_to_string(&state).unwrap();
    let macs_before = macs(&lab);
    lab.a.daemon.as_mut().unwrap().kill().unwrap();
    fs::write(&state, "{ \"bond\": ").unwrap();

    // A new daemon refuses to touch the bond, and says why and what to do.
    let mut up = bond_tests::cmd::Reaped(
        std::process::Command::new(bond_tests::lab::bondctl())
            .args(["--netns", &netns, "up", "--config"])
            .arg(lab.config_path(&lab.a))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(15), "bondctl up refuses and exits", || up.0.try_wait().unwrap().is_some());
    let mut err = String::new();
    std::io::Read::read_to_string(up.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!up.0.wait().unwrap().success());
    assert!(err.contains("cannot be read") && err.contains(&state) && err.contains("move away"), "{err}");
    // So does `down`; meanwhile the bond forwards as before, members untouched.
    assert!(lab.a.daemon().ctl(&["down", &bond]).is_err(), "down refuses an unreadable state file");
    ping(&lab, 1).unwrap();
    assert_eq!(macs(&lab), macs_before, "members keep the bond's address");
    assert!(pins(&lab).exists(), "pins kept");

    // Repaired, the bond is adopted.
    fs::write(&state, original).unwrap();
    lab.restart_a().unwrap();
    let events = lab.a.daemon().ctl(&["events", &bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}");
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
    assert!(!pins(&lab).join("link_ingress_eth2").exists(), "no pinned program link is left for the deleted device");
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
    assert_eq!(macs(&lab)[2], macs(&lab)[0], "the new device has the bond's MAC address");
    assert!(pins(&lab).join("link_ingress_eth2").exists(), "and its receive program");
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
    let bond_mac = macs(&lab)[0].clone();
    lab.a.ns.ip(&["link", "del", &lab.a.bond]).unwrap();
    let d = lab.a.daemon.as_mut().unwrap();
    let exited = bond_tests::poll_until(Duration::from_secs(5), || d.try_exit().is_some());
    assert!(exited.is_ok(), "the daemon stops:\n{}", d.log());
    let status = d.try_exit().unwrap();
    assert!(!status.success(), "with an error a supervisor sees");
    assert!(d.log().contains("deleted from outside"), "saying why:\n{}", d.log());
    assert!(!pins(&lab).exists(), "no program is left redirecting into the deleted device");
    // The bond took eth0's address: eth0 has it back as its own, the others theirs.
    let now = macs(&lab);
    assert!(now[0] == bond_mac && now[1..].iter().all(|m| *m != bond_mac), "members have their own MAC addresses back: {now:?}");
}

/// `max_entries` and kernel memory of the flow table's pin, as bpftool shows them.
fn flow_table_in_kernel(lab: &Lab) -> (u64, u64) {
    let path = pins(lab).join("flows").to_string_lossy().to_string();
    let out = bond_tests::cmd::run("bpftool", &["-j", "map", "show", "pinned", &path]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (v["max_entries"].as_u64().unwrap(), v["bytes_memlock"].as_u64().unwrap_or(0))
}

#[test]
fn the_flow_table_size_is_a_setting_and_a_restart_resizes_it_without_loss() {
    let settings = "policies:\n  fs: { basePolicy: balance-aware, balancePolicy: flow-static }";
    let mut lab = lab(LabOptions::default().policy("fs").settings(settings).a_bond("flow_table_size: 2048"));
    ping(&lab, 2).unwrap();
    let (entries, memlock) = flow_table_in_kernel(&lab);
    assert_eq!(entries, 2048, "bpftool shows the size asked for");
    let status = lab.a.daemon().status().unwrap();
    assert_eq!(status["counters"]["flow_table_size"], 2048);
    // 3,000 flows (one socket to 3,000 ports; nothing listens, B's port-unreachable answers are
    // flows of B's): flow-static records every packet's flow, and the table keeps at most 2,048.
    lab.a
        .ns
        .enter(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for port in 20_000..23_000u16 {
                bond_tests::net::send_retrying(&s, &[0u8; 32], format!("{}:{port}", bond_tests::lab::ADDR_B).parse().unwrap()).unwrap();
            }
        })
        .unwrap();
    let flows = lab.a.daemon().status().unwrap()["counters"]["flows"].as_u64().unwrap();
    println!("flow table of 2048: {flows} flows held of 3000 sent, {memlock} bytes of kernel memory");
    assert!((1024..=2048).contains(&flows), "the table is full and no fuller: {flows}");

    // A reload with another size says when it takes effect and changes nothing yet.
    let config = lab.config_path(&lab.a);
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, text.replace("flow_table_size: 2048", "flow_table_size: 8192")).unwrap();
    let out = lab.a.daemon().ctl(&["reload", &lab.a.bond]).unwrap();
    assert!(out.contains("flow_table_size 8192 takes effect when the daemon restarts"), "{out}");
    assert_eq!(flow_table_in_kernel(&lab).0, 2048);

    // A restart that leaves the bond running (SIGKILL here; `--persist`, as the service runs
    // it, does the same on SIGTERM) is adopted with the table resized; traffic goes on.
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    flowed(&stream, 600, "before the restart");
    lab.kill_a().unwrap();
    lab.restart_a().unwrap();
    let from = stream.received();
    let arrived = bond_tests::poll_until(Duration::from_secs(5), || stream.received() >= from + 1000);
    assert!(arrived.is_ok(), "traffic goes on after the restart; log:\n{}", lab.a.daemon().log());
    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    let (entries, memlock) = flow_table_in_kernel(&lab);
    println!("restarted with a table of 8192: {lost} of {sent} datagrams lost; {memlock} bytes of kernel memory");
    assert_eq!(lost, 0, "no datagram lost; log:\n{}", lab.a.daemon().log());
    assert_eq!(entries, 8192);
    let status = lab.a.daemon().status().unwrap();
    assert_eq!(status["counters"]["flow_table_size"], 8192);
    assert!(status["counters"]["flows"].as_u64().unwrap() >= 1, "the new table records the stream's flow");
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    assert!(events.contains("flow table resized from 2048 to 8192 entries"), "{events}");
}

/// Removes the listed files and directories on drop: what a test leaves outside its namespaces.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p).or_else(|_| fs::remove_file(p));
        }
    }
}

/// A namespace with veth pairs `eth0`.. (peers `p0`.. in it too), all up.
fn namespace_with_links(links: usize) -> bond_tests::Netns {
    let ns = bond_tests::Netns::new("ru-").unwrap();
    for i in 0..links {
        let (eth, peer) = (format!("eth{i}"), format!("p{i}"));
        ns.ip(&["link", "add", &eth, "type", "veth", "peer", "name", &peer]).unwrap();
        ns.ip(&["link", "set", &eth, "up"]).unwrap();
        ns.ip(&["link", "set", &peer, "up"]).unwrap();
    }
    ns
}

fn netns_inode(ns: &bond_tests::Netns) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/run/netns/{}", ns.name())).unwrap().ino()
}

/// The kernel gives a deleted namespace's inode to a new one. A namespace whose daemon was
/// killed is deleted, leaving its pins, state files and control directory: one bond's under
/// today's paths (its cookie), two as an earlier version left them (its inode; one state file
/// corrupt, as in the report, one intact, which an earlier version would have adopted,
/// restoring members' settings onto the new namespace's devices). A new namespace, given the
/// same inode if the kernel does within 40 tries, starts the same bonds afresh, and what the
/// dead one left is cleared. A clean stop leaves no control directory of the namespace.
#[test]
fn a_new_namespace_with_a_dead_ones_inode_starts_afresh_and_clears_what_that_one_left() {
    use bond_tests::lab::{TempDir, control_dir, netns_part, pin_dir, state_file, tcx_link_ifindex};
    let dir = TempDir::new().unwrap();
    let bonds = ["bond0", "bond1", "bond2"];
    let config = |n: usize| -> std::path::PathBuf {
        let mut text = String::from("bonds:\n");
        for (i, b) in bonds.iter().take(n).enumerate() {
            text.push_str(&format!("  {b}:\n    links: [eth{}, eth{}]\n    policy: active-backup\n", 2 * i, 2 * i + 1));
        }
        let path = dir.path().join(format!("reuse-{n}.yaml"));
        fs::write(&path, text).unwrap();
        path
    };
    let (run, bpffs) = (std::path::Path::new("/run/bondctl"), std::path::Path::new("/sys/fs/bpf/bond"));

    let old = namespace_with_links(6);
    let inode = netns_inode(&old);
    let mut daemon = Daemon::start(&old, &config(3), "bond0", dir.path()).unwrap();
    for b in bonds {
        wait_until(Duration::from_secs(10), &format!("{b} up"), || daemon.ctl(&["status", b]).is_ok());
    }
    let (part, control) = (netns_part(old.name()).unwrap(), control_dir(old.name()).unwrap());
    let (cookie_pins, cookie_state) = (bpffs.join(&part), run.join(&part));
    let legacy = format!("netns:{inode}");
    let (legacy_pins, legacy_state, legacy_control) = (bpffs.join(&legacy), run.join(&legacy), run.join(format!("ctl-{inode}")));
    let _cleanup = RemoveOnDrop(vec![
        cookie_pins.clone(),
        cookie_state.clone(),
        control.clone(),
        legacy_pins.clone(),
        legacy_state.clone(),
        legacy_control.clone(),
    ]);
    assert!(
        pin_dir(old.name(), "bond2").unwrap().starts_with(&cookie_pins)
            && state_file(old.name(), "bond2").unwrap().starts_with(&cookie_state)
    );
    daemon.kill().unwrap();
    daemon.hand_over();
    // bond0 and bond1 as an earlier version named them, moved whole directories at a time (a
    // sweep by another test's daemon finds the inode's entry with its links attached).
    fs::rename(&cookie_pins, &legacy_pins).unwrap();
    fs::create_dir(&cookie_pins).unwrap();
    fs::rename(legacy_pins.join("bond2"), cookie_pins.join("bond2")).unwrap();
    fs::rename(&cookie_state, &legacy_state).unwrap();
    fs::create_dir(&cookie_state).unwrap();
    fs::rename(legacy_state.join("bond2.json"), cookie_state.join("bond2.json")).unwrap();
    fs::write(legacy_state.join("bond0.json"), "{ \"bond\": ").unwrap();
    fs::create_dir(&legacy_control).unwrap();
    fs::write(legacy_control.join("bond0.lock"), "").unwrap();
    let egress = [
        legacy_pins.join("bond0/link_egress_bond0"),
        legacy_pins.join("bond1/link_egress_bond1"),
        cookie_pins.join("bond2/link_egress_bond2"),
    ];
    for e in &egress {
        assert_ne!(tcx_link_ifindex(e).unwrap(), 0, "{} attached while its namespace lives", e.display());
    }

    // The namespace goes, its devices with it: the links are detached (or already cleared by
    // another test's daemon).
    drop(old);
    wait_until(Duration::from_secs(10), "the dead namespace's links detached", || {
        egress.iter().all(|e| tcx_link_ifindex(e).map_or(true, |i| i == 0))
    });
    let mut tried = Vec::new();
    let mut reused = None;
    for _ in 0..40 {
        let ns = namespace_with_links(4);
        if netns_inode(&ns) == inode {
            reused = Some(ns);
            break;
        }
        tried.push(ns);
    }
    let reused_inode = reused.is_some();
    let ns = reused.unwrap_or_else(|| tried.pop().unwrap());
    drop(tried);
    eprintln!("a new namespace got the dead one's inode {inode}: {reused_inode}");
    let macs = |ns: &bond_tests::Netns| -> Vec<String> {
        (0..4)
            .map(|i| {
                let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", &format!("eth{i}")]).unwrap()).unwrap();
                v[0]["address"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let own_macs = macs(&ns);

    let mut daemon = Daemon::start(&ns, &config(2), "bond0", dir.path()).unwrap_or_else(|e| panic!("up in the new namespace: {e:#}"));
    wait_until(Duration::from_secs(10), "bond1 up", || daemon.ctl(&["status", "bond1"]).is_ok());
    for b in ["bond0", "bond1"] {
        let events = daemon.ctl(&["events", b]).unwrap();
        assert!(events.contains("bond up with policy active-backup"), "{b} started afresh:\n{events}\n{}", daemon.log());
        assert!(!events.contains("adopted") && !events.contains("cannot be adopted"), "{b} took nothing of the dead namespace:\n{events}");
        assert!(pin_dir(ns.name(), b).unwrap().exists(), "{b} pins under the new namespace's cookie");
    }
    for gone in [&legacy_pins, &legacy_state, &legacy_control, &cookie_pins, &cookie_state, &control] {
        assert!(!gone.exists(), "{} cleared; daemon log:\n{}", gone.display(), daemon.log());
    }

    assert!(daemon.stop().unwrap().success(), "{}", daemon.log());
    assert_eq!(macs(&ns), own_macs, "the members have their own addresses, none of the dead namespace's members'");
    let new_inode = netns_inode(&ns);
    for left in [control_dir(ns.name()).unwrap(), run.join(format!("ctl-{new_inode}"))] {
        assert!(!left.exists(), "{} removed with the namespace's last daemon", left.display());
    }
}

/// A bond an earlier version left running (pins and state under the namespace's inode, its
/// daemon killed) is this namespace's: its transmit link is attached to the namespace's bond
/// device. The new daemon moves it to the cookie's paths and adopts it without a gap.
#[test]
fn a_bond_an_earlier_version_left_under_the_inode_is_taken_over() {
    let mut lab = lab(LabOptions::default().policy("active-backup"));
    ping(&lab, 1).unwrap();
    let (run, bpffs) = (std::path::Path::new("/run/bondctl"), std::path::Path::new("/sys/fs/bpf/bond"));
    let part = bond_tests::lab::netns_part(lab.a.ns.name()).unwrap();
    let legacy = format!("netns:{}", netns_inode(&lab.a.ns));
    let _cleanup = RemoveOnDrop(vec![bpffs.join(&legacy), run.join(&legacy)]);
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    flowed(&stream, 600, "before the kill");
    lab.kill_a().unwrap();
    // As the earlier version named them (whole directories: the links stay attached).
    fs::rename(bpffs.join(&part), bpffs.join(&legacy)).unwrap();
    fs::rename(run.join(&part), run.join(&legacy)).unwrap();
    lab.restart_a().unwrap();
    flowed(&stream, 1000, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    let log = lab.a.daemon().log();
    assert_eq!(lost, 0, "adopted without a gap; daemon log:\n{log}");
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}\n{log}");
    assert!(log.contains(&format!("took over the bond the previous version left under {legacy}")), "{log}");
    assert!(pins(&lab).join("link_egress_bond0").exists() && state_file(&lab).exists(), "under the cookie's paths now");
    assert!(!bpffs.join(&legacy).exists() && !run.join(&legacy).exists(), "the inode's directories are gone");
}
