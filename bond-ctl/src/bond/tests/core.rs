//! The core alone: a sample and the time in, actions out; outcomes fed back by hand (the
//! bond-level tests, with their executor, are in the parent module).

use super::*;
use crate::bond::{Action, Outcome, Sample, SendKind};

/// A core of `n` members (as `bond` builds it), its first actions already carried out.
fn core(n: u8, yaml: &str) -> Core {
    bond(n, yaml).core
}

fn carrier(up: &[(u8, bool)]) -> Sample {
    Sample { carrier: up.iter().copied().collect(), ..Default::default() }
}

#[test]
fn a_carrier_loss_becomes_mask_then_config_then_announcement_in_that_order() {
    let mut c = core(2, "    mode: active-backup\n    miimon: 5\n");
    c.on_tick(&carrier(&[(0, true), (1, true)]), 0);
    c.take_actions();
    c.on_tick(&carrier(&[(0, false), (1, true)]), 5 * MS);
    let actions = c.take_actions();
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Action::SetUsable(0b10) => "mask",
            Action::WriteConfig(cfg) if cfg.policies[0].active == 1 => "config",
            Action::Send { port: Port::Member(1), ether_type: 0x0806, kind: SendKind::FirstAnnouncement { slot: 1 }, .. } => "garp",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    // The mask is the fast path: the data plane stops using eth0 before anything else.
    assert_eq!(kinds, ["mask", "config", "garp"], "of {} actions", actions.len());
    assert!(c.take_actions().is_empty(), "taken once");
}

#[test]
fn a_tick_wants_only_what_it_will_use() {
    let c = core(2, "    mode: active-backup\n    miimon: 100\n");
    let w = c.wants(0);
    assert!(w.carrier && !w.rx_packets && !w.seen && !w.lacpdus && !w.bucket_bytes && !w.neighbours, "{w:?}");
    let mut c = c;
    c.on_tick(&carrier(&[]), 0);
    assert!(!c.wants(50 * MS).carrier, "not before the next miimon");
    assert!(c.wants(100 * MS).carrier);
    assert!(core(2, "    mode: 802.3ad\n").wants(0).lacpdus);
}

#[test]
fn an_address_a_member_refuses_is_taken_back_and_the_config_rewritten_with_the_real_ones() {
    let mut c = core(2, "    mode: balance-tlb\n    miimon: 5\n");
    c.on_tick(&carrier(&[(0, false), (1, true)]), 5 * MS);
    let actions = c.take_actions();
    let macs: Vec<&Action> = actions.iter().filter(|a| matches!(a, Action::SetMac { .. })).collect();
    assert_eq!(macs.len(), 2, "the holder gives the bond's address up, then eth1 takes it: {actions:?}");
    assert_eq!(c.members[1].link.mac, BOND_MAC, "decided");
    // The kernel refuses the first change: the second and the config resting on it are skipped.
    let mut outcome = Outcome::default();
    let mut skipped = false;
    for a in actions {
        if matches!(a, Action::SetMac { .. }) && outcome.failed.is_empty() {
            outcome.failed.push((a, "Operation not permitted".into()));
        } else if outcome.blocks(&a) {
            skipped = true;
            outcome.skipped.push(a);
        } else {
            outcome.done.push(a);
        }
    }
    assert!(skipped);
    c.executed(outcome, 5 * MS);
    assert_eq!(c.members[0].link.mac, BOND_MAC, "eth0 keeps the address it has");
    assert_eq!(c.members[1].link.mac, [2, 0, 0, 0, 1, 1], "eth1 keeps its own");
    assert!(c.events.iter().any(|e| e.message.starts_with("cannot give eth0 the MAC address")), "{:?}", c.events);
    // The next tick writes a config with the addresses members really have.
    c.on_tick(&carrier(&[(0, false), (1, true)]), 10 * MS);
    let cfg = c.take_actions().into_iter().find_map(|a| if let Action::WriteConfig(cfg) = a { Some(cfg) } else { None });
    let cfg = cfg.expect("a config written again");
    assert_eq!((&cfg.member_mac[0][..6], &cfg.member_mac[1][..6]), (&BOND_MAC[..], &[2, 0, 0, 0, 1, 1][..]));
}

#[test]
fn a_probe_that_never_left_is_not_counted_lost() {
    let settings = "settings:\n  policies:\n    fast: { basePolicy: active-backup, failoverInterval: 30 }\n";
    let mut b = bond(2, &format!("    policy: fast\n    miimon: 5\n{settings}"));
    let t = b.probe_for(0, 200 * MS, &[]);
    let outcomes = b.members[0].probes.outcomes();
    // Probes on eth0 fail to go out (the socket's buffer full) for a while.
    for i in 0..60 {
        let now = t + i * MS;
        b.core.on_tick(&Sample::default(), now);
        let mut outcome = Outcome::default();
        for a in b.core.take_actions() {
            match a {
                Action::Send { kind: SendKind::Probe { slot: 0, .. }, .. } => outcome.failed.push((a, "No buffer space available".into())),
                a => outcome.done.push(a),
            }
        }
        b.core.executed(outcome, now);
    }
    assert!(b.members[0].probes.outcomes() <= outcomes, "no loss recorded for probes that were not sent");
    assert!(b.members[0].probes.metrics(1.0).plr == 0.0, "{:?}", b.members[0].probes.metrics(1.0));
}

