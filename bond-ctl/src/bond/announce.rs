//! Telling the network where the bond is after a failover: gratuitous ARPs and unsolicited
//! neighbour advertisements for its addresses (`num_grat_arp`, `num_unsol_na`, spaced by
//! `peer_notify_delay`), and membership reports for its multicast groups (`resend_igmp`, 200 ms
//! apart, as bonding spaces them), both from the member that now receives for the bond.

use std::net::IpAddr;

use super::{Action, Core, Port, SendKind};
use crate::{
    frames,
    health::metrics::{MS, Nanos},
};

/// Rounds of frames after a failover: round `round` of `rounds`, from member `slot`, is due at
/// `next`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rounds {
    slot: u8,
    round: u32,
    rounds: u32,
    pub(super) next: Nanos,
}

impl Rounds {
    fn new(slot: u8, rounds: u32, now: Nanos) -> Option<Rounds> {
        (rounds > 0).then_some(Rounds { slot, round: 0, rounds, next: now })
    }

    /// The round due at `now` (its number), and the next one `every` later, if any.
    fn take_due(this: &mut Option<Rounds>, now: Nanos, every: Nanos) -> Option<(u8, u32)> {
        let r = this.as_mut().filter(|r| now >= r.next)?;
        let due = (r.slot, r.round);
        r.round += 1;
        r.next = now + every;
        if r.round >= r.rounds {
            *this = None;
        }
        Some(due)
    }
}

/// Membership reports go out this far apart (bonding's HZ/5).
const REJOIN_INTERVAL: Nanos = 200 * MS;

impl Core {
    /// Starts announcing the bond's addresses from member `slot` (gratuitous ARPs and unsolicited
    /// neighbour advertisements), so switches and neighbours learn where the bond is now: one
    /// round at once, the rest (up to `num_grat_arp` / `num_unsol_na`) one per announcement
    /// interval, as bonding spaces them. A newer failover replaces what is left of this one.
    pub(super) fn announce(&mut self, slot: u8, now: Nanos) {
        let rounds = self.spec.monitor.num_grat_arp.max(self.spec.monitor.num_unsol_na);
        // The first round goes out once the config with the new member is written (`settle`).
        self.announcing = Rounds::new(slot, rounds, now).filter(|_| !self.addresses().is_empty());
    }

    /// Sends the announcement round that is due, if any.
    pub(super) fn announce_due(&mut self, now: Nanos) {
        let every = self.spec.monitor.announce_interval() * MS;
        let Some((slot, round)) = Rounds::take_due(&mut self.announcing, now, every) else { return };
        if self.member(slot).is_none() || !self.ports.can_send(Port::Member(slot)) {
            return;
        }
        let mac = self.settings.mac;
        let kind = if round == 0 { SendKind::FirstAnnouncement { slot } } else { SendKind::Other };
        for addr in self.addresses() {
            let (frame, ether_type, count) = match addr {
                IpAddr::V4(a) => (frames::gratuitous_arp(mac, a), 0x0806, self.spec.monitor.num_grat_arp),
                IpAddr::V6(a) => (frames::unsolicited_na(mac, &a), 0x86dd, self.spec.monitor.num_unsol_na),
            };
            if round < count {
                self.act(Action::Send { port: Port::Member(slot), frame, ether_type, kind });
            }
        }
    }

    /// Starts sending membership reports for the bond's multicast groups from member `slot`
    /// (`resend_igmp` of them, the first at once), so snooping switches move the groups to
    /// its port now rather than at their next query.
    pub(super) fn rejoin(&mut self, slot: u8, now: Nanos) {
        self.rejoining = Rounds::new(slot, self.spec.monitor.resend_igmp, now);
    }

    /// Sends the membership reports that are due, if any (the executor reads the groups the
    /// kernel lists for the bond device and builds the reports).
    pub(super) fn rejoin_due(&mut self, now: Nanos) {
        let Some((slot, round)) = Rounds::take_due(&mut self.rejoining, now, REJOIN_INTERVAL) else { return };
        if self.member(slot).is_none() || !self.ports.can_send(Port::Member(slot)) {
            return;
        }
        let src = self.ipv4();
        self.act(Action::SendReports {
            slot,
            device: self.spec.name.clone(),
            ifindex: self.settings.ifindex,
            mac: self.settings.mac,
            src: src.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            first: round == 0,
        });
    }

    /// When the next announcement or report round is due.
    pub(super) fn announcements_due(&self) -> Option<Nanos> {
        [self.announcing.map(|a| a.next), self.rejoining.map(|r| r.next)].into_iter().flatten().min()
    }
}
