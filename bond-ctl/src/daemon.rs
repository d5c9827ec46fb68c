//! `bondctl up`: brings bonds up (or adopts them from a previous daemon) and runs them.
//!
//! One task owns every bond's state. Link events (rtnetlink), probe replies (the data plane's
//! ring buffers), control requests and a tick for periodic work arrive as messages, so there
//! are no locks.
//!
//! On SIGINT or SIGTERM the bonds are removed and their members restored, unless the daemon
//! runs with `--persist`: then the bonds keep forwarding without it (as after SIGKILL) and
//! the next `bondctl up` adopts them. SIGHUP re-reads the configuration file.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    bond::{Bond, ProbeEvents},
    config::{self, BondSpec, Config},
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
    probe_tx: mpsc::Sender<ProbeEvents>,
    /// Names of the bonds run, for the metrics endpoint.
    names: tokio::sync::watch::Sender<Vec<String>>,
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
    let metrics_listener = match &opts.metrics {
        Some(addr) => Some(crate::prometheus::bind(addr).await?),
        None => None,
    };
    // Subscribe before reading link states, so no change falls between the two.
    let link_events = LinkEvents::subscribe()?;
    let (to_daemon, requests) = mpsc::channel::<Pending>(16);
    let (probe_tx, probe_events) = mpsc::channel::<ProbeEvents>(256);
    let mut d = Daemon {
        nl: Netdev::connect()?,
        bonds: Vec::new(),
        config: opts.config,
        source: opts.source,
        only: opts.only,
        to_daemon,
        probe_tx,
        names: tokio::sync::watch::Sender::new(Vec::new()),
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
    Ok(())
}

/// What the daemon's loop waits on.
struct Inputs {
    link_events: LinkEvents,
    requests: mpsc::Receiver<Pending>,
    probe_events: mpsc::Receiver<ProbeEvents>,
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
    sighup: tokio::signal::unix::Signal,
}

impl Daemon {
    /// The loop: until SIGINT, SIGTERM or the last bond's `down`.
    async fn serve(&mut self, inputs: &mut Inputs) {
        let period = self.bonds.iter().map(|b| b.tick_interval()).min().unwrap_or_default();
        tracing::info!("monitoring every {period:?} (sooner for probes and deadlines)");
        let mut next_tick = sys::monotonic_ns();
        let Inputs { link_events, requests, probe_events, sigint, sigterm, sighup } = inputs;
        while !self.bonds.is_empty() {
            // Regular ticks, and earlier wake-ups for probes and silence deadlines.
            let now = sys::monotonic_ns();
            let due = self.bonds.iter().filter_map(|b| b.next_deadline(now)).fold(next_tick, u64::min);
            let wait = Duration::from_nanos(due.saturating_sub(now));
            tokio::select! {
                // Probe replies first: one that is waiting must count before a silence deadline.
                biased;
                Some(p) = probe_events.recv() => self.on_probe_events(&p),
                _ = tokio::time::sleep(wait) => {
                    let now = sys::monotonic_ns();
                    if now >= next_tick {
                        // Reloads and new bonds may change it.
                        let period = self.bonds.iter().map(|b| b.tick_interval()).min().unwrap_or(period);
                        next_tick = now + period.as_nanos() as u64;
                    }
                    self.tick(now);
                }
                ev = link_events.next() => match ev {
                    Some(ev) => self.on_link_event(&ev),
                    None => {
                        tracing::error!("the link event subscription ended");
                        break;
                    }
                },
                Some(p) = requests.recv() => {
                    let response = self.request(&p.bond, p.request).await;
                    let _ = p.reply.send(response);
                }
                _ = sighup.recv() => {
                    match self.reload(None).await {
                        Ok(message) => tracing::info!("SIGHUP: {message}"),
                        Err(e) => tracing::error!("SIGHUP: reload failed: {e:#}"),
                    }
                }
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
            }
        }
    }

    fn on_probe_events(&mut self, p: &ProbeEvents) {
        let now = sys::monotonic_ns();
        if let Some(b) = self.bonds.iter_mut().find(|b| b.spec.name == p.bond)
            && let Err(e) = b.on_probe_events(&p.events, now)
        {
            tracing::error!(bond = %b.spec.name, "handling probe replies: {e:#}");
        }
    }

