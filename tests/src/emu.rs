//! A link emulator in user space, for kernels without netem: it stands in the wire namespace
//! between two veth ends and carries each frame from one to the other after the delay, jitter,
//! loss and rate of its direction, which can change while traffic runs.
//!
//! Each direction is one thread: a packet socket on the receiving end (it sees frames before
//! the wire's nftables ingress chain, which drops them so the kernel does not forward them
//! too), a queue ordered by due time, and a packet socket that sends on the other end.
//! Frames leave in the order they came (jitter never reorders, as netem with a rate or a FIFO
//! does not); a frame bigger than the sending end's MTU (a GSO super-packet: large TCP sends)
//! cannot be sent and is counted in `too_big`. Timing: the thread waits with `ppoll` to the
//! microsecond, so a frame leaves within about 0.1 ms of its due time on an idle machine
//! (`late_max_us` reports the worst); see `cargo xtask bench` for the rate it carries.

use std::{
    collections::VecDeque,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use nix::{
    poll::{PollFd, PollFlags, ppoll},
    sys::{
        socket::{self, LinkAddr, MsgFlags, SockFlag},
        time::TimeSpec,
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};

use crate::{
    Netns,
    net::{packet_socket, set_rcvbuf},
};

/// How jitter is drawn around the delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Uniform in delay ± jitter.
    Uniform,
    /// Normal with standard deviation `jitter` (cut at zero delay).
    Normal,
}

/// Bursts of loss (Gilbert's model): from the good state a frame moves to the bad one with
/// probability `enter`; in the bad state every frame is lost and it leaves with `leave`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub enter: f64,
    pub leave: f64,
}

/// What one direction of a link does to its frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    pub delay: Duration,
    pub jitter: Duration,
    pub distribution: Jitter,
    /// Share of frames lost at random (0.0-1.0), in the good state when `burst` is set.
    pub loss: f64,
    pub burst: Option<Burst>,
    /// Bits per second the link carries (None: as fast as the emulator goes).
    pub rate: Option<u64>,
    /// With a rate: frames that would wait longer than this to be sent are dropped.
    pub queue: Duration,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            distribution: Jitter::Uniform,
            loss: 0.0,
            burst: None,
            rate: None,
            queue: Duration::from_millis(50),
        }
    }
}

impl Impairment {
    pub fn delay_ms(ms: u64) -> Impairment {
        Impairment { delay: Duration::from_millis(ms), ..Default::default() }
    }
}

/// What one direction did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DirectionStats {
    pub received: u64,
    pub sent: u64,
    pub lost: u64,
    /// Dropped because the rate's queue was full.
    pub queue_drops: u64,
    pub too_big: u64,
    /// Latest a frame left after its due time, in microseconds.
    pub late_max_us: u64,
}

/// An emulated link between devices `a` and `b` of one namespace: direction 0 carries what
/// arrives on `a` out of `b`, direction 1 the reverse. Stops on drop.
pub struct Emulator {
    stop: Arc<AtomicBool>,
    settings: [Arc<Mutex<Impairment>>; 2],
    stats: [Arc<Mutex<DirectionStats>>; 2],
    threads: Vec<JoinHandle<()>>,
}

impl Emulator {
    pub fn start(ns: &Netns, a: &str, b: &str) -> anyhow::Result<Emulator> {
        let stop = Arc::new(AtomicBool::new(false));
        let settings = [Arc::new(Mutex::new(Impairment::default())), Arc::new(Mutex::new(Impairment::default()))];
        let stats = [Arc::new(Mutex::new(DirectionStats::default())), Arc::new(Mutex::new(DirectionStats::default()))];
        let mut threads = Vec::new();
        for (d, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
            let rx = ns.enter(|| packet_socket(from, SockFlag::SOCK_NONBLOCK))??;
            // A burst waits here while the thread sleeps towards the next due time.
            set_rcvbuf(&rx, 32 << 20);
            let tx = ns.enter(|| packet_socket(to, SockFlag::empty()))??;
            let direction = Direction {
                rx,
                tx,
                stop: stop.clone(),
                settings: settings[d].clone(),
                stats: stats[d].clone(),
                rng: StdRng::from_os_rng(),
                queue: VecDeque::new(),
                bad: false,
                link_free: Instant::now(),
            };
            threads.push(std::thread::Builder::new().name(format!("emu-{from}")).spawn(move || direction.run())?);
        }
        Ok(Emulator { stop, settings, stats, threads })
    }

    /// Sets what direction `d` (0: `a` to `b`, 1: `b` to `a`) does from the next frame on.
    pub fn set(&self, d: usize, imp: Impairment) {
        *self.settings[d].lock().unwrap() = imp;
    }

    /// The same impairment both ways.
    pub fn set_both(&self, imp: Impairment) {
        self.set(0, imp.clone());
        self.set(1, imp);
    }

