//! `bondctl up`: brings bonds up and runs them until SIGINT or SIGTERM.
//!
//! One task owns every bond's state. Link events (rtnetlink) and control requests arrive as
//! messages, so there are no locks. A member losing carrier is excluded with one map write as
//! soon as the event arrives; the configuration (active member, allocation) follows.

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

use anyhow::{Context, bail};
use bond_common::config::{BUCKETS, Mode, NO_MEMBER};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
    task::JoinHandle,
};

use crate::{
    carrier::CarrierProbe,
    config::{BondSpec, Config, PolicySpec, model::check_policy_links},
    control::{self, Pending, Request, Response},
    dataplane::{self, Dataplane},
    netdev::{self, Link, LinkEvent, LinkEvents, Netdev},
    plan::{self, MemberView},
    status::{BondCounters, BondStatus, MemberStatus, PolicyStatus},
    sys,
};

/// Events kept for `bondctl status`.
const EVENT_HISTORY: usize = 32;
/// How often members' carrier is read directly (see `carrier`): the bound on how long a lost
/// carrier goes unnoticed when the kernel's notification is delayed.
const CARRIER_POLL: Duration = Duration::from_millis(5);

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
    let mut events = LinkEvents::subscribe()?;
    let (to_daemon, mut requests) = mpsc::channel::<Pending>(16);
    let probe = CarrierProbe::new().context("opening a socket for carrier polling")?;
    let mut poll = tokio::time::interval(CARRIER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let mut bonds: Vec<Bond> = Vec::new();
    for spec in specs {
        match Bond::start(&nl, spec, &config, to_daemon.clone()).await {
            Ok(b) => bonds.push(b),
            Err(e) => {
                for b in bonds {
                    b.stop(&nl).await;
                }
                return Err(e);
            }
        }
    }
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tracing::info!("running {} bond(s); SIGINT or SIGTERM removes them", bonds.len());
    loop {
        tokio::select! {
            _ = poll.tick() => {
                for b in &mut bonds {
                    if let Err(e) = b.poll_carrier(&probe) {
                        tracing::error!(bond = %b.spec.name, "polling carrier: {e:#}");
                    }
                }
            }
            ev = events.next() => match ev {
                Some(ev) => {
                    for b in &mut bonds {
                        if let Err(e) = b.on_link_event(&ev, &probe) {
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

/// A member's settings before it joined, restored when it leaves.
#[derive(Debug, Clone)]
struct Saved {
    mac: [u8; 6],
    admin_up: bool,
    ipv6_disabled: Option<bool>,
}

struct Member {
    name: String,
    slot: u8,
    link: Link,
    link_failures: u32,
    saved: Option<Saved>,
}

/// One running bond.
struct Bond {
    spec: BondSpec,
    policy: PolicySpec,
    device: Option<Link>,
    members: Vec<Member>,
    dataplane: Option<Dataplane>,
    active: Option<u8>,
    buckets: [u8; BUCKETS],
    generation: u64,
    events: VecDeque<String>,
    control: Option<JoinHandle<()>>,
}

impl Bond {
    async fn start(nl: &Netdev, spec: BondSpec, config: &Config, to_daemon: mpsc::Sender<Pending>) -> anyhow::Result<Bond> {
        let policy = config.policy(&spec.policy).cloned().with_context(|| format!("no policy {}", spec.policy))?;
        let mut bond = Bond {
            spec,
            policy,
            device: None,
            members: Vec::new(),
            dataplane: None,
            active: None,
            buckets: [NO_MEMBER; BUCKETS],
            generation: 0,
            events: VecDeque::new(),
            control: None,
        };
        let name = bond.spec.name.clone();
        match bond.setup(nl, to_daemon).await {
            Ok(()) => {
                tracing::info!(bond = %name, "up: policy {}, members {}", bond.policy.name, bond.spec.links.join(", "));
                Ok(bond)
            }
            Err(e) => {
                bond.stop(nl).await;
                Err(e.context(format!("bringing up bond {name}")))
            }
        }
    }

    /// Each step records what it changed, so `stop` can undo a partial setup.
    async fn setup(&mut self, nl: &Netdev, to_daemon: mpsc::Sender<Pending>) -> anyhow::Result<()> {
        let name = self.spec.name.clone();
        // Claiming the control socket first also tells us whether another daemon runs it.
        self.control = Some(control::serve(&name, to_daemon)?);

        let mut links = Vec::new();
        for l in &self.spec.links {
            let link = nl.require_link(l).await.with_context(|| format!("member {l}"))?;
            netdev::check_member(&link, &name)?;
            links.push(link);
        }
        // Left behind by a daemon that was killed: its data plane is removed and rebuilt.
        dataplane::remove_pins(&sys::pin_dir(&name))?;
        // The bond takes its first member's address, as bonding does; members take the bond's.
        let mac = links[0].mac;
        let mtu = links.iter().map(|l| l.mtu).min().unwrap_or(1500);
        match nl.link(&name).await? {
            Some(l) if netdev::is_bond_device(&l) => {
                self.device = Some(l.clone());
                if l.mac != mac {
                    nl.delete(l.index).await?;
                    self.device = None;
                }
            }
            Some(l) => bail!("an interface named {name} exists and is not a bond device ({})", l.kind.as_deref().unwrap_or("physical")),
            None => {}
        }
        if self.device.is_none() {
            self.device = Some(nl.create_bond_device(&name, mac, mtu).await?);
        }
        for (slot, link) in links.into_iter().enumerate() {
            let saved = Saved { mac: link.mac, admin_up: link.admin_up, ipv6_disabled: sys::ipv6_disabled(&link.name) };
            self.members.push(Member { name: link.name.clone(), slot: slot as u8, link: link.clone(), link_failures: 0, saved: Some(saved) });
            // Members' own IPv6 (link-local, ND) would bypass the bond.
            if sys::ipv6_disabled(&link.name) == Some(false) {
                sys::set_ipv6_disabled(&link.name, true)?;
            }
            nl.set_mac(&link, mac).await?;
            nl.set_up(&link, true).await?;
        }

        let mut dp = Dataplane::load(&sys::pin_dir(&name))?;
        for m in &mut self.members {
            m.link = nl.require_link(&m.name).await?;
        }
        self.device = Some(nl.require_link(&name).await?);
        self.active = plan::choose_active(&self.policy, &self.views(), None);
        dp.maps.set_usable(plan::usable_mask(&self.views()))?;
        self.dataplane = Some(dp);
        self.write_config()?;
        let dp = self.dataplane.as_mut().expect("set above");
        for m in &self.members {
            dp.attach_ingress(&m.name)?;
        }
        dp.attach_egress(&name)?;

        let device = nl.require_link(&name).await?;
        nl.set_up(&device, true).await?;
        for (addr, prefix) in &self.spec.addresses {
            nl.add_address(&device, *addr, *prefix).await?;
        }
        self.device = Some(nl.require_link(&name).await?);
        self.event(format!("bond up with policy {}", self.policy.name));
        Ok(())
    }

    /// Removes the bond and gives members back their settings. Never fails: problems are
    /// logged and the rest is still undone.
    async fn stop(mut self, nl: &Netdev) {
        let name = self.spec.name.clone();
        let warn = |what: &str, e: anyhow::Error| tracing::warn!(bond = %name, "{what}: {e:#}");
        if let Some(c) = self.control.take() {
            c.abort();
        }
        match self.dataplane.take() {
            Some(dp) => {
                if let Err(e) = dp.remove() {
                    warn("removing the data plane", e);
                }
            }
            None => {
                if self.device.is_some()
                    && let Err(e) = dataplane::remove_pins(&sys::pin_dir(&name))
                {
                    warn("removing pins", e);
                }
            }
        }
        if let Some(d) = self.device.take()
            && let Err(e) = nl.delete(d.index).await
        {
            warn("deleting the bond device", e);
        }
        for m in self.members.iter().rev() {
            let Some(saved) = &m.saved else { continue };
            let Ok(Some(link)) = nl.link(&m.name).await else { continue };
            if let Err(e) = nl.set_mac(&link, saved.mac).await {
                warn("restoring a member's MAC", e);
            }
            if !saved.admin_up
                && let Err(e) = nl.set_up(&link, false).await
            {
                warn("restoring a member's link state", e);
            }
            if let Some(v) = saved.ipv6_disabled
                && let Err(e) = sys::set_ipv6_disabled(&m.name, v)
            {
                warn("restoring a member's IPv6 setting", e);
            }
        }
        tracing::info!(bond = %name, "removed");
    }

    fn views(&self) -> Vec<MemberView> {
        self.members
            .iter()
            .map(|m| MemberView { name: m.name.clone(), slot: m.slot, ifindex: m.link.index, usable: m.link.usable() })
            .collect()
    }

    fn dataplane(&mut self) -> anyhow::Result<&mut Dataplane> {
        self.dataplane.as_mut().context("the data plane is not loaded")
    }

    /// Recomputes the configuration and puts it in force.
    fn write_config(&mut self) -> anyhow::Result<()> {
        let views = self.views();
        let policy = plan::policy_config(&self.policy, &views, self.active, &self.buckets);
        self.buckets = policy.buckets;
        self.generation += 1;
        let ifindex = self.device.as_ref().map_or(0, |d| d.index);
        let cfg = plan::bond_config(ifindex, &views, policy, self.generation);
        self.dataplane()?.maps.write_config(&cfg)
    }

    fn event(&mut self, what: String) {
        tracing::info!(bond = %self.spec.name, "{what}");
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.events.push_back(format!("[{secs:.3}] {what}"));
        while self.events.len() > EVENT_HISTORY {
            self.events.pop_front();
        }
    }

    /// A change from rtnetlink. The carrier is read from the device again: linkwatch may have
    /// generated the message well after the change, and the poll may know better already.
    fn on_link_event(&mut self, ev: &LinkEvent, probe: &CarrierProbe) -> anyhow::Result<()> {
        let (index, new) = match ev {
            LinkEvent::Changed(l) => {
                let mut l = l.clone();
                if let Ok(c) = probe.carrier(&l.name) {
                    l.carrier = c;
                }
                (l.index, Some(l))
            }
            LinkEvent::Removed { index, .. } => (*index, None),
        };
        let Some(i) = self.members.iter().position(|m| m.link.index == index) else {
            if self.device.as_ref().is_some_and(|d| d.index == index) && new.is_none() {
                self.event("the bond device was deleted from outside; traffic stops".into());
            }
            return Ok(());
        };
        self.update_member(i, new.as_ref())
    }

    /// Reads every member's carrier; acts on changes.
    fn poll_carrier(&mut self, probe: &CarrierProbe) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            let m = &self.members[i];
            // Devices that cannot answer are followed through rtnetlink alone.
            let Ok(carrier) = probe.carrier(&m.name) else { continue };
            if carrier != m.link.carrier {
                let mut l = m.link.clone();
                l.carrier = carrier;
                self.update_member(i, Some(&l))?;
            }
        }
        Ok(())
    }

    /// Applies a member's new state (`None`: removed): the usable mask at once, then the
    /// configuration.
    fn update_member(&mut self, i: usize, new: Option<&Link>) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let was = m.link.usable();
        match new {
            Some(l) => m.link = l.clone(),
            None => {
                m.link.admin_up = false;
                m.link.carrier = false;
            }
        }
        let now = m.link.usable();
        if was == now {
            return Ok(());
        }
        let what = match (now, new) {
            (true, _) => format!("{} is up", m.name),
            (false, None) => format!("{} was removed", m.name),
            (false, Some(l)) if !l.admin_up => format!("{} was set down", m.name),
            (false, Some(_)) => format!("{} lost carrier", m.name),
        };
        if !now {
            m.link_failures += 1;
        }
        // The fast path: one write, and the kernel re-selects from the next packet on.
        let mask = plan::usable_mask(&self.views());
        self.dataplane()?.maps.set_usable(mask)?;
        self.event(what);
        let before = self.active;
        self.active = plan::choose_active(&self.policy, &self.views(), self.active);
        if before != self.active && matches!(self.policy.mode, Mode::ActiveBackup | Mode::None) {
            let name = |s: Option<u8>| s.and_then(|s| self.members.get(usize::from(s))).map_or("none".into(), |m| m.name.clone());
            self.event(format!("active member {} -> {}", name(before), name(self.active)));
        }
        self.write_config()
    }

    fn handle(&mut self, config: &Config, req: Request) -> Response {
        let result = match req {
            Request::Status => return self.status().map_or_else(|e| Response::Error { error: format!("{e:#}") }, |s| Response::Status { status: Box::new(s) }),
            Request::SetPolicy { policy } => self.set_policy(config, &policy),
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(e) => Response::Error { error: format!("{e:#}") },
        }
    }

    fn set_policy(&mut self, config: &Config, name: &str) -> anyhow::Result<String> {
        let Some(policy) = config.policy(name) else {
            bail!("unknown policy \"{name}\" (known: {})", config.policies.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        check_policy_links(std::path::Path::new("(config)"), &format!("settings.policies.{name}"), policy, &self.spec.links)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.reason))?;
        let old = std::mem::replace(&mut self.policy, policy.clone());
        self.active = plan::choose_active(&self.policy, &self.views(), self.active);
        if let Err(e) = self.write_config() {
            self.policy = old;
            return Err(e);
        }
        self.event(format!("policy {} -> {}", old.name, self.policy.name));
        Ok(format!("{}: policy {}", self.spec.name, self.policy.name))
    }

    fn status(&self) -> anyhow::Result<BondStatus> {
        let dp = self.dataplane.as_ref().context("the data plane is not loaded")?;
        let cfg = dp.maps.config()?;
        let bs = dp.maps.bond_stats()?;
        let aware = self.policy.mode == Mode::BalanceAware;
        let has_active = matches!(self.policy.mode, Mode::ActiveBackup | Mode::None);
        let mut members = Vec::new();
        for m in &self.members {
            let s = dp.maps.member_stats(m.slot)?;
            let usable = m.link.usable();
            members.push(MemberStatus {
                name: m.name.clone(),
                slot: m.slot,
                ifindex: m.link.index,
                state: if usable { "up" } else { "down" }.into(),
                carrier: m.link.carrier,
                admin_up: m.link.admin_up,
                usable,
                active: has_active && self.active == Some(m.slot),
                link_failures: m.link_failures,
                perm_mac: sys::format_mac(&m.link.perm_mac.or(m.saved.as_ref().map(|s| s.mac)).unwrap_or(m.link.mac)),
                allocation: aware.then(|| cfg.policies[0].buckets.iter().filter(|&&b| b == m.slot).count() as f64 / BUCKETS as f64),
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
                tx_errors: s.tx_errors,
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                rx_dropped: s.rx_dropped,
            });
        }
        let device = self.device.as_ref().context("no bond device")?;
        Ok(BondStatus {
            name: self.spec.name.clone(),
            ifindex: device.index,
            mac: sys::format_mac(&device.mac),
            policy: PolicyStatus {
                name: self.policy.name.clone(),
                mode: self.policy.mode.name().into(),
                xmit_hash_policy: self.policy.xmit_hash.name().into(),
                packets_per_link: self.policy.packets_per_link,
                balance_policy: self.policy.balance.name().into(),
            },
            active: has_active.then(|| self.active.and_then(|s| self.members.get(usize::from(s))).map(|m| m.name.clone())).flatten(),
            generation: cfg.generation,
            members,
            counters: BondCounters {
                tx_no_member: bs.tx_no_member,
                tx_no_config: bs.tx_no_config,
                tx_unparsed: bs.tx_unparsed,
                tx_broadcast_copies: bs.tx_broadcast_copies,
                rx_not_member: bs.rx_not_member,
                rx_slow_protocol: bs.rx_slow_protocol,
                flows: dp.maps.flows().len() as u64,
            },
            events: self.events.iter().cloned().collect(),
        })
    }
}