    fn tick(&mut self, now: u64) {
        for b in &mut self.bonds {
            if let Err(e) = b.tick(now) {
                tracing::error!(bond = %b.spec.name, "monitoring: {e:#}");
            }
        }
    }

    fn on_link_event(&mut self, ev: &crate::netdev::LinkEvent) {
        let now = sys::monotonic_ns();
        for b in &mut self.bonds {
            if let Err(e) = b.on_link_event(ev, now) {
                tracing::error!(bond = %b.spec.name, "handling a link event: {e:#}");
            }
        }
    }

    async fn start(&mut self, spec: BondSpec) -> anyhow::Result<()> {
        let bond = Bond::start(&self.nl, spec, &self.config, self.to_daemon.clone(), self.probe_tx.clone()).await?;
        self.bonds.push(bond);
        self.names.send_replace(self.bonds.iter().map(|b| b.spec.name.clone()).collect());
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

    async fn request(&mut self, bond: &str, request: Request) -> Response {
        let Some(i) = self.bonds.iter().position(|b| b.spec.name == bond) else {
            return Response::Error { error: format!("no bond {bond}") };
        };
        let result = match request {
            Request::Down => {
                let b = self.bonds.remove(i);
                self.names.send_replace(self.bonds.iter().map(|b| b.spec.name.clone()).collect());
                b.stop(&self.nl).await;
                Ok(format!("{bond}: removed, members restored"))
            }
            Request::Reload { config } => self.reload(config).await,
            Request::AddLink { link } => match self.holder(&link) {
                Some(other) => Err(anyhow::anyhow!("{link} is a member of bond {other}; remove it there first")),
                None => self.bonds[i].add_member(&self.nl, &link).await,
            },
            Request::RemoveLink { link } => self.bonds[i].remove_member(&self.nl, &link).await,
            other => return self.bonds[i].handle(&self.config, other, sys::monotonic_ns()),
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(e) => Response::Error { error: format!("{e:#}") },
        }
    }

    /// Re-reads the configuration and puts it in force on every bond. Everything is checked
    /// before anything changes: a bad file leaves the running bonds as they are.
    async fn reload(&mut self, path: Option<PathBuf>) -> anyhow::Result<String> {
        let Some(path) = path.or_else(|| self.source.clone()) else {
            bail!("this daemon was started from the command line: name the file to load (`bondctl reload BOND --config FILE`)");
        };
        let new = config::load(&path)?;
        let mut plan = Vec::new();
        for (i, b) in self.bonds.iter().enumerate() {
            let spec = new.bond(&b.spec.name).with_context(|| {
                format!("{}: bond {} runs but is not in the file; `bondctl down {}` removes it", path.display(), b.spec.name, b.spec.name)
            })?;
            b.check_reconfigure(&self.nl, spec, &new).await.with_context(|| path.display().to_string())?;
            if let Some((l, other)) = spec.links.iter().find_map(|l| self.holder(l).filter(|o| *o != spec.name).map(|o| (l, o))) {
                bail!(
                    "{}: {l} moves from bond {other} to bond {}: remove it from {other} in one reload, add it in the next",
                    path.display(),
                    spec.name
                );
            }
            plan.push((i, spec.clone()));
        }
        // Checked: from here a failure (netlink, a map write) leaves what was applied so far.
        self.config = new.clone();
        let mut report: Vec<String> = new.warnings.iter().map(|w| format!("warning: {w}")).collect();
        for (i, spec) in plan {
            let changes = self.bonds[i]
                .reconfigure(&self.nl, &spec, &new)
                .await
                .with_context(|| format!("{}: partly applied ({}: {})", path.display(), spec.name, report.join("; ")))?;
            let changes = if changes.is_empty() { "unchanged".to_string() } else { changes.join("; ") };
            report.push(format!("{}: {changes}", spec.name));
        }
        let running: Vec<String> = self.bonds.iter().map(|b| b.spec.name.clone()).collect();
        let added: Vec<BondSpec> = match &self.only {
            Some(_) => Vec::new(),
            None => self.config.bonds.iter().filter(|b| !running.contains(&b.name)).cloned().collect(),
        };
        for spec in added {
            let name = spec.name.clone();
            self.start(spec).await?;
            report.push(format!("{name}: started"));
        }
        self.source = Some(path.clone());
        Ok(format!("{} loaded\n{}", path.display(), report.join("\n")))
    }
}
