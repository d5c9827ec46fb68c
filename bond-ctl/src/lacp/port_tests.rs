use super::*;
use crate::lacp::AdSelect;

const SEC: Nanos = 1000 * MS;
const US: [u8; 6] = [2, 0, 0, 0, 0, 1];
const THEM: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn settings(fast: bool, active: bool) -> LacpSettings {
    LacpSettings { fast, active, select: AdSelect::Stable, system_priority: 100, system: US, user_port_key: 0, min_links: 0, strict: false }
}

fn enabled_port(fast: bool, active: bool) -> Port {
    let mut port = Port::new(0, 1, [2, 0, 0, 0, 1, 1], 1000, true, &settings(fast, active));
    port.set_enabled(true, 0, &mut Vec::new());
    port
}

/// A PDU from a partner whose view of us is `view` (None: it knows nothing of us yet).
fn pdu_from_partner(partner_state: u8, view: Option<&PortInfo>) -> Lacpdu {
    let actor = PortInfo { system_priority: 200, system: THEM, key: 9, port_priority: 255, port: 5, state: partner_state };
    Lacpdu { actor, partner: view.copied().unwrap_or(PARTNER_ADMIN), collector_max_delay: 0 }
}

#[test]
fn keys_follow_speed_duplex_and_user_key() {
    assert_eq!(actor_key(0, 1000, true), (4 << 1) | 1);
    assert_eq!(actor_key(1, 1000, true), (1 << 6) | (4 << 1) | 1);
    assert_eq!(actor_key(0, 10_000, true), 7 << 1 | 1);
    assert_ne!(actor_key(0, 1000, true), actor_key(0, 1000, false));
    assert_ne!(actor_key(0, 1000, true), actor_key(0, 2500, true));
    assert_eq!(actor_key(0, 0, true), actor_key(0, 1234, true), "unknown speeds share code 0, as in Linux");
    let port = Port::new(0, 7, [0; 6], 1000, true, &settings(true, true));
    assert_eq!(port.actor.port, 7);
    assert_eq!(port.actor.port_priority, 255);
    assert_eq!(port.actor.state, state::ACTIVITY | state::TIMEOUT | state::AGGREGATION | state::DEFAULTED);
    let passive_slow = Port::new(0, 7, [0; 6], 1000, true, &settings(false, false));
    assert_eq!(passive_slow.actor.state, state::AGGREGATION | state::DEFAULTED);
}

#[test]
fn partner_sync_counts_only_with_a_right_view_of_us() {
    let mut port = enabled_port(true, true);
    port.tx.ntt = false;
    let in_sync = state::ACTIVITY | state::AGGREGATION | state::SYNC;
    port.receive(&pdu_from_partner(in_sync, None), SEC, &mut Vec::new());
    assert_eq!(port.rx, RxState::Current);
    assert_eq!(port.partner.system, THEM);
    assert_eq!(port.partner.state & state::SYNC, 0, "the partner's view of us is wrong");
    assert!(port.reselect && port.tx.ntt);
    assert_eq!(port.actor.state & (state::DEFAULTED | state::EXPIRED), 0);

    let view = port.actor;
    port.reselect = false;
    port.tx.ntt = false;
    port.receive(&pdu_from_partner(in_sync, Some(&view)), 2 * SEC, &mut Vec::new());
    assert_ne!(port.partner.state & state::SYNC, 0);
    assert!(!port.reselect, "same partner: selection stands");
    assert!(!port.tx.ntt, "the partner knows us: nothing to correct");

    // A partner that cannot aggregate is in sync whatever it thinks of us.
    let mut port = enabled_port(true, true);
    port.receive(&pdu_from_partner(state::ACTIVITY | state::SYNC, None), SEC, &mut Vec::new());
    assert_ne!(port.partner.state & state::SYNC, 0);
    assert!(port.lag_key().individual);
}

#[test]
fn own_pdus_are_ignored() {
    let mut port = enabled_port(true, true);
    let mut events = Vec::new();
    let looped = Lacpdu { actor: port.actor, partner: PARTNER_ADMIN, collector_max_delay: 0 };
    port.receive(&looped, SEC, &mut events);
    port.receive(&looped, SEC, &mut events);
    assert_eq!(port.rx, RxState::Expired);
    assert_eq!(events.len(), 1, "reported once: {events:?}");
}

