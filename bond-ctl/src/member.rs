//! Everything the controller knows about one member: its device, what the monitors measured,
//! and the decisions made about it. The decisions themselves are in [`crate::health`].

use bond_common::stats::MemberSeen;

use crate::{
    config::model::{ArpMonitor, MonitorStrategy},
    health::{
        liveness::{Liveness, Observations},
        metrics::{Availability, Delivery, LinkMetrics, MS, Nanos, ProbeWindow, QUICK_PROBE_INTERVAL},
        punish::Punishment,
        rates::RateEstimate,
    },
    netdev::Link,
};

/// Unanswered requests in a row after which a member's peer is discovered again by broadcast.
pub const REDISCOVER_AFTER: u32 = 3;
/// Probe outcomes a link collects quickly, once a peer answers, one per [`QUICK_PROBE_INTERVAL`]
/// at most (see `Member::next_probe`).
const LEARNING_PROBES: usize = 8;

/// How long availability is measured over.
const AVAILABILITY_PERIOD: Nanos = 60_000 * MS;

/// How a member takes part in the ARP / NS monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpRole {
    /// Requests go out on it (every member, in modes where members carry traffic together or
    /// while active-backup has no active member).
    Probed,
    /// Active-backup's active member: requests go out on it alone, as bonding sends them, so
    /// a switch sees the bond's address on one port only.
    Active,
    /// Active-backup's backup: no requests of its own (they would move the bond's address to
    /// its switch port); the active member's requests, flooded back by the switch, prove it.
    Backup,
}

/// A member's settings before it joined, restored when it leaves.
#[derive(Debug, Clone)]
pub struct Saved {
    pub mac: [u8; 6],
    pub admin_up: bool,
    pub ipv6_disabled: Option<bool>,
    /// None: not recorded (a state file from before MTUs were kept).
    pub mtu: Option<u32>,
    /// Whether it received every multicast group itself (None: not recorded).
    pub allmulti: Option<bool>,
    /// Whether it was promiscuous itself (None: not recorded).
    pub promisc: Option<bool>,
}

pub struct Member {
    pub name: String,
    pub slot: u8,
    pub link: Link,
    pub saved: Option<Saved>,
    /// Times it went from usable to not.
    pub link_failures: u32,
    pub liveness: Liveness,
    pub probes: ProbeWindow,
    /// When the last probe went out.
    pub last_probe: Nanos,
    /// Whether a probe went out at `last_probe` (under the dynamic strategy one may be skipped).
    pub probe_outstanding: bool,
    pub probe_seq: u32,
    /// The probe address of the peer's member that answers on this link: requests go to it by
    /// unicast (None: broadcast, to discover one).
    pub probe_peer: Option<[u8; 6]>,
    /// Requests to `probe_peer` went unanswered [`REDISCOVER_AFTER`] times in a row: they are
    /// broadcast until a reply names the peer's member again (the same one: no news).
    pub rediscover: bool,
    /// Requests in a row that got no reply: after [`REDISCOVER_AFTER`] the peer is looked
    /// for again by broadcast (it restarted with a new address, another took its place).
    pub probes_unanswered: u32,
    /// Probes judge silence from here when no reply came since (start, carrier back).
    pub probe_epoch: Nanos,
    /// Received packets (data plane counter) and when that last changed.
    pub rx_packets: u64,
    pub last_rx: Nanos,
    /// What the ARP / NS monitor saw on it.
    pub seen: MemberSeen,
    pub punishment: Punishment,
    pub availability: Availability,
    pub metrics: LinkMetrics,
    /// Quality score, 0.0 to 1.0 (1.0 until measured).
    pub score: f64,
    /// Whether `score` rests on enough measurements to compare links by it.
    pub judged: bool,
    /// Quality limits it exceeds (it is avoided while any).
    pub violations: Vec<String>,
    /// Link speed the driver reports (Mb/s).
    pub speed: Option<u32>,
    /// What the data plane currently has for it.
    pub usable: bool,
    /// Its device was deleted: released (no program, sockets or traffic), its slot and saved
    /// settings kept, taken back when a device of its name appears.
    pub gone: bool,
    /// A device of its name that could not be taken back (its ifindex): not tried again.
    pub retake_refused: Option<u32>,
    /// What the link delivered, as the peer counted it (from probe replies).
    pub delivery: Delivery,
    /// Its rate as measured, for balance-aware `packet` without `speed`.
    pub rate: RateEstimate,
}

