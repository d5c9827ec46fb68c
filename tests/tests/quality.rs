//! Paths of different quality, through the lab's link emulator (these kernels have no netem):
//! the emulator does what it is told, probes measure what the links impose, and the bond acts
//! on it (link selection, failover on slow links).

use std::{
    net::UdpSocket,
    time::{Duration, Instant, SystemTime},
};

use bond_tests::{
    Daemon, Lab, LabOptions,
    emu::{Impairment, Jitter},
    lab::{ADDR_A, ADDR_B},
    net::{Stream, UdpFlows, losses, parse_payload, payload, set_rcvbuf},
    wait_until,
};
use serde_json::Value;

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// Round-trip times of `count` pings from A to B (ms): (average, mdev).
fn ping_rtt(lab: &Lab, count: u32) -> (f64, f64) {
    let out = lab.a.ns.exec("ping", &["-q", "-c", &count.to_string(), "-i", "0.05", "-W", "2", ADDR_B]).unwrap();
    let line = out.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("no rtt line: {out}"));
    // "rtt min/avg/max/mdev = 20.1/20.3/20.6/0.2 ms" (", pipe 2" after it when pings overlap)
    let numbers = line.split('=').nth(1).unwrap().split(" ms").next().unwrap().trim();
    let v: Vec<f64> = numbers.split('/').map(|x| x.parse().unwrap()).collect();
    (v[1], v[3])
}