#[test]
fn partner_expires_then_defaults() {
    for (fast, timeout) in [(true, 3 * SEC), (false, 90 * SEC)] {
        let mut port = enabled_port(fast, true);
        let mut events = Vec::new();
        let view = port.actor;
        port.receive(&pdu_from_partner(state::ACTIVITY | state::AGGREGATION | state::SYNC, Some(&view)), 0, &mut events);
        port.run_rx_timer(timeout - 1, &mut events);
        assert_eq!(port.rx, RxState::Current);
        port.run_rx_timer(timeout, &mut events);
        assert_eq!(port.rx, RxState::Expired);
        assert_eq!(port.partner.state & (state::SYNC | state::TIMEOUT), state::TIMEOUT, "out of sync, asked for fast PDUs");
        assert_ne!(port.actor.state & state::EXPIRED, 0);
        assert_eq!(port.partner.system, THEM, "EXPIRED keeps the partner");
        port.run_rx_timer(timeout + 3 * SEC, &mut events);
        assert_eq!(port.rx, RxState::Defaulted);
        assert_eq!(port.partner, PARTNER_ADMIN);
        assert_eq!(port.actor.state & (state::DEFAULTED | state::EXPIRED), state::DEFAULTED);
        assert!(port.reselect);
        let secs = timeout / SEC;
        assert!(events.iter().any(|e| e == &format!("port 1: partner timed out (no LACPDU for {secs} s)")), "{events:?}");
    }
}

#[test]
fn passive_ports_speak_only_to_active_partners() {
    let mut port = enabled_port(true, false);
    assert_eq!(port.transmit(0), None);
    port.receive(&pdu_from_partner(state::AGGREGATION, None), SEC, &mut Vec::new());
    assert_eq!(port.transmit(SEC), None, "both passive");
    port.receive(&pdu_from_partner(state::AGGREGATION | state::ACTIVITY, None), 2 * SEC, &mut Vec::new());
    let frame = port.transmit(2 * SEC).expect("an active partner gets answers");
    assert_eq!(&frame[6..12], &[2, 0, 0, 0, 1, 1], "sent from the port's own MAC");
    port.set_enabled(false, 3 * SEC, &mut Vec::new());
    port.tx.ntt = true;
    assert_eq!(port.transmit(3 * SEC), None, "disabled ports are silent");
    assert_eq!(port.next_deadline(3 * SEC), None);
}

#[test]
fn mux_attaches_after_the_wait_and_distributes_with_a_synced_partner() {
    let mut port = enabled_port(true, true);
    let mut events = Vec::new();
    let view = port.actor;
    port.receive(&pdu_from_partner(state::ACTIVITY | state::AGGREGATION, Some(&view)), 0, &mut events);
    assert!(port.step_mux(Selection::Selected, false, false, 0, &mut events));
    assert_eq!(port.mux, MuxState::Waiting);
    assert!(!port.ready_n(AGGREGATE_WAIT - 1) && port.ready_n(AGGREGATE_WAIT));
    assert!(!port.step_mux(Selection::Selected, false, false, AGGREGATE_WAIT, &mut events), "others not ready");
    assert!(port.step_mux(Selection::Selected, true, false, AGGREGATE_WAIT, &mut events));
    assert_eq!(port.mux, MuxState::Attached);
    assert_ne!(port.actor.state & state::SYNC, 0);
    assert!(!port.step_mux(Selection::Selected, true, false, AGGREGATE_WAIT, &mut events), "the partner is not in sync");
    let view = port.actor;
    port.receive(&pdu_from_partner(state::ACTIVITY | state::AGGREGATION | state::SYNC, Some(&view)), AGGREGATE_WAIT, &mut events);
    assert!(port.step_mux(Selection::Selected, true, false, AGGREGATE_WAIT, &mut events));
    assert_eq!(port.mux, MuxState::CollectingDistributing);
    assert_eq!(port.actor.state & (state::COLLECTING | state::DISTRIBUTING), state::COLLECTING | state::DISTRIBUTING);
    // Standby: back down to WAITING, out of sync.
    while port.step_mux(Selection::Standby, true, false, 3 * SEC, &mut events) {}
    assert_eq!(port.mux, MuxState::Waiting);
    assert_eq!(port.actor.state & (state::SYNC | state::COLLECTING | state::DISTRIBUTING), 0);
}
