//! Operations that change members and bonds (`add-link`, `remove-link`, `reload` and SIGHUP,
//! `down`), run beside the daemon's loop so that probes and failovers never wait for them.
//!
//! Each operation is a future the loop polls among its other inputs, one operation at a time.
//! What needs the bonds' state runs on the loop as short steps ([`OnLoop::run`]); what waits
//! (netlink, the grace period after a member leaves the config in force) runs in between,
//! while the loop goes on ticking. A member on its way in or out is recorded in the state file
//! throughout (see `bond::Joining`, `bond::Leaving`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::sync::{mpsc, oneshot};

use super::Daemon;
use crate::{
    bond::{self, Bond, Joining, Leaving},
    config::{self, BondSpec, Config},
    control::{Pending, Request, Response},
    netdev::{self, Netdev},
};

/// A step of an operation, run on the loop with the daemon's state.
pub(super) type Step = Box<dyn FnOnce(&mut Daemon)>;

/// How an operation has steps run on the loop.
#[derive(Clone)]
pub(super) struct OnLoop(pub mpsc::UnboundedSender<Step>);

impl OnLoop {
    /// Runs `f` on the loop and returns what it returned.
    async fn run<R: 'static>(&self, f: impl FnOnce(&mut Daemon) -> R + 'static) -> anyhow::Result<R> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Box::new(move |d: &mut Daemon| {
                let _ = tx.send(f(d));
            }))
            .map_err(|_| anyhow::anyhow!("the daemon's loop has stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("the daemon's loop has stopped"))
    }
}

/// What an operation needs besides the loop.
#[derive(Clone)]
pub(super) struct OpContext {
    pub nl: Netdev,
    pub on_loop: OnLoop,
}

/// What waits for its turn to run beside the loop.
pub(super) enum Job {
    Request(Pending),
    /// SIGHUP: reload the file the daemon was started from.
    Sighup,
    /// A member's device was deleted: release it (taken back if it appears again).
    Vanished {
        bond: String,
        member: String,
    },
    /// A device of a vanished member's name appeared: take it back.
    Reappeared {
        bond: String,
        member: String,
    },
    /// The bond device was deleted from outside: the bond stops, its members restored.
    BondGone {
        bond: String,
    },
}

/// What a link event asks of bond `b` beyond its own state: an operation, if any.
pub(super) fn hot_plug(b: &Bond, ev: &netdev::LinkEvent) -> Option<Job> {
    let bond = b.spec.name.clone();
    match ev {
        netdev::LinkEvent::Removed { index, name } => {
            if b.device_index() == Some(*index) {
                return Some(Job::BondGone { bond });
            }
            b.member_index(name).filter(|i| i == index).map(|_| Job::Vanished { bond, member: name.clone() })
        }
        netdev::LinkEvent::Changed(l) => b.wants_back(l).then(|| Job::Reappeared { bond, member: l.name.clone() }),
    }
}

/// Whether `request` is an operation (run beside the loop, one at a time); other requests are
/// answered at once from the bonds' state.
pub(super) fn is_operation(request: &Request) -> bool {
    matches!(request, Request::Down | Request::Reload { .. } | Request::AddLink { .. } | Request::RemoveLink { .. })
}

