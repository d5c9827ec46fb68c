//! Punishment of links that fail repeatedly or misbehave: held out of the bond for a
//! refractory period that grows on repeats and fades while the link is healthy.
//!
//! As ZeroTier computes it (and, unlike ZeroTier, actually applied): each punishment sets the
//! refractory period to `base + 2 x what is left of it`, capped at `max`; while the link is
//! healthy the period drains at the rate time passes. A single failure is not punished (that is
//! what up/down delays are for); a second one within `window` of the first is flapping.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::metrics::{MS, Nanos};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PunishConfig {
    /// First refractory period (ms).
    pub base: u64,
    /// Longest refractory period (ms).
    pub max: u64,
    /// Failures this close together (ms) are flapping.
    pub window: u64,
}

impl Default for PunishConfig {
    /// ZeroTier's: 8 s, at most 10 minutes; flapping within a minute.
    fn default() -> Self {
        PunishConfig { base: 8_000, max: 600_000, window: 60_000 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Punishment {
    /// What is left of the refractory period.
    refractory: Nanos,
    /// When `refractory` was last brought up to date.
    updated: Nanos,
    /// Recent failures.
    failures: VecDeque<Nanos>,
    /// Punishments so far.
    pub count: u32,
}

impl Punishment {
    /// The link failed. Returns whether that was punished (it failed again within the window).
    pub fn failed(&mut self, now: Nanos, cfg: &PunishConfig) -> bool {
        let window = cfg.window * MS;
        while self.failures.front().is_some_and(|t| now.saturating_sub(*t) > window) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() >= 2 {
            self.punish(now, cfg);
            true
        } else {
            false
        }
    }

    /// The link misbehaved (loss or errors past their limits).
    pub fn misbehaved(&mut self, now: Nanos, cfg: &PunishConfig) {
        self.punish(now, cfg);
    }

    fn punish(&mut self, now: Nanos, cfg: &PunishConfig) {
        self.drain(now, false);
        self.refractory = (cfg.base * MS + 2 * self.refractory).min(cfg.max * MS);
        self.count += 1;
    }

    /// Brings the period up to date: it drains while the link is healthy.
    pub fn drain(&mut self, now: Nanos, healthy: bool) {
        let elapsed = now.saturating_sub(self.updated);
        if healthy {
            self.refractory = self.refractory.saturating_sub(elapsed);
        }
        self.updated = now;
    }

    /// Whether the link is held out.
    pub fn active(&self) -> bool {
        self.refractory > 0
    }

    /// What is left of the refractory period (ms).
    pub fn remaining_ms(&self) -> u64 {
        self.refractory / MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000 * MS;

    #[test]
    fn a_single_failure_is_not_punished() {
        let (mut p, cfg) = (Punishment::default(), PunishConfig::default());
        assert!(!p.failed(0, &cfg));
        assert!(!p.active());
        // Another one long after: still not flapping.
        assert!(!p.failed(120 * S, &cfg));
        assert!(!p.active());
    }

    #[test]
    fn flapping_grows_exponentially_and_fades_while_healthy() {
        let (mut p, cfg) = (Punishment::default(), PunishConfig::default());
        p.failed(0, &cfg);
        assert!(p.failed(S, &cfg));
        assert_eq!(p.remaining_ms(), 8_000);
        // Fails again 2 s later with 8 s left (it was not healthy in between): 8 + 2 x 8.
        p.drain(3 * S, false);
        assert!(p.failed(3 * S, &cfg));
        assert_eq!(p.remaining_ms(), 24_000);
        // Healthy for 10 s: 14 s left; for 14 more: readmitted.
        p.drain(13 * S, true);
        assert_eq!(p.remaining_ms(), 14_000);
        p.drain(27 * S, true);
        assert!(!p.active());
        assert_eq!(p.count, 2);
    }

    #[test]
    fn refractory_is_capped() {
        let (mut p, cfg) = (Punishment::default(), PunishConfig::default());
        for i in 0..20 {
            p.misbehaved(i * MS, &cfg);
        }
        assert_eq!(p.remaining_ms(), 600_000);
    }

    #[test]
    fn time_down_does_not_drain() {
        let (mut p, cfg) = (Punishment::default(), PunishConfig::default());
        p.misbehaved(0, &cfg);
        p.drain(100 * S, false);
        assert_eq!(p.remaining_ms(), 8_000);
    }
}
