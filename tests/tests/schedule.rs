//! One TCP flow over paths of different speed and delay (the lab's link emulator), under
//! balance-aware `packet`: each packet goes where it arrives first (`bond_common::schedule`),
//! by the links' speeds given, or by their rates as measured (`health::rates`, and packet
//! trains' capacities until then, `health::capacity`). Bounds are looser than the bench's goals (`cargo xtask bench
//! aggregation` holds those): these runs are short, on a loaded two-core machine.

use std::time::{Duration, SystemTime};

use bond_tests::{
    Daemon, Lab, LabOptions,
    emu::Impairment,
    net::{tcp_rate_back, tcp_rate_with},
    wait_until,
};

const SETTINGS: &str = "policies:
  sched: { basePolicy: balance-aware, balancePolicy: packet, failoverInterval: 300, links: { eth0: { speed: 20 }, eth1: { speed: 10 }, eth2: { speed: 5 } } }
  measured: { basePolicy: balance-aware, balancePolicy: packet }
  measured-300: { basePolicy: balance-aware, balancePolicy: packet, failoverInterval: 300 }
  fastest-alone: { basePolicy: active-backup, links: { eth0: {} } }";

/// A lab whose three links carry 20, 10 and 5 Mbit/s with `delays_ms` one way.
fn lab(delays_ms: [u64; 3]) -> Lab {
    let mut lab =
        Lab::start(LabOptions::default().policy("sched").settings(SETTINGS)).unwrap_or_else(|e| panic!("starting the lab: {e:#}"));
    for (i, (mbps, ms)) in [20u64, 10, 5].iter().zip(delays_ms).enumerate() {
        let imp = Impairment { delay: Duration::from_millis(ms), rate: Some(mbps * 1_000_000), ..Impairment::default() };
        lab.emulate(i).unwrap().set_both(imp);
    }
    // A fresh daemon on A: the round trips its probes measured before the delays were set
    // would stand as the links' base round trips for minutes.
    let path = lab.config_path(&lab.a);
    lab.a.daemon.as_mut().expect("A's daemon").stop().unwrap();
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, lab.dir(), &[]).unwrap());
    bond_tests::net::ping(&lab, 2).unwrap();
    // Every link measured (its delay known to the schedule) before traffic.
    wait_until(Duration::from_secs(10), "every link answering probes", || {
        let s = lab.a.daemon().status().unwrap();
        (0..3).all(|i| Daemon::member(&s, &format!("eth{i}"))["rx_probes"].as_u64().unwrap_or(0) >= 3)
    });
    lab
}

/// Packets the bond sent on each member (its own counters).
fn tx(lab: &Lab) -> Vec<u64> {
    let s = lab.a.daemon().status().unwrap();
    (0..3).map(|i| Daemon::member(&s, &format!("eth{i}"))["tx_packets"].as_u64().unwrap_or(0)).collect()
}

/// One TCP flow's goodput under congestion control `cc` (the host's default varies).
fn mbps_with(lab: &Lab, seconds: u64, cc: &str) -> f64 {
    tcp_rate_with(lab, lab.b.addr, 1, Duration::from_secs(seconds), Some(cc)).unwrap() * 8.0 / 1e6
}

/// With BBR: it keeps its queues short, so its rate settles within the test's seconds.
fn mbps(lab: &Lab, seconds: u64) -> f64 {
    mbps_with(lab, seconds, "bbr")
}

#[test]
fn one_flow_over_paths_of_different_speed_and_delay_beats_the_fastest_path_alone() {
    let lab = lab([2, 10, 25]);
    lab.a.daemon().set_policy("fastest-alone").unwrap();
    let alone = mbps(&lab, 3);
    lab.a.daemon().set_policy("sched").unwrap();
    // cubic fills the queues: the 2 ms path's grows past 23 ms, and every path is used.
    let before = tx(&lab);
    let cubic = mbps_with(&lab, 6, "cubic");
    let tx: Vec<u64> = tx(&lab).iter().zip(before).map(|(a, b)| a - b).collect();
    // BBR keeps them short: the 25 ms path may never deliver first, the two others do.
    let bbr = mbps(&lab, 4);
    println!(
        "20/10/5 Mbit/s, 2/10/25 ms: fastest path alone {alone:.1} Mbit/s, bonded {cubic:.1} (cubic, packets per member {tx:?}), {bbr:.1} (BBR) Mbit/s"
    );
    // The bench measures the goals (80% of the 35 Mbit/s, 1.3x the fastest path alone, over
    // 10 s) on a quiet machine; here another test's emulators may share the two cores.
    // Both beat the fastest path alone. cubic's 6 s include its slow start over these delays
    // (the bench's 10 s runs gave 61% and 71% in two of nine); BBR's short queues may keep it
    // on the 2 ms path most of a 4 s run (20.6 Mbit/s in one, 26.5-27.4 in four others).
    for (cc, bonded) in [("cubic", cubic), ("BBR", bbr)] {
        assert!(bonded >= 0.5 * 35.0 && bonded > alone, "{cc}: bonded {bonded:.1} vs alone {alone:.1} Mbit/s");
    }
    assert!(tx.iter().all(|&n| n > 50), "every path carries its part of cubic's flow: {tx:?}");
}

