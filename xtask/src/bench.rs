//! `cargo xtask bench`: everything measured in one run against a baseline in the same run,
//! because these machines are noisy. Reported as ratios.
//!
//! - Packet rate: 64-byte UDP datagrams through the bond (egress program on the bond, ingress
//!   program on the peer's member) vs the same traffic over a plain veth pair between the same
//!   two namespaces. Rounds alternate between the two paths; medians are compared.
//! - Program cost: nanoseconds per packet of each program, from the kernel's BPF statistics
//!   (`kernel.bpf_stats_enabled`), which include the statistics' own clock reads.
//!
//! Written as `target/bench/rate.json` too; then the table of every policy (`bench_table`).

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bond_tests::{Lab, LabOptions, cmd, net::pin_to_cpu};

pub const PAYLOAD: usize = 64;
/// The largest payload sent (1400-byte datagrams fit a 1500-byte MTU).
pub const MAX_PAYLOAD: usize = 1400;

/// What a round sends: UDP payloads of `payload` bytes over `flows` flows (source ports).
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub payload: usize,
    pub flows: usize,
}

impl Load {
    pub const SMALL: Load = Load { payload: PAYLOAD, flows: 1 };
}
/// How long the measurements run: the full bench, or `--quick` (checks the bench works, as
/// `cargo xtask test` does; its numbers mean little).
#[derive(Clone, Copy)]
pub struct Plan {
    pub rounds: usize,
    pub round: Duration,
    /// Rounds and their length for the table of every policy under every kind of traffic.
    pub table_rounds: usize,
    pub table_round: Duration,
}

impl Plan {
    pub const FULL: Plan = Plan { rounds: 5, round: Duration::from_secs(2), table_rounds: 3, table_round: Duration::from_secs(1) };
    pub const QUICK: Plan = Plan { rounds: 1, round: Duration::from_millis(300), table_rounds: 1, table_round: Duration::from_millis(200) };
}
const BATCH: usize = 64;

pub fn run(bondctl: &Path, plan: Plan) -> anyhow::Result<()> {
    let Plan { rounds, round: round_time, table_rounds, table_round } = plan;
    let mut lab = lab(bondctl)?;
    println!("== packet rate, {PAYLOAD}-byte UDP payloads, one flow, {rounds} interleaved rounds of {round_time:?}");
    let (mut plain, mut bond) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let p = blast(&lab, "198.51.100.1", "198.51.100.2", Load::SMALL, round_time)?;
        let b = blast(&lab, lab.a.addr, lab.b.addr, Load::SMALL, round_time)?;
        println!("   round {round}: plain veth {:>9.0} pps   bond {:>9.0} pps   ratio {:.2}", p, b, b / p);
        plain.push(p);
        bond.push(b);
    }
    let (mp, mb) = (median(&mut plain), median(&mut bond));
    println!("   median: plain veth {mp:.0} pps, bond {mb:.0} pps: bond at {:.0}% of the plain path", 100.0 * mb / mp);
    let kinds = device_kinds(&lab, rounds, round_time)?;

    println!("== program cost per packet (kernel.bpf_stats_enabled; includes the statistics' own clock reads)");
    // The floor: a program that does nothing, attached the same way (TCX) to the plain pair,
    // egress on A's end and ingress on B's, measured under the same traffic.
    let floor = Floor::attach(&lab)?;
    cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=1"])?;
    let before = prog_stats(floor.id)?;
    let r = blast(&lab, "198.51.100.1", "198.51.100.2", Load::SMALL, round_time);
    let after = prog_stats(floor.id)?;
    cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=0"])?;
    r?;
    // Both attachments count in one program: its cost per run is the floor for either end.
    let floor_ns = (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64;
    drop(floor);
    println!("   floor (an empty TC program)   {floor_ns:>6.1} ns per run");
    let (re, ri) = crate::bench_stages::redirect_floor(&lab, round_time)?;
    println!("   redirect floor (a TC program that only redirects): egress to a member {re:>6.1} ns, ingress into the bond {ri:>6.1} ns");
    let mut costs = Vec::new();
    for policy in ["active-backup", "xor-l34", "balance-aware"] {
        lab.a.daemon().set_policy(policy)?;
        let (e, i) = program_cost(&lab, || blast(&lab, lab.a.addr, lab.b.addr, Load::SMALL, round_time).map(drop))?;
        println!(
            "   {policy:<14} bond_egress {e:>6.1} ns ({:+.1} above the floor, {:+.1} above the redirect)   member_ingress {i:>6.1} ns ({:+.1}, {:+.1})",
            e - floor_ns,
            e - re,
            i - floor_ns,
            i - ri
        );
        costs.push(serde_json::json!({ "policy": policy, "bond_egress_ns": e, "member_ingress_ns": i }));
    }
    lab.a.daemon().set_policy("xor-l34")?;
    let stages = crate::bench_stages::breakdown(&lab, table_rounds, round_time)?;
    let test_runner = crate::bench_stages::in_a_loop(&lab, 3 * rounds)?;
    let ebpf_log = ebpf_log_cost(&mut lab, rounds, round_time)?;
    crate::util::write_bench_json(
        "rate",
        &serde_json::json!({
            "payload": PAYLOAD, "round_s": round_time.as_secs_f64(),
            "plain_pps": plain, "bond_pps": bond, "median_plain_pps": mp, "median_bond_pps": mb,
            "floor_ns": floor_ns, "redirect_floor_ns": { "egress": re, "ingress": ri }, "program_cost": costs, "bond_egress_stages": stages, "test_runner": test_runner, "device_kinds": kinds, "ebpf_log": ebpf_log,
        }),
    )?;
    crate::bench_table::run(&lab, ("198.51.100.1", "198.51.100.2"), (lab.a.addr, lab.b.addr), table_rounds, table_round)
}

