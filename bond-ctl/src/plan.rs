//! From specs and member states to the data plane's configuration. Pure: no I/O, so every
//! decision here is unit-tested.

use bond_common::{
    config::{BUCKETS, Balance, BondConfig, ClassRule, MAX_CLASSES, MAX_MEMBERS, Mode, NO_MEMBER, PolicyConfig, bond_flags},
    schedule::MemberSchedule,
};

use crate::{
    config::PolicySpec,
    health::{
        rates::Measured,
        reselect::{Candidate, SelectMethod},
    },
};

/// What the planner knows about one member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub name: String,
    pub slot: u8,
    pub ifindex: u32,
    pub usable: bool,
    /// Quality score, 0.0 to 1.0.
    pub score: f64,
    /// Whether the score rests on enough measurements.
    pub judged: bool,
    /// Speed the driver reports (Mb/s).
    pub speed: Option<u32>,
    /// The member device's MAC address (its own under balance-tlb / balance-alb).
    pub mac: [u8; 6],
    /// Its `prio`: with no usable primary, the active member is the usable one of the highest.
    pub prio: i32,
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
    // Then by `prio`, highest first (ties in link order), as bonding picks a new active member.
    let mut rest = used.clone();
    rest.sort_by_key(|m| std::cmp::Reverse(m.prio));
    for m in rest {
        visit(m);
    }
    order
}

/// The members active-backup and none choose from, in failover order, as the active-member
/// choice sees them.
pub fn candidates(policy: &PolicySpec, members: &[MemberView]) -> Vec<Candidate> {
    let mut c: Vec<Candidate> = member_order(policy, members)
        .into_iter()
        .filter_map(|slot| members.iter().find(|m| m.slot == slot))
        .map(|m| Candidate {
            slot: m.slot,
            usable: m.usable,
            primary: policy.links.get(&m.name).is_some_and(|l| l.primary),
            score: m.score,
            judged: m.judged,
            prio: m.prio,
            speed: m.speed,
        })
        .collect();
    // balance-tlb / balance-alb keep their members in link order for the hash; their active
    // member is chosen by primary, then prio, as active-backup's (whose order has it already).
    if !matches!(policy.mode, Mode::ActiveBackup | Mode::None) {
        c.sort_by_key(|c| (!c.primary, std::cmp::Reverse(c.prio)));
    }
    c
}

/// How the active member is chosen: `none` never moves back to another link, whatever
/// `linkSelectMethod` says.
pub fn select_method(policy: &PolicySpec) -> SelectMethod {
    if policy.mode == Mode::None { SelectMethod::Failure } else { policy.select_method }
}

/// balance-aware weights of the usable members.
///
/// - `alloc` shares when any link has one (links without one get 0): fixed, quality only
///   decides which links are usable;
/// - otherwise capacity times quality score, capacity being the configured `speed` (links
///   without one count as the mean of those with one), else the speed the driver reports
///   (when every usable link reports one), else equal.
///
/// If the usable members' weights add up to nothing, they share equally: a usable link is never
/// left idle while traffic would otherwise be dropped.
pub fn weights(policy: &PolicySpec, members: &[MemberView]) -> Vec<(u8, f64)> {
    let usable: Vec<&MemberView> = members.iter().filter(|m| m.usable && policy.uses_link(&m.name)).collect();
    let link = |m: &MemberView| policy.links.get(&m.name);
    let any_alloc = policy.links.values().any(|l| l.alloc.is_some());
    let speeds: Vec<f64> = policy.links.values().filter_map(|l| l.speed).map(f64::from).collect();
    let mean_speed = if speeds.is_empty() { 1.0 } else { speeds.iter().sum::<f64>() / speeds.len() as f64 };
    let driver_speeds = usable.iter().all(|m| m.speed.is_some());
    let w: Vec<(u8, f64)> = usable
        .iter()
        .map(|m| {
            let w = if any_alloc {
                link(m).and_then(|l| l.alloc).unwrap_or(0.0)
            } else {
                let capacity = if !speeds.is_empty() {
                    link(m).and_then(|l| l.speed).map_or(mean_speed, f64::from)
                } else if driver_speeds {
                    f64::from(m.speed.unwrap_or(1))
                } else {
                    1.0
                };
                capacity * m.score
            };
            (m.slot, w)
        })
        .collect();
    if w.iter().map(|(_, w)| w).sum::<f64>() > 0.0 { w } else { w.into_iter().map(|(s, _)| (s, 1.0)).collect() }
}

