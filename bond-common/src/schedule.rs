//! balance-aware `packet` over links of known rate: each packet goes to the member where it
//! will arrive first. A member's queue is modelled as the time it is busy until
//! (`busy_until`): a packet given to it starts when that time has come (or now, if it has
//! passed), takes its length at the member's rate, and then the member's one-way delay. The
//! earliest arrival wins, and that member is busy until the packet has left.
//!
//! Over a 20 Mbit/s path with 2 ms and a 5 Mbit/s path with 25 ms, the fast path takes every
//! packet until its queue is 23 ms deep; from then on the packets are shared so that each
//! arrives in the order it was sent (a flow's segments are not reordered by the bond, as they
//! are when packets are spread by share alone). The controller writes each member's rate and
//! delay ([`MemberSchedule`]); the kernel keeps `busy_until` per member in a plain array
//! (no lock: two CPUs placing packets at the same instant may both see a member free, which
//! only makes the model briefly optimistic).

use crate::{
    config::{NO_MEMBER, PolicyConfig},
    select::each_usable,
};

/// What the scheduler knows of one member (the `schedule` map, written by the controller).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberSchedule {
    /// Picoseconds one byte takes at the member's rate (8,000,000 / Mbit/s); 0: unknown, and
    /// then the policy is not scheduled (packets walk the bucket table instead).
    pub ps_per_byte: u32,
    /// The member's one-way delay (half its base round trip), ns.
    pub delay_ns: u32,
}

const _: () = assert!(core::mem::size_of::<MemberSchedule>() == 8);

impl MemberSchedule {
    /// A member of `mbps` Mbit/s (0 or less than 1 kbit/s: unknown) and `delay_ns` one way.
    pub fn new(mbps: f64, delay_ns: u64) -> MemberSchedule {
        let ps = if mbps >= 0.001 { (8_000_000.0 / mbps).min(f64::from(u32::MAX)) as u32 } else { 0 };
        MemberSchedule { ps_per_byte: ps, delay_ns: delay_ns.min(u64::from(u32::MAX)) as u32 }
    }
}

/// Headers each segment of a GSO packet is counted with when the packet's own figures do not
/// say: Ethernet, IPv4 and TCP with timestamps.
const TYPICAL_HEADERS: u64 = 14 + 20 + 32;

/// Fewest header bytes a GSO segment carries (Ethernet, IPv4 and UDP): a smaller remainder
/// means the last segment was short, not that the headers are small.
const LEAST_HEADERS: u64 = 14 + 20 + 8;

/// The bytes a packet of `len` bytes puts on the wire: a GSO packet (`gso_segs` segments of
/// `gso_size` payload bytes, the last possibly shorter) leaves as that many frames, each with
/// its own headers, which `len` counts once. Counted as one frame's length, a bulk TCP flow's
/// packets (2-10 segments each) would be 2-4% longer on the link than the model thinks: a
/// queue it does not see builds on the fastest path, and the flow stays there. A packet whose
/// segments the kernel has not counted (`gso_segs` 0: one marked for checking, from a tap or
/// a packet socket) is taken as full segments behind typical headers.
///
/// The arguments are the kernel's 32-bit fields, so no product below can overflow a u64 (the
/// BPF target has no 128-bit multiply for checked arithmetic).
#[inline(always)]
pub fn wire_bytes(len: u32, gso_segs: u32, gso_size: u32) -> u64 {
    let (len, gso_size) = (u64::from(len), u64::from(gso_size));
    if gso_size == 0 {
        return len;
    }
    let segs = if gso_segs == 0 { len.saturating_sub(TYPICAL_HEADERS).div_ceil(gso_size) } else { u64::from(gso_segs) };
    if segs <= 1 {
        return len;
    }
    // All segments full (what a bulk sender makes): the headers are what is left over.
    let headers = match len.checked_sub(segs * gso_size) {
        Some(h) if (LEAST_HEADERS..=255).contains(&h) => h,
        _ => TYPICAL_HEADERS,
    };
    len + (segs - 1) * headers
}

/// The member the packet goes to and the time that member is busy until afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub slot: u8,
    pub busy_until: u64,
}

