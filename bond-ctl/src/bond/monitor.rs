//! A bond's monitoring: carrier polling, peer probes, the ARP / NS monitor, and what follows from
//! them (health, punishment, quality, allocation, rebalancing, flow expiry). The decisions are
//! the pure functions of [`crate::health`]; this is where measurements go in and actions come out.

use std::{net::IpAddr, time::Duration};

use aya::maps::{MapData, RingBuf};
use bond_common::{
    config::{BUCKETS, Balance, Mode},
    probe::{self, ETH_P_PROBE, FLAG_CORRUPT, ProbeEvent},
};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};

use super::{Bond, BondIo, Port};
use crate::{
    config::model::MonitorStrategy,
    frames,
    health::{
        liveness::{self, Timing},
        metrics::{MS, Nanos},
        quality, rebalance,
    },
    netdev::{Link, LinkEvent},
    plan,
    status::EventKind,
};

/// Probe outcomes a link needs before its quality is judged (half the window): a loss among a
/// handful of probes says little.
const MIN_JUDGED: usize = crate::health::metrics::WINDOW / 2;

/// Probe replies of one bond, read from its ring buffer.
pub struct ProbeEvents {
    pub bond: String,
    pub events: Vec<ProbeEvent>,
}

/// Reads `probe_events` as replies arrive and forwards them to the daemon.
pub fn read_probe_events(bond: String, rb: RingBuf<MapData>, tx: mpsc::Sender<ProbeEvents>) -> anyhow::Result<JoinHandle<()>> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
    // the AsyncFd owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(rb, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("watching the probe event ring buffer: {e}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            // Readiness is cleared before draining: a record that lands after the drain then
            // wakes us again. (Cleared after, its wakeup could be lost, and the ring buffer only
            // notifies again once it has been emptied.)
            guard.clear_ready();
            let rb = guard.get_inner_mut();
            let mut events = Vec::new();
            while let Some(item) = rb.next() {
                if item.len() >= std::mem::size_of::<ProbeEvent>() {
                    // SAFETY: `item` holds at least size_of::<ProbeEvent>() bytes (checked just
                    // above), any bytes are a valid ProbeEvent (integers only, aya::Pod), and
                    // read_unaligned needs no alignment.
                    events.push(unsafe { (item.as_ptr() as *const ProbeEvent).read_unaligned() });
                }
            }
            if !events.is_empty() && tx.send(ProbeEvents { bond: bond.clone(), events }).await.is_err() {
                return;
            }
        }
    }))
}

/// When things are next due.
pub(super) struct State {
    next_carrier: Nanos,
    next_arp: Nanos,
    next_quality: Nanos,
    next_rebalance: Nanos,
    next_expiry: Nanos,
    /// The ARP monitor gives members the benefit of the doubt for a window from here.
    arp_epoch: Nanos,
    /// ARP / NS rounds sent so far.
    arp_rounds: u64,
    /// Since when the far end answers probes (on some member): from then on, silence on a
    /// member means it failed.
    peer_probes_since: Option<Nanos>,
    bucket_totals: Option<[u64; BUCKETS]>,
    bucket_load: [f64; BUCKETS],
    /// The members' standing changed but writing the usable mask failed: written again at the
    /// next tick (the data plane would otherwise keep sending on a failed member).
    usable_unwritten: bool,
    /// Whether the bond device was last made RUNNING (None: not yet set).
    running: Option<bool>,
}

impl State {
    pub(super) fn new(now: Nanos) -> State {
        State {
            next_carrier: now,
            next_arp: now,
            next_quality: now,
            next_rebalance: now,
            next_expiry: now,
            arp_epoch: now,
            arp_rounds: 0,
            peer_probes_since: None,
            bucket_totals: None,
            bucket_load: [0.0; BUCKETS],
            usable_unwritten: false,
            running: None,
        }
    }
}

fn clamp_ms(ms: u64, lo: u64, hi: u64) -> Nanos {
    ms.clamp(lo, hi) * MS
}

