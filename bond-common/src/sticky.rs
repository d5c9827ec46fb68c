//! balance-aware flow-static's memory of each flow's member: the `sticky_flows` table.
//!
//! Flow-static consults it on every packet, so its cost is the policy's cost. It is an array of
//! sets of [`WAYS`] 8-byte entries, one 64-byte cache line per set (the map's values are
//! page-aligned): a packet reads its flow's set, finds its entry by a tag taken from the flow
//! id, and writes it back only when something changed (its member, or the coarse tick it was
//! last seen in). It has twice as many entries as the flows it is sized for ([`sets_for`]): a
//! flow can only go in its own set, and at half full one set in fifty holds more flows than it
//! has ways, where a table of exactly as many entries would overflow one set in three. A hash table keyed by flow
//! (the flow table, `flows`) costs a bucket head, an element and an LRU update per packet, each
//! a cache miss once it holds a million flows, and an insertion that evicts another entry for
//! every new flow past its size: twice what this costs.
//!
//! A set that is full gives its least recently seen entry to a new flow, as the LRU did; a flow
//! idle for its policy's `flowExpiry` is forgotten (its entry is taken as absent and reused).
//! An entry another CPU wrote with a later tick than this CPU's clock read is fresh, not old.
//! Either way a forgotten flow is placed by its bucket again, which is where it was unless its
//! bucket moved since. Entries are written whole (one 8-byte store), so two CPUs updating one
//! entry leave one or the other's, never a mix.

use crate::config::NO_MEMBER;

/// The entries' format, part of the map layout a new daemon must match to adopt a bond.
pub const FORMAT: u32 = 1;

/// Entries per set: 64 bytes, one cache line.
pub const WAYS: usize = 8;

/// One set of the table (the map's value).
pub type StickySet = [u64; WAYS];

/// The coarse clock's nanoseconds shifted right by this make a tick (about 1.07 s): an entry
/// is rewritten at most once a tick while its flow keeps its member.
pub const TICK_SHIFT: u32 = 30;

const TAG_BITS: u32 = 24;
/// The tag is the flow id's top bits; the set comes from its low ones.
const TAG_FROM: u32 = 64 - TAG_BITS;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const MEMBER_SHIFT: u32 = 24;
const POLICY_SHIFT: u32 = 32;
const SEEN_SHIFT: u32 = 40;
const SEEN_BITS: u32 = 23;
/// Ticks wrap at this mask (about 97 days): ages are taken modulo it.
const SEEN_MASK: u32 = (1 << SEEN_BITS) - 1;
/// Ages past this (half the wrap, about 48 days) are an entry written by another CPU after
/// this one read the clock: age 0. No expiry reaches it (`flowExpiry` is at most a day).
const NEWEST: u32 = SEEN_MASK / 2;
const VALID: u64 = 1 << 63;

/// Sets of a table sized for `flows` flows: twice as many entries (see the module).
pub const fn sets_for(flows: u32) -> u32 {
    let sets = flows.div_ceil(WAYS as u32 / 2);
    if sets == 0 { 1 } else { sets }
}

/// `flowExpiry` (ms) in ticks, rounded up, at least one.
pub const fn expiry_ticks(ms: u64) -> u32 {
    let ticks = ms.saturating_mul(1_000_000).saturating_add((1 << TICK_SHIFT) - 1) >> TICK_SHIFT;
    let most = NEWEST as u64;
    if ticks == 0 {
        1
    } else if ticks > most {
        most as u32
    } else {
        ticks as u32
    }
}

/// The tick of `now_ns` (the coarse clock), as entries keep it.
#[inline(always)]
pub fn tick(now_ns: u64) -> u32 {
    (now_ns >> TICK_SHIFT) as u32 & SEEN_MASK
}

/// Where flow `id` lives in a table of `sets` sets (not zero): its set and its tag. The set
/// comes from the id's low bits, the tag from its high ones, so flows of one set differ in tag.
#[inline(always)]
pub fn place(id: u64, sets: u32) -> (u32, u32) {
    ((id as u32) % sets, ((id >> TAG_FROM) & TAG_MASK) as u32)
}

/// The entry of a flow with `tag` on `member`, placed by policy `policy`, seen at `tick`.
#[inline(always)]
pub fn entry(tag: u32, member: u8, policy: u8, tick: u32) -> u64 {
    VALID
        | (u64::from(tag) & TAG_MASK)
        | u64::from(member) << MEMBER_SHIFT
        | u64::from(policy) << POLICY_SHIFT
        | u64::from(tick & SEEN_MASK) << SEEN_SHIFT
}

/// What a set says of a flow: the way its entry is to be written to, and its member
/// ([`NO_MEMBER`] for a flow not recorded, recorded by another policy, or forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub way: usize,
    pub member: u8,
}