    pub fn stats(&self, d: usize) -> DirectionStats {
        *self.stats[d].lock().unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One direction's state, owned by its thread.
struct Direction {
    rx: OwnedFd,
    tx: OwnedFd,
    stop: Arc<AtomicBool>,
    settings: Arc<Mutex<Impairment>>,
    stats: Arc<Mutex<DirectionStats>>,
    rng: StdRng,
    /// Frames and when they are due to leave, in order.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// Gilbert's state: in a burst of loss.
    bad: bool,
    /// With a rate: when the link has sent what it took so far.
    link_free: Instant,
}

/// Longest the thread sleeps without looking at its stop flag.
const IDLE: Duration = Duration::from_millis(20);

impl Direction {
    fn run(mut self) {
        real_time_priority();
        let mut buf = vec![0u8; 65536];
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self.queue.front().map_or(IDLE, |(due, _)| due.saturating_duration_since(now)).min(IDLE);
            let mut fds = [PollFd::new(self.rx.as_fd(), PollFlags::POLLIN)];
            let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
            self.receive(&mut buf);
            self.send_due();
        }
    }

    /// Takes every frame waiting on the receiving socket.
    fn receive(&mut self, buf: &mut [u8]) {
        let imp = self.settings.lock().unwrap().clone();
        let mut stats = DirectionStats::default();
        while let Ok((n, addr)) = socket::recvfrom::<LinkAddr>(self.rx.as_raw_fd(), buf) {
            // What the emulator itself sends on this end (the other direction) is seen too.
            if n == 0 || addr.is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING) {
                continue;
            }
            stats.received += 1;
            let now = Instant::now();
            match self.schedule(&imp, n, now) {
                Verdict::Lost => stats.lost += 1,
                Verdict::QueueFull => stats.queue_drops += 1,
                Verdict::Due(due) => self.queue.push_back((due, buf[..n].to_vec())),
            }
        }
        if stats.received > 0 {
            let mut s = self.stats.lock().unwrap();
            s.received += stats.received;
            s.lost += stats.lost;
            s.queue_drops += stats.queue_drops;
        }
    }

    /// What happens to a frame of `len` bytes that arrived at `now`.
    fn schedule(&mut self, imp: &Impairment, len: usize, now: Instant) -> Verdict {
        if let Some(b) = imp.burst {
            self.bad =
                if self.bad { !self.rng.random_bool(b.leave.clamp(0.0, 1.0)) } else { self.rng.random_bool(b.enter.clamp(0.0, 1.0)) };
        }
        if self.bad || (imp.loss > 0.0 && self.rng.random_bool(imp.loss.clamp(0.0, 1.0))) {
            return Verdict::Lost;
        }
        let mut departure = now;
        if let Some(rate) = imp.rate.filter(|r| *r > 0) {
            let start = self.link_free.max(now);
            if start.duration_since(now) > imp.queue {
                return Verdict::QueueFull;
            }
            departure = start + Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / rate);
            self.link_free = departure;
        }
        let jitter_ns = imp.jitter.as_nanos() as f64;
        let offset = match imp.distribution {
            _ if jitter_ns == 0.0 => 0.0,
            Jitter::Uniform => self.rng.random_range(-jitter_ns..=jitter_ns),
            Jitter::Normal => Normal::new(0.0, jitter_ns).map_or(0.0, |n| n.sample(&mut self.rng)),
        };
        let delay = (imp.delay.as_nanos() as f64 + offset).max(0.0);
        let due = departure + Duration::from_nanos(delay as u64);
        // In order: a frame never overtakes the one before it.
        let after = self.queue.back().map_or(due, |(last, _)| (*last).max(due));
        Verdict::Due(after)
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        let mut stats = DirectionStats::default();
        while self.queue.front().is_some_and(|(due, _)| *due <= now) {
            let (due, frame) = self.queue.pop_front().expect("checked");
            stats.late_max_us = stats.late_max_us.max(now.duration_since(due).as_micros() as u64);
            match socket::send(self.tx.as_raw_fd(), &frame, MsgFlags::empty()) {
                Ok(_) => stats.sent += 1,
                Err(nix::errno::Errno::EMSGSIZE) => stats.too_big += 1,
                // The far end is down (a cut link): the frame is lost, as on a cable.
                Err(_) => stats.lost += 1,
            }
        }
        if stats.sent + stats.too_big + stats.lost > 0 {
            let mut s = self.stats.lock().unwrap();
            s.sent += stats.sent;
            s.too_big += stats.too_big;
            s.lost += stats.lost;
            s.late_max_us = s.late_max_us.max(stats.late_max_us);
        }
    }
}

/// Runs the calling thread at a real-time priority (SCHED_FIFO 10) when allowed, so frames
/// leave on time while the bonds and the test's traffic keep both cores busy. The thread
/// sleeps in `ppoll` between frames, so it cannot starve the machine (and the kernel keeps
/// 5% for others anyway).
fn real_time_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // nix has no call for a thread's scheduling policy.
    // SAFETY: pthread_self() is the calling thread's own handle, and `param` is a valid
    // sched_param that the call only reads.
    let _ = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
}

enum Verdict {
    Lost,
    QueueFull,
    Due(Instant),
}
