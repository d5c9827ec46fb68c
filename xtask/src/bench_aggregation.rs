//! Aggregation efficiency: the members' links rate-limited by the lab's link emulator (these
//! kernels have no TBF or HTB worth trusting under a user-space wire, and the emulator carries
//! about 10,000 frames/s per direction faithfully on this machine, so the rates are scaled down
//! from 100 Mbit/s: 3 x 10 Mbit/s, and unequal 20/10/5), each way 1 ms of delay. Goodput of 16
//! TCP flows under balance-xor (layer3+4) and balance-aware, and of one TCP flow under
//! balance-rr (64 packets per link, the default of a named policy, and 1, bonding's default)
//! and packet-based balance-aware, as a share of the sum of the member rates, with
//! the reordering each causes: out-of-order segments the receiver queued and segments the
//! sender retransmitted. Probes lost in the links' own full queues count as congestion, not
//! as the links' loss, so no link is avoided for the load these runs put on it (each run says
//! which links were out of use at its end, and why; a one-flow run, which link B sent its
//! acknowledgements back by). Written as `target/bench/aggregation.json` too.

use std::time::Duration;

use anyhow::Context;
use bond_tests::{Lab, LabOptions, emu::Impairment};

/// Policies on side A. The `-u` ones know the unequal links' capacities (`speed`), `-10` the
/// equal ones'.
const SETTINGS: &str = "policies:
  xor-l34: { basePolicy: balance-xor, xmitHashPolicy: layer3+4 }
  aware: { basePolicy: balance-aware }
  rr-1: { basePolicy: balance-rr, packetsPerLink: 1 }
  aware-packet: { basePolicy: balance-aware, balancePolicy: packet }
  aware-u: { basePolicy: balance-aware, links: { eth0: { speed: 20 }, eth1: { speed: 10 }, eth2: { speed: 5 } } }
  aware-packet-u: { basePolicy: balance-aware, balancePolicy: packet, links: { eth0: { speed: 20 }, eth1: { speed: 10 }, eth2: { speed: 5 } } }
  aware-packet-10: { basePolicy: balance-aware, balancePolicy: packet, links: { eth0: { speed: 10 }, eth1: { speed: 10 }, eth2: { speed: 10 } } }
  fastest-alone: { basePolicy: active-backup, links: { eth0: {} } }";

/// Links (label, Mbit/s and one-way ms of each member) and the (policy, TCP flows, congestion
/// control) runs over them.
type Case = (&'static str, [u64; 3], [u64; 3], &'static [(&'static str, usize, &'static str)]);

