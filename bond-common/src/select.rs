//! Member selection: which member slot a packet leaves on, per policy.
//!
//! `usable` is the bond's bit mask of usable member slots (the `member_usable` map). Every
//! function returns `None` when no member of the policy is usable; the caller drops and counts.
//!
//! Failure handling is the same everywhere: the packet first goes where the configuration puts
//! it (the active member, its bucket's member, `hash % members`); only if that member is not
//! usable is it re-placed among the usable members. So when a member goes down, only the traffic
//! that was on it moves, and it moves at once, before the controller rewrites anything.

use crate::config::{MAX_MEMBERS, NO_MEMBER, PolicyConfig};
use crate::hash::mix32;

/// `i`, hidden from the optimizer. LLVM can prove `hash % n < n <= MAX_MEMBERS` and drop the
/// bounds check of the array access that follows; the eBPF verifier cannot prove it and rejects
/// the unchecked access. Hiding the value keeps the check, which is the verifier's proof.
#[inline(always)]
fn opaque_index(i: u32) -> usize {
    core::hint::black_box(i) as usize
}

#[inline(always)]
fn bit(slot: u32) -> u32 {
    if slot < 32 { 1 << slot } else { 0 }
}

/// Whether `slot` belongs to `p` and is usable.
#[inline(always)]
pub fn is_usable(p: &PolicyConfig, usable: u32, slot: u32) -> bool {
    p.member_mask & usable & bit(slot) != 0
}

/// Number of usable members of `p`.
#[inline(always)]
pub fn usable_count(p: &PolicyConfig, usable: u32) -> u32 {
    (p.member_mask & usable).count_ones()
}

/// The `k`-th usable member of `p` in its member order.
#[inline(always)]
pub fn nth_usable(p: &PolicyConfig, usable: u32, k: u32) -> Option<u8> {
    let mut seen = 0u32;
    let mut i = 0usize;
    while i < MAX_MEMBERS {
        if i as u32 >= p.n_members {
            break;
        }
        let slot = p.members[i];
        if is_usable(p, usable, u32::from(slot)) {
            if seen == k {
                return Some(slot);
            }
            seen += 1;
        }
        i += 1;
    }
    None
}

/// Re-places traffic whose configured member is not usable: `hash % usable members`.
#[inline(always)]
fn fallback(p: &PolicyConfig, usable: u32, hash: u32) -> Option<u8> {
    let n = usable_count(p, usable);
    if n == 0 {
        return None;
    }
    nth_usable(p, usable, hash % n)
}

/// none / active-backup: the active member, else the first usable member in order.
#[inline(always)]
pub fn active_member(p: &PolicyConfig, usable: u32) -> Option<u8> {
    if is_usable(p, usable, p.active) {
        return Some(p.active as u8);
    }
    nth_usable(p, usable, 0)
}

/// balance-rr: runs of `packets_per_link` packets per usable member in turn, counted by
/// `counter` (the per-CPU packet count of this policy); with `packets_per_link == 0`, the member
/// picked by `random`.
#[inline(always)]
pub fn round_robin_member(p: &PolicyConfig, usable: u32, counter: u32, random: u32) -> Option<u8> {
    let n = usable_count(p, usable);
    if n == 0 {
        return None;
    }
    let k = match counter.checked_div(p.packets_per_link) {
        Some(turn) => turn % n,
        None => random % n,
    };
    nth_usable(p, usable, k)
}

/// balance-xor: `members[hash % members]`, as the kernel does with every member up.
#[inline(always)]
pub fn xor_member(p: &PolicyConfig, usable: u32, hash: u32) -> Option<u8> {
    let n = p.n_members;
    if n == 0 || n as usize > MAX_MEMBERS {
        return None;
    }
    let slot = *p.members.get(opaque_index(hash % n))?;
    if is_usable(p, usable, u32::from(slot)) {
        return Some(slot);
    }
    fallback(p, usable, hash)
}

