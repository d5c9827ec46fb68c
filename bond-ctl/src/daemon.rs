//! `bondctl up`: brings bonds up and runs them until SIGINT or SIGTERM.
//!
//! One task owns every bond's state. Link events (rtnetlink), probe replies (the data plane's
//! ring buffers), control requests and a tick for periodic work arrive as messages, so there
//! are no locks.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    bond::{Bond, ProbeEvents},
    carrier::CarrierProbe,
    config::{BondSpec, Config},
    control::{Pending, Response},
    netdev::{LinkEvents, Netdev},
    sys,
};

/// Runs the bonds of `config` (or only `only`) until SIGINT/SIGTERM, then removes them.
pub async fn run(config: Config, only: Option<&str>) -> anyhow::Result<()> {
    let specs: Vec<BondSpec> = match only {
        Some(name) => vec![config.bond(name).cloned().with_context(|| format!("the configuration has no bond {name}"))?],
        None => config.bonds.clone(),
    };
    if specs.is_empty() {
        bail!("the configuration defines no bonds");
    }
    sys::ensure_bpffs()?;
    let nl = Netdev::connect()?;
    // Subscribe before reading link states, so no change falls between the two.
    let mut link_events = LinkEvents::subscribe()?;
    let (to_daemon, mut requests) = mpsc::channel::<Pending>(16);
    let (probe_tx, mut probe_events) = mpsc::channel::<ProbeEvents>(256);
    let ethtool = CarrierProbe::new().context("opening a socket for carrier polling")?;

    let mut bonds: Vec<Bond> = Vec::new();
    for spec in specs {
        match Bond::start(&nl, spec, &config, to_daemon.clone(), probe_tx.clone(), &ethtool).await {
            Ok(b) => bonds.push(b),
            Err(e) => {
                for b in bonds {
                    b.stop(&nl).await;
                }
                return Err(e);
            }
        }
    }
    let period = bonds.iter().map(Bond::tick_interval).min().unwrap_or_default();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tracing::info!("running {} bond(s), monitoring every {period:?}; SIGINT or SIGTERM removes them", bonds.len());
    let mut next_tick = sys::monotonic_ns();
    loop {
        // Regular ticks, and earlier wake-ups for probes and silence deadlines.
        let now = sys::monotonic_ns();
        let due = bonds.iter().filter_map(|b| b.next_deadline(now)).fold(next_tick, u64::min);
        let wait = Duration::from_nanos(due.saturating_sub(now));
        tokio::select! {
            // Probe replies first: one that is waiting must count before a silence deadline.
            biased;
            Some(p) = probe_events.recv() => {
                let now = sys::monotonic_ns();
                if let Some(b) = bonds.iter_mut().find(|b| b.spec.name == p.bond)
                    && let Err(e) = b.on_probe_events(&p.events, now)
                {
                    tracing::error!(bond = %b.spec.name, "handling probe replies: {e:#}");
                }
            }
            _ = tokio::time::sleep(wait) => {
                let now = sys::monotonic_ns();
                if now >= next_tick {
                    next_tick = now + period.as_nanos() as u64;
                }
                let now = sys::monotonic_ns();
                for b in &mut bonds {
                    if let Err(e) = b.tick(now, &ethtool) {
                        tracing::error!(bond = %b.spec.name, "monitoring: {e:#}");
                    }
                }
            }
            ev = link_events.next() => match ev {
                Some(ev) => {
                    for b in &mut bonds {
                        if let Err(e) = b.on_link_event(&ev, &ethtool) {
                            tracing::error!(bond = %b.spec.name, "handling a link event: {e:#}");
                        }
                    }
                }
                None => {
                    tracing::error!("the link event subscription ended");
                    break;
                }
            },
            Some(p) = requests.recv() => {
                let response = match bonds.iter_mut().find(|b| b.spec.name == p.bond) {
                    Some(b) => b.handle(&config, p.request),
                    None => Response::Error { error: format!("no bond {}", p.bond) },
                };
                let _ = p.reply.send(response);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    tracing::info!("removing bonds");
    for b in bonds {
        b.stop(&nl).await;
    }
    Ok(())
}