/// Looks the flow with `tag` up in `set` for policy `policy` at tick `now`. Absent, its way is
/// the set's least recently seen entry (an empty one first).
#[inline(always)]
pub fn find(set: &StickySet, tag: u32, policy: u8, now: u32, expiry: u32) -> Found {
    let mut oldest = Found { way: 0, member: NO_MEMBER };
    let mut oldest_age = 0u32;
    let mut way = 0;
    while way < WAYS {
        let e = set[way];
        let age = if e & VALID == 0 {
            u32::MAX
        } else {
            let age = now.wrapping_sub((e >> SEEN_SHIFT) as u32) & SEEN_MASK;
            if age > NEWEST { 0 } else { age }
        };
        if e & VALID != 0 && (e & TAG_MASK) as u32 == tag {
            let alive = age <= expiry && (e >> POLICY_SHIFT) as u8 == policy;
            return Found { way, member: if alive { (e >> MEMBER_SHIFT) as u8 } else { NO_MEMBER } };
        }
        if way == 0 || age > oldest_age {
            oldest = Found { way, member: NO_MEMBER };
            oldest_age = age;
        }
        way += 1;
    }
    oldest
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: u32 = 10;

    #[test]
    fn a_recorded_flow_keeps_its_member_and_others_in_its_set_keep_theirs() {
        let mut set = [0u64; WAYS];
        for (way, tag) in [11u32, 22, 33].into_iter().enumerate() {
            let f = find(&set, tag, 0, 5, EXPIRY);
            assert_eq!(f, Found { way, member: NO_MEMBER }, "a new flow takes an empty way");
            set[f.way] = entry(tag, way as u8 + 1, 0, 5);
        }
        for (i, tag) in [11u32, 22, 33].into_iter().enumerate() {
            assert_eq!(find(&set, tag, 0, 7, EXPIRY), Found { way: i, member: i as u8 + 1 });
        }
        assert_eq!(find(&set, 44, 0, 7, EXPIRY).member, NO_MEMBER);
    }

    #[test]
    fn a_full_set_gives_its_least_recently_seen_entry_to_a_new_flow() {
        let mut set = [0u64; WAYS];
        for (way, seen) in [100, 97, 99, 98, 100, 100, 99, 100].into_iter().enumerate() {
            set[way] = entry(way as u32 + 1, 0, 0, seen);
        }
        assert_eq!(find(&set, 50, 0, 100, EXPIRY), Found { way: 1, member: NO_MEMBER });
    }

    #[test]
    fn a_flow_idle_past_its_expiry_is_forgotten_and_its_own_entry_reused() {
        let set = [entry(1, 0, 0, 0), entry(7, 3, 0, 50), 0, 0, 0, 0, 0, 0];
        assert_eq!(find(&set, 7, 0, 50 + EXPIRY, EXPIRY), Found { way: 1, member: 3 }, "idle exactly the expiry: kept");
        assert_eq!(find(&set, 7, 0, 51 + EXPIRY, EXPIRY), Found { way: 1, member: NO_MEMBER });
    }

    #[test]
    fn another_policys_record_is_not_this_policys() {
        let set = [entry(7, 3, 1, 5), 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(find(&set, 7, 1, 5, EXPIRY).member, 3);
        assert_eq!(find(&set, 7, 0, 5, EXPIRY), Found { way: 0, member: NO_MEMBER });
    }

    #[test]
    fn ages_survive_the_tick_counter_wrapping() {
        let last = SEEN_MASK - 2;
        let set = [entry(7, 3, 0, last), 0, 0, 0, 0, 0, 0, 0];
        let now = tick(((u64::from(last) + 5) & u64::from(SEEN_MASK)) << TICK_SHIFT);
        assert!(now < last, "the counter wrapped");
        assert_eq!(find(&set, 7, 0, now, EXPIRY).member, 3);
        assert_eq!(find(&set, 7, 0, now.wrapping_add(EXPIRY) & SEEN_MASK, EXPIRY).member, NO_MEMBER);
    }

    #[test]
    fn an_entry_keeps_every_field_and_is_never_empty() {
        let e = entry(TAG_MASK as u32, 15, 7, SEEN_MASK);
        assert_ne!(entry(0, 0, 0, 0), 0, "a flow of tag 0 seen at tick 0 is still an entry");
        assert_eq!(find(&[e, 0, 0, 0, 0, 0, 0, 0], TAG_MASK as u32, 7, SEEN_MASK, EXPIRY), Found { way: 0, member: 15 });
    }

    #[test]
    fn sets_tags_and_expiry_in_range() {
        assert_eq!(sets_for(65_536), 16_384, "131,072 entries for 65,536 flows");
        assert_eq!(sets_for(1_025), 257);
        assert_eq!(sets_for(0), 1);
        let (set, tag) = place(u64::MAX, 1_000);
        assert!(set < 1_000 && u64::from(tag) <= TAG_MASK);
        assert_eq!(expiry_ticks(0), 1);
        assert_eq!(expiry_ticks(1), 1);
        assert_eq!(expiry_ticks(243_000), 227, "flowExpiry's default, rounded up");
        assert_eq!(expiry_ticks(86_400_000), 80_467, "a day");
        assert_eq!(expiry_ticks(u64::MAX), NEWEST);
    }

    #[test]
    fn an_entry_another_cpu_wrote_a_tick_later_is_fresh_not_forgotten() {
        // This CPU read tick 40, then another wrote the flow's entry at tick 41.
        let set = [entry(7, 3, 0, 41), entry(8, 2, 0, 30), 0, 0, 0, 0, 0, 0];
        assert_eq!(find(&set, 7, 0, 40, EXPIRY), Found { way: 0, member: 3 });
        let full = core::array::from_fn(|way| if way == 0 { entry(7, 3, 0, 41) } else { entry(way as u32 + 10, 0, 0, 39) });
        assert_ne!(find(&full, 99, 0, 40, EXPIRY).way, 0, "nor the first to be taken by a new flow");
    }
}
