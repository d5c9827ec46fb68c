//! Bringing a bond up and down: bad configurations change nothing, members get their settings
//! back, one daemon per bond.

use std::time::Duration;

use bond_tests::{
    Daemon, Lab, LabOptions, Netns, cmd,
    lab::{TempDir, bondctl},
    net::ping,
};

/// A namespace with two veth links to a second one, and the links' MAC addresses.
fn two_links() -> (Netns, Netns, Vec<String>) {
    let a = Netns::new("lc-a-").unwrap();
    let b = Netns::new("lc-b-").unwrap();
    let mut macs = Vec::new();
    for i in 0..2 {
        let n = format!("eth{i}");
        a.ip(&["link", "add", &n, "type", "veth", "peer", "name", &n, "netns", b.name()]).unwrap();
        a.ip(&["link", "set", &n, "up"]).unwrap();
        b.ip(&["link", "set", &n, "up"]).unwrap();
        macs.push(mac(&a, &n));
    }
    (a, b, macs)
}

fn mac(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-j", "link", "show", "dev", dev]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec("sysctl", &["-n", key]).unwrap().trim().to_string()
}

#[test]
fn a_bad_config_is_rejected_naming_the_key_and_nothing_changes() {
    let (a, _b, macs) = two_links();
    let dir = TempDir::new().unwrap();
    let bond = bond_tests::unique_name("bd");
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth1]\n    policy: balance-xor\n    packetsPerLink: 4\n")).unwrap();
    let out = cmd::output(&bondctl().to_string_lossy(), &["--netns", a.name(), "up", "--config", &cfg.to_string_lossy()]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.yaml") && err.contains(&format!("bonds.{bond}")) && err.contains("unknown field `packetsPerLink`"), "{err}");
    assert!(a.ip(&["link", "show", "dev", &bond]).is_err(), "no bond device was created");
    assert_eq!(mac(&a, "eth0"), macs[0]);
    assert!(!bond_tests::lab::pin_dir(a.name(), &bond).unwrap().exists(), "no pins");

    // A member that does not exist: refused too, before anything is touched.
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth7]\n")).unwrap();
    let out = cmd::output(&bondctl().to_string_lossy(), &["--netns", a.name(), "up", "--config", &cfg.to_string_lossy()]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("interface eth7 does not exist"), "{err}");
    assert!(a.ip(&["link", "show", "dev", &bond]).is_err());
    assert_eq!(mac(&a, "eth0"), macs[0], "eth0 untouched");
}

#[test]
fn stopping_the_daemon_removes_the_bond_and_restores_members() {
    let (a, _b, macs) = two_links();
    let dir = TempDir::new().unwrap();
    let bond = bond_tests::unique_name("bd");
    let cfg = dir.path().join("ok.yaml");
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth1]\n    addresses: [198.51.100.1/24]\n")).unwrap();
    let ipv6_before = sysctl(&a, "net.ipv6.conf.eth1.disable_ipv6");
    let mut d = Daemon::start(&a, &cfg, &bond, dir.path()).unwrap();
    // Up: the bond has the first member's MAC, every member has the bond's, members' IPv6 is off.
    assert_eq!(mac(&a, &bond), macs[0]);
    assert_eq!(mac(&a, "eth1"), macs[0]);
    assert_eq!(sysctl(&a, "net.ipv6.conf.eth1.disable_ipv6"), "1");
    let pins = bond_tests::lab::pin_dir(a.name(), &bond).unwrap();
    for map in ["config", "member_usable", "member_stats", "flows"] {
        assert!(pins.join(map).exists(), "map {map} pinned");
    }
    // bpftool reads the pinned maps with field names (BTF).
    let dump = cmd::run("bpftool", &["-j", "map", "dump", "pinned", &pins.join("config").to_string_lossy()]).unwrap();
    assert!(dump.contains("\"member_ifindex\""), "BTF field names in bpftool output");
    let status = d.stop().unwrap();
    assert!(status.success(), "clean exit on SIGTERM:\n{}", d.log());
    assert!(a.ip(&["link", "show", "dev", &bond]).is_err(), "bond device removed");
    assert_eq!(mac(&a, "eth1"), macs[1], "eth1 has its own MAC again");
    assert_eq!(sysctl(&a, "net.ipv6.conf.eth1.disable_ipv6"), ipv6_before, "IPv6 setting restored");
    assert!(!pins.exists(), "pins removed");
}

