//! What the core learns from the outcome of its actions: a member that refused an address or
//! an MTU keeps its old one (and the bond's MTU goes back), a usable mask or config that was
//! not written is written again at the next tick, a probe that never left is not counted lost.
//! Events that say something happened are recorded once it has.

use std::collections::BTreeSet;

use super::{Action, Core, Outcome, SendKind};
use crate::{health::metrics::Nanos, mac::format_mac, status::EventKind};

impl Core {
    /// Takes in what became of the actions taken last; may decide more (taken next).
    pub fn executed(&mut self, outcome: Outcome, now: Nanos) {
        let mut announced = BTreeSet::new();
        for a in &outcome.done {
            match a {
                Action::SetMac { member, mac, .. } => {
                    self.event(EventKind::Address, format!("{member} now sends with {}", format_mac(mac)));
                }
                Action::Send { kind: SendKind::FirstAnnouncement { slot }, .. } => {
                    announced.insert(*slot);
                }
                Action::SendReports { slot, first: true, .. } => {
                    let name = self.member(*slot).map_or_else(String::new, |m| m.name.clone());
                    self.event(EventKind::Address, format!("membership reports for the bond's multicast groups sent on {name}"));
                }
                Action::SetRunning { running, was: Some(_), .. } => {
                    let what = if *running {
                        "a member carries traffic again: the bond is up"
                    } else {
                        "no member can carry traffic: the bond is down (operstate DORMANT)"
                    };
                    self.event(EventKind::Bond, what.into());
                }
                _ => {}
            }
        }
        for slot in announced {
            let name = self.member(slot).map_or_else(String::new, |m| m.name.clone());
            self.event(EventKind::Address, format!("announcing the bond's addresses on {name}"));
        }
        let mut mtu_refused = None;
        for (a, e) in &outcome.failed {
            if let Action::SetMtu { iface, .. } = a
                && mtu_refused.is_none()
                && self.members.iter().any(|m| m.name == *iface)
            {
                mtu_refused = Some((iface.clone(), e.clone()));
            }
            self.not_done(a, Some(e));
        }
        for a in &outcome.skipped {
            self.not_done(a, None);
        }
        if let Some((old, new)) = self.mac_change.take() {
            // The first refusal of the new address, by the bond device or a member.
            let refused =
                outcome.failed.iter().map(|(a, e)| (a, e.as_str())).chain(outcome.skipped.iter().map(|a| (a, "skipped"))).find_map(
                    |(a, e)| match a {
                        Action::SetDeviceMac { iface, mac, .. } | Action::SetMac { member: iface, mac, .. } if *mac == new => {
                            Some((iface.clone(), e.to_string()))
                        }
                        _ => None,
                    },
                );
            match refused {
                None => self.mac_changed(old, new, now),
                Some((who, e)) => self.put_mac_back(old, new, &who, &e),
            }
        }
        if let Some((old, new)) = self.mtu_change.take() {
            match mtu_refused {
                None => self.event(EventKind::Config, format!("MTU {new} on every member")),
                Some((member, e)) => self.put_mtu_back(old, new, &member, &e),
            }
        }
    }

