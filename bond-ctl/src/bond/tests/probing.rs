//! Peer probes on a running bond: discovery, the peer bond, silence and flapping, the packet
//! schedule's delays from the probes' round trips.

use super::*;

/// Three members under balance-xor, failing a link after 30 ms without a reply (probes every
/// 10 ms).
fn three_links_probed_every_10_ms() -> Bond<Fake> {
    let settings = "settings:\n  policies:\n    fast: { basePolicy: balance-xor, failoverInterval: 30 }\n";
    bond(3, &format!("    policy: fast\n    miimon: 5\n{settings}"))
}

/// Peer probes fit for a shared segment: broadcast until a peer bond answers, then unicast
/// to the address it answered from (back to broadcast when it stops answering); with no peer
/// for 30 s, one discovery frame per member every 10 s.
#[test]
fn probes_discover_a_peer_by_broadcast_then_go_unicast_and_quieten_without_one() {
    let settings = "settings:\n  policies:\n    zt: { basePolicy: active-backup, failoverInterval: 300 }\n";
    let mut b = bond(1, &format!("    policy: zt\n    miimon: 5\n{settings}"));
    let dsts = |b: &Bond<Fake>| b.io.probe_dsts.borrow().clone();
    // No peer for 30 s: a probe every 100 ms, then one every 10 s.
    b.run(0, 29_999 * MS, 10 * MS);
    let early = dsts(&b).len();
    assert!((250..=310).contains(&early), "{early}");
    assert!(dsts(&b).iter().all(|d| *d == [0xff; 6]), "discovery is broadcast");
    assert!(b.probing_status(29_999 * MS).unwrap().starts_with("discovering: broadcast"));
    b.io.probe_dsts.borrow_mut().clear();
    b.run(30_000 * MS, 60_000 * MS, 10 * MS);
    assert_eq!(dsts(&b).len(), 3, "one per 10 s");
    assert!(b.probing_status(60_000 * MS).unwrap().contains("one broadcast per member every 10 s"));
    // A peer answers: unicast to the address it answered from.
    b.io.probe_dsts.borrow_mut().clear();
    let t = b.probe_for(60_001 * MS, 71_000 * MS, &[]);
    let peer = bond_common::probe::member_probe_mac(9, 0);
    assert_eq!(dsts(&b).last(), Some(&peer), "unicast to the peer's member");
    assert_eq!(b.members[0].probe_peer, Some(peer));
    assert!(b.event_texts().iter().any(|e| e.starts_with("eth0: a peer bond answers probes")));
    assert_eq!(b.probing_status(t).as_deref(), Some("to the peer bond, by unicast"));
    // It stops answering: after three unanswered requests, broadcast again.
    b.io.probe_dsts.borrow_mut().clear();
    b.probe_for(t, t + 200 * MS, &[0]);
    let d = dsts(&b);
    assert_eq!(d[..3], [peer; 3]);
    assert_eq!(d.last(), Some(&[0xff; 6]), "{d:?}");
}

/// On a segment with several bonds of ours, every member probes the same peer bond (the first
/// to answer): replies of another are not taken for its.
#[test]
fn every_member_probes_the_same_peer_bond() {
    let settings = "settings:\n  policies:\n    zt: { basePolicy: active-backup, failoverInterval: 300 }\n";
    let mut b = bond(2, &format!("    policy: zt\n    miimon: 5\n{settings}"));
    let t = b.probe_for(0, 200 * MS, &[]);
    let peer = |slot| bond_common::probe::member_probe_mac(9, slot);
    assert_eq!((b.members[0].probe_peer, b.members[1].probe_peer), (Some(peer(0)), Some(peer(1))));
    // Another bond (probe id 8) answers eth1's next request.
    b.io.sent.borrow_mut().clear();
    b.run(t, t + 150 * MS, MS);
    let other = ProbeEvent {
        member: 1,
        flags: 0,
        rx_member: 1,
        pad: 0,
        seq: b.members[1].probe_seq,
        t1: t,
        t2: 0,
        t4: t + 150 * MS,
        peer: bond_common::probe::member_probe_mac(8, 0),
        pad2: [0; 2],
        peer_rx_bytes: 0,
        backlog_us: 0,
        pad3: 0,
    };
    let replies = b.members[1].probes.last_reply;
    b.on_probe_events(&[other], t + 150 * MS).unwrap();
    assert_eq!(b.members[1].probe_peer, Some(peer(1)), "still the peer bond's member");
    assert_eq!(b.members[1].probes.last_reply, replies, "not taken as a reply");
}