impl Member {
    pub fn new(name: String, slot: u8, link: Link, saved: Saved, now: Nanos) -> Member {
        let up = link.usable();
        Member {
            name,
            slot,
            link,
            saved: Some(saved),
            link_failures: 0,
            liveness: Liveness::new(up, now),
            probes: ProbeWindow::default(),
            last_probe: 0,
            probe_outstanding: false,
            probe_seq: 0,
            probe_peer: None,
            rediscover: false,
            probes_unanswered: 0,
            probe_epoch: now,
            rx_packets: 0,
            last_rx: now,
            seen: MemberSeen::default(),
            punishment: Punishment::default(),
            availability: Availability::new(now, up, AVAILABILITY_PERIOD),
            metrics: LinkMetrics { avl: 1.0, ..Default::default() },
            score: 1.0,
            judged: false,
            violations: Vec::new(),
            speed: None,
            usable: up,
            gone: false,
            retake_refused: None,
            delivery: Delivery::default(),
            rate: RateEstimate::default(),
        }
    }

    /// It became healthy: its probes start afresh, and it is not compared by score until it
    /// has been measured again (see `quality_round`).
    pub fn came_up(&mut self) {
        self.probes.restart();
        self.judged = false;
        self.score = 1.0;
    }

    /// What the monitors say now. `peer_since`: since when the far end answers probes at all
    /// (on any member); only then does their silence mean something, and a member that never
    /// answered has a failover interval from then to do so.
    pub fn observe(
        &self,
        now: Nanos,
        strategy: MonitorStrategy,
        peer_since: Option<Nanos>,
        arp: Option<(&ArpMonitor, ArpRole, Nanos)>,
    ) -> Observations {
        let probe_silence = self.alive_at(strategy, peer_since).map(|t| now.saturating_sub(t));
        Observations {
            device_up: self.link.usable(),
            admin_up: self.link.admin_up,
            probe_silence,
            monitor_alive: arp.map(|(m, role, epoch)| self.arp_alive(m, role, now, epoch)),
        }
    }

    /// The last proof of life from probes (a reply, or received traffic under the dynamic
    /// strategy); None when probes do not judge this link (see `observe`).
    pub fn alive_at(&self, strategy: MonitorStrategy, peer_since: Option<Nanos>) -> Option<Nanos> {
        let since = peer_since.filter(|_| strategy != MonitorStrategy::Passive)?;
        let mut alive_at = self.probes.last_reply.unwrap_or(0).max(self.probe_epoch).max(since);
        if strategy == MonitorStrategy::Dynamic {
            alive_at = alive_at.max(self.last_rx);
        }
        Some(alive_at)
    }

    /// When the next probe is due: a third of the failover interval after the last one, or a
    /// ninth while that one is unanswered (but not before twice the longest round trip seen).
    /// Random loss then has to take about six probes in a row to look like a dead link, while a
    /// dead link is still found within the interval. `measuring`: its rate is being measured
    /// from the replies (`health::rates`), which want a probe that often: they then come at
    /// least as often as while learning.
    pub fn next_probe(&self, failover_interval: Nanos, measuring: Option<Nanos>) -> Nanos {
        let answered = !self.probe_outstanding || self.probes.last_reply.is_some_and(|r| r >= self.last_probe);
        // A peer answers but the link's round trip rests on a few probes: quicker, so the
        // delays balance-aware places packets by (and the first scores) are known within
        // seconds of a link coming up, not after minutes at the default interval.
        let learning = self.probes.peer_seen && (measuring.is_some() || self.probes.outcomes() < LEARNING_PROBES);
        let quick = measuring.map_or(QUICK_PROBE_INTERVAL, |m| m.min(QUICK_PROBE_INTERVAL));
        let regular = if learning { (failover_interval / 3).min(quick) } else { failover_interval / 3 };
        let interval = if answered || self.last_probe == 0 {
            regular
        } else {
            let round_trip = (2.0 * self.metrics.ltm * MS as f64) as Nanos;
            (failover_interval / 9).max(round_trip.min(regular))
        };
        self.last_probe + interval.max(MS)
    }

