//! A bond's monitoring: carrier polling, peer probes, the ARP / NS monitor, and what follows from
//! them (health, punishment, quality, allocation, rebalancing, flow expiry); what the devices
//! themselves report is `devices`. The decisions are the pure functions of [`crate::health`];
//! this is where measurements go in and actions come out: [`Core::on_tick`] takes a [`Sample`]
//! and the time, `Bond::tick` reads the sample and carries the actions out.

use std::{net::IpAddr, time::Duration};

use bond_common::{
    config::{BUCKETS, Balance, Mode},
    probe::ProbeEvent,
};

use super::{Action, Bond, BondIo, Core, Port, RxFilter, Sample, SendKind, Wants, io};
use crate::member::ArpRole;
use crate::{
    config::model::MonitorStrategy,
    frames,
    health::{
        liveness::{self, Timing},
        metrics::{MS, Nanos},
    },
    netdev::LinkEvent,
    plan,
    status::EventKind,
};

/// How often balance-aware `packet`'s delays are brought up to date from the probes.
const SCHEDULE_EVERY: Nanos = 500 * MS;

/// The longest the daemon sleeps between regular ticks (ms).
const MAX_TICK_MS: u64 = 50;

/// When things are next due.
pub(super) struct State {
    next_carrier: Nanos,
    next_arp: Nanos,
    next_quality: Nanos,
    next_schedule: Nanos,
    /// balance-aware `packet`'s rates and delays as last written to the data plane.
    pub(super) schedule: Vec<bond_common::schedule::MemberSchedule>,
    /// The last rebalancing round (None: none yet, one is due).
    last_rebalance: Option<Nanos>,
    /// Whether the last round, with traffic to judge, found nothing to move: rounds then come
    /// every period, else four times as often (see [`Core::rebalance_due`]).
    pub(super) rebalance_settled: bool,
    next_expiry: Nanos,
    /// The ARP monitor gives members the benefit of the doubt for a window from here.
    arp_epoch: Nanos,
    /// ARP / NS rounds sent so far.
    arp_rounds: u64,
    /// When active-backup's active member last changed (the ARP monitor's window for it
    /// starts there).
    pub(super) active_since: Nanos,
    /// Draws each probe's nonce (see `bond_common::probe::ProbeSent`).
    pub(super) nonce: rand::rngs::StdRng,
    /// Since when the far end answers probes (on some member): from then on, silence on a
    /// member means it failed.
    pub(super) peer_probes_since: Option<Nanos>,
    /// Since when no peer answers (from the start, or since the peer went quiet everywhere):
    /// after `probing::DISCOVERY_QUIET_AFTER` probes slow to one discovery frame per member
    /// every `probing::DISCOVERY_INTERVAL`, so a segment with no peer hears little of the bond.
    pub(super) no_peer_since: Option<Nanos>,
    /// The peer bond the members probe (the probe id its replies come from, see
    /// `bond_common::probe::member_probe_mac`): the first to answer. On a segment with several
    /// bonds of ours, replies of others are not taken for the peer's, so every member
    /// measures its link to the same bond.
    pub(super) peer_id: Option<u32>,
    /// balance-aware's bucket byte counters at the last rebalancing, and each bucket's load.
    pub(super) bucket_totals: Option<[u64; BUCKETS]>,
    pub(super) bucket_load: [f64; BUCKETS],
    /// The members' standing changed but writing the usable mask failed: written again at the
    /// next tick (the data plane would otherwise keep sending on a failed member).
    pub(super) usable_unwritten: bool,
    /// A config write failed (or rested on an address a member refused): written again at the
    /// next tick.
    pub(super) config_unwritten: bool,
    /// Whether the bond device was last made RUNNING (None: not yet set).
    pub(super) running: Option<bool>,
}

impl State {
    /// Rebalancing starts over (a policy switch): a baseline of the bucket counters at the
    /// next tick, then rounds at the unsettled pace, on this policy's traffic only.
    pub(super) fn restart_rebalancing(&mut self) {
        self.last_rebalance = None;
        self.rebalance_settled = false;
        self.bucket_totals = None;
        self.bucket_load = [0.0; BUCKETS];
    }