/// The rate bench's lab: A and B bonded directly (active-backup, and a balance-xor layer3+4
/// policy `xor-l34`), and a plain veth pair `plain` between the same namespaces (198.51.100.1
/// on A, .2 on B), both paths pinged.
pub fn lab(bondctl: &Path) -> anyhow::Result<Lab> {
    // SAFETY: set_var races only with other threads reading or writing the environment, and
    // none exist yet: xtask is single-threaded until the lab starts below.
    unsafe { std::env::set_var("BONDCTL", bondctl) };
    let lab = Lab::start(
        LabOptions::default()
            .policy("active-backup")
            .direct()
            .settings("policies:\n  xor-l34: { basePolicy: balance-xor, xmitHashPolicy: layer3+4 }"),
    )
    .context("starting the lab")?;
    lab.a.ns.ip(&["link", "add", "plain", "type", "veth", "peer", "name", "plain", "netns", lab.b.ns.name()])?;
    lab.a.ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "plain"])?;
    lab.b.ns.ip(&["addr", "add", "198.51.100.2/24", "dev", "plain"])?;
    lab.a.ns.ip(&["link", "set", "plain", "up"])?;
    lab.b.ns.ip(&["link", "set", "plain", "up"])?;
    bond_tests::net::ping(&lab, 2)?;
    lab.a.ns.exec("ping", &["-q", "-c", "2", "-i", "0.1", "198.51.100.2"])?;
    Ok(lab)
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Sends `load` from A (`src`) to B (`dst`) for one round; returns datagrams delivered to B's
/// socket per second.
pub fn blast(lab: &Lab, src: &str, dst: &str, load: Load, round: Duration) -> anyhow::Result<f64> {
    let rx = lab.b.ns.enter(|| UdpSocket::bind((dst, 9000)))??;
    rx.set_read_timeout(Some(Duration::from_millis(100)))?;
    let tx = lab.a.ns.enter(|| (0..load.flows).map(|_| UdpSocket::bind((src, 0))).collect::<Result<Vec<_>, _>>())??;
    let to: SocketAddr = format!("{dst}:9000").parse()?;
    let sending = AtomicBool::new(true);
    let (received, elapsed) = std::thread::scope(|s| -> anyhow::Result<(u64, Duration)> {
        let receiver = s.spawn(|| {
            let _ = pin_to_cpu(1);
            recv_count(&rx, &sending)
        });
        let _ = pin_to_cpu(0);
        let start = Instant::now();
        send_for(&tx, to, load.payload, round)?;
        let elapsed = start.elapsed();
        sending.store(false, Ordering::Relaxed);
        let received = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        Ok((received, elapsed))
    })?;
    Ok(received as f64 / elapsed.as_secs_f64())
}

// sendmmsg/recvmmsg straight through libc: nix's batch API (MultiHeaders) allocates control
// buffers and addresses per call, which is what this load generator must not measure.
fn sockaddr(to: SocketAddr) -> anyhow::Result<libc::sockaddr_in> {
    let SocketAddr::V4(v4) = to else { bail!("IPv4 only") };
    // SAFETY: sockaddr_in is plain integers (and padding), for which all-zero bytes are valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    Ok(sa)
}

