//! Which member active-backup (and none) sends on: failover order, primaries, and
//! `linkSelectMethod` (bonding's `primary_reselect`, plus ZeroTier's `optimize`).

use serde::{Deserialize, Serialize};

use super::metrics::{MS, Nanos};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectMethod {
    /// A usable primary link always takes the role back.
    Always,
    /// A returning primary takes the role back only if it is better than the active link.
    Better,
    /// The active link keeps the role until it fails.
    Failure,
    /// The best link takes the role when it is clearly better, at most once per anti-flap
    /// interval.
    Optimize,
}

impl SelectMethod {
    pub const ALL: [SelectMethod; 4] = [SelectMethod::Always, SelectMethod::Better, SelectMethod::Failure, SelectMethod::Optimize];

    pub fn name(self) -> &'static str {
        match self {
            SelectMethod::Always => "always",
            SelectMethod::Better => "better",
            SelectMethod::Failure => "failure",
            SelectMethod::Optimize => "optimize",
        }
    }

    pub fn from_name(s: &str) -> Option<SelectMethod> {
        SelectMethod::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// `optimize` switches when another link scores this much better (relative).
pub const OPTIMIZE_MARGIN: f64 = 0.10;
/// `better` takes a returning primary back when it scores this much better.
pub const BETTER_MARGIN: f64 = 0.05;
/// `optimize` switches at most once per this long (ZeroTier's anti-flap interval).
pub const ANTI_FLAP: Nanos = 15_000 * MS;

/// A member as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub slot: u8,
    pub usable: bool,
    pub primary: bool,
    /// Quality (and capacity) score; higher is better.
    pub score: f64,
    /// Whether the score rests on enough measurements to compare links by it.
    pub judged: bool,
    /// bonding's `prio`: with no usable primary, a member of higher prio is preferred.
    pub prio: i32,
    /// The driver's speed (Mb/s): bonding's `better` compares it when there are no scores.
    pub speed: Option<u32>,
}

/// Chooses and remembers the active member.
#[derive(Debug, Clone, Default)]
pub struct ActiveSelector {
    last_optimize: Option<Nanos>,
    /// Made active by hand (`active_slave`): kept while usable, until [`Self::unforce`].
    forced: Option<u8>,
}

impl ActiveSelector {
    /// The active member. `candidates` are in failover order (primaries with their
    /// `failoverTo` chains first); `current` is the member active now.
    pub fn choose(&mut self, method: SelectMethod, candidates: &[Candidate], current: Option<u8>, now: Nanos) -> Option<u8> {
        let usable = |slot: u8| candidates.iter().any(|c| c.slot == slot && c.usable);
        if let Some(f) = self.forced.filter(|&f| usable(f)) {
            return Some(f);
        }
        let score = |slot: u8| candidates.iter().find(|c| c.slot == slot).map_or(0.0, |c| c.score);
        let cand = |slot: u8| candidates.iter().find(|c| c.slot == slot);
        let first_usable = candidates.iter().find(|c| c.usable).map(|c| c.slot);
        // Scores are compared only once measured: a link that just came back is not better yet.
        let judged = |slot: u8| candidates.iter().any(|c| c.slot == slot && c.judged);
        let best = candidates
            .iter()
            .filter(|c| c.usable && c.judged)
            .fold(None::<&Candidate>, |b, c| match b {
                Some(b) if b.score >= c.score => Some(b),
                _ => Some(c),
            })
            .map(|c| c.slot);
        let Some(cur) = current.filter(|&c| usable(c)) else {
            // The active member is gone: the next in failover order (the data plane has already
            // moved there by itself), or for optimize the best one.
            return if method == SelectMethod::Optimize { best.or(first_usable) } else { first_usable };
        };
        // What would take the role back (bonding's `bond_choose_primary_or_current`): a usable
        // primary, else the usable member of the highest prio if it is higher than the active
        // one's (ties: the first in order; equal prios move nothing).
        let cur_prio = cand(cur).map_or(0, |c| c.prio);
        let preferred = candidates.iter().find(|c| c.primary && c.usable).map(|c| c.slot).or_else(|| {
            let top = candidates.iter().filter(|c| c.usable).fold(None::<&Candidate>, |b, c| match b {
                Some(b) if b.prio >= c.prio => Some(b),
                _ => Some(c),
            });
            top.filter(|t| t.prio > cur_prio).map(|t| t.slot)
        });
        match method {
            SelectMethod::Failure => Some(cur),
            SelectMethod::Always => Some(preferred.unwrap_or(cur)),
            SelectMethod::Better => match preferred {
                // Measured links by their scores; otherwise by speed, as bonding does.
                Some(p) if p != cur && judged(p) && judged(cur) => {
                    Some(if score(p) > score(cur) * (1.0 + BETTER_MARGIN) { p } else { cur })
                }
                Some(p) if p != cur && cand(p).and_then(|c| c.speed) > cand(cur).and_then(|c| c.speed) => Some(p),
                _ => Some(cur),
            },
            SelectMethod::Optimize => {
                let calm = self.last_optimize.is_none_or(|t| now.saturating_sub(t) >= ANTI_FLAP);
                match best {
                    Some(b) if b != cur && calm && score(b) > score(cur) * (1.0 + OPTIMIZE_MARGIN) => {
                        self.last_optimize = Some(now);
                        Some(b)
                    }
                    _ => Some(cur),
                }
            }
        }
    }
}

