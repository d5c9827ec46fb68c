//! balance-aware `packet` without `speed`: each link's rate, measured. Each probe request goes
//! out with the bond's transmit byte count for its link noted; its reply brings the peer's
//! receive count for that link when the request arrived (`Delivery`'s figure). A request waits
//! behind the frames sent on its link before it, so between two requests the bond gave the link
//! what the two transmit counts differ by, and the link delivered what the two receive counts
//! differ by, over the same frames: given over the requests' send times, delivered over their
//! arrival times. Over each window of at least [`MIN_WINDOW`]:
//!
//! - until a link is found full it has no measured rate, and the schedule counts it at the
//!   capacity its packet trains found (`health::capacity`), or, with none, as fast as its
//!   device (`plan::schedules`): packets go where they arrive first, so the quickest path
//!   takes the traffic until it fills, then the next one, and so on. Its probes go twice as
//!   often meanwhile ([`FINDING_INTERVAL`], windows from [`MIN_FIRST_WINDOW`]), so each is found
//!   in about 250 ms, and it is found only by a window it was full all through (a queue at both
//!   ends) or by [`FIRST_DROPPING_WINDOWS`] in a row where it dropped with no queue at either
//!   (a policer): a queue at one end only means it filled partway, and a single dropping
//!   window may be a burst overflowing a short buffer between idle spells (both a fresh flow's
//!   slow start), either having delivered a share of the rate; its first rate is no more than
//!   a tenth below its train's capacity unless it delivered less than half of that (the train
//!   read high). The queue it is found with, where not counted (the schedule counted it as
//!   fast as its device, or a train read high), is counted from then on
//!   ([`Replied::uncounted_queue`], the data plane's `busy_until`), so the link drains it by
//!   the packets sent elsewhere, and the queue's rule below does not cut a rate that is right.
//!   A link counted by its train, kept busy, whose probes find clearly less queue than the
//!   schedule counts ([`QUEUED_FROM`] or more) is counted too slow: the train read low (traffic
//!   queued among its frames), and given less than it carries, it would never fill to be found.
//!   The queue's rule moves the train's figure as it moves a measured rate, and the result is
//!   the link's first rate;
//! - delivered clearly less than given (frames dropped, or a queue grew, which stretches the
//!   arrivals), or the requests at both ends of the window waited in a queue on their way out
//!   ([`QUEUED_FROM`] or more, see below: backlogged all along; one flow's sender slows to the link it
//!   fills, which then delivers all it is given): the link is full, and what it delivered is
//!   its rate (by this rule down by at most [`MOST_DOWN`] a window: a link the traffic left
//!   idle for part of a window delivered less than it can);
//! - delivered all it was given, the schedule kept it busy (given near the rate it counts on)
//!   and the reply found no queue: it may carry more, so its rate grows by [`GROWTH`];
//! - otherwise (the traffic gave it less than its rate, or a queue stands at one end): the
//!   rate stays, but for the queue's rule below.
//!
//! A request's queue counts as one (for "at both ends") only when the bond gave the link
//! traffic since the request before: on a link given nothing, it is a reply's timing noise or
//! other traffic's.
//!
//! Then the queue: each request also notes the queue the schedule counted on its link when it
//! left (the data plane's `busy_until` less the send time), and its reply says the queue it
//! found on its way out (`ProbeWindow::queue_of`: the way out from our send stamp to the
//! peer's arrival stamp, above the base of the same, the two hosts' clock offset cancelling;
//! bounded by the round trip above its base, so a queue on the way back, the peer's own
//! traffic filling its side of the link, is not counted, and a drift between the clocks never
//! makes it read longer). A link the schedule counts too fast builds a queue it does not
//! count, so its packets arrive late and one flow is reordered; one counted too slow empties
//! its queue sooner than the schedule counts, and is given less than it carries. Where the two
//! differ by [`QUEUED_FROM`] or more, the rate moves by the difference over the window's length
//! (at most [`MOST_CORRECTION`] a window): 30 ms more than counted over 250 ms, 12% down. The
//! difference is a standing one, so it moves the rate again each window it stands; never more
//! than [`MOST_DOWN`] below what the link delivered in the window (room to drain the queue,
//! not to fall further), and never up for a link that delivered clearly less than it was
//! given (a policer, or a buffer too shallow to queue, drops instead).
//!
//! Probes go every 250 ms while a measured link carries traffic under such a policy: a rate that halves
//! is followed in about 1.6 s (a tenth a window, or quicker by the queue it builds), one that
//! doubles in about 6 s (3% a window) or as quickly as the queue the schedule counts on it says.
//! A link that fails or is punished leaves the schedule at once (the usable mask), whatever its
//! rate.

