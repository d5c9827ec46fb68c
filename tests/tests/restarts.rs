//! The daemon stopping and starting around a running bond: killed (the data plane runs on
//! without it), restarted and adopting the bond, `--persist`, `down` without a daemon, a corrupt
//! state file, a restart that resizes the flow table, what a dead namespace left behind, and
//! the peer's bond made anew.

use std::{fs, time::Duration};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Stream, losses, ping},
    wait_until,
};

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Where A's bond keeps its state file.
fn state_file(lab: &Lab) -> std::path::PathBuf {
    bond_tests::lab::state_file(lab.a.ns.name(), &lab.a.bond).unwrap()
}

/// Ids of the BPF links pinned for A's bond.
fn link_ids(lab: &Lab) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(lab.a.pins())
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
    stream.flowed(600, "before the kill");
    lab.kill_a().unwrap();
    // Nobody runs the bond now: the kernel still does (700 ms worth of traffic arrives).
    stream.flowed(1400, "with no daemon");
    lab.restart_a().unwrap();
    stream.flowed(1000, "after the restart");
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
    assert_eq!(lab.a.ns.link_macs(lab.links), own_macs, "members have their own MAC addresses back");
    assert!(!lab.a.pins().exists(), "pins removed");
}

#[test]
fn a_daemon_started_under_ip_netns_exec_pins_on_the_host_and_survives_sigkill() {
    // `ip netns exec` gives the daemon a private mount namespace with a fresh /sys: pins in a
    // BPF filesystem mounted there would go with it at SIGKILL, and the bond would stop.
    let mut lab = lab(LabOptions::default().policy("balance-xor").a_under_ip_netns_exec());
    ping(&lab, 2).unwrap();
    assert!(lab.a.pins().join("config").exists(), "the bond pins into the host's BPF filesystem: {}", lab.a.pins().display());
    let stream = Stream::start(&lab, Duration::from_micros(500), 20_000).unwrap();
    stream.flowed(600, "before the kill");
    lab.kill_a().unwrap();
    stream.flowed(1400, "with no daemon");
    lab.restart_a().unwrap();
    stream.flowed(600, "after the restart");
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
    assert!(!lab.a.pins().exists(), "pins removed");
    assert!(!state_file(&lab).exists(), "state file removed");
    assert_eq!(lab.a.ns.link_macs(lab.links), own_macs, "members have their own MAC addresses back");
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
    stream.flowed(400, "before the stop");
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    stream.flowed(600, "with the daemon stopped");
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, &["--persist"]).unwrap());
    stream.flowed(600, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    assert_eq!(lost, 0, "service restart with --persist loses nothing ({sent} sent); log:\n{}", lab.a.daemon().log());
    // `down` through the daemon removes it for good, and the daemon exits with its last bond.
    let out = lab.a.daemon().ctl(&["down", &lab.a.bond]).unwrap();
    assert!(out.contains("removed"), "{out}");
    assert!(lab.a.ns.ip(&["link", "show", &lab.a.bond]).is_err(), "bond device deleted");
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
    let macs_before = lab.a.ns.link_macs(lab.links);
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
    assert_eq!(lab.a.ns.link_macs(lab.links), macs_before, "members keep the bond's address");
    assert!(lab.a.pins().exists(), "pins kept");

    // Repaired, the bond is adopted.
    fs::write(&state, original).unwrap();
    lab.restart_a().unwrap();
    let events = lab.a.daemon().ctl(&["events", &bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}");
}

/// `max_entries` and kernel memory of the flow table's pin, as bpftool shows them.
fn flow_table_in_kernel(lab: &Lab) -> (u64, u64) {
    map_in_kernel(lab, "flows")
}

/// `max_entries` and kernel memory of pinned map `name`.
fn map_in_kernel(lab: &Lab, name: &str) -> (u64, u64) {
    let path = lab.a.pins().join(name).to_string_lossy().to_string();
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
    assert_eq!(map_in_kernel(&lab, "sticky_flows").0, 512, "flow-static's table: sets of 8 entries, twice the flows");
    let status = lab.a.daemon().status().unwrap();
    assert_eq!(status["counters"]["flow_table_size"], 2048);
    // 48,000 flows (one socket to 48,000 ports; nothing listens, B's port-unreachable answers
    // are flows of B's): the table samples one packet in 16, so about 3,000 flows are recorded,
    // and it keeps at most 2,048.
    lab.a
        .ns
        .enter(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for port in 10_000..58_000u16 {
                bond_tests::net::send_retrying(&s, &[0u8; 32], format!("{}:{port}", bond_tests::lab::ADDR_B).parse().unwrap()).unwrap();
            }
        })
        .unwrap();
    let flows = lab.a.daemon().status().unwrap()["counters"]["flows"].as_u64().unwrap();
    println!("flow table of 2048: {flows} flows held of 48000 sent, {memlock} bytes of kernel memory");
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
    stream.flowed(600, "before the restart");
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
    assert_eq!(map_in_kernel(&lab, "sticky_flows").0, 2048, "flow-static's table resized with it");
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
    let own_macs = ns.link_macs(4);

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
    assert_eq!(ns.link_macs(4), own_macs, "the members have their own addresses, none of the dead namespace's members'");
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
    stream.flowed(600, "before the kill");
    lab.kill_a().unwrap();
    // As the earlier version named them (whole directories: the links stay attached).
    fs::rename(bpffs.join(&part), bpffs.join(&legacy)).unwrap();
    fs::rename(run.join(&part), run.join(&legacy)).unwrap();
    lab.restart_a().unwrap();
    stream.flowed(1000, "after the restart");
    let (sent, got) = stream.finish().unwrap();
    let (lost, _) = losses(sent, &got);
    let log = lab.a.daemon().log();
    assert_eq!(lost, 0, "adopted without a gap; daemon log:\n{log}");
    let events = lab.a.daemon().ctl(&["events", &lab.a.bond]).unwrap();
    assert!(events.contains("adopted the running bond"), "{events}\n{log}");
    assert!(log.contains(&format!("took over the bond the previous version left under {legacy}")), "{log}");
    assert!(lab.a.pins().join("link_egress_bond0").exists() && state_file(&lab).exists(), "under the cookie's paths now");
    assert!(!bpffs.join(&legacy).exists() && !run.join(&legacy).exists(), "the inode's directories are gone");
}