/// The peer's daemon restarts with a new probe id just after this bond started (only one link
/// had an answer from the old one): the bond stays up meanwhile, the new peer's replies count
/// once the old one has been silent for a failover interval, and nobody is punished for it.
#[test]
fn a_peer_bond_restarted_with_a_new_probe_id_is_taken_as_the_peer() {
    let settings = "settings:\n  policies:\n    fast: { basePolicy: active-backup, failoverInterval: 30 }\n";
    let mut b = bond(3, &format!("    policy: fast\n    miimon: 5\n{settings}"));
    let t = b.probe_for(0, 20 * MS, &[0, 2]);
    let t = b.probe_for(t, t + 500 * MS, &[0, 1, 2]);
    b.io.peer_probe_id = 12;
    let t = b.probe_for(t, t + 300 * MS, &[]);
    assert_eq!(b.usable_now(), 0b111, "{:?}", b.event_texts());
    assert_eq!(b.members[2].probe_peer, Some(bond_common::probe::member_probe_mac(12, 2)));
    assert!(!b.event_texts().iter().any(|e| e.contains("misbehaves")), "probes lost while the peer was away are no loss");
    assert!(b.members.iter().all(|m| m.probes.last_reply.is_some_and(|r| t - r < 20 * MS)));
}

/// balance-aware `packet` over links of given speeds and the default failoverInterval: the
/// data plane gets each member's rate at once and its one-way delay (half the 1 ms round trip
/// the fake peer answers in) within seconds, from probes sent quicker while the links are new.
#[test]
fn a_packet_schedule_gets_rates_at_once_and_delays_within_seconds() {
    let settings = "settings:\n  policies:\n    pk:\n      basePolicy: balance-aware\n      balancePolicy: packet\n      links: { eth0: { speed: 20 }, eth1: { speed: 10 }, eth2: { speed: 5 } }\n";
    let mut b = bond(3, &format!("    policy: pk\n{settings}"));
    b.probe_for(0, 10 * MS, &[]);
    let first = b.io.schedules.first().cloned().expect("a schedule written with the config");
    assert_eq!(first.iter().take(3).map(|s| s.ps_per_byte).collect::<Vec<_>>(), [400_000, 800_000, 1_600_000]);
    b.probe_for(10 * MS, 3_000 * MS, &[]);
    let last = b.io.schedules.last().unwrap();
    assert!(last.iter().take(3).all(|s| s.delay_ns == 500_000), "{last:?}");
    // Quicker probes while learning: several outcomes per link by then, not the 2 of the
    // regular third of 5 s.
    assert!(b.members.iter().all(|m| m.probes.outcomes() >= 5), "{:?}", b.members.iter().map(|m| m.probes.outcomes()).collect::<Vec<_>>());
    // Rewritten only on a change: a second quiet stretch writes nothing.
    let n = b.io.schedules.len();
    b.probe_for(3_000 * MS, 6_000 * MS, &[]);
    assert_eq!(b.io.schedules.len(), n);
}