    /// The ARP / NS monitor's verdict (bonding's rules, see `ArpValidate`): within
    /// `arp_interval x arp_missed_max` the member must have received what proves it alive.
    /// Until a full window has passed since `epoch` it gets the benefit of the doubt.
    fn arp_alive(&self, m: &ArpMonitor, role: ArpRole, now: Nanos, epoch: Nanos) -> bool {
        // Half an interval of slack for replies to the last round still on their way (bonding
        // allows the same).
        let window = m.interval * MS * u64::from(m.missed_max) + m.interval * MS / 2;
        let recent = |t: Nanos| now.saturating_sub(t.max(epoch)) <= window;
        let targets = m.ip_targets.len() + m.ns_targets.len();
        let active = role == ArpRole::Active;
        if role == ArpRole::Backup && m.validate.validates(false) {
            // Replies go to the active member; what a backup can validate is the requests the
            // switch floods to it (bonding checks the same), ARP all the same.
            recent(self.seen.any_arp_ns)
        } else if m.validate.validates(active) {
            let mut answered = self.seen.target_ns.iter().take(targets).map(|t| recent(*t));
            if m.all_targets { answered.all(|a| a) } else { answered.any(|a| a) }
        } else if m.validate.filters() {
            recent(self.seen.any_arp_ns)
        } else {
            recent(self.last_rx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::ArpValidate;

    fn member(now: Nanos) -> Member {
        let link = Link::up(2, "eth0", [2, 0, 0, 0, 0, 1]);
        Member::new(
            "eth0".into(),
            0,
            link,
            Saved { mac: [0; 6], admin_up: true, ipv6_disabled: None, mtu: None, allmulti: None, promisc: None },
            now,
        )
    }

    fn arp(validate: ArpValidate, all_targets: bool) -> ArpMonitor {
        ArpMonitor {
            interval: 100,
            ip_targets: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            ns_targets: vec![],
            validate,
            all_targets,
            missed_max: 2,
        }
    }

    #[test]
    fn probe_silence_counts_from_the_last_reply_or_epoch() {
        let mut m = member(0);
        assert_eq!(m.observe(50 * MS, MonitorStrategy::Active, Some(0), None).probe_silence, Some(50 * MS));
        assert_eq!(m.observe(50 * MS, MonitorStrategy::Active, None, None).probe_silence, None, "no peer answers probes");
        assert_eq!(m.observe(50 * MS, MonitorStrategy::Passive, Some(0), None).probe_silence, None);
        assert_eq!(
            m.observe(50 * MS, MonitorStrategy::Active, Some(30 * MS), None).probe_silence,
            Some(20 * MS),
            "from when the peer appeared"
        );
        m.last_rx = 40 * MS;
        assert_eq!(m.observe(50 * MS, MonitorStrategy::Dynamic, Some(0), None).probe_silence, Some(10 * MS), "traffic proves it alive");
        assert_eq!(m.observe(50 * MS, MonitorStrategy::Active, Some(0), None).probe_silence, Some(50 * MS));
    }

    #[test]
    fn probing_speeds_up_while_unanswered() {
        let mut m = member(0);
        assert_eq!(m.next_probe(30 * MS, None), 10 * MS, "first probe after a third");
        m.last_probe = 100 * MS;
        m.probe_outstanding = true;
        assert_eq!(m.next_probe(30 * MS, None), 100 * MS + 10 * MS / 3, "unanswered: a ninth");
        m.metrics.ltm = 4.0;
        assert_eq!(m.next_probe(30 * MS, None), 108 * MS, "but not before twice the longest round trip");
        m.metrics.ltm = 0.0;
        m.probes.sent(1, 100 * MS);
        m.probes.replied(1, MS, false, 101 * MS);
        assert_eq!(m.next_probe(30 * MS, None), 110 * MS, "answered: a third");
        m.last_probe = 200 * MS;
        m.probe_outstanding = false;
        assert_eq!(m.next_probe(30 * MS, None), 210 * MS, "skipped (dynamic): not unanswered");
    }

    #[test]
    fn probing_is_quick_while_learning_and_while_a_rate_is_measured() {
        let mut m = member(0);
        let failover = 5_000 * MS;
        m.probes.sent(1, 0);
        m.probes.replied(1, MS, false, MS);
        m.last_probe = 1_000 * MS;
        assert_eq!(m.next_probe(failover, None), 1_000 * MS + QUICK_PROBE_INTERVAL, "a few outcomes: learning");
        for seq in 2..=LEARNING_PROBES as u32 {
            m.probes.sent(seq, 0);
            m.probes.replied(seq, MS, false, MS);
        }
        assert_eq!(m.next_probe(failover, None), 1_000 * MS + failover / 3, "learnt: a third of the interval");
        assert_eq!(m.next_probe(failover, Some(QUICK_PROBE_INTERVAL)), 1_000 * MS + QUICK_PROBE_INTERVAL, "its rate measured: quick again");
        assert_eq!(
            m.next_probe(failover, Some(QUICK_PROBE_INTERVAL / 2)),
            1_000 * MS + QUICK_PROBE_INTERVAL / 2,
            "as quick as the rate asks"
        );
    }

    #[test]
    fn arp_validation_rules() {
        let mut m = member(0);
        let now = 1_000 * MS;
        m.seen.target_ns[0] = now - 50 * MS;
        m.last_rx = 0;
        // Validated: target 0 answered recently; all_targets needs target 1 too.
        assert!(m.arp_alive(&arp(ArpValidate::All, false), ArpRole::Active, now, 0));
        assert!(!m.arp_alive(&arp(ArpValidate::All, true), ArpRole::Active, now, 0));
        // "active" validates only the active member; a backup needs any traffic (none here).
        assert!(!m.arp_alive(&arp(ArpValidate::Active, false), ArpRole::Probed, now, 0));
        m.last_rx = now - 10 * MS;
        assert!(m.arp_alive(&arp(ArpValidate::Active, false), ArpRole::Probed, now, 0));
        // "filter": any ARP, not any traffic.
        assert!(!m.arp_alive(&arp(ArpValidate::Filter, false), ArpRole::Probed, now, 0));
        m.seen.any_arp_ns = now - 150 * MS;
        assert!(m.arp_alive(&arp(ArpValidate::Filter, false), ArpRole::Probed, now, 0));
        // Too long ago (window 200 ms, plus half an interval of slack).
        m.seen.target_ns[0] = now - 240 * MS;
        assert!(m.arp_alive(&arp(ArpValidate::All, false), ArpRole::Active, now, 0), "within the slack");
        m.seen.target_ns[0] = now - 260 * MS;
        assert!(!m.arp_alive(&arp(ArpValidate::All, false), ArpRole::Active, now, 0));
        // Benefit of the doubt right after start.
        assert!(m.arp_alive(&arp(ArpValidate::All, false), ArpRole::Active, now, now - 100 * MS));
        // An active-backup backup gets no replies (the requests go out on the active member):
        // the requests the switch floods back to it are what it validates.
        m.seen.any_arp_ns = now - 150 * MS;
        assert!(m.arp_alive(&arp(ArpValidate::All, false), ArpRole::Backup, now, 0));
        m.seen.any_arp_ns = now - 300 * MS;
        assert!(!m.arp_alive(&arp(ArpValidate::Backup, false), ArpRole::Backup, now, 0));
        m.last_rx = now;
        assert!(m.arp_alive(&arp(ArpValidate::Active, false), ArpRole::Backup, now, 0), "not validated: any traffic");
    }
}
