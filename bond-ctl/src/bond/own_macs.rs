//! balance-tlb and balance-alb, where members keep MAC addresses of their own: the active member
//! carries the bond's address (it receives what peers send to the bond), the others theirs;
//! learning packets keep switches current; under alb, peers are told which member's address to
//! send to.

use bond_common::config::Mode;

use super::{Action, Core, Port, Sample, SendKind};
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

impl Core {
    /// Whether the policy in force has members keep their own MAC addresses.
    pub(super) fn own_macs(&self) -> bool {
        matches!(self.policy.mode, Mode::BalanceTlb | Mode::BalanceAlb)
    }

    /// Gives the active member the bond's MAC address and every other member one of its own
    /// (see [`mac_roles::plan`]). The changes go out before the config written next, which
    /// carries the new addresses (a refused one is taken back, see `executed`). Returns the
    /// changes asked for, for [`Self::undo_mac_roles`].
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

    /// Member `leaving` (no longer among the members) takes its own address back: a member that
    /// carries it now takes another (see [`mac_roles::after_leaving`]).
    pub(super) fn free_own_address(&mut self, leaving: &crate::member::Member) {
        let Some(own) = leaving.saved.as_ref().map(|s| s.mac).filter(|_| self.own_macs()) else { return };
        let holders: Vec<mac_roles::Holder> = self
            .members
            .iter()
            .map(|m| mac_roles::Holder { slot: m.slot, mac: m.link.mac, own: m.saved.as_ref().map(|s| s.mac) })
            .collect();
        if let Some(change) = mac_roles::after_leaving(&holders, leaving.link.mac, own, self.settings.mac) {
            self.set_macs(&[change]);
            self.own.macs_changed = true;
        }
    }

    /// Puts back the addresses `applied` changed (a change that was refused after them).
    pub(super) fn undo_mac_roles(&mut self, applied: &[mac_roles::Change]) {
        if !applied.is_empty() {
            self.set_macs(&mac_roles::undo(applied));
            self.own.macs_changed = true;
        }
    }

    /// Asks for the changes in order (the executor stops at the first the kernel refuses:
    /// later ones assume it). Returns those asked for.
    fn set_macs(&mut self, changes: &[mac_roles::Change]) -> Vec<mac_roles::Change> {
        let mut asked = Vec::new();
        for c in changes {
            let Some(m) = self.members.iter_mut().find(|m| m.slot == c.slot) else { continue };
            let was = std::mem::replace(&mut m.link.mac, c.mac);
            self.actions.push(Action::SetMac { slot: c.slot, member: m.name.clone(), mac: c.mac, was });
            asked.push(*c);
        }
        asked
    }

    /// Learning packets every `lp_interval`; balance-alb's peer updates.
    pub(super) fn own_macs_tick(&mut self, sample: &Sample, now: Nanos) {
        if !self.own_macs() {
            return;
        }
        if now >= self.own.next_learning {
            self.own.next_learning = now + self.spec.tlb.lp_interval * 1_000 * MS;
            for m in self.members.iter().filter(|m| m.link.usable()) {
                let frame = frames::learning_packet(m.link.mac);
                let port = Port::Member(m.slot);
                self.actions.push(Action::Send { port, frame, ether_type: frames::ETH_P_LOOPBACK, kind: SendKind::Other });
            }
        }
        if self.policy.mode == Mode::BalanceAlb && now >= self.own.next_alb {
            self.own.next_alb = now + ALB_ROUND;
            self.alb_round(sample, now);
        }
    }

    /// Whether a tick at `now` runs a round of balance-alb's peer updates (it needs the bond's
    /// neighbours read).
    pub(super) fn alb_round_due(&self, now: Nanos) -> bool {
        self.policy.mode == Mode::BalanceAlb && now >= self.own.next_alb && self.ipv4().is_some()
    }

    /// Tells the peers whose member changed (see [`RxClients::round`]).
    fn alb_round(&mut self, sample: &Sample, now: Nanos) {
        let Some(bond_ip) = self.ipv4() else { return };
        let Some((neighbours, broadcasts)) = &sample.neighbours else { return };
        let broadcasts = *broadcasts;
        if broadcasts != self.own.arp_broadcasts {
            self.own.arp_broadcasts = broadcasts;
            self.own.clients.retell_all(now);
        }
        let views = self.views();
        let policy = plan::policy_config(&self.policy, &views, self.main.active, &self.main.buckets);
        let mac_of = |slot: u8| views.iter().find(|v| v.slot == slot).map_or([0; 6], |v| v.mac);
        let updates = self.own.clients.round(now, neighbours, &policy, plan::usable_mask(&views), mac_of);
        for u in updates {
            let Some(m) = self.member(u.slot) else { continue };
            let frame = frames::arp_reply(m.link.mac, bond_ip, u.peer.mac, u.peer.ip);
            self.act(Action::Send { port: Port::Member(u.slot), frame, ether_type: 0x0806, kind: SendKind::Other });
        }
    }

    /// Peers per member under balance-alb (for status).
    pub(super) fn alb_peers(&self) -> std::collections::BTreeMap<u8, usize> {
        self.own.clients.per_slot()
    }
}
