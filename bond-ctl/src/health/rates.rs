//! balance-aware `packet` without `speed`: each link's rate, measured. What the bond gave a link
//! (its transmit counter) is compared with what the link delivered (the peer's receive count,
//! from probe replies, [`super::metrics::Delivery`]) over the same stretch of time:
//!
//! - delivered clearly less than given (its queue grew or dropped), or the probe reply that
//!   brought the figure waited in a queue ([`QUEUED_FROM`] above the base round trip: a queue
//!   that stands, neither growing nor draining, delivers all it is given): the link is full,
//!   and what it delivered is its rate;
//! - delivered all it was given while the schedule kept it busy (given near the rate the
//!   schedule counted on): it may carry more, so its rate grows by [`GROWTH`] a window, and by
//!   [`GROWTH_NEAR_FULL`] once it was found full at about that rate (it is probed for more,
//!   gently, so a path that got faster is found without filling the queue every window);
//! - delivered all it was given, but the traffic gave it less than its rate: nothing learned,
//!   the rate stays.
//!
//! A window is the time between two delivery figures (a probe reply at least 200 ms after the
//! previous one); probes go every 250 ms while a link carries traffic under such a policy, so a
//! rate that halves is followed within one window, one that doubles within about three.

use super::metrics::Nanos;

/// Delivered below this share of what was given: the link is full.
const FULL_BELOW: f64 = 0.9;
/// A round trip this far above the base: the reply waited in a standing queue.
pub const QUEUED_FROM: Nanos = 3_000_000;
/// Given at least this share of the rate counted on: the schedule kept the link busy.
const BUSY_FROM: f64 = 0.7;
/// A window's growth for a link not yet found full...
pub const GROWTH: f64 = 1.25;
/// ...and for one found full at about its rate (within [`NEAR_FULL`]).
pub const GROWTH_NEAR_FULL: f64 = 1.05;
const NEAR_FULL: f64 = 1.2;
/// Windows shorter than this (on this side's clock) are too noisy to compare.
const MIN_WINDOW: Nanos = 100_000_000;
/// Less than this given in a window (bit/s) says nothing about the link.
const MIN_GIVEN_BPS: f64 = 100_000.0;

/// One link's measured rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateEstimate {
    /// (time, transmit byte count) where the current window began.
    window_from: Option<(Nanos, u64)>,
    /// The latest transmit byte count, and when it was read.
    latest: Option<(Nanos, u64)>,
    /// When the count last moved.
    pub last_sent: Option<Nanos>,
    /// The rate the schedule counts on (bit/s); None until the first window.
    pub bps: Option<f64>,
    /// The rate at which the link was last found full.
    full_at: Option<f64>,
}

impl RateEstimate {
    /// The bond's transmit byte count for the link, read at `now`. A count that went back (the
    /// counters were reset) starts a new window.
    pub fn counted(&mut self, now: Nanos, tx_bytes: u64) {
        match self.latest {
            Some((_, b)) if tx_bytes < b => self.window_from = None,
            Some((_, b)) if tx_bytes == b => {}
            _ => self.last_sent = Some(now),
        }
        self.latest = Some((now, tx_bytes));
        if self.window_from.is_none() {
            self.window_from = self.latest;
        }
    }

    /// Whether the link was given traffic within `within` of `now`.
    pub fn carrying(&self, now: Nanos, within: Nanos) -> bool {
        self.last_sent.is_some_and(|t| now.saturating_sub(t) <= within)
    }

