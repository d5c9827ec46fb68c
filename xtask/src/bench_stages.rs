//! Programs run ahead of the bond's own, for what the bond's programs cost beyond the least
//! they must do:
//!
//! - the redirect floors: `floor_redirect` first on A's bond device (to A's eth0) and
//!   `floor_redirect_ingress` first on B's eth0 (into B's bond). The bond's programs after them
//!   do not run, and the traffic still crosses;
//! - the breakdown of `bond_egress` by stage: each `stage_*` program (`bond_egress` cut short
//!   after that stage, then the same redirect) in the floor's place in turn, reading the running
//!   bond's own maps (its configuration, counters and flow table), rounds interleaved with the
//!   floor and the whole program (every other round in reverse order). Neighbours' difference
//!   is that stage's cost;
//! - the same programs in the kernel's test runner (`BPF_PROG_TEST_RUN`): one frame, a million
//!   runs in a loop on one CPU, no traffic. Hot caches and no other work in between, so it
//!   measures the instructions a program runs, steadily to a nanosecond: what a cut in the code
//!   changes. The traffic figures say what a packet costs among everything else the machine does.

use std::time::Duration;

use anyhow::Context;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, TestRun, TestRunOptions, tc::TcAttachOptions};
use bond_tests::{Lab, Netns};

use crate::bench::{Load, blast, median, prog_stats, program_cost};

/// The stage programs in the order `bond_egress` runs the stages, each with what it adds.
const STAGES: [(&str, &str); 6] = [
    ("stage_config", "config read (bank, then the config)"),
    ("stage_usable", "usable mask (and the family's)"),
    ("stage_parse", "header parse"),
    ("stage_hash", "layer3+4 hash, member by xor"),
    ("stage_sample", "flow-table sample (1 in 16)"),
    ("stage_counters", "member counters"),
];

// The sample stage's label says how often the flow table samples.
const _: () = assert!(bond_common::flow::FLOW_SAMPLE_EVERY == 16);

/// One place a program goes: (program, namespace, device, direction).
type Place<'a> = (&'a str, &'a Netns, &'a str, TcAttachType);

/// A fresh load of the bond's object, its floors pointed at A's eth0 (egress) and B's bond
/// (ingress). With `bond_maps`, the object's maps are A's bond's pinned ones, so the programs
/// read its configuration; else fresh ones nothing else uses.
fn fresh_object(lab: &Lab, bond_maps: bool) -> anyhow::Result<aya::Ebpf> {
    let index = |ns: &Netns, dev: &str| -> anyhow::Result<u32> { Ok(ns.enter(|| nix::net::if_::if_nametoindex(dev))??) };
    let (to_member, to_bond) = (index(&lab.a.ns, "eth0")?, index(&lab.b.ns, &lab.b.bond)?);
    let obj = crate::util::root().join("target/ebpf/bpfel-unknown-none/release/bond");
    let mut loader = aya::EbpfLoader::new();
    loader.override_global("FLOOR_EGRESS_TO", &to_member, true).override_global("FLOOR_INGRESS_TO", &to_bond, true);
    let pins = bond_tests::lab::pin_dir(lab.a.ns.name(), &lab.a.bond)?;
    let paths: Vec<_> = bond_common::maps::ALL.iter().map(|m| (*m, pins.join(m))).collect();
    if bond_maps {
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
    }
    loader.load_file(&obj).with_context(|| format!("loading {}", obj.display()))
}

/// Programs of a fresh load of the bond's object, each attached first at its place; detached
/// when dropped.
struct Ahead {
    _ebpf: aya::Ebpf,
    ids: Vec<u64>,
}

