//! Failover time under a constant-rate sequenced UDP stream (one datagram every
//! `STREAM_INTERVAL`), reported as milliseconds of traffic lost per failover:
//!
//! - carrier loss: the member carrying the stream loses its link (carrier off at both bonds);
//! - silent loss: everything on that member is dropped on the wire while carrier stays up;
//!   detected by peer probes every third of `failoverInterval`.
//!
//! For active-backup and balance-aware, each at the fastest `failoverInterval` (10 ms), at
//! 30 ms and at the default (5,000 ms). Each kind runs `rounds` times (7; 1 with `--quick`;
//! at most 3 for silent loss at the default, which takes seconds each), always failing the
//! member that carries the stream at that moment (active-backup's active member; under
//! balance-aware the one whose transmit counter moved). Then the silent loss at 30 ms again
//! while `bondctl status`, `bondctl flows` and the metrics endpoint are asked in a loop, and
//! for active-backup while a fourth device joins and leaves the bond in a loop (`add-link`,
//! `remove-link`: netlink and grace periods); neither must make failover slower (the daemon
//! answers requests off its timing path and runs operations beside it). Results also go to
//! `target/bench/failover.json`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Stream, losses, ping},
};

const STREAM_INTERVAL: Duration = Duration::from_micros(250);
/// Repeated failures would be punished as flapping; the benchmark measures detection only.
const SETTINGS: &str = "policies:
  ab-10: { basePolicy: active-backup, failoverInterval: 10, punishment: { base: 10 } }
  ab-30: { basePolicy: active-backup, failoverInterval: 30, punishment: { base: 10 } }
  ab-default: { basePolicy: active-backup, punishment: { base: 10 } }
  aware-10: { basePolicy: balance-aware, failoverInterval: 10, punishment: { base: 10 } }
  aware-30: { basePolicy: balance-aware, failoverInterval: 30, punishment: { base: 10 } }
  aware-default: { basePolicy: balance-aware, punishment: { base: 10 } }";
/// `failoverInterval` when a policy does not set it.
const DEFAULT_INTERVAL_MS: u64 = 5000;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Carrier,
    Silent,
}

/// One line of the table: a policy at one `failoverInterval`, one kind of fault, and what
/// was asked of the daemon meanwhile.
struct Case {
    policy: &'static str,
    interval_ms: u64,
    fault: Fault,
    /// Hammer kinds run meanwhile (see `spawn_hammer`).
    hammers: std::ops::Range<usize>,
}

