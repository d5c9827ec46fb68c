//! `bondctl up`: brings bonds up (or adopts them from a previous daemon) and runs them.
//!
//! One task owns every bond's state. Link events (rtnetlink), probe replies (the data plane's
//! ring buffers), control requests and a tick for periodic work arrive as messages, so there
//! are no locks. Operations that wait (netlink, grace periods: adding and removing members,
//! reloads, `down`) run beside the loop, one at a time, with their steps on it (see [`ops`]).
//!
//! On SIGINT or SIGTERM the bonds are removed and their members restored, unless the daemon
//! runs with `--persist`: then the bonds keep forwarding without it (as after SIGKILL) and
//! the next `bondctl up` adopts them. SIGHUP re-reads the configuration file.

mod ops;

use std::{collections::VecDeque, path::PathBuf, pin::Pin, time::Duration};

use anyhow::{Context, bail};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    bond::{Bond, Wake, WakeWhat},
    config::{BondSpec, Config},
    control::{Pending, Request, Response},
    netdev::{LinkEvents, Netdev},
    sys,
};

/// How the daemon was asked to run.
pub struct Options {
    pub config: Config,
    /// The file the configuration came from (None: the command line), for reloads.
    pub source: Option<PathBuf>,
    /// Run only this bond of the configuration.
    pub only: Option<String>,
    /// Leave the bonds running on exit, for the next daemon to adopt.
    pub persist: bool,
    /// Serve Prometheus metrics here.
    pub metrics: Option<String>,
}

struct Daemon {
    nl: Netdev,
    bonds: Vec<Bond>,
    config: Config,
    source: Option<PathBuf>,
    only: Option<String>,
    to_daemon: mpsc::Sender<Pending>,
    probe_tx: mpsc::Sender<Wake>,
    /// Names of the bonds run, for the metrics endpoint.
    names: tokio::sync::watch::Sender<Vec<String>>,
    /// Bonds stopped because their device was deleted from outside (the daemon then exits
    /// with an error, so a supervisor starts it again and the bond is rebuilt).
    lost: Vec<String>,
}

/// Runs the bonds until SIGINT/SIGTERM (or `bondctl down` of the last one).
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let specs: Vec<BondSpec> = match &opts.only {
        Some(name) => vec![opts.config.bond(name).cloned().with_context(|| format!("the configuration has no bond {name}"))?],
        None => opts.config.bonds.clone(),
    };
    if specs.is_empty() {
        bail!("the configuration defines no bonds");
    }
    sys::ensure_bpffs()?;
    // Before the bonds: a few milliseconds of reading /proc and pins, once.
    crate::sweep::clear_dead_namespaces();
    let metrics_listener = match &opts.metrics {
        Some(addr) => Some(crate::prometheus::bind(addr).await?),
        None => None,
    };
    // Subscribe before reading link states, so no change falls between the two.
    let link_events = LinkEvents::subscribe()?;
    let (to_daemon, requests) = mpsc::channel::<Pending>(16);
    let (probe_tx, probe_events) = mpsc::channel::<Wake>(256);
    let mut d = Daemon {
        nl: Netdev::connect()?,
        bonds: Vec::new(),
        config: opts.config,
        source: opts.source,
        only: opts.only,
        to_daemon,
        probe_tx,
        names: tokio::sync::watch::Sender::new(Vec::new()),
        lost: Vec::new(),
    };
    // Installed before the bonds start: a signal during start-up is handled, not fatal.
    let sigint = signal(SignalKind::interrupt())?;
    let sigterm = signal(SignalKind::terminate())?;
    let sighup = signal(SignalKind::hangup())?;
    for spec in specs {
        if let Err(e) = d.start(spec).await {
            d.shutdown(false).await;
            return Err(e);
        }
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::prometheus::serve(listener, d.names.subscribe(), d.to_daemon.clone()));
    }
    let on_exit = if opts.persist { "they keep running for the next bondctl up" } else { "removes them" };
    tracing::info!("running {} bond(s); on SIGINT or SIGTERM {on_exit}", d.bonds.len());
    let mut inputs = Inputs { link_events, requests, probe_events, sigint, sigterm, sighup };
    d.serve(&mut inputs).await;
    if d.bonds.is_empty() {
        // `bondctl down` of the last bond: its answer is still on the way out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::info!("no bonds left");
    }
    d.shutdown(opts.persist).await;
    if !d.lost.is_empty() {
        bail!("bond(s) {} stopped: the bond device was deleted from outside (start the daemon again to rebuild it)", d.lost.join(", "));
    }
    Ok(())
}

/// What the daemon's loop waits on.
struct Inputs {
    link_events: LinkEvents,
    requests: mpsc::Receiver<Pending>,
    probe_events: mpsc::Receiver<Wake>,
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
    sighup: tokio::signal::unix::Signal,
}

