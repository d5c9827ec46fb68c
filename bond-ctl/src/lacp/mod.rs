//! IEEE 802.1AX (LACP) for the controller as pure logic: the daemon feeds received slow-protocols
//! frames and the time, sends the frames `tick` returns, and lets only `distributing()` members
//! carry traffic. Behaviour follows 802.1AX-2014 §6.4 the way Linux's bond_3ad does it (coupled
//! mux control, one active aggregator, a partnerless aggregator still carries traffic).

pub mod pdu;
mod port;
mod select;
mod status;
mod tx;

use crate::health::metrics::Nanos;
use crate::mac::format_mac;
use pdu::{MarkerKind, PduError, SlowPdu};
use port::Port;
pub use port::{MuxState, PORT_PRIORITY, RxState, Selection};
pub use select::AdSelect;
use select::{Aggregator, PortView};
pub use status::{AggregatorStatus, LacpStatus, PartyStatus, PortStatus};

pub const SLOW_PROTOCOLS_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];
pub const ETH_P_SLOW: u16 = 0x8809;

/// Actor/partner state bits
pub mod state {
    pub const ACTIVITY: u8 = 0x01;
    pub const TIMEOUT: u8 = 0x02;
    pub const AGGREGATION: u8 = 0x04;
    pub const SYNC: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    pub const DEFAULTED: u8 = 0x40;
    pub const EXPIRED: u8 = 0x80;
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LacpSettings {
    /// lacp_rate fast: the partner sends every 1 s and we time it out after 3 s (slow: 30 s, 90 s).
    pub fast: bool,
    /// lacp_active: send LACPDUs even to a passive partner.
    pub active: bool,
    pub select: AdSelect,
    /// ad_actor_sys_prio.
    pub system_priority: u16,
    /// The actor system id: the bond's MAC or ad_actor_system.
    pub system: [u8; 6],
    /// ad_user_port_key (0..=1023): bits 6..15 of every port's key.
    pub user_port_key: u16,
    pub min_links: u32,
    /// lacp_strict: a port whose partner sends no LACPDUs does not carry traffic (off: one
    /// such port does, bonding's fallback).
    #[serde(default)]
    pub strict: bool,
}

impl Default for LacpSettings {
    /// Linux's defaults (slow rate, active, stable); the system id must still be set.
    fn default() -> LacpSettings {
        LacpSettings {
            fast: false,
            active: true,
            select: AdSelect::Stable,
            system_priority: 65535,
            system: [0; 6],
            user_port_key: 0,
            min_links: 0,
            strict: false,
        }
    }
}

/// Per-port (member) PortInfo as carried in LACPDUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortInfo {
    pub system_priority: u16,
    pub system: [u8; 6],
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: u8,
}

/// A bond's LACP: its member ports, their aggregators and the active one.
#[derive(Clone, Debug)]
pub struct Lacp {
    settings: LacpSettings,
    /// In slot order.
    ports: Vec<Port>,
    aggregators: Vec<Aggregator>,
    active: Option<u16>,
    events: Vec<String>,
    /// The latest time any call brought.
    now: Nanos,
    /// Something changed outside `tick` (a PDU, a port): the machines must run.
    dirty: bool,
}

/// What a new controller needs to take over a running aggregate without a new negotiation:
/// every port's machines (partner information, selection, mux state), the aggregators and the
/// active one, with the settings they ran under. Kept in the bond's state file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LacpSnapshot {
    settings: LacpSettings,
    ports: Vec<Port>,
    aggregators: Vec<Aggregator>,
    active: Option<u16>,
}

/// One port's LACPDU repeated while the aggregate has no controller (see
/// [`LacpSnapshot::keepalive`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Keepalive {
    pub slot: u8,
    pub frame: Vec<u8>,
    /// How often the partner expects one: the fast period when it asked for short timeouts.
    pub period: Nanos,
}