#[test]
fn a_link_back_at_another_speed_gets_the_lacp_key_of_that_speed() {
    let mut b = bond(2, "    mode: 802.3ad\n    miimon: 5\n");
    let key = |b: &Bond<Fake>, slot: u8| b.lacp_status().unwrap().ports.iter().find(|p| p.slot == slot).unwrap().actor.key;
    b.io.speed.insert("eth1".into(), 1000);
    b.run(0, 10 * MS, 5 * MS);
    let (k0, k1) = (key(&b, 0), key(&b, 1));
    b.cut(1);
    b.run(15 * MS, 20 * MS, 5 * MS);
    // Back at 10 Gb/s.
    b.io.speed.insert("eth1".into(), 10_000);
    b.restore(1);
    b.run(25 * MS, 30 * MS, 5 * MS);
    assert_eq!(b.members[1].speed, Some(10_000));
    assert_ne!(key(&b, 1), k1, "the key follows the speed");
    assert_eq!(key(&b, 0), k0, "the other port keeps its key");
    assert!(b.event_texts().iter().any(|e| e == "eth1 runs at 10000 Mb/s (was 1000 Mb/s)"), "{:?}", b.event_texts());
}

#[test]
fn members_are_promiscuous_while_the_bond_is() {
    let mut b = bond(2, "    mode: active-backup\n");
    let promisc = |on| crate::bond::RxFilter { promisc: on, unicast: vec![], addresses: vec![] };
    b.on_rx_filter(&promisc(true), 0).unwrap();
    assert_eq!(b.io.promisc, [("eth0".to_string(), true), ("eth1".to_string(), true)]);
    b.on_rx_filter(&promisc(true), 0).unwrap();
    assert_eq!(b.io.promisc.len(), 2, "no change, nothing done");
    b.on_rx_filter(&promisc(false), 0).unwrap();
    assert_eq!(&b.io.promisc[2..], [("eth0".to_string(), false), ("eth1".to_string(), false)]);
}

/// bonding's `dev_uc_sync`: addresses of devices above the bond (a macvlan) go into every
/// member's unicast filter and come out when they go, with no promiscuity; the state file lists
/// them, so a bond taken down without a daemon takes them off its members too.
#[test]
fn addresses_of_devices_above_the_bond_go_to_every_members_filter_and_come_out() {
    let mut b = bond(2, "    mode: active-backup\n");
    let (mv1, mv2) = ([2, 0, 0, 0x12, 0x34, 0x56], [2, 0, 0, 0x12, 0x34, 0x57]);
    let rx = |unicast: Vec<[u8; 6]>| crate::bond::RxFilter { promisc: false, unicast, addresses: vec![] };
    b.on_rx_filter(&rx(vec![mv1, mv2]), 0).unwrap();
    let on = |mac| [("eth0".to_string(), mac, true), ("eth1".to_string(), mac, true)];
    assert_eq!(b.io.unicast, [on(mv1), on(mv2)].concat());
    assert!(b.io.promisc.is_empty(), "no member made promiscuous for them");
    assert_eq!(b.io.states.last().unwrap().unicast(), [mv1, mv2], "recorded in the state file");
    b.io.unicast.clear();
    b.on_rx_filter(&rx(vec![mv2]), MS).unwrap();
    assert_eq!(b.io.unicast, [("eth0".to_string(), mv1, false), ("eth1".to_string(), mv1, false)]);
    assert_eq!(b.io.states.last().unwrap().unicast(), [mv2]);
}

#[test]
fn a_member_whose_device_is_deleted_is_released_and_wanted_back_on_a_device_of_its_name() {
    let mut b = bond(3, "    mode: 802.3ad\n");
    let eth1 = b.member(1).unwrap().link.clone();
    b.on_link_event(&crate::netdev::LinkEvent::Removed { index: eth1.index, name: eth1.name.clone() }, MS).unwrap();
    let m = b.member(1).unwrap();
    assert!(m.gone && !m.usable, "released, kept as a member with its slot");
    assert_eq!(b.usable_now() & 0b010, 0, "no traffic on it");
    assert!(b.events_after(0).iter().any(|e| e.message.contains("eth1: its device was deleted")), "an event says so");
    let status = crate::bond::monitor::why_not_usable(m, Some(None));
    assert!(status.contains("deleted"), "status says why: {status}");
    // No LACP port (its socket went with the device) until it is back.
    b.run(2 * MS, 20 * MS, 5 * MS);
    assert!(!b.core.aggregation.as_ref().unwrap().ports.contains(&1));
    // A device of its name, with a new ifindex, is wanted back; one refused before is not.
    let back = Link { index: 99, ..eth1.clone() };
    assert!(b.wants_back(&back));
    b.refuse_retake("eth1", 99);
    assert!(!b.wants_back(&back));
    assert!(b.wants_back(&Link { index: 100, ..eth1 }));
}