/// Runs `job` to its end and answers it.
pub(super) async fn run(ctx: OpContext, job: Job) {
    match job {
        Job::Sighup => match reload(&ctx, None).await {
            Ok(message) => tracing::info!("SIGHUP: {message}"),
            Err(e) => tracing::error!("SIGHUP: reload failed: {e:#}"),
        },
        Job::Vanished { bond, member } => {
            let m = member.clone();
            if let Err(e) = on_bond(&ctx, &bond, move |b| b.release_vanished(&m)).await {
                tracing::warn!(bond = %bond, "{member} vanished: {e:#}");
            }
        }
        Job::Reappeared { bond, member } => {
            if let Err(e) = retake(&ctx, &bond, &member).await {
                let what = format!("{member} appeared again but could not be taken back: {e:#}");
                let _ = on_bond(&ctx, &bond, move |b| {
                    b.note_warning(what);
                    Ok(())
                })
                .await;
            }
        }
        Job::BondGone { bond } => {
            tracing::error!(bond = %bond, "the bond device was deleted from outside: the bond stops and its members get their settings back");
            let b = bond.clone();
            let _ = ctx.on_loop.run(move |d| d.lost.push(b)).await;
            if let Err(e) = down(&ctx, &bond).await {
                tracing::warn!(bond = %bond, "stopping after its device was deleted: {e:#}");
            }
        }
        Job::Request(p) => {
            let result = match p.request {
                Request::Down => down(&ctx, &p.bond).await,
                Request::Reload { config } => reload(&ctx, config).await,
                Request::AddLink { link } => add_link(&ctx, &p.bond, &link).await,
                Request::RemoveLink { link } => remove_link(&ctx, &p.bond, &link).await,
                other => Err(anyhow::anyhow!("{other:?} is not an operation")),
            };
            let response = match result {
                Ok(message) => Response::Done { message },
                Err(e) => Response::Error { error: format!("{e:#}") },
            };
            let _ = p.reply.send(response);
        }
    }
}

async fn down(ctx: &OpContext, bond: &str) -> anyhow::Result<String> {
    let name = bond.to_string();
    let b = ctx.on_loop.run(move |d| d.take_bond(&name)).await??;
    b.stop(&ctx.nl).await;
    Ok(format!("{bond}: removed, members restored"))
}

async fn add_link(ctx: &OpContext, bond: &str, link: &str) -> anyhow::Result<String> {
    let (b, l) = (bond.to_string(), link.to_string());
    ctx.on_loop
        .run(move |d| {
            d.bond_mut(&b)?;
            match d.holder(&l) {
                Some(other) => bail!("{l} is a member of bond {other}; remove it there first"),
                None => Ok(()),
            }
        })
        .await??;
    join(ctx, bond, link).await
}

/// Takes `link` into `bond`: its slot and settings recorded (on the loop), its device
/// prepared (beside it), then admitted (on the loop). A failure gives the device its settings
/// back.
async fn join(ctx: &OpContext, bond: &str, link: &str) -> anyhow::Result<String> {
    let device = ctx.nl.require_link(link).await.with_context(|| format!("member {link}"))?;
    let joining = on_bond(ctx, bond, move |b| b.reserve_member(device)).await?;
    let prepared = prepare(ctx, bond, &joining).await;
    let j = joining.clone();
    let admitted = on_bond(ctx, bond, move |b| {
        let (link, speed) = prepared?;
        b.admit_member(&j, link, speed)?;
        Ok(b.member_added(&j.name))
    })
    .await;
    if admitted.is_err() {
        give_back(ctx, bond, joining).await;
    }
    admitted
}

/// A joining member's device made a member's, with its receive program, beside the loop:
/// the device as it is now and its speed.
async fn prepare(ctx: &OpContext, bond: &str, joining: &Joining) -> anyhow::Result<(netdev::Link, Option<u32>)> {
    let link = bond::prepare_member(&ctx.nl, joining).await?;
    // Creating a TCX link waits for a grace period in the kernel, and ethtool for the RTNL
    // lock: on a thread of their own.
    let (pin_dir, name) = (crate::sys::pin_dir(bond), joining.name.clone());
    let attached = tokio::task::spawn_blocking(move || {
        crate::dataplane::attach_ingress_pinned(&pin_dir, &name).map(|()| crate::carrier::speed_mbps(&name))
    });
    let speed = attached.await.map_err(|e| anyhow::anyhow!("attaching the receive program: {e}")).and_then(|r| r)?;
    Ok((link, speed))
}

