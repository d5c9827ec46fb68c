//! From specs and member states to the data plane's configuration. Pure: no I/O, so every
//! decision here is unit-tested.

use bond_common::config::{BUCKETS, BondConfig, MAX_MEMBERS, Mode, NO_MEMBER, PolicyConfig};

use crate::{alloc, config::PolicySpec};

/// What the planner knows about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub slot: u8,
    pub ifindex: u32,
    pub usable: bool,
}

/// The member slots that carry `policy`'s traffic, in order. For active-backup and none this is
/// the failover order: each primary link followed by its `failoverTo` chain, then the remaining
/// links (each followed by its chain), in the bond's link order. The data plane's own fallback
/// (the first usable member in this order) therefore follows `failoverTo`.
pub fn member_order(policy: &PolicySpec, members: &[MemberView]) -> Vec<u8> {
    let used: Vec<&MemberView> = members.iter().filter(|m| policy.uses_link(&m.name)).collect();
    if !matches!(policy.mode, Mode::ActiveBackup | Mode::None) {
        return used.into_iter().map(|m| m.slot).collect();
    }
    let link = |name: &str| policy.links.get(name);
    let mut order: Vec<u8> = Vec::new();
    let mut visit = |start: &MemberView| {
        let mut cur = Some(start);
        while let Some(m) = cur.filter(|m| !order.contains(&m.slot)) {
            order.push(m.slot);
            let next = link(&m.name).and_then(|l| l.failover_to.as_deref());
            cur = next.and_then(|n| used.iter().copied().find(|u| u.name == n));
        }
    };
    for m in used.iter().filter(|m| link(&m.name).is_some_and(|l| l.primary)) {
        visit(m);
    }
    for m in &used {
        visit(m);
    }
    order
}

/// The member active-backup and none send on.
///
/// - none: stay on the current member while it is usable; otherwise the first usable one.
/// - active-backup: a usable primary link always (re)gains the role; otherwise stay on the
///   current member while usable; otherwise the first usable one in order.
pub fn choose_active(policy: &PolicySpec, members: &[MemberView], current: Option<u8>) -> Option<u8> {
    let order = member_order(policy, members);
    let usable = |slot: u8| members.iter().any(|m| m.slot == slot && m.usable);
    if policy.mode == Mode::ActiveBackup {
        let primary = order.iter().copied().find(|&s| {
            members.iter().any(|m| m.slot == s && policy.links.get(&m.name).is_some_and(|l| l.primary))
        });
        if let Some(p) = primary.filter(|&p| usable(p)) {
            return Some(p);
        }
    }
    if let Some(c) = current.filter(|&c| order.contains(&c) && usable(c)) {
        return Some(c);
    }
    order.iter().copied().find(|&s| usable(s))
}

/// balance-aware weights of the usable members: `alloc` shares when any link has one (others
/// get 0), else relative `speed` (links without one count as the mean of those with one), else
/// equal. If the usable members' weights add up to nothing, they share equally: a usable link
/// is never left idle while traffic would otherwise be dropped.
pub fn weights(policy: &PolicySpec, members: &[MemberView]) -> Vec<(u8, f64)> {
    let usable: Vec<&MemberView> = members.iter().filter(|m| m.usable && policy.uses_link(&m.name)).collect();
    let link = |m: &MemberView| policy.links.get(&m.name);
    let any_alloc = policy.links.values().any(|l| l.alloc.is_some());
    let speeds: Vec<f64> = policy.links.values().filter_map(|l| l.speed).map(f64::from).collect();
    let mean_speed = if speeds.is_empty() { 1.0 } else { speeds.iter().sum::<f64>() / speeds.len() as f64 };
    let w: Vec<(u8, f64)> = usable
        .iter()
        .map(|m| {
            let w = if any_alloc {
                link(m).and_then(|l| l.alloc).unwrap_or(0.0)
            } else if !speeds.is_empty() {
                link(m).and_then(|l| l.speed).map_or(mean_speed, f64::from)
            } else {
                1.0
            };
            (m.slot, w)
        })
        .collect();
    if w.iter().map(|(_, w)| w).sum::<f64>() > 0.0 { w } else { w.into_iter().map(|(s, _)| (s, 1.0)).collect() }
}