/// The rate balance-aware `packet` without `speed` counts on for a link not measured yet whose
/// device says nothing (Mbit/s).
pub const UNMEASURED_MBPS: u32 = 1_000;

/// balance-aware `packet`'s view of each member (see `bond_common::schedule`): its rate, from
/// the configured `speed` read as Mbit/s (links without one at the mean of those with one),
/// or, with no `speed` given at all, as measured (`measured_bps`, `health::rates`), taken as it
/// is; and its one-way delay, half its base round trip (`base_rtt_ns`, none
/// measured yet: 0). Every entry unknown (the kernel then walks the bucket table) unless the
/// policy is packet-based balance-aware and every member it uses has a rate.
pub fn schedules(
    policy: &PolicySpec,
    members: &[MemberView],
    base_rtt_ns: impl Fn(u8) -> Option<u64>,
    measured: impl Fn(u8) -> Measured,
) -> [MemberSchedule; MAX_MEMBERS] {
    let mut out = [MemberSchedule::default(); MAX_MEMBERS];
    if policy.mode != Mode::BalanceAware || policy.balance != Balance::Packet {
        return out;
    }
    let used: Vec<&MemberView> = members.iter().filter(|m| policy.uses_link(&m.name)).collect();
    let speeds: Vec<f64> = used.iter().filter_map(|m| policy.links.get(&m.name).and_then(|l| l.speed)).map(f64::from).collect();
    let mean = (!speeds.is_empty()).then(|| speeds.iter().sum::<f64>() / speeds.len() as f64);
    // Not the drivers' speeds: a veth says 10 Gbit/s, a NIC its line rate, neither what the
    // path beyond carries.
    let rate = |m: &MemberView| match mean {
        Some(mean) => Some(policy.links.get(&m.name).and_then(|l| l.speed).map_or(mean, f64::from)),
        None if policy.measures_rates() => match measured(m.slot) {
            Measured::Bps(bps) => Some(bps / 1e6),
            // Not found full yet: as fast as a packet train found it, else as its device, so
            // it is given traffic until it fills (packets go where they arrive first: the
            // quickest path first).
            Measured::NotYet(capacity) => {
                let device = f64::from(m.speed.unwrap_or(UNMEASURED_MBPS));
                Some(capacity.map_or(device, |bps| (bps / 1e6).min(device)))
            }
            // Nothing to measure with (the peer's replies do not say what it received): the
            // stride, or the quickest path would take everything for ever.
            Measured::Unmeasurable => None,
        },
        None => None,
    };
    if used.iter().any(|m| rate(m).is_none_or(|r| r <= 0.0)) {
        return out;
    }
    for m in used {
        if let Some(e) = out.get_mut(usize::from(m.slot)) {
            // The rate as it is, no margin: a model slower than the path runs ahead of it
            // whenever the sender offers more than the model's sum, and then splits by rate
            // alone, the delays forgotten (over 2/10/25 ms, a slow path's packets arriving
            // 23 ms behind the fast one's). The kernel counts a GSO packet's bytes as its
            // segments leave (`schedule::wire_bytes`), so a path carrying what was said
            // keeps to the model.
            *e = MemberSchedule::new(rate(m).unwrap_or(0.0), base_rtt_ns(m.slot).unwrap_or(0) / 2);
        }
    }
    out
}

/// The data plane's form of `policy`, with `buckets` as balance-aware's table.
pub fn policy_config(policy: &PolicySpec, members: &[MemberView], active: Option<u8>, buckets: &[u8; BUCKETS]) -> PolicyConfig {
    let order = member_order(policy, members);
    let mut p = PolicyConfig::EMPTY;
    p.mode = policy.mode as u32;
    p.xmit_hash = policy.xmit_hash as u32;
    p.balance = policy.balance as u32;
    p.packets_per_link = policy.packets_per_link;
    p.flow_expiry_ticks = bond_common::sticky::expiry_ticks(policy.flow_expiry);
    p.active = u32::from(active.unwrap_or(NO_MEMBER));
    p.n_members = order.len().min(MAX_MEMBERS) as u32;
    for (i, slot) in order.iter().take(MAX_MEMBERS).enumerate() {
        p.members[i] = *slot;
        p.member_mask |= 1 << slot;
        let name = members.iter().find(|m| m.slot == *slot).map(|m| m.name.as_str()).unwrap_or("");
        if policy.ipv_pref(name).carries_v4() {
            p.v4_mask |= 1 << slot;
        }
        if policy.ipv_pref(name).carries_v6() {
            p.v6_mask |= 1 << slot;
        }
    }
    if policy.uses_buckets() {
        p.buckets = *buckets;
    }
    p
}

