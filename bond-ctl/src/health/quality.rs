//! A link's quality: one score from the six metrics and the user's weights, and limits past
//! which a link is avoided.

use serde::{Deserialize, Serialize};

use super::metrics::LinkMetrics;

/// How much each metric counts (`quality` in a policy). They sum to 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub lat: f64,
    pub ltm: f64,
    pub pdv: f64,
    pub plr: f64,
    pub per: f64,
    pub avl: f64,
}

impl Default for Weights {
    /// ZeroTier's: latency, its variation, loss and errors, a quarter each.
    fn default() -> Self {
        Weights { lat: 0.25, ltm: 0.0, pdv: 0.25, plr: 0.25, per: 0.25, avl: 0.0 }
    }
}

impl Weights {
    pub fn sum(&self) -> f64 {
        self.lat + self.ltm + self.pdv + self.plr + self.per + self.avl
    }
}

/// Values past which a link is avoided (`qualityLimits`). Availability has no limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Mean round trip (ms).
    pub lat: f64,
    /// Maximum round trip (ms).
    pub ltm: f64,
    /// Delay variation (ms).
    pub pdv: f64,
    /// Loss ratio.
    pub plr: f64,
    /// Error ratio.
    pub per: f64,
}

impl Default for Limits {
    /// Latency and variation as ZeroTier; loss and errors higher than ZeroTier's 0.001 and
    /// 0.0001, which one lost or corrupt probe in a 64-probe window already exceeds.
    fn default() -> Self {
        Limits { lat: 500.0, ltm: 2000.0, pdv: 100.0, plr: 0.05, per: 0.05 }
    }
}

/// 1.0 for a perfect metric, falling towards 0 as it approaches and passes its limit
/// (`exp(-4 * value / limit)`, as ZeroTier scores).
fn falloff(value: f64, limit: f64) -> f64 {
    if limit <= 0.0 { 1.0 } else { (-4.0 * value.max(0.0) / limit).exp() }
}

/// The link's score, 0.0 to 1.0. With no round trips measured the latency metrics count as
/// perfect: a link is not judged by measurements it never had.
pub fn score(m: &LinkMetrics, w: &Weights, l: &Limits) -> f64 {
    let timing = m.samples > 0;
    let s = w.lat * if timing { falloff(m.lat, l.lat) } else { 1.0 }
        + w.ltm * if timing { falloff(m.ltm, l.ltm) } else { 1.0 }
        + w.pdv * if timing { falloff(m.pdv, l.pdv) } else { 1.0 }
        + w.plr * falloff(m.plr, l.plr)
        + w.per * falloff(m.per, l.per)
        + w.avl * m.avl.clamp(0.0, 1.0);
    let total = w.sum();
    if total > 0.0 { (s / total).clamp(0.0, 1.0) } else { 1.0 }
}

/// The limits `m` exceeds, as "metric value > limit" phrases (empty: within limits).
pub fn violations(m: &LinkMetrics, l: &Limits) -> Vec<String> {
    let mut v = Vec::new();
    let timing = m.samples > 0;
    if timing && m.lat > l.lat {
        v.push(format!("latency {:.1} ms > {} ms", m.lat, l.lat));
    }
    if timing && m.ltm > l.ltm {
        v.push(format!("max latency {:.1} ms > {} ms", m.ltm, l.ltm));
    }
    if timing && m.pdv > l.pdv {
        v.push(format!("delay variation {:.1} ms > {} ms", m.pdv, l.pdv));
    }
    if m.plr > l.plr {
        v.push(format!("loss {:.1}% > {:.1}%", m.plr * 100.0, l.plr * 100.0));
    }
    if m.per > l.per {
        v.push(format!("errors {:.1}% > {:.1}%", m.per * 100.0, l.per * 100.0));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(lat: f64, pdv: f64, plr: f64, per: f64) -> LinkMetrics {
        LinkMetrics { lat, ltm: lat, pdv, plr, plr_congestion: 0.0, per, avl: 1.0, samples: 10 }
    }

    #[test]
    fn perfect_link_scores_one_and_worse_links_less() {
        let (w, l) = (Weights::default(), Limits::default());
        assert!((score(&m(0.0, 0.0, 0.0, 0.0), &w, &l) - 1.0).abs() < 1e-9);
        let good = score(&m(5.0, 1.0, 0.0, 0.0), &w, &l);
        let lossy = score(&m(5.0, 1.0, 0.2, 0.0), &w, &l);
        let slow = score(&m(400.0, 1.0, 0.0, 0.0), &w, &l);
        assert!(good > 0.95, "{good}");
        assert!(lossy < good && slow < good);
        // 20% loss with a 5% limit: the loss quarter is all but gone.
        assert!((lossy - (good - 0.25)).abs() < 0.01, "{lossy} vs {good}");
    }

    #[test]
    fn weights_choose_what_matters() {
        let l = Limits::default();
        let only_loss = Weights { lat: 0.0, ltm: 0.0, pdv: 0.0, plr: 1.0, per: 0.0, avl: 0.0 };
        assert!((score(&m(400.0, 90.0, 0.0, 0.0), &only_loss, &l) - 1.0).abs() < 1e-9);
        let only_avl = Weights { lat: 0.0, ltm: 0.0, pdv: 0.0, plr: 0.0, per: 0.0, avl: 1.0 };
        let half = LinkMetrics { avl: 0.5, ..m(0.0, 0.0, 0.0, 0.0) };
        assert!((score(&half, &only_avl, &l) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn unmeasured_links_are_not_penalised_for_latency() {
        let none = LinkMetrics { avl: 1.0, ..Default::default() };
        assert!((score(&none, &Weights::default(), &Limits::default()) - 1.0).abs() < 1e-9);
        assert!(violations(&none, &Limits::default()).is_empty());
    }

    #[test]
    fn violations_name_the_metric() {
        let v = violations(&m(600.0, 1.0, 0.1, 0.0), &Limits::default());
        assert_eq!(v, ["latency 600.0 ms > 500 ms", "loss 10.0% > 5.0%"]);
    }

    #[test]
    fn zero_weights_do_not_divide_by_zero() {
        let w = Weights { lat: 0.0, ltm: 0.0, pdv: 0.0, plr: 0.0, per: 0.0, avl: 0.0 };
        assert_eq!(score(&m(1.0, 1.0, 0.5, 0.5), &w, &Limits::default()), 1.0);
    }
}
