//! Link health and quality, as pure logic with time passed in (unit-tested with a fake clock):
//! measurements ([`metrics`]), scoring ([`quality`]), punishment ([`punish`]), up/down decisions
//! ([`liveness`]), the active member ([`reselect`]), load rebalancing ([`rebalance`]) and
//! balance-aware `packet`'s measured link rates ([`rates`]).

pub mod capacity;
pub mod liveness;
pub mod metrics;
pub mod punish;
pub mod quality;
pub mod rates;
pub mod rebalance;
pub mod reselect;
