//! Failover time under a constant-rate sequenced UDP stream (one datagram every
//! `STREAM_INTERVAL`), reported as milliseconds of traffic lost per failover:
//!
//! - carrier loss: the active member's link goes down (carrier off at both bonds);
//! - silent loss: everything on the active member is dropped on the wire while carrier stays
//!   up; detected by peer probes every 10 ms (`failoverInterval: 30`).
//!
//! Each kind runs `ROUNDS` times, always failing the member that is active at that moment.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Stream, losses, ping},
};

const ROUNDS: usize = 7;
const STREAM_INTERVAL: Duration = Duration::from_micros(250);
/// Repeated failures would be punished as flapping; the benchmark measures detection only.
const SETTINGS: &str = "policies:\n  fast: { basePolicy: active-backup, failoverInterval: 30, punishment: { base: 10 } }";

#[derive(Clone, Copy)]
enum Fault {
    Carrier,
    Silent,
}

pub fn run() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions::default().policy("fast").settings(SETTINGS)).context("starting the lab")?;
    ping(&lab, 2)?;
    println!(
        "== failover time: active-backup, probes every 10 ms (failoverInterval 30), one datagram every {} µs, {ROUNDS} rounds",
        STREAM_INTERVAL.as_micros()
    );
    for (fault, what) in [(Fault::Carrier, "carrier loss"), (Fault::Silent, "silent loss ")] {
        let mut lost_ms = Vec::new();
        for _ in 0..ROUNDS {
            lost_ms.push(round(&lab, fault)?);
        }
        let shown: Vec<String> = lost_ms.iter().map(|v| format!("{v:.1}")).collect();
        lost_ms.sort_by(f64::total_cmp);
        println!(
            "   {what}: traffic lost per failover (ms): median {:.1}, max {:.1}   [{}]",
            lost_ms[ROUNDS / 2],
            lost_ms[ROUNDS - 1],
            shown.join(", ")
        );
    }
    Ok(())
}

/// One failover of the active member; returns the milliseconds of traffic lost.
fn round(lab: &Lab, fault: Fault) -> anyhow::Result<f64> {
    let index = wait_all_usable(lab)?;
    let max = (Duration::from_secs(2).as_micros() / STREAM_INTERVAL.as_micros()) as u64;
    let stream = Stream::start(lab, STREAM_INTERVAL, max)?;
    std::thread::sleep(Duration::from_millis(400));
    match fault {
        Fault::Carrier => lab.cut(index)?,
        Fault::Silent => lab.impair(index, 100)?,
    }
    std::thread::sleep(Duration::from_millis(400));
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

/// Waits until every member is usable again; returns the active member's index.
fn wait_all_usable(lab: &Lab) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lab.a.daemon().status()?;
        let all = (0..3).all(|i| Daemon::member(&s, &format!("eth{i}"))["usable"] == true);
        if let (true, Some(active)) = (all, s["active"].as_str()) {
            return active.trim_start_matches("eth").parse().context("active member name");
        }
        if Instant::now() > deadline {
            bail!("members not all usable again: {s:#}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