#[test]
fn a_silent_link_fails_within_its_failover_interval() {
    let settings = "settings:\n  policies:\n    fast: { basePolicy: active-backup, failoverInterval: 30 }\n";
    let mut b = bond(2, &format!("    policy: fast\n    miimon: 5\n{settings}"));
    // The peer answers on every link for a while: probes judge from then on.
    let mut t = b.probe_for(0, 200 * MS, &[]);
    assert_eq!(b.usable_now(), 0b11);
    // eth0 goes silent (carrier stays up).
    let silent_from = t;
    let mut failed_at = None;
    while t <= silent_from + 100 * MS && failed_at.is_none() {
        b.tick(t).unwrap();
        b.answer_probes(t, &[0]);
        if b.usable_now() == 0b10 {
            failed_at = Some(t);
        }
        t += MS;
    }
    let after = failed_at.expect("eth0 failed") - silent_from;
    // Silence counts from the last reply (up to a probe interval, 10 ms, before the fault).
    assert!(after <= 31 * MS, "failed {} ms after going silent", after / MS);
    assert_eq!(b.active_now(), 1);
    assert!(b.event_texts().iter().any(|e| e.starts_with("eth0 failed: silent")), "{:?}", b.event_texts());
}

#[test]
fn a_flapping_link_is_punished_then_readmitted() {
    let settings = "settings:\n  policies:\n    p: { basePolicy: balance-xor, punishment: { base: 1000, window: 60000 } }\n";
    let mut b = bond(2, &format!("    policy: p\n    miimon: 5\n{settings}"));
    let mut t = 0;
    for _ in 0..3 {
        b.cut(1);
        b.run(t, t + 10 * MS, 5 * MS);
        b.restore(1);
        b.run(t + 15 * MS, t + 25 * MS, 5 * MS);
        t += 30 * MS;
    }
    assert_eq!(b.usable_now(), 0b01, "held out while its carrier is up");
    assert_eq!(b.members[1].link_failures, 3, "three failures of the link; being held out is not one");
    assert!(crate::bond::monitor::why_not_usable(&b.members[1], None).starts_with("punished"));
    assert!(b.event_texts().iter().any(|e| e.contains("punished for flapping")), "{:?}", b.event_texts());
    b.run(t, t + 20_000 * MS, 100 * MS);
    assert_eq!(b.usable_now(), 0b11, "readmitted once the punishment faded");
    assert!(b.event_texts().iter().any(|e| e.contains("readmitted")), "{:?}", b.event_texts());
}

#[test]
fn silence_on_every_link_at_once_stops_probes_judging_instead_of_darkening_the_bond() {
    let mut b = three_links_probed_every_10_ms();
    // The peer answers on every link for a while: probes judge from then on.
    let mut t = b.probe_for(0, 200 * MS, &[]);
    // The peer (or a stall on either host) answers on no link for 100 ms.
    let silent_until = t + 100 * MS;
    while t <= silent_until {
        b.tick(t).unwrap();
        b.answer_probes(t, &[0, 1, 2]);
        assert_eq!(b.usable_now(), 0b111, "no link failed at {} ms of silence", (t + 100 * MS - silent_until) / MS);
        t += MS;
    }
    assert!(b.event_texts().iter().any(|e| e.starts_with("the peer answers probes on no link")), "{:?}", b.event_texts());
    // One link silent alone is still found.
    b.probe_for(t, silent_until + 300 * MS, &[2]);
    assert_eq!(b.usable_now(), 0b011, "eth2 alone silent: failed");
}

/// The peer goes away from every link at once (its bond made anew), but the members' last
/// replies came up to a probe interval apart: the first member to pass its failover interval
/// does not fail for it while the others are as silent.
#[test]
fn a_peer_gone_from_every_link_fails_none_though_their_last_replies_were_staggered() {
    let mut b = three_links_probed_every_10_ms();
    let t = b.probe_for(0, 200 * MS, &[]);
    // eth0's replies stop 9 ms before the others' (most of a 10 ms probe interval).
    let t = b.probe_for(t, t + 9 * MS, &[0]);
    let last: Vec<Nanos> = b.members.iter().map(|m| m.probes.last_reply.unwrap()).collect();
    assert!(last[1].min(last[2]) > last[0] + 5 * MS, "staggered: {last:?}");
    let mut t = t;
    while t <= last[0] + 100 * MS {
        b.tick(t).unwrap();
        b.answer_probes(t, &[0, 1, 2]);
        assert_eq!(b.usable_now(), 0b111, "no link failed {} ms after eth0's last reply: {:?}", (t - last[0]) / MS, b.event_texts());
        t += MS;
    }
    assert!(b.event_texts().iter().any(|e| e.starts_with("the peer answers probes on no link")), "{:?}", b.event_texts());
    assert!(!b.event_texts().iter().any(|e| e.contains("punished")), "{:?}", b.event_texts());
}