/// The data plane's form of `policy`.
pub fn policy_config(
    policy: &PolicySpec,
    members: &[MemberView],
    active: Option<u8>,
    previous_buckets: &[u8; BUCKETS],
) -> PolicyConfig {
    let order = member_order(policy, members);
    let mut p = PolicyConfig::EMPTY;
    p.mode = policy.mode as u32;
    p.xmit_hash = policy.xmit_hash as u32;
    p.balance = policy.balance as u32;
    p.packets_per_link = policy.packets_per_link;
    p.active = u32::from(active.unwrap_or(NO_MEMBER));
    p.n_members = order.len().min(MAX_MEMBERS) as u32;
    for (i, slot) in order.iter().take(MAX_MEMBERS).enumerate() {
        p.members[i] = *slot;
        p.member_mask |= 1 << slot;
    }
    if policy.mode == Mode::BalanceAware {
        p.buckets = alloc::allocate(&weights(policy, members), previous_buckets);
    }
    p
}

/// The whole configuration of a bond with one policy for all traffic.
pub fn bond_config(bond_ifindex: u32, members: &[MemberView], policy: PolicyConfig, generation: u64) -> BondConfig {
    let mut c = BondConfig::EMPTY;
    c.generation = generation;
    c.bond_ifindex = bond_ifindex;
    c.default_policy = 0;
    for m in members {
        if usize::from(m.slot) < MAX_MEMBERS {
            c.member_ifindex[usize::from(m.slot)] = m.ifindex;
            c.n_slots = c.n_slots.max(u32::from(m.slot) + 1);
        }
    }
    c.policies[0] = policy;
    c
}