impl LacpSnapshot {
    /// What keeps the partner's view of the aggregate while a new controller takes it over:
    /// loading the programs can take seconds on a busy host, longer than the 3 s a fast-rate
    /// partner waits for a LACPDU before it disables the port. For each enabled port that sends
    /// LACPDUs, the frame saying what it says now (nothing new to the partner) and its period.
    pub fn keepalive(&self) -> Vec<Keepalive> {
        self.ports.iter().filter_map(|p| p.standing_pdu().map(|(frame, period)| Keepalive { slot: p.slot, frame, period })).collect()
    }

    /// Whether it is the same aggregate as `other` but for timers and counters: what is worth
    /// writing down again.
    pub fn same_state(&self, other: &LacpSnapshot) -> bool {
        let key = |s: &LacpSnapshot| -> Vec<_> {
            s.ports.iter().map(|p| (p.slot, p.actor, p.partner, p.enabled, p.rx, p.mux, p.selection, p.aggregator)).collect()
        };
        self.settings == other.settings && self.aggregators == other.aggregators && self.active == other.active && key(self) == key(other)
    }
}

impl Lacp {
    pub fn new(settings: LacpSettings) -> Lacp {
        Lacp { settings, ports: Vec::new(), aggregators: Vec::new(), active: None, events: Vec::new(), now: 0, dirty: false }
    }

    pub fn settings(&self) -> &LacpSettings {
        &self.settings
    }

    pub fn snapshot(&self) -> LacpSnapshot {
        LacpSnapshot {
            settings: self.settings.clone(),
            ports: self.ports.clone(),
            aggregators: self.aggregators.clone(),
            active: self.active,
        }
    }

    /// Takes over the aggregate a previous controller ran (see [`LacpSnapshot`]), if it ran
    /// under these `settings` with these ports (slot, port number, MAC address): each port
    /// goes on in the state it was in, its timers starting `now` (see `Port::resume`), and
    /// first sends what it said before, so the partner sees no change. None: negotiate
    /// afresh.
    pub fn restore(snapshot: LacpSnapshot, settings: &LacpSettings, ports: &[(u8, u16, [u8; 6])], now: Nanos) -> Option<Lacp> {
        let mut kept: Vec<(u8, u16, [u8; 6])> = snapshot.ports.iter().map(|p| (p.slot, p.actor.port, p.mac)).collect();
        let mut wanted = ports.to_vec();
        kept.sort();
        wanted.sort();
        if snapshot.settings != *settings || kept != wanted {
            return None;
        }
        let mut lacp = Lacp::new(snapshot.settings);
        lacp.ports = snapshot.ports;
        lacp.ports.sort_by_key(|p| p.slot);
        for p in &mut lacp.ports {
            p.resume(now);
        }
        lacp.aggregators = snapshot.aggregators;
        lacp.active = snapshot.active;
        lacp.now = now;
        lacp.dirty = true;
        Some(lacp)
    }

    /// Whether member `slot` has a port.
    pub fn has_port(&self, slot: u8) -> bool {
        self.ports.iter().any(|p| p.slot == slot)
    }

    /// Why port `slot` does not distribute, in the words of its machines, for status and
    /// events (None: it distributes, or is no port).
    pub fn why_not_distributing(&self, slot: u8) -> Option<String> {
        let p = self.ports.iter().find(|p| p.slot == slot)?;
        let why = if !p.enabled {
            "LACP: port disabled (no carrier or not full duplex)".to_string()
        } else if p.selection == Selection::Standby || (p.aggregator.is_some() && p.aggregator != self.active) {
            let agg = p.aggregator.map_or("none".to_string(), |a| a.to_string());
            let active = self.active.map_or("none".to_string(), |a| a.to_string());
            format!("LACP: standby, in aggregator {agg} while {active} is the active one")
        } else if p.rx == RxState::Expired {
            "LACP: the partner's LACPDUs stopped (expired), waiting for them".to_string()
        } else if p.selection == Selection::Unselected || p.mux == MuxState::Detached {
            "LACP: not yet selected into an aggregator".to_string()
        } else if p.mux == MuxState::Waiting {
            "LACP: waiting to attach (wait-while timer)".to_string()
        } else if p.mux == MuxState::Attached {
            "LACP: attached, waiting for the partner to be in sync".to_string()
        } else {
            return None;
        };
        Some(why)
    }