impl Ahead {
    /// `bond_maps` as in `fresh_object`.
    fn attach(lab: &Lab, places: &[Place], bond_maps: bool) -> anyhow::Result<Ahead> {
        let mut ebpf = fresh_object(lab, bond_maps)?;
        let mut ids = Vec::new();
        for &(prog, ns, dev, dir) in places {
            let p: &mut SchedClassifier = ebpf.program_mut(prog).with_context(|| format!("no {prog} program"))?.try_into()?;
            p.load().with_context(|| format!("loading {prog}"))?;
            ids.push(u64::from(p.info()?.id()));
            ns.enter(|| p.attach_with_options(dev, dir, TcAttachOptions::TcxOrder(LinkOrder::first())))?
                .with_context(|| format!("attaching {prog}"))?;
        }
        Ok(Ahead { _ebpf: ebpf, ids })
    }

    /// Nanoseconds per run of each program while `traffic` runs.
    fn cost(&self, traffic: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
        let stats = || self.ids.iter().map(|id| prog_stats(*id)).collect::<anyhow::Result<Vec<_>>>();
        bond_tests::cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=1"])?;
        let before = stats();
        let r = traffic();
        let after = stats();
        bond_tests::cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=0"])?;
        r?;
        let per_run = |(t0, n0): &(u64, u64), (t1, n1): &(u64, u64)| (t1 - t0) as f64 / n1.saturating_sub(*n0).max(1) as f64;
        Ok(before?.iter().zip(after?.iter()).map(|(b, a)| per_run(b, a)).collect())
    }
}

fn small_round(lab: &Lab, round: Duration) -> impl FnOnce() -> anyhow::Result<()> + '_ {
    move || blast(lab, lab.a.addr, lab.b.addr, Load::SMALL, round).map(drop)
}

/// The redirect floors: nanoseconds per run of (egress to a member, ingress into the bond).
pub fn redirect_floor(lab: &Lab, round: Duration) -> anyhow::Result<(f64, f64)> {
    let places: [Place; 2] = [
        ("floor_redirect", &lab.a.ns, lab.a.bond.as_str(), TcAttachType::Egress),
        ("floor_redirect_ingress", &lab.b.ns, "eth0", TcAttachType::Ingress),
    ];
    let ns = Ahead::attach(lab, &places, false)?.cost(small_round(lab, round))?;
    Ok((ns[0], ns[1]))
}

/// `bond_egress` of A's bond's policy in force (the bench sets balance-xor layer3+4) stage by
/// stage: the redirect floor, each stage program, the whole program; `rounds` interleaved rounds,
/// medians. Printed, and returned for the bench's JSON.
pub fn breakdown(lab: &Lab, rounds: usize, round: Duration) -> anyhow::Result<serde_json::Value> {
    println!("== bond_egress stage by stage (balance-xor layer3+4; each row runs the stages above it too), {rounds} interleaved rounds");
    let egress = |prog| -> [Place; 1] { [(prog, &lab.a.ns, lab.a.bond.as_str(), TcAttachType::Egress)] };
    // The redirect floor, each stage, the whole program, and the whole program by its general
    // path only (`stage_general`: what the short paths save).
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len() + 3];
    for r in 0..rounds {
        // Every other round backwards: a drift within a round (the machine's other load) then
        // favours no stage.
        let order: Vec<usize> = if r % 2 == 0 { (0..runs.len()).collect() } else { (0..runs.len()).rev().collect() };
        for i in order {
            let ns = match i {
                0 => Ahead::attach(lab, &egress("floor_redirect"), false)?.cost(small_round(lab, round))?[0],
                i if i <= STAGES.len() => Ahead::attach(lab, &egress(STAGES[i - 1].0), true)?.cost(small_round(lab, round))?[0],
                i if i == STAGES.len() + 1 => program_cost(lab, small_round(lab, round))?.0,
                _ => Ahead::attach(lab, &egress("stage_general"), true)?.cost(small_round(lab, round))?[0],
            };
            runs[i].push(ns);
        }
    }
    let medians: Vec<f64> = runs.iter_mut().map(|r| median(r)).collect();
    let names = std::iter::once("redirect only (floor_redirect)")
        .chain(STAGES.iter().map(|(_, what)| *what))
        .chain(std::iter::once("the rest: the short path's checks, the redirect to the chosen member (bond_egress)"))
        .chain(std::iter::once("bond_egress by its general path (stage_general; against the stages)"));
    let mut rows = Vec::new();
    for (i, name) in names.enumerate() {
        // The general path is the whole program done another way: compared with the stages,
        // as the whole program is.
        let before = if i == STAGES.len() + 2 { STAGES.len() } else { i.saturating_sub(1) };
        let added = if i == 0 { 0.0 } else { medians[i] - medians[before] };
        println!("   {name:<80} {:>6.1} ns   {added:+6.1}   ({:+.1} above the redirect)", medians[i], medians[i] - medians[0]);
        rows.push(serde_json::json!({ "stage": name, "ns": medians[i], "added_ns": added, "runs": runs[i] }));
    }
    Ok(serde_json::Value::Array(rows))
}

