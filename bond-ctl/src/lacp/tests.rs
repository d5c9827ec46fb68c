//! `Lacp`s wired back to back: each step ticks every node and delivers what it sends to the
//! other end of the wire, 100 ms apart, as a daemon would.

use std::collections::{HashMap, VecDeque};

use super::*;
use crate::health::metrics::MS;

pub(super) const STEP: Nanos = 100 * MS;
pub(super) const SEC: Nanos = 1000 * MS;

type End = (usize, u8);

pub(super) struct Net {
    pub nodes: Vec<Lacp>,
    wires: Vec<(End, End)>,
    pub now: Nanos,
    /// LACPDUs sent, per node.
    pub sent: Vec<usize>,
    recent: HashMap<End, VecDeque<Nanos>>,
    delivered: Vec<End>,
}

pub(super) fn settings(system: u8, fast: bool, active: bool) -> LacpSettings {
    LacpSettings { fast, active, system: [2, 0, 0, 0, 0, system], system_priority: 32768, ..LacpSettings::default() }
}

impl Net {
    pub fn new(nodes: Vec<LacpSettings>) -> Net {
        let count = nodes.len();
        Net {
            nodes: nodes.into_iter().map(Lacp::new).collect(),
            wires: Vec::new(),
            now: 0,
            sent: vec![0; count],
            recent: HashMap::new(),
            delivered: Vec::new(),
        }
    }

    /// Two nodes with `links` links between equal slots.
    pub fn pair(a: LacpSettings, b: LacpSettings, links: u8) -> Net {
        let mut net = Net::new(vec![a, b]);
        for slot in 0..links {
            net.wire((0, slot), (1, slot), 1000);
        }
        net
    }

    /// A member on each end, enabled, its port number slot + 1.
    pub fn wire(&mut self, a: End, b: End, speed_mbps: u32) {
        self.port(a, speed_mbps);
        self.port(b, speed_mbps);
        self.wires.push((a, b));
    }

    /// A member whose link leads to no LACP speaker (its frames are lost).
    pub fn port(&mut self, (node, slot): End, speed_mbps: u32) {
        let mac = [2, 0, 0, 0, node as u8 + 1, slot];
        self.nodes[node].add_port(slot, u16::from(slot) + 1, mac, speed_mbps, true, self.now);
        self.nodes[node].set_enabled(slot, true, self.now);
    }

    fn peer(&self, end: End) -> Option<End> {
        self.wires.iter().find_map(|&(a, b)| {
            if a == end {
                Some(b)
            } else if b == end {
                Some(a)
            } else {
                None
            }
        })
    }

    pub fn step(&mut self) {
        self.advance_to(self.now + STEP);
    }

    /// Ticks every node at `now`.
    pub fn advance_to(&mut self, now: Nanos) {
        self.now = now;
        self.tick_nodes(&(0..self.nodes.len()).collect::<Vec<_>>());
    }

    /// Ticks `nodes` at `self.now` and delivers what they send.
    fn tick_nodes(&mut self, nodes: &[usize]) {
        let now = self.now;
        self.delivered.clear();
        let mut frames = Vec::new();
        for &index in nodes {
            frames.extend(self.nodes[index].tick(now).into_iter().map(|(slot, frame)| ((index, slot), frame)));
        }
        for (from, frame) in frames {
            self.sent[from.0] += 1;
            let recent = self.recent.entry(from).or_default();
            recent.push_back(now);
            recent.retain(|&t| t + SEC > now);
            assert!(recent.len() <= 3, "{from:?} sent more than 3 LACPDUs in a second");
            assert_eq!(&frame[0..6], &SLOW_PROTOCOLS_MAC);
            if let Some(to) = self.peer(from) {
                self.delivered.push(to);
                assert_eq!(self.nodes[to.0].receive(to.1, &frame, now), None, "a LACPDU needs no marker response");
            }
        }
    }

    pub fn run(&mut self, duration: Nanos) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until `done` (true) or for at most `limit` (false).
    pub fn run_until(&mut self, limit: Nanos, done: impl Fn(&Net) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            if self.now >= end {
                return false;
            }
            self.step();
        }
        true
    }

    /// Steps until a LACPDU has just reached `to`, so its partner's timer starts now.
    pub fn run_until_delivered(&mut self, to: End, limit: Nanos) {
        let end = self.now + limit;
        self.step();
        while !self.delivered.contains(&to) {
            assert!(self.now < end, "no LACPDU reached {to:?}");
            self.step();
        }
    }

    pub fn mask(&self, node: usize) -> u32 {
        self.nodes[node].distributing()
    }
}