impl ActiveSelector {
    /// `active_slave`: `slot` is active from the next choice while it stays usable, until
    /// [`Self::unforce`] (a change of the members' health), as bonding keeps a member set by
    /// hand until its next reselection.
    pub fn force(&mut self, slot: u8) {
        self.forced = Some(slot);
    }

    pub fn unforce(&mut self) {
        self.forced = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(slot: u8, usable: bool, primary: bool, score: f64) -> Candidate {
        Candidate { slot, usable, primary, score, judged: true, prio: 0, speed: None }
    }

    /// The kernel selftest's prio scenario (bond_options.sh): eth1 primary with prio 10, eth0
    /// prio 0, eth2 prio 11; candidates in failover order (primary first, then by prio).
    #[test]
    fn prio_with_primary_and_each_primary_reselect() {
        let cands = |up: [bool; 3]| {
            let p = |slot: u8, prio: i32| Candidate {
                prio,
                speed: Some(10_000),
                judged: false,
                ..c(slot, up[usize::from(slot)], slot == 1, 1.0)
            };
            [p(1, 10), p(2, 11), p(0, 0)]
        };
        for method in [SelectMethod::Always, SelectMethod::Better, SelectMethod::Failure] {
            let mut s = ActiveSelector::default();
            let mut cur = s.choose(method, &cands([true; 3]), None, 0);
            assert_eq!(cur, Some(1), "{method:?}: the primary");
            cur = s.choose(method, &cands([true, false, true]), cur, 0);
            assert_eq!(cur, Some(2), "{method:?}: the highest prio of the rest");
            cur = s.choose(method, &cands([true, false, false]), cur, 0);
            assert_eq!(cur, Some(0), "{method:?}: the only one left");
            cur = s.choose(method, &cands([true, false, true]), cur, 0);
            let want = if method == SelectMethod::Always { 2 } else { 0 };
            assert_eq!(cur, Some(want), "{method:?}: eth2 (prio 11) back");
            cur = s.choose(method, &cands([true; 3]), cur, 0);
            let want = if method == SelectMethod::Always { 1 } else { want };
            assert_eq!(cur, Some(want), "{method:?}: the primary back (it beats any prio)");
        }
        // Equal prios move nothing under always; a faster preferred member wins under better.
        let mut s = ActiveSelector::default();
        let equal = [c(0, true, false, 1.0), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Always, &equal, Some(1), 0), Some(1));
        let unjudged = |slot, prio, speed| Candidate { prio, speed: Some(speed), judged: false, ..c(slot, true, false, 1.0) };
        let faster = [unjudged(0, 5, 25_000), unjudged(1, 0, 10_000)];
        assert_eq!(s.choose(SelectMethod::Better, &faster, Some(1), 0), Some(0));
    }

