//! The demo `cargo xtask run` shows without arguments: a bond between two namespaces, with
//! traffic, a carrier loss, a silent link, policy switches, a lossy link losing its share, and
//! live status. Everything is removed at the end (also on error).

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

/// Probes every 100 ms (a third of failoverInterval); the aware policy scores loss above all.
const SETTINGS: &str = "policies:
  xor: { basePolicy: balance-xor, failoverInterval: 300 }
  aware: { basePolicy: balance-aware, failoverInterval: 300, quality: { lat: 0.1, pdv: 0.1, plr: 0.8 }, qualityLimits: { plr: 0.5 } }
  ab: { basePolicy: active-backup, failoverInterval: 300 }";
const SECONDS: u64 = 18;

pub fn run(bondctl: &Path) -> anyhow::Result<()> {
    // The lab runs this bondctl (it reads $BONDCTL, set before any thread exists).
    // SAFETY: set_var races only with other threads reading or writing the environment, and
    // none exist yet: xtask is single-threaded until the lab starts below.
    unsafe { std::env::set_var("BONDCTL", bondctl) };
    println!("== bond demo: two network namespaces joined by three veth links, a bond on each side");
    let lab = Lab::start(LabOptions::default().policy("xor").settings(SETTINGS)).context("starting the lab")?;
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

    println!("== 48 UDP flows from A to B; per-member packets per second on A, state, and balance-aware share:");
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
    let set_policy = |p: &'static str| {
        Box::new(move |l: &Lab| {
            l.a.daemon().set_policy(p)?;
            l.b.daemon().set_policy(p)
        })
    };
    let steps: [Step; 8] = [
        (2, "cut eth1 (its carrier goes): its flows move to eth0 and eth2 at once", Box::new(|l: &Lab| l.cut(1))),
        (4, "restore eth1", Box::new(|l: &Lab| l.restore(1))),
        (
            6,
            "silence eth2 (every frame dropped on the wire, carrier stays up): probes find it within 300 ms",
            Box::new(|l: &Lab| l.impair(2, 100)),
        ),
        (8, "eth2 speaks again", Box::new(|l: &Lab| l.repair(2))),
        (10, "set-policy aware (balance-aware, weights from measured quality) on both sides", set_policy("aware")),
        (12, "eth0 drops 10% of frames each way: its score and share of the flows shrink", Box::new(|l: &Lab| l.impair(0, 10))),
        (16, "eth0 repaired", Box::new(|l: &Lab| l.repair(0))),
        (17, "set-policy ab (active-backup): its 5% loss limit holds eth0 out while its recent loss counts", set_policy("ab")),
    ];
    let start = Instant::now();
    let mut last = tx_counts(&lab)?;
    let mut next_step = 0;
    for second in 1..=SECONDS {
        std::thread::sleep((start + Duration::from_secs(second)).saturating_duration_since(Instant::now()));
        let (policy, now) = (lab.a.daemon().status()?["policy"]["name"].as_str().unwrap_or("?").to_string(), tx_counts(&lab)?);
        let rates: Vec<String> = now
            .iter()
            .zip(&last)
            .map(|(m, prev)| {
                let share = m.allocation.map(|a| format!(" {:>3.0}%", a * 100.0)).unwrap_or_default();
                format!("{} {:>6}/s {:<4}{share:<5}", m.name, m.tx_packets - prev.tx_packets, m.state)
            })
            .collect();
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

/// What the demo shows of one of A's members.
struct MemberLine {
    name: String,
    state: String,
    tx_packets: u64,
    allocation: Option<f64>,
}

fn tx_counts(lab: &Lab) -> anyhow::Result<Vec<MemberLine>> {
    let s = lab.a.daemon().status()?;
    let members = s["members"].as_array().context("status without members")?;
    Ok(members
        .iter()
        .map(|m| MemberLine {
            name: m["name"].as_str().unwrap_or("?").to_string(),
            state: m["state"].as_str().unwrap_or("?").to_string(),
            tx_packets: m["tx_packets"].as_u64().unwrap_or(0),
            allocation: m["allocation"].as_f64(),
        })
        .collect())
}

/// The WAN demo's policy: balance-aware by measured quality, probes every 100 ms (a window of
/// 64 probes is about 6 s, so shares move over a few seconds), latency and loss weighted; a
/// latency limit of 250 ms makes 100 ms round trips count (the score is exp(-4 x lat / limit)).
const WAN_POLICY: &str =
    "{ basePolicy: balance-aware, failoverInterval: 300, quality: { lat: 0.7, plr: 0.3 }, qualityLimits: { lat: 250, plr: 0.5 } }";
const WAN_SECONDS: u64 = 36;

/// `cargo xtask demo --wan`: two sites bonded over three emulated WAN paths, a VXLAN tunnel
/// over each; per-member rates, measured quality and allocation each second while one path's
/// latency and another's loss change, and a path is cut and restored.
pub fn wan(bondctl: &Path) -> anyhow::Result<()> {
    // SAFETY: as in `run`: no other thread exists yet.
    unsafe { std::env::set_var("BONDCTL", bondctl) };
    use bond_tests::{
        emu::Impairment,
        wan::{BOND_A, BOND_B, Wan},
    };
    println!("== WAN demo: two sites, three paths through the link emulator (10, 15 and 20 ms each way), a VXLAN tunnel over each,");
    println!("   a bond over the tunnels on each site (balance-aware by measured latency and loss)");
    let paths = [Impairment::delay_ms(10), Impairment::delay_ms(15), Impairment::delay_ms(20)];
    let wan = Wan::start(&paths, WAN_POLICY).context("starting the sites")?;
    anyhow::ensure!(wan.ping(56), "ping across the WAN bond");
    println!("== ping across the bond: ok; 32 UDP flows from site A to site B:");
    let running = Arc::new(AtomicBool::new(true));
    let receiver = wan.site_b.enter(|| std::net::UdpSocket::bind((BOND_B, 44999)))??;
    receiver.set_nonblocking(true)?;
    let senders = wan.site_a.enter(|| (0..32).map(|i| std::net::UdpSocket::bind((BOND_A, 44000 + i))).collect::<Result<Vec<_>, _>>())??;
    let r = running.clone();
    let traffic = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while r.load(Ordering::Relaxed) {
            for s in &senders {
                let _ = s.send_to(&[0u8; 200], (BOND_B, 44999));
            }
            while receiver.recv(&mut buf).is_ok_and(|_| r.load(Ordering::Relaxed)) {}
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    type Step<'a> = (u64, &'static str, Box<dyn Fn() + 'a>);
    let emulators = &wan.emulators;
    let set = |i: usize, imp: Impairment| move || emulators[i].set_both(imp.clone());
    let steps: [Step; 5] = [
        (6, "path 1 slows to 50 ms each way: vx1's share shrinks", Box::new(set(1, Impairment::delay_ms(50)))),
        (
            13,
            "path 2 loses 5% of frames each way: vx2's share shrinks",
            Box::new(set(2, Impairment { loss: 0.05, ..Impairment::delay_ms(20) })),
        ),
        (
            20,
            "path 0 is cut (every frame lost): probes find it within 300 ms, its share moves",
            Box::new(set(0, Impairment { loss: 1.0, ..Impairment::delay_ms(10) })),
        ),
        (24, "path 0 restored", Box::new(set(0, Impairment::delay_ms(10)))),
        (
            29,
            "paths 1 and 2 as they were",
            Box::new(|| {
                emulators[1].set_both(Impairment::delay_ms(15));
                emulators[2].set_both(Impairment::delay_ms(20));
            }),
        ),
    ];
    let start = Instant::now();
    let mut last = tx_of(&wan.a)?;
    let mut next_step = 0;
    for second in 1..=WAN_SECONDS {
        std::thread::sleep((start + Duration::from_secs(second)).saturating_duration_since(Instant::now()));
        let s = wan.a.status()?;
        let now = tx_of(&wan.a)?;
        let members = s["members"].as_array().context("status without members")?;
        let line: Vec<String> = members
            .iter()
            .zip(now.iter().zip(&last))
            .map(|(m, (n, l))| {
                let q = &m["quality"];
                format!(
                    "{} {:>4}/s {:>5.1} ms {:>4.1}% loss score {:.2} {:>3.0}%",
                    m["name"].as_str().unwrap_or("?"),
                    n - l,
                    q["lat"].as_f64().unwrap_or(0.0),
                    q["plr"].as_f64().unwrap_or(0.0) * 100.0,
                    m["score"].as_f64().unwrap_or(0.0),
                    m["allocation"].as_f64().unwrap_or(0.0) * 100.0
                )
            })
            .collect();
        println!("   t={second:>2}s  {}", line.join("  |  "));
        last = now;
        if let Some((at, what, action)) = steps.get(next_step)
            && *at == second
        {
            println!("   -- {what}");
            action();
            next_step += 1;
        }
    }
    drop(steps);
    running.store(false, Ordering::Relaxed);
    let _ = traffic.join();
    println!("== bondctl status bond0 (site A, {}):\n", wan.site_a.name());
    println!("{}", wan.a.ctl(&["status", "bond0"])?);
    drop(wan);
    println!("== removed the sites, paths and bonds");
    Ok(())
}

/// Packets each of a bond's members sent so far.
fn tx_of(d: &bond_tests::Daemon) -> anyhow::Result<Vec<u64>> {
    let s = d.status()?;
    Ok(s["members"].as_array().context("status without members")?.iter().map(|m| m["tx_packets"].as_u64().unwrap_or(0)).collect())
}