use std::collections::VecDeque;

use super::{
    capacity::Capacity,
    metrics::{Nanos, QUICK_PROBE_INTERVAL},
};

/// Delivered below this share of what was given: the link is full.
const FULL_BELOW: f64 = 0.9;
/// A full link's rate goes down to what it delivered, but to no less than this share of its
/// rate a window (by that rule; the queue's may take it further, see the module).
const MOST_DOWN: f64 = 0.9;
/// A request that waited this long on its way out (see the module) met a queue.
const QUEUED_FROM: Nanos = 3_000_000;
/// Given at least this share of the rate counted on: the schedule kept the link busy.
const BUSY_FROM: f64 = 0.7;
/// A window's growth for a busy link that delivered all it was given: small, so probing for
/// more fills its queue a little, not by a burst that reorders the flow.
const GROWTH: f64 = 1.03;
/// Windows shorter than this (between the requests' arrivals) are too noisy to compare...
const MIN_WINDOW: Nanos = 200_000_000;
/// ...but for the one that first finds a link full: what it delivered is the link's rate as
/// well as a window of 100 ms can say (the queue's rule mends a few percent), and a link
/// found in 250 ms, not 500, lets the next one be filled that much sooner.
const MIN_FIRST_WINDOW: Nanos = 100_000_000;
/// Windows in a row that must find a link dropping without a queue for its first rate to come
/// from one.
const FIRST_DROPPING_WINDOWS: u32 = 3;
/// How often a link carrying traffic is probed until it is first found full (two requests to
/// each shortest window); after that, [`QUICK_PROBE_INTERVAL`].
const FINDING_INTERVAL: Nanos = 125_000_000;
/// Less than this given in a window (bit/s) says nothing about the link.
const MIN_GIVEN_BPS: f64 = 100_000.0;
/// The most a window's difference between the queue found and the one counted moves a rate.
const MOST_CORRECTION: f64 = 0.25;
/// Requests whose transmit counts are kept while their replies are awaited.
const NOTED: usize = 16;

/// Where a window begins: a request's send time and transmit count, its arrival time at the
/// peer and the peer's receive count then.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    sent_at: Nanos,
    tx_bytes: u64,
    arrived_at: Nanos,
    rx_bytes: u64,
    /// Its request waited in a queue on its way out ([`QUEUED_FROM`]).
    queued: bool,
}

/// What the schedule can count on for a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured {
    /// The peer's replies say nothing of what it received (no peer bond answers, or one of an
    /// earlier version): no rate can be measured.
    Unmeasurable,
    /// Measurable, not found full yet; what a packet train said of its capacity (bit/s), if
    /// one did (`health::capacity`).
    NotYet(Option<f64>),
    /// Bits per second.
    Bps(f64),
}

/// One link's measured rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateEstimate {
    /// The latest transmit byte count.
    latest_tx: Option<u64>,
    /// When the count last moved.
    last_sent: Option<Nanos>,
    /// (sequence, transmit count) of requests sent, awaiting their replies.
    noted: VecDeque<(u32, u64)>,
    window_from: Option<Mark>,
    /// The send time and transmit count of the latest request replied to.
    last_request: Option<(Nanos, u64)>,
    /// Windows in a row that found the link dropping with no queue at either end.
    dropping_windows: u32,
    /// The rate the schedule counts on (bit/s); None until the link was first found full.
    pub bps: Option<f64>,
    /// A reply said what the peer received: the rate can be measured.
    counts_seen: bool,
    /// The queue the latest reply found, and the one the schedule counted as its request left.
    pub last_queue: Option<QueueSeen>,
    /// Its capacity by packet trains, counted on until it is found full.
    pub capacity: Capacity,
}

