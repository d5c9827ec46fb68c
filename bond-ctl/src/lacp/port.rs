//! One member's LACP machines: Receive (802.1AX-2014 §6.4.12) and Mux (§6.4.15, coupled control
//! as Linux runs it) here, transmission in `tx`; on deadlines in nanoseconds, not tick counts.

use super::pdu::{self, Lacpdu};
use super::select::LagKey;
use super::tx::{self, Transmitter};
use super::{LacpSettings, PortInfo, state};
use crate::health::metrics::{MS, Nanos};
use crate::mac::format_mac;

pub const SHORT_TIMEOUT: Nanos = 3000 * MS;
pub const LONG_TIMEOUT: Nanos = 90_000 * MS;
pub const AGGREGATE_WAIT: Nanos = 2000 * MS;
pub const PORT_PRIORITY: u16 = 255;

/// Partner_Admin: what a port assumes without a partner. Linux's values, but passive, so that a
/// passive port without an active partner stays silent.
pub const PARTNER_ADMIN: PortInfo = PortInfo { system_priority: 0xffff, system: [0; 6], key: 1, port_priority: 0xff, port: 1, state: 0 };

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RxState {
    #[serde(rename = "disabled")]
    PortDisabled,
    Expired,
    Defaulted,
    Current,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuxState {
    Detached,
    Waiting,
    Attached,
    CollectingDistributing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    Selected,
    Unselected,
    Standby,
}

impl RxState {
    pub fn name(self) -> &'static str {
        match self {
            RxState::PortDisabled => "disabled",
            RxState::Expired => "expired",
            RxState::Defaulted => "defaulted",
            RxState::Current => "current",
        }
    }
}

impl MuxState {
    pub fn name(self) -> &'static str {
        match self {
            MuxState::Detached => "detached",
            MuxState::Waiting => "waiting",
            MuxState::Attached => "attached",
            MuxState::CollectingDistributing => "collecting_distributing",
        }
    }
}

impl Selection {
    pub fn name(self) -> &'static str {
        match self {
            Selection::Selected => "selected",
            Selection::Unselected => "unselected",
            Selection::Standby => "standby",
        }
    }
}

/// The states as status shows them (`name()`), compared with and printed as that text.
macro_rules! shown_by_name {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }
        impl $t {
            pub fn as_str(self) -> &'static str {
                self.name()
            }
        }
    )*};
}
shown_by_name!(RxState, MuxState, Selection);

/// Linux's AD_LINK_SPEED_* numbering; 0 for unknown speeds, as Linux.
pub fn speed_code(mbps: u32) -> u16 {
    const SPEEDS: [u32; 17] =
        [1, 10, 100, 1000, 2500, 5000, 10_000, 14_000, 20_000, 25_000, 40_000, 50_000, 56_000, 100_000, 200_000, 400_000, 800_000];
    SPEEDS.iter().position(|&s| s == mbps).map_or(0, |i| i as u16 + 1)
}