/// Bond-wide settings of the data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BondSettings {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub probe_id: u32,
    /// Bits of `bond_flags`.
    pub flags: u32,
    /// Bits of `peer_tables`: the destination tables that hold entries.
    pub peer_tables: u32,
    /// Traffic classes with their own policy, most specific first (`n_classes` in use).
    pub classes: [ClassRule; MAX_CLASSES],
    pub n_classes: u32,
    /// Sets of the `sticky_flows` table loaded (from `flow_table_size`).
    pub sticky_sets: u32,
}

impl BondSettings {
    /// The data-plane flags for a policy in force and the monitors.
    pub fn flags_for(policy: &PolicySpec, arp_monitor: bool, ns_monitor: bool) -> u32 {
        let mut f = 0;
        if policy.mode == Mode::Broadcast && policy.dedup {
            f |= bond_flags::RX_DEDUP;
        }
        if matches!(policy.mode, Mode::BalanceTlb | Mode::BalanceAlb) {
            f |= bond_flags::OWN_MACS;
        }
        if policy.mode == Mode::BalanceAlb {
            f |= bond_flags::RX_BALANCE;
        }
        if policy.mode == Mode::Lacp {
            f |= bond_flags::RX_COLLECTING_ONLY;
        }
        if arp_monitor {
            f |= bond_flags::ARP_MONITOR;
        }
        if ns_monitor {
            f |= bond_flags::NS_MONITOR;
        }
        // Only a bond that probes answers probes: one configured the bonding.ko way sends
        // nothing bonding.ko would not, replies included.
        if policy.monitor != crate::config::model::MonitorStrategy::Passive {
            f |= bond_flags::ANSWER_PROBES;
        }
        f
    }
}

/// The whole configuration of a bond: `policies[0]` for all traffic but that to peers with
/// their own policy (indices 1.., see the destination tables).
pub fn bond_config(bond: &BondSettings, members: &[MemberView], policies: &[PolicyConfig], generation: u64) -> BondConfig {
    let mut c = BondConfig::EMPTY;
    c.generation = generation;
    c.bond_ifindex = bond.ifindex;
    c.flags = bond.flags;
    c.probe_id = bond.probe_id;
    c.bond_mac[..6].copy_from_slice(&bond.mac);
    c.default_policy = 0;
    c.peer_tables = bond.peer_tables;
    c.classes = bond.classes;
    c.n_classes = bond.n_classes;
    c.sticky_sets = bond.sticky_sets;
    for m in members {
        if usize::from(m.slot) < MAX_MEMBERS {
            c.member_ifindex[usize::from(m.slot)] = m.ifindex;
            c.member_mac[usize::from(m.slot)][..6].copy_from_slice(&m.mac);
            c.n_slots = c.n_slots.max(u32::from(m.slot) + 1);
        }
    }
    for (slot, p) in c.policies.iter_mut().zip(policies) {
        *slot = *p;
    }
    c
}

/// What decides whether a member may carry traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    pub healthy: bool,
    pub punished: bool,
    /// Past a quality limit.
    pub degraded: bool,
}

/// Which members carry traffic: the healthy ones neither punished nor degraded; if none, the
/// healthy ones not punished; if none, all healthy ones. Only unhealthy members are ever left
/// out when nothing else is there.
pub fn usable_tiers(members: &[Standing]) -> Vec<bool> {
    let clean = |m: &Standing| m.healthy && !m.punished && !m.degraded;
    let unpunished = |m: &Standing| m.healthy && !m.punished;
    let healthy = |m: &Standing| m.healthy;
    let tiers: [&dyn Fn(&Standing) -> bool; 3] = [&clean, &unpunished, &healthy];
    for tier in tiers {
        if members.iter().any(tier) {
            return members.iter().map(tier).collect();
        }
    }
    vec![false; members.len()]
}