impl<I: BondIo> Bond<I> {
    /// How often `tick` must run: carrier polling and ARP rounds (probes and silence deadlines
    /// wake the daemon by themselves, see `next_deadline`; delays are checked every tick).
    pub fn tick_interval(&self) -> Duration {
        let m = &self.spec.monitor;
        let carrier = if m.miimon > 0 { m.miimon } else { 50 };
        let arp = m.arp.as_ref().map_or(50, |a| a.interval);
        Duration::from_millis(carrier.min(arp).clamp(1, 50))
    }

    /// The earliest moment something is due before the next regular tick: a probe to send, or
    /// a link's silence reaching its failover interval. The daemon wakes then, so a silent link
    /// is declared failed on time rather than up to a tick late.
    pub fn next_deadline(&self, now: Nanos) -> Option<Nanos> {
        let lacp = self.lacp_deadline().filter(|&t| t > now);
        if self.policy.monitor == MonitorStrategy::Passive || !self.io.can_send(Port::Bond) {
            return lacp;
        }
        let peer = self.monitor.peer_probes_since;
        self.members
            .iter()
            .filter(|m| m.link.usable())
            .flat_map(|m| {
                let fi = self.policy.link_timing(&m.name).0 * MS;
                let silent = m.alive_at(self.policy.monitor, peer).filter(|_| m.liveness.up()).map(|t| t + fi + 1);
                [Some(m.next_probe(fi)), silent]
            })
            .flatten()
            .chain(lacp)
            // What is already past is handled by the regular tick (e.g. during a downDelay).
            .filter(|&t| t > now)
            .min()
    }

    /// Periodic work.
    pub fn tick(&mut self, now: Nanos) -> anyhow::Result<()> {
        if self.monitor.usable_unwritten {
            self.write_usable()?;
        }
        let miimon = self.spec.monitor.miimon;
        if miimon > 0 && now >= self.monitor.next_carrier {
            self.monitor.next_carrier = now + miimon * MS;
            self.poll_carrier(now);
        }
        self.read_rx_counters(now)?;
        self.announce_due(now);
        self.own_macs_tick(now);
        self.lacp_tick(now);
        self.send_probes(now);
        for m in &mut self.members {
            m.probes.expire(now, self.policy.link_timing(&m.name).0 * MS);
        }
        if let Some(arp) = &self.spec.monitor.arp {
            if now >= self.monitor.next_arp {
                if self.monitor.arp_rounds == 0 {
                    // The benefit of the doubt runs from the first request, not from start-up.
                    self.monitor.arp_epoch = now;
                }
                self.monitor.arp_rounds += 1;
                // On a fixed schedule: rounds do not drift later tick by tick.
                self.monitor.next_arp = (self.monitor.next_arp + arp.interval * MS).max(now);
                self.arp_round();
            }
            // Replies are judged as they arrive, not a round late.
            for m in &mut self.members {
                m.seen = self.io.member_seen(m.slot)?;
            }
        }
        self.evaluate(now)?;
        if now >= self.monitor.next_quality {
            self.monitor.next_quality = now + clamp_ms(2 * self.policy.failover_interval, 100, 10_000);
            self.quality_round(now)?;
        }
        if now >= self.monitor.next_rebalance {
            self.monitor.next_rebalance = now + clamp_ms(2 * self.policy.failover_interval, 1_000, 10_000);
            self.rebalance_round()?;
        }
        if now >= self.monitor.next_expiry {
            self.monitor.next_expiry = now + clamp_ms(self.policy.flow_expiry / 4, 1_000, 10_000);
            // Off the timing path: a walk of the whole table (see `crate::flows`).
            self.io.expire_flows(&self.spec.name, now.saturating_sub(self.policy.flow_expiry * MS));
        }
        Ok(())
    }

    fn poll_carrier(&mut self, now: Nanos) {
        for i in 0..self.members.len() {
            // Devices that cannot answer are followed through rtnetlink alone.
            let Ok(carrier) = self.io.carrier(&self.members[i].name) else { continue };
            if carrier != self.members[i].link.carrier {
                let mut l = self.members[i].link.clone();
                l.carrier = carrier;
                self.set_device(i, Some(l), now);
            }
        }
    }