/// Bits 6..15 the user's key, 1..5 the speed, 0 full duplex (Linux's layout).
pub fn actor_key(user_port_key: u16, speed_mbps: u32, duplex_full: bool) -> u16 {
    ((user_port_key & 0x3ff) << 6) | (speed_code(speed_mbps) << 1) | u16::from(duplex_full)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub pdus_sent: u64,
    pub pdus_received: u64,
    pub bad_pdus: u64,
    pub marker_responses: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Port {
    pub slot: u8,
    pub name: Option<String>,
    pub mac: [u8; 6],
    pub speed_mbps: u32,
    pub duplex_full: bool,
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub enabled: bool,
    pub rx: RxState,
    pub mux: MuxState,
    pub selection: Selection,
    pub aggregator: Option<u16>,
    pub tx: Transmitter,
    /// The partner's identity changed since the port was selected: it must detach and be
    /// selected again (the standard's Selected = UNSELECTED from recordPDU).
    pub reselect: bool,
    pub counters: Counters,
    current_while: Option<Nanos>,
    wait_while: Option<Nanos>,
    loop_reported: bool,
}

impl Port {
    /// A port after INITIALIZE: defaulted partner, detached, waiting for port_enabled.
    pub fn new(slot: u8, port: u16, mac: [u8; 6], speed_mbps: u32, duplex_full: bool, settings: &LacpSettings) -> Port {
        let mut actor_state = state::AGGREGATION | state::DEFAULTED;
        if settings.active {
            actor_state |= state::ACTIVITY;
        }
        if settings.fast {
            actor_state |= state::TIMEOUT;
        }
        let actor = PortInfo {
            system_priority: settings.system_priority,
            system: settings.system,
            key: actor_key(settings.user_port_key, speed_mbps, duplex_full),
            port_priority: PORT_PRIORITY,
            port,
            state: actor_state,
        };
        Port {
            slot,
            name: None,
            mac,
            speed_mbps,
            duplex_full,
            actor,
            partner: PARTNER_ADMIN,
            enabled: false,
            rx: RxState::PortDisabled,
            mux: MuxState::Detached,
            selection: Selection::Unselected,
            aggregator: None,
            tx: Transmitter::new(),
            reselect: false,
            counters: Counters::default(),
            current_while: None,
            wait_while: None,
            loop_reported: false,
        }
    }

    /// A port taken over by a new controller (see `Lacp::restore`): its timers start now. The
    /// partner is taken as current for one more timeout (its LACPDUs came until the old
    /// controller stopped), a port waiting to attach waits afresh, and what it says of
    /// itself goes out at once.
    pub fn resume(&mut self, now: Nanos) {
        self.current_while = (self.rx == RxState::Current).then(|| now + self.timeout());
        self.wait_while = (self.mux == MuxState::Waiting).then_some(now + AGGREGATE_WAIT);
        self.tx.resume();
    }

    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("port {}", self.actor.port))
    }

    pub fn lag_key(&self) -> LagKey {
        LagKey {
            actor_key: self.actor.key,
            partner_system_priority: self.partner.system_priority,
            partner_system: self.partner.system,
            partner_key: self.partner.key,
            individual: !self.duplex_full || self.partner.state & state::AGGREGATION == 0 || self.partner.system == [0; 6],
        }
    }

    fn timeout(&self) -> Nanos {
        if self.actor.state & state::TIMEOUT != 0 { SHORT_TIMEOUT } else { LONG_TIMEOUT }
    }

    /// port_enabled; true if it changed.
    pub fn set_enabled(&mut self, enabled: bool, now: Nanos, events: &mut Vec<String>) -> bool {
        if enabled == self.enabled {
            return false;
        }
        self.enabled = enabled;
        if enabled {
            self.rx = RxState::Expired;
            self.expire(now);
            self.tx.ntt = true;
        } else {
            self.rx = RxState::PortDisabled;
            self.partner.state &= !state::SYNC;
            self.actor.state &= !state::EXPIRED;
            self.current_while = None;
            self.tx.stop();
            self.aggregator = None;
            self.selection = Selection::Unselected;
            self.detach(now, events);
        }
        true
    }

    /// EXPIRED's entry: the partner is presumed gone until a PDU says otherwise.
    fn expire(&mut self, now: Nanos) {
        self.partner.state &= !state::SYNC;
        self.partner.state |= state::TIMEOUT;
        self.actor.state |= state::EXPIRED;
        self.current_while = Some(now + SHORT_TIMEOUT);
    }

    /// A valid LACPDU arrived (§6.4.12 CURRENT: update_Selected, update_NTT, recordPDU).
    pub fn receive(&mut self, pdu: &Lacpdu, now: Nanos, events: &mut Vec<String>) {
        self.counters.pdus_received += 1;
        if !self.enabled {
            return;
        }
        if pdu.actor.system == self.actor.system {
            if !self.loop_reported {
                events.push(format!("{}: our own LACPDU came back (looped link?), ignored", self.label()));
                self.loop_reported = true;
            }
            return;
        }
        self.loop_reported = false;
        let (them, us) = (&pdu.actor, &self.partner);
        let aggregation = |s: u8| s & state::AGGREGATION;
        if them.port != us.port
            || them.port_priority != us.port_priority
            || them.system != us.system
            || them.system_priority != us.system_priority
            || them.key != us.key
            || aggregation(them.state) != aggregation(us.state)
        {
            self.reselect = true;
        }
        // The partner's view of us, field by field as it would appear in our next PDU.
        let view = &pdu.partner;
        let same_identity = view.port == self.actor.port
            && view.port_priority == self.actor.port_priority
            && view.system == self.actor.system
            && view.system_priority == self.actor.system_priority
            && view.key == self.actor.key;
        let shown_bits = state::ACTIVITY | state::TIMEOUT | state::SYNC | state::AGGREGATION;
        if !same_identity || view.state & shown_bits != self.actor.state & shown_bits {
            self.tx.ntt = true;
        }
        // The partner's SYNC counts only if it is in sync with the right view of us, or if it
        // cannot aggregate anyway.
        let matched = (same_identity && aggregation(view.state) == aggregation(self.actor.state)) || aggregation(them.state) == 0;
        let was = self.rx;
        self.partner = pdu.actor;
        if !(matched && them.state & state::SYNC != 0) {
            self.partner.state &= !state::SYNC;
        }
        self.actor.state &= !(state::DEFAULTED | state::EXPIRED);
        self.current_while = Some(now + self.timeout());
        self.rx = RxState::Current;
        if was != RxState::Current {
            let p = &self.partner;
            events.push(format!("{}: LACP partner {} port {} key {}", self.label(), format_mac(&p.system), p.port, p.key));
        }
    }

    /// current_while expiry: CURRENT → EXPIRED → DEFAULTED.
    pub fn run_rx_timer(&mut self, now: Nanos, events: &mut Vec<String>) {
        if self.current_while.is_none_or(|t| t > now) {
            return;
        }
        match self.rx {
            RxState::Current => {
                let waited = self.timeout() / (1000 * MS);
                self.rx = RxState::Expired;
                self.expire(now);
                events.push(format!("{}: partner timed out (no LACPDU for {waited} s)", self.label()));
            }
            RxState::Expired => {
                if self.partner.system != PARTNER_ADMIN.system
                    || self.partner.key != PARTNER_ADMIN.key
                    || (self.partner.state ^ PARTNER_ADMIN.state) & state::AGGREGATION != 0
                {
                    self.reselect = true;
                }
                self.partner = PARTNER_ADMIN;
                self.actor.state = (self.actor.state | state::DEFAULTED) & !state::EXPIRED;
                self.current_while = None;
                self.rx = RxState::Defaulted;
                events.push(format!("{}: no LACP partner, defaulted", self.label()));
            }
            _ => self.current_while = None,
        }
    }

    /// Ready_N: this port's wait is over (or it is attached already).
    pub fn ready_n(&self, now: Nanos) -> bool {
        match self.mux {
            MuxState::Detached => false,
            MuxState::Waiting => self.wait_while.is_some_and(|t| t <= now),
            MuxState::Attached | MuxState::CollectingDistributing => true,
        }
    }

    /// The partner lets us collect and distribute: in sync, or no LACP partner at all (then the
    /// port carries traffic as an individual link, as Linux does).
    /// The partner is in sync; a port with no partner at all counts as in sync unless
    /// `strict` (`lacp_strict`): bonding's fallback lets one such port carry traffic.
    fn partner_in_sync(&self, strict: bool) -> bool {
        self.partner.state & state::SYNC != 0 || (!strict && self.partner.system == [0; 6])
    }

    /// One Mux transition, if any is due; true if the state changed.
    pub fn step_mux(&mut self, selection: Selection, ready: bool, strict: bool, now: Nanos, events: &mut Vec<String>) -> bool {
        use MuxState::*;
        let next = match self.mux {
            Detached if selection != Selection::Unselected => Waiting,
            Waiting if selection == Selection::Unselected => Detached,
            Waiting if selection == Selection::Selected && ready => Attached,
            Attached if selection != Selection::Selected => Detached,
            Attached if self.partner_in_sync(strict) => CollectingDistributing,
            CollectingDistributing if selection != Selection::Selected || !self.partner_in_sync(strict) => Attached,
            _ => return false,
        };
        self.enter_mux(next, now, events);
        true
    }

    /// Leaves the aggregator (the Mux's UNSELECTED → DETACHED).
    pub fn detach(&mut self, now: Nanos, events: &mut Vec<String>) {
        if self.mux != MuxState::Detached {
            self.enter_mux(MuxState::Detached, now, events);
        }
    }

    fn enter_mux(&mut self, next: MuxState, now: Nanos, events: &mut Vec<String>) {
        const IN_USE: u8 = state::COLLECTING | state::DISTRIBUTING;
        if self.mux == MuxState::CollectingDistributing {
            events.push(format!("{}: stopped distributing", self.label()));
        }
        self.mux = next;
        match next {
            MuxState::Detached => {
                self.actor.state &= !(state::SYNC | IN_USE);
                self.wait_while = None;
            }
            MuxState::Waiting => self.wait_while = Some(now + AGGREGATE_WAIT),
            MuxState::Attached => self.actor.state = (self.actor.state | state::SYNC) & !IN_USE,
            MuxState::CollectingDistributing => {
                self.actor.state |= state::SYNC | IN_USE;
                let aggregator = self.aggregator.map_or(String::new(), |id| format!(" in aggregator {id}"));
                events.push(format!("{}: collecting and distributing{aggregator}", self.label()));
            }
        }
        self.tx.ntt = true;
    }

    /// The LACPDU to send now, if any.
    pub fn transmit(&mut self, now: Nanos) -> Option<Vec<u8>> {
        if !self.enabled {
            self.tx.stop();
            return None;
        }
        let lacpdu = self.tx.poll(now, &self.actor, &self.partner)?;
        self.counters.pdus_sent += 1;
        Some(pdu::encode_lacpdu(self.mac, &lacpdu))
    }

    /// The LACPDU that repeats what this port says now, and how often the partner expects one,
    /// for an enabled port that sends LACPDUs (see [`super::LacpSnapshot::keepalive`]).
    pub fn standing_pdu(&self) -> Option<(Vec<u8>, Nanos)> {
        if !self.enabled || !tx::lacp_active(&self.actor, &self.partner) {
            return None;
        }
        let period = tx::period_for(&self.partner);
        let lacpdu = Lacpdu { actor: self.actor, partner: self.partner, collector_max_delay: 0 };
        Some((pdu::encode_lacpdu(self.mac, &lacpdu), period))
    }

    /// When this port next needs `tick`; `now` is the latest time the caller saw.
    pub fn next_deadline(&self, now: Nanos) -> Option<Nanos> {
        if !self.enabled {
            return None;
        }
        let waiting = self.wait_while.filter(|&t| self.mux == MuxState::Waiting && t > now);
        let reselect = self.reselect.then_some(now);
        let tx = self.tx.next_deadline(now, &self.actor, &self.partner);
        [self.current_while, waiting, reselect, tx].into_iter().flatten().min()
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;