    /// Puts new settings in force without a new negotiation on our side where 802.1AX allows:
    /// the rate (the actor's timeout bit, told to the partner at once), `min_links`,
    /// `lacp_strict` (the mux runs again on the next tick) and the system id (the bond's new
    /// MAC address, told at once). Returns false,
    /// changing nothing, when anything else differs (identity, key, selection, activity).
    pub fn update(&mut self, settings: &LacpSettings) -> bool {
        let in_place = LacpSettings {
            fast: settings.fast,
            min_links: settings.min_links,
            strict: settings.strict,
            system: settings.system,
            ..self.settings.clone()
        };
        if in_place != *settings {
            return false;
        }
        if settings.system != self.settings.system {
            // The bond's MAC address changed: the partner learns the new system id at once
            // (and selects its ports again, as for any new partner).
            for p in &mut self.ports {
                p.actor.system = settings.system;
                p.tx.ntt = true;
            }
        }
        if settings.fast != self.settings.fast {
            for p in &mut self.ports {
                p.actor.state = if settings.fast { p.actor.state | state::TIMEOUT } else { p.actor.state & !state::TIMEOUT };
                p.tx.ntt = true;
            }
        }
        self.settings = settings.clone();
        self.dirty = true;
        true
    }

    /// A member joins, disabled until `set_enabled(slot, true, ..)`. `port` is its port number
    /// (≥ 1, unique), `mac` its own MAC (the source of its PDUs). Re-adding a slot replaces it.
    pub fn add_port(&mut self, slot: u8, port: u16, mac: [u8; 6], speed_mbps: u32, duplex_full: bool, now: Nanos) {
        self.remove_port(slot);
        self.now = self.now.max(now);
        self.dirty = true;
        let position = self.ports.partition_point(|p| p.slot < slot);
        self.ports.insert(position, Port::new(slot, port, mac, speed_mbps, duplex_full, &self.settings));
    }

    /// A member leaves the bond (remove-link, down): its port detaches and the LACPDU it
    /// returns says so (not in sync, not collecting or distributing), so the partner stops
    /// using the link at once instead of after its timeout (3 s fast, 90 s slow). The port is
    /// removed. None for a port that never had an LACP partner, or no such port.
    pub fn leave(&mut self, slot: u8, now: Nanos) -> Option<Vec<u8>> {
        let mut events = Vec::new();
        let port = self.port_mut(slot)?;
        let had_partner = port.rx != port::RxState::Defaulted && port.rx != port::RxState::PortDisabled;
        port.detach(now, &mut events);
        let frame = pdu::encode_lacpdu(port.mac, &pdu::Lacpdu { actor: port.actor, partner: port.partner, collector_max_delay: 0 });
        if had_partner {
            port.counters.pdus_sent += 1;
        }
        self.events.extend(events);
        self.remove_port(slot);
        had_partner.then_some(frame)
    }

    /// Member `slot`'s link speed changed (read again when its carrier returned): its key
    /// follows, the partner is told at once, and selection puts the port in the aggregator its
    /// new key belongs to (802.1AX: a changed key makes the port UNSELECTED).
    pub fn set_port_speed(&mut self, slot: u8, speed_mbps: u32, now: Nanos) {
        self.now = self.now.max(now);
        let user_port_key = self.settings.user_port_key;
        let Some(port) = self.port_mut(slot) else { return };
        if port.speed_mbps == speed_mbps {
            return;
        }
        port.speed_mbps = speed_mbps;
        let key = port::actor_key(user_port_key, speed_mbps, port.duplex_full);
        if key != port.actor.key {
            port.actor.key = key;
            port.tx.ntt = true;
        }
        self.dirty = true;
    }

    /// Member `slot`'s port priority (`actor_port_prio`): sent at once, and weighed by
    /// `ad_select actor_port_prio` at the next selection.
    pub fn set_port_priority(&mut self, slot: u8, priority: u16) {
        let Some(port) = self.port_mut(slot) else { return };
        if port.actor.port_priority != priority {
            port.actor.port_priority = priority;
            port.tx.ntt = true;
            self.dirty = true;
        }
    }