impl Case {
    fn label(&self) -> String {
        let base = if self.policy.starts_with("ab") { "active-backup" } else { "balance-aware" };
        let fault = if self.fault == Fault::Carrier { "carrier loss" } else { "silent loss" };
        let during = match self.hammers.start {
            _ if self.hammers.is_empty() => "",
            0 => ", status/flows/metrics asked in a loop",
            _ => ", a fourth device added and removed in a loop",
        };
        format!("{base}, failoverInterval {}: {fault}{during}", self.interval_ms)
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (policy, interval_ms) in [
        ("ab-10", 10),
        ("ab-30", 30),
        ("ab-default", DEFAULT_INTERVAL_MS),
        ("aware-10", 10),
        ("aware-30", 30),
        ("aware-default", DEFAULT_INTERVAL_MS),
    ] {
        for fault in [Fault::Carrier, Fault::Silent] {
            cases.push(Case { policy, interval_ms, fault, hammers: 0..0 });
        }
    }
    cases.push(Case { policy: "ab-30", interval_ms: 30, fault: Fault::Silent, hammers: 0..3 });
    cases.push(Case { policy: "ab-30", interval_ms: 30, fault: Fault::Silent, hammers: 3..4 });
    cases.push(Case { policy: "aware-30", interval_ms: 30, fault: Fault::Silent, hammers: 0..3 });
    cases
}

pub fn run(rounds: usize) -> anyhow::Result<()> {
    let mut lab = Lab::start(LabOptions::default().policy("ab-30").settings(SETTINGS)).context("starting the lab")?;
    // A's daemon again, with the metrics endpoint (it adopts the running bond).
    let (path, dir) = (lab.config_path(&lab.a), lab.dir().to_path_buf());
    lab.a.daemon.as_mut().context("A's daemon")?.stop()?;
    lab.a.ns.ip(&["link", "set", "lo", "up"])?;
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, &["--metrics", &format!("127.0.0.1:{METRICS_PORT}")])?);
    ping(&lab, 2)?;
    // A device for add-link / remove-link: no carrier (its peer stays down), so it never
    // carries traffic, but joining and leaving do all their work.
    lab.a.ns.ip(&["link", "add", SPARE, "type", "veth", "peer", "name", "spare-peer"])?;
    println!("== failover time: traffic lost per failover, one datagram every {} µs", STREAM_INTERVAL.as_micros());
    let mut results = Vec::new();
    for case in cases() {
        for side in [&lab.a, &lab.b] {
            side.daemon().set_policy(case.policy)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicU64::new(0));
        let hammers: Vec<_> = case.hammers.clone().map(|kind| spawn_hammer(&lab, kind, stop.clone(), asked.clone())).collect();
        let n = if case.fault == Fault::Silent && case.interval_ms >= 1000 { rounds.min(3) } else { rounds };
        let mut lost_ms = Vec::new();
        for _ in 0..n {
            lost_ms.push(round(&lab, case.fault, case.interval_ms)?);
        }
        stop.store(true, Ordering::Relaxed);
        for h in hammers {
            let _ = h.join();
        }
        let asked = asked.load(Ordering::Relaxed);
        let shown: Vec<String> = lost_ms.iter().map(|v| format!("{v:.1}")).collect();
        let mut sorted = lost_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let (median, max) = (sorted[n / 2], sorted[n - 1]);
        let answered = if case.hammers.is_empty() { String::new() } else { format!(" ({asked} requests answered meanwhile)") };
        println!("   {}: median {median:.1} ms, max {max:.1} ms [{}]{answered}", case.label(), shown.join(", "));
        results.push(serde_json::json!({
            "policy": case.policy, "failover_interval_ms": case.interval_ms,
            "fault": if case.fault == Fault::Carrier { "carrier" } else { "silent" },
            "during": case.label().split_once(": ").map(|(_, f)| f.to_string()),
            "lost_ms": lost_ms, "median_ms": median, "max_ms": max,
            "requests_answered": (!case.hammers.is_empty()).then_some(asked),
        }));
    }
    crate::util::write_bench_json(
        "failover",
        &serde_json::json!({ "stream_interval_us": STREAM_INTERVAL.as_micros() as u64, "rows": results }),
    )?;
    for side in [&lab.a, &lab.b] {
        side.daemon().set_policy("ab-30")?;
    }
    for (fault, name) in [(Fault::Carrier, "carrier"), (Fault::Silent, "silent")] {
        let path = crate::util::bench_dir()?.join(format!("failover-{name}.svg"));
        timeline(&lab, fault, &path)?;
        println!("   timeline of one {name} failover (datagrams per ms on each member): {}", path.display());
    }
    Ok(())
}