/// balance-alb: the member that receives from the peer with IPv4 address `peer` (as a
/// big-endian `u32`): of the usable members, the one scoring highest for (peer, slot). With
/// this rendezvous hashing a member leaving moves only its own peers, and one coming back takes
/// back only those. The data plane (ARP answers) and the controller (ARP updates) both use it.
#[inline(always)]
pub fn rx_member(p: &PolicyConfig, usable: u32, peer: u32) -> Option<u8> {
    let mut best = None;
    let mut best_score = 0u32;
    each_usable(p, usable, |slot| {
        let score = mix32(peer ^ mix32(u32::from(slot).wrapping_add(1).wrapping_mul(0x9e37_79b9)));
        if best.is_none() || score > best_score {
            best = Some(slot);
            best_score = score;
        }
        true
    });
    best
}

/// Calls `f` with each usable member of `p`, in the policy's order, until it returns false.
#[inline(always)]
pub fn each_usable(p: &PolicyConfig, usable: u32, mut f: impl FnMut(u8) -> bool) {
    let mut i = 0usize;
    while i < MAX_MEMBERS {
        if i as u32 >= p.n_members {
            break;
        }
        let slot = p.members[i];
        i += 1;
        if is_usable(p, usable, u32::from(slot)) && !f(slot) {
            break;
        }
    }
}

/// balance-aware: the flow's current member if it is to stay there (`sticky`, flow-static),
/// else its bucket's member.
#[inline(always)]
pub fn aware_member(p: &PolicyConfig, usable: u32, hash: u32, sticky: u8) -> Option<u8> {
    if sticky != NO_MEMBER && is_usable(p, usable, u32::from(sticky)) {
        return Some(sticky);
    }
    let slot = *p.buckets.get((hash as usize) % p.buckets.len())?;
    if is_usable(p, usable, u32::from(slot)) {
        return Some(slot);
    }
    fallback(p, usable, hash)
}

/// A stride near the golden section of `BUCKETS` (256 x 0.618), odd so that any `BUCKETS`
/// consecutive packets visit every bucket once.
const PACKET_STRIDE: u32 = 159;

