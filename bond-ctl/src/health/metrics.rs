//! A link's measurements over a sliding window of probes: latency, its maximum and variation,
//! loss, errors, and availability.

use std::collections::VecDeque;

use bond_common::probe::{FLAG_CORRUPT, ProbeEvent, probe_sender_of};
use serde::{Deserialize, Serialize};

/// Nanoseconds on the kernel's monotonic clock (`CLOCK_MONOTONIC`, what eBPF stamps with).
pub type Nanos = u64;

pub const MS: Nanos = 1_000_000;

/// Probes the metrics are computed over (ZeroTier uses 64-sample windows too).
pub const WINDOW: usize = 64;

/// How often a link is probed while it is quick to learn from: its round trip rests on a few
/// probes yet (`Member::next_probe`), or its rate is followed (`rates`).
pub const QUICK_PROBE_INTERVAL: Nanos = 250 * MS;

/// The six quality metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkMetrics {
    /// Mean round-trip latency (ms).
    pub lat: f64,
    /// Maximum round-trip latency observed (ms).
    pub ltm: f64,
    /// Packet delay variation: standard deviation of the round trips (ms).
    pub pdv: f64,
    /// Packet loss ratio: probes lost for no reason the link's own load explains.
    pub plr: f64,
    /// Probes lost while the link's queue was full (`plr` does not count them): the round
    /// trips around each loss stood well above the link's base, so the loss was congestion,
    /// the signal TCP slows down on, not a fault of the link.
    #[serde(default)]
    pub plr_congestion: f64,
    /// Packet error ratio: corrupt or malformed probes among those received.
    pub per: f64,
    /// Availability: share of the window the link was usable.
    pub avl: f64,
    /// Round trips the figures rest on.
    pub samples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Reply { rtt: Nanos, corrupt: bool },
    Lost,
}

/// Outstanding and answered probes of one member.
#[derive(Debug, Clone, Default)]
pub struct ProbeWindow {
    /// (sequence, time sent) of probes awaiting an answer, oldest first.
    outstanding: VecDeque<(u32, Nanos)>,
    outcomes: VecDeque<Outcome>,
    /// When the last intact reply arrived.
    pub last_reply: Option<Nanos>,
    /// Whether any reply was ever received: the peer runs this software.
    pub peer_seen: bool,
    /// The link's round trip with empty queues, as the last minutes showed it (`BaseRtt`).
    base_rtt: BaseRtt,
    /// The same of the way out alone (`one_way`), with the two hosts' clock offset in it, and
    /// the peer bond it was measured with (its probe id, `probe_sender_of` its probe address,
    /// the same on all its members): another peer has another clock.
    base_one_way: BaseRtt,
    one_way_peer: u32,
}

/// How long the base round trip is remembered, in slots: long enough to span a transfer that
/// keeps a link's queue full for minutes, short enough to follow a path that changed.
const BASE_SLOT: Nanos = 30_000 * MS;
const BASE_SLOTS: usize = 10;
/// Round trips a slot keeps: its lowest, enough for its 10th percentile up to 640 samples (past
/// that, the lowest 64 give a lower percentile, which errs towards a lower base).
const SLOT_LOWEST: usize = 64;

/// A link's base round trip (or way out): the least, over the last five minutes in 30 s
/// slots, of each slot's 10th percentile. A percentile, not the minimum: on a jittery link the
/// minimum of thousands of round trips lies far below what the link ordinarily takes.
#[derive(Debug, Clone, Default)]
struct BaseRtt {
    slots: VecDeque<Slot>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    start: Nanos,
    count: usize,
    /// The slot's lowest round trips, ascending.
    lowest: Vec<Nanos>,
}

impl Slot {
    fn percentile_10(&self) -> Option<Nanos> {
        self.lowest.get((self.count / 10).min(self.lowest.len().saturating_sub(1))).copied()
    }
}

impl BaseRtt {
    fn record(&mut self, rtt: Nanos, now: Nanos) {
        if self.slots.back().is_none_or(|s| now >= s.start.saturating_add(BASE_SLOT)) {
            self.slots.push_back(Slot { start: now, ..Slot::default() });
            if self.slots.len() > BASE_SLOTS {
                self.slots.pop_front();
            }
        }
        let slot = self.slots.back_mut().expect("just ensured");
        slot.count += 1;
        let at = slot.lowest.partition_point(|&r| r <= rtt);
        if at < SLOT_LOWEST {
            slot.lowest.insert(at, rtt);
            slot.lowest.truncate(SLOT_LOWEST);
        }
    }

