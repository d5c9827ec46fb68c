//! Whether a member is healthy, and when that turns into usable or not: a failure counts after
//! `downDelay`, a recovery after `upDelay` (as bonding's updelay/downdelay, in milliseconds).

use super::metrics::{MS, Nanos};

/// What the monitors tell about a member now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observations {
    /// The device is up and has carrier.
    pub device_up: bool,
    pub admin_up: bool,
    /// Time since the last proof of life from probes (a reply, or received traffic under the
    /// dynamic strategy); None when probes do not judge this link.
    pub probe_silence: Option<Nanos>,
    /// The ARP / neighbour-solicitation monitor's verdict; None when not monitoring.
    pub monitor_alive: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// A link silent for this long has failed.
    pub failover_interval: Nanos,
    pub up_delay: Nanos,
    pub down_delay: Nanos,
}

impl Timing {
    pub fn ms(failover_interval: u64, up_delay: u64, down_delay: u64) -> Timing {
        Timing { failover_interval: failover_interval * MS, up_delay: up_delay * MS, down_delay: down_delay * MS }
    }
}

/// Why a member is not healthy (None: it is).
pub fn verdict(o: &Observations, t: &Timing) -> Option<String> {
    if !o.admin_up {
        return Some("set down".into());
    }
    if !o.device_up {
        return Some("no carrier".into());
    }
    if let Some(s) = o.probe_silence
        && s > t.failover_interval
    {
        return Some(format!("silent: no probe reply for {} ms", s / MS));
    }
    if o.monitor_alive == Some(false) {
        return Some("monitor targets unreachable on this link".into());
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Joined at this time and not yet healthy: its first health is not a recovery, so it is
    /// not held in `upDelay` (a member set up as it joins, a NIC still negotiating), unless
    /// it stays unhealthy for [`JOIN_GRACE`].
    Joining(Nanos),
    Up,
    Down,
    GoingUp(Nanos),
    GoingDown(Nanos),
}

/// How long a member that joined unhealthy may take to come up without counting as failed.
pub const JOIN_GRACE: Nanos = 10_000 * MS;

/// A change of a member's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub up: bool,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Liveness {
    state: State,
    /// Why it is (or is going) down.
    pub reason: Option<String>,
}

impl Liveness {
    /// A member that joins at `now`, healthy or not yet.
    pub fn new(up: bool, now: Nanos) -> Liveness {
        Liveness { state: if up { State::Up } else { State::Joining(now) }, reason: None }
    }

    /// Whether the member counts as healthy now (a pending failure still does, a pending
    /// recovery does not yet).
    pub fn up(&self) -> bool {
        matches!(self.state, State::Up | State::GoingDown(_))
    }

    /// When a pending up or down delay ends (None: none pending).
    pub fn settles_at(&self, t: &Timing) -> Option<Nanos> {
        match self.state {
            State::GoingUp(since) => Some(since + t.up_delay),
            State::GoingDown(since) => Some(since + t.down_delay),
            State::Joining(since) => Some(since + JOIN_GRACE),
            State::Up | State::Down => None,
        }
    }

    /// Whether it is healthy and waiting out its `upDelay`.
    pub fn recovering(&self) -> bool {
        matches!(self.state, State::GoingUp(_))
    }

    /// Ends a pending `upDelay` now (no other member is usable: bonding's rule, bonding.txt
    /// 13.1); returns how much of it was left (None: none pending).
    pub fn promote(&mut self, now: Nanos, t: &Timing) -> Option<Nanos> {
        let State::GoingUp(since) = self.state else { return None };
        self.state = State::Up;
        self.reason = None;
        Some((since + t.up_delay).saturating_sub(now))
    }

    /// Advances with the current verdict (`None` = healthy); returns a change of `up()`.
    pub fn step(&mut self, now: Nanos, problem: Option<String>, t: &Timing) -> Option<Change> {
        let healthy = problem.is_none();
        if !healthy {
            self.reason = problem.clone();
        }
        let (next, change) = match self.state {
            State::Joining(_) if healthy => (State::Up, Some(true)),
            State::Joining(since) if now.saturating_sub(since) >= JOIN_GRACE => (State::Down, None),
            State::Joining(since) => (State::Joining(since), None),
            State::Up | State::GoingDown(_) if healthy => (State::Up, None),
            State::Up => self.start_down(now, t.down_delay),
            State::GoingDown(since) if now.saturating_sub(since) >= t.down_delay => (State::Down, Some(false)),
            State::GoingDown(since) => (State::GoingDown(since), None),
            State::Down | State::GoingUp(_) if !healthy => (State::Down, None),
            State::Down => {
                if t.up_delay == 0 {
                    (State::Up, Some(true))
                } else {
                    (State::GoingUp(now), None)
                }
            }
            State::GoingUp(since) if now.saturating_sub(since) >= t.up_delay => (State::Up, Some(true)),
            State::GoingUp(since) => (State::GoingUp(since), None),
        };
        self.state = next;
        if let State::GoingUp(_) = next {
            // What is true now: healthy again, not yet used.
            self.reason = Some(format!("healthy again, held out for upDelay {} ms", t.up_delay / MS));
        }
        change.map(|up| Change {
            up,
            reason: if up {
                if t.up_delay > 0 { format!("healthy for upDelay {} ms", t.up_delay / MS) } else { "healthy".into() }
            } else {
                let why = self.reason.clone().unwrap_or_default();
                if t.down_delay > 0 { format!("{why} (for downDelay {} ms)", t.down_delay / MS) } else { why }
            },
        })
    }

