//! What the controller costs: the CPU share and resident memory of `bondctl up` at idle (with
//! the default 5 ms `miimon`), and while 100,000 flows cross the bond and its metrics endpoint is
//! scraped every second. Read from /proc (utime + stime, VmRSS) over a span of time.
//!
//! The floor, measured beside the idle controller: a thread that does nothing but sleep 5 ms in
//! a loop (the carrier poll's wake-ups, without the work). On a VM each wake-up costs tens of
//! microseconds of timer and scheduler work charged to the process, so this is what any 5 ms
//! poll costs here.

use std::{
    io::{Read, Write},
    net::UdpSocket,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use bond_tests::{Daemon, Lab, LabOptions};

const METRICS_PORT: u16 = 9469;
/// Flows: every destination port of this range from each of two source ports.
const DST_PORTS: u16 = 50_000;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let span = if quick { Duration::from_secs(2) } else { Duration::from_secs(10) };
    let settings = "policies:\n  xor-l34: { basePolicy: balance-xor, xmitHashPolicy: layer3+4 }";
    let mut lab = Lab::start(LabOptions::default().policy("xor-l34").settings(settings).direct()).context("starting the lab")?;
    // A's daemon again, with its metrics endpoint on the namespace's own loopback.
    let (config, dir) = (lab.config_path(&lab.a), lab.dir().to_path_buf());
    lab.a.daemon.as_mut().context("no daemon")?.stop()?;
    lab.a.ns.ip(&["link", "set", "lo", "up"])?;
    let metrics = format!("127.0.0.1:{METRICS_PORT}");
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &config, &lab.a.bond, &dir, &["--metrics", &metrics])?);
    bond_tests::net::ping(&lab, 2)?;
    let pid = lab.a.daemon().pid();
    std::thread::sleep(Duration::from_secs(1));

    println!("== controller cost (bondctl up, miimon 5 ms, 3 members), over {span:?}");
    let sleeping = AtomicBool::new(true);
    let (idle, floor) = std::thread::scope(|s| {
        let floor = s.spawn(|| sleep_loop_cpu(&sleeping));
        let idle = sample(pid, span);
        sleeping.store(false, Ordering::Relaxed);
        (idle, floor.join().map_err(|_| anyhow::anyhow!("the floor's thread panicked")).and_then(|r| r))
    });
    let ((cpu, rss), floor) = (idle?, floor?);
    println!(
        "   idle:                                  {:>5.2}% of one core, {:>6.1} MB resident   (goal: under 1% and 30 MB)",
        cpu * 100.0,
        rss
    );
    println!("   floor, a thread sleeping 5 ms in a loop: {:>5.2}% of one core", floor * 100.0);
    let idle_json = serde_json::json!({ "cpu_share": cpu, "rss_mb": rss, "floor_cpu_share": floor });

    let running = AtomicBool::new(true);
    let (cpu, rss, scrapes, flows) = std::thread::scope(|s| -> anyhow::Result<(f64, f64, u32, u64)> {
        let sender = s.spawn(|| send_flows(&lab, &running));
        let scraper = s.spawn(|| {
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                if scrape(&lab).is_ok() {
                    n += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            n
        });
        // The flows first fill the flow table, then the measurement.
        std::thread::sleep(Duration::from_secs(2));
        let measured = sample(pid, span);
        let flows = lab.a.daemon().status().ok().and_then(|s| s["counters"]["flows"].as_u64()).unwrap_or(0);
        running.store(false, Ordering::Relaxed);
        let sent = sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
        let scrapes = scraper.join().map_err(|_| anyhow::anyhow!("scraper panicked"))?;
        let (cpu, rss) = measured?;
        println!("   ({sent} datagrams sent over {} flows)", 2 * u64::from(DST_PORTS));
        Ok((cpu, rss, scrapes, flows))
    })?;
    println!(
        "   100k flows, metrics scraped every 1 s:  {:>5.2}% of one core, {:>6.1} MB resident   ({scrapes} scrapes; {flows} flows in the table)",
        cpu * 100.0,
        rss
    );
    crate::util::write_bench_json(
        "controller",
        &serde_json::json!({
            "miimon_ms": 5, "members": 3, "span_s": span.as_secs_f64(), "idle": idle_json,
            "flows_100k": { "cpu_share": cpu, "rss_mb": rss, "scrapes": scrapes, "flows_in_table": flows },
        }),
    )?;
    Ok(())
}

/// The CPU share of a thread that sleeps 5 ms in a loop until `sleeping` is false.
fn sleep_loop_cpu(sleeping: &AtomicBool) -> anyhow::Result<f64> {
    let tid = nix::unistd::gettid();
    let path = format!("/proc/self/task/{tid}/stat");
    let (cpu0, start) = (stat_cpu_ticks(&path)?, Instant::now());
    while sleeping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("CLK_TCK")? as f64;
    Ok((stat_cpu_ticks(&path)? - cpu0) as f64 / ticks / start.elapsed().as_secs_f64())
}

/// (share of one core, largest resident set in MB) of process `pid` over `span`.
pub fn sample(pid: u32, span: Duration) -> anyhow::Result<(f64, f64)> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("CLK_TCK")? as f64;
    let (cpu0, start) = (cpu_ticks(pid)?, Instant::now());
    let mut rss: f64 = 0.0;
    while start.elapsed() < span {
        rss = rss.max(rss_mb(pid)?);
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu = (cpu_ticks(pid)? - cpu0) as f64 / ticks / start.elapsed().as_secs_f64();
    Ok((cpu, rss))
}

/// utime + stime of a process (and its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    stat_cpu_ticks(&format!("/proc/{pid}/stat"))
}

/// utime + stime from a `stat` file of /proc (a process's or a thread's), in clock ticks.
fn stat_cpu_ticks(path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(path)?;
    // Fields after the command name (which may hold spaces), from the 3rd: utime is the 14th.
    let after = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?)
}

fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).context("VmRSS")?.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kb / 1024.0)
}

/// One datagram to each destination port from each of two source ports, over and over, until
/// told to stop; returns how many were sent.
fn send_flows(lab: &Lab, running: &AtomicBool) -> anyhow::Result<u64> {
    let socks = lab.a.ns.enter(|| [UdpSocket::bind((lab.a.addr, 50_000)), UdpSocket::bind((lab.a.addr, 50_001))])?;
    let socks = socks.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut sent = 0;
    while running.load(Ordering::Relaxed) {
        for port in 1..=DST_PORTS {
            for s in &socks {
                if s.send_to(b"flow", (lab.b.addr, port)).is_ok() {
                    sent += 1;
                }
            }
            if !running.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    Ok(sent)
}

/// `GET /metrics` from inside A's namespace (a test client: one request, read to the end).
fn scrape(lab: &Lab) -> anyhow::Result<usize> {
    lab.a.ns.enter(|| -> anyhow::Result<usize> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out.len())
    })?
}