#[test]
fn a_path_cut_mid_flow_loses_its_share_within_a_failover_interval() {
    let lab = lab([1, 1, 1]);
    let flow = std::thread::scope(|s| {
        let flow = s.spawn(|| mbps(&lab, 4));
        std::thread::sleep(Duration::from_millis(1500));
        let cut = SystemTime::now();
        lab.emulator(0).unwrap().set_both(Impairment { delay: Duration::from_millis(1), loss: 1.0, ..Impairment::default() });
        let mut st = serde_json::Value::Null;
        wait_until(Duration::from_secs(3), "eth0 out of use", || {
            st = lab.a.daemon().status().unwrap();
            Daemon::member(&st, "eth0")["usable"] == false
        });
        let out_after = Daemon::event_ms_after(&st, "eth0 failed", cut).expect("an event says eth0 failed");
        // From then on eth0 is given nothing.
        let before = tx(&lab)[0];
        std::thread::sleep(Duration::from_millis(500));
        let after = tx(&lab)[0];
        (out_after, after - before, flow.join().unwrap())
    });
    let (out_after, sent_on_cut, rate) = flow;
    println!(
        "eth0 cut mid-flow: out of the schedule {out_after:.0} ms later; {sent_on_cut} packets on it after; the flow {rate:.1} Mbit/s"
    );
    assert!(out_after <= 300.0 + 60.0, "{out_after:.0} ms");
    assert_eq!(sent_on_cut, 0, "nothing scheduled on a failed path");
    // The flow goes on over the others (10 + 5 Mbit/s for most of the run).
    assert!(rate >= 8.0, "{rate:.1} Mbit/s");
}

