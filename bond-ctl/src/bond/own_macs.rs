//! balance-tlb and balance-alb, where members keep MAC addresses of their own: the active member
//! carries the bond's address (it receives what peers send to the bond), the others theirs;
//! learning packets keep switches current; under alb, peers are told which member's address to
//! send to.

use std::net::IpAddr;

use bond_common::config::Mode;

use super::{Bond, BondIo, Port};
use crate::{
    alb::RxClients,
    frames,
    health::metrics::{MS, Nanos},
    mac_roles, plan,
    status::EventKind,
};

/// How often balance-alb looks for peers to tell (the ARP table is read each time).
const ALB_ROUND: Nanos = 200 * MS;

#[derive(Default)]
pub(super) struct State {
    next_learning: Nanos,
    next_alb: Nanos,
    clients: RxClients,
    /// The data plane's count of broadcast ARP requests from the bond, last seen.
    arp_broadcasts: u64,
    /// A member's address changed: the config is written again (see `settle`).
    pub(super) macs_changed: bool,
    /// While a change of policy is being made (Some): the address changes made for it, undone
    /// if it is refused.
    pub(super) applied: Option<Vec<mac_roles::Change>>,
}

impl<I: BondIo> Bond<I> {
    /// Whether the policy in force has members keep their own MAC addresses.
    pub(super) fn own_macs(&self) -> bool {
        matches!(self.policy.mode, Mode::BalanceTlb | Mode::BalanceAlb)
    }

    /// Gives the active member the bond's MAC address and every other member one of its own
    /// (see [`mac_roles::plan`]). Synchronous (ioctl), so the config written next carries the
    /// new addresses. Returns the changes made, for [`Self::undo_mac_roles`].
    pub(super) fn apply_mac_roles(&mut self, now: Nanos) -> Vec<mac_roles::Change> {
        let Some(active) = self.main.active.filter(|_| self.own_macs()) else { return Vec::new() };
        let holders: Vec<mac_roles::Holder> = self
            .members
            .iter()
            .map(|m| mac_roles::Holder { slot: m.slot, mac: m.link.mac, own: m.saved.as_ref().map(|s| s.mac) })
            .collect();
        let plan = mac_roles::plan(&holders, active, self.settings.mac);
        for slot in plan.stuck {
            let name = self.member(slot).map_or_else(String::new, |m| m.name.clone());
            self.event(EventKind::Warning, format!("{name} shares a MAC address and no member's own address is free for it"));
        }
        let applied = self.set_macs(&plan.changes);
        if !applied.is_empty() {
            // The config with the new addresses is written next (`settle`); learning packets
            // follow on the next tick, and peers told of an old address are told again.
            self.own.macs_changed = true;
            self.own.next_learning = now;
            self.own.next_alb = now;
        }
        applied
    }

    /// Puts back the addresses `applied` changed (a change that was refused after them).
    pub(super) fn undo_mac_roles(&mut self, applied: &[mac_roles::Change]) {
        if !applied.is_empty() {
            self.set_macs(&mac_roles::undo(applied));
            self.own.macs_changed = true;
        }
    }

    /// Makes the changes in order, stopping at the first the kernel refuses (later ones assume
    /// it). Returns those made.
    fn set_macs(&mut self, changes: &[mac_roles::Change]) -> Vec<mac_roles::Change> {
        let mut applied = Vec::new();
        for c in changes {
            let Some(i) = self.members.iter().position(|m| m.slot == c.slot) else { continue };
            let name = self.members[i].name.clone();
            if let Err(e) = self.io.set_mac(&name, c.mac) {
                self.event(EventKind::Warning, format!("cannot give {name} the MAC address {}: {e}", crate::mac::format_mac(&c.mac)));
                break;
            }
            self.members[i].link.mac = c.mac;
            self.event(EventKind::Address, format!("{name} now sends with {}", crate::mac::format_mac(&c.mac)));
            applied.push(*c);
        }
        applied
    }

    /// Learning packets every `lp_interval`; balance-alb's peer updates.
    pub(super) fn own_macs_tick(&mut self, now: Nanos) {
        if !self.own_macs() {
            return;
        }
        if now >= self.own.next_learning {
            self.own.next_learning = now + self.spec.tlb.lp_interval * 1_000 * MS;
            for m in self.members.iter().filter(|m| m.link.usable()) {
                self.io.send(Port::Member(m.slot), &frames::learning_packet(m.link.mac), frames::ETH_P_LOOPBACK);
            }
        }
        if self.policy.mode == Mode::BalanceAlb && now >= self.own.next_alb {
            self.own.next_alb = now + ALB_ROUND;
            self.alb_round(now);
        }
    }

    /// Tells the peers whose member changed (see [`RxClients::round`]).
    fn alb_round(&mut self, now: Nanos) {
        let Some(bond_ip) = self.spec.addresses.iter().find_map(|(a, _)| if let IpAddr::V4(a) = a { Some(*a) } else { None }) else {
            return;
        };
        let Ok(neighbours) = self.io.neighbours(&self.spec.name) else { return };
        let broadcasts = self.io.bond_stats().map_or(0, |s| s.tx_arp_broadcasts);
        if broadcasts != self.own.arp_broadcasts {
            self.own.arp_broadcasts = broadcasts;
            self.own.clients.retell_all(now);
        }
        let views = self.views();
        let policy = plan::policy_config(&self.policy, &views, self.main.active, &self.main.buckets);
        let mac_of = |slot: u8| views.iter().find(|v| v.slot == slot).map_or([0; 6], |v| v.mac);
        let updates = self.own.clients.round(now, &neighbours, &policy, plan::usable_mask(&views), mac_of);
        for u in updates {
            let Some(m) = self.member(u.slot) else { continue };
            self.io.send(Port::Member(u.slot), &frames::arp_reply(m.link.mac, bond_ip, u.peer.mac, u.peer.ip), 0x0806);
        }
    }

    /// Peers per member under balance-alb (for status).
    pub(super) fn alb_peers(&self) -> std::collections::BTreeMap<u8, usize> {
        self.own.clients.per_slot()
    }
}