/// One failover with B's members captured: which member carried each datagram, by the time
/// it was sent (its sequence number), drawn from 50 ms before the fault to 100 ms after.
fn timeline(lab: &Lab, fault: Fault, path: &std::path::Path) -> anyhow::Result<()> {
    let index = wait_all_usable(lab)?.context("the timelines are drawn under active-backup")?;
    let captures: Vec<_> =
        (0..lab.links).map(|i| bond_tests::net::Capture::open(&lab.b.ns, &format!("eth{i}"))).collect::<Result<_, _>>()?;
    let max = (Duration::from_secs(2).as_micros() / STREAM_INTERVAL.as_micros()) as u64;
    let start = Instant::now();
    let stream = Stream::start(lab, STREAM_INTERVAL, max)?;
    std::thread::sleep(Duration::from_millis(400));
    let at = start.elapsed();
    match fault {
        Fault::Carrier => lab.cut(index)?,
        Fault::Silent => lab.impair(index, 100)?,
    }
    std::thread::sleep(Duration::from_millis(400));
    let (sent, _) = stream.finish()?;
    match fault {
        Fault::Carrier => lab.restore(index)?,
        Fault::Silent => lab.repair(index)?,
    }
    // Per millisecond from 50 ms before the fault: datagrams each member carried, and lost.
    const BEFORE: i64 = 50;
    const AFTER: i64 = 100;
    let per_ms = (Duration::from_millis(1).as_nanos() / STREAM_INTERVAL.as_nanos()) as usize;
    let fault_seq = (at.as_nanos() / STREAM_INTERVAL.as_nanos()) as i64;
    let mut counts = vec![vec![0usize; (BEFORE + AFTER) as usize]; lab.links + 1];
    let mut seen = vec![false; sent as usize];
    for (m, c) in captures.iter().enumerate() {
        for (seq, _) in c.test_datagrams() {
            let ms = (seq as i64 - fault_seq) / per_ms as i64;
            if (-BEFORE..AFTER).contains(&ms) {
                counts[m][(ms + BEFORE) as usize] += 1;
            }
            if let Some(s) = seen.get_mut(seq as usize) {
                *s = true;
            }
        }
    }
    for (seq, got) in seen.iter().enumerate() {
        let ms = (seq as i64 - fault_seq) / per_ms as i64;
        if !got && (-BEFORE..AFTER).contains(&ms) {
            counts[lab.links][(ms + BEFORE) as usize] += 1;
        }
    }
    std::fs::create_dir_all(path.parent().context("path")?)?;
    std::fs::write(path, timeline_svg(&counts, BEFORE, per_ms, matches!(fault, Fault::Carrier)))?;
    Ok(())
}

/// Lines per member (and one for datagrams lost) of datagrams per millisecond.
fn timeline_svg(counts: &[Vec<usize>], before: i64, per_ms: usize, carrier: bool) -> String {
    const W: f64 = 900.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 50.0;
    const TOP: f64 = 40.0;
    const PLOT_H: f64 = 200.0;
    const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
    let n = counts[0].len();
    let x = |i: usize| LEFT + (W - LEFT - 20.0) * i as f64 / n as f64;
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(per_ms);
    let y = |v: usize| TOP + PLOT_H * (1.0 - v as f64 / top as f64);
    let what = if carrier { "carrier loss" } else { "silent loss (probes every 10 ms)" };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">Failover on {what}: datagrams per ms on each member, by send time (0 = the fault)</text>\n"
    );
    let zero = x(before as usize);
    out += &format!(
        "<line x1=\"{zero:.1}\" x2=\"{zero:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#000\" stroke-dasharray=\"4\"/>\n",
        TOP + PLOT_H
    );
    for v in [0, top] {
        out += &format!("<text x=\"5\" y=\"{:.1}\">{v}/ms</text>\n", y(v) + 4.0);
    }
    for ms in (0..n).step_by(25) {
        out +=
            &format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} ms</text>\n", x(ms), TOP + PLOT_H + 16.0, ms as i64 - before);
    }
    for (k, series) in counts.iter().enumerate() {
        let points: Vec<String> = series.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let color = COLORS[k.min(COLORS.len() - 1)];
        let label = if k + 1 == counts.len() { "lost".to_string() } else { format!("eth{k}") };
        out += &format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n", points.join(" "));
        out += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>\n",
            LEFT + k as f64 * 100.0,
            H - 40.0,
            LEFT + k as f64 * 100.0 + 16.0,
            H - 30.0
        );
    }
    out + "</svg>\n"
}

const METRICS_PORT: u16 = 9469;
/// The device added and removed in a loop.
const SPARE: &str = "spare0";