#[test]
fn without_speeds_the_bond_measures_each_paths_rate_and_schedules_by_it() {
    let lab = lab([1, 1, 1]);
    lab.a.daemon().set_policy("measured").unwrap();
    let before = tx(&lab);
    // The queue the schedule counts on each link, as its probes report it (the rule that keeps
    // a measured rate to the queue compares it with the one the probe found), watched while
    // the flow runs.
    let mut counted_ms = [0f64; 3];
    let bonded = std::thread::scope(|scope| {
        let flow = scope.spawn(|| mbps(&lab, 6));
        while !flow.is_finished() {
            let s = lab.a.daemon().status().unwrap();
            for (i, most) in counted_ms.iter_mut().enumerate() {
                *most = most.max(Daemon::member(&s, &format!("eth{i}"))["queue_counted_ms"].as_f64().unwrap_or(0.0));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        flow.join().unwrap()
    });
    let tx: Vec<u64> = tx(&lab).iter().zip(before).map(|(a, b)| a - b).collect();
    let s = lab.a.daemon().status().unwrap();
    // Measured once found full; until then, as its packet trains found it.
    let rate = |i: usize| {
        let m = Daemon::member(&s, &format!("eth{i}"));
        m["measured_rate_bps"].as_f64().or(m["train_capacity_bps"].as_f64()).map(|b| b / 1e6)
    };
    let rates: Vec<Option<f64>> = (0..3).map(rate).collect();
    println!(
        "20/10/5 Mbit/s, no speed given: bonded {bonded:.1} Mbit/s; measured {rates:.1?} Mbit/s; packets per member {tx:?}; \
         most queue counted {counted_ms:.1?} ms"
    );
    // The two faster paths are measured within a third of their rates (they are probed a
    // little above what they delivered; the emulator's rate is approximate), or known by
    // their trains. The slowest may have neither: it is then counted as fast as its device.
    for (i, real) in [(0, 20.0), (1, 10.0)] {
        let measured = rates[i].unwrap_or_else(|| panic!("eth{i} not measured: {rates:.1?}"));
        assert!((measured - real).abs() <= real / 3.0, "eth{i} measured {measured:.1} Mbit/s, the path carries {real}");
    }
    // Without rates (the stride) one flow gets about 10 of the 35 Mbit/s.
    assert!(bonded >= 0.5 * 35.0, "{bonded:.1} Mbit/s");
    assert!(tx[0] > tx[1] && tx[1] > tx[2], "shares follow the rates: {tx:?}");
    // Once a link's rate is known the schedule counts the queue it builds there, and the
    // probes carry that count back (a link counted as fast as its device never queues).
    assert!(counted_ms.iter().any(|&q| q > 0.0), "no probe reported a queue the schedule counted: {counted_ms:?}");
}

#[test]
fn packet_trains_find_each_paths_capacity_before_any_traffic() {
    let lab = lab([1, 10, 25]);
    lab.a.daemon().set_policy("measured").unwrap();
    let capacity = |i: usize| {
        let s = lab.a.daemon().status().unwrap();
        Daemon::member(&s, &format!("eth{i}"))["train_capacity_bps"].as_f64().map(|b| b / 1e6)
    };
    // A train goes as soon as a link's peer answers by unicast, then every 5 s.
    wait_until(Duration::from_secs(8), "a train capacity for every link", || (0..3).all(|i| capacity(i).is_some()));
    let found: Vec<f64> = (0..3).map(|i| capacity(i).unwrap()).collect();
    let sent = tx(&lab);
    println!("20/10/5 Mbit/s, 1/10/25 ms, idle: trains found {found:.2?} Mbit/s; packets per member {sent:?}");
    for (i, real) in [20.0, 10.0, 5.0].into_iter().enumerate() {
        assert!((found[i] - real).abs() <= real / 5.0, "eth{i}: train found {:.2} Mbit/s, the path carries {real}", found[i]);
    }
    // Found with no traffic of the bond's to fill the links (the lab's pings only).
    assert!(sent.iter().all(|&n| n < 100), "the bond carried traffic meanwhile: {sent:?}");
}

#[test]
fn a_queue_on_the_way_back_is_not_taken_for_one_on_the_way_out() {
    let lab = lab([1, 1, 1]);
    // Quality rounds (the round trips' figures) every 600 ms.
    lab.a.daemon().set_policy("measured-300").unwrap();
    wait_until(Duration::from_secs(5), "a queue found shown for every link", || {
        let s = lab.a.daemon().status().unwrap();
        (0..3).all(|i| Daemon::member(&s, &format!("eth{i}"))["queue_found_ms"].is_f64())
    });
    // B sends to A (one cubic flow, which fills queues): they build on B's side of each link,
    // while A's side carries only the acknowledgements. A's probes wait in B's queues on their
    // way back.
    let mut seen: [Vec<(f64, f64)>; 3] = Default::default();
    let back = std::thread::scope(|scope| {
        let flow = scope.spawn(|| tcp_rate_back(&lab, 1, Duration::from_secs(6), Some("cubic")).unwrap() * 8.0 / 1e6);
        while !flow.is_finished() {
            let s = lab.a.daemon().status().unwrap();
            for (i, seen) in seen.iter_mut().enumerate() {
                let m = Daemon::member(&s, &format!("eth{i}"));
                let found = m["queue_found_ms"].as_f64().unwrap_or_else(|| panic!("eth{i}: no queue found shown: {m}"));
                seen.push((found, m["quality"]["ltm"].as_f64().unwrap_or(0.0)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        flow.join().unwrap()
    });
    // Per link: the longest round trip of the probe window, and the median of the queues the
    // latest probe found (one late frame on the way out is not what this is about).
    let per_link: Vec<(f64, f64)> = seen
        .iter()
        .map(|s| {
            let mut found: Vec<f64> = s.iter().map(|x| x.0).collect();
            found.sort_by(f64::total_cmp);
            (s.iter().map(|x| x.1).fold(0.0, f64::max), found[found.len() / 2])
        })
        .collect();
    println!(
        "B to A over 20/10/5 Mbit/s: {back:.1} Mbit/s; A's probes per link (longest round trip, median queue found on the way out): {per_link:.1?} ms"
    );
    // On a link whose way back queued (a 1 ms path's round trip is about 2 ms; the rule reads
    // 3 ms above it as a queue), A's probes find no queue on the way out, so A's rates are
    // not taken down by B's traffic.
    let queued_back: Vec<&(f64, f64)> = per_link.iter().filter(|(rtt, _)| *rtt >= 6.0).collect();
    assert!(!queued_back.is_empty(), "no queue on the way back: {per_link:.1?} ms");
    assert!(queued_back.iter().all(|(_, found)| *found < 3.0), "a queue on the way back taken for one on the way out: {per_link:.1?} ms");
}