/// Takes back member `member` of `bond`, whose device was deleted, on the device of its name
/// that appeared. A failure leaves it released (its device is given its settings back when it
/// leaves the bond) and is not retried on the same device.
async fn retake(ctx: &OpContext, bond: &str, member: &str) -> anyhow::Result<String> {
    let Some(device) = ctx.nl.link(member).await? else { return Ok(format!("{member} is gone again")) };
    let index = device.index;
    let Some(joining) = on_bond(ctx, bond, move |b| b.begin_retake(device)).await? else {
        return Ok(format!("{member} is back already"));
    };
    let prepared = prepare(ctx, bond, &joining).await;
    let j = joining.clone();
    let readmitted = on_bond(ctx, bond, move |b| {
        let (link, speed) = prepared?;
        b.readmit_member(&j, link, speed)
    })
    .await;
    if readmitted.is_err() {
        let m = member.to_string();
        let _ = on_bond(ctx, bond, move |b| {
            b.detach_joining(&joining);
            b.refuse_retake(&m, index);
            Ok(())
        })
        .await;
    }
    readmitted
}

/// A member that could not be taken gets its settings back and is forgotten.
async fn give_back(ctx: &OpContext, bond: &str, joining: Joining) {
    let j = joining.clone();
    let _ = on_bond(ctx, bond, move |b| {
        b.detach_joining(&j);
        Ok(())
    })
    .await;
    bond::restore(&ctx.nl, bond, &joining.name, joining.saved(), &[]).await;
    let _ = on_bond(ctx, bond, move |b| {
        b.forget_joining(&joining);
        Ok(())
    })
    .await;
}

async fn remove_link(ctx: &OpContext, bond: &str, link: &str) -> anyhow::Result<String> {
    let l = link.to_string();
    let leaving = on_bond(ctx, bond, move |b| b.begin_removal(&l)).await?;
    leave(ctx, bond, leaving).await
}

/// The rest of a removal begun on the loop: the grace period and the settings given back
/// beside it, then the member forgotten.
async fn leave(ctx: &OpContext, bond: &str, leaving: Leaving) -> anyhow::Result<String> {
    bond::wait_for_grace_period().await;
    if let Some(saved) = leaving.saved() {
        bond::restore(&ctx.nl, bond, &leaving.name, saved, &leaving.unicast).await;
    }
    on_bond(ctx, bond, move |b| Ok(b.member_removed(leaving))).await
}

/// Runs `f` on bond `bond` on the loop.
async fn on_bond<R: 'static>(ctx: &OpContext, bond: &str, f: impl FnOnce(&mut Bond) -> anyhow::Result<R> + 'static) -> anyhow::Result<R> {
    let name = bond.to_string();
    ctx.on_loop.run(move |d| f(d.bond_mut(&name)?)).await?
}

/// Re-reads the configuration and puts it in force on every bond. Everything is checked
/// before anything changes: a bad file leaves the running bonds as they are.
async fn reload(ctx: &OpContext, path: Option<PathBuf>) -> anyhow::Result<String> {
    let path = ctx.on_loop.run(move |d| path.or_else(|| d.source.clone())).await?;
    let Some(path) = path else {
        bail!("this daemon was started from the command line: name the file to load (`bondctl reload BOND --config FILE`)");
    };
    let new = config::load(&path)?;
    let (n, p) = (new.clone(), path.clone());
    let plan = ctx.on_loop.run(move |d| d.reload_plan(&n, &p)).await??;
    // The new members' devices, by netlink.
    for (spec, joining) in &plan {
        for l in joining {
            let link = ctx.nl.require_link(l).await.with_context(|| format!("{}: bond {}: member {l}", path.display(), spec.name))?;
            netdev::check_member(&link, &spec.name).with_context(|| path.display().to_string())?;
        }
    }
    // Checked: from here a failure (netlink, a map write) leaves what was applied so far.
    let n = new.clone();
    ctx.on_loop.run(move |d| d.config = n).await?;
    let mut report: Vec<String> = new.warnings.iter().map(|w| format!("warning: {w}")).collect();
    for (spec, _) in plan {
        let changes = reconfigure(ctx, &spec, &new)
            .await
            .with_context(|| format!("{}: partly applied ({}: {})", path.display(), spec.name, report.join("; ")))?;
        let changes = if changes.is_empty() { "unchanged".to_string() } else { changes.join("; ") };
        report.push(format!("{}: {changes}", spec.name));
    }
    let (added, to_daemon, probe_tx) = ctx.on_loop.run(|d| (d.bonds_to_start(), d.to_daemon.clone(), d.probe_tx.clone())).await?;
    for spec in added {
        let name = spec.name.clone();
        let bond = Bond::start(&ctx.nl, spec, &new, to_daemon.clone(), probe_tx.clone()).await?;
        ctx.on_loop.run(move |d| d.add_bond(bond)).await?;
        report.push(format!("{name}: started"));
    }
    let p = path.clone();
    ctx.on_loop.run(move |d| d.source = Some(p)).await?;
    Ok(format!("{} loaded\n{}", path.display(), report.join("\n")))
}