    pub fn remove_port(&mut self, slot: u8) {
        self.ports.retain(|p| p.slot != slot);
        self.forget_slot(slot);
        self.dirty = true;
    }

    /// The member's name for events and status (e.g. "eth1"); without one it is "port N".
    pub fn set_port_name(&mut self, slot: u8, name: &str) {
        if let Some(port) = self.port_mut(slot) {
            port.name = Some(name.to_string());
        }
    }

    /// port_enabled of 802.1AX: the member's link is up (carrier and healthy). Disabling
    /// detaches it at once.
    pub fn set_enabled(&mut self, slot: u8, enabled: bool, now: Nanos) {
        self.now = self.now.max(now);
        // The daemon may repeat this every round: only a change needs the machines to run.
        let Some(index) = self.ports.iter().position(|p| p.slot == slot) else { return };
        if self.ports[index].set_enabled(enabled, now, &mut self.events) {
            self.dirty = true;
            if !enabled {
                self.forget_slot(slot);
            }
        }
    }

    /// A received slow-protocols Ethernet frame (with its 14-byte header) on member `slot`.
    /// Returns the marker response to send back on that member, if the frame asks for one.
    /// Malformed frames are counted per port and ignored.
    pub fn receive(&mut self, slot: u8, frame: &[u8], now: Nanos) -> Option<Vec<u8>> {
        self.now = self.now.max(now);
        let index = self.ports.iter().position(|p| p.slot == slot)?;
        let port = &mut self.ports[index];
        match pdu::parse(frame) {
            Ok(SlowPdu::Lacp(lacpdu)) => {
                port.receive(&lacpdu, now, &mut self.events);
                self.dirty = true;
            }
            Ok(SlowPdu::Marker(marker)) if marker.kind == MarkerKind::Information => {
                port.counters.marker_responses += 1;
                return Some(pdu::marker_response(port.mac, &marker));
            }
            // We send no markers, so responses answer nothing; other slow protocols are not ours.
            Ok(SlowPdu::Marker(_)) | Err(PduError::OtherSubtype(_)) => {}
            Err(error) => {
                // Logged once per port: a misbehaving partner would flood the event log.
                if port.counters.bad_pdus == 0 {
                    self.events.push(format!("{}: malformed LACPDU ignored ({error})", port.label()));
                }
                port.counters.bad_pdus += 1;
            }
        }
        None
    }

    /// Runs timers, selection and the mux; returns the (slot, LACPDU frame) pairs to send now.
    pub fn tick(&mut self, now: Nanos) -> Vec<(u8, Vec<u8>)> {
        self.now = self.now.max(now);
        self.dirty = false;
        for port in &mut self.ports {
            port.run_rx_timer(now, &mut self.events);
        }
        self.select(now);
        self.run_mux(now);
        self.ports.iter_mut().filter_map(|p| Some((p.slot, p.transmit(now)?))).collect()
    }

    /// Bit `slot` set for each member collecting and distributing in the active aggregator; 0
    /// when fewer than `min_links` are (the bond has no carrier then).
    pub fn distributing(&self) -> u32 {
        let Some(active) = self.active else { return 0 };
        let mask = self
            .ports
            .iter()
            .filter(|p| p.enabled && p.aggregator == Some(active) && p.mux == MuxState::CollectingDistributing && p.slot < 32)
            .fold(0u32, |mask, p| mask | 1 << p.slot);
        if mask.count_ones() < self.settings.min_links { 0 } else { mask }
    }