/// balance-aware `packet`: the bucket hash of a policy's `counter`-th packet (a per-CPU count).
/// Consecutive packets walk the bucket table by a golden-section stride, which visits buckets
/// spread over the whole table: each member gets its share of the packets evenly in time. A
/// random bucket per packet gives the same shares only on average, in random runs that build a
/// queue on one link while another idles, and TCP sees those queues as reordering.
#[inline(always)]
pub fn packet_hash(counter: u32) -> u32 {
    counter.wrapping_mul(PACKET_STRIDE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BUCKETS, Mode};

    fn policy(mode: Mode, members: &[u8]) -> PolicyConfig {
        let mut p = PolicyConfig::EMPTY;
        p.mode = mode as u32;
        p.n_members = members.len() as u32;
        for (i, s) in members.iter().enumerate() {
            p.members[i] = *s;
            p.member_mask |= 1 << s;
        }
        p
    }

    const ALL: u32 = u32::MAX;

    #[test]
    fn active_backup_uses_active_then_order() {
        let mut p = policy(Mode::ActiveBackup, &[2, 0, 1]);
        p.active = 0;
        assert_eq!(active_member(&p, ALL), Some(0));
        assert_eq!(active_member(&p, !(1 << 0)), Some(2));
        assert_eq!(active_member(&p, 1 << 1), Some(1));
        assert_eq!(active_member(&p, 0), None);
        p.active = u32::from(NO_MEMBER);
        assert_eq!(active_member(&p, ALL), Some(2));
    }

    #[test]
    fn active_member_ignores_slots_outside_the_policy() {
        let mut p = policy(Mode::ActiveBackup, &[1, 2]);
        p.active = 0; // not a member of this policy
        assert_eq!(active_member(&p, ALL), Some(1));
    }

    #[test]
    fn round_robin_runs_of_packets_per_link() {
        let mut p = policy(Mode::BalanceRr, &[0, 1, 2]);
        p.packets_per_link = 3;
        let seq: std::vec::Vec<u8> = (0..12).map(|c| round_robin_member(&p, ALL, c, 0).unwrap()).collect();
        assert_eq!(seq, [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0]);
        // Member 1 down: the turn goes over the remaining two.
        let seq: std::vec::Vec<u8> = (0..6).map(|c| round_robin_member(&p, !(1 << 1), c, 0).unwrap()).collect();
        assert_eq!(seq, [0, 0, 0, 2, 2, 2]);
    }

    #[test]
    fn round_robin_zero_is_random() {
        let mut p = policy(Mode::BalanceRr, &[0, 1, 2]);
        p.packets_per_link = 0;
        assert_eq!(round_robin_member(&p, ALL, 0, 4), Some(1));
        assert_eq!(round_robin_member(&p, ALL, 0, 5), Some(2));
    }

    #[test]
    fn xor_moves_only_the_flows_of_a_failed_member() {
        let p = policy(Mode::BalanceXor, &[0, 1, 2]);
        let down = !(1u32 << 1);
        for hash in 0..3000u32 {
            let before = xor_member(&p, ALL, hash).unwrap();
            assert_eq!(before, (hash % 3) as u8);
            let after = xor_member(&p, down, hash).unwrap();
            if before != 1 {
                assert_eq!(after, before, "hash {hash} moved off a healthy member");
            } else {
                assert_ne!(after, 1);
            }
        }
    }

    #[test]
    fn xor_spreads_failed_members_flows_over_the_rest() {
        let p = policy(Mode::BalanceXor, &[0, 1, 2]);
        let down = !(1u32 << 1);
        let moved: std::vec::Vec<u8> = (0..3000u32).filter(|h| h % 3 == 1).map(|h| xor_member(&p, down, h).unwrap()).collect();
        let on0 = moved.iter().filter(|&&m| m == 0).count();
        assert!(on0 > 400 && on0 < 600, "{on0} of {}", moved.len());
    }

    #[test]
    fn aware_uses_bucket_then_sticky_then_fallback() {
        let mut p = policy(Mode::BalanceAware, &[0, 1]);
        for b in 0..BUCKETS {
            p.buckets[b] = (b % 2) as u8;
        }
        assert_eq!(aware_member(&p, ALL, 7, NO_MEMBER), Some(1));
        assert_eq!(aware_member(&p, ALL, 7, 0), Some(0), "sticky wins while usable");
        assert_eq!(aware_member(&p, !1, 7, 0), Some(1), "sticky member down: bucket");
        assert_eq!(aware_member(&p, !2, 7, NO_MEMBER), Some(0), "bucket member down: fallback");
        assert_eq!(aware_member(&p, 0, 7, NO_MEMBER), None);
    }

    #[test]
    fn empty_policy_selects_nothing() {
        let p = policy(Mode::BalanceXor, &[]);
        assert_eq!(xor_member(&p, ALL, 5), None);
        assert_eq!(round_robin_member(&p, ALL, 5, 5), None);
        assert_eq!(active_member(&p, ALL), None);
    }

    extern crate std;

    #[test]
    fn rx_member_moves_only_the_peers_of_a_member_that_leaves() {
        let p = policy(Mode::BalanceAlb, &[0, 1, 2, 3]);
        let mut counts = [0u32; 4];
        for ip in 0xc000_0200..0xc000_0200 + 400u32 {
            let before = rx_member(&p, 0b1111, ip).unwrap();
            counts[usize::from(before)] += 1;
            let after = rx_member(&p, 0b1011, ip).unwrap();
            if before != 2 {
                assert_eq!(after, before, "a peer not on the member that left moved");
            } else {
                assert_ne!(after, 2);
            }
        }
        for (slot, n) in counts.iter().enumerate() {
            assert!((60..140).contains(n), "slot {slot} got {n} of 400 peers");
        }
        assert_eq!(rx_member(&p, 0, 1), None);
    }
}
