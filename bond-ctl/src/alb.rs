//! balance-alb's receive balancing, the controller's half: which peers the bond talks to (the
//! bond device's ARP table) and which of them must be told of another member's address. Pure;
//! the bond reads the neighbour table ([`crate::neighbours`]) and sends the ARP replies.
//!
//! The data plane answers the peers' ARP requests with the member `rx_member` picks for them;
//! when the usable members change, so do some picks, and those peers are told with a unicast
//! ARP reply (repeated, as bonding does, in case one is lost).

use std::{collections::BTreeMap, net::Ipv4Addr};

use bond_common::{config::PolicyConfig, select::rx_member};

use crate::health::metrics::{MS, Nanos};

/// Times each change is told to a peer (bonding's RLB_UPDATE_RETRY).
pub const UPDATE_REPEATS: u32 = 3;
/// Every peer is told again this often: a broadcast ARP request from the bond names one member
/// to every peer that hears it (bonding re-tells its clients then, too).
pub const REFRESH: Nanos = 10_000 * MS;
/// Between repeats: a Linux peer ignores a change of a neighbour's address within its
/// `locktime` (1 s) of the last one, so repeats closer together could all be ignored.
pub const REPEAT_SPACING: Nanos = 1_100 * MS;

/// One neighbour of the bond device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// What a peer was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Told {
    slot: u8,
    mac: [u8; 6],
    /// Repeats still to send.
    left: u32,
    /// When it was last told (None: not yet).
    last: Option<Nanos>,
}

/// An ARP reply to send: tell `peer` that the bond is at member `slot`'s address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub peer: Neighbour,
    pub slot: u8,
}

/// The peers and the member each was last told of.
#[derive(Debug, Default, Clone)]
pub struct RxClients {
    told: BTreeMap<Ipv4Addr, Told>,
}

impl RxClients {
    /// The updates due at `now`, given the bond's neighbours, its default policy as the data
    /// plane has it, the usable mask and each slot's MAC address. A peer is told when it is
    /// new, when its member changed, or when its member's address changed (a failover moves the
    /// bond's address between members); each news is told `UPDATE_REPEATS` times,
    /// `REPEAT_SPACING` apart, and every peer again each `REFRESH`. Peers that left the table
    /// are forgotten.
    pub fn round(
        &mut self,
        now: Nanos,
        neighbours: &[Neighbour],
        policy: &PolicyConfig,
        usable: u32,
        mac_of: impl Fn(u8) -> [u8; 6],
    ) -> Vec<Update> {
        self.told.retain(|ip, _| neighbours.iter().any(|n| n.ip == *ip));
        let mut updates = Vec::new();
        for n in neighbours {
            let Some(slot) = rx_member(policy, usable, u32::from(n.ip)) else { continue };
            let mac = mac_of(slot);
            let news = Told { slot, mac, left: UPDATE_REPEATS, last: None };
            let t = self.told.entry(n.ip).or_insert(news);
            if t.slot != slot || t.mac != mac {
                *t = news;
            }
            let due = match t.last {
                None => true,
                Some(l) if t.left > 0 => now >= l + REPEAT_SPACING,
                Some(l) => now >= l + REFRESH,
            };
            if due {
                t.left = t.left.saturating_sub(1);
                t.last = Some(now);
                updates.push(Update { peer: *n, slot });
            }
        }
        updates
    }

    /// Every peer is to be told again, `REPEAT_SPACING` from now: the bond just broadcast an
    /// ARP request with its own address, which peers take within their 1 s lock time.
    pub fn retell_all(&mut self, now: Nanos) {
        for t in self.told.values_mut() {
            t.left = t.left.max(1);
            t.last = Some(now);
        }
    }

    /// Number of peers per member slot (for status).
    pub fn per_slot(&self) -> BTreeMap<u8, usize> {
        let mut m = BTreeMap::new();
        for t in self.told.values() {
            *m.entry(t.slot).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bond_common::config::Mode;

    fn policy(slots: &[u8]) -> PolicyConfig {
        let mut p = PolicyConfig::EMPTY;
        p.mode = Mode::BalanceAlb as u32;
        p.n_members = slots.len() as u32;
        for (i, s) in slots.iter().enumerate() {
            p.members[i] = *s;
            p.member_mask |= 1 << s;
        }
        p
    }

    #[test]
    fn peers_are_told_repeatedly_then_only_on_change() {
        let peers: Vec<Neighbour> = (1..=20).map(|i| Neighbour { ip: Ipv4Addr::new(192, 0, 2, i), mac: [2, 0, 0, 0, 1, i] }).collect();
        let p = policy(&[0, 1, 2]);
        let mac = |s: u8| [2, 0, 0, 0, 0, s];
        let mut c = RxClients::default();
        let mut now = 0;
        for _ in 0..UPDATE_REPEATS {
            assert_eq!(c.round(now, &peers, &p, 0b111, mac).len(), 20);
            assert!(c.round(now + REPEAT_SPACING / 2, &peers, &p, 0b111, mac).is_empty(), "repeats are spaced");
            now += REPEAT_SPACING;
        }
        assert!(c.round(now, &peers, &p, 0b111, mac).is_empty());
        assert_eq!(c.round(now + REFRESH, &peers, &p, 0b111, mac).len(), 20, "everyone is told again now and then");
        let on_1 = c.per_slot()[&1];
        assert!(on_1 > 0);
        // Member 1 fails: exactly its peers are told of another member.
        let moved = c.round(now, &peers, &p, 0b101, mac);
        assert_eq!(moved.len(), on_1);
        assert!(moved.iter().all(|u| u.slot != 1));
        // A member's address changes (failover swapped it): its peers are told again (and the
        // peers that just moved to member 2 get their second telling).
        let mac2 = |s: u8| if s == 0 { [2, 0, 0, 0, 0, 0x99] } else { mac(s) };
        let on_0 = c.per_slot()[&0];
        let moved_to_2 = moved.iter().filter(|u| u.slot == 2).count();
        assert_eq!(c.round(now + REPEAT_SPACING, &peers, &p, 0b101, mac2).len(), on_0 + moved_to_2);
        // After a broadcast from the bond, everyone is told again once the lock time is over.
        let later = now + 3 * REFRESH;
        assert_eq!(c.round(later, &peers, &p, 0b101, mac2).len(), 20);
        c.retell_all(later);
        assert!(c.round(later + REPEAT_SPACING / 2, &peers, &p, 0b101, mac2).is_empty());
        assert_eq!(c.round(later + REPEAT_SPACING, &peers, &p, 0b101, mac2).len(), 20);
        // Peers gone from the table are forgotten.
        assert!(c.round(now + 2 * REPEAT_SPACING, &[], &p, 0b101, mac2).is_empty());
        assert!(c.per_slot().is_empty());
    }
}