/// The `member_usable` bit mask.
pub fn usable_mask(members: &[MemberView]) -> u32 {
    members.iter().filter(|m| m.usable && usize::from(m.slot) < MAX_MEMBERS).fold(0, |acc, m| acc | 1 << m.slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alloc, config::LinkSpec, health::reselect::ActiveSelector};

    fn members(usable: &[bool]) -> Vec<MemberView> {
        usable
            .iter()
            .enumerate()
            .map(|(i, u)| MemberView {
                prio: 0,
                name: format!("eth{i}"),
                slot: i as u8,
                ifindex: 10 + i as u32,
                usable: *u,
                score: 1.0,
                judged: false,
                speed: None,
                mac: [2, 0, 0, 0, 0, i as u8],
            })
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

    /// The active member as the bond would choose it.
    fn active(p: &PolicySpec, m: &[MemberView], current: Option<u8>) -> Option<u8> {
        ActiveSelector::default().choose(select_method(p), &candidates(p, m), current, 0)
    }

    #[test]
    fn packet_schedules_take_speeds_as_mbit_and_half_the_base_round_trip() {
        let mut p = policy(Mode::BalanceAware);
        p.balance = Balance::Packet;
        let p = with_link(with_link(with_link(p, "eth0", |l| l.speed = Some(20)), "eth1", |l| l.speed = Some(10)), "eth2", |_| {});
        let m = members(&[true, true, false]);
        let rtt = |slot: u8| (slot == 1).then_some(20_000_000);
        let s = schedules(&p, &m, rtt, |_| Measured::Unmeasurable);
        // 20 Mbit/s: 0.4 µs a byte; eth2 has no speed: the mean of the others (15); a member
        // not usable keeps its entry (the usable mask decides).
        assert_eq!(s[0], MemberSchedule { ps_per_byte: 400_000, delay_ns: 0 });
        assert_eq!(s[1], MemberSchedule { ps_per_byte: 800_000, delay_ns: 10_000_000 });
        assert_eq!(s[2].ps_per_byte, 533_333);
        assert_eq!(s[3], MemberSchedule::default());
        let mut q = policy(Mode::BalanceAware);
        q.balance = Balance::Packet;
        let mut m = members(&[true, true]);
        m[0].speed = Some(1000);
        m[1].speed = Some(100);
        let q = with_link(with_link(q, "eth0", |l| l.speed = Some(100)), "eth1", |l| l.speed = Some(0));
        assert_eq!(schedules(&q, &m, |_| None, |_| Measured::Unmeasurable)[0].ps_per_byte, 0, "a link of speed 0: not scheduled");
        // Flow-based balance-aware, or another mode: not scheduled.
        let mut q = with_link(policy(Mode::BalanceAware), "eth0", |l| l.speed = Some(100));
        q.balance = Balance::FlowDynamic;
        assert_eq!(schedules(&q, &m, |_| None, |_| Measured::Unmeasurable), [MemberSchedule::default(); MAX_MEMBERS]);
    }

    #[test]
    fn without_speeds_packet_schedules_take_the_measured_rates_and_the_devices_until_measured() {
        let mut p = policy(Mode::BalanceAware);
        p.balance = Balance::Packet;
        let m = members(&[true, true, true]);
        let rates = [Measured::Bps(20e6), Measured::Bps(10e6), Measured::Bps(5e6)];
        let s = schedules(&p, &m, |_| None, |slot| rates[usize::from(slot)]);
        // Measured 20 Mbit/s, counted as a configured speed would be.
        assert_eq!(s[0].ps_per_byte, 400_000);
        assert_eq!(s[1].ps_per_byte, 800_000);
        assert_eq!(s[2].ps_per_byte, 1_600_000);
        // A link not measured yet: as fast as its device says, else 1 Gbit/s.
        let mut m = m;
        m[1].speed = Some(10_000);
        let s = schedules(&p, &m, |_| None, |slot| if slot == 0 { rates[0] } else { Measured::NotYet(None) });
        assert_eq!(s[0].ps_per_byte, 400_000);
        assert_eq!(s[1].ps_per_byte, 800, "10 Gbit/s");
        assert_eq!(s[2].ps_per_byte, 8_000, "1 Gbit/s");
        // A packet train's capacity, until found full; never above the device's.
        let s = schedules(&p, &m, |_| None, |slot| if slot == 1 { Measured::NotYet(Some(10e6)) } else { Measured::NotYet(Some(5e9)) });
        assert_eq!(s[1].ps_per_byte, 800_000, "10 Mbit/s by its train");
        assert_eq!(s[2].ps_per_byte, 8_000, "1 Gbit/s: the train said more");
        // A link whose peer does not say what it received: nobody is scheduled (the stride).
        let s = schedules(&p, &m, |_| None, |slot| if slot == 2 { Measured::Unmeasurable } else { rates[usize::from(slot)] });
        assert_eq!(s, [MemberSchedule::default(); MAX_MEMBERS]);
        // A configured speed anywhere: the speeds, not the measurements.
        let p = with_link(with_link(with_link(p, "eth0", |l| l.speed = Some(100)), "eth1", |_| {}), "eth2", |_| {});
        let s = schedules(&p, &m, |_| None, |slot| rates[usize::from(slot)]);
        assert_eq!(s[1].ps_per_byte, s[0].ps_per_byte, "eth1 at the mean of the speeds given");
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
        let mut p = with_link(with_link(p, "eth1", |_| {}), "eth2", |_| {});
        p.select_method = SelectMethod::Always;
        let m = members(&[true; 4]);
        assert_eq!(member_order(&p, &m), [0, 3, 1, 2]);
        // eth0 fails: eth3 takes over, not eth1 or eth2.
        assert_eq!(active(&p, &members(&[false, true, true, true]), Some(0)), Some(3));
        assert_eq!(active(&p, &members(&[false, true, true, false]), Some(3)), Some(1));
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
    fn primary_returns_with_always() {
        let mut p = with_link(with_link(policy(Mode::ActiveBackup), "eth0", |l| l.primary = true), "eth1", |_| {});
        p.select_method = SelectMethod::Always;
        assert_eq!(active(&p, &members(&[true, true]), None), Some(0));
        assert_eq!(active(&p, &members(&[false, true]), Some(0)), Some(1));
        assert_eq!(active(&p, &members(&[true, true]), Some(1)), Some(0), "primary returns");
        assert_eq!(active(&p, &members(&[false, false]), Some(1)), None);
    }

    #[test]
    fn none_never_moves_back() {
        let mut p = with_link(with_link(policy(Mode::None), "eth0", |l| l.primary = true), "eth1", |_| {});
        p.select_method = SelectMethod::Always;
        assert_eq!(active(&p, &members(&[true, true]), Some(1)), Some(1));
        assert_eq!(active(&p, &members(&[true, false]), Some(1)), Some(0));
    }

    #[test]
    fn weights_from_alloc_speed_driver_speed_or_quality() {
        let mut m = members(&[true, true, true]);
        let p = policy(Mode::BalanceAware);
        assert_eq!(weights(&p, &m), [(0, 1.0), (1, 1.0), (2, 1.0)]);
        m[1].score = 0.5;
        assert_eq!(weights(&p, &m), [(0, 1.0), (1, 0.5), (2, 1.0)], "quality lowers the weight");
        // Driver speeds, when every usable link reports one.
        m[0].speed = Some(10_000);
        m[1].speed = Some(1_000);
        assert_eq!(weights(&p, &m), [(0, 1.0), (1, 0.5), (2, 1.0)], "eth2 reports none: equal capacities");
        m[2].speed = Some(1_000);
        assert_eq!(weights(&p, &m), [(0, 10_000.0), (1, 500.0), (2, 1_000.0)]);
        // Configured speeds win over the driver's.
        let p = with_link(with_link(policy(Mode::BalanceAware), "eth0", |l| l.speed = Some(300)), "eth1", |l| l.speed = Some(100));
        let p = with_link(p, "eth2", |_| {});
        let m = members(&[true; 3]);
        assert_eq!(weights(&p, &m), [(0, 300.0), (1, 100.0), (2, 200.0)], "eth2 has no speed: the mean");
        // Fixed allocations ignore quality.
        let p = with_link(policy(Mode::BalanceAware), "eth0", |l| l.alloc = Some(0.75));
        let p = with_link(p, "eth1", |l| l.alloc = Some(0.25));
        let p = with_link(p, "eth2", |l| l.alloc = Some(0.0));
        let mut m = members(&[true; 3]);
        m[0].score = 0.1;
        assert_eq!(weights(&p, &m), [(0, 0.75), (1, 0.25), (2, 0.0)]);
        // Only the zero-share link is usable: it carries the traffic rather than dropping it.
        assert_eq!(weights(&p, &members(&[false, false, true])), [(2, 1.0)]);
    }

    #[test]
    fn no_capacities_and_all_degraded_still_share() {
        // ZeroTier divides 0 by 0 here; every link at score 0 shares equally instead.
        let mut m = members(&[true, true]);
        m[0].score = 0.0;
        m[1].score = 0.0;
        assert_eq!(weights(&policy(Mode::BalanceAware), &m), [(0, 1.0), (1, 1.0)]);
        // A single link takes everything.
        assert_eq!(weights(&policy(Mode::BalanceAware), &members(&[true])), [(0, 1.0)]);
    }

    #[test]
    fn aware_buckets_are_copied_and_family_masks_follow_ipv_pref() {
        let p = with_link(policy(Mode::BalanceAware), "eth0", |l| l.ipv_pref = crate::config::model::IpvPref::V4);
        let p = with_link(p, "eth1", |l| l.ipv_pref = crate::config::model::IpvPref::V6);
        let p = with_link(p, "eth2", |_| {});
        let m = members(&[true; 3]);
        let table = alloc::allocate(&weights(&p, &m), &[NO_MEMBER; BUCKETS]);
        let cfg = policy_config(&p, &m, None, &table);
        assert_eq!(cfg.buckets, table);
        assert_eq!((cfg.member_mask, cfg.v4_mask, cfg.v6_mask), (0b111, 0b101, 0b110));
    }

    #[test]
    fn bond_config_places_members_by_slot() {
        let m = members(&[true, false, true]);
        let bond = BondSettings {
            ifindex: 7,
            mac: [2, 0, 0, 0, 0, 1],
            probe_id: 9,
            flags: bond_flags::RX_DEDUP,
            peer_tables: 0,
            sticky_sets: 16_384,
            ..Default::default()
        };
        let mut rr = policy(Mode::BalanceRr);
        rr.flow_expiry = 243_000;
        let c = bond_config(&bond, &m, &[policy_config(&rr, &m, None, &[NO_MEMBER; BUCKETS])], 3);
        assert_eq!((c.bond_ifindex, c.n_slots, c.generation, c.probe_id, c.flags), (7, 3, 3, 9, bond_flags::RX_DEDUP));
        assert_eq!(&c.bond_mac[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&c.member_ifindex[..3], &[10, 11, 12]);
        assert_eq!(c.policies[0].n_members, 3);
        assert_eq!(usable_mask(&m), 0b101);
        assert_eq!(c.peer_tables, 0);
        assert_eq!(c.policies[1].n_members, 0, "no peer policy");
        assert_eq!(c.sticky_sets, 16_384, "flow-static's table, as loaded");
        assert_eq!(c.policies[0].flow_expiry_ticks, 227, "flowExpiry in the table's ticks");
    }

    #[test]
    fn peer_policies_follow_the_default_one() {
        let m = members(&[true, true, true]);
        let bond = BondSettings { peer_tables: 1, ..Default::default() };
        let main = policy_config(&policy(Mode::ActiveBackup), &m, Some(1), &[NO_MEMBER; BUCKETS]);
        let peer = policy_config(&policy(Mode::BalanceRr), &m, None, &[NO_MEMBER; BUCKETS]);
        let c = bond_config(&bond, &m, &[main, peer], 1);
        assert_eq!((c.default_policy, c.peer_tables), (0, 1));
        assert_eq!((c.policies[0].mode, c.policies[0].active), (Mode::ActiveBackup as u32, 1));
        assert_eq!((c.policies[1].mode, c.policies[1].n_members), (Mode::BalanceRr as u32, 3));
    }

    #[test]
    fn punished_or_degraded_links_carry_traffic_only_when_nothing_better_is_there() {
        // (healthy, punished, degraded)
        let m = |healthy, punished, degraded| Standing { healthy, punished, degraded };
        assert_eq!(usable_tiers(&[m(true, false, false), m(true, true, false), m(true, false, true)]), [true, false, false]);
        assert_eq!(usable_tiers(&[m(true, true, false), m(true, false, true), m(false, false, false)]), [false, true, false]);
        assert_eq!(usable_tiers(&[m(true, true, true), m(true, true, false), m(false, false, false)]), [true, true, false]);
        assert_eq!(usable_tiers(&[m(false, false, false), m(false, true, true)]), [false, false]);
    }

    #[test]
    fn dedup_flag_only_for_broadcast_with_dedup() {
        let mut p = policy(Mode::Broadcast);
        p.monitor = crate::config::model::MonitorStrategy::Passive;
        assert_eq!(BondSettings::flags_for(&p, false, false), 0);
        p.dedup = true;
        assert_eq!(BondSettings::flags_for(&p, true, false), bond_flags::RX_DEDUP | bond_flags::ARP_MONITOR);
    }

    #[test]
    fn only_a_bond_that_probes_answers_probes() {
        let mut p = policy(Mode::ActiveBackup);
        assert_eq!(BondSettings::flags_for(&p, false, false), bond_flags::ANSWER_PROBES, "ZeroTier's active-backup probes");
        p.monitor = crate::config::model::MonitorStrategy::Passive;
        assert_eq!(BondSettings::flags_for(&p, false, false), 0, "quiet: no replies either");
    }
}
