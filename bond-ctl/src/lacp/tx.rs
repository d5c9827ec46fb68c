//! When a port sends a LACPDU: the Periodic Transmission machine (802.1AX-2014 §6.4.13) and the
//! Transmit machine's rate limit (§6.4.16).

use std::collections::VecDeque;

use super::pdu::Lacpdu;
use super::{PortInfo, state};
use crate::health::metrics::{MS, Nanos};

pub const FAST_PERIODIC: Nanos = 1000 * MS;
pub const SLOW_PERIODIC: Nanos = 30_000 * MS;
/// At most this many LACPDUs per FAST_PERIODIC on a port.
const TX_LIMIT: usize = 3;

/// How often the partner expects a LACPDU: what it asked for with its TIMEOUT bit.
pub fn period_for(partner: &PortInfo) -> Nanos {
    if partner.state & state::TIMEOUT != 0 { FAST_PERIODIC } else { SLOW_PERIODIC }
}

/// LACPDUs flow unless both sides are passive.
pub fn lacp_active(actor: &PortInfo, partner: &PortInfo) -> bool {
    (actor.state | partner.state) & state::ACTIVITY != 0
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transmitter {
    /// Need To Transmit: something the partner should hear about now.
    pub ntt: bool,
    periodic_due: Option<Nanos>,
    sent_at: VecDeque<Nanos>,
    /// Any change to what we say of ourselves is news (mux, expiry, defaulting).
    last_sent_actor: Option<PortInfo>,
}

impl Transmitter {
    /// A new port announces itself at once.
    pub fn new() -> Transmitter {
        Transmitter { ntt: true, ..Transmitter::default() }
    }

    /// A port taken over by a new controller: what it says goes out as soon as the rate limit
    /// allows (the send times it kept are on the same monotonic clock), unchanged, so the
    /// partner hears nothing new; the periodic timer starts now.
    pub fn resume(&mut self) {
        self.ntt = true;
        self.periodic_due = None;
    }

    /// The port went down: the periodic machine starts afresh (NO_PERIODIC) when it is back.
    pub fn stop(&mut self) {
        self.periodic_due = None;
    }

    /// The LACPDU to send now on an enabled port, if any.
    pub fn poll(&mut self, now: Nanos, actor: &PortInfo, partner: &PortInfo) -> Option<Lacpdu> {
        if !lacp_active(actor, partner) {
            self.periodic_due = None;
            return None;
        }
        // The period is what the partner asked for with its TIMEOUT bit; a partner turning to
        // short timeouts is answered at once rather than after the slow period.
        let period = period_for(partner);
        match self.periodic_due {
            None => self.periodic_due = Some(now + FAST_PERIODIC),
            Some(due) if due <= now || due > now + period => {
                self.ntt = true;
                self.periodic_due = Some(now + period);
            }
            Some(_) => {}
        }
        if self.last_sent_actor != Some(*actor) {
            self.ntt = true;
        }
        while self.sent_at.front().is_some_and(|&t| t + FAST_PERIODIC <= now) {
            self.sent_at.pop_front();
        }
        if !self.ntt || self.sent_at.len() >= TX_LIMIT {
            return None;
        }
        self.ntt = false;
        self.last_sent_actor = Some(*actor);
        self.sent_at.push_back(now);
        Some(Lacpdu { actor: *actor, partner: *partner, collector_max_delay: 0 })
    }

    /// When `poll` has something to do on an enabled port; `now` is the caller's latest time.
    pub fn next_deadline(&self, now: Nanos, actor: &PortInfo, partner: &PortInfo) -> Option<Nanos> {
        if !lacp_active(actor, partner) {
            return None;
        }
        if self.periodic_due.is_none() {
            return Some(now);
        }
        if self.ntt || self.last_sent_actor != Some(*actor) {
            let free = if self.sent_at.len() >= TX_LIMIT { self.sent_at[0] + FAST_PERIODIC } else { now };
            return self.periodic_due.map(|due| due.min(free));
        }
        self.periodic_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Nanos = 1000 * MS;

    fn info(state: u8) -> PortInfo {
        PortInfo { state, ..PortInfo::default() }
    }

    #[test]
    fn at_most_three_per_second() {
        let mut tx = Transmitter::default();
        let mut sent = Vec::new();
        for step in 0..40 {
            let now = step * 50 * MS;
            tx.ntt = true;
            if tx.poll(now, &info(state::ACTIVITY), &info(0)).is_some() {
                sent.push(now);
            }
        }
        assert!(sent.windows(4).all(|w| w[3] - w[0] >= SEC), "{sent:?}");
        assert!(sent.len() >= 6, "{sent:?}");

        // Held back, news is due when the oldest of the last three leaves the window.
        let mut tx = Transmitter::new();
        let (actor, partner) = (info(state::ACTIVITY), info(0));
        let polls = [0, 1000, 1100, 1200, 1300].map(|ms| {
            tx.ntt = ms > 1000;
            tx.poll(ms * MS, &actor, &partner).is_some()
        });
        assert_eq!(polls, [true, true, true, true, false]);
        assert_eq!(tx.next_deadline(1300 * MS, &actor, &partner), Some(2000 * MS));
    }

    #[test]
    fn the_period_follows_the_partners_timeout_bit() {
        for (partner, period) in [(info(state::TIMEOUT), FAST_PERIODIC), (info(0), SLOW_PERIODIC)] {
            let mut tx = Transmitter::default();
            let actor = info(state::ACTIVITY);
            let sent: Vec<Nanos> = (0..=700).map(|step| step * 100 * MS).filter(|&now| tx.poll(now, &actor, &partner).is_some()).collect();
            // The first PDU is news (nothing sent yet); the rest are periodic, starting fast.
            assert_eq!(sent[..2], [0, FAST_PERIODIC]);
            let gaps: Vec<Nanos> = sent.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
            assert!(!gaps.is_empty() && gaps.iter().all(|&g| g == period), "{gaps:?}");
        }
    }

    #[test]
    fn a_partner_asking_for_fast_pdus_is_answered_at_once() {
        let mut tx = Transmitter::default();
        let actor = info(state::ACTIVITY);
        tx.poll(0, &actor, &info(0));
        tx.poll(FAST_PERIODIC, &actor, &info(0));
        assert_eq!(tx.next_deadline(2 * SEC, &actor, &info(0)), Some(FAST_PERIODIC + SLOW_PERIODIC));
        assert!(tx.poll(2 * SEC, &actor, &info(state::TIMEOUT)).is_some());
    }

    #[test]
    fn passive_with_passive_is_silent() {
        let mut tx = Transmitter { ntt: true, ..Transmitter::default() };
        assert_eq!(tx.poll(0, &info(0), &info(0)), None);
        assert_eq!(tx.next_deadline(0, &info(0), &info(0)), None);
        assert!(tx.poll(0, &info(0), &info(state::ACTIVITY)).is_some(), "an active partner is answered");
    }
}