    fn get(&self) -> Option<Nanos> {
        self.slots.iter().filter_map(Slot::percentile_10).min()
    }
}

/// The way out of reply `e`'s request, from our send stamp (t1) to the peer's arrival stamp
/// (t2, the peer's clock): its delay plus the clocks' offset, which cancels out against the
/// base of the same. Shifted by half the range so any offset orders right in a `u64`
/// (differences are kept exactly).
fn one_way(e: &ProbeEvent) -> Nanos {
    e.t2.wrapping_sub(e.t1).wrapping_add(1 << 63)
}

/// Whether a round trip shows a full queue: queueing adds at least the base round trip again,
/// and 5 ms, so a link's ordinary variation does not pass for it (a drop-tail queue of 50 ms
/// on a 1 ms path stands 25-50 ms above its base when it drops). Queues shallower than that
/// go unseen, and their losses count as the link's: the safe side.
fn queued(rtt: Nanos, base: Nanos) -> bool {
    // Saturating: round trips come from kernel stamps, and a garbled record may hold anything.
    rtt > base.saturating_mul(2).saturating_add(5 * MS)
}

impl ProbeWindow {
    pub fn sent(&mut self, seq: u32, now: Nanos) {
        self.outstanding.push_back((seq, now));
        // A probe that is neither answered nor expired cannot stay forever.
        while self.outstanding.len() > WINDOW {
            self.outstanding.pop_front();
            if self.peer_seen {
                self.record(Outcome::Lost);
            }
        }
    }

    /// Probe `seq` never left (its send failed): it is neither answered nor lost.
    pub fn unsent(&mut self, seq: u32) {
        self.outstanding.retain(|(s, _)| *s != seq);
    }

    /// A reply to probe `seq` with round trip `rtt` (kernel timestamps). Replies to probes no
    /// longer outstanding (already counted lost) are ignored.
    pub fn replied(&mut self, seq: u32, rtt: Nanos, corrupt: bool, now: Nanos) {
        let Some(i) = self.outstanding.iter().position(|(s, _)| *s == seq) else {
            return;
        };
        self.outstanding.remove(i);
        if !self.peer_seen {
            // The first answer: probes sent before it went out when nothing answered yet.
            self.outstanding.drain(..i);
        }
        self.record(Outcome::Reply { rtt, corrupt });
        self.peer_seen = true;
        if !corrupt {
            self.last_reply = Some(now);
            self.base_rtt.record(rtt, now);
        }
    }

    /// A reply as the data plane reports it. The round trip runs from the send time the data
    /// plane kept (t1) to the reply's arrival (t4), both kernel stamps on CLOCK_MONOTONIC (as
    /// `now`): a reply that arrived before a silence deadline counts even if read after it.
    pub fn replied_event(&mut self, e: &ProbeEvent, now: Nanos) {
        let corrupt = e.flags & FLAG_CORRUPT != 0;
        if !corrupt && self.outstanding.iter().any(|(s, _)| *s == e.seq) {
            // Another peer (its clock has another offset), or the peer's clock stepped back
            // (a way out shorter than its base by more than the whole round trip cannot be
            // the path's): the offset in the base no longer holds.
            let stepped_back = self.base_one_way.get().is_some_and(|base| one_way(e).saturating_add(e.t4.saturating_sub(e.t1)) < base);
            let peer = probe_sender_of(e.peer);
            if peer != self.one_way_peer || stepped_back {
                self.base_one_way = BaseRtt::default();
                self.one_way_peer = peer;
            }
            self.base_one_way.record(one_way(e), e.t4.min(now));
        }
        self.replied(e.seq, e.t4.saturating_sub(e.t1), corrupt, e.t4.min(now));
    }