fn quality(s: &Value, member: &str, key: &str) -> f64 {
    Daemon::member(s, member)["quality"][key].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn the_emulator_imposes_delay_loss_and_rate_and_changes_them_while_traffic_runs() {
    // No probes: the bond must not judge the one link by the loss imposed on it (past the 5%
    // limit it would be avoided and punished, and nothing would pass for seconds).
    let settings = "policies:\n  unjudged: { basePolicy: active-backup, monitorStrategy: passive }";
    let mut lab = lab(LabOptions::default().policy("unjudged").settings(settings).links(1));
    lab.emulate(0).unwrap();
    let emu = lab.emulator(0).unwrap();
    let (rtt, _) = ping_rtt(&lab, 5);
    assert!(rtt < 2.0, "no impairment yet: {rtt} ms");
    emu.set_both(Impairment::delay_ms(10));
    let (rtt, mdev) = ping_rtt(&lab, 20);
    println!("emulator: 10 ms each way: rtt {rtt:.2} ms (mdev {mdev:.2})");
    assert!((20.0..23.0).contains(&rtt), "10 ms each way: a round trip of 20 ms, not {rtt}");
    // Changed while it runs.
    emu.set_both(Impairment::delay_ms(25));
    let (rtt, _) = ping_rtt(&lab, 10);
    assert!((50.0..54.0).contains(&rtt), "25 ms each way: {rtt}");
    // Jitter: normal, 4 ms each way.
    emu.set_both(Impairment {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(4),
        distribution: Jitter::Normal,
        ..Default::default()
    });
    let (rtt, mdev) = ping_rtt(&lab, 60);
    println!("emulator: 20 ± 4 ms (normal) each way: rtt {rtt:.2} ms, mdev {mdev:.2}");
    assert!((38.0..44.0).contains(&rtt) && (2.5..8.0).contains(&mdev), "rtt {rtt}, mdev {mdev}");

    // Rate: 20 Mbit/s from A; a burst of 1000-byte datagrams arrives at that pace (before the
    // loss steps, which can leave a neighbour entry to resolve again).
    emu.set(1, Impairment::default());
    emu.set(0, Impairment { rate: Some(20_000_000), queue: Duration::from_millis(200), ..Default::default() });
    let rx = lab.b.ns.enter(|| UdpSocket::bind((ADDR_B, 47200))).unwrap().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    set_rcvbuf(&rx, 16 << 20);
    let tx = lab.a.ns.enter(|| UdpSocket::bind((ADDR_A, 0))).unwrap().unwrap();
    for seq in 0..400 {
        bond_tests::net::send_retrying(&tx, &payload(seq, 0, 1000), std::net::SocketAddr::new(ADDR_B.parse().unwrap(), 47200)).unwrap();
    }
    let arrivals: Vec<Duration> =
        bond_tests::net::recv_stamped(&rx).unwrap().into_iter().filter(|(p, _)| parse_payload(p).is_some()).map(|(_, at)| at).collect();
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    // On the wire each datagram is 1042 bytes (UDP, IP and Ethernet headers). Arrivals are
    // stamped by the kernel, so a reader descheduled on a loaded machine does not read fast.
    // (Kernel stamps are on the wall clock: a step back reads as no time, not a panic.)
    let mbps = (arrivals.len() - 1) as f64 * 1042.0 * 8.0 / last.saturating_sub(first).as_secs_f64() / 1e6;
    println!("emulator: rate 20 Mbit/s: {} datagrams at {mbps:.1} Mbit/s", arrivals.len());
    assert!((17.0..22.0).contains(&mbps), "{mbps} Mbit/s");

    // Loss one way only: 20% of A's datagrams.
    emu.set(0, Impairment { loss: 0.2, ..Default::default() });
    emu.set(1, Impairment::default());
    let flows = UdpFlows::new(&lab, 1, 47000).unwrap();
    let sent = flows.send(2000, 64).unwrap();
    let got = flows.receive(Duration::from_millis(300)).len() as f64 / sent as f64;
    println!("emulator: 20% loss: {:.1}% arrived", got * 100.0);
    assert!((0.75..0.85).contains(&got), "about 80% arrive: {got}");
    drop(flows);
    // Bursts: the same average in runs.
    emu.set(0, Impairment { burst: Some(bond_tests::emu::Burst { enter: 0.05, leave: 0.2 }), ..Default::default() });
    let flows = UdpFlows::new(&lab, 1, 47100).unwrap();
    let sent = flows.send(4000, 64).unwrap();
    let mut seqs: Vec<u64> = flows.receive(Duration::from_millis(300)).iter().map(|(s, _)| *s).collect();
    seqs.sort();
    let gaps: Vec<u64> = seqs.windows(2).map(|w| w[1] - w[0] - 1).filter(|g| *g > 0).collect();
    let mean_gap = gaps.iter().sum::<u64>() as f64 / gaps.len().max(1) as f64;
    let got = seqs.len() as f64 / sent as f64;
    println!("emulator: bursts (enter 5%, leave 20%): {:.1}% arrived, {} gaps of {mean_gap:.1} on average", got * 100.0, gaps.len());
    // In the bad state 1/0.2 = 5 frames on average; 0.05/(0.05+0.2) = 20% of the time.
    assert!((3.5..7.0).contains(&mean_gap), "losses come in runs of about 5: {mean_gap}");
    assert!((0.72..0.88).contains(&got), "{got}");

    let s = emu.stats(0);
    println!("emulator stats A->B: {s:?}");
    assert!(s.late_max_us < 20_000, "frames leave near their due time: worst {} us late", s.late_max_us);
}

#[test]
fn probes_measure_the_latency_jitter_and_loss_each_link_imposes() {
    let mut lab = lab(LabOptions::default().policy("q").settings("policies:\n  q: { basePolicy: balance-xor, failoverInterval: 300 }"));
    lab.emulate(1).unwrap().set_both(Impairment::delay_ms(10));
    let jittery = Impairment {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        distribution: Jitter::Normal,
        loss: 0.05,
        ..Default::default()
    };
    lab.emulate(2).unwrap().set_both(jittery);
    // The window must hold only probes sent since: 64 at one per 100 ms.
    let impaired = Instant::now();
    // Probes every 100 ms; the window holds 64 (answered ones count as samples).
    let mut s = Value::Null;
    let judged = bond_tests::poll_until(Duration::from_secs(25), || {
        s = lab.a.daemon().status().unwrap();
        impaired.elapsed() > Duration::from_millis(7000)
            && (0..3).all(|i| Daemon::member(&s, &format!("eth{i}"))["quality"]["samples"].as_u64().unwrap_or(0) >= 48)
    });
    assert!(judged.is_ok(), "48 probes answered on every link: {:#}", s["members"]);
    let q = |m: &str, k: &str| quality(&s, m, k);
    println!(
        "measured: eth0 lat {:.2} pdv {:.2} plr {:.3}; eth1 lat {:.2} pdv {:.2} plr {:.3}; eth2 lat {:.2} pdv {:.2} plr {:.3}",
        q("eth0", "lat"),
        q("eth0", "pdv"),
        q("eth0", "plr"),
        q("eth1", "lat"),
        q("eth1", "pdv"),
        q("eth1", "plr"),
        q("eth2", "lat"),
        q("eth2", "pdv"),
        q("eth2", "plr")
    );
    // Round trips: 0, 2 x 10 and 2 x 20 ms, within 3 ms (and 10% for the jittery one).
    assert!(q("eth0", "lat") < 3.0);
    assert!((20.0..23.0).contains(&q("eth1", "lat")), "eth1 lat {}", q("eth1", "lat"));
    assert!((36.0..46.0).contains(&q("eth2", "lat")), "eth2 lat {}", q("eth2", "lat"));
    // Jitter: a round trip's spread is sqrt(2) x 5 ms = 7.1 ms. The link without jitter reads
    // 0.1 ms on a quiet host, and was seen at 2.4 ms while a CI run loaded both cores (the
    // emulator's and the probes' timing).
    assert!(q("eth1", "pdv") < 3.0 && (4.5..10.0).contains(&q("eth2", "pdv")), "pdv {} / {}", q("eth1", "pdv"), q("eth2", "pdv"));
    // Loss: 1 - 0.95 x 0.95 = 9.75% of round trips, over about 55 probes (±4% one sigma).
    assert_eq!(q("eth0", "plr"), 0.0);
    assert!((0.01..0.22).contains(&q("eth2", "plr")), "eth2 plr {}", q("eth2", "plr"));
    // Jitter is not a queue: at most one loss in the window passes for congestion.
    assert!(q("eth2", "plr_congestion") < 0.03, "eth2 congestion loss {}", q("eth2", "plr_congestion"));
}

#[test]
fn optimize_moves_active_backup_to_the_clearly_better_link_and_does_not_flap_between_equals() {
    let settings = "policies:\n  opt: { basePolicy: active-backup, linkSelectMethod: optimize, failoverInterval: 300 }";
    let mut lab = lab(LabOptions::default().policy("opt").settings(settings));
    for i in 0..3 {
        lab.emulate(i).unwrap();
    }
    wait_until(Duration::from_secs(20), "every link judged", || {
        let s = lab.a.daemon().status().unwrap();
        (0..3).all(|i| Daemon::member(&s, &format!("eth{i}"))["quality"]["samples"].as_u64().unwrap_or(0) >= 40)
    });
    // Equal links: no change of active member while they stay equal (within noise).
    let s = lab.a.daemon().status().unwrap();
    let (active, failovers) = (s["active"].as_str().unwrap().to_string(), s["failovers"].as_u64().unwrap());
    std::thread::sleep(Duration::from_secs(4));
    let s = lab.a.daemon().status().unwrap();
    assert_eq!((s["active"].as_str().unwrap(), s["failovers"].as_u64().unwrap()), (active.as_str(), failovers), "no flapping among equals");
    // The active link gets 100 ms each way: clearly worse; the bond moves off it.
    let j: usize = active.trim_start_matches("eth").parse().unwrap();
    let slowed = Instant::now();
    lab.emulator(j).unwrap().set_both(Impairment::delay_ms(100));
    let mut s = Value::Null;
    wait_until(Duration::from_secs(20), "another member active", || {
        s = lab.a.daemon().status().unwrap();
        s["active"] != active.as_str()
    });
    let moved = slowed.elapsed();
    let next = s["active"].as_str().unwrap().to_string();
    println!("optimize: moved from {active} (now 200 ms round trips) to {next} after {moved:?}");
    // And it stays there.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.a.daemon().status().unwrap()["active"], next.as_str(), "stays on the better link");
}

#[test]
fn a_silent_link_with_50_ms_of_delay_fails_over_within_the_failover_interval() {
    let settings = "policies:\n  slow: { basePolicy: active-backup, failoverInterval: 300 }";
    let mut lab = lab(LabOptions::default().policy("slow").settings(settings));
    for i in 0..3 {
        lab.emulate(i).unwrap().set_both(Impairment::delay_ms(25));
    }
    let (s, _) = {
        let mut s = Value::Null;
        let took = wait_until(Duration::from_secs(10), "eth0 active and answering probes", || {
            s = lab.a.daemon().status().unwrap();
            s["active"] == "eth0" && Daemon::member(&s, "eth0")["rx_probes"].as_u64().unwrap_or(0) > 5
        });
        (s, took)
    };
    assert_eq!(Daemon::member(&s, "eth0")["usable"], true);
    let stream = Stream::start(&lab, Duration::from_millis(1), 4000).unwrap();
    wait_until(Duration::from_secs(3), "the stream arrives", || stream.received() >= 300);
    let silenced = SystemTime::now();
    lab.emulator(0).unwrap().set_both(Impairment { delay: Duration::from_millis(25), loss: 1.0, ..Default::default() });
    let mut s = Value::Null;
    wait_until(Duration::from_secs(5), "eth0 declared failed", || {
        s = lab.a.daemon().status().unwrap();
        Daemon::member(&s, "eth0")["usable"] == false
    });
    let failed = Daemon::event_ms_after(&s, "eth0 failed: silent", silenced).expect("an event says eth0 failed for silence");
    let then = stream.received();
    wait_until(Duration::from_secs(3), "traffic on another member", || stream.received() >= then + 300);
    let (sent, got) = stream.finish().unwrap();
    let (lost, longest) = losses(sent, &got);
    println!("50 ms round trips: eth0 failed {failed:.0} ms after it went silent; {lost} datagrams lost, longest gap {longest} ms");
    // Silence is counted from the last reply, which arrived before the fault, so the decision
    // is due within the 300 ms interval of the fault; 40 ms more for waking the daemon and the
    // emulator on a busy two-core machine.
    assert!(failed <= 300.0 + 40.0, "failed {failed:.0} ms after the fault");
    // Traffic resumes after the decision plus one way's 25 ms.
    assert!(longest <= 300 + 40 + 25 + 10, "traffic lost for {longest} ms");
}

/// B's member counters, received packets per member.
fn b_rx(lab: &Lab) -> Vec<u64> {
    lab.b_member_counters().unwrap().iter().map(|c| c.rx_packets).collect()
}

fn allocation(s: &Value, member: &str) -> f64 {
    Daemon::member(s, member)["allocation"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn balance_aware_splits_by_latency_as_the_formula_says_and_comes_back_when_the_slow_link_recovers() {
    // Latency alone counts: score = exp(-4 x lat / 500 ms).
    let settings = "policies:\n  aw: { basePolicy: balance-aware, balancePolicy: packet, failoverInterval: 300, \
                    quality: { lat: 1.0, ltm: 0.0, pdv: 0.0, plr: 0.0, per: 0.0, avl: 0.0 } }";
    let mut lab = lab(LabOptions::default().policy("aw").settings(settings).links(2));
    lab.emulate(0).unwrap().set_both(Impairment { delay: Duration::from_micros(2500), ..Default::default() });
    lab.emulate(1).unwrap().set_both(Impairment::delay_ms(25));
    let expected = |lat0: f64, lat1: f64| {
        let (s0, s1) = ((-4.0 * lat0 / 500.0).exp(), (-4.0 * lat1 / 500.0).exp());
        s1 / (s0 + s1)
    };
    let settle = |lab: &Lab, since: Instant| -> Value {
        let mut s = Value::Null;
        wait_until(Duration::from_secs(20), "a window of probes since the change", || {
            s = lab.a.daemon().status().unwrap();
            since.elapsed() > Duration::from_millis(7000)
                && (0..2).all(|i| Daemon::member(&s, &format!("eth{i}"))["quality"]["samples"].as_u64().unwrap_or(0) >= 48)
        });
        // One more reallocation round (every 2 x failoverInterval) on the full window.
        std::thread::sleep(Duration::from_millis(700));
        lab.a.daemon().status().unwrap()
    };
    let s = settle(&lab, Instant::now());
    let (lat0, lat1) = (quality(&s, "eth0", "lat"), quality(&s, "eth1", "lat"));
    let want = expected(lat0, lat1);
    let got = allocation(&s, "eth1");
    println!(
        "balance-aware by latency: round trips {lat0:.1} / {lat1:.1} ms: eth1 allocated {got:.3}, formula {want:.3} (0.411 for 5 / 50 ms)"
    );
    assert!((got - want).abs() < 0.02, "allocation follows the formula: {got} vs {want}");
    assert!((want - 0.411).abs() < 0.03, "the measured latencies are the imposed ones: {lat0} / {lat1}");
    // The traffic follows the allocation (packet mode: each packet placed by it). A ping
    // first: until B's address is resolved the kernel queues only 256 datagrams.
    bond_tests::net::ping(&lab, 1).unwrap();
    let before = b_rx(&lab);
    let flows = UdpFlows::new(&lab, 8, 47300).unwrap();
    let sent = flows.send(500, 64).unwrap();
    let got_n = flows.receive(Duration::from_millis(400)).len() as u64;
    drop(flows);
    let d: Vec<u64> = b_rx(&lab).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(got_n, sent, "nothing lost");
    let share = d[1] as f64 / (d[0] + d[1]) as f64;
    println!("balance-aware by latency: eth1 carried {share:.3} of {sent} datagrams");
    // One bucket is 1/256; probes and their replies add a little to both.
    assert!((share - got).abs() < 0.03, "traffic split {share} vs allocation {got}");
    // The slow link recovers: the split comes back to even.
    let recovered = Instant::now();
    lab.emulator(1).unwrap().set_both(Impairment { delay: Duration::from_micros(2500), ..Default::default() });
    let s = settle(&lab, recovered);
    let got = allocation(&s, "eth1");
    println!("balance-aware by latency: recovered: eth1 allocated {got:.3}");
    assert!((got - 0.5).abs() < 0.02, "even again: {got}");
}

#[test]
fn a_link_past_its_latency_or_jitter_limit_is_avoided_and_readmitted_after() {
    let settings = "policies:\n  lim: { basePolicy: balance-xor, failoverInterval: 300, qualityLimits: { lat: 30, pdv: 8 }, \
                    punishment: { base: 500, max: 1000, window: 60000 } }";
    let mut lab = lab(LabOptions::default().policy("lim").settings(settings));
    for i in 0..3 {
        lab.emulate(i).unwrap();
    }
    // Latency past the limit (40 ms round trips > 30).
    let slowed = Instant::now();
    lab.emulator(1).unwrap().set_both(Impairment::delay_ms(20));
    let mut s = Value::Null;
    wait_until(Duration::from_secs(15), "eth1 avoided for its latency", || {
        s = lab.a.daemon().status().unwrap();
        Daemon::member(&s, "eth1")["not_usable"].as_str().is_some_and(|r| r.contains("lat"))
    });
    println!(
        "latency limit: eth1 avoided {:?} after its round trips went to 40 ms: {}",
        slowed.elapsed(),
        Daemon::member(&s, "eth1")["not_usable"]
    );
    assert!(["eth0", "eth2"].iter().all(|m| Daemon::member(&s, m)["usable"] == true), "the others carry the traffic");
    // Back under the limit: readmitted.
    let repaired = Instant::now();
    lab.emulator(1).unwrap().set_both(Impairment::default());
    wait_until(Duration::from_secs(20), "eth1 readmitted", || Daemon::member(&lab.a.daemon().status().unwrap(), "eth1")["usable"] == true);
    println!("latency limit: eth1 readmitted {:?} after it recovered", repaired.elapsed());
    // Jitter past the limit (a round trip's spread of about 11 ms > 8).
    lab.emulator(2).unwrap().set_both(Impairment {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(8),
        distribution: Jitter::Normal,
        ..Default::default()
    });
    wait_until(Duration::from_secs(15), "eth2 avoided for its jitter", || {
        s = lab.a.daemon().status().unwrap();
        Daemon::member(&s, "eth2")["not_usable"].as_str().is_some_and(|r| r.contains("delay variation"))
    });
    lab.emulator(2).unwrap().set_both(Impairment::default());
    wait_until(Duration::from_secs(20), "eth2 readmitted", || Daemon::member(&lab.a.daemon().status().unwrap(), "eth2")["usable"] == true);
}

/// Share of datagrams that arrived after one with a higher sequence number.
fn reordered(seqs: &[u64]) -> f64 {
    let mut max = None;
    let late = seqs.iter().filter(|&&s| {
        let late = max.is_some_and(|m| s < m);
        max = max.max(Some(s));
        late
    });
    late.count() as f64 / seqs.len().max(1) as f64
}

#[test]
fn reordering_across_paths_of_unequal_delay_is_measured_per_policy() {
    // ZeroTier's table says balance-rr and packet-based balance-aware reorder "often" over
    // unequal paths; measured here (1 ms and 10 ms one way), reported, not hidden. (Packet-based
    // balance-aware by allocation, as ZeroTier places packets, and by arrival, as it does when
    // told nothing of how to split.)
    let settings = "policies:\n  rr: { basePolicy: balance-rr, packetsPerLink: 1 }\n  \
                    awp: { basePolicy: balance-aware, balancePolicy: packet, quality: { lat: 1.0, ltm: 0.0, pdv: 0.0, plr: 0.0, per: 0.0, avl: 0.0 } }\n  \
                    awm: { basePolicy: balance-aware, balancePolicy: packet }\n  \
                    xor: { basePolicy: balance-xor }";
    let mut lab = lab(LabOptions::default().policy("rr").settings(settings).links(2));
    lab.emulate(0).unwrap().set_both(Impairment::delay_ms(1));
    lab.emulate(1).unwrap().set_both(Impairment::delay_ms(10));
    bond_tests::net::ping(&lab, 1).unwrap();
    let mut report = Vec::new();
    for policy in ["rr", "awp", "awm", "xor"] {
        lab.a.daemon().set_policy(policy).unwrap();
        let stream = Stream::start(&lab, Duration::from_micros(500), 2000).unwrap();
        wait_until(Duration::from_secs(5), "the stream is sent", || stream.received() >= 1900);
        let (sent, got) = stream.finish().unwrap();
        let (lost, _) = losses(sent, &got);
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        let share = reordered(&seqs);
        report.push(format!("{policy}: {:.1}% reordered, {lost} lost", share * 100.0));
        assert_eq!(lost, 0, "{policy}: nothing lost");
        match policy {
            // One datagram per link in turn over 1 and 10 ms: about every other one is late.
            "rr" => assert!(share > 0.2, "balance-rr reorders over unequal paths: {share}"),
            // One flow stays on one link.
            "xor" => assert_eq!(share, 0.0, "a flow under balance-xor is never reordered"),
            // Told nothing of how to split, packet-based balance-aware places each packet where
            // it arrives first: a stream the 1 ms path carries stays on it, in order (once a
            // probe reply has said what the peer receives: the stride until then, up to a few
            // hundred milliseconds of this one-second stream; 1-4% measured).
            "awm" => assert!(share < 0.2, "placed by arrival: {share}"),
            _ => assert!(share > 0.0, "packet-based balance-aware reorders too: {share}"),
        }
    }
    println!("reordering over 1 ms / 10 ms paths, one 2 kHz flow: {}", report.join("; "));
}

#[test]
fn a_voice_class_is_duplicated_over_a_lossy_path_and_arrives_once_while_bulk_avoids_the_loss() {
    // Voice (UDP 5004-5010) is broadcast on both paths and deduplicated by the receiver; bulk
    // (everything else) is balance-aware by loss. One path loses 20% at random each way.
    let settings = "policies:
  voice: { basePolicy: broadcast, dedup: true }
  bulk: { basePolicy: balance-aware, failoverInterval: 300, quality: { plr: 1.0 }, qualityLimits: { plr: 0.45 } }
classSpecificBonds:
  - { protocol: udp, ports: 5004-5010, policy: voice }";
    let mut lab = lab(LabOptions::default().policy("bulk").settings(settings).links(2));
    lab.emulate(0).unwrap();
    lab.emulate(1).unwrap().set_both(Impairment { loss: 0.2, ..Default::default() });
    // Some of these may cross the lossy path: one answer is enough.
    bond_tests::net::ping(&lab, 5).unwrap();
    let s = lab.a.daemon().status().unwrap();
    assert_eq!(s["classes"][0]["class"], "udp ports 5004-5010", "status shows the class: {}", s["classes"]);
    // Let the bulk policy measure the loss (a window of probes).
    std::thread::sleep(Duration::from_secs(7));

    let rx = lab.b.ns.enter(|| UdpSocket::bind((ADDR_B, 5006))).unwrap().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    set_rcvbuf(&rx, 16 << 20);
    let tx = lab.a.ns.enter(|| UdpSocket::bind((ADDR_A, 40500))).unwrap().unwrap();
    let sent = 2000u64;
    for seq in 0..sent {
        bond_tests::net::send_retrying(&tx, &payload(seq, 0, 160), std::net::SocketAddr::new(ADDR_B.parse().unwrap(), 5006)).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    let mut copies = std::collections::BTreeMap::<u64, u32>::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = rx.recv(&mut buf) {
        if let Some((seq, _)) = parse_payload(&buf[..n]) {
            *copies.entry(seq).or_default() += 1;
        }
    }
    let got = copies.len() as u64;
    let twice = copies.values().filter(|c| **c > 1).count();
    println!("voice over a 20%-loss path and a clean one: {got} of {sent} arrived, {twice} more than once");
    assert!(got >= sent - sent / 200, "duplicated, the voice stream loses (almost) nothing: {got} of {sent}");
    assert_eq!(twice, 0, "the receiver's application sees each datagram once");
    let s = lab.a.daemon().status().unwrap();
    assert!(s["classes"][0]["tx_packets"].as_u64().unwrap() >= sent, "counted in the class: {}", s["classes"]);
    let stats = lab.a.daemon().ctl(&["stats", &lab.a.bond]).unwrap();
    assert!(stats.contains("class udp ports 5004-5010 (policy voice): tx"), "{stats}");

    // Bulk: 64 flows, kept off the lossy path by its measured loss. (The lossy path may have
    // failed for silence meanwhile: back, it counts as perfect until measured again.) Flows land
    // on buckets at random: with 16 flows and ~10% of buckets on the lossy path, 4 flows (a
    // quarter of the bulk) landed there about one run in 16. 64 flows keep that chance tiny.
    wait_until(Duration::from_secs(20), "the lossy path measured and mostly avoided by bulk", || {
        allocation(&lab.a.daemon().status().unwrap(), "eth1") < 0.2
    });
    let flows = UdpFlows::new(&lab, 64, 47400).unwrap();
    let wire_before = lab.wire_a_counters().unwrap();
    let bulk_sent = flows.send(25, 200).unwrap();
    let bulk_got = flows.receive(Duration::from_millis(300)).len() as u64;
    let carried: Vec<u64> = lab.wire_a_counters().unwrap().iter().zip(&wire_before).map(|(a, b)| (*a - *b).rx_packets).collect();
    let s = lab.a.daemon().status().unwrap();
    let share = allocation(&s, "eth1");
    let lossy_share = carried[1] as f64 / carried.iter().sum::<u64>().max(1) as f64;
    println!(
        "bulk: {bulk_got} of {bulk_sent} arrived; the lossy path's allocation {share:.3}, it carried {:.1}% ({} frames)",
        lossy_share * 100.0,
        carried[1]
    );
    assert!(share < 0.2, "bulk mostly off the lossy path: {share}");
    // Split evenly it would carry half; 0.35 is more than 5 standard deviations above what a 0.2
    // allocation gives 64 flows.
    assert!(lossy_share < 0.35, "the lossy path carried a minority of the bulk: {lossy_share}");
    // Every lost datagram is explained by the lossy path's 20%, give or take its randomness.
    let lost = bulk_sent - bulk_got;
    assert!(lost as f64 <= carried[1] as f64 * 0.3 + 8.0, "bulk loses only on the lossy path: {lost} lost, {} sent there", carried[1]);
    assert!(bulk_got as f64 >= bulk_sent as f64 * 0.93, "bulk loses little: {bulk_got} of {bulk_sent}");
}

#[test]
fn better_returns_to_the_primary_only_when_it_is_better_by_the_margin() {
    let settings = "policies:\n  ab-better: { basePolicy: active-backup, linkSelectMethod: better, failoverInterval: 300, \
                    punishment: { base: 50 }, links: { eth0: { mode: primary }, eth1: {} } }";
    let mut lab = lab(LabOptions::default().policy("ab-better").settings(settings).links(2));
    lab.emulate(0).unwrap();
    lab.emulate(1).unwrap();
    let active = |lab: &Lab| lab.a.daemon().status().unwrap()["active"].as_str().unwrap_or("").to_string();
    wait_until(Duration::from_secs(10), "the primary active", || active(&lab) == "eth0");
    // The primary fails; when it comes back it is a little slower (8 ms round trips).
    lab.emulator(0).unwrap().set_both(Impairment { loss: 1.0, ..Default::default() });
    wait_until(Duration::from_secs(5), "eth1 takes over", || active(&lab) == "eth1");
    lab.emulator(0).unwrap().set_both(Impairment::delay_ms(4));
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(active(&lab), "eth1", "a primary that is worse does not take the role back");
    // eth1 gets a little slower than eth0 (10 ms round trips): better, but within the margin.
    lab.emulator(1).unwrap().set_both(Impairment::delay_ms(5));
    std::thread::sleep(Duration::from_secs(8));
    let s = lab.a.daemon().status().unwrap();
    let (s0, s1) = (Daemon::member(&s, "eth0")["score"].as_f64().unwrap(), Daemon::member(&s, "eth1")["score"].as_f64().unwrap());
    println!("better: eth0 score {s0:.3}, eth1 {s1:.3} (within 5%): active {}", s["active"]);
    // 8 against 10 ms round trips differ by far less than the margin; which scores higher
    // within it is up to the emulator's timing noise on a loaded machine.
    assert!(s0 < s1 * 1.05 && s1 < s0 * 1.05, "scores within the margin, as set up: {s0} / {s1}");
    assert_eq!(s["active"], "eth1", "within the margin: no change");
    // eth1 gets clearly slower (120 ms round trips): the primary is better by the margin.
    let slowed = Instant::now();
    lab.emulator(1).unwrap().set_both(Impairment::delay_ms(60));
    wait_until(Duration::from_secs(15), "the primary takes the role back", || active(&lab) == "eth0");
    println!("better: eth0 back {:?} after eth1 went to 120 ms round trips", slowed.elapsed());
}

#[test]
fn links_kept_full_by_the_bonds_own_traffic_are_not_judged_lossy() {
    // Two 10 Mbit/s links with 50 ms queues, kept full by 8 TCP flows: each queue drops what
    // does not fit, probes too. That loss is congestion, TCP's signal to slow down, not a fault
    // of the link: the bond must not avoid a link (and then punish it for flapping) for it.
    // A second's failover interval: with 500 ms, every probe of a link once fell in the same
    // overflowing half second and the link was taken for silent.
    let settings = "policies:\n  aw: { basePolicy: balance-aware, failoverInterval: 1000 }";
    let mut lab = lab(LabOptions::default().policy("aw").settings(settings).links(2));
    for i in 0..2 {
        let imp = Impairment { delay: Duration::from_millis(1), rate: Some(10_000_000), ..Impairment::default() };
        lab.emulate(i).unwrap().set_both(imp);
    }
    bond_tests::net::ping(&lab, 1).unwrap();
    wait_until(Duration::from_secs(10), "both links measured", || {
        let s = lab.a.daemon().status().unwrap();
        (0..2).all(|i| quality(&s, &format!("eth{i}"), "samples") >= 16.0)
    });
    let last_seq = |s: &Value| s["events"].as_array().and_then(|e| e.last()).and_then(|e| e["seq"].as_u64()).unwrap_or(0);
    let since = last_seq(&lab.a.daemon().status().unwrap());
    let bytes_per_s = bond_tests::net::tcp_rate(&lab, ADDR_B, 8, Duration::from_secs(12)).unwrap();
    let s = lab.a.daemon().status().unwrap();
    let drops: u64 = (0..2).map(|i| lab.emulator(i).unwrap().stats(0).queue_drops).sum();
    let line = |i: usize| {
        let m = format!("eth{i}");
        format!(
            "{m}: plr {:.3}, congestion loss {:.3}, lat {:.1} ms, usable {}",
            quality(&s, &m, "plr"),
            quality(&s, &m, "plr_congestion"),
            quality(&s, &m, "lat"),
            Daemon::member(&s, &m)["usable"]
        )
    };
    println!(
        "8 TCP flows over 2 x 10 Mbit/s: {:.1} Mbit/s, {drops} frames dropped by full queues; {}; {}",
        bytes_per_s * 8e-6,
        line(0),
        line(1)
    );
    // Failures, quality limits, usability and punishments since the load started.
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["seq"].as_u64() > Some(since) && ["health", "quality", "usable", "punishment"].contains(&e["kind"].as_str().unwrap_or(""))
        })
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(drops > 0, "the queues overflowed: the test needs congestion");
    assert!(events.is_empty(), "no link failed, was avoided or punished for its congestion: {events:?}");
    for i in 0..2 {
        assert_eq!(Daemon::member(&s, &format!("eth{i}"))["usable"], true, "{}", line(i));
        assert!(quality(&s, &format!("eth{i}"), "plr") <= 0.05, "congestion is not counted as the link's loss: {}", line(i));
    }
    assert!(bytes_per_s * 8e-6 > 16.0, "the flows fill both links: {:.1} Mbit/s", bytes_per_s * 8e-6);
}