/// Puts `spec` (from `config`) in force on its running bond, change by change, each one
/// hitless: settings, addresses, members joining before others leave, then the policies.
/// Returns what changed.
async fn reconfigure(ctx: &OpContext, spec: &BondSpec, config: &Config) -> anyhow::Result<Vec<String>> {
    let name = spec.name.as_str();
    let s = spec.clone();
    let (mut changes, device, add, del) = on_bond(ctx, name, move |b| b.reconfigure_settings(&s)).await?;
    for (addr, prefix) in add {
        ctx.nl.add_address(&device, addr, prefix).await?;
        changes.push(format!("address {addr}/{prefix} added"));
    }
    for (addr, prefix) in del {
        ctx.nl.del_address(&device, addr, prefix).await?;
        changes.push(format!("address {addr}/{prefix} removed"));
    }
    // Joining first: the bond never runs short of members in between.
    let s = spec.clone();
    for l in on_bond(ctx, name, move |b| Ok(b.joining_links(&s))).await? {
        changes.push(join(ctx, name, &l).await?);
    }
    let s = spec.clone();
    for l in on_bond(ctx, name, move |b| Ok(b.leaving_links(&s))).await? {
        changes.push(remove_link(ctx, name, &l).await?);
    }
    let (s, c) = (spec.clone(), config.clone());
    changes.extend(on_bond(ctx, name, move |b| b.reconfigure_policies(&s, &c)).await?);
    Ok(changes)
}

impl Daemon {
    pub(super) fn bond_mut(&mut self, name: &str) -> anyhow::Result<&mut Bond> {
        self.bonds.iter_mut().find(|b| b.spec.name == name).with_context(|| format!("no bond {name}"))
    }

    /// Takes bond `name` out of the running ones (to be stopped).
    fn take_bond(&mut self, name: &str) -> anyhow::Result<Bond> {
        let i = self.bonds.iter().position(|b| b.spec.name == name).with_context(|| format!("no bond {name}"))?;
        let b = self.bonds.remove(i);
        self.publish_names();
        Ok(b)
    }

    fn add_bond(&mut self, bond: Bond) {
        self.bonds.push(bond);
        self.publish_names();
    }

    /// Checks `new` against the running bonds; for each, its new specification and the links
    /// that would join it (their devices are checked by the caller).
    fn reload_plan(&self, new: &Config, path: &std::path::Path) -> anyhow::Result<Vec<(BondSpec, Vec<String>)>> {
        let mut plan = Vec::new();
        for b in &self.bonds {
            let spec = new.bond(&b.spec.name).with_context(|| {
                format!("{}: bond {} runs but is not in the file; `bondctl down {}` removes it", path.display(), b.spec.name, b.spec.name)
            })?;
            b.check_reconfigure(spec, new).with_context(|| path.display().to_string())?;
            if let Some((l, other)) = spec.links.iter().find_map(|l| self.holder(l).filter(|o| *o != spec.name).map(|o| (l, o))) {
                bail!(
                    "{}: {l} moves from bond {other} to bond {}: remove it from {other} in one reload, add it in the next",
                    path.display(),
                    spec.name
                );
            }
            plan.push((spec.clone(), b.joining_links(spec)));
        }
        Ok(plan)
    }

    /// Bonds of the configuration that do not run yet (none when the daemon runs one bond).
    fn bonds_to_start(&self) -> Vec<BondSpec> {
        match &self.only {
            Some(_) => Vec::new(),
            None => self.config.bonds.iter().filter(|s| self.bonds.iter().all(|b| b.spec.name != s.name)).cloned().collect(),
        }
    }
}