/// A reply's queue (on its way out, see the module) beside the one the packet schedule counted
/// on the link as the request left: shown in the status, to tell whether the schedule's model
/// of the link holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSeen {
    pub found: Nanos,
    pub counted: Nanos,
}

/// What a reply changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replied {
    /// What the schedule counts on (the rate, or the first reply that says what the peer
    /// received).
    pub moved: bool,
    /// The link was found full for the first time, with this much queue the schedule did not
    /// count (it counted the link as fast as its device): to be counted from now on, so that
    /// it drains by packets sent elsewhere, not by the queue rule cutting a rate that is right.
    pub uncounted_queue: Option<Nanos>,
}

/// A probe reply, as the estimate reads it.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub seq: u32,
    /// The request's send time and its arrival at the peer (the peer's clock).
    pub t1: Nanos,
    pub t2: Nanos,
    /// The peer's receive count for the link when the request arrived (0: it does not say).
    pub rx_bytes: u64,
    /// The queue the request waited in on its way out (`ProbeWindow::queue_of`), when known.
    pub queue: Option<Nanos>,
    /// The queue the packet schedule counted on the link when the request left.
    pub backlog: Nanos,
}

impl RateEstimate {
    /// The bond's transmit byte count for the link, read at `now`.
    pub fn counted(&mut self, now: Nanos, tx_bytes: u64) {
        if self.latest_tx != Some(tx_bytes) {
            self.last_sent = Some(now);
        }
        if self.latest_tx.is_some_and(|b| tx_bytes < b) {
            // Counters reset (the bond made anew): nothing before compares with what follows.
            self.noted.clear();
            self.window_from = None;
            self.last_request = None;
            self.dropping_windows = 0;
        }
        self.latest_tx = Some(tx_bytes);
    }

    /// What the schedule can count on.
    pub fn measured(&self) -> Measured {
        match self.bps {
            Some(bps) => Measured::Bps(bps),
            None if self.counts_seen => Measured::NotYet(self.capacity.bps()),
            None => Measured::Unmeasurable,
        }
    }

    /// How often the link's probes should go while it carries traffic: quicker until it is
    /// first found full (packets go where they arrive first, so the links fill one after the
    /// other, each waiting for the one before it to be found).
    pub fn probe_interval(&self) -> Nanos {
        if self.bps.is_none() { FINDING_INTERVAL } else { QUICK_PROBE_INTERVAL }
    }

    /// Whether the link was given traffic within `within` of `now`.
    pub fn carrying(&self, now: Nanos, within: Nanos) -> bool {
        self.last_sent.is_some_and(|t| now.saturating_sub(t) <= within)
    }

    /// Request `seq` goes out now, behind everything counted so far.
    pub fn probe_sent(&mut self, seq: u32) {
        let Some(tx) = self.latest_tx else { return };
        if self.noted.len() == NOTED {
            self.noted.pop_front();
        }
        self.noted.push_back((seq, tx));
    }

    /// A reply: once a window is complete, the rate moves as the module says and a new window
    /// begins.
    pub fn replied(&mut self, r: Reply) -> Replied {
        let before = self.measured();
        if let Some(found) = r.queue {
            self.last_queue = Some(QueueSeen { found, counted: r.backlog });
        }
        self.window_ends(r);
        let first = matches!(before, Measured::NotYet(_)) && self.bps.is_some();
        let uncounted = r.queue.filter(|_| first).map(|q| q.saturating_sub(r.backlog)).filter(|&q| q > 0);
        Replied { moved: self.measured() != before, uncounted_queue: uncounted }
    }