    /// The queue reply `e`'s request waited in on its way out, once the link's bases are
    /// known: its round trip above the base, or its way out above that way's base where that
    /// is less. The way out alone leaves out a queue on the way back (the peer's own traffic
    /// filling its side of the link), which the round trip holds. The two clocks' offset
    /// cancels against the base, their drift does not: where the clocks are not disciplined
    /// (NTP), a drift of 10 ppm adds up to 3 ms over the base's five minutes; the round trip
    /// bounds it, so the queue never reads longer than the round trip says.
    pub fn queue_of(&self, e: &ProbeEvent) -> Option<Nanos> {
        let round_trip = e.t4.saturating_sub(e.t1).saturating_sub(self.base_rtt.get()?);
        let way_out = self.base_one_way.get().map(|base| one_way(e).saturating_sub(base));
        Some(way_out.map_or(round_trip, |w| w.min(round_trip)))
    }

    /// Starts measuring afresh, for a link that has just recovered: what was lost while it was
    /// failed is the failure's business (punishment for flapping), not a mark on its quality.
    /// (Its base round trip stays: the path is the same.)
    pub fn restart(&mut self) {
        self.outstanding.clear();
        self.outcomes.clear();
    }

    /// Forgets the outcomes so far, keeping the probes still outstanding: the peer was away on
    /// every link, so what went unanswered meanwhile says nothing about this one.
    pub fn forget_outcomes(&mut self) {
        self.outcomes.clear();
    }

    /// The link's round trip with empty queues (see `BaseRtt`), once one was measured.
    pub fn base_rtt(&self) -> Option<Nanos> {
        self.base_rtt.get()
    }

    /// Probe outcomes (answered or lost) in the window.
    pub fn outcomes(&self) -> usize {
        self.outcomes.len()
    }

    /// Counts probes older than `timeout` as lost. Before the first reply on this link they
    /// are only forgotten: nothing may be answering yet (the far end still starting), and a
    /// link's quality is measured from its first answer on.
    pub fn expire(&mut self, now: Nanos, timeout: Nanos) {
        while let Some(&(_, sent)) = self.outstanding.front() {
            if now.saturating_sub(sent) < timeout {
                break;
            }
            self.outstanding.pop_front();
            if self.peer_seen {
                self.record(Outcome::Lost);
            }
        }
    }

    fn record(&mut self, o: Outcome) {
        self.outcomes.push_back(o);
        while self.outcomes.len() > WINDOW {
            self.outcomes.pop_front();
        }
    }

    /// Losses in the window that a full queue explains: the nearest intact round trip before
    /// or after the loss shows a queue (`queued`). Either, not both: TCP drains a queue after it
    /// overflows, so the probe after a loss may find it empty (a link that went dead under load
    /// is caught by its silence, not by this ratio).
    fn congestion_losses(&self) -> usize {
        let Some(base) = self.base_rtt.get() else {
            return 0;
        };
        let queue_of = |o: &Outcome| match o {
            Outcome::Reply { rtt, corrupt: false } => Some(queued(*rtt, base)),
            _ => None,
        };
        // For each outcome, whether the nearest intact reply after it showed a queue.
        let mut after = vec![None; self.outcomes.len()];
        let mut next = None;
        for (i, o) in self.outcomes.iter().enumerate().rev() {
            after[i] = next;
            next = queue_of(o).or(next);
        }
        let mut before = None;
        let mut count = 0;
        for (o, after) in self.outcomes.iter().zip(after) {
            if *o == Outcome::Lost && (before == Some(true) || after == Some(true)) {
                count += 1;
            }
            before = queue_of(o).or(before);
        }
        count
    }

    /// The metrics over the window; `avl` is supplied by the caller (it is about usability, not
    /// probes).
    pub fn metrics(&self, avl: f64) -> LinkMetrics {
        let rtts: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Reply { rtt, corrupt: false } => Some(*rtt as f64 / MS as f64),
                _ => None,
            })
            .collect();
        let received = self.outcomes.iter().filter(|o| matches!(o, Outcome::Reply { .. })).count();
        let lost = self.outcomes.len() - received;
        let congested = self.congestion_losses();
        let corrupt = self.outcomes.iter().filter(|o| matches!(o, Outcome::Reply { corrupt: true, .. })).count();
        let n = rtts.len() as f64;
        let lat = if rtts.is_empty() { 0.0 } else { rtts.iter().sum::<f64>() / n };
        // As ZeroTier: variation needs at least 4 samples to mean anything.
        let pdv = if rtts.len() < 4 { 0.0 } else { (rtts.iter().map(|r| (r - lat).powi(2)).sum::<f64>() / n).sqrt() };
        LinkMetrics {
            lat,
            ltm: rtts.iter().copied().fold(0.0, f64::max),
            pdv,
            plr: ratio(lost - congested, self.outcomes.len()),
            plr_congestion: ratio(congested, self.outcomes.len()),
            per: if received == 0 { 0.0 } else { corrupt as f64 / received as f64 },
            avl,
            samples: rtts.len(),
        }
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Share of time a link was usable over a sliding period (time-weighted).
#[derive(Debug, Clone)]
pub struct Availability {
    /// (since, usable) changes, oldest first.
    changes: VecDeque<(Nanos, bool)>,
    period: Nanos,
}