    /// A member's device state changed (None: removed).
    fn set_device(&mut self, i: usize, link: Option<Link>, now: Nanos) {
        let m = &mut self.members[i];
        let was_up = m.link.usable();
        match link {
            Some(l) => m.link = l,
            None => {
                m.link.admin_up = false;
                m.link.carrier = false;
            }
        }
        if !was_up && m.link.usable() {
            // Back: probes get a failover interval to prove it before silence counts.
            m.probe_epoch = now;
        }
    }

    /// A change from rtnetlink. The carrier is read from the device again: linkwatch may have
    /// generated the message well after the change, and the poll may know better already.
    pub fn on_link_event(&mut self, ev: &LinkEvent, now: Nanos) -> anyhow::Result<()> {
        let (index, link) = match ev {
            LinkEvent::Changed(l) => {
                let mut l = l.clone();
                if let Ok(c) = self.io.carrier(&l.name) {
                    l.carrier = c;
                }
                (l.index, Some(l))
            }
            LinkEvent::Removed { index, .. } => (*index, None),
        };
        let Some(i) = self.members.iter().position(|m| m.link.index == index) else {
            if self.device.as_ref().is_some_and(|d| d.index == index) {
                match link {
                    None => self.event(EventKind::Warning, "the bond device was deleted from outside; traffic stops".into()),
                    Some(l) => self.bond_device_changed(l),
                }
            }
            return Ok(());
        };
        self.set_device(i, link, now);
        self.evaluate(now)
    }

    /// The bond device changed (`ip link set BOND ...`): a new MTU goes to every member, or,
    /// when a member refuses it, the bond gets its old MTU back and every member too.
    fn bond_device_changed(&mut self, l: Link) {
        let Some(old) = self.device.as_ref().map(|d| d.mtu) else { return };
        let name = l.name.clone();
        self.device = Some(l.clone());
        if l.mtu == old {
            return;
        }
        match self.set_member_mtus(l.mtu) {
            Ok(()) => self.event(EventKind::Config, format!("MTU {} on every member", l.mtu)),
            Err((member, e)) => {
                let _ = self.set_member_mtus(old);
                let back = self.io.set_mtu(&name, old);
                if back.is_ok()
                    && let Some(d) = self.device.as_mut()
                {
                    d.mtu = old;
                }
                self.event(EventKind::Warning, format!("{member} refused MTU {}: {e}; the bond's MTU is {old} again", l.mtu));
            }
        }
    }

    /// Gives every member MTU `mtu`; the first refusal ends it (member, error).
    pub(super) fn set_member_mtus(&mut self, mtu: u32) -> Result<(), (String, std::io::Error)> {
        for i in 0..self.members.len() {
            if self.members[i].link.mtu == mtu {
                continue;
            }
            let name = self.members[i].name.clone();
            self.io.set_mtu(&name, mtu).map_err(|e| (name, e))?;
            self.members[i].link.mtu = mtu;
        }
        Ok(())
    }

    /// Probe replies from the data plane.
    pub fn on_probe_events(&mut self, events: &[ProbeEvent], now: Nanos) -> anyhow::Result<()> {
        for e in events {
            let Some(m) = self.members.iter_mut().find(|m| m.slot == e.member) else { continue };
            // Stamped by the kernel on arrival (CLOCK_MONOTONIC, as `now`): a reply that arrived
            // before a silence deadline counts even if the daemon reads it after.
            m.probes.replied(e.seq, e.t4.saturating_sub(e.t1), e.flags & FLAG_CORRUPT != 0, e.t4.min(now));
            if self.monitor.peer_probes_since.is_none() && m.probes.peer_seen {
                self.monitor.peer_probes_since = Some(now);
            }
        }
        self.evaluate(now)
    }