    fn window_ends(&mut self, r: Reply) {
        let Some(i) = self.noted.iter().position(|(s, _)| *s == r.seq) else { return };
        let (_, tx_bytes) = self.noted[i];
        self.noted.drain(..=i);
        // A queue on a link the bond gave (next to) nothing since the request before is a
        // reply's timing noise (a base of a few samples, a busy host) or other traffic's: it
        // says nothing of whether the bond fills the link (a window "queued" at both ends so
        // once read a first rate of 0.7 Mbit/s for a 10 Mbit/s path).
        let given_before = self.last_request.is_some_and(|(t, tx)| r.t1 > t && bps(tx_bytes.saturating_sub(tx), r.t1 - t) >= MIN_GIVEN_BPS);
        self.last_request = Some((r.t1, tx_bytes));
        if r.rx_bytes == 0 {
            return;
        }
        self.counts_seen = true;
        let queued = given_before && r.queue.is_some_and(|q| q >= QUEUED_FROM);
        let mark = Mark { sent_at: r.t1, tx_bytes, arrived_at: r.t2, rx_bytes: r.rx_bytes, queued };
        let Some(from) = self.window_from.filter(|f| mark.arrived_at >= f.arrived_at && mark.rx_bytes >= f.rx_bytes) else {
            self.window_from = Some(mark);
            return;
        };
        let shortest = if self.bps.is_none() { MIN_FIRST_WINDOW } else { MIN_WINDOW };
        if mark.arrived_at - from.arrived_at < shortest || mark.sent_at <= from.sent_at || mark.tx_bytes < from.tx_bytes {
            return;
        }
        self.window_from = Some(mark);
        let given = bps(mark.tx_bytes - from.tx_bytes, mark.sent_at - from.sent_at);
        let delivered = bps(mark.rx_bytes - from.rx_bytes, mark.arrived_at - from.arrived_at);
        if given < MIN_GIVEN_BPS {
            return;
        }
        let full = delivered < FULL_BELOW * given || (mark.queued && from.queued);
        let dropping_only = full && !mark.queued && !from.queued;
        // Counted only until the first rate: a measured link's rate follows every window.
        self.dropping_windows = if dropping_only && self.bps.is_none() { self.dropping_windows + 1 } else { 0 };
        let next = match self.bps {
            // Counted by its train, kept busy, and its probes find clearly less queue than the
            // schedule counts: the train read low (traffic queued among its frames), and a
            // link given less than it carries never fills to be found full. The queue's rule
            // moves the train's capacity as it would a measured rate, which then is the link's.
            None if !full => match (self.capacity.bps(), r.queue) {
                (Some(c), Some(queue)) if given >= BUSY_FROM * c && r.backlog >= queue + QUEUED_FROM => {
                    let window = Window { delivered, dropping: false, length: mark.sent_at - from.sent_at };
                    follow_the_queue(c, c.max(delivered), queue, r.backlog, window)
                }
                _ => return,
            },
            // A queue at one end only: the link filled partway through the window, and what it
            // delivered is a share of its rate (a flow's slow start fills it so).
            None if mark.queued != from.queued => return,
            // Dropping with no queue at either end: a policer, which drops window after window,
            // or a burst overflowing a short buffer while the link idles between bursts (a
            // flow's slow start), which delivered a share of the rate.
            None if dropping_only && self.dropping_windows < FIRST_DROPPING_WINDOWS => return,
            // Its packet train's capacity, if one said, bounds how far below it the first
            // window takes the rate (as a measured rate's would be): a window full at both
            // ends may have idled between slow start's bursts (a 10 Mbit/s path, counted
            // right by its train, was once found full at 5.7). Less than half of it says the
            // train read high (a policer's burst allowance): what it delivered is the rate.
            None => match self.capacity.bps() {
                Some(c) if delivered >= c / 2.0 => delivered.max(c * MOST_DOWN),
                _ => delivered,
            },
            Some(rate) if full => delivered.max(rate * MOST_DOWN),
            Some(rate) if given >= BUSY_FROM * rate && !mark.queued => rate.max(delivered) * GROWTH,
            Some(rate) => rate.max(delivered),
        };
        self.bps = Some(match (self.bps, r.queue) {
            (Some(rate), Some(queue)) => {
                let window = Window { delivered, dropping: delivered < FULL_BELOW * given, length: mark.sent_at - from.sent_at };
                follow_the_queue(rate, next, queue, r.backlog, window)
            }
            _ => next,
        });
    }
}