    pub(super) fn new(now: Nanos) -> State {
        State {
            next_carrier: now,
            next_arp: now,
            next_quality: now,
            next_schedule: now,
            schedule: Vec::new(),
            last_rebalance: None,
            rebalance_settled: false,
            next_expiry: now,
            arp_epoch: now,
            arp_rounds: 0,
            active_since: now,
            nonce: rand::SeedableRng::from_os_rng(),
            peer_probes_since: None,
            no_peer_since: Some(now),
            peer_id: None,
            bucket_totals: None,
            bucket_load: [0.0; BUCKETS],
            usable_unwritten: false,
            config_unwritten: false,
            running: None,
        }
    }
}

/// Why member `m` may not carry traffic (`lacp`: the bond runs 802.3ad, and why its LACP port
/// does not distribute, if it does not), for events and status.
pub(super) fn why_not_usable(m: &crate::member::Member, lacp: Option<Option<String>>) -> String {
    if m.gone {
        "its device was deleted (taken back when a device of its name appears)".into()
    } else if !m.liveness.up() {
        m.liveness.reason.clone().unwrap_or_else(|| "down".into())
    } else if m.punishment.active() {
        format!("punished, {} ms left", m.punishment.remaining_ms())
    } else if !m.violations.is_empty() {
        format!("avoided, {}", m.violations.join(", "))
    } else if let Some(lacp) = lacp {
        lacp.unwrap_or_else(|| "not distributing in the active LACP aggregator".to_string())
    } else {
        "not yet put in force".to_string()
    }
}

fn clamp_ms(ms: u64, lo: u64, hi: u64) -> Nanos {
    ms.clamp(lo, hi) * MS
}

impl<I: BondIo> Bond<I> {
    /// Periodic work: reads what the core wants, lets it decide, carries out its actions.
    pub fn tick(&mut self, now: Nanos) -> anyhow::Result<()> {
        self.sync_ports();
        let sample = self.sample(self.core.wants(now));
        self.core.on_tick(&sample, now);
        self.execute(now)
    }

    /// A change from rtnetlink, taken as it says. (linkwatch may have generated it well after
    /// the change; the carrier poll puts a stale carrier right with its next reading, which
    /// is newer than the event.)
    pub fn on_link_event(&mut self, ev: &LinkEvent, now: Nanos) -> anyhow::Result<()> {
        let mut ev = ev.clone();
        if let LinkEvent::Changed(l) = &mut ev {
            self.io.link_changed(&l.name);
            // An event saying a device is down may be older than the device's state (events
            // queue while the daemon sets members up): a member is not failed for one.
            let ours = self.core.members.iter().any(|m| m.link.index == l.index)
                || self.core.device.as_ref().is_some_and(|d| d.index == l.index || d.peer == Some(l.index));
            if ours
                && !l.usable()
                && let Some(fresh) = self.io.link_now(l.index).filter(|f| f.name == l.name)
            {
                *l = fresh;
            }
        }
        self.sync_ports();
        self.core.on_link(ev, now);
        self.execute(now)
    }

    /// What the bond device receives changed (promiscuity, unicast addresses).
    pub fn on_rx_filter(&mut self, rx: &RxFilter, now: Nanos) -> anyhow::Result<()> {
        self.core.on_rx_filter(rx);
        self.execute(now)
    }

    /// Reads what the core wants of its members.
    fn sample(&mut self, wants: Wants) -> Sample {
        let slots: Vec<(u8, String)> = self.core.members.iter().map(|m| (m.slot, m.name.clone())).collect();
        let slots: Vec<(u8, &str)> = slots.iter().map(|(s, n)| (*s, n.as_str())).collect();
        io::sample(&mut self.io, wants, &slots, &self.core.spec.name)
    }