/// One link dead and failed, and the others' replies late by more than half the interval (a
/// busy host): the dead link's silence is not the peer's absence, so it stays failed.
#[test]
fn a_failed_link_stays_failed_while_the_others_replies_run_late() {
    let mut b = three_links_probed_every_10_ms();
    let t = b.probe_for(0, 200 * MS, &[]);
    let t = b.probe_for(t, t + 100 * MS, &[0]);
    assert_eq!(b.usable_now(), 0b110, "eth0 failed: {:?}", b.event_texts());
    // eth1 and eth2 go 20 ms without a reply, then answer again.
    let t = b.probe_for(t, t + 20 * MS, &[0, 1, 2]);
    b.probe_for(t, t + 100 * MS, &[0]);
    assert!(!b.event_texts().iter().any(|e| e.starts_with("the peer answers probes on no link")), "{:?}", b.event_texts());
    assert_eq!(b.usable_now(), 0b110, "eth0 still failed: {:?}", b.event_texts());
}

/// balance-aware `packet` without speeds, one link of 20 Mbit/s given 22 by a sender until it is
/// found full: the peer's replies say what it received and how long each request waited. The
/// link's rate is measured, and the queue it was found with, which the schedule did not count
/// (it counted the link as fast as its device), is counted from then on (`busy_until`).
/// The peer's reply to request `h`, sent at `t1`, arrived at `t2`, its reply back at `t4`,
/// saying the peer had received `rx_bytes` on the link.
fn peer_reply(h: &ProbeHeader, t1: Nanos, t2: Nanos, t4: Nanos, rx_bytes: u64) -> ProbeEvent {
    ProbeEvent {
        member: h.member,
        flags: 0,
        rx_member: h.member,
        pad: 0,
        seq: h.seq,
        t1,
        t2,
        t4,
        peer: bond_common::probe::member_probe_mac(9, h.member),
        pad2: [0; 2],
        peer_rx_bytes: rx_bytes,
        backlog_us: 0,
        pad3: 0,
    }
}

#[test]
fn a_link_found_full_has_its_rate_measured_and_its_uncounted_queue_counted() {
    let settings = "settings:\n  policies:\n    pk: { basePolicy: balance-aware, balancePolicy: packet }\n";
    let mut b = bond(1, &format!("    policy: pk\n{settings}"));
    const HALF_RTT: Nanos = MS / 2;
    let (given, rate) = (2_750u64, 2_500u64); // bytes per ms: 22 and 20 Mbit/s
    let (mut tx, mut backlog) = (0u64, 0u64);
    let mut pending: Vec<ProbeEvent> = Vec::new();
    let mut found = None;
    let mut t = 0;
    // Idle for the first probes (the base of the way out), then the sender.
    const TRAFFIC_FROM: Nanos = 2_500 * MS;
    while t <= 4_500 * MS && found.is_none() {
        if t >= TRAFFIC_FROM {
            tx += given;
            backlog = (backlog + given).saturating_sub(rate);
        }
        b.io.tx_bytes.borrow_mut().insert(0, tx);
        b.io.now.set(t);
        b.tick(t).unwrap();
        // Each request waits behind the bytes given before it, so it arrives when they have.
        let sent = std::mem::take(&mut *b.io.sent.borrow_mut());
        for (_, f, _) in sent.iter().filter(|(port, _, et)| *port == Port::Bond && *et == ETH_P_PROBE) {
            let h = ProbeHeader::from_bytes(f[OFF_HEADER..OFF_HEADER + 32].try_into().unwrap());
            let t2 = t + HALF_RTT + backlog * MS / rate;
            pending.push(peer_reply(&h, t, t2, t2 + HALF_RTT, tx.max(1)));
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|e| e.t4 <= t);
        pending = later;
        b.on_probe_events(&due, t).unwrap();
        found = b.io.busy_until.first().map(|&(slot, until)| (slot, until - t, backlog * MS / rate));
        t += MS;
    }
    let (slot, counted, standing) = found.expect("the link found full within 2 s of traffic");
    let measured = b.members[0].rate.bps.unwrap() / 1e6;
    assert!((measured - 20.0).abs() < 0.5, "{measured} Mbit/s");
    // The queue found by the latest reply (it left a round trip before the queue now standing).
    assert_eq!(slot, 0);
    assert!(counted >= 3 * MS && counted <= standing, "counted {counted} ns of the {standing} standing");
    assert!(t <= TRAFFIC_FROM + 700 * MS, "found {} ms into the traffic", (t - TRAFFIC_FROM) / MS);
}

