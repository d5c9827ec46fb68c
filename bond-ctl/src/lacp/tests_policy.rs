//! Which aggregator carries traffic: partner keys, ad_select, min_links, no partner at all.

use super::tests::{Net, SEC, settings};
use super::*;

/// Node 0 (A) faces two LACP nodes sharing one system id with different port keys: node 1 (B1,
/// key 1) on A's slots 0 and 1, node 2 (B2, key 2) on A's slots 2.. (`b2_links` of them).
fn split_partner(select: AdSelect, b2_links: u8) -> Net {
    let a = LacpSettings { select, ..settings(1, true, true) };
    let b1 = LacpSettings { user_port_key: 1, ..settings(2, true, true) };
    let b2 = LacpSettings { user_port_key: 2, ..settings(2, true, true) };
    let mut net = Net::new(vec![a, b1, b2]);
    net.wire((0, 0), (1, 0), 1000);
    net.wire((0, 1), (1, 1), 1000);
    for link in 0..b2_links {
        net.wire((0, 2 + link), (2, link), 1000);
    }
    net
}

#[test]
fn different_partner_keys_make_two_aggregators_one_selected() {
    let mut net = split_partner(AdSelect::Stable, 2);
    net.run(6 * SEC);
    let status = net.nodes[0].status();
    let layout: Vec<(u16, Vec<u8>, bool)> = status.aggregators.iter().map(|a| (a.id, a.ports.clone(), a.selected)).collect();
    assert_eq!(layout, vec![(1, vec![0, 1], true), (3, vec![2, 3], false)]);
    assert_eq!(status.aggregators[1].partner_key & 0xffc0, 2 << 6, "B2's user key");
    assert_eq!((net.mask(0), net.mask(1), net.mask(2)), (0b0011, 0b11, 0));
    let selected: Vec<&str> = status.ports.iter().map(|p| p.selected.as_str()).collect();
    assert_eq!(selected, ["selected", "selected", "standby", "standby"]);
    assert!(status.ports[2..].iter().all(|p| p.mux_state == "waiting" && p.actor.state & state::SYNC == 0));
    // B2 is attached on its side but never distributes: A is not in sync on those links.
    assert!(net.nodes[2].status().ports.iter().all(|p| p.mux_state == "attached"));
}

/// A's slots 3 and 4 (to B2) come up later, making B2's aggregator the larger and faster.
#[test]
fn ad_select_count_and_bandwidth_move_stable_stays() {
    for (select, after) in [(AdSelect::Count, 0b11100), (AdSelect::Bandwidth, 0b11100), (AdSelect::Stable, 0b00011)] {
        let mut net = split_partner(select, 3);
        net.nodes[0].set_enabled(3, false, 0);
        net.nodes[0].set_enabled(4, false, 0);
        net.run(6 * SEC);
        assert_eq!(net.mask(0), 0b00011, "{select:?}: the larger aggregator first");
        net.nodes[0].set_enabled(3, true, net.now);
        net.nodes[0].set_enabled(4, true, net.now);
        net.run(8 * SEC);
        assert_eq!(net.mask(0), after, "{select:?}");
        let b2_carries = after == 0b11100;
        assert_eq!((net.mask(1) != 0, net.mask(2) == 0b111), (!b2_carries, b2_carries), "{select:?}");
        let events = net.nodes[0].take_events();
        assert_eq!(events.iter().any(|e| e.starts_with("aggregator 3 selected (3 ports")), b2_carries, "{select:?}: {events:?}");
    }
}

#[test]
fn ad_select_bandwidth_prefers_one_fast_link_to_two_slow() {
    for (select, chosen) in [(AdSelect::Bandwidth, 0b100), (AdSelect::Count, 0b011), (AdSelect::Stable, 0b100)] {
        let a = LacpSettings { select, ..settings(1, true, true) };
        let mut net = Net::new(vec![a, settings(2, true, true), settings(3, true, true)]);
        net.wire((0, 0), (1, 0), 1000);
        net.wire((0, 1), (1, 1), 1000);
        net.wire((0, 2), (2, 0), 10_000);
        net.run(6 * SEC);
        assert_eq!(net.mask(0), chosen, "{select:?}");
        let status = net.nodes[0].status();
        let bandwidth: Vec<u64> = status.aggregators.iter().map(|a| a.bandwidth_mbps).collect();
        assert_eq!(bandwidth, vec![2000, 10_000]);
    }
}