impl Availability {
    pub fn new(now: Nanos, usable: bool, period: Nanos) -> Self {
        Availability { changes: VecDeque::from([(now, usable)]), period }
    }

    pub fn set(&mut self, now: Nanos, usable: bool) {
        if self.changes.back().is_some_and(|(_, u)| *u != usable) {
            self.changes.push_back((now, usable));
        }
    }

    /// Share of the last `period` (or of the time since the first record) spent usable.
    pub fn share(&mut self, now: Nanos) -> f64 {
        let start = now.saturating_sub(self.period);
        // Keep one change at or before the start of the period.
        while self.changes.len() > 1 && self.changes[1].0 <= start {
            self.changes.pop_front();
        }
        let from = self.changes.front().map_or(now, |(t, _)| (*t).max(start));
        let span = now.saturating_sub(from);
        if span == 0 {
            return if self.changes.back().is_some_and(|(_, u)| *u) { 1.0 } else { 0.0 };
        }
        let mut up = 0;
        for (i, (t, u)) in self.changes.iter().enumerate() {
            let a = (*t).max(from);
            let b = self.changes.get(i + 1).map_or(now, |(t2, _)| *t2).max(from);
            if *u {
                up += b - a;
            }
        }
        up as f64 / span as f64
    }
}

/// Replies at least this far apart (on the peer's clock) make a delivery rate: closer ones
/// would measure the burst in between rather than the link.
const DELIVERY_MIN_GAP: Nanos = 200 * MS;

/// What a link delivered, as the peer counts it: probe replies carry the bytes the peer's
/// answering member had received (`ProbeEvent::peer_rx_bytes`) and when (`t2`, the peer's
/// clock), so two replies give the bits per second that arrived in between. The bond's own
/// counters say what it sent; this says what got there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delivery {
    /// (peer time, peer's byte count) the next rate runs from.
    from: Option<(Nanos, u64)>,
    /// Bits per second between the last two replies far enough apart; None until then, or
    /// when the peer does not say.
    pub bps: Option<f64>,
}

