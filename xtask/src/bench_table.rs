//! The packet rate and throughput of each policy, side by side with the plain veth path in the
//! same lab: UDP with 64- and 1400-byte payloads over 1 and 16 flows, and TCP over 1 and 16
//! connections. Each measurement of the bond follows one of the plain path, so a ratio compares
//! neighbours in time (these machines are noisy); medians and spreads over the rounds. Then
//! the same for Open vSwitch's user-space bond (balance-tcp and active-backup, see
//! `bench_ovs`) between the same two namespaces, against the same plain path.
//! Written as a table, as JSON (`target/bench/throughput.json`) and as a chart
//! (`target/bench/throughput.svg`).

use std::time::Duration;

use bond_tests::Lab;

use crate::bench::{Load, blast};

/// The policies switched to in turn on side A (B stays active-backup and takes what arrives on
/// any member). Broadcast is left out: it puts every packet on every member by design, so B
/// would count each datagram three times.
pub const POLICIES: [&str; 5] = ["active-backup", "balance-rr", "balance-xor", "xor-l34", "balance-aware"];

/// Every row's label, in the chart's order: the bond's policies, then Open vSwitch's bond modes.
fn labels() -> impl Iterator<Item = &'static str> {
    POLICIES.into_iter().chain(crate::bench_ovs::MODES.map(|(_, label)| label))
}

#[derive(Clone, Copy, Debug)]
enum Traffic {
    Udp(Load),
    Tcp { flows: usize },
}

impl Traffic {
    fn label(self) -> String {
        match self {
            Traffic::Udp(l) => format!("UDP {} B x{}", l.payload, l.flows),
            Traffic::Tcp { flows } => format!("TCP x{flows}"),
        }
    }
}

const CASES: [Traffic; 6] = [
    Traffic::Udp(Load { payload: 64, flows: 1 }),
    Traffic::Udp(Load { payload: 64, flows: 16 }),
    Traffic::Udp(Load { payload: 1400, flows: 1 }),
    Traffic::Udp(Load { payload: 1400, flows: 16 }),
    Traffic::Tcp { flows: 1 },
    Traffic::Tcp { flows: 16 },
];

/// One policy under one kind of traffic: medians over the rounds, and the spread of the ratio.
struct Row {
    policy: &'static str,
    traffic: Traffic,
    /// Datagrams per second (UDP) or 0 (TCP).
    plain_pps: f64,
    bond_pps: f64,
    /// Payload megabits per second.
    plain_mbps: f64,
    bond_mbps: f64,
    ratio: f64,
    ratio_min: f64,
    ratio_max: f64,
}

/// Measures every policy under every kind of traffic, `rounds` rounds of `round` each. `plain`
/// and `bond` are (source, destination) addresses of the two paths.
pub fn run(lab: &Lab, plain: (&str, &str), bond: (&str, &str), rounds: usize, round: Duration) -> anyhow::Result<()> {
    println!("== packet rate and throughput per policy, bond vs plain veth, {rounds} rounds of {round:?} each");
    println!(
        "   {:<17} {:<16} {:>12} {:>12} {:>10} {:>10} {:>7} {:>13}",
        "policy", "traffic", "plain pps", "bond pps", "plain Mb/s", "bond Mb/s", "ratio", "spread"
    );
    let mut rows = Vec::new();
    for policy in POLICIES {
        lab.a.daemon().set_policy(policy)?;
        measure_row(lab, plain, bond, policy, rounds, round, &mut rows)?;
    }
    lab.a.daemon().set_policy("active-backup")?;
    if bond_tests::ovs::installed() {
        let ovs = crate::bench_ovs::OvsPair::start(lab)?;
        for (mode, label) in crate::bench_ovs::MODES {
            ovs.set_mode(lab, mode)?;
            measure_row(lab, plain, crate::bench_ovs::ADDRS, label, rounds, round, &mut rows)?;
        }
    } else {
        println!("   (Open vSwitch is not installed: no rows for its bond; `cargo xtask setup` installs it)");
    }
    lab.a.daemon().set_policy("active-backup")?;
    crate::util::write_bench_json("throughput", &json(&rows))?;
    std::fs::write(crate::util::bench_dir()?.join("throughput.svg"), svg(&rows))?;
    Ok(())
}

/// Every kind of traffic over the path `bond` (one policy or Open vSwitch mode, `label`), each
/// round right after one over the plain path; prints and appends a row per kind.
fn measure_row(
    lab: &Lab,
    plain: (&str, &str),
    bond: (&str, &str),
    label: &'static str,
    rounds: usize,
    round: Duration,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for traffic in CASES {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let p = measure(lab, plain, traffic, round)?;
            let b = measure(lab, bond, traffic, round)?;
            samples.push((p, b));
        }
        let row = summarize(label, traffic, &samples);
        let pps = |v: f64| if matches!(traffic, Traffic::Tcp { .. }) { "-".to_string() } else { format!("{v:.0}") };
        println!(
            "   {:<17} {:<16} {:>12} {:>12} {:>10.0} {:>10.0} {:>6.0}% {:>5.0}%-{:.0}%",
            row.policy,
            traffic.label(),
            pps(row.plain_pps),
            pps(row.bond_pps),
            row.plain_mbps,
            row.bond_mbps,
            100.0 * row.ratio,
            100.0 * row.ratio_min,
            100.0 * row.ratio_max
        );
        rows.push(row);
    }
    Ok(())
}