/// `cargo xtask bench loop`: the test runner's figures alone (`target/bench/loop.json`), in
/// seconds rather than minutes: for trying a change to the programs.
pub fn run_loop(bondctl: &std::path::Path, rounds: usize) -> anyhow::Result<()> {
    let lab = crate::bench::lab(bondctl)?;
    let results = in_a_loop(&lab, rounds)?;
    crate::util::write_bench_json("loop", &serde_json::json!({ "runs_per_call": LOOP_RUNS, "test_runner": results }))
}

/// `cargo xtask bench stages`: the breakdown alone, with the rate bench's rounds (written as
/// `target/bench/stages.json` too).
pub fn run(bondctl: &std::path::Path, plan: crate::bench::Plan) -> anyhow::Result<()> {
    let lab = crate::bench::lab(bondctl)?;
    lab.a.daemon().set_policy("xor-l34")?;
    let stages = breakdown(&lab, plan.rounds, plan.round)?;
    let in_a_loop = in_a_loop(&lab, 3 * plan.rounds)?;
    crate::util::write_bench_json(
        "stages",
        &serde_json::json!({ "round_s": plan.round.as_secs_f64(), "bond_egress_stages": stages, "test_runner": in_a_loop }),
    )
}

/// Runs of a program per test-runner call (about 30 ms a call for `bond_egress`).
const LOOP_RUNS: u32 = 1_000_000;