/// The `member_usable` bit mask.
pub fn usable_mask(members: &[MemberView]) -> u32 {
    members.iter().filter(|m| m.usable && usize::from(m.slot) < MAX_MEMBERS).fold(0, |acc, m| acc | 1 << m.slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinkSpec;

    fn members(usable: &[bool]) -> Vec<MemberView> {
        usable
            .iter()
            .enumerate()
            .map(|(i, u)| MemberView { name: format!("eth{i}"), slot: i as u8, ifindex: 10 + i as u32, usable: *u })
            .collect()
    }

    fn policy(mode: Mode) -> PolicySpec {
        PolicySpec::standard(mode)
    }

    fn with_link(mut p: PolicySpec, name: &str, f: impl FnOnce(&mut LinkSpec)) -> PolicySpec {
        let mut l = LinkSpec { enabled: true, ..Default::default() };
        f(&mut l);
        p.links.insert(name.into(), l);
        p
    }

    #[test]
    fn primary_goes_first_in_active_backup() {
        let p = with_link(policy(Mode::ActiveBackup), "eth2", |l| l.primary = true);
        let p = with_link(p, "eth0", |_| {});
        let p = with_link(p, "eth1", |_| {});
        assert_eq!(member_order(&p, &members(&[true; 3])), [2, 0, 1]);
    }

    #[test]
    fn failover_to_chains_set_the_failover_order() {
        // eth0 (primary) -> eth3 -> eth1; eth2 has no chain.
        let p = with_link(policy(Mode::ActiveBackup), "eth0", |l| {
            l.primary = true;
            l.failover_to = Some("eth3".into());
        });
        let p = with_link(p, "eth3", |l| l.failover_to = Some("eth1".into()));
        let p = with_link(with_link(p, "eth1", |_| {}), "eth2", |_| {});
        let m = members(&[true; 4]);
        assert_eq!(member_order(&p, &m), [0, 3, 1, 2]);
        // eth0 fails: eth3 takes over, not eth1 or eth2.
        assert_eq!(choose_active(&p, &members(&[false, true, true, true]), Some(0)), Some(3));
        assert_eq!(choose_active(&p, &members(&[false, true, true, false]), Some(3)), Some(1));
        // A chain that loops ends where it started.
        let p = with_link(with_link(policy(Mode::ActiveBackup), "eth0", |l| l.failover_to = Some("eth1".into())), "eth1", |l| {
            l.failover_to = Some("eth0".into())
        });
        assert_eq!(member_order(&p, &members(&[true, true])), [0, 1]);
    }

    #[test]
    fn policy_links_restrict_members() {
        let p = with_link(policy(Mode::BalanceXor), "eth1", |_| {});
        let p = with_link(p, "eth2", |l| l.enabled = false);
        assert_eq!(member_order(&p, &members(&[true; 3])), [1]);
    }

    #[test]
    fn active_backup_keeps_active_until_it_fails_and_primary_returns() {
        let p = policy(Mode::ActiveBackup);
        assert_eq!(choose_active(&p, &members(&[true, true]), None), Some(0));
        assert_eq!(choose_active(&p, &members(&[true, true]), Some(1)), Some(1), "no primary: stays");
        assert_eq!(choose_active(&p, &members(&[false, true]), Some(0)), Some(1));
        let p = with_link(p, "eth0", |l| l.primary = true);
        assert_eq!(choose_active(&p, &members(&[true, true]), Some(1)), Some(0), "primary returns");
        assert_eq!(choose_active(&p, &members(&[false, false]), Some(1)), None);
    }

    #[test]
    fn none_never_moves_back() {
        let p = with_link(with_link(policy(Mode::None), "eth0", |l| l.primary = true), "eth1", |_| {});
        assert_eq!(choose_active(&p, &members(&[true, true]), Some(1)), Some(1));
        assert_eq!(choose_active(&p, &members(&[true, false]), Some(1)), Some(0));
    }

    #[test]
    fn weights_from_alloc_speed_or_equal() {
        let m = members(&[true, true, true]);
        let p = policy(Mode::BalanceAware);
        assert_eq!(weights(&p, &m), [(0, 1.0), (1, 1.0), (2, 1.0)]);
        let p = with_link(with_link(policy(Mode::BalanceAware), "eth0", |l| l.speed = Some(300)), "eth1", |l| l.speed = Some(100));
        let p = with_link(p, "eth2", |_| {});
        assert_eq!(weights(&p, &m), [(0, 300.0), (1, 100.0), (2, 200.0)], "eth2 has no speed: the mean");
        let p = with_link(policy(Mode::BalanceAware), "eth0", |l| l.alloc = Some(0.75));
        let p = with_link(p, "eth1", |l| l.alloc = Some(0.25));
        let p = with_link(p, "eth2", |l| l.alloc = Some(0.0));
        assert_eq!(weights(&p, &m), [(0, 0.75), (1, 0.25), (2, 0.0)]);
        // Only the zero-share link is usable: it carries the traffic rather than dropping it.
        assert_eq!(weights(&p, &members(&[false, false, true])), [(2, 1.0)]);
    }

    #[test]
    fn aware_buckets_follow_weights_of_usable_members() {
        let p = with_link(policy(Mode::BalanceAware), "eth0", |l| l.alloc = Some(0.5));
        let p = with_link(p, "eth1", |l| l.alloc = Some(0.25));
        let p = with_link(p, "eth2", |l| l.alloc = Some(0.25));
        let cfg = policy_config(&p, &members(&[true; 3]), None, &[NO_MEMBER; BUCKETS]);
        let n = |s| cfg.buckets.iter().filter(|&&b| b == s).count();
        assert_eq!((n(0), n(1), n(2)), (128, 64, 64));
        assert_eq!(cfg.member_mask, 0b111);
        let down = policy_config(&p, &members(&[true, false, true]), None, &cfg.buckets);
        assert_eq!(alloc::moved(&cfg.buckets, &down.buckets), 64, "only member 1's buckets move");
    }

    #[test]
    fn bond_config_places_members_by_slot() {
        let m = members(&[true, false, true]);
        let c = bond_config(7, &m, policy_config(&policy(Mode::BalanceRr), &m, None, &[NO_MEMBER; BUCKETS]), 3);
        assert_eq!((c.bond_ifindex, c.n_slots, c.generation), (7, 3, 3));
        assert_eq!(&c.member_ifindex[..3], &[10, 11, 12]);
        assert_eq!(c.policies[0].n_members, 3);
        assert_eq!(usable_mask(&m), 0b101);
    }
}
