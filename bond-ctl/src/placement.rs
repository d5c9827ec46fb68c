//! Where one policy puts traffic: its active member (active-backup, none) and its
//! balance-aware bucket table, kept per policy in force (the default and each peer policy).
//! Pure: it decides from member views; the bond writes the result.

use bond_common::config::{BUCKETS, NO_MEMBER};

use crate::{
    alloc,
    config::PolicySpec,
    health::{metrics::Nanos, reselect::ActiveSelector},
    plan::{self, MemberView},
};

#[derive(Debug, Clone)]
pub struct Placement {
    pub active: Option<u8>,
    pub selector: ActiveSelector,
    pub buckets: [u8; BUCKETS],
    /// Allocation weights the buckets were last allocated for.
    pub weights: Vec<(u8, f64)>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement { active: None, selector: ActiveSelector::default(), buckets: [NO_MEMBER; BUCKETS], weights: Vec::new() }
    }
}

impl Placement {
    /// Chooses the active member; returns the one before when it changed.
    pub fn choose_active(&mut self, policy: &PolicySpec, members: &[MemberView], now: Nanos) -> Option<Option<u8>> {
        let candidates = plan::candidates(policy, members);
        let before = self.active;
        self.active = self.selector.choose(plan::select_method(policy), &candidates, self.active, now);
        (before != self.active).then_some(before)
    }

    /// Re-allocates balance-aware's buckets when the usable members or their weights changed
    /// (`force`: whatever the change).
    pub fn reallocate(&mut self, policy: &PolicySpec, members: &[MemberView], force: bool) {
        if !policy.uses_buckets() {
            return;
        }
        let weights = plan::weights(policy, members);
        let same_members = weights.iter().map(|w| w.0).eq(self.weights.iter().map(|w| w.0));
        let total = |w: &[(u8, f64)]| w.iter().map(|x| x.1).sum::<f64>().max(f64::MIN_POSITIVE);
        let (t_new, t_old) = (total(&weights), total(&self.weights));
        // Shares moving by under a bucket's worth do not move flows.
        let same_shares = weights.iter().zip(&self.weights).all(|(a, b)| (a.1 / t_new - b.1 / t_old).abs() < 1.0 / BUCKETS as f64);
        if !force && same_members && same_shares {
            return;
        }
        self.buckets = alloc::allocate(&weights, &self.buckets);
        self.weights = weights;
    }

    /// What the data plane needs to see change.
    pub fn key(&self) -> (Option<u8>, [u8; BUCKETS]) {
        (self.active, self.buckets)
    }
}