#[test]
fn two_systems_aggregate_every_link() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, true), 3);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b111 && n.mask(1) == 0b111), "{:#?}", net.nodes[0].status());
    assert!(net.now >= 2 * SEC, "AGGREGATE_WAIT is kept");
    let status = net.nodes[0].status();
    assert_eq!(status.aggregators.len(), 1);
    let aggregator = &status.aggregators[0];
    assert_eq!((aggregator.id, aggregator.ports.clone(), aggregator.selected), (1, vec![0, 1, 2], true));
    assert_eq!(aggregator.partner_system, "02:00:00:00:00:02");
    assert_eq!(status.active_aggregator, Some(1));
    assert!(status.ports.iter().all(|p| p.mux_state == "collecting_distributing" && p.rx_state == "current" && p.selected == "selected"));
    let state = status.ports[0].actor.state;
    assert_eq!(state, state::ACTIVITY | state::TIMEOUT | state::AGGREGATION | state::SYNC | state::COLLECTING | state::DISTRIBUTING);
    let events = net.nodes[0].take_events();
    assert!(events.iter().any(|e| e.starts_with("aggregator 1 selected (3 ports, partner 02:00:00:00:00:02")), "{events:?}");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["ports"][0]["mux_state"], "collecting_distributing");
    assert_eq!(json["ports"][0]["partner"]["system"], "02:00:00:00:00:02");
    assert_eq!((json["system"].as_str(), json["distributing"].as_u64()), (Some("02:00:00:00:00:01"), Some(0b111)));
    // Steady state: it holds, at one LACPDU per second per port.
    let sent = net.sent[0];
    net.run(30 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0b111, 0b111));
    assert!((85..=95).contains(&(net.sent[0] - sent)), "{} PDUs in 30 s on 3 ports", net.sent[0] - sent);
}

#[test]
fn a_disabled_port_leaves_both_sides_fast_rate() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, true), 3);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b111 && n.mask(1) == 0b111));
    net.run_until_delivered((1, 1), 2 * SEC);
    net.nodes[0].set_enabled(1, false, net.now);
    assert_eq!(net.mask(0), 0b101, "the disabled port leaves at once");
    net.run(2 * SEC);
    assert_eq!(net.mask(1), 0b111, "the partner waits for its 3 s timeout");
    net.run(SEC);
    assert_eq!(net.mask(1), 0b101, "gone after 3 s");
    let events = net.nodes[1].take_events();
    assert!(events.iter().any(|e| e == "port 2: partner timed out (no LACPDU for 3 s)"), "{events:?}");
    net.run(5 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0b101, 0b101));

    net.nodes[0].set_enabled(1, true, net.now);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b111 && n.mask(1) == 0b111), "{:#?}", net.nodes[1].status());
}

#[test]
fn a_disabled_port_leaves_both_sides_slow_rate() {
    let mut net = Net::pair(settings(1, false, true), settings(2, false, true), 2);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11));
    net.run_until_delivered((1, 1), 40 * SEC);
    net.nodes[0].set_enabled(1, false, net.now);
    assert_eq!(net.mask(0), 0b01);
    net.run(60 * SEC);
    assert_eq!(net.mask(1), 0b11, "still trusted after 60 s");
    net.run(30 * SEC);
    assert_eq!(net.mask(1), 0b01, "gone after 90 s");
    net.nodes[0].set_enabled(1, true, net.now);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11));
}

#[test]
fn a_new_partner_on_a_link_starts_over() {
    let mut net = Net::new(vec![settings(1, true, true), settings(2, true, true), settings(3, true, true)]);
    net.wire((0, 0), (1, 0), 1000);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 1 && n.mask(1) == 1));
    // The cable moves from node 1 to node 2.
    net.wires.clear();
    net.port((2, 0), 1000);
    net.wires.push(((0, 0), (2, 0)));
    net.run_until_delivered((0, 0), 2 * SEC);
    net.step();
    let port = &net.nodes[0].status().ports[0];
    assert_eq!(port.partner.system, "02:00:00:00:00:03");
    assert_eq!(port.mux_state, "waiting", "another partner is another aggregator: detached, and the wait again");
    assert_eq!(net.mask(0), 0);
    let moved = net.now;
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 1 && n.mask(2) == 1));
    assert!(net.now - moved >= 2 * SEC);
}

