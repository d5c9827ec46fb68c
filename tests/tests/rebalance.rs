//! balance-aware `flow-dynamic` rebalancing on real traffic: busy flows that all hashed to some
//! members are spread over the others within seconds, and the split then stays.

use std::time::{Duration, Instant, SystemTime};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Capture, UdpFlows, flows_by_member, payload, ping, send_retrying},
};

/// Eight busy flows, four on each of the first two members and none on the third: a policy
/// switch starts rebalancing over, and its first round (2.5 s later at the default
/// `failoverInterval`) moves some of them to the third member. Rounds every 10 s, as before,
/// left a 10 s transfer on two links in most runs.
#[test]
fn balance_aware_moves_busy_flows_to_a_member_none_hashed_to_within_seconds() {
    let settings = "policies:\n  aw: { basePolicy: balance-aware }\n  aw2: { basePolicy: balance-aware }";
    let lab = Lab::start(LabOptions::default().policy("aw").settings(settings)).unwrap_or_else(|e| panic!("starting the lab: {e:#}"));
    ping(&lab, 2).unwrap();
    let caps: Vec<Capture> = (0..3).map(|i| Capture::open(&lab.b.ns, &format!("eth{i}")).unwrap()).collect();
    let flows = UdpFlows::new(&lab, 48, 43000).unwrap();

    let switched = SystemTime::now();
    let start = Instant::now();
    lab.a.daemon().set_policy("aw2").unwrap();
    // Where each flow goes (equal links: the switch re-assigns no bucket).
    let placed = flows_by_member(&flows, &caps, 1);
    let on = |member: usize| placed.iter().filter(|(_, m)| **m == member).map(|(f, _)| *f as usize).take(4).collect::<Vec<_>>();
    let chosen: Vec<usize> = on(0).into_iter().chain(on(1)).collect();
    assert_eq!(chosen.len(), 8, "four of 48 flows on each of the first two members: {placed:?}");

    // 500 datagrams per second per flow for 8 s; what each link carried every 250 ms.
    let bytes_on_links = || lab.wire_a_counters().unwrap().iter().map(|c| c.rx_bytes).collect::<Vec<_>>();
    let mut windows: Vec<(Duration, Vec<u64>)> = Vec::new();
    let (mut last, mut last_at) = (bytes_on_links(), Instant::now());
    let mut seq = 1_000_000;
    for tick in 0..4000u32 {
        let due = start + Duration::from_millis(2 * u64::from(tick));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for &f in &chosen {
            send_retrying(&flows.senders[f], &payload(seq, f as u32, 200), flows.dst).unwrap();
            seq += 1;
        }
        if last_at.elapsed() >= Duration::from_millis(250) {
            let now = bytes_on_links();
            windows.push((start.elapsed(), now.iter().zip(&last).map(|(n, l)| n - l).collect()));
            (last, last_at) = (now, Instant::now());
        }
    }
    let share_of_third = |w: &[u64]| w[2] as f64 / w.iter().sum::<u64>().max(1) as f64;
    let third_from = windows.iter().find(|(_, w)| share_of_third(w) >= 1.0 / 16.0).map(|(t, _)| *t);
    let status = lab.a.daemon().status().unwrap();
    let moved = Daemon::events_since(&status, &["rebalance"], switched);
    let first_move_ms = Daemon::event_ms_after(&status, "rebalanced", switched);
    let split = |w: &[(Duration, Vec<u64>)]| {
        let sum: Vec<u64> = (0..3).map(|i| w.iter().map(|(_, b)| b[i]).sum()).collect();
        let total = sum.iter().sum::<u64>().max(1) as f64;
        sum.iter().map(|b| *b as f64 / total).collect::<Vec<_>>()
    };
    let end = split(&windows[windows.len().saturating_sub(8)..]);
    println!(
        "rebalancing after a switch: first move {first_move_ms:?} ms after it, the third link carrying from {third_from:?}; \
         the last 2 s split {end:.2?}; events {moved:?}"
    );
    assert!(share_of_third(&windows[0].1) < 1.0 / 16.0, "nothing on the third link at first: {:?}", windows[0]);
    let first_move_ms = first_move_ms.unwrap_or_else(|| panic!("a rebalancing round moved buckets: {moved:?}"));
    assert!(first_move_ms <= 6_000.0, "the first move within two quick rounds of the switch: {first_move_ms} ms");
    assert!(third_from.is_some_and(|t| t <= Duration::from_millis(6_500)), "the third link carries flows soon after: {third_from:?}");
    assert!(end.iter().all(|s| *s >= 0.2), "each link carries at least a fifth in the last 2 s: {end:.2?}");
}
