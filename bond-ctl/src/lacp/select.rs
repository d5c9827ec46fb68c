//! The Selection Logic (802.1AX-2014 §6.4.14) as pure functions: which ports aggregate together,
//! and which aggregator carries the traffic (bonding's `ad_select`).

use serde::{Deserialize, Serialize};

/// Chooses the active aggregator among those formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdSelect {
    /// Keep the active aggregator while it has ports, unless a partner appears where it has none.
    Stable,
    /// The highest total speed, reconsidered on every change.
    Bandwidth,
    /// The most ports, reconsidered on every change.
    Count,
    /// The highest sum of its ports' `actor_port_prio` (bonding's: higher wins), then the
    /// most ports, then the highest total speed; reconsidered on every change.
    ActorPortPrio,
}

/// What ports must share to aggregate: the LAG ID of §6.3.6 without the actor system, which all
/// our ports share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagKey {
    pub actor_key: u16,
    pub partner_system_priority: u16,
    pub partner_system: [u8; 6],
    pub partner_key: u16,
    /// The port cannot aggregate (the partner says so, or there is no partner): it is alone.
    pub individual: bool,
}

impl LagKey {
    pub fn has_partner(&self) -> bool {
        self.partner_system != [0; 6]
    }
}

/// An enabled port as the selection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortView {
    pub slot: u8,
    pub port: u16,
    pub lag: LagKey,
    pub speed_mbps: u32,
    /// Its actor port priority (`actor_port_prio`).
    pub priority: u16,
    /// The aggregator the port may stay in (None: it must be selected afresh).
    pub previous: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregator {
    pub id: u16,
    pub lag: LagKey,
    /// Slots, in port number order.
    pub slots: Vec<u8>,
    pub bandwidth_mbps: u64,
    /// The sum of its ports' actor port priorities (`ad_select actor_port_prio`).
    #[serde(default)]
    pub priority: u64,
}

/// Groups `ports` into aggregators. An aggregator keeps its id from `previous` while it keeps
/// its LAG key and some of its ports; a new one takes the lowest free port number, its own first.
pub fn group(ports: &[PortView], previous: &[Aggregator]) -> Vec<Aggregator> {
    let mut sorted: Vec<&PortView> = ports.iter().collect();
    sorted.sort_by_key(|p| p.port);
    let mut groups: Vec<Vec<&PortView>> = Vec::new();
    for port in sorted {
        match groups.iter_mut().find(|g| !port.lag.individual && g[0].lag == port.lag) {
            Some(group) => group.push(port),
            None => groups.push(vec![port]),
        }
    }

    // A split aggregator's id goes to the part that keeps most of its ports.
    let mut claims: Vec<(usize, u16, usize)> = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        let kept = |id: u16| group.iter().filter(|p| p.previous == Some(id)).count();
        let best = group
            .iter()
            .filter_map(|p| p.previous)
            .filter(|&id| previous.iter().any(|a| a.id == id && a.lag == group[0].lag))
            .map(|id| (kept(id), std::cmp::Reverse(id)))
            .max();
        if let Some((votes, std::cmp::Reverse(id))) = best {
            claims.push((index, id, votes));
        }
    }
    claims.sort_by_key(|&(index, _, votes)| (std::cmp::Reverse(votes), index));
    let mut ids: Vec<Option<u16>> = vec![None; groups.len()];
    for (index, id, _) in claims {
        if !ids.contains(&Some(id)) {
            ids[index] = Some(id);
        }
    }
    let mut all_numbers: Vec<u16> = ports.iter().map(|p| p.port).collect();
    all_numbers.sort_unstable();
    for index in 0..groups.len() {
        if ids[index].is_none() {
            let own = groups[index].iter().map(|p| p.port);
            let free = own.chain(all_numbers.iter().copied()).find(|n| !ids.contains(&Some(*n)));
            let fallback = ids.iter().flatten().max().map_or(1, |m| m + 1);
            ids[index] = Some(free.unwrap_or(fallback));
        }
    }

    let mut aggregators: Vec<Aggregator> = groups
        .iter()
        .zip(ids)
        .map(|(group, id)| Aggregator {
            id: id.expect("every group has an id"),
            lag: group[0].lag,
            slots: group.iter().map(|p| p.slot).collect(),
            bandwidth_mbps: group.iter().map(|p| u64::from(p.speed_mbps)).sum(),
            priority: group.iter().map(|p| u64::from(p.priority)).sum(),
        })
        .collect();
    aggregators.sort_by_key(|a| a.id);
    aggregators
}