    fn start_down(&self, now: Nanos, down_delay: Nanos) -> (State, Option<bool>) {
        if down_delay == 0 { (State::Down, Some(false)) } else { (State::GoingDown(now), None) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(device_up: bool) -> Observations {
        Observations { device_up, admin_up: true, probe_silence: None, monitor_alive: None }
    }

    #[test]
    fn no_delays_change_at_once() {
        let t = Timing::ms(100, 0, 0);
        let mut l = Liveness::new(true, 0);
        let c = l.step(0, verdict(&obs(false), &t), &t).unwrap();
        assert_eq!(c, Change { up: false, reason: "no carrier".into() });
        assert!(!l.up());
        assert!(l.step(1, verdict(&obs(true), &t), &t).unwrap().up);
    }

    #[test]
    fn down_delay_and_up_delay_are_honoured() {
        let t = Timing::ms(100, 200, 300);
        let mut l = Liveness::new(true, 0);
        assert_eq!(l.step(0, verdict(&obs(false), &t), &t), None);
        assert!(l.up(), "still up during downDelay");
        assert_eq!(l.step(299 * MS, verdict(&obs(false), &t), &t), None);
        let c = l.step(300 * MS, verdict(&obs(false), &t), &t).unwrap();
        assert_eq!(c, Change { up: false, reason: "no carrier (for downDelay 300 ms)".into() });
        assert_eq!(l.step(400 * MS, verdict(&obs(true), &t), &t), None);
        assert!(!l.up(), "not yet up during upDelay");
        assert_eq!(l.step(599 * MS, verdict(&obs(true), &t), &t), None);
        assert!(l.step(600 * MS, verdict(&obs(true), &t), &t).unwrap().up);
    }

    #[test]
    fn a_blip_shorter_than_down_delay_changes_nothing() {
        let t = Timing::ms(100, 0, 300);
        let mut l = Liveness::new(true, 0);
        l.step(0, verdict(&obs(false), &t), &t);
        assert_eq!(l.step(100 * MS, verdict(&obs(true), &t), &t), None);
        assert_eq!(l.step(500 * MS, verdict(&obs(true), &t), &t), None);
        assert!(l.up());
    }

    #[test]
    fn recovery_restarts_its_up_delay_after_a_relapse() {
        let t = Timing::ms(100, 200, 0);
        let mut l = Liveness::new(false, 0);
        l.step(0, None, &t);
        l.step(100 * MS, Some("x".into()), &t);
        l.step(150 * MS, None, &t);
        assert_eq!(l.step(300 * MS, None, &t), None, "upDelay counts from 150 ms");
        assert!(l.step(350 * MS, None, &t).unwrap().up);
    }

    #[test]
    fn a_member_that_joins_unhealthy_is_not_held_in_up_delay_when_it_comes_up() {
        let t = Timing::ms(100, 10_000, 0);
        let mut l = Liveness::new(false, 0);
        assert!(!l.up());
        assert_eq!(l.step(MS, verdict(&Observations { admin_up: false, ..obs(false) }, &t), &t), None);
        assert_eq!(l.reason.as_deref(), Some("set down"));
        // Set up by the bond, carrier after the NIC's negotiation: at once, no upDelay.
        assert_eq!(l.step(3_000 * MS, verdict(&obs(true), &t), &t).map(|c| c.up), Some(true));
        // Once it has been up, a recovery waits out its upDelay.
        l.step(4_000 * MS, verdict(&obs(false), &t), &t);
        assert_eq!(l.step(5_000 * MS, verdict(&obs(true), &t), &t), None);
        assert!(!l.up() && l.recovering());
        // Still unhealthy after the grace: it failed, and its recovery waits.
        let mut late = Liveness::new(false, 0);
        late.step(JOIN_GRACE, verdict(&obs(false), &t), &t);
        assert_eq!(late.step(JOIN_GRACE + MS, verdict(&obs(true), &t), &t), None);
        assert!(late.recovering());
    }

    #[test]
    fn during_up_delay_the_reason_says_what_is_true_now() {
        let t = Timing::ms(100, 500, 0);
        let mut l = Liveness::new(true, 0);
        l.step(0, verdict(&obs(false), &t), &t);
        assert_eq!(l.reason.as_deref(), Some("no carrier"));
        l.step(10 * MS, verdict(&obs(true), &t), &t);
        assert_eq!(l.reason.as_deref(), Some("healthy again, held out for upDelay 500 ms"));
    }

    #[test]
    fn promotion_ends_the_up_delay_and_says_how_early() {
        let t = Timing::ms(100, 10_000, 0);
        let mut l = Liveness::new(true, 0);
        l.step(0, verdict(&obs(false), &t), &t);
        assert_eq!(l.promote(MS, &t), None, "not recovering: nothing to promote");
        l.step(1_000 * MS, verdict(&obs(true), &t), &t);
        assert_eq!(l.promote(1_500 * MS, &t), Some(9_500 * MS));
        assert!(l.up() && !l.recovering());
        assert_eq!(l.step(1_600 * MS, verdict(&obs(true), &t), &t), None, "already up");
    }

    #[test]
    fn silence_past_the_failover_interval_is_a_failure() {
        let t = Timing::ms(30, 0, 0);
        let mut o = obs(true);
        o.probe_silence = Some(30 * MS);
        assert_eq!(verdict(&o, &t), None);
        o.probe_silence = Some(31 * MS);
        assert_eq!(verdict(&o, &t).unwrap(), "silent: no probe reply for 31 ms");
        o.monitor_alive = Some(false);
        o.probe_silence = None;
        assert!(verdict(&o, &t).unwrap().contains("monitor"));
    }
}
