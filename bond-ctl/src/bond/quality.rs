//! The quality rounds (each measured link scored against the policy's limits, punished or
//! avoided while it misbehaves) and balance-aware's rebalancing of busy buckets. The
//! arithmetic is [`crate::health::quality`] and [`crate::health::rebalance`].

use bond_common::config::Balance;

use super::{Core, Sample};
use crate::{
    health::{metrics::Nanos, quality, rebalance},
    status::EventKind,
};

/// Probe outcomes a link needs before its quality is judged (half the window): a loss among a
/// handful of probes says little.
const MIN_JUDGED: usize = crate::health::metrics::WINDOW / 2;

impl Core {
    /// Scores, limits and what follows: punishment for misbehaving links, active-member
    /// reselection (better / optimize), and the allocation of balance-aware.
    pub(super) fn quality_round(&mut self, now: Nanos) {
        let peer = self.monitor.peer_probes_since.is_some();
        let mut notes = Vec::new();
        for m in &mut self.members {
            m.metrics = m.probes.metrics(m.availability.share(now));
            // A failed link is out already; its losses while failed say nothing of its quality.
            let judged = peer && m.probes.outcomes() >= MIN_JUDGED && m.liveness.up();
            m.judged = judged;
            m.score = if judged { quality::score(&m.metrics, &self.policy.weights, &self.policy.limits) } else { 1.0 };
            let violations = match (judged, m.liveness.up()) {
                (true, _) => quality::violations(&m.metrics, &self.policy.limits),
                // Failed: its standing is kept until it recovers and is measured afresh.
                (false, false) => m.violations.clone(),
                (false, true) => Vec::new(),
            };
            if !violations.is_empty() && m.violations.is_empty() {
                let what = match &self.policy.punishment {
                    Some(p) => {
                        m.punishment.misbehaved(now, p);
                        format!("held out {} ms", m.punishment.remaining_ms())
                    }
                    None => "avoided while it is".into(),
                };
                notes.push((EventKind::Quality, format!("{} misbehaves ({}): {what}", m.name, violations.join(", "))));
            } else if violations.is_empty() && !m.violations.is_empty() {
                notes.push((EventKind::Quality, format!("{} is within its quality limits again", m.name)));
            }
            m.violations = violations;
        }
        for (kind, n) in notes {
            self.event(kind, n);
        }
        let changed = self.apply_usable(now);
        self.settle(now, changed);
    }

    /// balance-aware flow-dynamic: moves busy buckets to keep the measured split on target.
    pub(super) fn rebalance_round(&mut self, sample: &Sample) {
        if !self.policy.uses_buckets() || self.policy.balance != Balance::FlowDynamic {
            return;
        }
        let Some(totals) = sample.bucket_bytes else { return };
        let mut fresh = 0;
        if let Some(prev) = self.monitor.bucket_totals {
            for (b, load) in self.monitor.bucket_load.iter_mut().enumerate() {
                let bytes = totals[b].saturating_sub(prev[b]);
                fresh += bytes;
                *load = *load * rebalance::DECAY + bytes as f64;
            }
        }
        self.monitor.bucket_totals = Some(totals);
        let total: f64 = self.main.weights.iter().map(|w| w.1).sum();
        if total <= 0.0 {
            return;
        }
        let targets: Vec<(u8, f64)> = self.main.weights.iter().map(|&(m, w)| (m, w / total)).collect();
        let moves = rebalance::moves(&self.main.buckets, &self.monitor.bucket_load, &targets);
        // Settled once a round that had traffic to judge leaves the table as it is.
        self.monitor.rebalance_settled = moves.is_empty() && fresh > 0;
        if moves.is_empty() {
            return;
        }
        for &(b, to) in &moves {
            self.main.buckets[b] = to;
        }
        self.write_config();
        self.event(EventKind::Rebalance, format!("rebalanced: moved {} busy bucket(s) to members below their share", moves.len()));
    }
}
