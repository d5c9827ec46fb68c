//! The demo `cargo xtask run` shows without arguments: a bond between two namespaces, with
//! traffic, a link failure and recovery, a policy switch, and live status. Everything is
//! removed at the end (also on error).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bond_tests::{
    Lab, LabOptions,
    net::{UdpFlows, ping, tcp_transfer},
};

pub fn run(bondctl: &Path) -> anyhow::Result<()> {
    // The lab runs this bondctl (it reads $BONDCTL, set before any thread exists).
    // SAFETY: single-threaded at this point.
    unsafe { std::env::set_var("BONDCTL", bondctl) };
    println!("== bond demo: two network namespaces joined by three veth links, a bond on each side");
    let lab = Lab::start(LabOptions::default().policy("balance-xor")).context("starting the lab")?;
    println!(
        "   {} {} ({}) <== eth0, eth1, eth2 ==> {} {} ({})",
        lab.a.ns.name(),
        lab.a.bond,
        lab.a.addr,
        lab.b.ns.name(),
        lab.b.bond,
        lab.b.addr
    );
    ping(&lab, 3).context("ping across the bond")?;
    println!("== ping across the bond: ok");
    tcp_transfer(&lab, 32 << 20).context("TCP across the bond")?;
    println!("== 32 MiB over TCP across the bond: ok");

    println!("== 48 UDP flows from A to B; per-member packets per second on A (policy, then eth0 eth1 eth2):");
    let flows = UdpFlows::new(&lab, 48, 43000)?;
    let running = Arc::new(AtomicBool::new(true));
    let r = running.clone();
    let traffic = std::thread::spawn(move || {
        while r.load(Ordering::Relaxed) {
            if flows.send(20, 200).is_err() {
                break;
            }
            flows.receive(Duration::from_millis(1));
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    type Step = (u64, &'static str, Box<dyn Fn(&Lab) -> anyhow::Result<()>>);
    let steps: [Step; 4] = [
        (2, "cut eth1 (peer side down): its flows move to eth0 and eth2 at once", Box::new(|l: &Lab| l.cut(1))),
        (4, "restore eth1", Box::new(|l: &Lab| l.restore(1))),
        (
            6,
            "set-policy balance-rr on both sides",
            Box::new(|l: &Lab| {
                l.a.daemon().set_policy("balance-rr")?;
                l.b.daemon().set_policy("balance-rr")
            }),
        ),
        (
            8,
            "set-policy active-backup on both sides",
            Box::new(|l: &Lab| {
                l.a.daemon().set_policy("active-backup")?;
                l.b.daemon().set_policy("active-backup")
            }),
        ),
    ];
    let start = Instant::now();
    let mut last = tx_counts(&lab)?;
    let mut next_step = 0;
    for second in 1..=10u64 {
        std::thread::sleep((start + Duration::from_secs(second)).saturating_duration_since(Instant::now()));
        let (policy, now) = (lab.a.daemon().status()?["policy"]["name"].as_str().unwrap_or("?").to_string(), tx_counts(&lab)?);
        let rates: Vec<String> =
            now.iter().zip(&last).map(|((name, state, n), (_, _, p))| format!("{name} {:>6}/s {state:<4}", n - p)).collect();
        println!("   t={second:>2}s  {policy:<14} {}", rates.join("  "));
        last = now;
        if let Some((at, what, action)) = steps.get(next_step)
            && *at == second
        {
            println!("   -- {what}");
            action(&lab)?;
            next_step += 1;
        }
    }
    running.store(false, Ordering::Relaxed);
    let _ = traffic.join();
    println!("== bondctl status {} (in {}):\n", lab.a.bond, lab.a.ns.name());
    println!("{}", lab.a.daemon().ctl(&["status", &lab.a.bond])?);
    drop(lab);
    println!("== removed the bonds, links and namespaces");
    Ok(())
}

/// (member, state, tx packets) of A's members.
fn tx_counts(lab: &Lab) -> anyhow::Result<Vec<(String, String, u64)>> {
    let s = lab.a.daemon().status()?;
    Ok(s["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or("?").to_string(),
                        m["state"].as_str().unwrap_or("?").to_string(),
                        m["tx_packets"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