#[test]
fn passive_sides_stay_silent_and_use_one_link() {
    let mut net = Net::pair(settings(1, true, false), settings(2, true, false), 2);
    net.run(10 * SEC);
    assert_eq!(net.sent, vec![0, 0]);
    for node in 0..2 {
        assert_eq!(net.mask(node).count_ones(), 1, "node {node}");
        let status = net.nodes[node].status();
        assert!(status.ports.iter().all(|p| p.rx_state == "defaulted" && p.partner.system == "00:00:00:00:00:00"));
        assert!(status.aggregators.iter().all(|a| a.individual && a.ports.len() == 1));
    }
}

#[test]
fn active_and_passive_negotiate() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, false), 3);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b111 && n.mask(1) == 0b111));
    net.run(20 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0b111, 0b111), "the passive side keeps answering");
    assert!(net.sent[1] >= 60, "the passive side sends what the active one asks for");
}

#[test]
fn ticking_only_at_next_deadline_is_enough() {
    let mut net = Net::pair(settings(1, true, true), settings(2, false, true), 2);
    // Node 1 starts later, so that the nodes' timers do not coincide.
    let start = 350 * MS;
    for slot in 0..2 {
        net.nodes[1].set_enabled(slot, false, 0);
    }
    let (mut ticks, mut converged) = (0, None);
    while net.now < 60 * SEC {
        // Each node ticks only when it asks to.
        let due = net.nodes.iter().filter_map(Lacp::next_deadline).min().expect("active nodes always have a deadline");
        net.now = net.now.max(if net.now < start { due.min(start) } else { due });
        let now = net.now;
        if now == start {
            (0..2).for_each(|slot| net.nodes[1].set_enabled(slot, true, now));
        }
        let nodes: Vec<usize> = (0..2).filter(|&i| net.nodes[i].next_deadline().is_some_and(|d| d <= now)).collect();
        net.tick_nodes(&nodes);
        ticks += 1;
        assert!(ticks < 1000, "next_deadline keeps asking for ticks at {}", net.now);
        let both = net.mask(0) == 0b11 && net.mask(1) == 0b11;
        converged = converged.or(both.then_some(net.now));
        assert!(both || converged.is_none(), "lost at {}", net.now);
    }
    assert!(converged.is_some_and(|t| t < 4 * SEC), "converged at {converged:?}");
}

#[test]
fn next_deadline_names_each_timer() {
    // Passive without a partner: no periodic PDUs to hide the other timers.
    let mut lacp = Lacp::new(settings(1, true, false));
    let start = 100 * MS;
    lacp.add_port(0, 1, [2, 0, 0, 0, 1, 0], 1000, true, start);
    assert_eq!(lacp.next_deadline(), Some(start), "a change: tick at once");
    lacp.tick(start);
    assert_eq!(lacp.next_deadline(), None, "a disabled port waits for nothing");
    lacp.set_enabled(0, true, start);
    assert_eq!(lacp.next_deadline(), Some(start));
    assert!(lacp.tick(start).is_empty());
    assert_eq!(lacp.next_deadline(), Some(start + 2 * SEC), "AGGREGATE_WAIT");
    lacp.tick(start + 2 * SEC);
    assert_eq!(lacp.distributing(), 1);
    assert_eq!(lacp.next_deadline(), Some(start + 3 * SEC), "current_while (EXPIRED)");
    lacp.tick(start + 3 * SEC);
    assert_eq!(lacp.status().ports[0].rx_state, "defaulted");
    assert_eq!(lacp.next_deadline(), None);
    let partner = PortInfo { system: [2, 0, 0, 0, 0, 2], state: state::ACTIVITY | state::AGGREGATION, ..PortInfo::default() };
    let lacpdu = pdu::Lacpdu { actor: partner, partner: PortInfo::default(), collector_max_delay: 0 };
    lacp.receive(0, &pdu::encode_lacpdu([2, 0, 0, 0, 2, 0], &lacpdu), 5 * SEC);
    assert_eq!(lacp.next_deadline(), Some(5 * SEC));
    assert_eq!(lacp.tick(5 * SEC).len(), 1, "the active partner is answered");
}

