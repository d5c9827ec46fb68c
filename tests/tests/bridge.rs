//! The bond as a bridge port, a VM host's usual setup: the bond under a bridge, the host's
//! address on the bridge, a guest (a namespace) behind it. The bond's members follow its
//! promiscuity, and the guest is reached through the bond under every mode that keeps one
//! address for the bond (active-backup, balance-xor, balance-aware, balance-tlb, balance-alb,
//! 802.3ad).

use std::time::Duration;

use bond_tests::{Lab, LabOptions, Netns, lab::ADDR_B, wait_until};

const GUEST: &str = "192.0.2.10";
const HOST: &str = "192.0.2.9";

/// `promiscuity` of `dev` as the kernel reports it.
fn promiscuity(ns: &Netns, dev: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "-d", "link", "show", dev]).unwrap()).unwrap();
    v[0]["promiscuity"].as_u64().unwrap()
}

/// Whether `dev` is promiscuous by request (the PROMISC flag), not merely counted so by the
/// kernel for a unicast list a veth cannot filter.
fn promisc_flag(ns: &Netns, dev: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show", dev]).unwrap()).unwrap();
    v[0]["flags"].as_array().unwrap().iter().any(|f| f == "PROMISC")
}

/// The unicast addresses in `dev`'s own list (`bridge fdb show dev DEV self`).
fn own_list(ns: &Netns, dev: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&ns.exec("bridge", &["-j", "fdb", "show", "dev", dev, "self"]).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["mac"].as_str())
        .filter(|m| !m.starts_with("33:33") && !m.starts_with("01:"))
        .map(str::to_string)
        .collect()
}

/// Puts A's bond under a bridge with the host's address and a guest behind it.
fn bridge_with_guest(lab: &Lab) -> Netns {
    let a = &lab.a.ns;
    let guest = Netns::new("guest-").unwrap();
    a.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    // The bond's address moves to the bridge, as on a VM host.
    a.ip(&["addr", "flush", "dev", &lab.a.bond]).unwrap();
    a.ip(&["link", "set", &lab.a.bond, "master", "br0"]).unwrap();
    a.ip(&["addr", "add", &format!("{HOST}/24"), "dev", "br0"]).unwrap();
    a.ip(&["link", "add", "vm0", "type", "veth", "peer", "name", "eth0", "netns", guest.name()]).unwrap();
    a.ip(&["link", "set", "vm0", "master", "br0"]).unwrap();
    for dev in ["vm0", "br0"] {
        a.ip(&["link", "set", dev, "up"]).unwrap();
    }
    guest.ip(&["addr", "add", &format!("{GUEST}/24"), "dev", "eth0"]).unwrap();
    guest.ip(&["link", "set", "eth0", "up"]).unwrap();
    guest
}

fn pings(from: &Netns, to: &str) -> bool {
    from.exec("ping", &["-q", "-c", "2", "-i", "0.2", "-W", "2", to]).is_ok_and(|out| out.contains("2 received"))
}