    /// A new figure of what the link delivered (bit/s over the last window), brought by a reply
    /// that waited `queue` (its round trip less the base, when known): the rate moves as the
    /// module says, and a new window begins. Returns whether the rate changed.
    pub fn delivered(&mut self, delivered_bps: f64, queue: Option<Nanos>) -> bool {
        let (Some((t0, b0)), Some((t1, b1))) = (self.window_from, self.latest) else { return false };
        if t1.saturating_sub(t0) < MIN_WINDOW {
            return false;
        }
        self.window_from = self.latest;
        let given = (b1 - b0) as f64 * 8.0 * 1e9 / (t1 - t0) as f64;
        if given < MIN_GIVEN_BPS {
            return false;
        }
        let before = self.bps;
        let next = if delivered_bps < FULL_BELOW * given || queue.is_some_and(|q| q >= QUEUED_FROM) {
            self.full_at = Some(delivered_bps);
            delivered_bps
        } else {
            let known = self.bps.unwrap_or(0.0).max(delivered_bps);
            let busy = self.bps.is_none_or(|r| given >= BUSY_FROM * r);
            let near_full = self.full_at.is_some_and(|f| known <= NEAR_FULL * f);
            match (busy, near_full) {
                (false, _) => known,
                (true, true) => known * GROWTH_NEAR_FULL,
                (true, false) => known * GROWTH,
            }
        };
        self.bps = Some(next);
        before != self.bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::metrics::MS;

    /// `given` and `delivered` in Mbit/s over windows of 250 ms, starting at `t` ms with the
    /// counter at `bytes`: (the new time, the new count).
    fn window(r: &mut RateEstimate, (t, bytes): (u64, u64), given: f64, delivered: f64) -> (u64, u64) {
        let bytes = bytes + (given * 1e6 / 8.0 * 0.25) as u64;
        let t = t + 250;
        r.counted(t * MS, bytes);
        r.delivered(delivered * 1e6, None);
        (t, bytes)
    }

    fn mbit(r: &RateEstimate) -> f64 {
        r.bps.unwrap_or(0.0) / 1e6
    }

    #[test]
    fn a_full_link_is_worth_what_it_delivered() {
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        window(&mut r, (0, 0), 12.0, 5.0);
        assert!((mbit(&r) - 5.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn a_link_whose_queue_stands_is_full_though_it_delivered_all_it_was_given() {
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        r.counted(250 * MS, 10_000_000 / 8 / 4);
        assert!(r.delivered(10e6, Some(QUEUED_FROM + MS)));
        assert!((mbit(&r) - 10.0).abs() < 1e-9, "{r:?}");
        r.counted(500 * MS, 2 * 10_000_000 / 8 / 4);
        r.delivered(10e6, Some(QUEUED_FROM / 2));
        assert!((mbit(&r) - 10.5).abs() < 1e-9, "no queue: probed 5% higher, {r:?}");
    }

    #[test]
    fn a_busy_link_that_delivered_everything_grows_until_it_is_full() {
        let capacity = 20.0;
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        let mut at = (0, 0);
        // The schedule gives a link about the rate it counts on (3 Mbit/s to begin with).
        let mut windows = 0;
        let mut given = 3.0_f64;
        while windows < 20 {
            at = window(&mut r, at, given, given.min(capacity));
            given = mbit(&r);
            windows += 1;
            if r.full_at.is_some() {
                break;
            }
        }
        assert!(windows <= 10, "from 3 to 20 Mbit/s in {windows} windows of 250 ms");
        assert!((mbit(&r) - capacity).abs() < 1e-9, "found full at its capacity: {r:?}");
        // From then on it is probed gently: 5% a window, not 25%.
        window(&mut r, at, capacity * 0.9, capacity * 0.9);
        assert!((mbit(&r) - capacity * 1.05).abs() < 1e-6, "{r:?}");
    }

    #[test]
    fn a_link_the_traffic_does_not_fill_keeps_its_rate() {
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        let at = window(&mut r, (0, 0), 10.0, 10.0);
        assert!((mbit(&r) - 12.5).abs() < 1e-9, "busy before any rate was known: grows");
        window(&mut r, at, 1.0, 1.0);
        assert!((mbit(&r) - 12.5).abs() < 1e-9, "given 1 of 12.5: nothing learned");
    }

    #[test]
    fn a_rate_that_halves_is_followed_in_one_window() {
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        let at = window(&mut r, (0, 0), 20.0, 10.0);
        assert!((mbit(&r) - 10.0).abs() < 1e-9);
        window(&mut r, at, 9.0, 4.5);
        assert!((mbit(&r) - 4.5).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn short_windows_idle_links_and_reset_counters_say_nothing() {
        let mut r = RateEstimate::default();
        r.counted(0, 0);
        r.counted(50 * MS, 100_000);
        assert!(!r.delivered(1e6, None), "50 ms: too short to compare");
        let mut idle = RateEstimate::default();
        idle.counted(0, 0);
        idle.counted(300 * MS, 100);
        assert!(!idle.delivered(1e6, None), "a few bytes given: nothing learned");
        assert_eq!(idle.bps, None);
        assert!(idle.carrying(300 * MS, 100 * MS));
        assert!(!idle.carrying(600 * MS, 100 * MS));
        // Counters reset (the bond made anew): the window starts again from the new count.
        r.counted(400 * MS, 10);
        assert!(!r.delivered(1e6, None));
        r.counted(650 * MS, 10 + 1_250_000 / 4);
        assert!(r.delivered(5e6, None));
        assert!((mbit(&r) - 5.0).abs() < 1e-9, "given 10 Mbit/s, delivered 5: {r:?}");
    }
}
