//! The bond's own MAC address changing on a running bond: `ip link set BOND address ADDR` (seen
//! as a link event), `bondctl set BOND macaddress=ADDR` or a reload. As bonding does it,
//! members that carry the bond's address follow (under balance-tlb and balance-alb, only the
//! one that has it); then, unlike bonding (which leaves it to the `arp_notify` sysctl), peers
//! are told with gratuitous ARPs and unsolicited neighbour advertisements, and LACP's system id
//! follows unless `ad_actor_system` is set (`aggregation`). A member that refuses the address
//! puts everything back: nothing is half-applied.

use super::{Action, Core};
use crate::{health::metrics::Nanos, mac::format_mac, plan, status::EventKind};

impl Core {
    /// The bond's address becomes `new`; `device_has_it`: the bond device already has it (a
    /// link event), else the device is given it first.
    pub(super) fn change_mac(&mut self, new: [u8; 6], device_has_it: bool, _now: Nanos) {
        let old = self.settings.mac;
        if new == old {
            return;
        }
        if !device_has_it {
            self.set_device_mac(new, old);
        }
        let mut follow = Vec::new();
        for m in self.members.iter_mut().filter(|m| !m.gone && m.link.mac == old) {
            follow.push(Action::SetMac { slot: m.slot, member: m.name.clone(), mac: new, was: old });
            m.link.mac = new;
        }
        self.actions.extend(follow);
        self.settings.mac = new;
        if let Some(d) = self.device.as_mut() {
            d.mac = new;
        }
        self.mac_change = Some((old, new));
        // The config carries the bond's and the members' addresses (probe replies, tlb, alb).
        self.write_config();
    }

    /// Gives the bond device `mac`. The link event that follows is ours, not a change made
    /// from outside (see [`Self::device_mac_seen`]).
    fn set_device_mac(&mut self, mac: [u8; 6], was: [u8; 6]) {
        self.own_device_macs.push_back(mac);
        self.act(Action::SetDeviceMac { iface: self.spec.name.clone(), mac, was });
    }

    /// A link event says the bond device has `mac`: a change made from outside
    /// (`ip link set BOND address ...`) is the bond's new address; one of ours, or the address
    /// it has, is nothing new. (Events arrive late: after a change is put back, the event of
    /// the change itself still comes.)
    pub(super) fn device_mac_seen(&mut self, mac: [u8; 6], now: Nanos) {
        if let Some(i) = self.own_device_macs.iter().position(|m| *m == mac) {
            self.own_device_macs.drain(..=i);
            return;
        }
        if mac != self.settings.mac && self.mac_change.is_none() {
            self.change_mac(mac, true, now);
        }
    }

    /// The change to `new` went through (`executed`): said, and peers told from the member
    /// they send to (the active one, or the first usable).
    pub(super) fn mac_changed(&mut self, old: [u8; 6], new: [u8; 6], now: Nanos) {
        let followed: Vec<String> = self.members.iter().filter(|m| m.link.mac == new).map(|m| m.name.clone()).collect();
        let who = if followed.is_empty() { String::new() } else { format!(" ({} follow)", followed.join(", ")) };
        self.event(EventKind::Address, format!("the bond's MAC address is {} (was {}){who}", format_mac(&new), format_mac(&old)));
        let usable = plan::usable_mask(&self.views());
        let first_usable = self.members.iter().find(|m| usable & (1 << m.slot) != 0).map(|m| m.slot);
        if let Some(slot) = self.main.active.or(first_usable) {
            self.announce(slot, now);
            self.announce_due(now);
        }
    }

    /// `who` refused the bond's new address `new` (`why`): the bond device and every member
    /// that took it get `old` back.
    pub(super) fn put_mac_back(&mut self, old: [u8; 6], new: [u8; 6], who: &str, why: &str) {
        for m in self.members.iter_mut().filter(|m| m.link.mac == new) {
            self.actions.push(Action::SetMac { slot: m.slot, member: m.name.clone(), mac: old, was: new });
            m.link.mac = old;
        }
        if who != self.spec.name {
            self.set_device_mac(old, new);
        }
        self.settings.mac = old;
        if let Some(d) = self.device.as_mut() {
            d.mac = old;
        }
        self.write_config();
        self.event(
            EventKind::Warning,
            format!("{who} refused the MAC address {}: {why}; the bond keeps {}", format_mac(&new), format_mac(&old)),
        );
    }
}
