//! Allocation of balance-aware's buckets to members in proportion to weights, moving as few
//! buckets (and so as few flows) as possible when the weights change.

use bond_common::config::{BUCKETS, NO_MEMBER};

/// How many of `total` buckets each weight gets: proportional, rounded by largest remainder
/// (ties to the earlier entry). Non-positive or non-finite weights get none.
pub fn bucket_counts(weights: &[f64], total: usize) -> Vec<usize> {
    let clean: Vec<f64> = weights.iter().map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 }).collect();
    let sum: f64 = clean.iter().sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = clean.iter().map(|w| w / sum * total as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = total - counts.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..exact.len()).filter(|&i| clean[i] > 0.0).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        fb.partial_cmp(&fa).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
    });
    for i in order.into_iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// A new bucket table for `(member slot, weight)` pairs. Buckets already on a member that
/// still has room stay where they are; only the rest move, to members short of their share.
pub fn allocate(weights: &[(u8, f64)], previous: &[u8; BUCKETS]) -> [u8; BUCKETS] {
    let counts = bucket_counts(&weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(), BUCKETS);
    let mut room: Vec<(u8, usize)> = weights.iter().map(|(s, _)| *s).zip(counts).collect();
    let mut table = [NO_MEMBER; BUCKETS];
    let mut free = Vec::new();
    for (b, &member) in previous.iter().enumerate() {
        match room.iter_mut().find(|(s, n)| *s == member && *n > 0) {
            Some((_, n)) => {
                *n -= 1;
                table[b] = member;
            }
            None => free.push(b),
        }
    }
    // Hand out freed buckets round-robin over members still short, so a member's new buckets
    // are spread over the table rather than clustered.
    let mut free = free.into_iter();
    'fill: loop {
        let mut gave = false;
        for (s, n) in room.iter_mut() {
            if *n == 0 {
                continue;
            }
            let Some(b) = free.next() else { break 'fill };
            table[b] = *s;
            *n -= 1;
            gave = true;
        }
        if !gave {
            break;
        }
    }
    table
}

/// Number of buckets whose member differs between two tables.
pub fn moved(a: &[u8; BUCKETS], b: &[u8; BUCKETS]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &[u8; BUCKETS], slot: u8) -> usize {
        t.iter().filter(|&&s| s == slot).count()
    }

    /// The largest lead or lag of any member, over every run of `window` consecutive packets
    /// placed by `bucket_of(n)`, against its share of the table: how far its queue can build
    /// ahead of the others'.
    fn worst_burst(table: &[u8; BUCKETS], window: usize, bucket_of: impl Fn(u32) -> usize) -> f64 {
        let placed: Vec<u8> = (0..4096u32).map(|n| table[bucket_of(n)]).collect();
        let mut worst: f64 = 0.0;
        for slot in 0..3u8 {
            let share = count(table, slot) as f64 / BUCKETS as f64;
            for run in placed.windows(window) {
                let got = run.iter().filter(|&&s| s == slot).count() as f64;
                worst = worst.max((got - share * window as f64).abs());
            }
        }
        worst
    }

    #[test]
    fn packet_placement_spreads_each_members_share_evenly_in_time() {
        use bond_common::select::packet_hash;
        // A fresh table, and one after its weights moved twice (buckets moved one by one).
        let fresh = allocate(&[(0, 4.0), (1, 2.0), (2, 1.0)], &[NO_MEMBER; BUCKETS]);
        let moved = allocate(&[(0, 1.0), (1, 1.0), (2, 1.0)], &allocate(&[(0, 1.0), (1, 3.0), (2, 1.0)], &fresh));
        // A deterministic stand-in for random placement (xorshift), as the data plane did.
        let random = |n: u32| {
            let mut x = n.wrapping_mul(0x9e37_79b9) | 1;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize % BUCKETS
        };
        for table in [fresh, moved] {
            for window in [8, 32, 128] {
                let walked = worst_burst(&table, window, |n| packet_hash(n) as usize % BUCKETS);
                assert!(walked <= 5.0, "window {window}: a member {walked} packets off its share");
                let random = worst_burst(&table, window, random);
                assert!(walked * 1.5 < random, "window {window}: {walked} packets off, not well ahead of random ({random})");
            }
        }
    }

    #[test]
    fn counts_are_proportional_and_complete() {
        assert_eq!(bucket_counts(&[1.0, 1.0, 1.0], 256), [86, 85, 85]);
        assert_eq!(bucket_counts(&[0.5, 0.25, 0.25], 256), [128, 64, 64]);
        // 230.63, 23.06, 2.31 -> floors 230, 23, 2; the spare bucket to the largest remainder.
        assert_eq!(bucket_counts(&[10000.0, 1000.0, 100.0], 256), [231, 23, 2]);
        assert_eq!(bucket_counts(&[1.0, 0.0], 256), [256, 0]);
        assert_eq!(bucket_counts(&[0.0, 0.0], 256), [0, 0]);
        assert_eq!(bucket_counts(&[f64::NAN, 1.0], 256), [0, 256]);
        assert_eq!(bucket_counts(&[], 256), Vec::<usize>::new());
    }

    #[test]
    fn fresh_table_matches_weights() {
        let t = allocate(&[(0, 0.5), (1, 0.25), (2, 0.25)], &[NO_MEMBER; BUCKETS]);
        assert_eq!((count(&t, 0), count(&t, 1), count(&t, 2)), (128, 64, 64));
    }

    #[test]
    fn losing_a_member_moves_only_its_buckets() {
        let before = allocate(&[(0, 1.0), (1, 1.0), (2, 1.0)], &[NO_MEMBER; BUCKETS]);
        let after = allocate(&[(0, 1.0), (2, 1.0)], &before);
        assert_eq!(moved(&before, &after), count(&before, 1));
        for b in 0..BUCKETS {
            if before[b] != 1 {
                assert_eq!(before[b], after[b], "bucket {b} moved off a healthy member");
            }
        }
        assert_eq!((count(&after, 0), count(&after, 2)), (128, 128));
    }

    #[test]
    fn weight_change_moves_the_minimum() {
        let before = allocate(&[(0, 0.5), (1, 0.5)], &[NO_MEMBER; BUCKETS]);
        let after = allocate(&[(0, 0.75), (1, 0.25)], &before);
        // 64 buckets must go from member 1 to member 0, and no more.
        assert_eq!(moved(&before, &after), 64);
        assert_eq!(count(&after, 0), 192);
    }

    #[test]
    fn same_weights_move_nothing() {
        let before = allocate(&[(3, 2.0), (5, 1.0)], &[NO_MEMBER; BUCKETS]);
        assert_eq!(moved(&before, &allocate(&[(3, 2.0), (5, 1.0)], &before)), 0);
    }

    #[test]
    fn no_weights_empty_table() {
        assert!(allocate(&[], &[0; BUCKETS]).iter().all(|&s| s == NO_MEMBER));
    }
}