    /// The earliest time something is due (a timer, a periodic or pending LACPDU). It may be in
    /// the past: then `tick` is due at once.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let dirty = self.dirty.then_some(self.now);
        self.ports.iter().filter_map(|p| p.next_deadline(self.now)).chain(dirty).min()
    }

    /// Notable changes since the last call, as short sentences for the event log.
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    fn port_mut(&mut self, slot: u8) -> Option<&mut Port> {
        self.ports.iter_mut().find(|p| p.slot == slot)
    }

    /// A removed or disabled port leaves its aggregator at once; the next selection regroups.
    fn forget_slot(&mut self, slot: u8) {
        for aggregator in &mut self.aggregators {
            aggregator.slots.retain(|&s| s != slot);
        }
        self.aggregators.retain(|a| !a.slots.is_empty());
    }

    /// The Selection Logic: regroup the enabled ports, choose the active aggregator, and tell
    /// each port whether it is SELECTED, STANDBY or UNSELECTED.
    fn select(&mut self, now: Nanos) {
        let views: Vec<PortView> = self
            .ports
            .iter()
            .filter(|p| p.enabled)
            .map(|p| PortView {
                slot: p.slot,
                port: p.actor.port,
                lag: p.lag_key(),
                speed_mbps: p.speed_mbps,
                priority: p.actor.port_priority,
                previous: if p.reselect { None } else { p.aggregator },
            })
            .collect();
        let aggregators = select::group(&views, &self.aggregators);
        let old_lag = |id: u16| self.aggregators.iter().find(|a| a.id == id).map(|a| a.lag);
        let new_lag = |id: u16| aggregators.iter().find(|a| a.id == id).map(|a| a.lag);
        // An id now naming another LAG is another aggregator.
        let current = self.active.filter(|&id| new_lag(id).is_some() && old_lag(id) == new_lag(id));
        let active = select::choose_active(self.settings.select, &aggregators, current);
        if active != current || (active.is_none() && self.active.is_some()) {
            self.events.push(match active.and_then(|id| aggregators.iter().find(|a| a.id == id)) {
                Some(a) => describe_selected(a),
                None => "no aggregator selected".to_string(),
            });
        }
        for port in self.ports.iter_mut().filter(|p| p.enabled) {
            let aggregator = aggregators.iter().find(|a| a.slots.contains(&port.slot));
            let id = aggregator.map(|a| a.id);
            let lag = aggregator.map(|a| a.lag);
            let moved = port.reselect || id != port.aggregator || lag != port.aggregator.and_then(old_lag);
            if moved {
                // Leaving an aggregator goes through DETACHED, as UNSELECTED would.
                port.reselect = false;
                port.detach(now, &mut self.events);
                if let Some(a) = aggregator.filter(|a| a.lag.has_partner()) {
                    self.events.push(format!("{} joined aggregator {}", port.label(), a.id));
                }
            }
            port.aggregator = id;
            port.selection = match id {
                None => Selection::Unselected,
                Some(id) if Some(id) == active => Selection::Selected,
                Some(_) => Selection::Standby,
            };
        }
        self.aggregators = aggregators;
        self.active = active;
    }

    /// Runs every port's Mux until none moves: one port's wait ending can make its whole
    /// aggregator ready.
    fn run_mux(&mut self, now: Nanos) {
        for _ in 0..8 {
            let ready: Vec<(u16, bool)> = self
                .aggregators
                .iter()
                .map(|a| (a.id, a.slots.iter().all(|&s| self.ports.iter().any(|p| p.slot == s && p.ready_n(now)))))
                .collect();
            let mut changed = false;
            for port in &mut self.ports {
                let ready = ready.iter().any(|&(id, ready)| ready && port.aggregator == Some(id));
                changed |= port.step_mux(port.selection, ready, self.settings.strict, now, &mut self.events);
            }
            if !changed {
                break;
            }
        }
    }
}

fn describe_selected(aggregator: &Aggregator) -> String {
    let (id, count) = (aggregator.id, aggregator.slots.len());
    let ports = if count == 1 { "1 port".to_string() } else { format!("{count} ports") };
    if aggregator.lag.has_partner() {
        let partner = format_mac(&aggregator.lag.partner_system);
        format!("aggregator {id} selected ({ports}, partner {partner} key {})", aggregator.lag.partner_key)
    } else {
        format!("aggregator {id} selected ({ports}, no LACP partner)")
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_policy;