/// (datagrams per second, payload megabits per second) of one round on one path.
fn measure(lab: &Lab, (src, dst): (&str, &str), traffic: Traffic, round: Duration) -> anyhow::Result<(f64, f64)> {
    Ok(match traffic {
        Traffic::Udp(load) => {
            let pps = blast(lab, src, dst, load, round)?;
            (pps, pps * load.payload as f64 * 8.0 / 1e6)
        }
        Traffic::Tcp { flows } => (0.0, bond_tests::net::tcp_rate(lab, dst, flows, round)? * 8.0 / 1e6),
    })
}

/// One round: (plain, bond), each (datagrams per second, megabits per second).
type Round = ((f64, f64), (f64, f64));

fn summarize(policy: &'static str, traffic: Traffic, samples: &[Round]) -> Row {
    let med = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    // The ratio in what the traffic is judged by: packets for UDP, bytes for TCP.
    let ratios: Vec<f64> = samples
        .iter()
        .map(|((pp, pm), (bp, bm))| match traffic {
            Traffic::Udp(_) => bp / pp.max(1.0),
            Traffic::Tcp { .. } => bm / pm.max(1e-9),
        })
        .collect();
    Row {
        policy,
        traffic,
        plain_pps: med(samples.iter().map(|s| s.0.0).collect()),
        bond_pps: med(samples.iter().map(|s| s.1.0).collect()),
        plain_mbps: med(samples.iter().map(|s| s.0.1).collect()),
        bond_mbps: med(samples.iter().map(|s| s.1.1).collect()),
        ratio: med(ratios.clone()),
        ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratio_max: ratios.iter().copied().fold(0.0, f64::max),
    }
}

fn json(rows: &[Row]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let (kind, payload, flows) = match r.traffic {
                Traffic::Udp(l) => ("udp", Some(l.payload), l.flows),
                Traffic::Tcp { flows } => ("tcp", None, flows),
            };
            serde_json::json!({
                "policy": r.policy, "traffic": kind, "payload": payload, "flows": flows,
                "plain_pps": r.plain_pps, "bond_pps": r.bond_pps,
                "plain_mbps": r.plain_mbps, "bond_mbps": r.bond_mbps,
                "ratio": r.ratio, "ratio_min": r.ratio_min, "ratio_max": r.ratio_max,
            })
        })
        .collect();
    serde_json::json!({ "unit": "ratio of the bond to the plain veth path: packets for UDP, bytes for TCP", "rows": rows })
}

/// A grouped bar chart: per kind of traffic, each policy's ratio to the plain path (100%),
/// with its spread. Plain SVG text: a dozen bars need no charting library.
fn svg(rows: &[Row]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 50.0;
    const TOP: f64 = 40.0;
    const PLOT_H: f64 = 240.0;
    const COLORS: [&str; 7] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#9c755f", "#bab0ac"];
    let top_ratio = rows.iter().map(|r| r.ratio_max).fold(1.2f64, f64::max).min(3.0);
    let y = |ratio: f64| TOP + PLOT_H * (1.0 - ratio.min(top_ratio) / top_ratio);
    let group_w = (W - LEFT - 20.0) / CASES.len() as f64;
    let bar_w = group_w / (labels().count() as f64 + 1.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">Bond and Open vSwitch vs plain veth path, by policy (packets for UDP, bytes for TCP; 100% = plain)</text>\n"
    );
    for pct in [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0].into_iter().filter(|p| *p <= top_ratio) {
        let yy = y(pct);
        let stroke = if pct == 1.0 { "#000" } else { "#ddd" };
        out += &format!(
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{stroke}\"/><text x=\"5\" y=\"{:.1}\">{:.0}%</text>\n",
            W - 20.0,
            yy + 4.0,
            pct * 100.0
        );
    }
    for (g, traffic) in CASES.iter().enumerate() {
        let x0 = LEFT + g as f64 * group_w;
        for (p, policy) in labels().enumerate() {
            let Some(r) = rows.iter().find(|r| r.policy == policy && r.traffic.label() == traffic.label()) else { continue };
            let x = x0 + (p as f64 + 0.5) * bar_w;
            let (yt, yb) = (y(r.ratio), y(0.0));
            out += &format!(
                "<rect x=\"{x:.1}\" y=\"{yt:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{policy}: {:.0}%</title></rect>\n\
                 <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
                bar_w * 0.9,
                yb - yt,
                COLORS[p % COLORS.len()],
                r.ratio * 100.0,
                x + bar_w * 0.45,
                x + bar_w * 0.45,
                y(r.ratio_min),
                y(r.ratio_max)
            );
        }
        out += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x0 + group_w / 2.0,
            TOP + PLOT_H + 18.0,
            traffic.label()
        );
    }
    for (p, policy) in labels().enumerate() {
        let x = LEFT + p as f64 * 118.0;
        out += &format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{policy}</text>\n",
            H - 40.0,
            COLORS[p % COLORS.len()],
            x + 16.0,
            H - 30.0
        );
    }
    out + "</svg>\n"
}