    /// Action `a` was not carried out: it failed with `error`, or was skipped.
    fn not_done(&mut self, a: &Action, error: Option<&String>) {
        let name = self.spec.name.clone();
        let why = error.map_or("skipped", String::as_str);
        match a {
            Action::SetUsable(_) => {
                tracing::warn!(bond = %name, "writing the usable mask: {why}; again at the next tick");
                self.monitor.usable_unwritten = true;
            }
            Action::SetRunning { was, .. } => {
                tracing::warn!(bond = %name, "setting the bond's operational state: {why}; again at the next tick");
                self.monitor.running = *was;
                self.monitor.usable_unwritten = true;
            }
            Action::WriteConfig(_) => {
                if error.is_some() {
                    tracing::warn!(bond = %name, "writing the config: {why}; again at the next tick");
                }
                self.monitor.config_unwritten = true;
            }
            Action::SetMonitorTargets(_) | Action::SetPeers(_) => {
                tracing::warn!(bond = %name, "writing the data plane's tables: {why}");
            }
            // Written again at the next schedule round (nothing written is remembered).
            Action::SetSchedule(_) => {
                tracing::warn!(bond = %name, "writing balance-aware's packet schedule: {why}; again shortly");
                self.monitor.schedule.clear();
            }
            // The queue rule (`health::rates`) follows the queue the schedule missed instead.
            Action::CountBusyUntil { .. } => {
                tracing::warn!(bond = %name, "counting a queue found in balance-aware's packet schedule: {why}");
            }
            Action::Send { kind: SendKind::Probe { slot, seq }, .. } => {
                if let Some(m) = self.members.iter_mut().find(|m| m.slot == *slot) {
                    m.probes.unsent(*seq);
                }
            }
            // Skipped: no group to report (or resting on a failure, already told).
            Action::SendReports { .. } => {
                if error.is_some() {
                    tracing::warn!(bond = %name, "sending membership reports: {why}");
                }
            }
            Action::SetPeerUp { iface } => {
                self.event(EventKind::Warning, format!("cannot set {iface}, the bond device's peer, up again: {why}"));
            }
            Action::Send { .. }
            | Action::CloseLacpdus(_)
            | Action::ExpireFlows { .. }
            | Action::SetPromisc { .. }
            | Action::SetUnicast { .. } => {}
            Action::SetMac { slot, member, mac, was } => {
                if let Some(m) = self.members.iter_mut().find(|m| m.slot == *slot && m.link.mac == *mac) {
                    m.link.mac = *was;
                }
                if let Some(applied) = self.own.applied.as_mut() {
                    applied.retain(|c| !(c.slot == *slot && c.mac == *mac));
                }
                // The config in force must carry the addresses members really have.
                self.own.macs_changed = true;
                self.monitor.config_unwritten = true;
                if let Some(e) = error {
                    self.event(EventKind::Warning, format!("cannot give {member} the MAC address {}: {e}", format_mac(mac)));
                }
            }
            Action::SetDeviceMac { mac, .. } => {
                // No event will come for it.
                if let Some(i) = self.own_device_macs.iter().rposition(|m| m == mac) {
                    self.own_device_macs.remove(i);
                }
            }
            Action::SetMtu { iface, was, .. } => {
                if let Some(m) = self.members.iter_mut().find(|m| m.name == *iface) {
                    m.link.mtu = *was;
                } else if let Some(d) = self.device.as_mut().filter(|d| d.name == *iface) {
                    d.mtu = *was;
                    tracing::warn!(bond = %name, "putting the bond's MTU back to {was}: {why}");
                }
            }
            Action::OpenLacpdus { slot, .. } => {
                self.lacp_port_lost(*slot);
                let member = self.member(*slot).map_or_else(String::new, |m| m.name.clone());
                self.event(EventKind::Warning, format!("{member}: cannot receive LACPDUs: {why}"));
            }
        }
    }

    /// Member `member` refused the bond's new MTU `new`: every member and the bond get `old`
    /// back.
    fn put_mtu_back(&mut self, old: u32, new: u32, member: &str, e: &str) {
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if m.link.mtu != old {
                let (iface, was) = (m.name.clone(), m.link.mtu);
                m.link.mtu = old;
                self.act(Action::SetMtu { iface, mtu: old, was });
            }
        }
        if let Some(d) = self.device.as_mut() {
            let (iface, was) = (d.name.clone(), d.mtu);
            d.mtu = old;
            self.act(Action::SetMtu { iface, mtu: old, was });
        }
        self.event(EventKind::Warning, format!("{member} refused MTU {new}: {e}; the bond's MTU is {old} again"));
    }
}
