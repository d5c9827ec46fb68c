//! 802.3ad on a running bond: LACP on every member ([`crate::lacp`] decides), LACPDUs through a
//! raw socket per member (opened, read and written by the executor), and the usable mask
//! following what LACP lets distribute.

use std::collections::BTreeSet;

use bond_common::config::Mode;

use super::{Action, Core, Port, Sample, SendKind};
use crate::{
    health::metrics::Nanos,
    lacp::{ETH_P_SLOW, Lacp, LacpSettings, LacpSnapshot, LacpStatus},
    status::EventKind,
};

/// LACP of a bond running 802.3ad.
pub(super) struct Aggregation {
    lacp: Lacp,
    /// Members whose LACPDUs are received.
    pub(super) ports: BTreeSet<u8>,
    /// The state last written to the state file, and whether it has changed since (see
    /// `Core::lacp_unsaved`): a new controller takes the aggregate over from it.
    saved: Option<LacpSnapshot>,
    unsaved: bool,
}

/// A member's LACP port number and the address its LACPDUs come from (its own, as bonding
/// sends them).
fn lacp_port_of(m: &crate::member::Member) -> (u16, [u8; 6]) {
    (u16::from(m.slot) + 1, m.saved.as_ref().map_or(m.link.mac, |s| s.mac))
}

impl Aggregation {
    fn new(lacp: Lacp, saved: Option<LacpSnapshot>) -> Aggregation {
        Aggregation { lacp, ports: BTreeSet::new(), saved, unsaved: false }
    }

    /// Why member `slot` does not distribute (see [`Lacp::why_not_distributing`]).
    pub(super) fn why_not_distributing(&self, slot: u8) -> Option<String> {
        self.lacp.why_not_distributing(slot)
    }
}

impl Core {
    /// The LACP settings the bond's configuration asks for.
    fn lacp_settings(&self) -> LacpSettings {
        let l = &self.spec.lacp;
        LacpSettings {
            fast: l.fast,
            active: l.active,
            select: l.select,
            system_priority: l.system_priority,
            system: l.system.unwrap_or(self.settings.mac),
            user_port_key: l.user_port_key,
            min_links: l.min_links,
            strict: l.strict,
        }
    }

    /// Keeps LACP in step with the policy and the member set: started under 802.3ad (again
    /// when its settings change), a port per member, ports of departed members removed.
    pub(super) fn lacp_sync(&mut self, now: Nanos) {
        if self.policy.mode != Mode::Lacp {
            self.aggregation = None;
            return;
        }
        let settings = self.lacp_settings();
        if let Some(a) = self.aggregation.as_mut()
            && *a.lacp.settings() != settings
            && !a.lacp.update(&settings)
        {
            self.event(EventKind::Lacp, "LACP settings changed: negotiating afresh".into());
            self.aggregation = None;
        }
        let agg = self.aggregation.get_or_insert_with(|| Aggregation::new(Lacp::new(settings), None));
        // A member whose device was deleted has no port until it is back (its socket is gone).
        let present = |slot: u8| self.members.iter().any(|m| m.slot == slot && !m.gone);
        let gone: Vec<u8> = agg.ports.iter().copied().filter(|s| !present(*s)).collect();
        for slot in gone {
            agg.ports.remove(&slot);
            self.actions.push(Action::CloseLacpdus(slot));
            agg.lacp.remove_port(slot);
        }
        for m in &self.members {
            if agg.ports.contains(&m.slot) || m.gone {
                continue;
            }
            // Taken as received from now; dropped again if the socket cannot be opened (see
            // `lacp_port_lost`).
            self.actions.push(Action::OpenLacpdus { slot: m.slot, ifindex: m.link.index });
            agg.ports.insert(m.slot);
            // A port taken over from the previous controller goes on as it was.
            if !agg.lacp.has_port(m.slot) {
                let (port, mac) = lacp_port_of(m);
                agg.lacp.add_port(m.slot, port, mac, m.speed.unwrap_or(0), true, now);
            }
            agg.lacp.set_port_name(m.slot, &m.name);
        }
        for m in self.members.iter().filter(|m| !m.gone) {
            let priority = self.spec.lacp.port_priority.get(&m.name).copied().unwrap_or(crate::lacp::PORT_PRIORITY);
            agg.lacp.set_port_priority(m.slot, priority);
        }
    }

    /// Member `slot`'s LACPDUs cannot be received: no LACP port for it (tried again at the
    /// next tick).
    pub(super) fn lacp_port_lost(&mut self, slot: u8) {
        if let Some(agg) = self.aggregation.as_mut()
            && agg.ports.remove(&slot)
        {
            agg.lacp.remove_port(slot);
        }
    }