pub fn run(quick: bool) -> anyhow::Result<()> {
    // 10 s: over unequal delays, cubic takes seconds to settle after slow start.
    let round = if quick { Duration::from_secs(1) } else { Duration::from_secs(10) };
    let mut lab = Lab::start(LabOptions::default().policy("xor-l34").settings(SETTINGS)).context("starting the lab")?;
    for i in 0..lab.links {
        lab.emulate(i)?;
    }
    println!("== aggregation efficiency: members rate-limited by the link emulator, TCP for {round:?} per case");
    println!(
        "   {:<22} {:<16} {:<15} {:>5} {:>6} {:>8} {:>7} {:>12} {:>8}",
        "links (Mbit/s)", "one way (ms)", "policy", "flows", "cc", "Mbit/s", "share", "out-of-order", "retrans"
    );
    let cases: [Case; 3] = [
        (
            "3 x 10",
            [10, 10, 10],
            [1, 1, 1],
            &[
                ("xor-l34", 16, "cubic"),
                ("aware", 16, "cubic"),
                ("balance-rr", 1, "cubic"),
                ("rr-1", 1, "cubic"),
                ("aware-packet", 1, "cubic"),
                ("aware-packet-10", 1, "cubic"),
            ],
        ),
        (
            "20 / 10 / 5",
            [20, 10, 5],
            [1, 1, 1],
            &[
                ("xor-l34", 16, "cubic"),
                ("aware-u", 16, "cubic"),
                ("balance-rr", 1, "cubic"),
                ("rr-1", 1, "cubic"),
                ("aware-packet-u", 1, "cubic"),
                ("aware-packet-u", 1, "bbr"),
                ("aware-packet", 1, "cubic"),
            ],
        ),
        // Paths that differ in delay too (fibre, DSL, LTE): the fastest path alone beside the
        // bond, with both congestion controls.
        (
            "20 / 10 / 5",
            [20, 10, 5],
            [2, 10, 25],
            &[
                ("fastest-alone", 1, "cubic"),
                ("aware-packet-u", 1, "cubic"),
                ("fastest-alone", 1, "bbr"),
                ("aware-packet-u", 1, "bbr"),
                ("aware-packet", 1, "cubic"),
                ("aware-packet", 1, "bbr"),
                ("aware-u", 16, "cubic"),
            ],
        ),
    ];
    let mut rows = Vec::new();
    // The fastest path alone, per congestion control, for the bond's rows after it.
    let mut alone: std::collections::BTreeMap<&str, f64> = Default::default();
    for (case, (label, rates, delays, runs)) in cases.into_iter().enumerate() {
        alone.clear();
        // Each case with a fresh daemon on A: what it measured of the previous case's links
        // (base round trips, kept for minutes; rates) would otherwise hold into this one's.
        if case > 0 {
            let path = lab.config_path(&lab.a);
            lab.a.daemon.as_mut().context("A's daemon")?.stop()?;
            lab.a.daemon = Some(bond_tests::Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, lab.dir(), &[])?);
            bond_tests::net::ping(&lab, 2)?;
        }
        for (i, (mbps, ms)) in rates.iter().zip(delays).enumerate() {
            let imp = Impairment { delay: Duration::from_millis(ms), rate: Some(mbps * 1_000_000), ..Impairment::default() };
            lab.emulator(i).context("emulator")?.set_both(imp);
        }
        let sum: u64 = rates.iter().sum();
        let one_way = delays.map(|d| d.to_string()).join(" / ");
        for &(policy, flows, cc) in runs {
            lab.a.daemon().set_policy(policy)?;
            // Each run starts with every link in use: a punishment earned in the previous run
            // (avoided, back, avoided) must not count against this one. Then the policy measures
            // its links and settles.
            let all_usable =
                |s: &serde_json::Value| (0..lab.links).all(|i| bond_tests::Daemon::member(s, &format!("eth{i}"))["usable"] == true);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !all_usable(&lab.a.daemon().status()?) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(if quick { 200 } else { 1500 }));
            let started = std::time::SystemTime::now();
            let before = (netstat(&lab.b.ns, "TcpExt", "TCPOFOQueue")?, netstat(&lab.a.ns, "Tcp", "RetransSegs")?);
            let b_sent_before = b_sent(&lab)?;
            let bytes_per_s = bond_tests::net::tcp_rate_with(&lab, lab.b.addr, flows, round, Some(cc))?;
            let after = (netstat(&lab.b.ns, "TcpExt", "TCPOFOQueue")?, netstat(&lab.a.ns, "Tcp", "RetransSegs")?);
            // The link B sent most by: one flow's acknowledgements (B places them by its own
            // policy, by the flow's hash under balance-xor), whose delay a sender's round trip
            // includes (BBR's share over unequal delays depends on it, see Policies).
            let acks_by = b_sent(&lab)?
                .iter()
                .zip(&b_sent_before)
                .map(|(after, before)| after.saturating_sub(*before))
                .enumerate()
                .max_by_key(|&(_, bytes)| bytes)
                .filter(|_| flows == 1)
                .map(|(i, _)| format!("eth{i}"));
            // Links the bond stopped using meanwhile (failed, punished or judged below its limits)
            // carry nothing: said beside the figure, which is then not the policy's aggregation.
            let status = lab.a.daemon().status()?;
            let out: Vec<String> = (0..lab.links)
                .map(|i| format!("eth{i}"))
                .filter_map(|m| {
                    let s = bond_tests::Daemon::member(&status, &m);
                    // And the last time it failed, misbehaved or was punished: what it is out for.
                    let judged = status["events"].as_array().and_then(|e| {
                        e.iter()
                            .rev()
                            .filter(|e| ["health", "punishment", "quality"].contains(&e["kind"].as_str().unwrap_or("")))
                            .filter_map(|e| e["message"].as_str())
                            .find(|t| t.starts_with(&format!("{m} ")))
                    });
                    (s["usable"] != true)
                        .then(|| format!("{m} ({}; {})", s["not_usable"].as_str().unwrap_or("?"), judged.unwrap_or("no event logged")))
                })
                .collect();
            // And what the bond judged while the flows ran (a link held out and back before the
            // end carried nothing for a while, which the end's state does not show).
            let meanwhile = bond_tests::Daemon::events_since(&status, &["health", "punishment", "quality"], started);
            let mbps = bytes_per_s * 8.0 / 1e6;
            let versus = match alone.get(cc) {
                _ if policy == "fastest-alone" => {
                    alone.insert(cc, mbps);
                    String::new()
                }
                Some(a) if flows == 1 => format!("{:.2}x the fastest path alone  ", mbps / a),
                _ => String::new(),
            };
            let acks = acks_by.as_ref().map(|m| format!("acknowledgements back by {m}  ")).unwrap_or_default();
            println!(
                "   {label:<22} {one_way:<16} {policy:<15} {flows:>5} {cc:>6} {mbps:>8.1} {:>6.0}% {:>12} {:>8}  {versus}{acks}{}{}",
                100.0 * mbps / sum as f64,
                after.0 - before.0,
                after.1 - before.1,
                if out.is_empty() { String::new() } else { format!("not in use at the end: {}  ", out.join(", ")) },
                if meanwhile.is_empty() { String::new() } else { format!("during the run: {}", meanwhile.join("; ")) }
            );
            rows.push(serde_json::json!({
                "links_mbps": rates, "one_way_ms": delays, "policy": policy, "flows": flows, "congestion_control": cc,
                "goodput_mbps": mbps, "share": mbps / sum as f64,
                "out_of_order": after.0 - before.0, "retransmissions": after.1 - before.1, "not_in_use_at_end": out,
                "acknowledgements_by": acks_by,
                "judged_during_run": meanwhile,
            }));
        }
    }
    crate::util::write_bench_json("aggregation", &serde_json::json!({ "round_s": round.as_secs_f64(), "rows": rows }))
}

/// Bytes B's bond has sent by each member.
fn b_sent(lab: &Lab) -> anyhow::Result<Vec<u64>> {
    let status = lab.b.daemon().status()?;
    Ok((0..lab.links).map(|i| bond_tests::Daemon::member(&status, &format!("eth{i}"))["tx_bytes"].as_u64().unwrap_or(0)).collect())
}

/// A counter of `/proc/net/snmp` (`Tcp`) or `/proc/net/netstat` (`TcpExt`) in a namespace.
fn netstat(ns: &bond_tests::Netns, group: &str, key: &str) -> anyhow::Result<u64> {
    let file = if group == "TcpExt" { "/proc/net/netstat" } else { "/proc/net/snmp" };
    let text = ns.exec("cat", &[file])?;
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next().context("header")?, lines.next().context("values")?);
    let i = names.split_whitespace().position(|n| n == key).with_context(|| format!("no {key} in {file}"))?;
    values.split_whitespace().nth(i).context("value")?.parse().context("counter")
}
