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
}

/// Chooses and remembers the active member.
#[derive(Debug, Clone, Default)]
pub struct ActiveSelector {
    last_optimize: Option<Nanos>,
}

impl ActiveSelector {
    /// The active member. `candidates` are in failover order (primaries with their
    /// `failoverTo` chains first); `current` is the member active now.
    pub fn choose(&mut self, method: SelectMethod, candidates: &[Candidate], current: Option<u8>, now: Nanos) -> Option<u8> {
        let usable = |slot: u8| candidates.iter().any(|c| c.slot == slot && c.usable);
        let score = |slot: u8| candidates.iter().find(|c| c.slot == slot).map_or(0.0, |c| c.score);
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
        let primary = candidates.iter().find(|c| c.primary && c.usable).map(|c| c.slot);

        let Some(cur) = current.filter(|&c| usable(c)) else {
            // The active member is gone: the next in failover order (the data plane has already
            // moved there by itself), or for optimize the best one.
            return if method == SelectMethod::Optimize { best.or(first_usable) } else { first_usable };
        };
        match method {
            SelectMethod::Failure => Some(cur),
            SelectMethod::Always => Some(primary.unwrap_or(cur)),
            SelectMethod::Better => match primary {
                Some(p) if p != cur && judged(p) && score(p) > score(cur) * (1.0 + BETTER_MARGIN) => Some(p),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(slot: u8, usable: bool, primary: bool, score: f64) -> Candidate {
        Candidate { slot, usable, primary, score, judged: true }
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