#[test]
fn markers_are_answered_and_bad_frames_counted() {
    let mut lacp = Lacp::new(settings(1, true, true));
    let mac = [2, 0, 0, 0, 1, 0];
    lacp.add_port(0, 1, mac, 1000, true, 0);
    let info = pdu::Marker { kind: MarkerKind::Information, requester_port: 4, requester_system: [2, 9, 9, 9, 9, 9], transaction_id: 77 };
    let response = lacp.receive(0, &pdu::encode_marker([2, 9, 9, 9, 9, 9], &info), 0).expect("a marker response");
    assert_eq!(pdu::parse(&response), Ok(SlowPdu::Marker(pdu::Marker { kind: MarkerKind::Response, ..info })));
    assert_eq!(&response[6..12], &mac);
    assert_eq!(lacp.receive(0, &response, 0), None, "responses are not answered");
    assert_eq!(lacp.receive(5, &pdu::encode_marker(mac, &info), 0), None, "unknown slot");

    let mut bad =
        pdu::encode_lacpdu(mac, &pdu::Lacpdu { actor: PortInfo::default(), partner: PortInfo::default(), collector_max_delay: 0 });
    bad[17] = 19;
    assert_eq!(lacp.receive(0, &bad, 0), None);
    assert_eq!(lacp.receive(0, &bad[..60], 0), None);
    let mut oam = bad.clone();
    oam[14] = 3;
    assert_eq!(lacp.receive(0, &oam, 0), None);
    let port = &lacp.status().ports[0];
    assert_eq!((port.bad_pdus, port.marker_responses_sent, port.pdus_received), (2, 1, 0));
    assert_eq!(lacp.take_events().iter().filter(|e| e.contains("malformed")).count(), 1);
}

#[test]
fn a_rate_change_keeps_the_aggregate_and_reaches_the_partner() {
    let mut net = Net::pair(settings(1, false, true), settings(2, false, true), 2);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11));
    let mut fast = net.nodes[0].settings().clone();
    fast.fast = true;
    assert!(net.nodes[0].update(&fast), "the rate changes in place");
    assert_eq!(net.mask(0), 0b11, "no new negotiation");
    // The partner now sends every second: our side times out after 3 s without its PDUs.
    net.run(2 * SEC);
    assert_eq!((net.mask(0), net.mask(1)), (0b11, 0b11));
    let partner_state = net.nodes[1].status().ports[0].partner.state;
    assert_ne!(partner_state & state::TIMEOUT, 0, "the partner sees the fast timeout bit");
    let mut other = fast.clone();
    other.user_port_key = 7;
    assert!(!net.nodes[0].update(&other), "a key change needs a new negotiation");
    assert_eq!(net.nodes[0].settings().user_port_key, fast.user_port_key, "and changes nothing");
}

#[test]
fn a_port_that_leaves_tells_the_partner_at_once() {
    let mut net = Net::pair(settings(1, false, true), settings(2, false, true), 2);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11));
    let frame = net.nodes[0].leave(1, net.now).expect("a last LACPDU");
    assert_eq!(net.mask(0), 0b01, "gone on our side");
    // Delivered to the partner's port 1 (the wire joins equal slots): it stops distributing at
    // once, not after the slow rate's 90 s.
    net.nodes[1].receive(1, &frame, net.now);
    net.run(STEP);
    assert_eq!(net.mask(1), 0b01, "the partner took the link out at once");
    assert!(net.nodes[0].leave(1, net.now).is_none(), "the port is gone");
}

#[test]
fn a_port_whose_speed_changes_moves_to_the_aggregator_of_its_new_key() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, true), 3);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b111 && n.mask(1) == 0b111));
    // The link of slot 2 comes back at 10 Gb/s on both ends: another key, another aggregator.
    for node in 0..2 {
        net.nodes[node].set_port_speed(2, 10_000, net.now);
    }
    assert!(net.run_until(5 * SEC, |n| n.nodes[0].status().aggregators.len() == 2), "{:#?}", net.nodes[0].status());
    let status = net.nodes[0].status();
    let key_of = |slot: u8| status.ports.iter().find(|p| p.slot == slot).unwrap().actor.key;
    assert_ne!(key_of(2), key_of(0), "the key follows the speed");
    let with = |slot: u8| status.aggregators.iter().find(|a| a.ports.contains(&slot)).unwrap().id;
    assert_ne!(with(2), with(0), "the port left its old aggregator");
    assert_eq!(with(0), with(1));
    // One aggregator distributes (stable selection keeps the one in force), the partner agrees.
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == n.mask(1) && n.mask(0) != 0));
    assert_eq!(net.mask(0).count_ones(), 2, "the two 1 Gb/s ports: {:#?}", net.nodes[0].status());
    // Same speed again: nothing changes.
    let before = net.nodes[0].status().ports[0].actor.key;
    net.nodes[0].set_port_speed(0, 1000, net.now);
    assert_eq!(net.nodes[0].status().ports[0].actor.key, before);
}