impl Daemon {
    /// The loop: until SIGINT, SIGTERM or the last bond's `down` (an operation under way is
    /// finished first).
    async fn serve(&mut self, inputs: &mut Inputs) {
        let period = self.bonds.iter().map(|b| b.tick_interval()).min().unwrap_or_default();
        tracing::info!("monitoring every {period:?} (sooner for probes and deadlines)");
        let mut next_tick = sys::monotonic_ns();
        let mut last_tick = 0;
        let Inputs { link_events, requests, probe_events, sigint, sigterm, sighup } = inputs;
        let (step_tx, mut steps) = mpsc::unbounded_channel::<ops::Step>();
        let ctx = ops::OpContext { nl: self.nl.clone(), on_loop: ops::OnLoop(step_tx) };
        let mut operation: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
        let mut waiting: VecDeque<ops::Job> = VecDeque::new();
        let mut stopping = false;
        loop {
            if operation.is_none() && !stopping {
                operation = waiting.pop_front().map(|job| Box::pin(ops::run(ctx.clone(), job)) as Pin<Box<dyn Future<Output = ()>>>);
            }
            if operation.is_none() && (stopping || self.bonds.is_empty()) {
                break;
            }
            // Regular ticks, and earlier wake-ups for probes and silence deadlines.
            let now = sys::monotonic_ns();
            let due = self.bonds.iter().filter_map(|b| b.next_deadline(last_tick)).fold(next_tick, u64::min);
            let wait = Duration::from_nanos(due.saturating_sub(now));
            let mut finished = false;
            tokio::select! {
                // Probe replies (and carrier changes) first: one that is waiting must count before a
                // silence deadline.
                biased;
                Some(w) = probe_events.recv() => self.on_wake(&w),
                _ = tokio::time::sleep(wait) => {
                    let now = sys::monotonic_ns();
                    if now >= next_tick {
                        // Reloads and new bonds may change it.
                        let period = self.bonds.iter().map(|b| b.tick_interval()).min().unwrap_or(period);
                        next_tick = now + period.as_nanos() as u64;
                    }
                    self.tick(now);
                    last_tick = now;
                }
                Some(step) = steps.recv() => step(self),
                ev = link_events.next() => match ev {
                    Some(ev) => waiting.extend(self.on_link_event(&ev)),
                    None => {
                        tracing::error!("the link event subscription ended");
                        break;
                    }
                },
                () = async { operation.as_mut().expect("polled only while there is one").await }, if operation.is_some() => {
                    finished = true;
                }
                Some(p) = requests.recv() => self.on_request(p, &mut waiting),
                _ = sighup.recv() => waiting.push_back(ops::Job::Sighup),
                _ = sigint.recv() => stopping = true,
                _ = sigterm.recv() => stopping = true,
            }
            if finished {
                operation = None;
            }
        }
        for job in waiting {
            if let ops::Job::Request(p) = job {
                let _ = p.reply.send(Response::Error { error: "the daemon is stopping".into() });
            }
        }
    }

    fn on_wake(&mut self, w: &Wake) {
        let now = sys::monotonic_ns();
        let Some(b) = self.bonds.iter_mut().find(|b| b.spec.name == w.bond) else { return };
        let handled = match &w.what {
            WakeWhat::ProbeReplies(events) => b.on_probe_events(events, now),
            WakeWhat::Carrier => b.on_carrier_change(now),
            WakeWhat::RxFilter(rx) => b.on_rx_filter(rx, now),
        };
        if let Err(e) = handled {
            tracing::error!(bond = %b.spec.name, "handling probe replies or a change of a device: {e:#}");
        }
    }

    fn tick(&mut self, now: u64) {
        for b in &mut self.bonds {
            if let Err(e) = b.tick(now) {
                tracing::error!(bond = %b.spec.name, "monitoring: {e:#}");
            }
        }
    }

    /// A change of a device: each bond takes it in; a member's device deleted or back (a new
    /// ifindex) and a bond device deleted become operations (they wait for netlink).
    fn on_link_event(&mut self, ev: &crate::netdev::LinkEvent) -> Vec<ops::Job> {
        let now = sys::monotonic_ns();
        let mut jobs = Vec::new();
        for b in &mut self.bonds {
            if let Some(job) = ops::hot_plug(b, ev) {
                jobs.push(job);
            }
            if let Err(e) = b.on_link_event(ev, now) {
                tracing::error!(bond = %b.spec.name, "handling a link event: {e:#}");
            }
        }
        jobs
    }

    async fn start(&mut self, spec: BondSpec) -> anyhow::Result<()> {
        let bond = Bond::start(&self.nl, spec, &self.config, self.to_daemon.clone(), self.probe_tx.clone()).await?;
        self.bonds.push(bond);
        self.publish_names();
        Ok(())
    }

    /// The bond that has `link` as a member.
    fn holder(&self, link: &str) -> Option<&str> {
        self.bonds.iter().find(|b| b.has_member(link)).map(|b| b.spec.name.as_str())
    }

    async fn shutdown(&mut self, persist: bool) {
        for b in std::mem::take(&mut self.bonds) {
            if persist {
                b.detach();
            } else {
                b.stop(&self.nl).await;
            }
        }
    }

    /// A request: answered at once from the bonds' state, or, when it is an operation, queued
    /// to run beside the loop (see `ops`).
    fn on_request(&mut self, p: Pending, waiting: &mut VecDeque<ops::Job>) {
        if ops::is_operation(&p.request) {
            waiting.push_back(ops::Job::Request(p));
        } else {
            let response = self.request(&p.bond, p.request);
            let _ = p.reply.send(response);
        }
    }

    /// A request answered at once from the bonds' state (operations are `ops`').
    fn request(&mut self, bond: &str, request: Request) -> Response {
        match self.bonds.iter_mut().find(|b| b.spec.name == bond) {
            Some(b) => b.handle(&self.config, request, sys::monotonic_ns()),
            None => Response::Error { error: format!("no bond {bond}") },
        }
    }

    /// Tells the metrics endpoint which bonds run.
    fn publish_names(&self) {
        self.names.send_replace(self.bonds.iter().map(|b| b.spec.name.clone()).collect());
    }
}
