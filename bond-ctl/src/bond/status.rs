//! A bond's status for `bondctl status`.

use anyhow::Context;
use bond_common::config::{BUCKETS, Mode};

use super::{Bond, BondIo};
use crate::{
    member::Member,
    status::{BondCounters, BondStatus, ClassStatus, MemberState, MemberStatus, PeerStatus, PolicyStatus},
};

impl<I: BondIo> Bond<I> {
    /// The status, without the flow count (read off the daemon's loop, see `crate::flows`).
    pub fn status(&self) -> anyhow::Result<BondStatus> {
        let cfg = self.io.config()?;
        let bs = self.io.bond_stats()?;
        let has_active = self.has_active();
        let members = self.members.iter().map(|m| self.member_status(m, &cfg.policies[0].buckets)).collect::<anyhow::Result<Vec<_>>>()?;
        let device = self.device.as_ref().context("no bond device")?;
        Ok(BondStatus {
            name: self.spec.name.clone(),
            ifindex: device.index,
            mac: crate::mac::format_mac(&device.mac),
            policy: PolicyStatus {
                name: self.policy.name.clone(),
                mode: self.policy.mode,
                xmit_hash_policy: self.policy.xmit_hash,
                packets_per_link: self.policy.packets_per_link,
                balance_policy: self.policy.balance,
            },
            active: has_active.then(|| self.main.active.and_then(|s| self.member(s)).map(|m| m.name.clone())).flatten(),
            generation: cfg.generation,
            failovers: self.failovers,
            members,
            peers: self
                .peer_entries
                .iter()
                .filter_map(|(peer, index)| {
                    let p = self.peers.get((*index as usize).checked_sub(1)?)?;
                    let active = matches!(p.spec.mode, Mode::ActiveBackup | Mode::None).then_some(p.place.active).flatten();
                    let active = active.and_then(|s| self.member(s)).map(|m| m.name.clone());
                    Some(PeerStatus { peer: peer.to_string(), policy: p.spec.name.clone(), active })
                })
                .collect(),
            classes: self
                .classes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let st = self.io.class_stats(i as u32).unwrap_or_default();
                    ClassStatus { class: c.to_string(), policy: c.policy.clone(), tx_packets: st.tx_packets, tx_bytes: st.tx_bytes }
                })
                .collect(),
            counters: BondCounters {
                tx_no_member: bs.tx_no_member,
                tx_no_config: bs.tx_no_config,
                tx_unparsed: bs.tx_unparsed,
                tx_broadcast_copies: bs.tx_broadcast_copies,
                rx_not_member: bs.rx_not_member,
                rx_slow_protocol: bs.rx_slow_protocol,
                // Counted off the timing path (see `crate::flows`).
                flows: 0,
                flow_table_size: self.spec.flow_table_size.into(),
            },
            lacp: self.lacp_status(),
            probes: self.probing_status(crate::sys::monotonic_ns()),
            events: self.events.iter().cloned().collect(),
        })
    }

    /// Whether the policy has an active member (active-backup, none; balance-tlb and
    /// balance-alb receive on theirs).
    fn has_active(&self) -> bool {
        matches!(self.policy.mode, Mode::ActiveBackup | Mode::None) || self.own_macs()
    }

    fn member_status(&self, m: &Member, buckets: &[u8; BUCKETS]) -> anyhow::Result<MemberStatus> {
        let s = self.io.member_stats(m.slot)?;
        let aware = self.policy.uses_buckets();
        // A failed link's latest probe is from before it failed.
        let queue_seen = m.rate.last_queue.filter(|_| self.policy.measures_rates() && m.liveness.up());
        let alb_peers = (self.policy.mode == Mode::BalanceAlb).then(|| self.alb_peers());
        let health = if m.liveness.up() { "up".to_string() } else { format!("down: {}", m.liveness.reason.clone().unwrap_or_default()) };
        Ok(MemberStatus {
            name: m.name.clone(),
            slot: m.slot,
            ifindex: m.link.index,
            state: if m.usable { MemberState::Up } else { MemberState::Down },
            carrier: m.link.carrier,
            admin_up: m.link.admin_up,
            usable: m.usable,
            active: self.has_active() && self.main.active == Some(m.slot),
            link_failures: m.link_failures,
            not_usable: (!m.usable)
                .then(|| super::monitor::why_not_usable(m, self.aggregation.as_ref().map(|a| a.why_not_distributing(m.slot)))),
            health,
            punished_ms: m.punishment.remaining_ms(),
            violations: m.violations.clone(),
            quality: m.metrics,
            score: m.score,
            speed_mbps: m.speed,
            delivered_bps: m.delivery.bps,
            measured_rate_bps: if self.policy.measures_rates() { m.rate.bps } else { None },
            train_capacity_bps: if self.policy.measures_rates() && m.rate.bps.is_none() { m.rate.capacity.bps() } else { None },
            queue_found_ms: queue_seen.map(|q| q.found as f64 / 1e6),
            queue_counted_ms: queue_seen.map(|q| q.counted as f64 / 1e6),
            tx_probes: s.tx_probes,
            rx_probes: s.rx_probes,
            probes_answered: s.probes_answered,
            probe_errors: s.probe_errors,
            probe_peer: m.probe_peer.filter(|_| !m.rediscover).map(|p| crate::mac::format_mac(&p)),
            perm_mac: crate::mac::format_mac(&m.link.perm_mac.or(m.saved.as_ref().map(|s| s.mac)).unwrap_or(m.link.mac)),
            allocation: aware.then(|| buckets.iter().filter(|&&b| b == m.slot).count() as f64 / BUCKETS as f64),
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            tx_errors: s.tx_errors,
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            rx_dropped: s.rx_dropped,
            mac: crate::mac::format_mac(&m.link.mac),
            alb_peers: alb_peers.as_ref().map(|p| p.get(&m.slot).copied().unwrap_or(0)),
        })
    }
}