#[test]
fn a_port_says_why_it_does_not_distribute() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, true), 2);
    net.step();
    let why = net.nodes[0].why_not_distributing(0).expect("not distributing yet");
    assert!(why.starts_with("LACP: waiting to attach") || why.starts_with("LACP: not yet selected"), "{why}");
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11), "aggregates");
    assert_eq!(net.nodes[0].why_not_distributing(0), None, "distributing");
    let now = net.now;
    net.nodes[0].set_enabled(1, false, now);
    net.step();
    assert_eq!(net.nodes[0].why_not_distributing(1).as_deref(), Some("LACP: port disabled (no carrier or not full duplex)"));
    assert_eq!(net.nodes[0].why_not_distributing(7), None, "no such port");
}

#[test]
fn a_new_controller_takes_the_aggregate_over_and_the_partner_sees_no_change() {
    let a = settings(1, true, true);
    let mut net = Net::pair(a.clone(), settings(2, true, true), 2);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11), "aggregates");
    // Written to the state file and read back by the next controller, which starts 300 ms
    // later (the old one was killed).
    let json = serde_json::to_string(&net.nodes[0].snapshot()).unwrap();
    let snapshot: LacpSnapshot = serde_json::from_str(&json).unwrap();
    let ports = [(0, 1, [2, 0, 0, 0, 1, 0]), (1, 2, [2, 0, 0, 0, 1, 1])];
    assert!(Lacp::restore(snapshot.clone(), &settings(1, false, true), &ports, net.now).is_none(), "other settings: start over");
    assert!(Lacp::restore(snapshot.clone(), &a, &ports[..1], net.now).is_none(), "other members: start over");
    net.now += 300 * MS;
    let restored = Lacp::restore(snapshot, &a, &ports, net.now).expect("same settings and members");
    assert_eq!(restored.distributing(), 0b11, "distributing from the first moment");
    net.nodes[0] = restored;
    // Ten seconds on: neither side ever stops distributing on either link.
    let until = net.now + 10 * SEC;
    while net.now < until {
        net.step();
        assert_eq!((net.mask(0), net.mask(1)), (0b11, 0b11), "at {} ms", net.now / MS);
    }
    assert!(net.nodes[1].take_events().iter().all(|e| !e.contains("detached") && !e.contains("expired")), "nothing new for the partner");
}

#[test]
fn the_saved_lacpdus_keep_a_fast_partner_distributing_while_no_controller_runs() {
    let mut net = Net::pair(settings(1, true, true), settings(2, true, true), 2);
    assert!(net.run_until(5 * SEC, |n| n.mask(0) == 0b11 && n.mask(1) == 0b11), "aggregates");
    let keepalive = net.nodes[0].snapshot().keepalive();
    assert_eq!(keepalive.iter().map(|k| (k.slot, k.period)).collect::<Vec<_>>(), [(0, tx::FAST_PERIODIC), (1, tx::FAST_PERIODIC)]);
    // Node 0's controller is gone for 6 s (a new one loading its programs on a busy host): only
    // its keepalive frames reach the partner, or nothing at all.
    let partner_alone = |with_keepalive: bool| {
        let mut partner = net.nodes[1].clone();
        let (start, mut now, mut kept) = (net.now, net.now, true);
        while now < start + 6 * SEC {
            now += STEP;
            if with_keepalive && (now - start) % tx::FAST_PERIODIC == 0 {
                for k in &keepalive {
                    partner.receive(k.slot, &k.frame, now);
                }
            }
            partner.tick(now);
            kept &= partner.distributing() == 0b11;
        }
        (kept, partner.take_events())
    };
    let (kept, events) = partner_alone(true);
    assert!(kept, "the partner kept distributing on both links: {events:?}");
    assert!(events.iter().all(|e| !e.contains("expired") && !e.contains("detached")), "and saw nothing new: {events:?}");
    assert!(!partner_alone(false).0, "without them, its short timeout takes both links out");

    // A disabled port says nothing; a partner on long timeouts is sent one every 30 s.
    let now = net.now;
    net.nodes[0].set_enabled(1, false, now);
    net.nodes[0].tick(now);
    assert_eq!(net.nodes[0].snapshot().keepalive().iter().map(|k| k.slot).collect::<Vec<_>>(), [0]);
    let mut slow = Net::pair(settings(1, false, true), settings(2, false, true), 1);
    assert!(slow.run_until(5 * SEC, |n| n.mask(0) == 0b1), "aggregates");
    assert_eq!(slow.nodes[0].snapshot().keepalive()[0].period, tx::SLOW_PERIODIC);
}