    /// Received-packet counters, for the dynamic strategy and the ARP monitor without validation.
    fn read_rx_counters(&mut self, now: Nanos) -> anyhow::Result<()> {
        let needed = self.policy.monitor == MonitorStrategy::Dynamic || self.spec.monitor.arp.is_some();
        if !needed {
            return Ok(());
        }
        for m in &mut self.members {
            let rx = self.io.member_stats(m.slot)?.rx_packets;
            if rx != m.rx_packets {
                m.rx_packets = rx;
                m.last_rx = now;
            }
        }
        Ok(())
    }

    /// Probes every member whose turn it is (see `Member::next_probe`); under the dynamic
    /// strategy only members that received nothing for a third of the failover interval.
    fn send_probes(&mut self, now: Nanos) {
        if self.policy.monitor == MonitorStrategy::Passive {
            return;
        }
        if !self.io.can_send(Port::Bond) {
            return;
        }
        for m in &mut self.members {
            let failover = self.policy.link_timing(&m.name).0 * MS;
            if now < m.next_probe(failover) || !m.link.usable() {
                continue;
            }
            let quiet = now.saturating_sub(m.last_rx) >= failover / 3;
            m.last_probe = now;
            m.probe_outstanding = self.policy.monitor != MonitorStrategy::Dynamic || quiet;
            if !m.probe_outstanding {
                continue;
            }
            m.probe_seq = m.probe_seq.wrapping_add(1);
            let frame = probe::request_frame(self.settings.mac, m.slot, m.probe_seq, self.settings.probe_id);
            if self.io.send(Port::Bond, &frame, ETH_P_PROBE) {
                m.probes.sent(m.probe_seq, now);
            }
        }
    }

