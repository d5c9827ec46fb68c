//! `cargo xtask bench emulator`: what the lab's link emulator carries faithfully. One emulated
//! link with 10 ms of delay one way; one flow of 64-byte datagrams at rising rates for a second
//! each; for each rate the share delivered and how late datagrams arrive beyond the 10 ms
//! (median, 99th percentile, worst). The tests keep well inside the rate where both hold.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use anyhow::Context;
use bond_tests::{
    Lab, LabOptions,
    emu::Impairment,
    lab::{ADDR_A, ADDR_B},
    net::{parse_payload, payload, set_rcvbuf},
};

const DELAY: Duration = Duration::from_millis(10);
const RATES: [u64; 6] = [1_000, 5_000, 10_000, 20_000, 40_000, 80_000];

pub fn run(bondctl: &std::path::Path) -> anyhow::Result<()> {
    // SAFETY: as in `bench::run`: no other thread exists yet.
    unsafe { std::env::set_var("BONDCTL", bondctl) };
    let mut lab = Lab::start(LabOptions::default().policy("active-backup").links(1)).context("starting the lab")?;
    lab.emulate(0)?;
    lab.emulator(0).context("emulator")?.set(0, Impairment { delay: DELAY, ..Default::default() });
    bond_tests::net::ping(&lab, 2)?;
    println!("== link emulator: one flow of 64-byte datagrams through an emulated link with {DELAY:?} of delay, 1 s per rate");
    println!("   {:>8}  {:>9}  {:>22}", "rate", "delivered", "late: median / p99 / max");
    for rate in RATES {
        let (delivered, mut late) = measure(&lab, rate)?;
        late.sort();
        let pick = |q: f64| late.get(((late.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
        println!(
            "   {:>6}/s  {:>8.2}%  {:>7.2} / {:>6.2} / {:>6.2} ms",
            rate,
            delivered * 100.0,
            pick(0.5).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0,
            late.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// One second of datagrams at `rate` per second: the share delivered, and how late each
/// arrived beyond the emulated delay.
fn measure(lab: &Lab, rate: u64) -> anyhow::Result<(f64, Vec<Duration>)> {
    let rx = lab.b.ns.enter(|| UdpSocket::bind((ADDR_B, 46500)))??;
    rx.set_read_timeout(Some(Duration::from_millis(300)))?;
    set_rcvbuf(&rx, 32 << 20);
    let tx = lab.a.ns.enter(|| UdpSocket::bind((ADDR_A, 0)))??;
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            if let Some((seq, _)) = parse_payload(&buf[..n]) {
                got.push((seq, start.elapsed()));
            }
        }
        got
    });
    let gap = Duration::from_nanos(1_000_000_000 / rate);
    let mut sent_at = Vec::with_capacity(rate as usize);
    for seq in 0..rate {
        let due = gap * seq as u32;
        while start.elapsed() < due {
            std::hint::spin_loop();
        }
        sent_at.push(start.elapsed());
        let _ = tx.send_to(&payload(seq, 0, 64), (ADDR_B, 46500));
    }
    let got = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let late = got.iter().filter_map(|(seq, at)| sent_at.get(*seq as usize).map(|s| at.saturating_sub(*s).saturating_sub(DELAY))).collect();
    Ok((got.len() as f64 / rate as f64, late))
}