/// Each program in the kernel's test runner on a frame of the bench's flow: nanoseconds per
/// run, least and median of `rounds` interleaved calls of `LOOP_RUNS` runs, on one CPU. Under
/// balance-xor layer3+4 every stage program and both directions' programs and floors; under
/// active-backup, balance-aware and balance-rr the egress floors, `bond_egress` and
/// `stage_general`. Leaves A's bond on balance-xor layer3+4.
pub fn in_a_loop(lab: &Lab, rounds: usize) -> anyhow::Result<serde_json::Value> {
    println!("== in the kernel's test runner: one frame, {LOOP_RUNS} runs a call, one CPU, {rounds} interleaved calls (least, median)");
    const EGRESS_FLOORS: [&str; 2] = ["floor", "floor_redirect"];
    const INGRESS: [&str; 2] = ["floor_redirect_ingress", "member_ingress"];
    let mut ebpf = fresh_object(lab, true)?;
    let stage_names = STAGES.iter().map(|(p, _)| *p);
    let every: Vec<&str> = EGRESS_FLOORS.into_iter().chain(stage_names).chain(["bond_egress", "stage_general"]).chain(INGRESS).collect();
    for name in &every {
        let p: &mut SchedClassifier = ebpf.program_mut(name).with_context(|| format!("no {name} program"))?.try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    let frame = bench_frame(lab)?;
    // Received frames arrive on A's eth0 (`__sk_buff.ifindex`, at byte 40 of the UAPI struct;
    // the kernel looks the device up in the caller's namespace), so `member_ingress` finds
    // its member there.
    let eth0 = lab.a.ns.enter(|| nix::net::if_::if_nametoindex("eth0"))??;
    let mut on_eth0 = [0u8; 44];
    on_eth0[40..].copy_from_slice(&eth0.to_ne_bytes());
    let call = |name: &str| -> anyhow::Result<f64> {
        let p: &SchedClassifier = ebpf.program(name).context("program")?.try_into()?;
        let received = INGRESS.contains(&name);
        let opts =
            TestRunOptions { data_in: Some(&frame), ctx_in: received.then_some(&on_eth0[..]), repeat: LOOP_RUNS, ..TestRunOptions::new() };
        let out = if received { lab.a.ns.enter(|| p.test_run(opts))? } else { p.test_run(opts) };
        Ok(out.with_context(|| format!("test run of {name}"))?.duration.as_nanos() as f64)
    };
    let _pinned = PinnedToOneCpu::new()?;
    let mut results = Vec::new();
    for policy in ["xor-l34", "active-backup", "balance-aware", "balance-rr"] {
        lab.a.daemon().set_policy(policy)?;
        // The stage programs run balance-xor's stages whatever the policy: only its rows count.
        let names: Vec<&str> =
            if policy == "xor-l34" { every.clone() } else { EGRESS_FLOORS.into_iter().chain(["bond_egress", "stage_general"]).collect() };
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        for r in 0..rounds {
            let order: Vec<usize> = if r % 2 == 0 { (0..names.len()).collect() } else { (0..names.len()).rev().collect() };
            for i in order {
                runs[i].push(call(names[i])?);
            }
        }
        let least: Vec<f64> = runs.iter().map(|r| r.iter().copied().fold(f64::INFINITY, f64::min)).collect();
        let floor_of = |name: &str| -> f64 {
            let floor = if INGRESS.contains(&name) { INGRESS[0] } else { EGRESS_FLOORS[1] };
            names.iter().position(|n| *n == floor).map_or(0.0, |i| least[i])
        };
        for (i, name) in names.iter().enumerate() {
            let m = median(&mut runs[i].clone());
            let above = least[i] - floor_of(name);
            println!("   {policy:<14} {name:<22} {:>5.0} ns (median {m:>4.0})   {above:+4.0} above its redirect floor", least[i]);
            results.push(serde_json::json!({ "policy": policy, "program": name, "least_ns": least[i], "median_ns": m, "above_redirect_floor_ns": above, "runs": runs[i] }));
        }
    }
    lab.a.daemon().set_policy("xor-l34")?;
    Ok(serde_json::Value::Array(results))
}

/// A frame of the rate bench's flow: UDP from A's bond address to B's, the same payload
/// (checksums left zero: no program reads them).
fn bench_frame(lab: &Lab) -> anyhow::Result<Vec<u8>> {
    let ip = |a: &str| -> anyhow::Result<[u8; 4]> { Ok(a.parse::<std::net::Ipv4Addr>()?.octets()) };
    let (src, dst) = (ip(lab.a.addr)?, ip(lab.b.addr)?);
    let mut f = vec![0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00];
    let udp_len = 8 + crate::bench::PAYLOAD as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(20 + udp_len).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x88]);
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + crate::bench::PAYLOAD, 0x55);
    Ok(f)
}

/// Keeps this thread on one CPU (the test runner measures on the CPU it is called on) until
/// dropped, then restores where it may run.
struct PinnedToOneCpu(nix::sched::CpuSet);

impl PinnedToOneCpu {
    fn new() -> anyhow::Result<PinnedToOneCpu> {
        use nix::{sched, unistd::Pid};
        let before = sched::sched_getaffinity(Pid::from_raw(0))?;
        let mut one = sched::CpuSet::new();
        one.set(0)?;
        sched::sched_setaffinity(Pid::from_raw(0), &one)?;
        Ok(PinnedToOneCpu(before))
    }
}

impl Drop for PinnedToOneCpu {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}