impl Delivery {
    /// A reply's count `rx_bytes` at the peer's time `t2`. A count of 0 says nothing (an
    /// earlier version's reply, or nothing received yet); a count or time that went back (the
    /// peer's bond made anew) starts again from it.
    pub fn record(&mut self, t2: Nanos, rx_bytes: u64) {
        if rx_bytes == 0 {
            return;
        }
        match self.from {
            Some((t, b)) if t2 >= t && rx_bytes >= b => {
                let gap = t2 - t;
                if gap >= DELIVERY_MIN_GAP {
                    self.bps = Some((rx_bytes - b) as f64 * 8.0 * 1e9 / gap as f64);
                    self.from = Some((t2, rx_bytes));
                }
            }
            _ => {
                self.from = Some((t2, rx_bytes));
                self.bps = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_variation_loss_and_errors() {
        let mut w = ProbeWindow::default();
        // The last reply before the loss is at the base: the loss is the link's, not a queue's.
        for (seq, rtt) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
            w.sent(seq, 0);
            w.replied(seq, rtt * MS, false, 1);
        }
        w.sent(5, 1);
        w.sent(6, 1);
        w.replied(6, 20 * MS, true, 2);
        w.expire(100 * MS, 50 * MS); // 5 is lost
        let m = w.metrics(1.0);
        assert_eq!(m.lat, 25.0);
        assert_eq!(m.ltm, 40.0);
        assert!((m.pdv - 125f64.sqrt()).abs() < 1e-9);
        assert!((m.plr - 1.0 / 6.0).abs() < 1e-9);
        assert!((m.per - 1.0 / 5.0).abs() < 1e-9);
        assert_eq!(m.samples, 4);
        assert!(w.peer_seen);
    }

    #[test]
    fn no_samples_no_figures() {
        let w = ProbeWindow::default();
        assert_eq!(w.metrics(1.0), LinkMetrics { avl: 1.0, ..Default::default() });
        assert!(!w.peer_seen);
    }

    #[test]
    fn probes_before_the_first_answer_are_not_losses() {
        let mut w = ProbeWindow::default();
        w.sent(1, 0);
        w.expire(10 * MS, 5 * MS);
        assert_eq!(w.outcomes(), 0);
        w.sent(2, 10 * MS);
        w.sent(3, 10 * MS);
        w.replied(3, MS, false, 11 * MS);
        w.expire(20 * MS, 5 * MS);
        assert_eq!(w.outcomes(), 1, "probe 2 went out before anything answered");
        w.sent(4, 22 * MS);
        w.expire(30 * MS, 5 * MS);
        assert_eq!(w.metrics(1.0).plr, 0.5);
    }

    #[test]
    fn late_replies_after_expiry_do_not_count_twice() {
        let mut w = ProbeWindow { peer_seen: true, ..Default::default() };
        w.sent(1, 0);
        w.expire(10 * MS, 5 * MS);
        w.replied(1, 11 * MS, false, 11 * MS);
        let m = w.metrics(1.0);
        assert_eq!((m.plr, m.samples), (1.0, 0));
        assert_eq!(w.last_reply, None);
    }

    #[test]
    fn window_keeps_the_latest_outcomes() {
        let mut w = ProbeWindow { peer_seen: true, ..Default::default() };
        for seq in 0..(WINDOW as u32) {
            w.sent(seq, 0);
        }
        w.expire(u64::MAX, 1);
        for seq in 100..(100 + WINDOW as u32) {
            w.sent(seq, 0);
            w.replied(seq, MS, false, 1);
        }
        assert_eq!(w.metrics(1.0).plr, 0.0);
    }

    /// Probes one per 100 ms from `first` on: `Some(rtt ms)` answered, `None` lost.
    fn feed(w: &mut ProbeWindow, first: u32, at: Nanos, rtts: &[Option<u64>]) {
        for (i, rtt) in rtts.iter().enumerate() {
            let (seq, sent) = (first + i as u32, at + i as Nanos * 100 * MS);
            w.sent(seq, sent);
            match rtt {
                Some(r) => w.replied(seq, r * MS, false, sent + r * MS),
                None => w.expire(sent + 99 * MS, 90 * MS),
            }
        }
    }

    #[test]
    fn losses_among_queued_round_trips_are_congestion_not_the_links_loss() {
        let mut w = ProbeWindow::default();
        // An idle 1 ms link, then its queue fills: 30-50 ms round trips, probes dropped between.
        feed(&mut w, 0, 0, &[Some(1); 8]);
        feed(&mut w, 8, 10_000 * MS, &[Some(30), None, Some(45), None, None, Some(50), Some(40), None]);
        let m = w.metrics(1.0);
        assert_eq!(m.plr, 0.0, "{m:?}");
        assert!((m.plr_congestion - 4.0 / 16.0).abs() < 1e-9, "{m:?}");
        // The latest loss, with no reply since, is judged by the reply before it; a reply with
        // the queue drained (as TCP drains it after an overflow) does not change that.
        feed(&mut w, 16, 20_000 * MS, &[None]);
        assert_eq!(w.metrics(1.0).plr, 0.0);
        feed(&mut w, 17, 21_000 * MS, &[Some(1)]);
        assert_eq!(w.metrics(1.0).plr, 0.0);
        // A loss between two unqueued round trips is the link's.
        feed(&mut w, 18, 22_000 * MS, &[None, Some(1)]);
        assert!((w.metrics(1.0).plr - 1.0 / 20.0).abs() < 1e-9, "{:?}", w.metrics(1.0));
    }

    #[test]
    fn random_loss_and_ordinary_jitter_stay_the_links_loss() {
        let mut w = ProbeWindow::default();
        // 40 ms with a few ms of jitter: 44 is variation, not a queue (the bar is 2 x 38 + 5 ms).
        feed(&mut w, 0, 0, &[Some(40), None, Some(44), Some(38), None, Some(42), None, Some(41)]);
        let m = w.metrics(1.0);
        assert!((m.plr - 3.0 / 8.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.plr_congestion, 0.0);
        // On a 1 ms path the bar is 7 ms.
        let mut w = ProbeWindow::default();
        feed(&mut w, 0, 0, &[Some(1), Some(5), None, Some(4), Some(1)]);
        assert_eq!(w.metrics(1.0).plr, 0.2);
    }

    #[test]
    fn thousands_of_jittery_round_trips_do_not_pass_for_a_queue() {
        // 42 ms ± 7 ms (a sum of uniforms, close to normal), 5% lost at random, one probe per
        // 100 ms for five minutes: the minimum of these round trips is some 20 ms, but the
        // base is a 10th percentile, so nearly every loss stays the link's.
        let mut x: u64 = 12345;
        let mut uniform = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut w = ProbeWindow::default();
        let (mut lost, mut congested) = (0, 0.0);
        for seq in 0..3000u32 {
            let rtt = 42.0 + 7.0 * ((0..12).map(|_| uniform()).sum::<f64>() - 6.0);
            let r = if uniform() < 0.05 { None } else { Some(rtt.max(1.0) as u64) };
            feed(&mut w, seq, seq as Nanos * 100 * MS, &[r]);
            if seq % WINDOW as u32 == 0 {
                let m = w.metrics(1.0);
                lost += 1;
                congested += m.plr_congestion / (m.plr + m.plr_congestion).max(1e-9);
            }
        }
        assert!(congested / (lost as f64) < 0.05, "share of losses taken for congestion: {}", congested / lost as f64);
    }

    #[test]
    fn absurd_round_trips_neither_overflow_nor_pass_for_a_queue() {
        let mut w = ProbeWindow::default();
        w.sent(1, 0);
        w.replied(1, u64::MAX, false, u64::MAX);
        w.sent(2, 0);
        w.expire(u64::MAX, 1);
        w.sent(3, u64::MAX);
        w.replied(3, u64::MAX - 1, false, u64::MAX);
        let m = w.metrics(1.0);
        assert_eq!((m.plr, m.plr_congestion), (1.0 / 3.0, 0.0), "{m:?}");
    }

    #[test]
    fn the_base_round_trip_outlives_a_long_congestion_and_follows_a_path_that_changed() {
        let mut w = ProbeWindow::default();
        feed(&mut w, 0, 0, &[Some(2); 4]);
        // Four minutes of full queues: every probe in the window has queued, the base is still 2.
        feed(&mut w, 4, 240_000 * MS, &[Some(40), None, Some(40), None]);
        assert_eq!((w.metrics(1.0).plr, w.metrics(1.0).plr_congestion), (0.0, 0.25));
        // Six minutes on, 40 ms is what the path takes now: its losses count.
        for k in 0..12u32 {
            feed(&mut w, 8 + 4 * k, (300_000 + 30_000 * k as Nanos) * MS, &[Some(40), None, Some(40), Some(40)]);
        }
        let m = w.metrics(1.0);
        assert!(m.plr > 0.2 && m.plr_congestion == 0.0, "{m:?}");
    }

    #[test]
    fn availability_is_time_weighted() {
        let mut a = Availability::new(0, true, 100);
        a.set(40, false);
        a.set(50, true);
        assert!((a.share(100) - 0.9).abs() < 1e-9);
        // The down time leaves the period.
        assert!((a.share(200) - 1.0).abs() < 1e-9);
        a.set(200, false);
        assert!((a.share(250) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_restart_forgets_the_outage() {
        let mut w = ProbeWindow::default();
        w.sent(1, 0);
        w.replied(1, MS, false, MS);
        for seq in 2..10 {
            w.sent(seq, seq as Nanos * MS);
        }
        w.expire(100 * MS, 10 * MS);
        assert!(w.metrics(1.0).plr > 0.8);
        w.restart();
        assert_eq!(w.outcomes(), 0);
        assert_eq!(w.metrics(1.0).plr, 0.0);
        assert_eq!(w.last_reply, Some(MS), "silence is still measured from the last reply");
        assert!(w.peer_seen);
    }

    #[test]
    fn the_queue_is_the_way_outs_so_a_queue_on_the_way_back_is_not_counted() {
        // The peer's clock is far behind ours (it booted later): its stamps are below ours.
        let behind = 5_000_000 * MS;
        let mut w = ProbeWindow::default();
        let mut seq = 0;
        // A reply to a request sent at `at` that waited `out` on the way out and `back` on the
        // way back, over a path of 1 ms each way.
        let mut reply = |w: &mut ProbeWindow, at: Nanos, out: Nanos, back: Nanos| {
            seq += 1;
            w.sent(seq, at);
            let t2 = at + MS + out;
            let e = ProbeEvent { seq, t1: at, t2: t2.wrapping_sub(behind), t4: t2 + MS + back, ..ProbeEvent::default() };
            w.replied_event(&e, e.t4);
            e
        };
        let e = reply(&mut w, 0, 0, 0);
        assert_eq!(w.queue_of(&e), Some(0));
        for i in 1..20 {
            reply(&mut w, i * 100 * MS, 0, 0);
        }
        let e = reply(&mut w, 2_000 * MS, 12 * MS, 0);
        assert_eq!(w.queue_of(&e), Some(12 * MS), "waited 12 ms on the way out");
        let e = reply(&mut w, 2_100 * MS, 0, 30 * MS);
        assert_eq!(w.queue_of(&e), Some(0), "waited on the way back only: not the link's queue out");
        let e = reply(&mut w, 2_200 * MS, 5 * MS, 30 * MS);
        assert_eq!(w.queue_of(&e), Some(5 * MS));
        // The clocks drift apart: the way out reads longer than the round trip allows, and the
        // round trip bounds it.
        let mut e = reply(&mut w, 2_300 * MS, 4 * MS, 0);
        e.t2 += 20 * MS;
        assert_eq!(w.queue_of(&e), Some(4 * MS));
        // The peer's clock steps back (another boot): the base starts again from the reply.
        let mut e =
            ProbeEvent { seq: 100, t1: 3_000 * MS, t2: (3_001 * MS).wrapping_sub(2 * behind), t4: 3_002 * MS, ..ProbeEvent::default() };
        w.sent(100, e.t1);
        w.replied_event(&e, e.t4);
        assert_eq!(w.queue_of(&e), Some(0));
        e.t2 += 6 * MS;
        assert_eq!(w.queue_of(&e), Some(0), "bounded by the round trip (no queue)");
        // Another peer answers (another clock): so does the base.
        let peer = bond_common::probe::member_probe_mac(7, 0);
        let e = ProbeEvent { seq: 101, t1: 3_100 * MS, t2: 1 << 62, t4: 3_102 * MS, peer, ..ProbeEvent::default() };
        w.sent(101, e.t1);
        w.replied_event(&e, e.t4);
        let e = ProbeEvent { seq: 102, t1: 3_200 * MS, t2: (1 << 62) + 100 * MS + 2 * MS, t4: 3_206 * MS, ..e };
        w.sent(102, e.t1);
        w.replied_event(&e, e.t4);
        assert_eq!(w.queue_of(&e), Some(2 * MS), "the new peer's way out, against its own base");
        // Another member of the same peer bond answers (the same clock): the base holds.
        let e = ProbeEvent {
            seq: 103,
            t1: 3_300 * MS,
            t2: (1 << 62) + 200 * MS + 3 * MS,
            t4: 3_307 * MS,
            peer: bond_common::probe::member_probe_mac(7, 1),
            ..e
        };
        w.sent(103, e.t1);
        w.replied_event(&e, e.t4);
        assert_eq!(w.queue_of(&e), Some(3 * MS), "against the same base");
    }

    #[test]
    fn delivery_is_the_peers_count_over_the_peers_time() {
        let mut d = Delivery::default();
        d.record(1_000 * MS, 0);
        assert_eq!(d.bps, None, "a count of 0 says nothing");
        d.record(1_000 * MS, 1_000_000);
        assert_eq!(d.bps, None, "one reply: no rate yet");
        d.record(1_100 * MS, 1_100_000);
        assert_eq!(d.bps, None, "too close to the first: still accumulating");
        d.record(2_000 * MS, 2_250_000);
        assert_eq!(d.bps, Some(10e6), "1.25 MB in 1 s");
        // The peer's bond made anew: its count starts over, and so does the rate.
        d.record(2_500 * MS, 1_000);
        assert_eq!(d.bps, None);
        d.record(3_500 * MS, 126_000);
        assert_eq!(d.bps, Some(1e6));
    }
}