/// `mtu` (netplan's, ifupdown's, NetworkManager's; what `bondctl import` carries over): the
/// bond and every member get it, the members their own back when the bond goes; with
/// `--ebpf-log` the data plane's diagnostics are on and the bond works the same.
#[test]
fn the_bonds_mtu_reaches_its_members_and_they_get_theirs_back() {
    let (a, b, _) = two_links();
    let dir = TempDir::new().unwrap();
    let bond = bond_tests::unique_name("bd");
    let cfg = dir.path().join("mtu.yaml");
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth1]\n    addresses: [198.51.100.1/24]\n    mtu: 9000\n")).unwrap();
    let mtu = |ns: &Netns, dev: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", "dev", dev]).unwrap()).unwrap();
        v[0]["mtu"].as_u64().unwrap()
    };
    let mut d = Daemon::start_with(&a, &cfg, &bond, dir.path(), &["--ebpf-log"]).unwrap();
    assert_eq!((mtu(&a, &bond), mtu(&a, "eth0"), mtu(&a, "eth1")), (9000, 9000, 9000));
    assert!(d.log().contains("the data plane's diagnostics are on"), "{}", d.log());
    // Jumbo frames cross it (the far ends take them too).
    for i in 0..2 {
        b.ip(&["link", "set", &format!("eth{i}"), "mtu", "9000"]).unwrap();
        b.ip(&["addr", "add", &format!("198.51.100.{}/24", 2 + i), "dev", &format!("eth{i}")]).unwrap();
    }
    a.exec("ping", &["-q", "-c", "3", "-i", "0.1", "-W", "2", "-s", "8000", "-M", "do", "198.51.100.2"]).unwrap();
    assert!(d.stop().unwrap().success(), "{}", d.log());
    assert_eq!((mtu(&a, "eth0"), mtu(&a, "eth1")), (1500, 1500), "members' own MTU back");
    // Out of range: named, nothing made.
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth1]\n    mtu: 20\n")).unwrap();
    let out = cmd::output(&bondctl().to_string_lossy(), &["--netns", a.name(), "check", "--config", &cfg.to_string_lossy()]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("bonds.{bond}.mtu")) && err.contains("68..=65535"), "{err}");
}