    #[test]
    fn a_member_made_active_by_hand_stays_until_unforced_or_unusable() {
        let mut s = ActiveSelector::default();
        let cands = [c(0, true, true, 1.0), c(1, true, false, 1.0)];
        s.force(1);
        assert_eq!(s.choose(SelectMethod::Always, &cands, Some(0), 0), Some(1), "over the primary");
        assert_eq!(s.choose(SelectMethod::Always, &[c(0, true, true, 1.0), c(1, false, false, 1.0)], Some(1), 0), Some(0));
        s.unforce();
        assert_eq!(s.choose(SelectMethod::Always, &cands, Some(1), 0), Some(0));
    }

    #[test]
    fn failure_keeps_the_active_link_until_it_fails() {
        let mut s = ActiveSelector::default();
        let cands = [c(0, true, true, 1.0), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Failure, &cands, Some(1), 0), Some(1));
        let cands = [c(0, true, true, 1.0), c(1, false, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Failure, &cands, Some(1), 0), Some(0));
    }

    #[test]
    fn always_returns_to_the_primary() {
        let mut s = ActiveSelector::default();
        let cands = [c(0, true, true, 0.2), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Always, &cands, Some(1), 0), Some(0));
    }

    #[test]
    fn better_returns_to_the_primary_only_if_it_is_better() {
        let mut s = ActiveSelector::default();
        let worse = [c(0, true, true, 0.5), c(1, true, false, 0.9)];
        assert_eq!(s.choose(SelectMethod::Better, &worse, Some(1), 0), Some(1));
        let better = [c(0, true, true, 0.99), c(1, true, false, 0.5)];
        assert_eq!(s.choose(SelectMethod::Better, &better, Some(1), 0), Some(0));
        let unmeasured = [Candidate { judged: false, ..c(0, true, true, 1.0) }, c(1, true, false, 0.5)];
        assert_eq!(s.choose(SelectMethod::Better, &unmeasured, Some(1), 0), Some(1), "not better until measured");
    }

    #[test]
    fn optimize_moves_to_a_clearly_better_link_with_anti_flap() {
        let mut s = ActiveSelector::default();
        let close = [c(0, true, false, 0.95), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Optimize, &close, Some(0), 0), Some(0), "within the margin");
        let clear = [c(0, true, false, 0.5), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Optimize, &clear, Some(0), 0), Some(1));
        let back = [c(0, true, false, 1.0), c(1, true, false, 0.5)];
        assert_eq!(s.choose(SelectMethod::Optimize, &back, Some(1), ANTI_FLAP - 1), Some(1), "anti-flap");
        assert_eq!(s.choose(SelectMethod::Optimize, &back, Some(1), ANTI_FLAP), Some(0));
        let mut s = ActiveSelector::default();
        let unmeasured = [c(0, true, false, 0.5), Candidate { judged: false, ..c(1, true, false, 1.0) }];
        assert_eq!(s.choose(SelectMethod::Optimize, &unmeasured, Some(0), 0), Some(0), "not better until measured");
    }

    #[test]
    fn lost_active_goes_to_the_next_in_failover_order() {
        let mut s = ActiveSelector::default();
        let cands = [c(2, false, true, 1.0), c(0, true, false, 0.1), c(1, true, false, 1.0)];
        assert_eq!(s.choose(SelectMethod::Always, &cands, Some(2), 0), Some(0));
        assert_eq!(s.choose(SelectMethod::Optimize, &cands, Some(2), 0), Some(1));
        assert_eq!(s.choose(SelectMethod::Always, &[c(0, false, false, 1.0)], Some(0), 0), None);
    }
}