#[test]
fn a_packet_train_gives_a_link_not_found_full_its_capacity() {
    use crate::health::capacity::{TRAIN_FRAME_LEN, TRAIN_FRAMES};
    let settings = "settings:\n  policies:\n    pk: { basePolicy: balance-aware, balancePolicy: packet }\n";
    let mut b = bond(1, &format!("    policy: pk\n{settings}"));
    const HALF_RTT: Nanos = MS / 2;
    // A 10 Mbit/s bottleneck: a train's frames leave it this far apart.
    let spacing = TRAIN_FRAME_LEN as Nanos * 8 * 1_000 / 10;
    let (mut pending, mut trains, mut free) = (Vec::<ProbeEvent>::new(), 0, 0);
    let mut t = 0;
    while t <= 3_000 * MS {
        b.io.tx_bytes.borrow_mut().insert(0, 1_000);
        b.io.now.set(t);
        b.tick(t).unwrap();
        let sent = std::mem::take(&mut *b.io.sent.borrow_mut());
        let probes: Vec<&Vec<u8>> =
            sent.iter().filter(|(port, _, et)| *port == Port::Bond && *et == ETH_P_PROBE).map(|(_, f, _)| f).collect();
        let in_train = probes.iter().filter(|f| f.len() == TRAIN_FRAME_LEN).count();
        assert!(in_train == 0 || in_train == TRAIN_FRAMES as usize, "{in_train} frames of a train");
        trains += usize::from(in_train > 0);
        for f in probes {
            let h = ProbeHeader::from_bytes(f[OFF_HEADER..OFF_HEADER + 32].try_into().unwrap());
            // Each frame leaves the bottleneck a transmission after the one before it.
            free = free.max(t) + if f.len() == TRAIN_FRAME_LEN { spacing } else { 0 };
            let t2 = free + HALF_RTT;
            pending.push(peer_reply(&h, t, t2, t2 + HALF_RTT, 1_000));
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|e| e.t4 <= t);
        pending = later;
        b.on_probe_events(&due, t).unwrap();
        t += MS;
    }
    // One train in 3 s (then one every 5 s), once the peer answered by unicast.
    assert_eq!(trains, 1);
    let capacity = b.members[0].rate.capacity.bps().expect("a capacity") / 1e6;
    assert!((capacity - 10.0).abs() < 0.1, "{capacity} Mbit/s");
    // The schedule counts on it (the link not found full: no measured rate).
    assert_eq!(b.members[0].rate.bps, None);
    let schedule = b.io.schedules.last().expect("a schedule written");
    assert!(schedule[0].ps_per_byte.abs_diff(800_000) < 10_000, "{:?}", schedule[0]);
    // The train's replies are not round trips: the link's latency is the probes' alone.
    let latency = b.members[0].metrics.lat;
    assert!(latency < 1.5, "{latency} ms");
}