#[test]
fn a_second_daemon_for_the_same_bond_is_refused_and_the_first_keeps_running() {
    let lab = Lab::start(LabOptions::default()).unwrap();
    let cfg = lab.config_path(&lab.a);
    let out = cmd::output(&bondctl().to_string_lossy(), &["--netns", lab.a.ns.name(), "up", "--config", &cfg.to_string_lossy()]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already run by another bondctl"), "{err}");
    // The refused daemon has exited; damage it did on its way out would show without any
    // signal: give it 100 ms before checking that the first bond still works.
    std::thread::sleep(Duration::from_millis(100));
    ping(&lab, 2).unwrap();
}

#[test]
fn status_reads_like_proc_net_bonding() {
    let lab = Lab::start(LabOptions::default().policy("active-backup")).unwrap();
    ping(&lab, 2).unwrap();
    let text = lab.a.daemon().ctl(&["status", &lab.a.bond]).unwrap();
    for want in [
        "Bonding Policy: active-backup",
        "MII Status: up",
        "Currently Active Member: eth0",
        "Member Interface: eth2",
        "Link Failure Count: 0",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn links_flows_stats_and_events_show_what_happened() {
    let lab =
        Lab::start(LabOptions::default().policy("l34").settings("policies:\n  l34: { basePolicy: balance-xor, xmitHashPolicy: layer3+4 }"))
            .unwrap();
    ping(&lab, 2).unwrap();
    // 32 flows of 100 datagrams: the sampled flow table sees each of them.
    let flows = bond_tests::net::UdpFlows::new(&lab, 32, 47000).unwrap();
    flows.send(100, 1000).unwrap();
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&lab.a.daemon().ctl(args).unwrap()).unwrap() };

    let top = json(&["flows", &lab.a.bond, "--top", "5", "--json"]);
    let top = top.as_array().unwrap();
    assert_eq!(top.len(), 5, "{top:#?}");
    let bytes: Vec<u64> = top.iter().map(|f| f["bytes"].as_u64().unwrap()).collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "sorted by bytes: {bytes:?}");
    for f in top {
        assert_eq!(f["proto"], "udp");
        assert!(f["src"].as_str().unwrap().starts_with(&format!("{}:470", lab.a.addr)), "{f}");
        assert!(f["dst"].as_str().unwrap().starts_with(&format!("{}:", lab.b.addr)), "{f}");
        assert!(["eth0", "eth1", "eth2"].contains(&f["member"].as_str().unwrap()), "{f}");
    }
    let text = lab.a.daemon().ctl(&["flows", &lab.a.bond]).unwrap();
    assert!(text.starts_with("SOURCE") && text.contains("udp"), "{text}");

    let links = json(&["links", &lab.a.bond, "--json"]);
    assert_eq!(links.as_array().unwrap().len(), 3);
    let text = lab.a.daemon().ctl(&["links", &lab.a.bond]).unwrap();
    assert_eq!(text.lines().count(), 4, "a header and a line per member:\n{text}");

    let stats = json(&["stats", &lab.a.bond, "--json"]);
    let tx: u64 = stats["members"].as_array().unwrap().iter().map(|m| m["tx_packets"].as_u64().unwrap()).sum();
    assert!(tx >= 3200, "every datagram counted: {tx}");

    lab.cut(1).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = json(&["events", &lab.a.bond, "--json"]);
        let text: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
        if let Some(e) =
            events.as_array().unwrap().iter().find(|e| e["message"].as_str().is_some_and(|m| m.contains("eth1 failed: no carrier")))
        {
            // Wall-clock time people read (RFC 3339, UTC, milliseconds) and a kind.
            let time = e["time"].as_str().unwrap_or_default();
            assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "event time {time:?}");
            assert_eq!(e["kind"], "health", "{e}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failure event: {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

use bond_tests::cmd::Reaped;

#[test]
fn runs_under_ip_netns_exec_with_its_own_bpf_filesystem() {
    // `ip netns exec` remounts /sys, hiding /sys/fs/bpf: bondctl pins into the host's.
    let (a, b, _) = two_links();
    b.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]).unwrap();
    b.ip(&["addr", "add", "198.51.100.3/24", "dev", "eth1"]).unwrap();
    let dir = TempDir::new().unwrap();
    let bond = bond_tests::unique_name("bd");
    let cfg = dir.path().join("ns.yaml");
    std::fs::write(&cfg, format!("bonds:\n  {bond}:\n    links: [eth0, eth1]\n    addresses: [198.51.100.1/24]\n")).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", a.name()])
        .arg(bondctl())
        .args(["up", "--config"])
        .arg(&cfg)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut daemon = Reaped(child);
    let status = || a.exec(&bondctl().to_string_lossy(), &["status", &bond, "--json"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while status().is_err() {
        assert!(daemon.0.try_wait().unwrap().is_none(), "bondctl exited: {}", std::fs::read_to_string(dir.path().join("log")).unwrap());
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.exec("ping", &["-q", "-c", "2", "-i", "0.1", "-W", "2", "198.51.100.2"]).expect("ping through the bond");
    let s: serde_json::Value = serde_json::from_str(&status().unwrap()).unwrap();
    assert!(s[0]["members"][0]["tx_packets"].as_u64().unwrap() >= 2, "the data plane counted the pings");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.0.wait().unwrap().success(), "clean exit");
    assert!(a.ip(&["link", "show", "dev", &bond]).is_err(), "bond removed");
}

#[test]
fn bonds_of_the_same_name_in_two_namespaces_keep_apart() {
    let mut one = Lab::start(LabOptions::default().policy("balance-xor")).unwrap();
    let two = Lab::start(LabOptions::default().policy("active-backup")).unwrap();
    assert_eq!((one.a.bond.as_str(), two.a.bond.as_str()), ("bond0", "bond0"));
    ping(&one, 2).unwrap();
    ping(&two, 2).unwrap();
    let pins = |lab: &Lab| bond_tests::lab::pin_dir(lab.a.ns.name(), &lab.a.bond).unwrap();
    let state = |lab: &Lab| bond_tests::lab::state_file(lab.a.ns.name(), &lab.a.bond).unwrap();
    assert_ne!(pins(&one), pins(&two), "each namespace pins its own data plane");
    for lab in [&one, &two] {
        assert!(pins(lab).join("config").exists() && state(lab).exists(), "{} and {}", pins(lab).display(), state(lab).display());
    }
    assert_eq!(one.a.daemon().status().unwrap()["policy"]["name"], "balance-xor");
    assert_eq!(two.a.daemon().status().unwrap()["policy"]["name"], "active-backup");
    // One stops: the other's bond, pins and state are untouched and it keeps forwarding.
    one.a.daemon.as_mut().unwrap().stop().unwrap();
    assert!(!pins(&one).exists() && !state(&one).exists(), "the stopped bond's pins and state are gone");
    assert!(pins(&two).join("config").exists() && state(&two).exists(), "the other bond's are kept");
    ping(&two, 2).unwrap();
    assert_eq!(two.a.daemon().status().unwrap()["members"].as_array().unwrap().len(), 3);
}