#[test]
fn active_backup_sends_arp_monitor_requests_on_the_active_member_only() {
    // Requests from a backup would carry the bond's address to the backup's switch port.
    let mut b = bond(3, "    mode: active-backup\n    arp_interval: 20\n    arp_ip_target: [192.0.2.9]\n    arp_validate: all\n");
    b.io.arp_answered = true;
    let arp_ports = |b: &Bond<Fake>| -> std::collections::BTreeSet<Port> {
        let sent = std::mem::take(&mut *b.io.sent.borrow_mut());
        sent.iter().filter(|(_, f, et)| *et == 0x0806 && f[21] == 1).map(|(p, _, _)| *p).collect()
    };
    b.run(0, 100 * MS, 5 * MS);
    let active = b.active_now() as u8;
    assert_eq!(arp_ports(&b), [Port::Member(active)].into(), "requests on the active member alone");
    b.cut(active);
    b.run(105 * MS, 300 * MS, 5 * MS);
    let next = b.active_now() as u8;
    assert_ne!(next, active);
    assert_eq!(arp_ports(&b), [Port::Member(next)].into(), "then on the new one alone");
}

/// The kernel selftest's arp_validate scenario: a bond that takes longer to come up than the
/// ARP monitor's window does not fail its backups before the monitor's first round (found by
/// the port of bond_options.sh: both backups failed at bond-up, then recovered).
#[test]
fn the_arp_monitor_judges_nobody_before_its_first_round() {
    // The variants judged by ARP alone (the fake counts no received traffic, which 0-2 take).
    for validate in 3..=6 {
        let mut b = bond(
            3,
            &format!("    mode: active-backup\n    arp_interval: 100\n    arp_ip_target: [192.0.2.9]\n    arp_validate: {validate}\n"),
        );
        b.io.arp_answered = true;
        // The carrier thread wakes the loop before its first tick, a second after start.
        b.io.now.set(1_000 * MS);
        b.on_carrier_change(1_000 * MS).unwrap();
        b.run(1_000 * MS, 2_000 * MS, 5 * MS);
        let failed: Vec<String> = b.event_texts().into_iter().filter(|e| e.contains("failed")).collect();
        assert!(failed.is_empty(), "arp_validate {validate}: {failed:?}");
        assert_eq!(b.usable_now(), 0b111, "arp_validate {validate}");
    }
}

#[test]
fn lacp_state_changes_are_written_to_the_state_file_for_the_next_controller() {
    let mut b = bond(2, "    mode: 802.3ad\n    lacp_rate: fast\n");
    let written = b.io.states.len();
    // No partner answers: the ports default and aggregate alone, a change worth writing.
    b.run(MS, 8 * 1000 * MS, 50 * MS);
    let states = &b.io.states[written..];
    assert!(!states.is_empty(), "LACP's changes were written down");
    let last = states.last().unwrap().lacp.clone().expect("with LACP's state");
    assert!(last.same_state(&b.core.lacp_snapshot().unwrap()), "the file holds the state in force");
    // A steady aggregate writes nothing more.
    let count = b.io.states.len();
    b.run(8 * 1000 * MS + 50 * MS, 12 * 1000 * MS, 50 * MS);
    assert_eq!(b.io.states.len(), count, "nothing changed, nothing written");
}

#[test]
fn addresses_stay_unique_through_any_walk_of_tlb_failovers_and_removals() {
    use rand::{Rng, SeedableRng};
    for seed in 0..200u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mode = if seed % 2 == 0 { "balance-tlb" } else { "balance-alb" };
        let mut b = bond(4, &format!("    mode: {mode}\n    miimon: 5\n"));
        let mut t = 0;
        // Addresses of members that left, as they have them back.
        let mut left: Vec<[u8; 6]> = Vec::new();
        for _ in 0..30 {
            let i = rng.random_range(0..4u8);
            match rng.random_range(0..10) {
                0 if b.members.len() > 1 && b.members.iter().any(|m| m.slot == i) => {
                    // What `begin_removal` decides; the member then gets its own address back.
                    let at = b.members.iter().position(|m| m.slot == i).unwrap();
                    let leaving = b.core.take_out(at, t);
                    b.execute(t).unwrap();
                    left.push(leaving.saved.unwrap().mac);
                }
                1..=4 => b.cut(i),
                _ => b.restore(i),
            }
            b.run(t, t + 20 * MS, 5 * MS);
            t += 25 * MS;
            let mut all: Vec<[u8; 6]> = b.members.iter().map(|m| m.link.mac).collect();
            all.extend(&left);
            let count = all.len();
            all.sort();
            all.dedup();
            assert_eq!(
                all.len(),
                count,
                "seed {seed} ({mode}): two devices share an address: {:?}",
                b.members.iter().map(|m| (m.slot, m.link.mac)).collect::<Vec<_>>()
            );
        }
    }
}
