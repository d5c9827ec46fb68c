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
//!   is that stage's cost.

use std::time::Duration;

use anyhow::Context;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions};
use bond_tests::{Lab, Netns};

use crate::bench::{Load, blast, median, prog_stats, program_cost};

/// The stage programs in the order `bond_egress` runs the stages, each with what it adds.
const STAGES: [(&str, &str); 6] = [
    ("stage_config", "config read (bank, then the config)"),
    ("stage_usable", "usable mask (and the family's)"),
    ("stage_parse", "header parse"),
    ("stage_hash", "layer3+4 hash, member by xor"),
    ("stage_sample", "flow-table sample (1 in 64)"),
    ("stage_counters", "member counters"),
];

/// One place a program goes: (program, namespace, device, direction).
type Place<'a> = (&'a str, &'a Netns, &'a str, TcAttachType);

/// Programs of a fresh load of the bond's object, each attached first at its place; detached
/// when dropped.
struct Ahead {
    _ebpf: aya::Ebpf,
    ids: Vec<u64>,
}

impl Ahead {
    /// With `bond_maps`, the object's maps are A's bond's pinned ones, so the programs read its
    /// configuration; else fresh ones nothing else uses.
    fn attach(lab: &Lab, places: &[Place], bond_maps: bool) -> anyhow::Result<Ahead> {
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
        let mut ebpf = loader.load_file(&obj).with_context(|| format!("loading {}", obj.display()))?;
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
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len() + 2];
    for r in 0..rounds {
        // Every other round backwards: a drift within a round (the machine's other load) then
        // favours no stage.
        let order: Vec<usize> = if r % 2 == 0 { (0..runs.len()).collect() } else { (0..runs.len()).rev().collect() };
        for i in order {
            let ns = match i {
                0 => Ahead::attach(lab, &egress("floor_redirect"), false)?.cost(small_round(lab, round))?[0],
                i if i <= STAGES.len() => Ahead::attach(lab, &egress(STAGES[i - 1].0), true)?.cost(small_round(lab, round))?[0],
                _ => program_cost(lab, small_round(lab, round))?.0,
            };
            runs[i].push(ns);
        }
    }
    let medians: Vec<f64> = runs.iter_mut().map(|r| median(r)).collect();
    let names = std::iter::once("redirect only (floor_redirect)")
        .chain(STAGES.iter().map(|(_, what)| *what))
        .chain(std::iter::once("the rest: policy dispatch, flags, the redirect to the chosen member (bond_egress)"));
    let mut rows = Vec::new();
    for (i, name) in names.enumerate() {
        let added = if i == 0 { 0.0 } else { medians[i] - medians[i - 1] };
        println!("   {name:<80} {:>6.1} ns   {added:+6.1}   ({:+.1} above the redirect)", medians[i], medians[i] - medians[0]);
        rows.push(serde_json::json!({ "stage": name, "ns": medians[i], "added_ns": added, "runs": runs[i] }));
    }
    Ok(serde_json::Value::Array(rows))
}

/// `cargo xtask bench stages`: the breakdown alone, with the rate bench's rounds (written as
/// `target/bench/stages.json` too).
pub fn run(bondctl: &std::path::Path, plan: crate::bench::Plan) -> anyhow::Result<()> {
    let lab = crate::bench::lab(bondctl)?;
    lab.a.daemon().set_policy("xor-l34")?;
    let stages = breakdown(&lab, plan.rounds, plan.round)?;
    crate::util::write_bench_json("stages", &serde_json::json!({ "round_s": plan.round.as_secs_f64(), "bond_egress_stages": stages }))
}
