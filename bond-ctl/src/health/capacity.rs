//! balance-aware `packet` without `speed`: a link's capacity from a packet train, before any
//! traffic fills it. A train is [`TRAIN_FRAMES`] probe requests of [`TRAIN_FRAME_LEN`] bytes
//! sent back to back: they reach the link's bottleneck together and wait there in one queue,
//! so they leave it, and reach the peer, one transmission time apart. The peer stamps each
//! arrival (the replies' t2): the bytes after the first frame over the span of the arrivals
//! is the rate the bottleneck sends at. It counts only when the path spread the frames
//! ([`SPREAD_FROM`] times the span they were sent over, the t1 stamps): a train that arrives
//! as tightly as it left met no bottleneck slower than the sender, and says nothing.
//!
//! The rate (`health::rates`) counts a link not found full yet as fast as its device: packets
//! go to the quickest path until it fills, then to the next, each found in turn by the queue
//! it builds (a fresh 3 x 10 Mbit/s bond carried a third of the sum for 0.25 s, two thirds for
//! another 0.25 s), and a sender that never builds a queue (BBR) may keep to the quickest
//! path for good. A train's capacity stands in for that until the link is found full: the
//! schedule then shares the traffic by it from the first packet; and it bounds the first rate
//! found (`rates`: a window full at both ends may have idled between slow start's bursts).
//!
//! What can mislead a train is counted against it. Other traffic queued with the frames
//! spreads them further (a capacity too low): the highest of the last [`TRAINS_KEPT`] trains
//! counts, one every [`TRAIN_INTERVAL`] while the link is not found full. A policer with a
//! burst allowance, or a receiver that coalesces interrupts, lets a train through at line
//! rate (too high): then the link counts as fast as its device, as without trains, until the
//! queue it builds finds it full.

use std::collections::VecDeque;

use super::metrics::{MS, Nanos};

/// Frames in a train.
pub const TRAIN_FRAMES: u32 = 8;
/// Bytes in each, Ethernet header included: within any IPv6 link's MTU (1,280).
pub const TRAIN_FRAME_LEN: usize = 1_200;
/// How often a link not found full yet sends a train.
pub const TRAIN_INTERVAL: Nanos = 5_000 * MS;
/// The arrivals must span this many times what the departures did.
const SPREAD_FROM: u64 = 2;
/// Trains whose capacities are kept (the highest counts).
const TRAINS_KEPT: usize = 3;
/// Replies that must come back for a train to count (one lost says nothing of the rest).
const REPLIES_NEEDED: usize = 6;

/// A train's (t1, t2) stamps by frame, as the replies come back.
type Stamps = [Option<(Nanos, Nanos)>; TRAIN_FRAMES as usize];

/// One link's trains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capacity {
    /// The train awaiting its replies: its first request's sequence number, and each frame's
    /// send and arrival stamps (t1, t2) as its reply comes back.
    in_flight: Option<(u32, Stamps)>,
    last_sent: Option<Nanos>,
    /// The latest trains' capacities (bit/s).
    found: VecDeque<f64>,
}

impl Capacity {
    /// Whether a train is due at `now`.
    pub fn due(&self, now: Nanos) -> bool {
        self.last_sent.is_none_or(|t| now >= t.saturating_add(TRAIN_INTERVAL))
    }

    /// A train left at `now`, its requests numbered from `first_seq`.
    pub fn sent(&mut self, first_seq: u32, now: Nanos) {
        self.in_flight = Some((first_seq, [None; TRAIN_FRAMES as usize]));
        self.last_sent = Some(now);
    }

    /// Whether request `seq` was a train's (its reply goes to [`Capacity::replied`], not to
    /// the link's round trips: the frames behind the first waited for it).
    pub fn is_train(&self, seq: u32) -> bool {
        self.in_flight.is_some_and(|(first, _)| seq.wrapping_sub(first) < TRAIN_FRAMES)
    }

    /// The reply to train request `seq`, sent at `t1` and arrived at `t2` (the peer's clock).
    /// True when it completed a train and the capacity moved.
    pub fn replied(&mut self, seq: u32, t1: Nanos, t2: Nanos) -> bool {
        let Some((first, stamps)) = self.in_flight.as_mut() else { return false };
        let i = seq.wrapping_sub(*first) as usize;
        let Some(slot) = stamps.get_mut(i) else { return false };
        *slot = Some((t1, t2));
        // The last frame's reply completes the train; without it, the reply to the next
        // request does (`Capacity::later_reply`).
        i + 1 == TRAIN_FRAMES as usize && self.complete()
    }

    /// The reply to request `seq`, not a train's: one sent after the train in flight completes
    /// it (its last frame's reply was lost). True when the capacity moved.
    pub fn later_reply(&mut self, seq: u32) -> bool {
        let after = self.in_flight.is_some_and(|(first, _)| (TRAIN_FRAMES..1 << 16).contains(&seq.wrapping_sub(first)));
        after && self.complete()
    }

    /// The train in flight is complete (frames lost on the way stay None): its capacity.
    fn complete(&mut self) -> bool {
        let Some((_, stamps)) = self.in_flight.take() else { return false };
        let Some(bps) = train_rate(&stamps, TRAIN_FRAME_LEN as u64) else { return false };
        let before = self.bps();
        if self.found.len() == TRAINS_KEPT {
            self.found.pop_front();
        }
        self.found.push_back(bps);
        self.bps() != before
    }

    /// The capacity the latest trains say (bit/s), if any said one.
    pub fn bps(&self) -> Option<f64> {
        self.found.iter().copied().reduce(f64::max)
    }
}

