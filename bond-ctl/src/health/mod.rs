//! Link health and quality, as pure logic with time passed in (unit-tested with a fake clock):
//! measurements ([`metrics`]), scoring ([`quality`]), punishment ([`punish`]), up/down decisions
//! ([`liveness`]), the active member ([`reselect`]) and load rebalancing ([`rebalance`]).

pub mod liveness;
pub mod metrics;
pub mod punish;
pub mod quality;
pub mod rebalance;
pub mod reselect;
