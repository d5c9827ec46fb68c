//! Every frame the controller takes from the wire, on arbitrary bytes: it may refuse anything,
//! but must never panic, and what it computes from a frame must stay in range.
//!
//! Each input is tried as:
//! - a packet through the header parser `bond_egress` and `member_ingress` share
//!   (`bond_common::packet`, built here for user space);
//! - a slow-protocols frame (LACPDU or marker): parsed, then received by an LACP port four
//!   times, 100 ms apart, as a partner repeating itself, with the port's machines run on;
//! - probe events: the bytes cut into 32-byte ring buffer records, as the data plane reports
//!   probe replies, counted against probes the controller sent.
#![no_main]

use std::hint::black_box;

use bond_common::{packet, probe::ProbeEvent};
use bond_ctl::{
    health::metrics::{MS, ProbeWindow},
    lacp::{Lacp, LacpSettings, pdu},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    black_box(packet::parse(data));
    slow_protocols(data);
    probe_events(data);
});

fn slow_protocols(frame: &[u8]) {
    if let Err(e) = pdu::parse(frame) {
        black_box(e.to_string());
    }
    let mut lacp = Lacp::new(LacpSettings { system: [2, 0, 0, 0, 0, 1], ..LacpSettings::default() });
    lacp.add_port(0, 1, [2, 0, 0, 0, 1, 0], 1000, true, 0);
    lacp.set_enabled(0, true, 0);
    let mut now = MS;
    for _ in 0..4 {
        black_box(lacp.receive(0, frame, now));
        black_box(lacp.tick(now));
        now += 100 * MS;
    }
    black_box((lacp.distributing(), lacp.next_deadline(), lacp.take_events(), lacp.status()));
}

fn probe_events(data: &[u8]) {
    let mut window = ProbeWindow::default();
    for seq in 0..8u32 {
        window.sent(seq, u64::from(seq) * MS);
    }
    let now = 20 * MS;
    for record in data.chunks(32) {
        if let Some(e) = ProbeEvent::from_record(record) {
            window.replied_event(&e, now);
        }
    }
    window.expire(now, 10 * MS);
    let m = window.metrics(1.0);
    let ratio = 0.0..=1.0;
    assert!(m.lat.is_finite() && m.lat >= 0.0 && m.ltm >= m.lat && m.pdv.is_finite() && m.pdv >= 0.0, "{m:?}");
    assert!(ratio.contains(&m.plr) && ratio.contains(&m.plr_congestion) && ratio.contains(&m.per), "{m:?}");
    assert!(m.plr + m.plr_congestion <= 1.0 + 1e-9, "{m:?}");
    assert!(m.samples <= window.outcomes(), "{m:?}");
}