/// `bytes` over `ns` in bit/s.
fn bps(bytes: u64, ns: Nanos) -> f64 {
    bytes as f64 * 8.0 * 1e9 / ns as f64
}

/// What a window said, for [`follow_the_queue`].
struct Window {
    /// What the link delivered over it (bit/s).
    delivered: f64,
    /// It delivered clearly less than it was given.
    dropping: bool,
    length: Nanos,
}

/// The rate `next` (the window's verdict on `rate`), kept to what the link's queue says: the
/// reply found `queue` (on its request's way out) where the schedule, counting `rate`,
/// counted `backlog` as the request left. More than counted: the link carries less than
/// counted (or traffic from elsewhere shares it); less: it carries more. The rate moves by the
/// difference over the window's length, at most [`MOST_CORRECTION`] a window, not for a
/// difference within [`QUEUED_FROM`] (what a reply's timing varies by), never more than
/// [`MOST_DOWN`] below what the link delivered, and never up for a link that delivered clearly
/// less than it was given (a link that drops rather than queues finds no queue however fast it
/// is counted).
fn follow_the_queue(rate: f64, next: f64, queue: Nanos, backlog: Nanos, window: Window) -> f64 {
    let behind = queue as f64 - backlog as f64;
    if behind.abs() < QUEUED_FROM as f64 || window.length == 0 {
        return next;
    }
    let step = (behind / window.length as f64).clamp(-MOST_CORRECTION, MOST_CORRECTION);
    let followed = rate * (1.0 - step);
    if behind > 0.0 {
        next.min(followed.max(window.delivered * MOST_DOWN))
    } else if window.dropping {
        next
    } else {
        next.max(followed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::metrics::MS;

    /// A link under test: requests every 250 ms, `given` and `delivered` Mbit/s between them.
    struct Link {
        r: RateEstimate,
        seq: u32,
        t: Nanos,
        tx: u64,
        rx: u64,
        /// The queue the schedule counts when each request leaves.
        backlog: Nanos,
        /// What the latest reply changed.
        last: Replied,
    }

    impl Link {
        fn new() -> Link {
            let last = Replied { moved: false, uncounted_queue: None };
            let mut l = Link { r: RateEstimate::default(), seq: 0, t: 0, tx: 0, rx: 0, backlog: 0, last };
            l.window(0.0, 0.0, None);
            l
        }

        /// One window: the request goes out after `given` Mbit/s for 250 ms, arrives after
        /// `delivered` Mbit/s did, its reply having waited `queue`.
        fn window(&mut self, given: f64, delivered: f64, queue: Option<Nanos>) -> bool {
            self.window_of(250 * MS, given, delivered, queue)
        }

        /// Windows dropping without a queue, enough of them in a row to find the link full
        /// (once); whether the last changed what the schedule counts on.
        fn dropping(&mut self, given: f64, delivered: f64) -> bool {
            (0..FIRST_DROPPING_WINDOWS).map(|_| self.window(given, delivered, None)).last().unwrap_or(false)
        }

        /// The same over `length`.
        fn window_of(&mut self, length: Nanos, given: f64, delivered: f64, queue: Option<Nanos>) -> bool {
            let bytes = |mbit: f64| (mbit * 1e6 / 8.0 * length as f64 / 1e9) as u64;
            self.t += length;
            self.tx += bytes(given);
            self.rx += bytes(delivered);
            self.seq += 1;
            self.r.counted(self.t, self.tx);
            self.r.probe_sent(self.seq);
            self.last = self.r.replied(Reply {
                seq: self.seq,
                t1: self.t,
                t2: self.t + MS,
                rx_bytes: self.rx.max(1),
                queue,
                backlog: self.backlog,
            });
            self.last.moved
        }

        fn mbit(&self) -> f64 {
            self.r.bps.unwrap_or(0.0) / 1e6
        }
    }

    #[test]
    fn a_link_that_delivers_less_than_it_is_given_is_worth_what_it_delivered() {
        let mut l = Link::new();
        l.dropping(12.0, 5.0);
        assert!((l.mbit() - 5.0).abs() < 1e-3, "{:?}", l.r);
        // Down by a tenth at most a window (it may have been idle part of it).
        l.window(5.0, 2.0, None);
        assert!((l.mbit() - 5.0 * MOST_DOWN).abs() < 1e-3, "{:?}", l.r);
    }

    #[test]
    fn a_link_is_as_fast_as_its_device_until_found_full_then_probed_gently() {
        assert_eq!(RateEstimate::default().measured(), Measured::Unmeasurable, "no reply has said what the peer received");
        let mut l = Link::new();
        assert_eq!(l.r.measured(), Measured::NotYet(None));
        // Delivering all it is given: not measured (the schedule counts it as fast as its
        // device, so it is given more until it fills).
        assert!(!l.window(8.0, 8.0, None));
        assert_eq!(l.r.bps, None);
        assert!(l.dropping(30.0, 20.0));
        assert!((l.mbit() - 20.0).abs() < 1e-3, "found full: {:?}", l.r);
        // Busy without a queue: probed a little higher.
        l.window(18.0, 18.0, None);
        assert!((l.mbit() - 20.0 * GROWTH).abs() < 1e-3, "{:?}", l.r);
        // A queue at one end of a window only (one the schedule counted): held.
        let held = l.mbit();
        l.backlog = QUEUED_FROM;
        l.window(20.0, 20.0, Some(QUEUED_FROM));
        assert!((l.mbit() - held).abs() < 1e-3, "{:?}", l.r);
        // Queued at both ends: backlogged all along, so what it delivered is its rate (one
        // flow's sender slows to the link it fills, which then delivers all it is given).
        l.window(20.0, 20.0, Some(QUEUED_FROM));
        assert!((l.mbit() - 20.0).abs() < 1e-3, "{:?}", l.r);
    }

    /// A link whose packet train found `mbps`.
    fn with_train(mbps: f64) -> Link {
        let mut l = Link::new();
        let spacing = (crate::health::capacity::TRAIN_FRAME_LEN as f64 * 8.0 / mbps * 1e3) as Nanos;
        l.r.capacity.sent(1_000, 0);
        let frames = crate::health::capacity::TRAIN_FRAMES;
        let moved: Vec<bool> = (0..frames).map(|i| l.r.capacity.replied(1_000 + i, 0, Nanos::from(i) * spacing)).collect();
        assert_eq!(moved.last(), Some(&true), "the last reply completes the train");
        assert_eq!(l.r.measured(), Measured::NotYet(l.r.capacity.bps()));
        l
    }

    #[test]
    fn a_train_bounds_how_low_the_first_window_takes_the_rate() {
        // Found full (a queue at both ends) at 5.7 by a window slow start left partly idle: the
        // train's 10 Mbit/s holds it to a tenth below.
        let mut l = with_train(10.0);
        l.window(0.0, 0.0, Some(10 * MS));
        l.window_of(FINDING_INTERVAL, 10.0, 5.7, Some(5 * MS));
        assert!(l.window_of(FINDING_INTERVAL, 10.0, 5.7, Some(5 * MS)));
        assert!((l.mbit() - 9.0).abs() < 0.01, "{:?}", l.r);
        // Delivering more than the train said: that is the rate.
        let mut l = with_train(10.0);
        l.window_of(FINDING_INTERVAL, 14.0, 12.0, Some(5 * MS));
        assert!(l.window_of(FINDING_INTERVAL, 14.0, 12.0, Some(5 * MS)));
        assert!((l.mbit() - 12.0).abs() < 0.01, "{:?}", l.r);
        // Less than half of it: the train read high (a policer's burst), the window is right.
        let mut l = with_train(100.0);
        l.window_of(FINDING_INTERVAL, 30.0, 10.0, Some(5 * MS));
        assert!(l.window_of(FINDING_INTERVAL, 30.0, 10.0, Some(5 * MS)));
        assert!((l.mbit() - 10.0).abs() < 0.01, "{:?}", l.r);
    }

    #[test]
    fn a_train_that_read_low_is_corrected_by_the_queue_the_probes_do_not_find() {
        // The train said 16 where the link carries 20: kept busy at 16, it never fills, and
        // the schedule counts 12 ms of queue where the probes find 1.
        let mut l = with_train(16.0);
        l.window(0.0, 0.0, None);
        l.backlog = 12 * MS;
        assert!(l.window(16.0, 16.0, Some(MS)));
        // Up by the 11 ms over the 250 ms window, and measured from now on.
        assert!((l.mbit() - 16.0 * (1.0 + 11.0 / 250.0)).abs() < 0.01, "{:?}", l.r);
        assert_eq!(l.last.uncounted_queue, None, "no queue left uncounted");
        // Counted right (a queue found as long as the one counted), or not kept busy: the
        // train's figure stands.
        for (given, found) in [(16.0, Some(11 * MS)), (8.0, Some(MS)), (16.0, None)] {
            let mut l = with_train(16.0);
            l.window(0.0, 0.0, None);
            l.backlog = 12 * MS;
            assert!(!l.window(given, given, found), "{given} {found:?}");
            assert_eq!(l.r.measured(), Measured::NotYet(l.r.capacity.bps()));
        }
    }

    #[test]
    fn a_link_is_found_full_by_a_window_it_was_full_all_through_and_probed_quicker_until_then() {
        let mut l = Link::new();
        assert_eq!(l.r.probe_interval(), FINDING_INTERVAL);
        // A flow's slow start fills the link partway through the window (a queue at its end
        // only): what it delivered is a share of its rate, so nothing is learned.
        assert!(!l.window_of(FINDING_INTERVAL, 30.0, 12.0, Some(20 * MS)));
        assert_eq!(l.r.bps, None);
        // Queued at both ends of the next, as short: full all through, and that is its rate.
        // The 20 ms of queue it was found with went uncounted (the schedule counted 2 ms on a
        // link as fast as its device): counted from now on.
        l.backlog = 2 * MS;
        assert!(l.window_of(FINDING_INTERVAL, 30.0, 20.0, Some(20 * MS)));
        assert!((l.mbit() - 20.0).abs() < 1e-3, "{:?}", l.r);
        assert_eq!(l.last.uncounted_queue, Some(18 * MS));
        assert_eq!(l.r.probe_interval(), QUICK_PROBE_INTERVAL);
        // Once found, a window that short is too noisy to follow the rate by, and a queue
        // found is the queue rule's.
        assert!(!l.window_of(FINDING_INTERVAL, 30.0, 10.0, Some(20 * MS)));
        assert_eq!(l.last.uncounted_queue, None);
        // A queue read on a link given nothing before its request is no queue: it does not
        // make the next window one full all through.
        let mut l = Link::new();
        l.window(0.0, 0.0, Some(10 * MS));
        assert!(!l.window_of(FINDING_INTERVAL, 0.7, 0.7, Some(20 * MS)));
        assert_eq!(l.r.bps, None);
        // A link that drops rather than queues is found full without a queue at either end,
        // by the third window in a row that says so (one, as a burst of a flow's slow start
        // overflowing a short buffer, can say so of a link it left idle in between).
        let mut l = Link::new();
        assert!(!l.window_of(FINDING_INTERVAL, 30.0, 8.0, None));
        assert!(!l.window_of(FINDING_INTERVAL, 30.0, 20.0, None));
        assert!(l.window_of(FINDING_INTERVAL, 30.0, 20.0, None));
        assert!((l.mbit() - 20.0).abs() < 1e-3, "{:?}", l.r);
    }

    #[test]
    fn a_rate_follows_the_difference_between_the_queue_found_and_the_one_counted() {
        let found = |l: &mut Link| {
            l.dropping(30.0, 20.0);
            assert!((l.mbit() - 20.0).abs() < 1e-3, "{:?}", l.r);
        };
        // The schedule counted 30 ms of queue; the request found none: the link carries more
        // than counted, and the rate rises by the difference over the 250 ms window.
        let mut l = Link::new();
        found(&mut l);
        l.backlog = 30 * MS;
        l.window(20.0, 20.0, Some(0));
        assert!((l.mbit() - 20.0 * 1.12).abs() < 1e-3, "{:?}", l.r);
        assert_eq!(l.r.last_queue, Some(QueueSeen { found: 0, counted: 30 * MS }), "both shown in the status");
        // By no more than a quarter a window, however far apart.
        l.backlog = 500 * MS;
        let before = l.mbit();
        l.window(20.0, 20.0, Some(0));
        assert!((l.mbit() - before * (1.0 + MOST_CORRECTION)).abs() < 1e-3, "{:?}", l.r);
        // A queue 10 ms longer than counted: the link carries less (or is shared), down 4%.
        let mut l = Link::new();
        found(&mut l);
        l.backlog = 5 * MS;
        l.window(20.0, 20.0, Some(15 * MS));
        assert!((l.mbit() - 20.0 * 0.96).abs() < 1e-3, "{:?}", l.r);
        // Never more than a tenth below what the link delivered: 100 ms more than counted
        // would take a quarter off, but it delivered 19 Mbit/s.
        let mut l = Link::new();
        found(&mut l);
        l.backlog = 0;
        l.window(20.0, 19.0, Some(100 * MS));
        assert!((l.mbit() - 19.0 * MOST_DOWN).abs() < 1e-3, "{:?}", l.r);
        // A link that drops what it is given finds no queue, however fast it is counted: not
        // taken up by the queue the schedule counted.
        let mut l = Link::new();
        found(&mut l);
        l.backlog = 30 * MS;
        l.window(20.0, 15.0, Some(0));
        assert!((l.mbit() - 20.0 * MOST_DOWN).abs() < 1e-3, "{:?}", l.r);
        // Within what a reply's timing varies by: the window's verdict alone (busy without a
        // queue worth the name: probed 3% higher).
        let mut l = Link::new();
        found(&mut l);
        l.backlog = 2 * MS;
        l.window(20.0, 20.0, Some(0));
        assert!((l.mbit() - 20.0 * GROWTH).abs() < 1e-3, "{:?}", l.r);
    }

    #[test]
    fn a_link_the_traffic_does_not_fill_keeps_its_rate() {
        let mut l = Link::new();
        l.dropping(12.0, 8.0);
        assert!((l.mbit() - 8.0).abs() < 1e-3);
        l.window(1.0, 1.0, None);
        assert!((l.mbit() - 8.0).abs() < 1e-3, "given 1 of 8: nothing learned, {:?}", l.r);
        l.window(8.0, 8.0, None);
        assert!((l.mbit() - 8.0 * GROWTH).abs() < 1e-3, "busy again: probed higher, {:?}", l.r);
    }

    #[test]
    fn short_windows_idle_links_replies_without_a_count_and_reset_counters_say_nothing() {
        let mut l = Link::new();
        l.t += 0;
        l.seq += 1;
        l.r.probe_sent(l.seq);
        assert!(
            !l.r.replied(Reply { seq: l.seq, t1: 50 * MS, t2: 51 * MS, rx_bytes: 100_000, queue: None, backlog: 0 }).moved,
            "50 ms: too short"
        );
        assert!(!l.window(0.001, 0.001, None), "a few bytes given: nothing learned");
        assert_eq!(l.r.bps, None);
        assert!(l.r.carrying(l.t, 100 * MS));
        assert!(!l.r.carrying(l.t + 2_000 * MS, 100 * MS));
        assert!(!l.r.replied(Reply { seq: 999, t1: 0, t2: 0, rx_bytes: 1, queue: None, backlog: 0 }).moved, "a request not noted");
        // The peer says nothing (an earlier version): nothing learned.
        l.seq += 1;
        l.t += 250 * MS;
        l.tx += 1_000_000;
        l.r.counted(l.t, l.tx);
        l.r.probe_sent(l.seq);
        assert!(!l.r.replied(Reply { seq: l.seq, t1: l.t, t2: l.t, rx_bytes: 0, queue: None, backlog: 0 }).moved);
        // Counters reset (the bond made anew): the windows start again.
        l.tx = 10;
        l.rx = 10;
        l.r.counted(l.t, l.tx);
        assert!(!l.window(10.0, 5.0, None), "the first window after the reset only marks its start");
        assert!(l.dropping(10.0, 5.0));
        assert!((l.mbit() - 5.0).abs() < 1e-3, "{:?}", l.r);
    }
}