#[test]
fn a_bridge_above_the_bond_reaches_its_guests_and_members_follow_its_promiscuity() {
    for policy in ["active-backup", "balance-xor", "balance-aware", "balance-tlb", "balance-alb", "802.3ad"] {
        let opts = match policy {
            "balance-tlb" | "balance-alb" => LabOptions::default().policy("").bond_lines(&format!("mode: {policy}")),
            "802.3ad" => LabOptions::default().policy("").bond_lines("mode: 802.3ad\nlacp_rate: fast"),
            _ => LabOptions::default().policy(policy),
        };
        let mut lab = Lab::start(opts).unwrap();
        if policy == "802.3ad" {
            wait_until(Duration::from_secs(10), "LACP distributing on every link", || {
                lab.a.daemon().status().unwrap()["lacp"]["distributing"].as_u64().unwrap_or(0) == 0b111
            });
        }
        let members: Vec<String> = (0..lab.links).map(|i| format!("eth{i}")).collect();
        let before: Vec<u64> = members.iter().map(|m| promiscuity(&lab.a.ns, m)).collect();
        let guest = bridge_with_guest(&lab);
        wait_until(Duration::from_secs(3), "every member promiscuous under the bridge", || {
            members.iter().all(|m| promisc_flag(&lab.a.ns, m))
        });
        // B reaches the guest and the host behind the bond, and the guest reaches B.
        assert!(pings(&lab.b.ns, GUEST), "{policy}: B pings the guest");
        assert!(pings(&lab.b.ns, HOST), "{policy}: B pings the host on the bridge");
        assert!(pings(&guest, ADDR_B), "{policy}: the guest pings B");
        // Hosts the bridge learnt through the bond are the bridge's, not the bond's own
        // addresses: none reaches a member's unicast list (its own probe address aside), and
        // the members stay promiscuous.
        std::thread::sleep(Duration::from_millis(700));
        let guest_mac = guest.ip(&["-j", "link", "show", "eth0"]).unwrap();
        let guest_mac = serde_json::from_str::<serde_json::Value>(&guest_mac).unwrap()[0]["address"].as_str().unwrap().to_string();
        for m in &members {
            let list = own_list(&lab.a.ns, m);
            assert!(!list.contains(&guest_mac) && list.iter().all(|a| a.starts_with("06:")), "{policy}: {m}'s own list: {list:?}");
            assert!(promisc_flag(&lab.a.ns, m), "{policy}: {m} still promiscuous");
        }
        // Through a failover too: once both bonds have seen it (what was in flight on eth0 as
        // it went is the failover's loss, measured elsewhere).
        lab.cut(0).unwrap();
        for side in [&lab.a, &lab.b] {
            wait_until(Duration::from_secs(3), "eth0 out of use", || {
                side.daemon().status().is_ok_and(|s| bond_tests::Daemon::member(&s, "eth0")["usable"] == false)
            });
        }
        assert!(pings(&lab.b.ns, GUEST), "{policy}: B pings the guest after eth0 failed");
        lab.restore(0).unwrap();
        // Out of the bridge: members as they were.
        lab.a.ns.ip(&["link", "set", &lab.a.bond, "nomaster"]).unwrap();
        wait_until(Duration::from_secs(3), "members' promiscuity as before", || {
            members.iter().map(|m| promiscuity(&lab.a.ns, m)).collect::<Vec<_>>() == before
        });
        lab.a.ns.ip(&["link", "set", &lab.a.bond, "master", "br0"]).unwrap();
        wait_until(Duration::from_secs(3), "promiscuous again", || members.iter().all(|m| promiscuity(&lab.a.ns, m) >= 1));
        // A clean stop gives the members their own state back: not promiscuous, as the lab
        // made them. (While they were members, the kernel counted one promiscuity each for
        // the probe address in their unicast list: a veth filters no unicast in hardware.)
        lab.a.daemon.as_mut().unwrap().stop().unwrap();
        assert_eq!(members.iter().map(|m| promiscuity(&lab.a.ns, m)).collect::<Vec<_>>(), [0, 0, 0], "{policy}: members restored");
    }
}

#[test]
fn vlan_devices_on_the_bond_carry_tagged_traffic() {
    let lab = Lab::start(LabOptions::default().policy("balance-xor")).unwrap();
    // 802.1Q is a kernel module these machines may not have.
    if let Err(e) = lab.a.ns.ip(&["link", "add", "link", &lab.a.bond, "name", "vlan10", "type", "vlan", "id", "10"]) {
        bond_tests::skip("vlan_devices_on_the_bond_carry_tagged_traffic", &format!("no 802.1Q in this kernel ({e})"));
        return;
    }
    lab.b.ns.ip(&["link", "add", "link", &lab.b.bond, "name", "vlan10", "type", "vlan", "id", "10"]).unwrap();
    for (side, addr) in [(&lab.a, "198.51.100.1/24"), (&lab.b, "198.51.100.2/24")] {
        side.ns.ip(&["addr", "add", addr, "dev", "vlan10"]).unwrap();
        side.ns.ip(&["link", "set", "vlan10", "up"]).unwrap();
    }
    assert!(pings(&lab.a.ns, "198.51.100.2"), "tagged traffic crosses the bond");
    lab.cut(0).unwrap();
    assert!(pings(&lab.a.ns, "198.51.100.2"), "also after a member fails");
}