/// Sends `payload`-byte datagrams to `to` for `dur`, a batch from each socket (flow) in turn.
fn send_for(socks: &[UdpSocket], to: SocketAddr, payload: usize, dur: Duration) -> anyhow::Result<u64> {
    let mut sa = sockaddr(to)?;
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: payload.min(MAX_PAYLOAD) };
    // SAFETY: mmsghdr is integers and raw pointers, for which all-zero bytes are valid (null
    // pointers, zero lengths); the pointers set below stay alive for the loop.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for m in &mut msgs {
        m.msg_hdr.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    'sending: loop {
        for sock in socks {
            if start.elapsed() >= dur {
                break 'sending;
            }
            // SAFETY: `msgs` holds BATCH headers, each pointing at `sa` (with its size) and one
            // iovec over `buf` (at most MAX_PAYLOAD bytes); all are locals that outlive the call,
            // and the kernel only reads them (and writes each msg_len).
            let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n > 0 {
                sent += n as u64;
            }
        }
    }
    Ok(sent)
}

fn recv_count(sock: &UdpSocket, sending: &AtomicBool) -> u64 {
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    // SAFETY: mmsghdr is integers and raw pointers, for which all-zero bytes are valid (null
    // pointers, zero lengths); the iovecs set below outlive the loop.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut got = 0u64;
    loop {
        // SAFETY: `msgs` holds BATCH headers with no name and one iovec each, over its own
        // 2048-byte buffer in `bufs`; the kernel writes at most iov_len bytes into each, and all of
        // them outlive the call. A null timeout is allowed (the socket's receive timeout bounds it).
        let n = unsafe { libc::recvmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0, std::ptr::null_mut()) };
        if n > 0 {
            got += n as u64;
        } else if !sending.load(Ordering::Relaxed) {
            return got;
        }
    }
}

/// The bond's eBPF object with its `floor` program loaded and attached to the plain pair (A's
/// end egress, B's end ingress); detached when dropped.
struct Floor {
    _ebpf: aya::Ebpf,
    id: u64,
}

impl Floor {
    fn attach(lab: &Lab) -> anyhow::Result<Floor> {
        use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions};
        let obj = crate::util::root().join("target/ebpf/bpfel-unknown-none/release/bond");
        // Its maps are created unpinned, apart from any bond's.
        let mut ebpf = aya::Ebpf::load_file(&obj).with_context(|| format!("loading {}", obj.display()))?;
        let p: &mut SchedClassifier = ebpf.program_mut("floor").context("no floor program")?.try_into()?;
        p.load().context("loading floor")?;
        let id = u64::from(p.info()?.id());
        for (ns, dir) in [(&lab.a.ns, TcAttachType::Egress), (&lab.b.ns, TcAttachType::Ingress)] {
            ns.enter(|| p.attach_with_options("plain", dir, TcAttachOptions::TcxOrder(LinkOrder::default())))?
                .context("attaching floor")?;
        }
        Ok(Floor { _ebpf: ebpf, id })
    }
}

/// Nanoseconds per run of A's `bond_egress` and B's `member_ingress` (one program for every
/// member) while `traffic` runs, from the kernel's BPF statistics.
pub fn program_cost(lab: &Lab, traffic: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    let egress = prog_id(&lab.a, &format!("link_egress_{}", lab.a.bond))?;
    let ingress = prog_id(&lab.b, "link_ingress_eth0")?;
    cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=1"])?;
    let before = (prog_stats(egress)?, prog_stats(ingress)?);
    let r = traffic();
    let after = (prog_stats(egress)?, prog_stats(ingress)?);
    cmd::run("sysctl", &["-qw", "kernel.bpf_stats_enabled=0"])?;
    r?;
    let per_run = |(t0, n0): (u64, u64), (t1, n1): (u64, u64)| -> anyhow::Result<f64> {
        let n = n1.saturating_sub(n0);
        if n == 0 {
            bail!("program did not run");
        }
        Ok((t1 - t0) as f64 / n as f64)
    };
    Ok((per_run(before.0, after.0)?, per_run(before.1, after.1)?))
}