/// The usable member of `p` where a packet of `len` bytes handed over at `now` (ns) arrives
/// first, given each member's schedule (`sched(slot)`) and busy time (`busy(slot)`). None when
/// a usable member's rate is unknown (the policy is not scheduled) or none is usable.
#[inline(always)]
pub fn earliest_arrival(
    p: &PolicyConfig,
    usable: u32,
    now: u64,
    len: u64,
    sched: impl Fn(u8) -> Option<MemberSchedule>,
    busy: impl Fn(u8) -> u64,
) -> Option<Placed> {
    let mut best = Placed { slot: NO_MEMBER, busy_until: 0 };
    let mut best_arrival = u64::MAX;
    let mut unknown = false;
    each_usable(p, usable, |slot| {
        let Some(s) = sched(slot).filter(|s| s.ps_per_byte != 0) else {
            unknown = true;
            return false;
        };
        let b = busy(slot);
        let start = if b > now { b } else { now };
        // Saturating: a clock (or a busy time) near the end of u64 stays there, never wraps
        // to the past. No packet is 2 GB: bounded so, the product fits in a u64.
        let done = start.saturating_add(len.min(1 << 31) * u64::from(s.ps_per_byte) / 1000);
        let arrival = done.saturating_add(u64::from(s.delay_ns));
        if arrival < best_arrival || best.slot == NO_MEMBER {
            best_arrival = arrival;
            best = Placed { slot, busy_until: done };
        }
        true
    });
    (best.slot != NO_MEMBER && !unknown).then_some(best)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;
    use crate::config::{Mode, PolicyConfig};

    const MS: u64 = 1_000_000;

    fn policy(n: usize) -> PolicyConfig {
        let mut p = PolicyConfig::EMPTY;
        p.mode = Mode::BalanceAware as u32;
        p.n_members = n as u32;
        for i in 0..n {
            p.members[i] = i as u8;
            p.member_mask |= 1 << i;
        }
        p
    }

    /// Sends `count` packets of `len` bytes, one every `gap` ns from `start`, over members of
    /// (Mbit/s, one-way ms); returns the members chosen and the arrival times.
    fn run(links: &[(f64, u64)], usable: u32, start: u64, gap: u64, count: usize, len: u64) -> (Vec<u8>, Vec<u64>) {
        let p = policy(links.len());
        let sched: Vec<MemberSchedule> = links.iter().map(|&(mbps, ms)| MemberSchedule::new(mbps, ms * MS)).collect();
        let mut busy = vec![0u64; links.len()];
        let (mut chosen, mut arrivals) = (Vec::new(), Vec::new());
        for k in 0..count {
            let now = start + k as u64 * gap;
            let placed = earliest_arrival(&p, usable, now, len, |s| sched.get(usize::from(s)).copied(), |s| busy[usize::from(s)]).unwrap();
            busy[usize::from(placed.slot)] = placed.busy_until;
            chosen.push(placed.slot);
            arrivals.push(placed.busy_until + u64::from(sched[usize::from(placed.slot)].delay_ns));
        }
        (chosen, arrivals)
    }

    fn shares(chosen: &[u8], n: usize) -> Vec<f64> {
        (0..n).map(|s| chosen.iter().filter(|&&c| usize::from(c) == s).count() as f64 / chosen.len() as f64).collect()
    }

    #[test]
    fn a_saturating_sender_gets_shares_by_rate() {
        // 35 Mbit/s offered as fast as possible: 20/10/5 split 4:2:1.
        let (chosen, _) = run(&[(20.0, 1), (10.0, 1), (5.0, 1)], 0b111, 0, 0, 7000, 1500);
        let s = shares(&chosen, 3);
        for (got, want) in s.iter().zip([4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0]) {
            assert!((got - want).abs() < 0.01, "{s:?}");
        }
    }

    #[test]
    fn arrivals_keep_the_order_of_sending_whatever_the_delays() {
        // 2, 10 and 25 ms one way, a packet every 0.3 ms (40 Mbit/s offered): nothing arrives
        // before a packet sent earlier (at most a transmission time apart).
        let (chosen, arrivals) = run(&[(20.0, 2), (10.0, 10), (5.0, 25)], 0b111, 5 * MS, 300_000, 4000, 1500);
        let tx_slowest = 1500 * 1_600_000 / 1000;
        for w in arrivals.windows(2) {
            assert!(w[1] + tx_slowest >= w[0], "reordered by more than a transmission: {w:?}");
        }
        // Every path carries traffic once the fast one's queue reaches the others' delay.
        let s = shares(&chosen, 3);
        assert!(s.iter().all(|&x| x > 0.05), "{s:?}");
        assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
    }

    #[test]
    fn light_traffic_takes_the_path_of_least_delay_only() {
        // 1 Mbit/s offered: the 2 ms path never queues enough for the 10 ms one to win.
        let (chosen, _) = run(&[(20.0, 2), (10.0, 10), (5.0, 25)], 0b111, 0, 12 * MS, 500, 1500);
        assert!(chosen.iter().all(|&c| c == 0));
    }

    #[test]
    fn a_member_that_is_not_usable_drops_out_at_once() {
        let (chosen, _) = run(&[(20.0, 1), (10.0, 1), (5.0, 1)], 0b101, 0, 0, 1000, 1500);
        assert!(!chosen.contains(&1));
        let s = shares(&chosen, 3);
        assert!((s[0] - 0.8).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn an_unknown_rate_leaves_the_policy_unscheduled() {
        let p = policy(2);
        let sched = [MemberSchedule::new(10.0, 0), MemberSchedule::new(0.0, 0)];
        assert_eq!(earliest_arrival(&p, 0b11, 0, 100, |s| sched.get(usize::from(s)).copied(), |_| 0), None);
        // Without the unknown member it is scheduled.
        assert_eq!(earliest_arrival(&p, 0b01, 0, 100, |s| sched.get(usize::from(s)).copied(), |_| 0).map(|x| x.slot), Some(0));
        assert_eq!(earliest_arrival(&p, 0, 0, 100, |s| sched.get(usize::from(s)).copied(), |_| 0), None);
    }

    #[test]
    fn a_gso_packet_counts_the_headers_of_every_segment() {
        // Three full segments of 1448 bytes behind 66 bytes of headers: three frames of 1514.
        assert_eq!(wire_bytes(66 + 3 * 1448, 3, 1448), 3 * 1514);
        // The last segment short: the headers are not what is left over; typical ones count.
        assert_eq!(wire_bytes(66 + 2 * 1448 + 100, 3, 1448), 66 + 2 * 1448 + 100 + 2 * 66);
        // IPv6 (86 bytes of headers), full segments.
        assert_eq!(wire_bytes(86 + 2 * 1428, 2, 1428), 2 * (86 + 1428));
        // The last segment short by a little: the remainder is too small for headers.
        assert_eq!(wire_bytes(66 + 2 * 1448 + 1448 - 30, 3, 1448), 66 + 3 * 1448 - 30 + 2 * 66);
        // Segments not counted by the kernel: reckoned from the payload.
        assert_eq!(wire_bytes(66 + 3 * 1448, 0, 1448), 3 * 1514);
        // Not GSO.
        assert_eq!(wire_bytes(1514, 0, 0), 1514);
        assert_eq!(wire_bytes(1514, 1, 1448), 1514);
        assert_eq!(wire_bytes(1514, 0, 1448), 1514);
        // Whatever the fields hold, no overflow.
        let most = u64::from(u32::MAX);
        assert_eq!(wire_bytes(u32::MAX, u32::MAX, 1), most + (most - 1) * 66);
        assert_eq!(wire_bytes(100, u32::MAX, u32::MAX), 100 + (most - 1) * 66);
        assert_eq!(wire_bytes(u32::MAX, 0, 1), most + (most - 66 - 1) * 66);
    }

    #[test]
    fn times_near_the_end_of_the_clock_saturate_instead_of_wrapping() {
        let p = policy(2);
        let sched = [MemberSchedule::new(1.0, 0), MemberSchedule::new(1.0, 5 * MS)];
        let now = u64::MAX - 10 * MS;
        // 12 ms of transmission past the clock's end: the busy time stays at the end, and the
        // member whose arrival saturated later is not preferred for having wrapped.
        let placed = earliest_arrival(&p, 0b11, now, 1500, |s| sched.get(usize::from(s)).copied(), |_| 0).unwrap();
        assert_eq!((placed.slot, placed.busy_until), (0, u64::MAX));
        // A busy time left far in the past (an idle member) counts from now.
        let placed = earliest_arrival(&p, 0b01, 100 * MS, 1500, |s| sched.get(usize::from(s)).copied(), |_| 1).unwrap();
        assert_eq!(placed.busy_until, 112 * MS);
        assert_eq!(MemberSchedule::new(0.0005, 0).ps_per_byte, 0);
        assert_eq!(MemberSchedule::new(100_000.0, u64::MAX).delay_ns, u32::MAX);
    }
}
