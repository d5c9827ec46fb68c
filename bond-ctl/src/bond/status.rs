//! A bond's status for `bondctl status`.

use anyhow::Context;
use bond_common::{
    config::{BUCKETS, Mode},
    flow::FlowEntry,
};

use super::Bond;
use crate::{
    status::{BondCounters, BondStatus, FlowStatus, MemberState, MemberStatus, PeerStatus, PolicyStatus},
    sys,
};

impl Bond {
    pub fn status(&self) -> anyhow::Result<BondStatus> {
        let dp = self.dataplane.as_ref().context("the data plane is not loaded")?;
        let cfg = dp.maps.config()?;
        let bs = dp.maps.bond_stats()?;
        let aware = self.policy.uses_buckets();
        // balance-tlb / balance-alb receive on their active member.
        let has_active = matches!(self.policy.mode, Mode::ActiveBackup | Mode::None) || self.own_macs();
        let alb_peers = (self.policy.mode == Mode::BalanceAlb).then(|| self.alb_peers());
        let mut members = Vec::new();
        for m in &self.members {
            let s = dp.maps.member_stats(m.slot)?;
            let health =
                if m.liveness.up() { "up".to_string() } else { format!("down: {}", m.liveness.reason.clone().unwrap_or_default()) };
            members.push(MemberStatus {
                name: m.name.clone(),
                slot: m.slot,
                ifindex: m.link.index,
                state: if m.usable { MemberState::Up } else { MemberState::Down },
                carrier: m.link.carrier,
                admin_up: m.link.admin_up,
                usable: m.usable,
                active: has_active && self.main.active == Some(m.slot),
                link_failures: m.link_failures,
                health,
                punished_ms: m.punishment.remaining_ms(),
                violations: m.violations.clone(),
                quality: m.metrics,
                score: m.score,
                speed_mbps: m.speed,
                tx_probes: s.tx_probes,
                rx_probes: s.rx_probes,
                probes_answered: s.probes_answered,
                probe_errors: s.probe_errors,
                perm_mac: sys::format_mac(&m.link.perm_mac.or(m.saved.as_ref().map(|s| s.mac)).unwrap_or(m.link.mac)),
                allocation: aware.then(|| cfg.policies[0].buckets.iter().filter(|&&b| b == m.slot).count() as f64 / BUCKETS as f64),
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
                tx_errors: s.tx_errors,
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                rx_dropped: s.rx_dropped,
                mac: sys::format_mac(&m.link.mac),
                alb_peers: alb_peers.as_ref().map(|p| p.get(&m.slot).copied().unwrap_or(0)),
            });
        }
        let device = self.device.as_ref().context("no bond device")?;
        Ok(BondStatus {
            name: self.spec.name.clone(),
            ifindex: device.index,
            mac: sys::format_mac(&device.mac),
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
            counters: BondCounters {
                tx_no_member: bs.tx_no_member,
                tx_no_config: bs.tx_no_config,
                tx_unparsed: bs.tx_unparsed,
                tx_broadcast_copies: bs.tx_broadcast_copies,
                rx_not_member: bs.rx_not_member,
                rx_slow_protocol: bs.rx_slow_protocol,
                flows: dp.maps.flows().len() as u64,
            },
            lacp: self.lacp_status(),
            events: self.events.iter().cloned().collect(),
        })
    }

    /// The `top` flows of the flow table by bytes.
    pub fn flows(&self, top: usize) -> anyhow::Result<Vec<FlowStatus>> {
        let dp = self.dataplane.as_ref().context("the data plane is not loaded")?;
        let mut flows: Vec<FlowEntry> = dp.maps.flows().into_iter().map(|(_, f)| f).collect();
        flows.sort_by_key(|f| std::cmp::Reverse(f.bytes));
        let now = sys::monotonic_ns();
        Ok(flows
            .iter()
            .take(top)
            .map(|f| {
                let (src, dst) = endpoints(f);
                FlowStatus {
                    src,
                    dst,
                    proto: protocol(f),
                    member: self.members.iter().find(|m| m.slot == f.member).map_or("-".into(), |m| m.name.clone()),
                    packets: f.packets,
                    bytes: f.bytes,
                    idle_ms: now.saturating_sub(f.last_seen_ns) / 1_000_000,
                }
            })
            .collect())
    }
}

fn endpoints(f: &FlowEntry) -> (String, String) {
    let ports = matches!(f.proto, 6 | 17 | 132 | 33 | 136);
    let addr = |a: &[u8; 16], port: u16| -> String {
        let ip = match f.family {
            4 => std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
            6 => format!("[{}]", std::net::Ipv6Addr::from(*a)),
            _ => return a[..6].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
        };
        if ports { format!("{ip}:{port}") } else { ip.trim_matches(['[', ']']).to_string() }
    };
    (addr(&f.src, f.src_port), addr(&f.dst, f.dst_port))
}

fn protocol(f: &FlowEntry) -> String {
    if f.family == 0 {
        return format!("{:#06x}", f.dst_port);
    }
    match f.proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}