    /// One round of the ARP / NS monitor: requests for every target on every member.
    fn arp_round(&mut self) {
        let Some(arp) = self.spec.monitor.arp.clone() else { return };
        let v4 = self.spec.addresses.iter().find_map(|(a, _)| if let IpAddr::V4(a) = a { Some(*a) } else { None });
        let v6 = self.spec.addresses.iter().find_map(|(a, _)| if let IpAddr::V6(a) = a { Some(*a) } else { None });
        let mac = self.settings.mac;
        for port in self.members.iter().map(|m| Port::Member(m.slot)) {
            for t in &arp.ip_targets {
                self.io.send(port, &frames::arp_request(mac, v4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED), *t), 0x0806);
            }
            for t in &arp.ns_targets {
                self.io.send(port, &frames::neighbour_solicitation(mac, &v6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED), t), 0x86dd);
            }
        }
    }

    /// Health of every member from what the monitors say; acts on changes of usability.
    fn evaluate(&mut self, now: Nanos) -> anyhow::Result<()> {
        let mut notes = Vec::new();
        // Every link with carrier silent at once: the peer, or the way to it as a whole, went
        // away (its bondctl stopped, a stall on either host), not each link. Probes stop
        // judging until it answers again, before any link fails for it: the bond does not go
        // dark, even for a moment, while its links work.
        if self.silent_everywhere(now) {
            self.monitor.peer_probes_since = None;
            notes.push((EventKind::Warning, "the peer answers probes on no link: probes stop judging links until it answers again".into()));
        }
        let peer = self.monitor.peer_probes_since;
        let active_role = matches!(self.policy.mode, Mode::ActiveBackup | Mode::None).then_some(self.main.active).flatten();
        for m in &mut self.members {
            let (fi, up, down) = self.policy.link_timing(&m.name);
            let timing = Timing::ms(fi, up, down);
            let arp = self.spec.monitor.arp.as_ref().map(|a| (a, active_role == Some(m.slot), self.monitor.arp_epoch));
            let obs = m.observe(now, self.policy.monitor, peer, arp);
            if let Some(change) = m.liveness.step(now, liveness::verdict(&obs, &timing), &timing) {
                if change.up {
                    m.probes.restart();
                    // Not measured yet: not compared by score until it is (see quality_round).
                    m.judged = false;
                    m.score = 1.0;
                    notes.push((EventKind::Health, format!("{} is healthy ({})", m.name, change.reason)));
                } else {
                    notes.push((EventKind::Health, format!("{} failed: {}", m.name, change.reason)));
                    if m.punishment.failed(now, &self.policy.punishment) {
                        notes.push((
                            EventKind::Punishment,
                            format!("{} punished for flapping: held out {} ms", m.name, m.punishment.remaining_ms()),
                        ));
                    }
                }
            }
            let was_punished = m.punishment.active();
            m.punishment.drain(now, m.liveness.up());
            if was_punished && !m.punishment.active() {
                notes.push((EventKind::Punishment, format!("{} readmitted: its punishment faded", m.name)));
            }
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        let changed = self.apply_usable(now)?;
        self.settle(now, changed)
    }

    /// Whether every member with carrier, each of which the peer once answered on, has been
    /// silent for longer than its failover interval.
    fn silent_everywhere(&self, now: Nanos) -> bool {
        let Some(peer) = self.monitor.peer_probes_since else { return false };
        let mut with_carrier = self.members.iter().filter(|m| m.link.usable()).peekable();
        with_carrier.peek().is_some()
            && with_carrier.all(|m| {
                let fi = self.policy.link_timing(&m.name).0 * MS;
                let silent_since = m.alive_at(self.policy.monitor, Some(peer));
                m.probes.last_reply.is_some() && silent_since.is_some_and(|t| now.saturating_sub(t) > fi)
            })
    }

    /// What follows a change of the members' standing: the active member, the bucket table,
    /// and one config write when anything changed (or `force`).
    pub(super) fn settle(&mut self, now: Nanos, force: bool) -> anyhow::Result<()> {
        let before = self.placement_key();
        self.choose_active(now);
        self.reallocate(false);
        let macs_changed = std::mem::take(&mut self.own.macs_changed);
        if force || macs_changed || before != self.placement_key() {
            self.write_config()?;
        }
        Ok(())
    }

    /// Whether each member may carry traffic: healthy, not punished and within its quality
    /// limits. When no member is all three, the best that is still healthy carry it: a punished
    /// or degraded link is held out only while there is something better. A change is written
    /// to `member_usable` at once; returns whether there was one.
    pub(super) fn apply_usable(&mut self, now: Nanos) -> anyhow::Result<bool> {
        let standings: Vec<plan::Standing> = self
            .members
            .iter()
            .map(|m| plan::Standing { healthy: m.liveness.up(), punished: m.punishment.active(), degraded: !m.violations.is_empty() })
            .collect();
        let mut decisions = plan::usable_tiers(&standings);
        // 802.3ad: only what LACP lets distribute.
        for (d, m) in decisions.iter_mut().zip(&self.members) {
            *d &= self.lacp_allows(m.slot);
        }
        if decisions.iter().zip(&self.members).all(|(d, m)| *d == m.usable) {
            return Ok(false);
        }
        let mut notes = Vec::new();
        // Active-backup and none count their failovers when the active member changes.
        let balanced = !matches!(self.policy.mode, Mode::ActiveBackup | Mode::None);
        for (m, &usable) in self.members.iter_mut().zip(&decisions) {
            if usable != m.usable {
                if !usable {
                    m.link_failures += 1;
                    self.failovers += u64::from(balanced);
                }
                let why = if usable {
                    "usable".to_string()
                } else if m.punishment.active() {
                    format!("not usable: punished, {} ms left", m.punishment.remaining_ms())
                } else if !m.violations.is_empty() {
                    format!("not usable: avoided, {}", m.violations.join(", "))
                } else if m.liveness.up() && self.aggregation.as_ref().is_some() {
                    "not usable: not distributing in the active LACP aggregator".to_string()
                } else {
                    format!("not usable: {}", m.liveness.reason.clone().unwrap_or_default())
                };
                notes.push((EventKind::Usable, format!("{} {why}", m.name)));
                m.usable = usable;
                m.availability.set(now, usable);
            }
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        // The fast path: one write, and the data plane re-selects from the next packet on.
        self.write_usable()?;
        Ok(true)
    }

    /// Writes the usable mask of the members' standing; a failure is retried at the next tick.
    /// The bond device is RUNNING while any member is usable, as bonding's carrier.
    pub(super) fn write_usable(&mut self) -> anyhow::Result<()> {
        let mask = plan::usable_mask(&self.views());
        let written = self.io.set_usable(mask);
        self.monitor.usable_unwritten = written.is_err();
        written?;
        let running = mask != 0;
        if self.monitor.running != Some(running) {
            match self.io.set_running(self.settings.ifindex, running) {
                Ok(()) => {
                    if self.monitor.running.is_some() {
                        let what = if running {
                            "a member carries traffic again: the bond is up"
                        } else {
                            "no member can carry traffic: the bond is down (operstate DORMANT)"
                        };
                        self.event(EventKind::Bond, what.into());
                    }
                    self.monitor.running = Some(running);
                }
                Err(e) => {
                    tracing::warn!(bond = %self.spec.name, "setting the bond's operational state: {e}");
                    // Tried again at the next tick.
                    self.monitor.usable_unwritten = true;
                }
            }
        }
        Ok(())
    }

    /// Scores, limits and what follows: punishment for misbehaving links, active-member
    /// reselection (better / optimize), and the allocation of balance-aware.
    fn quality_round(&mut self, now: Nanos) -> anyhow::Result<()> {
        let peer = self.monitor.peer_probes_since.is_some();
        let mut notes = Vec::new();
        for m in &mut self.members {
            m.metrics = m.probes.metrics(m.availability.share(now));
            // A failed link is out already; its losses while failed say nothing of its quality.
            let judged = peer && m.probes.outcomes() >= MIN_JUDGED && m.liveness.up();
            m.judged = judged;
            m.score = if judged { quality::score(&m.metrics, &self.policy.weights, &self.policy.limits) } else { 1.0 };
            let violations = match (judged, m.liveness.up()) {
                (true, _) => quality::violations(&m.metrics, &self.policy.limits),
                // Failed: its standing is kept until it recovers and is measured afresh.
                (false, false) => m.violations.clone(),
                (false, true) => Vec::new(),
            };
            if !violations.is_empty() && m.violations.is_empty() {
                m.punishment.misbehaved(now, &self.policy.punishment);
                notes.push((
                    EventKind::Quality,
                    format!("{} misbehaves ({}): held out {} ms", m.name, violations.join(", "), m.punishment.remaining_ms()),
                ));
            } else if violations.is_empty() && !m.violations.is_empty() {
                notes.push((EventKind::Quality, format!("{} is within its quality limits again", m.name)));
            }
            m.violations = violations;
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        let changed = self.apply_usable(now)?;
        self.settle(now, changed)
    }

    /// balance-aware flow-dynamic: moves busy buckets to keep the measured split on target.
    fn rebalance_round(&mut self) -> anyhow::Result<()> {
        if !self.policy.uses_buckets() || self.policy.balance != Balance::FlowDynamic {
            return Ok(());
        }
        let totals = self.io.bucket_bytes()?;
        if let Some(prev) = self.monitor.bucket_totals {
            for (b, load) in self.monitor.bucket_load.iter_mut().enumerate() {
                *load = *load * rebalance::DECAY + totals[b].saturating_sub(prev[b]) as f64;
            }
        }
        self.monitor.bucket_totals = Some(totals);
        let total: f64 = self.main.weights.iter().map(|w| w.1).sum();
        if total <= 0.0 {
            return Ok(());
        }
        let targets: Vec<(u8, f64)> = self.main.weights.iter().map(|&(m, w)| (m, w / total)).collect();
        let moves = rebalance::moves(&self.main.buckets, &self.monitor.bucket_load, &targets);
        if moves.is_empty() {
            return Ok(());
        }
        for &(b, to) in &moves {
            self.main.buckets[b] = to;
        }
        self.write_config()?;
        self.event(EventKind::Rebalance, format!("rebalanced: moved {} busy bucket(s) to members below their share", moves.len()));
        Ok(())
    }
}