/// What `bondctl up --ebpf-log` costs, and that off costs nothing: A's daemon restarted
/// without and with it, rounds interleaved, active-backup; `bond_egress`'s cost per packet and
/// the size of the programs the kernel runs (off, the verifier removes every log statement:
/// the level is a read-only global it knows).
fn ebpf_log_cost(lab: &mut Lab, rounds: usize, round_time: Duration) -> anyhow::Result<serde_json::Value> {
    println!(
        "== the data plane's diagnostics (aya-log): bondctl up without and with --ebpf-log, {rounds} interleaved rounds, active-backup"
    );
    let (path, dir) = (lab.config_path(&lab.a), lab.dir().to_path_buf());
    let mut ns = [Vec::new(), Vec::new()];
    let mut bytes = [(0, 0); 2];
    for round in 0..rounds {
        // The last run is without: the bench goes on with the daemon as users run it.
        for (i, args) in [(1, &["--ebpf-log"][..]), (0, &[][..])] {
            lab.a.daemon.as_mut().context("A's daemon")?.stop()?;
            lab.a.daemon = Some(bond_tests::Daemon::start_with(&lab.a.ns, &path, &lab.a.bond, &dir, args)?);
            bond_tests::net::ping(lab, 2)?;
            let (e, _) = program_cost(lab, || blast(lab, lab.a.addr, lab.b.addr, Load::SMALL, round_time).map(drop))?;
            ns[i].push(e);
            if round == 0 {
                let info = |link: &str, key: &str| -> anyhow::Result<u64> {
                    let out = cmd::run("bpftool", &["-j", "prog", "show", "id", &prog_id(&lab.a, link)?.to_string()])?;
                    let v: serde_json::Value = serde_json::from_str(&out)?;
                    v[key].as_u64().with_context(|| format!("no {key}"))
                };
                let egress = format!("link_egress_{}", lab.a.bond);
                bytes[i] = (info(&egress, "bytes_xlated")?, info("link_ingress_eth0", "bytes_xlated")?);
            }
        }
    }
    let (off, on) = (median(&mut ns[0]), median(&mut ns[1]));
    println!("   bond_egress: off {off:.1} ns per packet, on {on:.1} ns (nothing logged on the way; {:+.1} ns)", on - off);
    println!(
        "   programs as loaded: bond_egress {} bytes off, {} on; member_ingress {} off, {} on (off: the log statements are not in the program)",
        bytes[0].0, bytes[1].0, bytes[0].1, bytes[1].1
    );

    Ok(serde_json::json!({
        "bond_egress_ns_off": ns[0], "bond_egress_ns_on": ns[1],
        "bond_egress_bytes_off": bytes[0].0, "bond_egress_bytes_on": bytes[1].0,
        "member_ingress_bytes_off": bytes[0].1, "member_ingress_bytes_on": bytes[1].1,

    }))
}

/// The program behind a pinned link of a side's bond.
fn prog_id(side: &bond_tests::lab::Side, link: &str) -> anyhow::Result<u64> {
    let path = bond_tests::lab::pin_dir(side.ns.name(), &side.bond)?.join(link);
    let out = cmd::run("bpftool", &["-j", "link", "show", "pinned", &path.to_string_lossy()])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v["prog_id"].as_u64().with_context(|| format!("no prog_id for {}: {out}", path.display()))
}

/// (run_time_ns, run_cnt) of a program.
pub fn prog_stats(id: u64) -> anyhow::Result<(u64, u64)> {
    let out = cmd::run("bpftool", &["-j", "prog", "show", "id", &id.to_string()])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok((v["run_time_ns"].as_u64().unwrap_or(0), v["run_cnt"].as_u64().unwrap_or(0)))
}

/// The bond device's kind costs the data path nothing: the same traffic through this lab's
/// bond (a veth device here: the kernel has no dummy) and through a second lab's whose device
/// is an ifb (what earlier versions made), rounds interleaved.
fn device_kinds(lab: &Lab, rounds: usize, round_time: Duration) -> anyhow::Result<serde_json::Value> {
    // SAFETY: as in `run`; the daemons of the lab started next inherit it, and no other thread
    // reads the environment meanwhile.
    unsafe { std::env::set_var("BONDCTL_BOND_DEVICE_KIND", "ifb") };
    let ifb = Lab::start(LabOptions::default().policy("active-backup").direct());
    // SAFETY: as above.
    unsafe { std::env::remove_var("BONDCTL_BOND_DEVICE_KIND") };
    let ifb = ifb.context("starting the lab with an ifb bond device")?;
    bond_tests::net::ping(&ifb, 2)?;
    let kind = |l: &Lab| {
        l.a.ns.ip(&["-d", "link", "show", &l.a.bond]).map(|o| {
            if o.contains("veth") {
                "veth"
            } else if o.contains("dummy") {
                "dummy"
            } else {
                "ifb"
            }
        })
    };
    let (this_kind, other) = (kind(lab)?, kind(&ifb)?);
    println!("== the bond device's kind: {this_kind} (this version here) vs {other} (earlier versions), {rounds} interleaved rounds");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let x = blast(lab, lab.a.addr, lab.b.addr, Load::SMALL, round_time)?;
        let y = blast(&ifb, ifb.a.addr, ifb.b.addr, Load::SMALL, round_time)?;
        println!("   round {round}: {this_kind} {x:>9.0} pps   {other} {y:>9.0} pps   ratio {:.2}", x / y);
        a.push(x);
        b.push(y);
    }
    let (ma, mb) = (median(&mut a), median(&mut b));
    println!("   median: {this_kind} {ma:.0} pps, {other} {mb:.0} pps: {:.0}%", 100.0 * ma / mb);
    Ok(serde_json::json!({ "kind": this_kind, "pps": a, "ifb_pps": b, "median": ma, "median_ifb": mb }))
}
