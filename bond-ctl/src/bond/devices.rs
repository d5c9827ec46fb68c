//! What the bond hears of devices: its members' carrier and speed (polled) and their changes
//! from rtnetlink (up, down, removed), the bond device's own changes (address, MTU, carrier)
//! and what it receives (promiscuity, the unicast addresses of devices above it), turned into
//! the members' state and actions.

use super::{Action, Core, RxFilter, Sample};
use crate::{
    health::metrics::Nanos,
    netdev::{Link, LinkEvent},
    status::EventKind,
};

impl Core {
    /// What the bond device receives changed (see `watch::watch_rx_filter`): its members follow,
    /// as bonding's do (`dev_uc_sync`, promiscuity). The unicast addresses of devices above
    /// it (a macvlan, a bridge's `self` entries) go into every member's unicast filter, so a
    /// NIC takes them in by its hardware filter; members are promiscuous only while the bond
    /// itself is (a bridge port, a capture), not for those addresses.
    pub fn on_rx_filter(&mut self, rx: &RxFilter) {
        if rx.promisc != self.promiscuous {
            self.promiscuous = rx.promisc;
            for m in &self.members {
                self.actions.push(Action::SetPromisc { member: m.name.clone(), on: rx.promisc });
            }
            let what = if rx.promisc {
                "the bond is promiscuous: so are its members"
            } else {
                "the bond is no longer promiscuous: nor are its members"
            };
            self.event(EventKind::Bond, what.into());
        }
        let (added, removed): (Vec<[u8; 6]>, Vec<[u8; 6]>) = (
            rx.unicast.iter().filter(|a| !self.unicast.contains(a)).copied().collect(),
            self.unicast.iter().filter(|a| !rx.unicast.contains(a)).copied().collect(),
        );
        for (macs, on) in [(&added, true), (&removed, false)] {
            for &mac in macs {
                for m in self.members.iter().filter(|m| !m.gone) {
                    self.actions.push(Action::SetUnicast { member: m.name.clone(), mac, on });
                }
                let what = if on { "in every member's unicast filter" } else { "out of the members' unicast filters" };
                self.event(EventKind::Address, format!("{} {what}", crate::mac::format_mac(&mac)));
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            self.unicast = rx.unicast.clone();
            self.unicast_unsaved = true;
        }
        self.device_addresses = rx.addresses.clone();
    }

    /// Carrier read off the timing path (see `carrier::CarrierWatch`): followed at once.
    pub fn on_carrier(&mut self, sample: &Sample, now: Nanos) {
        self.poll_carrier(sample, now);
        self.evaluate(now);
    }

    pub(super) fn poll_carrier(&mut self, sample: &Sample, now: Nanos) {
        for i in 0..self.members.len() {
            if let Some(&speed) = sample.speed.get(&self.members[i].slot) {
                self.speed_read(i, speed, now);
            }
            // Devices that cannot answer are followed through rtnetlink alone.
            let Some(&carrier) = sample.carrier.get(&self.members[i].slot) else { continue };
            if carrier != self.members[i].link.carrier {
                let mut l = self.members[i].link.clone();
                l.carrier = carrier;
                self.set_device(i, Some(l), now);
            }
        }
    }

    /// Member `i`'s link came up at `speed` (Mb/s): a new speed is its new LACP key.
    fn speed_read(&mut self, i: usize, speed: u32, now: Nanos) {
        let m = &mut self.members[i];
        if m.speed == Some(speed) {
            return;
        }
        let (name, slot, was) = (m.name.clone(), m.slot, m.speed.replace(speed));
        let was = was.map_or_else(|| "unknown".into(), |w| format!("{w} Mb/s"));
        self.event(EventKind::Member, format!("{name} runs at {speed} Mb/s (was {was})"));
        self.lacp_speed(slot, speed, now);
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

    /// A change from rtnetlink (its carrier as the device says now).
    pub fn on_link(&mut self, ev: LinkEvent, now: Nanos) {
        let (index, link) = match ev {
            LinkEvent::Changed(l) => (l.index, Some(l)),
            LinkEvent::Removed { index, .. } => (index, None),
        };
        let Some(i) = self.members.iter().position(|m| m.link.index == index) else {
            // A veth bond device has carrier only while its peer is up: set down by someone,
            // it is set up again.
            if let Some(l) = link.as_ref().filter(|l| !l.admin_up && self.device.as_ref().is_some_and(|d| d.peer == Some(l.index))) {
                self.event(EventKind::Warning, format!("{}, the bond device's peer, was set down: set up again", l.name));
                self.act(Action::SetPeerUp { iface: l.name.clone() });
                return;
            }
            if self.device.as_ref().is_some_and(|d| d.index == index) {
                match link {
                    None => self.event(EventKind::Warning, "the bond device was deleted from outside; traffic stops".into()),
                    Some(l) => self.bond_device_changed(l, now),
                }
            }
            return;
        };
        if link.is_none() && !self.members[i].gone {
            self.members[i].gone = true;
            let what = format!("member {}: its device was deleted; released, taken back when it appears again", self.members[i].name);
            self.event(EventKind::Member, what);
        }
        self.set_device(i, link, now);
        self.evaluate(now);
    }

    /// The bond device changed (`ip link set BOND ...`): a new MAC address is the bond's (see
    /// `change_mac`); a new MTU goes to every member, or, when a member refuses it, the bond
    /// gets its old MTU back and every member too (see `executed`).
    fn bond_device_changed(&mut self, l: Link, now: Nanos) {
        let Some(old) = self.device.as_ref().map(|d| d.mtu) else { return };
        let new = l.mtu;
        let (mac, running) = (l.mac, l.running);
        self.device = Some(l);
        self.device_mac_seen(mac, now);
        // A carrier event of the device (a veth's, when it or its peer comes up) puts a device
        // in dormant mode back to DORMANT: the state the members call for is set again.
        if let Some(want) = self.monitor.running
            && running.is_some_and(|r| r != want)
        {
            self.act(Action::SetRunning { ifindex: self.settings.ifindex, running: want, was: None });
        }
        if new == old {
            return;
        }
        let mut asked = false;
        for m in &mut self.members {
            if m.link.mtu != new {
                self.actions.push(Action::SetMtu { iface: m.name.clone(), mtu: new, was: m.link.mtu });
                m.link.mtu = new;
                asked = true;
            }
        }
        if asked {
            self.mtu_change = Some((old, new));
        } else {
            self.event(EventKind::Config, format!("MTU {new} on every member"));
        }
    }
}