    /// Probe replies from the data plane.
    pub fn on_probe_events(&mut self, events: &[ProbeEvent], now: Nanos) -> anyhow::Result<()> {
        self.sync_ports();
        self.core.on_probe_replies(events, now);
        self.execute(now)
    }

    /// A member's carrier changed: read now, not at the next poll.
    pub fn on_carrier_change(&mut self, now: Nanos) -> anyhow::Result<()> {
        self.sync_ports();
        let sample = self.sample(Wants { carrier: true, ..Wants::default() });
        self.core.on_carrier(&sample, now);
        self.execute(now)
    }
}

impl Core {
    /// How often `tick` must run. Not at `miimon`: the carrier thread polls at that rate and
    /// wakes the loop on a change (`on_carrier_change`), so the loop itself need not wake every
    /// few milliseconds (each wake-up costs more than the work on a VM). ARP rounds keep their
    /// interval; under the dynamic strategy received counters are read often enough to date a
    /// link's last frame within a tenth of its failover interval (5 ms at the least). Probes,
    /// silence, LACP timers, up/down delays and announcements wake the daemon by themselves
    /// (`next_deadline`).
    pub fn tick_interval(&self) -> Duration {
        let arp = self.spec.monitor.arp.as_ref().map_or(MAX_TICK_MS, |a| a.interval);
        let rx = if self.policy.monitor == MonitorStrategy::Dynamic { (self.policy.failover_interval / 10).max(5) } else { MAX_TICK_MS };
        Duration::from_millis(arp.min(rx).clamp(1, MAX_TICK_MS))
    }

    /// The earliest moment after `last_tick` (when `tick` last ran) that something is due: a
    /// probe to send, a link's silence reaching its failover interval, an up or down delay
    /// ending, an announcement, an LACP timer. The daemon ticks then (at once if it is already
    /// past: the loop may have been busy with a request at that moment), so none is acted on
    /// up to a regular tick late. What a tick left pending (a silence within a downDelay) is not
    /// due again.
    pub fn next_deadline(&self, last_tick: Nanos) -> Option<Nanos> {
        let delays = self.members.iter().filter_map(|m| {
            let (fi, up, down) = self.policy.link_timing(&m.name);
            m.liveness.settles_at(&Timing::ms(fi, up, down))
        });
        let announcement = self.announcements_due();
        let probing = self.policy.monitor != MonitorStrategy::Passive && self.ports.can_send(Port::Bond);
        let peer = self.monitor.peer_probes_since;
        let probes = self.members.iter().filter(|m| probing && m.link.usable()).flat_map(|m| {
            let fi = self.policy.link_timing(&m.name).0 * MS;
            let silent = m.alive_at(self.policy.monitor, peer).filter(|_| m.liveness.up()).map(|t| t + fi + 1);
            [Some(self.probe_due(m, last_tick)), silent]
        });
        probes.flatten().chain(delays).chain(announcement).chain(self.lacp_deadline()).filter(|&t| t > last_tick).min()
    }

    /// What a tick at `now` needs read from the world.
    pub fn wants(&self, now: Nanos) -> Wants {
        let arp = self.spec.monitor.arp.is_some();
        Wants {
            carrier: self.spec.monitor.miimon > 0 && now >= self.monitor.next_carrier,
            rx_packets: self.policy.monitor == MonitorStrategy::Dynamic || arp,
            tx_bytes: self.policy.measures_rates(),
            seen: arp,
            lacpdus: self.policy.mode == Mode::Lacp,
            bucket_bytes: self.rebalance_due(now) && self.policy.uses_buckets() && self.policy.balance == Balance::FlowDynamic,
            neighbours: self.alb_round_due(now),
        }
    }

    /// Whether a rebalancing round is due. Rounds come every 2 x `failoverInterval` (1-10 s)
    /// once the split is settled; until then (a fresh bond, members that changed, a round that
    /// moved buckets or had no traffic to judge) four times as often, at least 1 s apart: a
    /// link no busy flow hashed to gets one within seconds, not after two full periods.
    /// balance-aware only: balance-tlb and balance-alb keep bonding's steady pace.
    pub(super) fn rebalance_due(&self, now: Nanos) -> bool {
        let period = clamp_ms(2 * self.policy.failover_interval, 1_000, 10_000);
        let quick = !self.monitor.rebalance_settled && self.policy.mode == Mode::BalanceAware;
        let period = if quick { (period / 4).max(1_000 * MS) } else { period };
        self.monitor.last_rebalance.is_none_or(|last| now >= last + period)
    }