    /// One round of LACP: ports enabled as their links are, LACPDUs in and out, timers.
    pub(super) fn lacp_tick(&mut self, sample: &Sample, now: Nanos) {
        self.lacp_sync(now);
        let Some(agg) = self.aggregation.as_mut() else { return };
        let send =
            |slot: u8, frame: Vec<u8>| Action::Send { port: Port::Member(slot), frame, ether_type: ETH_P_SLOW, kind: SendKind::Other };
        for m in &self.members {
            agg.lacp.set_enabled(m.slot, m.link.usable() && m.liveness.up(), now);
            for pdu in sample.lacpdus.get(&m.slot).into_iter().flatten() {
                if let Some(reply) = agg.lacp.receive(m.slot, pdu, now) {
                    self.actions.push(send(m.slot, reply));
                }
            }
        }
        for (slot, frame) in agg.lacp.tick(now) {
            self.actions.push(send(slot, frame));
        }
        let events = agg.lacp.take_events();
        if !events.is_empty() || !sample.lacpdus.is_empty() {
            let now_state = agg.lacp.snapshot();
            agg.unsaved |= agg.saved.as_ref().is_none_or(|s| !s.same_state(&now_state));
        }
        for e in events {
            self.event(EventKind::Lacp, format!("LACP: {e}"));
        }
    }

    /// Takes over the aggregate the previous controller ran, from its state file, instead of
    /// negotiating afresh (see [`Lacp::restore`]); false if it cannot be (other settings or
    /// members): then LACP starts over.
    pub(super) fn lacp_take_over(&mut self, snapshot: &LacpSnapshot, now: Nanos) -> bool {
        if self.policy.mode != Mode::Lacp {
            return false;
        }
        let ports: Vec<(u8, u16, [u8; 6])> = self
            .members
            .iter()
            .map(|m| {
                let (port, mac) = lacp_port_of(m);
                (m.slot, port, mac)
            })
            .collect();
        let Some(lacp) = Lacp::restore(snapshot.clone(), &self.lacp_settings(), &ports, now) else {
            self.event(EventKind::Lacp, "LACP: the saved state does not match the bond's settings or members: negotiating afresh".into());
            return false;
        };
        let distributing = lacp.distributing().count_ones();
        self.aggregation = Some(Aggregation::new(lacp, Some(snapshot.clone())));
        self.event(
            EventKind::Lacp,
            format!("LACP: took over the running aggregate ({distributing} ports distributing), no new negotiation"),
        );
        true
    }

    /// The LACP state to keep in the state file (None outside 802.3ad).
    pub(super) fn lacp_snapshot(&self) -> Option<LacpSnapshot> {
        self.aggregation.as_ref().map(|a| a.lacp.snapshot())
    }

    /// Whether LACP's state changed since it was last written down.
    pub(super) fn lacp_unsaved(&self) -> bool {
        self.aggregation.as_ref().is_some_and(|a| a.unsaved)
    }

    /// `snapshot` is what the state file now holds.
    pub(super) fn lacp_saved(&mut self, snapshot: Option<LacpSnapshot>) {
        if let Some(a) = self.aggregation.as_mut() {
            a.saved = snapshot;
            a.unsaved = false;
        }
    }

    /// 802.3ad: member `slot` leaves the bond; its last LACPDU tells the partner to stop
    /// using the link now rather than at its timeout (see [`Lacp::leave`]).
    pub(super) fn lacp_leave(&mut self, slot: u8, now: Nanos) {
        let Some(agg) = self.aggregation.as_mut() else { return };
        let frame = agg.lacp.leave(slot, now);
        agg.ports.remove(&slot);
        if let Some(frame) = frame {
            self.act(Action::Send { port: Port::Member(slot), frame, ether_type: ETH_P_SLOW, kind: SendKind::Other });
        }
        self.act(Action::CloseLacpdus(slot));
    }

    /// Member `slot`'s link speed changed: its LACP key follows (see [`Lacp::set_port_speed`]).
    pub(super) fn lacp_speed(&mut self, slot: u8, speed: u32, now: Nanos) {
        if let Some(a) = self.aggregation.as_mut() {
            a.lacp.set_port_speed(slot, speed, now);
        }
    }

    /// 802.3ad: members that LACP does not let distribute yet are not usable (for members just
    /// taken, before their first config write).
    pub(super) fn hold_until_lacp_allows(&mut self, now: Nanos) {
        self.lacp_sync(now);
        for i in 0..self.members.len() {
            let allowed = self.lacp_allows(self.members[i].slot);
            self.members[i].usable &= allowed;
        }
    }

    /// Whether LACP lets member `slot` carry traffic (always, outside 802.3ad).
    pub(super) fn lacp_allows(&self, slot: u8) -> bool {
        match &self.aggregation {
            Some(a) => a.lacp.distributing() & (1 << slot) != 0,
            None => self.policy.mode != Mode::Lacp,
        }
    }

    /// The earliest LACP timer, for the daemon's wake-up.
    pub(super) fn lacp_deadline(&self) -> Option<Nanos> {
        self.aggregation.as_ref().and_then(|a| a.lacp.next_deadline())
    }

    pub(super) fn lacp_status(&self) -> Option<LacpStatus> {
        self.aggregation.as_ref().map(|a| a.lacp.status())
    }
}