/// Asks A's daemon in a loop until `stop`: kind 0 `bondctl status`, 1 `bondctl flows`, 2 a
/// metrics scrape, 3 `add-link` then `remove-link` of the spare device. Counts the answers in
/// `asked`.
fn spawn_hammer(lab: &Lab, kind: usize, stop: Arc<AtomicBool>, asked: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    let (netns, bond) = (lab.a.ns.name().to_string(), lab.a.bond.clone());
    let bondctl = bond_tests::lab::bondctl();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let ok = match kind {
                0 => std::process::Command::new(&bondctl)
                    .args(["--netns", &netns, "status", &bond, "--json"])
                    .output()
                    .is_ok_and(|o| o.status.success()),
                1 => std::process::Command::new(&bondctl)
                    .args(["--netns", &netns, "flows", &bond])
                    .output()
                    .is_ok_and(|o| o.status.success()),
                2 => bond_tests::ns::enter_named(&netns, scrape).is_ok_and(|r| r.is_ok()),
                _ => ["add-link", "remove-link"].iter().all(|op| {
                    std::process::Command::new(&bondctl)
                        .args(["--netns", &netns, op, &bond, SPARE])
                        .output()
                        .is_ok_and(|o| o.status.success())
                }),
            };
            asked.fetch_add(u64::from(ok), Ordering::Relaxed);
        }
    })
}

/// `GET /metrics` (from inside A's namespace).
fn scrape() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if !out.starts_with("HTTP/1.1 200") {
        bail!("scrape: {}", out.lines().next().unwrap_or_default());
    }
    Ok(())
}

/// One failover of the member carrying the stream, at `interval_ms` (`failoverInterval`);
/// returns the milliseconds of traffic lost.
fn round(lab: &Lab, fault: Fault, interval_ms: u64) -> anyhow::Result<f64> {
    wait_all_usable(lab)?;
    // Long enough for a silent loss to be found (up to 4/3 of the interval) and traffic to
    // be seen flowing again.
    let after = Duration::from_millis(400 + interval_ms * 4 / 3);
    let max = ((Duration::from_millis(600) + after).as_micros() / STREAM_INTERVAL.as_micros()) as u64;
    let stream = Stream::start(lab, STREAM_INTERVAL, max)?;
    std::thread::sleep(Duration::from_millis(300));
    // The member whose transmit counter moved most in the last 100 ms carries the stream
    // (the active member, or balance-aware's choice): what was active a moment ago may have
    // handed over since (a member judged better once measured, after a policy change).
    let before = tx_packets(lab)?;
    std::thread::sleep(Duration::from_millis(100));
    let now = tx_packets(lab)?;
    let index = (0..lab.links).max_by_key(|&i| now[i].saturating_sub(before[i])).context("no member")?;
    match fault {
        Fault::Carrier => lab.cut(index)?,
        Fault::Silent => lab.impair(index, 100)?,
    }
    std::thread::sleep(after);
    let (sent, got) = stream.finish()?;
    match fault {
        Fault::Carrier => lab.restore(index)?,
        Fault::Silent => lab.repair(index)?,
    }
    if !got.iter().any(|(seq, _)| *seq + 200 > sent) {
        bail!("traffic did not continue after the failover");
    }
    let (lost, _) = losses(sent, &got);
    Ok(lost as f64 * STREAM_INTERVAL.as_secs_f64() * 1000.0)
}

/// Packets each of A's members sent, from its status.
fn tx_packets(lab: &Lab) -> anyhow::Result<Vec<u64>> {
    let s = lab.a.daemon().status()?;
    Ok((0..lab.links).map(|i| Daemon::member(&s, &format!("eth{i}"))["tx_packets"].as_u64().unwrap_or(0)).collect())
}

/// Waits until every member is usable again (at both ends); returns the active member's index
/// (None: the policy has no active member).
fn wait_all_usable(lab: &Lab) -> anyhow::Result<Option<usize>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lab.a.daemon().status()?;
        let peer = lab.b.daemon().status()?;
        let all = (0..lab.links).all(|i| [&s, &peer].iter().all(|s| Daemon::member(s, &format!("eth{i}"))["usable"] == true));
        let active_backup = s["policy"]["mode"].as_str().is_some_and(|m| m.contains("active-backup"));
        match s["active"].as_str() {
            Some(active) if all && active_backup => {
                return Ok(Some(active.trim_start_matches("eth").parse().context("active member name")?));
            }
            _ if all && !active_backup => return Ok(None),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("members not all usable again: {s:#}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