/// The aggregator to carry traffic. `current` is the active one if it still exists unchanged.
pub fn choose_active(mode: AdSelect, aggregators: &[Aggregator], current: Option<u16>) -> Option<u16> {
    // Larger is better; ties go to the lower id.
    let rank = |a: &Aggregator| {
        let (bandwidth, count) = (a.bandwidth_mbps, a.slots.len() as u64);
        let (first, second, third) = match mode {
            AdSelect::Count => (count, bandwidth, 0),
            AdSelect::ActorPortPrio => (a.priority, count, bandwidth),
            AdSelect::Stable | AdSelect::Bandwidth => (bandwidth, count, 0),
        };
        (a.lag.has_partner(), !a.lag.individual, first, second, third, std::cmp::Reverse(a.id))
    };
    let best = aggregators.iter().max_by_key(|a| rank(a))?;
    if mode == AdSelect::Stable
        && let Some(current) = aggregators.iter().find(|a| Some(a.id) == current)
        && (current.lag.has_partner() || !best.lag.has_partner())
    {
        return Some(current.id);
    }
    Some(best.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(partner: u8, partner_key: u16) -> LagKey {
        LagKey {
            actor_key: 0x109,
            partner_system_priority: 0x8000,
            partner_system: [2, 0, 0, 0, 0, partner],
            partner_key,
            individual: false,
        }
    }

    fn view(slot: u8, lag: LagKey, previous: Option<u16>) -> PortView {
        PortView { slot, port: u16::from(slot) + 1, lag, speed_mbps: 1000, priority: 255, previous }
    }

    fn layout(aggregators: &[Aggregator]) -> Vec<(u16, Vec<u8>)> {
        aggregators.iter().map(|a| (a.id, a.slots.clone())).collect()
    }

    #[test]
    fn ports_sharing_a_lag_key_aggregate() {
        let none = LagKey { partner_system: [0; 6], individual: true, ..lag(0, 0) };
        let ports =
            [view(0, lag(1, 5), None), view(1, lag(2, 5), None), view(2, lag(1, 5), None), view(3, none, None), view(4, none, None)];
        let aggregators = group(&ports, &[]);
        assert_eq!(layout(&aggregators), vec![(1, vec![0, 2]), (2, vec![1]), (4, vec![3]), (5, vec![4])]);
        assert_eq!(aggregators[0].bandwidth_mbps, 2000);
        // A different partner key or actor key separates ports.
        let other_key = LagKey { actor_key: 0x10b, ..lag(1, 5) };
        let ports = [view(0, lag(1, 5), None), view(1, lag(1, 6), None), view(2, other_key, None)];
        assert_eq!(group(&ports, &[]).len(), 3);
    }

    #[test]
    fn ids_are_stable_while_the_aggregator_lives() {
        let first = group(&[view(1, lag(1, 5), None), view(2, lag(1, 5), None)], &[]);
        assert_eq!(layout(&first), vec![(2, vec![1, 2])]);
        // A lower-numbered port joins: the id stays.
        let second = group(&[view(0, lag(1, 5), None), view(1, lag(1, 5), Some(2)), view(2, lag(1, 5), Some(2))], &first);
        assert_eq!(layout(&second), vec![(2, vec![0, 1, 2])]);
        // The partner changes its key on one port: that port leaves for a new aggregator, and
        // the id stays with the part that keeps most ports.
        let third = group(&[view(0, lag(1, 6), Some(2)), view(1, lag(1, 5), Some(2)), view(2, lag(1, 5), Some(2))], &second);
        assert_eq!(layout(&third), vec![(1, vec![0]), (2, vec![1, 2])]);
        // Another partner is another aggregator: the id is not kept even where the ports stay.
        let fourth = group(&[view(0, lag(1, 6), Some(1)), view(2, lag(3, 5), Some(2)), view(3, lag(3, 5), None)], &third);
        assert_eq!(layout(&fourth), vec![(1, vec![0]), (3, vec![2, 3])]);
    }

    fn aggregator(id: u16, ports: usize, speed: u64, partner: bool) -> Aggregator {
        let lag = if partner { lag(id as u8, id) } else { LagKey { partner_system: [0; 6], individual: true, ..lag(0, 0) } };
        Aggregator { id, lag, slots: (0..ports as u8).collect(), bandwidth_mbps: ports as u64 * speed, priority: ports as u64 * 255 }
    }

    #[test]
    fn ad_select_policies() {
        let small_fast = aggregator(1, 2, 10_000, true);
        let large_slow = aggregator(3, 3, 1000, true);
        let lone = aggregator(6, 1, 100_000, false);
        let all = [small_fast.clone(), large_slow.clone(), lone.clone()];
        assert_eq!(choose_active(AdSelect::Bandwidth, &all, None), Some(1));
        assert_eq!(choose_active(AdSelect::Count, &all, None), Some(3));
        assert_eq!(choose_active(AdSelect::Stable, &all, None), Some(1), "stable starts with the fastest");
        assert_eq!(choose_active(AdSelect::Stable, &all, Some(3)), Some(3), "stable keeps the current one");
        assert_eq!(choose_active(AdSelect::Bandwidth, &all, Some(3)), Some(1));
        assert_eq!(choose_active(AdSelect::Stable, &all, Some(6)), Some(1), "a partner beats none, even for stable");
        assert_eq!(choose_active(AdSelect::Stable, &[lone.clone(), aggregator(7, 1, 10, false)], Some(7)), Some(7));
        let favoured = Aggregator { priority: 1000 + 255, ..aggregator(5, 2, 100, true) };
        assert_eq!(choose_active(AdSelect::ActorPortPrio, &[aggregator(4, 3, 1000, true), favoured.clone()], None), Some(5));
        assert_eq!(
            choose_active(AdSelect::ActorPortPrio, &[aggregator(4, 3, 1000, true), aggregator(6, 2, 1000, true)], None),
            Some(4),
            "equal priorities per port: the sum favours more ports"
        );
        assert_eq!(choose_active(AdSelect::ActorPortPrio, &[favoured, aggregator(1, 5, 1000, false)], Some(1)), Some(5), "a partner first");
        assert_eq!(
            choose_active(AdSelect::Count, &[aggregator(4, 2, 1000, true), aggregator(2, 2, 1000, true)], None),
            Some(2),
            "ties: lower id"
        );
        assert_eq!(choose_active(AdSelect::Count, &[], Some(1)), None);
        // A partner that cannot aggregate ranks below one that can.
        let individual = Aggregator { lag: LagKey { individual: true, ..lag(9, 9) }, ..aggregator(9, 1, 100_000, true) };
        assert_eq!(choose_active(AdSelect::Bandwidth, &[individual, aggregator(2, 1, 10, true)], None), Some(2));
    }
}