#[test]
fn min_links_withholds_a_small_aggregate() {
    let a = LacpSettings { min_links: 3, ..settings(1, true, true) };
    let mut net = Net::pair(a, settings(2, true, true), 2);
    net.run(6 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0, 0b11));
    assert!(net.nodes[0].status().ports.iter().all(|p| p.mux_state == "collecting_distributing"), "LACP itself is up");

    let a = LacpSettings { min_links: 2, ..settings(1, true, true) };
    let mut net = Net::pair(a, settings(2, true, true), 2);
    net.run(6 * SEC);
    assert_eq!(net.mask(0), 0b11);
    net.nodes[0].set_enabled(0, false, net.now);
    assert_eq!(net.mask(0), 0, "one link left: below min_links");
}

#[test]
fn without_any_partner_one_port_carries_traffic() {
    let mut net = Net::new(vec![settings(1, true, true)]);
    for slot in 0..3 {
        net.port((0, slot), 1000);
    }
    net.run(7 * SEC);
    let status = net.nodes[0].status();
    assert!(status.ports.iter().all(|p| p.rx_state == "defaulted"), "{status:#?}");
    assert_eq!(net.mask(0).count_ones(), 1);
    assert_eq!(status.aggregators.len(), 3);
    let events = net.nodes[0].take_events();
    assert!(events.iter().any(|e| e == "aggregator 1 selected (1 port, no LACP partner)"), "{events:?}");
    // It keeps asking, slowly: one LACPDU per 30 s per port.
    let sent = net.sent[0];
    net.run(60 * SEC);
    assert_eq!(net.sent[0] - sent, 6);
    assert_eq!(net.mask(0).count_ones(), 1);
    // The carrying port fails: another takes over.
    let carrying = net.mask(0).trailing_zeros() as u8;
    net.nodes[0].set_enabled(carrying, false, net.now);
    net.run(3 * SEC);
    assert_eq!(net.mask(0).count_ones(), 1);
    assert_eq!(net.mask(0) & (1 << carrying), 0);
}

#[test]
fn a_partner_appearing_replaces_the_partnerless_aggregator() {
    let mut net = Net::new(vec![settings(1, true, true), settings(2, true, true)]);
    net.port((0, 0), 1000);
    net.wire((0, 1), (1, 0), 1000);
    net.wire((0, 2), (1, 1), 1000);
    net.run(6 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0b110, 0b11), "the partnered aggregator wins over port 1 alone");
}

/// `lacp_strict` (the kernel's bond_lacp_strict.sh): with no partner speaking LACP, off lets
/// one port carry traffic, on lets none; toggled on a running aggregate without a new
/// negotiation, and a partner that does speak is unaffected.
#[test]
fn lacp_strict_carries_nothing_without_a_partner_and_toggles_live() {
    let mut net = Net::new(vec![settings(1, true, true)]);
    for slot in 0..2 {
        net.port((0, slot), 1000);
    }
    net.run(7 * SEC);
    assert_eq!(net.mask(0).count_ones(), 1, "off: bonding's fallback");
    assert!(net.nodes[0].update(&LacpSettings { strict: true, ..settings(1, true, true) }), "in place");
    net.run(SEC);
    assert_eq!(net.mask(0), 0, "on: nothing without a partner");
    assert!(net.nodes[0].status().ports.iter().all(|p| p.actor.state & (state::COLLECTING | state::DISTRIBUTING) == 0));
    assert!(net.nodes[0].update(&settings(1, true, true)));
    net.run(SEC);
    assert_eq!(net.mask(0).count_ones(), 1, "off again");

    let strict = LacpSettings { strict: true, ..settings(1, true, true) };
    let mut net = Net::pair(strict, settings(2, true, true), 2);
    net.run(6 * SEC);
    assert_eq!(net.mask(0), 0b11, "strict with a partner: as usual");
}

/// `ad_select actor_port_prio` (the kernel's bond_lacp_prio.sh): the aggregator whose ports'
/// priorities sum highest carries traffic, and it moves when the priorities change.
#[test]
fn ad_select_actor_port_prio_follows_the_ports_priorities() {
    let mut net = split_partner(AdSelect::ActorPortPrio, 2);
    net.nodes[0].set_port_priority(0, 1000);
    net.nodes[0].set_port_priority(2, 10);
    net.run(6 * SEC);
    assert_eq!(net.mask(0), 0b0011, "1000 + 255 beats 10 + 255");
    assert_eq!(net.nodes[0].status().ports[0].actor.port_priority, 1000, "sent in its LACPDUs");
    net.nodes[0].set_port_priority(0, 10);
    net.nodes[0].set_port_priority(2, 1000);
    net.run(6 * SEC);
    assert_eq!(net.mask(0), 0b1100, "swapped");
}