/// The peer's bond made anew (its daemon stopped, which removes the bond, and started again,
/// with a new probe id): its replies stop on every link at once, though one link's last reply
/// came at another point of the probe interval than the others'. No link here fails or is punished for the peer's
/// absence, and the new peer bond is probed by unicast within seconds.
#[test]
fn a_peer_bond_made_anew_fails_no_link_of_this_one() {
    let mut lab = lab(LabOptions::default().policy("balance-xor"));
    ping(&lab, 2).unwrap();
    let peers = |lab: &Lab| -> Vec<Option<String>> {
        let s = lab.a.daemon().status().unwrap();
        (0..lab.links).map(|i| Daemon::member(&s, &format!("eth{i}"))["probe_peer"].as_str().map(String::from)).collect()
    };
    wait_until(Duration::from_secs(10), "the peer bond probed on every link", || peers(&lab).iter().all(Option::is_some));
    // Past the quick probes of new links: each link on its regular interval, a third of 5 s.
    std::thread::sleep(Duration::from_secs(3));
    // eth1 misses a reply (its carrier stays), so its requests go at their own point of the
    // interval from then on, as a loaded link's do: the links' last replies will be apart.
    lab.impair(1, 100).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    lab.repair(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let old = peers(&lab);
    let since = std::time::SystemTime::now();
    let config = lab.config_path(&lab.b);
    lab.b.daemon.as_mut().unwrap().stop().unwrap();
    lab.b.daemon = Some(Daemon::start_with(&lab.b.ns, &config, &lab.b.bond, lab.dir(), &[]).unwrap());
    wait_until(Duration::from_secs(15), "the new peer bond probed on every link", || {
        peers(&lab).iter().zip(&old).all(|(new, old)| new.is_some() && new != old)
    });
    // And on past the failover interval from the stop, had no link failed yet.
    let waited = since.elapsed().unwrap();
    std::thread::sleep(Duration::from_secs(7).saturating_sub(waited));
    let status = lab.a.daemon().status().unwrap();
    let judged = Daemon::events_since(&status, &["health", "punishment", "usable"], since);
    println!("after the peer bond was made anew: {judged:?}");
    assert!(
        !judged.iter().any(|e| e.contains(" failed") || e.contains("punished") || e.contains("not usable")),
        "no link failed for the peer's absence: {judged:?}"
    );
    let warned = Daemon::events_since(&status, &["warning"], since);
    assert!(
        warned.iter().any(|e| e.starts_with("the peer answers probes on no link")),
        "the peer's absence was seen as its own: {warned:?}"
    );
    ping(&lab, 2).unwrap();
}