    /// Periodic work, on what the executor read (`sample`).
    pub fn on_tick(&mut self, sample: &Sample, now: Nanos) {
        if self.monitor.usable_unwritten {
            self.write_usable();
        }
        if self.monitor.config_unwritten {
            self.write_config();
        }
        let miimon = self.spec.monitor.miimon;
        if miimon > 0 && now >= self.monitor.next_carrier {
            self.monitor.next_carrier = now + miimon * MS;
            self.poll_carrier(sample, now);
        }
        self.read_rx_counters(sample, now);
        for m in &mut self.members {
            if let Some(&tx) = sample.tx_bytes.get(&m.slot) {
                m.rate.counted(now, tx);
            }
        }
        self.announce_due(now);
        self.rejoin_due(now);
        self.own_macs_tick(sample, now);
        self.lacp_tick(sample, now);
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
                if let Some(seen) = sample.seen.get(&m.slot) {
                    m.seen = *seen;
                }
            }
        }
        self.evaluate(now);
        if now >= self.monitor.next_quality {
            self.monitor.next_quality = now + clamp_ms(2 * self.policy.failover_interval, 100, 10_000);
            self.quality_round(now);
        }
        if now >= self.monitor.next_schedule {
            self.monitor.next_schedule = now + SCHEDULE_EVERY;
            self.update_schedule();
        }
        if self.rebalance_due(now) {
            self.monitor.last_rebalance = Some(now);
            self.rebalance_round(sample);
        }
        if now >= self.monitor.next_expiry {
            self.monitor.next_expiry = now + clamp_ms(self.policy.flow_expiry / 4, 1_000, 10_000);
            // Off the timing path: a walk of the whole table (see `crate::flows`).
            let cutoff = now.saturating_sub(self.policy.flow_expiry * MS);
            self.act(Action::ExpireFlows { bond: self.spec.name.clone(), cutoff });
        }
    }

    /// Received-packet counters, for the dynamic strategy and the ARP monitor without validation.
    fn read_rx_counters(&mut self, sample: &Sample, now: Nanos) {
        for m in &mut self.members {
            let Some(&rx) = sample.rx_packets.get(&m.slot) else { continue };
            if rx != m.rx_packets {
                m.rx_packets = rx;
                m.last_rx = now;
            }
        }
    }

    /// One round of the ARP / NS monitor: requests for every target on every member.
    fn arp_round(&mut self) {
        let Some(arp) = self.spec.monitor.arp.clone() else { return };
        let v4 = self.ipv4();
        let v6 = self.addresses().into_iter().find_map(|a| if let IpAddr::V6(a) = a { Some(a) } else { None });
        let mac = self.settings.mac;
        let ports: Vec<Port> =
            self.members.iter().filter(|m| self.arp_role(m.slot) != ArpRole::Backup).map(|m| Port::Member(m.slot)).collect();
        for port in ports {
            for t in &arp.ip_targets {
                let frame = frames::arp_request(mac, v4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED), *t);
                self.act(Action::Send { port, frame, ether_type: 0x0806, kind: SendKind::Other });
            }
            for t in &arp.ns_targets {
                let frame = frames::neighbour_solicitation(mac, &v6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED), t);
                self.act(Action::Send { port, frame, ether_type: 0x86dd, kind: SendKind::Other });
            }
        }
    }
    /// How member `slot` takes part in the ARP / NS monitor: under active-backup with an active
    /// member, requests go out on the active member only (see [`ArpRole`]).
    fn arp_role(&self, slot: u8) -> ArpRole {
        match self.main.active.filter(|_| matches!(self.policy.mode, Mode::ActiveBackup | Mode::None)) {
            Some(a) if a == slot => ArpRole::Active,
            Some(_) => ArpRole::Backup,
            None => ArpRole::Probed,
        }
    }

    /// Health of every member from what the monitors say; acts on changes of usability.
    pub(super) fn evaluate(&mut self, now: Nanos) {
        let mut notes = Vec::new();
        // Every link with carrier silent at once: the peer, or the way to it as a whole, went
        // away (its bondctl stopped, a stall on either host), not each link. Probes stop
        // judging until it answers again, before any link fails for it: the bond does not go
        // dark, even for a moment, while its links work.
        if self.silent_everywhere(now) {
            self.monitor.peer_probes_since = None;
            self.monitor.no_peer_since = Some(now);
            self.monitor.peer_id = None;
            notes.push((EventKind::Warning, "the peer answers probes on no link: probes stop judging links until it answers again".into()));
        }
        let peer = self.monitor.peer_probes_since;
        let roles: Vec<ArpRole> = self.members.iter().map(|m| self.arp_role(m.slot)).collect();
        for (m, role) in self.members.iter_mut().zip(roles) {
            let (fi, up, down) = self.policy.link_timing(&m.name);
            let timing = Timing::ms(fi, up, down);
            // A member that just became active gets a round of its own before it must have
            // answers (its requests started with it).
            let epoch =
                if role == ArpRole::Active { self.monitor.arp_epoch.max(self.monitor.active_since) } else { self.monitor.arp_epoch };
            // No verdict before the first round: the benefit of the doubt runs from the first
            // request (the bond may take longer to come up than the monitor's window).
            let arp = self.spec.monitor.arp.as_ref().filter(|_| self.monitor.arp_rounds > 0).map(|a| (a, role, epoch));
            let obs = m.observe(now, self.policy.monitor, peer, arp);
            if let Some(change) = m.liveness.step(now, liveness::verdict(&obs, &timing), &timing) {
                if change.up {
                    m.came_up();
                    notes.push((EventKind::Health, format!("{} is healthy ({})", m.name, change.reason)));
                } else {
                    // A link failure is the link's own (as bonding counts them): not LACP
                    // holding a member out, nor punishment or quality limits.
                    m.link_failures += 1;
                    notes.push((EventKind::Health, format!("{} failed: {}", m.name, change.reason)));
                    if let Some(p) = &self.policy.punishment
                        && m.punishment.failed(now, p)
                    {
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
        if let Some(note) = self.promote_recovering(now) {
            notes.push((EventKind::Health, note));
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        let changed = self.apply_usable(now);
        self.settle(now, changed);
    }

    /// bonding's recovery rule (bonding.txt 13.1): with no member healthy, the member nearest
    /// the end of its `upDelay` is used at once (the bond would otherwise carry nothing until
    /// that delay ends); the others keep waiting theirs. Returns the event saying so.
    fn promote_recovering(&mut self, now: Nanos) -> Option<String> {
        if self.members.iter().any(|m| !m.gone && m.liveness.up()) {
            return None;
        }
        let timing = |m: &crate::member::Member| {
            let (fi, up, down) = self.policy.link_timing(&m.name);
            Timing::ms(fi, up, down)
        };
        let i = (0..self.members.len())
            .filter(|&i| !self.members[i].gone && self.members[i].liveness.recovering())
            .min_by_key(|&i| self.members[i].liveness.settles_at(&timing(&self.members[i])))?;
        let t = timing(&self.members[i]);
        let m = &mut self.members[i];
        let early = m.liveness.promote(now, &t)?;
        m.came_up();
        Some(format!("{} used at once, {} ms before its upDelay ends: no other member is healthy", m.name, early / MS))
    }

    /// Whether the peer went silent on every member with carrier that it once answered on:
    /// one of them has been silent for longer than its failover interval, and every other for
    /// at least half of its own. Each member is probed on its own schedule, up to a third of
    /// the failover interval after another, so a peer gone from every link at once leaves
    /// their last replies that far apart: judged by the last one alone, the first members to
    /// pass their interval would fail for the peer's absence before the last one did (a peer
    /// bond made anew failed two of three links and punished them for flapping). A member
    /// answered within half its interval is heard: the others' silence is theirs.
    fn silent_everywhere(&self, now: Nanos) -> bool {
        let Some(peer) = self.monitor.peer_probes_since else { return false };
        // Members never answered have nothing to say about the peer (their links may never
        // have worked): the others decide.
        let silences: Vec<(Nanos, Nanos)> = self
            .members
            .iter()
            // A member already failed says nothing of the peer now: its silence only grows,
            // and counted, the others' ordinary lateness (half an interval) would pass for the
            // peer's absence and bring it back.
            .filter(|m| m.link.usable() && m.probes.last_reply.is_some() && m.liveness.up())
            .filter_map(|m| {
                let fi = self.policy.link_timing(&m.name).0 * MS;
                m.alive_at(self.policy.monitor, Some(peer)).map(|t| (now.saturating_sub(t), fi))
            })
            .collect();
        silences.iter().any(|&(silent, fi)| silent > fi) && silences.iter().all(|&(silent, fi)| silent >= fi / 2)
    }

    /// What follows a change of the members' standing: the active member, the bucket table,
    /// and one config write when anything changed (or `force`).
    pub(super) fn settle(&mut self, now: Nanos, force: bool) {
        let before = self.placement_key();
        self.choose_active(now);
        self.reallocate(false);
        let macs_changed = std::mem::take(&mut self.own.macs_changed);
        if force || macs_changed || before != self.placement_key() {
            self.write_config();
        }
        // After the config: peers learn the new member once it is the one in force.
        self.announce_due(now);
        self.rejoin_due(now);
    }

    /// Whether each member may carry traffic: healthy, not punished and within its quality
    /// limits. When no member is all three, the best that is still healthy carry it: a punished
    /// or degraded link is held out only while there is something better. A change is written
    /// to `member_usable` at once; returns whether there was one.
    pub(super) fn apply_usable(&mut self, now: Nanos) -> bool {
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
            return false;
        }
        let mut notes = Vec::new();
        // Active-backup and none count their failovers when the active member changes.
        let balanced = !matches!(self.policy.mode, Mode::ActiveBackup | Mode::None);
        // 802.3ad with broadcast_neighbor: peers are told when a member starts distributing.
        let mut announce_on = None;
        for (m, &usable) in self.members.iter_mut().zip(&decisions) {
            if usable && !m.usable && self.policy.mode == Mode::Lacp && self.spec.lacp.broadcast_neighbor {
                announce_on = Some(m.slot);
            }
            if usable != m.usable {
                if !usable {
                    self.failovers += u64::from(balanced);
                }
                let why = match usable {
                    true => "usable".to_string(),
                    false => {
                        format!("not usable: {}", why_not_usable(m, self.aggregation.as_ref().map(|a| a.why_not_distributing(m.slot))))
                    }
                };
                notes.push((EventKind::Usable, format!("{} {why}", m.name)));
                m.usable = usable;
                m.availability.set(now, usable);
            }
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        // A member made active by hand stays until the members' health changes (bonding
        // reselects then).
        self.main.selector.unforce();
        if let Some(slot) = announce_on {
            self.announce(slot, now);
        }
        // The fast path: one write, and the data plane re-selects from the next packet on.
        self.write_usable();
        true
    }

    /// Writes the usable mask of the members' standing (a failure is retried at the next tick,
    /// see `executed`). The bond device is RUNNING while any member is usable, as bonding's
    /// carrier.
    pub(super) fn write_usable(&mut self) {
        let mask = plan::usable_mask(&self.views());
        self.monitor.usable_unwritten = false;
        self.act(Action::SetUsable(mask));
        let running = mask != 0;
        if self.monitor.running != Some(running) {
            let was = self.monitor.running.replace(running);
            self.act(Action::SetRunning { ifindex: self.settings.ifindex, running, was });
        }
    }
}
