//! balance-tlb and balance-alb, where members keep MAC addresses of their own: the active member
//! carries the bond's address (it receives what peers send to the bond), the others theirs;
//! learning packets keep switches current; under alb, peers are told which member's address to
//! send to.

use std::net::IpAddr;

use bond_common::config::Mode;

use super::Bond;
use crate::{
    alb::RxClients,
    frames,
    health::metrics::{MS, Nanos},
    neighbours, plan, sys,
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
}

impl Bond {
    /// Whether the policy in force has members keep their own MAC addresses.
    pub(super) fn own_macs(&self) -> bool {
        matches!(self.policy.mode, Mode::BalanceTlb | Mode::BalanceAlb)
    }

    /// Gives the active member the bond's MAC address, and every other member an address of its
    /// own: the one that held the bond's takes the active member's old one (bonding swaps them
    /// the same way); a member left with a duplicate takes a member's original address that is
    /// free. Synchronous (ioctl), so the config written next carries the new addresses.
    pub(super) fn apply_mac_roles(&mut self, now: Nanos) {
        if !self.own_macs() {
            return;
        }
        let Some(ai) = self.main.active.and_then(|a| self.members.iter().position(|m| m.slot == a)) else { return };
        let bond_mac = self.settings.mac;
        let mut changed = Vec::new();
        if self.members[ai].link.mac != bond_mac {
            let freed = self.members[ai].link.mac;
            if let Some(hi) = self.members.iter().position(|m| m.link.mac == bond_mac) {
                // Never two members with the bond's address: the holder gives it up first.
                if let Err(e) = sys::set_mac(&self.members[hi].name, freed) {
                    self.event(format!("cannot move the bond's MAC address off {}: {e}", self.members[hi].name));
                    return;
                }
                self.members[hi].link.mac = freed;
                changed.push(hi);
            }
            match sys::set_mac(&self.members[ai].name, bond_mac) {
                Ok(()) => {
                    self.members[ai].link.mac = bond_mac;
                    changed.push(ai);
                }
                Err(e) => self.event(format!("cannot give {} the bond's MAC address: {e}", self.members[ai].name)),
            }
        }
        for i in 0..self.members.len() {
            let mac = self.members[i].link.mac;
            let duplicate = self.members.iter().enumerate().any(|(j, m)| j < i && m.link.mac == mac);
            if i == ai || !(mac == bond_mac || duplicate) {
                continue;
            }
            let in_use = |a: &[u8; 6]| *a == bond_mac || self.members.iter().any(|m| m.link.mac == *a);
            let Some(free) = self.members.iter().filter_map(|m| m.saved.as_ref().map(|s| s.mac)).find(|a| !in_use(a)) else {
                self.event(format!("{} shares a MAC address and no member's own address is free for it", self.members[i].name));
                continue;
            };
            if sys::set_mac(&self.members[i].name, free).is_ok() {
                self.members[i].link.mac = free;
                changed.push(i);
            }
        }
        for &i in &changed {
            let what = format!("{} now sends with {}", self.members[i].name, sys::format_mac(&self.members[i].link.mac));
            self.event(what);
        }
        if !changed.is_empty() {
            // The config with the new addresses is written next (`settle`); learning packets
            // follow on the next tick, and peers told of an old address are told again.
            self.own.macs_changed = true;
            self.own.next_learning = now;
            self.own.next_alb = now;
        }
    }

    /// Learning packets every `lp_interval`; balance-alb's peer updates.
    pub(super) fn own_macs_tick(&mut self, now: Nanos) {
        if !self.own_macs() {
            return;
        }
        if now >= self.own.next_learning {
            self.own.next_learning = now + self.spec.tlb.lp_interval * 1_000 * MS;
            for m in &self.members {
                if let Some(s) = m.sender.as_ref().filter(|_| m.link.usable()) {
                    let _ = s.send(&frames::learning_packet(m.link.mac), frames::ETH_P_LOOPBACK);
                }
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
        let Ok(neighbours) = neighbours::ipv4_neighbours(&self.spec.name) else { return };
        let broadcasts = self.dataplane.as_ref().and_then(|d| d.maps.bond_stats().ok()).map_or(0, |s| s.tx_arp_broadcasts);
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
            if let Some(s) = &m.sender {
                let _ = s.send(&frames::arp_reply(m.link.mac, bond_ip, u.peer.mac, u.peer.ip), 0x0806);
            }
        }
    }

    /// Peers per member under balance-alb (for status).
    pub(super) fn alb_peers(&self) -> std::collections::BTreeMap<u8, usize> {
        self.own.clients.per_slot()
    }
}
