//! Scale: what a packet costs the programs, and what the controller costs, with 2, 8 and 16
//! members (a bond's most, `MAX_MEMBERS`); and what a packet costs with 1,000, 100,000 and
//! 1,000,000 concurrent flows, with the default flow table (65,536 entries: past it the least
//! recently seen flows are forgotten) and, for flow-static, one that holds them all
//! (`flow_table_size`). Written as `target/bench/scale.json` too.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use anyhow::Context;
use bond_tests::{Lab, LabOptions};

use crate::bench::{Load, blast, program_cost};

const SETTINGS: &str = "policies:
  xor-l34: { basePolicy: balance-xor, xmitHashPolicy: layer3+4 }
  static: { basePolicy: balance-aware, balancePolicy: flow-static }";

pub fn run(quick: bool) -> anyhow::Result<()> {
    let round = if quick { Duration::from_millis(300) } else { Duration::from_secs(2) };
    println!("== scale: ns per packet (bpf_stats, 16 flows of 64-byte UDP) and the idle controller, by number of members");
    println!("   {:<8} {:<14} {:>12} {:>15} {:>16}", "members", "policy", "bond_egress", "member_ingress", "controller idle");
    let mut by_members = Vec::new();
    for members in [2, 8, bond_common::config::MAX_MEMBERS] {
        let lab = Lab::start(LabOptions::default().links(members).direct().policy("xor-l34").settings(SETTINGS))
            .with_context(|| format!("starting a lab of {members} members"))?;
        bond_tests::net::ping(&lab, 2)?;
        let (cpu, _) =
            crate::bench_controller::sample(lab.a.daemon().pid(), if quick { Duration::from_secs(1) } else { Duration::from_secs(5) })?;
        for policy in ["active-backup", "xor-l34", "balance-aware"] {
            lab.a.daemon().set_policy(policy)?;
            let load = Load { payload: 64, flows: 16 };
            let (e, i) = program_cost(&lab, || blast(&lab, lab.a.addr, lab.b.addr, load, round).map(drop))?;
            println!("   {members:<8} {policy:<14} {e:>9.1} ns {i:>12.1} ns {:>14.2}%", cpu * 100.0);
            by_members.push(serde_json::json!({
                "members": members, "policy": policy, "bond_egress_ns": e, "member_ingress_ns": i, "controller_idle_cpu_share": cpu,
            }));
        }
    }

    // The default table, then (flow-static only, the policy that needs an entry per flow) one
    // sized past the most flows sent: the cost should stay flat when every flow fits.
    let big = if quick { 262_144 } else { 2_097_152 };
    let counts: &[u32] = if quick { &[1_000, 100_000] } else { &[1_000, 100_000, 1_000_000] };
    println!("== scale: ns per packet by number of concurrent flows and flow table size");
    println!(
        "   {:<10} {:<14} {:>11} {:>12} {:>15} {:>14}",
        "flows", "policy", "table size", "bond_egress", "member_ingress", "table entries"
    );
    let mut by_flows = Vec::new();
    for (table, policies) in [(bond_common::maps::FLOW_CAPACITY as u32, &["xor-l34", "static"][..]), (big, &["static"][..])] {
        let opts = LabOptions::default().direct().policy(policies[0]).settings(SETTINGS).a_bond(&format!("flow_table_size: {table}"));
        let lab = Lab::start(opts).context("starting the lab")?;
        bond_tests::net::ping(&lab, 2)?;
        for &flows in counts {
            for &policy in policies {
                lab.a.daemon().set_policy(policy)?;
                let (e, i) = program_cost(&lab, || send_flows(&lab, flows, round.max(Duration::from_secs(1))))?;
                let entries = lab.a.daemon().status()?["counters"]["flows"].as_u64().unwrap_or(0);
                println!("   {flows:<10} {policy:<14} {table:>11} {e:>9.1} ns {i:>12.1} ns {entries:>14}");
                by_flows.push(serde_json::json!({
                    "flows": flows, "policy": policy, "flow_table_size": table, "bond_egress_ns": e, "member_ingress_ns": i,
                    "table_entries": entries,
                }));
            }
        }
    }
    crate::util::write_bench_json("scale", &serde_json::json!({ "by_members": by_members, "by_flows": by_flows }))
}

/// One datagram to each of `flows` flows in turn (source ports x destination ports), over and
/// over for at least `span` and at least one full pass.
fn send_flows(lab: &Lab, flows: u32, span: Duration) -> anyhow::Result<()> {
    const PORTS_PER_SOURCE: u32 = 50_000;
    let sources = flows.div_ceil(PORTS_PER_SOURCE);
    let socks = lab.a.ns.enter(|| (0..sources).map(|_| UdpSocket::bind((lab.a.addr, 0))).collect::<Result<Vec<_>, _>>())??;
    let per_source = flows.div_ceil(sources);
    let start = Instant::now();
    loop {
        for s in &socks {
            for port in 0..per_source {
                let _ = s.send_to(b"scale", (lab.b.addr, (10_000 + port) as u16));
            }
        }
        if start.elapsed() >= span {
            return Ok(());
        }
    }
}