/// The rate a train's arrivals say (bit/s): the bytes after the first frame that arrived over
/// the span of the arrivals, frames of `frame_len` bytes. None unless [`REPLIES_NEEDED`] came
/// back and the path spread them (see the module).
pub fn train_rate(stamps: &[Option<(Nanos, Nanos)>], frame_len: u64) -> Option<f64> {
    let came: Vec<(usize, Nanos, Nanos)> = stamps.iter().enumerate().filter_map(|(i, s)| s.map(|(t1, t2)| (i, t1, t2))).collect();
    if came.len() < REPLIES_NEEDED {
        return None;
    }
    let (&(i0, s0, a0), &(i1, s1, a1)) = (came.first()?, came.last()?);
    let (sent_over, arrived_over) = (s1.checked_sub(s0)?, a1.checked_sub(a0)?);
    if arrived_over == 0 || arrived_over < SPREAD_FROM * sent_over {
        return None;
    }
    // Frames i0+1..=i1 arrived after the first: each took its length at the bottleneck (a
    // frame lost between them took its time too, if it was lost after the bottleneck, or
    // none: counting it is the smaller error).
    Some((i1 - i0) as f64 * frame_len as f64 * 8.0 * 1e9 / arrived_over as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Nanos = 1_000;

    /// A train sent `gap_in` apart through a bottleneck of `mbps`: the arrivals.
    fn through(mbps: f64, gap_in: Nanos) -> [Option<(Nanos, Nanos)>; TRAIN_FRAMES as usize] {
        let tx = (TRAIN_FRAME_LEN as f64 * 8.0 / mbps * 1e3) as Nanos;
        let mut out = [None; TRAIN_FRAMES as usize];
        let mut free = 0;
        for (i, s) in out.iter_mut().enumerate() {
            let sent = 1_000 * US + i as Nanos * gap_in;
            free = free.max(sent) + tx;
            // The peer's clock is 7 s off: only differences count.
            *s = Some((sent, free + 7_000_000_000));
        }
        out
    }

    #[test]
    fn a_bottleneck_spreads_the_train_by_its_rate() {
        for mbps in [5.0, 10.0, 20.0, 100.0] {
            let got = train_rate(&through(mbps, 20 * US), TRAIN_FRAME_LEN as u64).unwrap() / 1e6;
            assert!((got - mbps).abs() < mbps * 0.01, "{mbps}: {got}");
        }
    }

    #[test]
    fn a_train_as_tight_as_it_left_says_nothing() {
        // 1 Gbit/s takes 9.6 us a frame; the sender spaced them 20 us: no bottleneck seen.
        assert_eq!(train_rate(&through(1_000.0, 20 * US), TRAIN_FRAME_LEN as u64), None);
    }

    #[test]
    fn lost_frames_count_by_their_place_and_too_many_say_nothing() {
        let mut s = through(10.0, 20 * US);
        s[0] = None;
        s[3] = None;
        let got = train_rate(&s, TRAIN_FRAME_LEN as u64).unwrap() / 1e6;
        assert!((got - 10.0).abs() < 0.1, "{got}");
        s[7] = None;
        assert_eq!(train_rate(&s, TRAIN_FRAME_LEN as u64), None, "five of eight");
    }

    #[test]
    fn the_highest_of_the_latest_trains_counts() {
        let mut c = Capacity::default();
        assert!(c.due(0));
        let send = |c: &mut Capacity, first: u32, now: Nanos, mbps: f64| {
            c.sent(first, now);
            assert!(!c.due(now + TRAIN_INTERVAL - 1) && c.due(now + TRAIN_INTERVAL));
            let mut moved = false;
            for (i, s) in through(mbps, 20 * US).iter().enumerate() {
                let (t1, t2) = s.unwrap();
                assert!(c.is_train(first.wrapping_add(i as u32)));
                moved = c.replied(first.wrapping_add(i as u32), t1, t2);
            }
            assert!(!c.is_train(first), "complete");
            moved
        };
        assert!(send(&mut c, 10, 0, 10.0));
        assert!((c.bps().unwrap() / 1e6 - 10.0).abs() < 0.1);
        // Other traffic in the queue spread the next one: the higher still counts.
        assert!(!send(&mut c, 20, TRAIN_INTERVAL, 6.0));
        assert!((c.bps().unwrap() / 1e6 - 10.0).abs() < 0.1);
        assert!(!send(&mut c, 30, 2 * TRAIN_INTERVAL, 7.0));
        // The 10 Mbit/s train is the fourth back: the link is slower now.
        assert!(send(&mut c, u32::MAX - 2, 3 * TRAIN_INTERVAL, 8.0), "sequence numbers wrap");
        assert!((c.bps().unwrap() / 1e6 - 8.0).abs() < 0.1);
        assert!(!c.is_train(5));
        assert!(!c.replied(5, 0, 0), "not a train's");
        // The last frame's reply lost: the next request's reply completes the train.
        c.sent(100, 4 * TRAIN_INTERVAL);
        for (i, s) in through(4.0, 20 * US).iter().enumerate().take(7) {
            let (t1, t2) = s.unwrap();
            assert!(!c.replied(100 + i as u32, t1, t2));
        }
        assert!(!c.later_reply(99), "sent before the train");
        assert!(c.is_train(106));
        assert!(!c.later_reply(108), "complete, at 4 Mbit/s: the highest stays");
        assert!(!c.is_train(106), "complete");
        assert!((c.bps().unwrap() / 1e6 - 8.0).abs() < 0.1, "the 8 Mbit/s train is still among the latest");
    }
}
