//! A running bond driven without a kernel: a fake [`BondIo`] records what the bond writes and
//! sends and plays the carrier and the peer's probe replies; the clock is a number the test
//! moves. What is checked is what the data plane and the wire would see: usable masks, the
//! configs in force, frames and MAC addresses.

use std::{cell::RefCell, collections::BTreeMap, io, path::Path};

use bond_common::{
    config::{BUCKETS, BondConfig},
    probe::{ETH_P_PROBE, OFF_HEADER, ProbeEvent, ProbeHeader},
    stats::{BondStats, MemberSeen, MemberStats},
};

use super::{Bond, BondIo, Core, Port};

mod core;
mod probing;
use crate::{
    alb::Neighbour,
    config::{self, Peer},
    health::metrics::{MS, Nanos},
    member::{Member, Saved},
    netdev::Link,
    plan::BondSettings,
};

const BOND_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];

/// The world as the bond sees it, recorded.
#[derive(Default)]
struct Fake {
    usable: Vec<u32>,
    configs: Vec<BondConfig>,
    sent: RefCell<Vec<(Port, Vec<u8>, u16)>>,
    macs: Vec<(String, [u8; 6])>,
    carrier: BTreeMap<String, bool>,
    /// Config writes fail (a refused change).
    refuse_configs: bool,
    /// Usable-mask writes fail this many more times.
    refuse_usable: u32,
    /// What the bond device was made: RUNNING or not.
    running: Vec<bool>,
    mtus: Vec<(String, u32)>,
    /// Interfaces that refuse MTU changes.
    refuse_mtu: Vec<String>,
    /// Interfaces that refuse MAC address changes.
    refuse_mac: Vec<String>,
    /// Where every probe request went (kept when `answer_probes` takes the frames).
    probe_dsts: RefCell<Vec<[u8; 6]>>,
    /// balance-aware `packet`'s schedules written.
    schedules: Vec<Vec<bond_common::schedule::MemberSchedule>>,
    /// Queues counted on members (`count_busy_until`).
    busy_until: Vec<(u8, u64)>,
    /// Bytes the data plane gave each member.
    tx_bytes: RefCell<BTreeMap<u8, u64>>,
    /// Bytes sent per balance-aware bucket (running totals).
    bucket_bytes: RefCell<Vec<u64>>,
    /// The probe id the peer's replies come from (`member_probe_mac`); 0 taken as 9.
    peer_probe_id: u32,
    /// Link speeds read when carrier came up.
    speed: BTreeMap<String, u32>,
    promisc: Vec<(String, bool)>,
    unicast: Vec<(String, [u8; 6], bool)>,
    /// The bond device's multicast groups.
    groups: crate::mcast::Memberships,
    /// ARP targets answer on every member with carrier, as of `now`.
    arp_answered: bool,
    now: std::cell::Cell<Nanos>,
    /// State files written, the last one last.
    states: Vec<crate::runstate::RunState>,
}

impl BondIo for Fake {
    fn store_state(&mut self, state: &crate::runstate::RunState) -> anyhow::Result<()> {
        self.states.push(state.clone());
        Ok(())
    }

    fn set_usable(&mut self, mask: u32) -> anyhow::Result<()> {
        if self.refuse_usable > 0 {
            self.refuse_usable -= 1;
            anyhow::bail!("the usable map refused the write");
        }
        self.usable.push(mask);
        Ok(())
    }
    fn write_config(&mut self, cfg: &BondConfig) -> anyhow::Result<()> {
        anyhow::ensure!(!self.refuse_configs, "the config map refused the write");
        self.configs.push(*cfg);
        Ok(())
    }
    fn set_schedule(&mut self, s: &[bond_common::schedule::MemberSchedule]) -> anyhow::Result<()> {
        self.schedules.push(s.to_vec());
        Ok(())
    }
    fn count_busy_until(&mut self, slot: u8, until: u64) -> anyhow::Result<()> {
        self.busy_until.push((slot, until));
        Ok(())
    }

    fn set_monitor_targets(&mut self, _: &[([u8; 16], u32)]) -> anyhow::Result<()> {
        Ok(())
    }
    fn set_peers(&mut self, _: &[(Peer, u32)]) -> anyhow::Result<()> {
        Ok(())
    }
    fn config(&self) -> anyhow::Result<BondConfig> {
        self.configs.last().copied().ok_or_else(|| anyhow::anyhow!("no config"))
    }
    fn member_stats(&self, slot: u8) -> anyhow::Result<MemberStats> {
        Ok(MemberStats { tx_bytes: self.tx_bytes.borrow().get(&slot).copied().unwrap_or(0), ..MemberStats::default() })
    }
    fn bond_stats(&self) -> anyhow::Result<BondStats> {
        Ok(BondStats::default())
    }
    fn member_seen(&self, slot: u8) -> anyhow::Result<MemberSeen> {
        let mut seen = MemberSeen::default();
        if self.arp_answered && self.carrier.get(&format!("eth{slot}")).copied().unwrap_or(true) {
            (seen.any_arp_ns, seen.target_ns[0]) = (self.now.get(), self.now.get());
        }
        Ok(seen)
    }
    fn bucket_bytes(&self) -> anyhow::Result<[u64; BUCKETS]> {
        let mut totals = [0; BUCKETS];
        totals.iter_mut().zip(self.bucket_bytes.borrow().iter()).for_each(|(t, b)| *t = *b);
        Ok(totals)
    }
    fn can_send(&self, _: Port) -> bool {
        true
    }
    fn send(&self, port: Port, frame: &[u8], ether_type: u16) -> bool {
        self.sent.borrow_mut().push((port, frame.to_vec(), ether_type));
        if ether_type == ETH_P_PROBE {
            self.probe_dsts.borrow_mut().push(frame[..6].try_into().unwrap());
        }
        true
    }
    fn open_lacpdus(&mut self, _: u8, _: u32) -> io::Result<()> {
        Ok(())
    }
    fn close_lacpdus(&mut self, _: u8) {}
    fn receive_lacpdus(&mut self, _: u8) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn set_mac(&mut self, member: &str, mac: [u8; 6]) -> io::Result<()> {
        if self.refuse_mac.iter().any(|r| r == member) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        self.macs.push((member.to_string(), mac));
        Ok(())
    }
    fn set_mtu(&mut self, iface: &str, mtu: u32) -> io::Result<()> {
        if self.refuse_mtu.iter().any(|r| r == iface) {
            return Err(io::Error::from_raw_os_error(22));
        }
        self.mtus.push((iface.to_string(), mtu));
        Ok(())
    }
    fn carrier(&self, member: &str) -> io::Result<bool> {
        Ok(self.carrier.get(member).copied().unwrap_or(true))
    }
    fn neighbours(&self, _: &str) -> io::Result<Vec<Neighbour>> {
        Ok(Vec::new())
    }
    fn expire_flows(&mut self, _: &str, _: u64) {}
    fn set_running(&mut self, _: u32, running: bool) -> io::Result<()> {
        self.running.push(running);
        Ok(())
    }
    fn link_speed(&self, member: &str) -> Option<u32> {
        self.speed.get(member).copied()
    }
    fn set_promisc(&mut self, member: &str, on: bool) {
        self.promisc.push((member.to_string(), on));
    }
    fn set_up(&mut self, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn set_unicast(&mut self, member: &str, mac: [u8; 6], on: bool) {
        self.unicast.push((member.to_string(), mac, on));
    }
    fn memberships(&self, _: &str, _: u32) -> io::Result<crate::mcast::Memberships> {
        Ok(self.groups.clone())
    }
}

/// A bond over eth0..eth{n-1} as the configuration `yaml` (under `bonds.b`) describes, up at
/// time 0 with its first config written.
fn bond(n: u8, yaml: &str) -> Bond<Fake> {
    let links: Vec<String> = (0..n).map(|i| format!("eth{i}")).collect();
    let text = format!("bonds:\n  b:\n    links: [{}]\n    addresses: [192.0.2.1/24]\n{yaml}", links.join(", "));
    let cfg = config::parse(Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let spec = cfg.bonds[0].clone();
    let policy = cfg.policy(&spec.policy).unwrap().clone();
    let members = (0..n)
        .map(|i| {
            let mac = [2, 0, 0, 0, 1, i];
            let link = Link::up(10 + u32::from(i), &format!("eth{i}"), mac);
            Member::new(
                link.name.clone(),
                i,
                link,
                Saved { mac, admin_up: true, ipv6_disabled: None, mtu: Some(1500), allmulti: Some(false), promisc: Some(false) },
                0,
            )
        })
        .collect();
    let mut core = Core::new(spec, policy, BondSettings { ifindex: 2, mac: BOND_MAC, probe_id: 7, ..Default::default() }, 0);
    core.members = members;
    let mut b = Bond {
        core,
        control: None,
        probe_reader: None,
        promisc_watch: None,
        joining: Vec::new(),
        leaving: Vec::new(),
        io: Fake::default(),
    };
    // As `setup` does.
    b.sync_ports();
    b.hold_until_lacp_allows(0);
    b.choose_active(0);
    b.reallocate(true);
    b.write_config();
    b.write_usable();
    b.execute(0).unwrap();
    b
}

impl Bond<Fake> {
    /// Ticks every `step` from `from` to `to` (the daemon ticks every miimon or sooner).
    fn run(&mut self, from: Nanos, to: Nanos, step: Nanos) {
        let mut t = from;
        while t <= to {
            self.io.now.set(t);
            self.tick(t).unwrap();
            t += step;
        }
    }
    fn usable_now(&self) -> u32 {
        *self.io.usable.last().unwrap()
    }
    fn active_now(&self) -> u32 {
        self.io.configs.last().unwrap().policies[0].active
    }
    fn cut(&mut self, i: u8) {
        self.io.carrier.insert(format!("eth{i}"), false);
    }
    fn restore(&mut self, i: u8) {
        self.io.carrier.insert(format!("eth{i}"), true);
    }
    fn event_texts(&self) -> Vec<String> {
        self.events.iter().map(|e| e.message.clone()).collect()
    }
    /// Ticks every millisecond from `from` to `to`, the peer answering every probe but on the
    /// members in `silent`; returns the time after the last tick.
    fn probe_for(&mut self, from: Nanos, to: Nanos, silent: &[u8]) -> Nanos {
        let mut t = from;
        while t <= to {
            self.tick(t).unwrap();
            self.answer_probes(t, silent);
            t += MS;
        }
        t
    }

    /// Answers every probe sent since the last call, except on the members in `silent`, as the
    /// peer's kernel would (1 ms round trip).
    fn answer_probes(&mut self, now: Nanos, silent: &[u8]) {
        let sent = std::mem::take(&mut *self.io.sent.borrow_mut());
        let replies: Vec<ProbeEvent> = sent
            .iter()
            .filter(|(port, _, et)| *port == Port::Bond && *et == ETH_P_PROBE)
            .map(|(_, f, _)| ProbeHeader::from_bytes(f[OFF_HEADER..OFF_HEADER + 32].try_into().unwrap()))
            .filter(|h| !silent.contains(&h.member))
            .map(|h| ProbeEvent {
                member: h.member,
                flags: 0,
                rx_member: h.member,
                pad: 0,
                seq: h.seq,
                t1: now - MS,
                t2: 0,
                t4: now,
                peer: bond_common::probe::member_probe_mac(if self.io.peer_probe_id == 0 { 9 } else { self.io.peer_probe_id }, h.member),
                pad2: [0; 2],
                peer_rx_bytes: 0,
                backlog_us: 0,
                pad3: 0,
            })
            .collect();
        self.on_probe_events(&replies, now).unwrap();
    }

    /// Wakes as the daemon's loop does: at regular ticks (`tick_interval`, not `miimon`: the
    /// carrier thread wakes the loop on a change) and at `next_deadline`; returns the wake-ups.
    fn run_as_daemon(&mut self, from: Nanos, to: Nanos) -> Vec<Nanos> {
        let period = self.tick_interval().as_nanos() as Nanos;
        let (mut t, mut next_tick, mut wakes) = (from, from, Vec::new());
        while t <= to {
            self.io.now.set(t);
            if t >= next_tick {
                next_tick = t + period;
            }
            self.tick(t).unwrap();
            wakes.push(t);
            t = self.next_deadline(t).map_or(next_tick, |d| d.min(next_tick)).max(t + 1);
        }
        wakes
    }
}

#[test]
fn carrier_loss_fails_over_at_the_next_poll_and_announces_on_the_new_member() {
    let mut b = bond(3, "    mode: active-backup\n    miimon: 5\n    num_grat_arp: 2\n");
    assert_eq!((b.active_now(), b.usable_now()), (0, 0b111));
    b.run(0, 20 * MS, 5 * MS);
    b.io.sent.borrow_mut().clear();
    b.cut(0);
    b.tick(25 * MS).unwrap();
    assert_eq!(b.usable_now(), 0b110, "eth0 out at the first poll after the cut");
    assert_eq!(b.active_now(), 1, "the next in the failover order");
    assert_eq!(b.failovers, 1);
    let arps = |b: &Bond<Fake>| b.io.sent.borrow().iter().filter(|(p, _, et)| *p == Port::Member(1) && *et == 0x0806).count();
    assert_eq!(arps(&b), 1, "a gratuitous ARP at once");
    b.run(30 * MS, 60 * MS, 5 * MS);
    assert_eq!(arps(&b), 2, "num_grat_arp 2: one more, a miimon interval later, and no more");
    let events = b.event_texts();
    assert!(events.iter().any(|e| e == "eth0 failed: no carrier"), "{events:?}");
    assert!(events.iter().any(|e| e == "active member eth0 -> eth1"), "{events:?}");
}

/// `resend_igmp`: after a failover the new active member sends the bond's membership reports
/// (the first at once, the rest 200 ms apart), so a snooping switch moves the groups now.
#[test]
fn a_failover_sends_membership_reports_on_the_new_active_member() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n    resend_igmp: 3\n");
    let group = |a| crate::mcast::Group { addr: a, include: false, sources: vec![] };
    b.io.groups = crate::mcast::Memberships {
        igmp_version: 3,
        v4: vec![group(std::net::Ipv4Addr::new(239, 1, 1, 1))],
        mld_version: 2,
        v6: vec![],
        link_local: None,
    };
    b.run(0, 10 * MS, 5 * MS);
    let reports =
        |b: &Bond<Fake>| b.io.sent.borrow().iter().filter(|(p, f, et)| *p == Port::Member(1) && *et == 0x0800 && f[38] == 0x22).count();
    assert_eq!(reports(&b), 0, "nothing before a failover");
    b.cut(0);
    b.run(15 * MS, 15 * MS, 5 * MS);
    assert_eq!(reports(&b), 1, "the first at once");
    assert!(b.event_texts().iter().any(|e| e == "membership reports for the bond's multicast groups sent on eth1"));
    b.run(20 * MS, 210 * MS, 5 * MS);
    assert_eq!(reports(&b), 1, "not within 200 ms");
    b.run(215 * MS, 215 * MS, 5 * MS);
    assert_eq!(reports(&b), 2, "the second 200 ms later");
    b.run(220 * MS, 1_000 * MS, 5 * MS);
    assert_eq!(reports(&b), 3, "resend_igmp 3, and no more");
}

/// A bond that joined no group has nothing to report after a failover: nothing is sent, and
/// no event says reports were.
#[test]
fn a_failover_without_groups_claims_no_reports() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n    resend_igmp: 3\n");
    b.run(0, 10 * MS, 5 * MS);
    b.cut(0);
    b.run(15 * MS, 1_000 * MS, 5 * MS);
    assert_eq!(b.active_now(), 1);
    let events = b.event_texts();
    assert!(!events.iter().any(|e| e.contains("membership reports")), "{events:?}");
    assert!(!b.io.sent.borrow().iter().any(|(_, f, et)| *et == 0x0800 && f[38] == 0x22), "no IGMP report");
}

#[test]
fn updelay_and_downdelay_hold_a_change_for_their_time() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n    updelay: 100\n    downdelay: 50\n");
    b.cut(1);
    b.run(0, 45 * MS, 5 * MS);
    assert_eq!(b.usable_now(), 0b11, "still usable within downdelay");
    b.run(50 * MS, 60 * MS, 5 * MS);
    assert_eq!(b.usable_now(), 0b01, "out once downdelay has passed");
    b.restore(1);
    b.run(65 * MS, 160 * MS, 5 * MS);
    assert_eq!(b.usable_now(), 0b01, "not back within updelay");
    b.run(165 * MS, 175 * MS, 5 * MS);
    assert_eq!(b.usable_now(), 0b11, "back after updelay");
}

/// bonding's recovery rule (the kernel's mode-1/mode-2 recovery-updelay selftests): when the
/// last healthy member fails while another waits out its updelay, that one is used at once.
#[test]
fn with_no_member_healthy_the_one_nearest_the_end_of_its_updelay_is_used_at_once() {
    for mode in ["active-backup", "balance-xor"] {
        let mut b = bond(3, &format!("    mode: {mode}\n    miimon: 5\n    updelay: 10000\n"));
        b.cut(0);
        b.cut(2);
        b.run(0, 10 * MS, 5 * MS);
        assert_eq!(b.usable_now(), 0b010, "{mode}");
        // eth0 back first, eth2 a second later: both wait out their 10 s.
        b.restore(0);
        b.run(1_000 * MS, 1_000 * MS, 5 * MS);
        b.restore(2);
        b.run(2_000 * MS, 2_500 * MS, 5 * MS);
        assert_eq!(b.usable_now(), 0b010, "{mode}: still within updelay");
        b.cut(1);
        b.run(2_505 * MS, 2_505 * MS, 5 * MS);
        assert_eq!(b.usable_now(), 0b001, "{mode}: eth0, nearest the end of its updelay, used at once");
        if mode == "active-backup" {
            assert_eq!(b.active_now(), 0);
        }
        let events = b.event_texts();
        assert!(
            events.iter().any(|e| e == "eth0 used at once, 8495 ms before its upDelay ends: no other member is healthy"),
            "{mode}: {events:?}"
        );
        // eth2 still waits out its own.
        b.run(2_510 * MS, 11_995 * MS, 5 * MS);
        assert_eq!(b.usable_now(), 0b001, "{mode}: eth2 keeps its updelay");
        b.run(12_000 * MS, 12_010 * MS, 5 * MS);
        assert_eq!(b.usable_now(), 0b101, "{mode}");
    }
}

#[test]
fn the_loop_wakes_for_delays_and_announcements_not_every_miimon() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n    downdelay: 20\n    num_grat_arp: 3\n");
    assert_eq!(b.tick_interval(), std::time::Duration::from_millis(50), "carrier is the carrier thread's");
    let idle = b.run_as_daemon(0, 500 * MS);
    assert!(idle.len() <= 12, "idle: about one wake-up per 50 ms, not per 5: {idle:?}");
    // The carrier thread sees eth0 lose carrier at 503 ms and wakes the loop.
    b.cut(0);
    b.io.sent.borrow_mut().clear();
    b.io.now.set(503 * MS);
    b.on_carrier_change(503 * MS).unwrap();
    let last_tick = *idle.last().unwrap();
    assert_eq!(b.next_deadline(last_tick), Some(523 * MS), "woken when downdelay ends");
    b.run_as_daemon(523 * MS, 523 * MS);
    assert_eq!(b.active_now(), 1, "failed over as downdelay ended, not at the next regular tick");
    let arps = |b: &Bond<Fake>| b.io.sent.borrow().iter().filter(|(p, _, et)| *p == Port::Member(1) && *et == 0x0806).count();
    assert_eq!(arps(&b), 1, "the first announcement at once");
    assert_eq!(b.next_deadline(523 * MS), Some(533 * MS), "the next one wakes the loop (10 ms apart at the least)");
    let wakes = b.run_as_daemon(533 * MS, 545 * MS);
    assert_eq!(arps(&b), 3, "num_grat_arp 3, 10 ms apart, not 50: {wakes:?}");
}

#[test]
fn a_primary_takes_the_role_back_when_it_returns() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n    primary: eth1\n");
    assert_eq!(b.active_now(), 1, "the primary first");
    b.cut(1);
    b.run(0, 10 * MS, 5 * MS);
    assert_eq!(b.active_now(), 0);
    b.restore(1);
    b.run(15 * MS, 25 * MS, 5 * MS);
    assert_eq!(b.active_now(), 1, "primary_reselect always: back at once");
    assert_eq!(b.failovers, 2);
}

#[test]
fn prio_and_active_slave_choose_the_active_member_as_bonding() {
    let mut b = bond(3, "    mode: active-backup\n    miimon: 5\n    prio: { eth1: 10, eth2: 11 }\n");
    assert_eq!(b.active_now(), 2, "no primary: the highest prio");
    b.set_options(&["active_slave=eth0".to_string()], MS).unwrap();
    assert_eq!(b.active_now(), 0, "made active by hand");
    b.run(5 * MS, 20 * MS, 5 * MS);
    assert_eq!(b.active_now(), 0, "and kept while nothing changes");
    b.cut(1);
    b.run(25 * MS, 30 * MS, 5 * MS);
    assert_eq!(b.active_now(), 2, "a change of health: the usual choice again");
    let e = b.set_options(&["active_slave=eth1".to_string()], 35 * MS).unwrap_err().to_string();
    assert!(e.contains("active_slave: eth1 is not usable (no carrier)"), "{e}");
    b.set_options(&["prio=eth0:20".to_string()], 40 * MS).unwrap();
    assert_eq!(b.active_now(), 0, "a higher prio takes the role under primary_reselect always");
}

/// The bond's MAC address changed from outside (`ip link set BOND address`) and by `bondctl
/// set macaddress=`: members follow, the config carries it, peers are told; a member that
/// refuses puts everything back.
#[test]
fn a_new_mac_address_reaches_the_members_and_the_peers_or_nothing_changes() {
    let new = [2, 0x11, 0x22, 0x33, 0x44, 0x55];
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n");
    b.core.device = Some(Link::up(2, "b", BOND_MAC));
    for m in &mut b.core.members {
        m.link.mac = BOND_MAC;
    }
    b.io.sent.borrow_mut().clear();
    b.on_link_event(&crate::netdev::LinkEvent::Changed(Link::up(2, "b", new)), MS).unwrap();
    assert_eq!(b.io.macs, [("eth0".to_string(), new), ("eth1".to_string(), new)], "members follow");
    assert_eq!(b.io.configs.last().unwrap().bond_mac[..6], new);
    let garp = b.io.sent.borrow().iter().any(|(p, f, et)| *p == Port::Member(0) && *et == 0x0806 && f[6..12] == new);
    assert!(garp, "a gratuitous ARP from the active member with the new address");
    assert!(b.event_texts().iter().any(|e| e == "the bond's MAC address is 02:11:22:33:44:55 (was 02:00:00:00:00:b0) (eth0, eth1 follow)"));

    // Set by bondctl, refused by eth1: the device and eth0 get the address back.
    let newer = [2, 0x11, 0x22, 0x33, 0x44, 0x66];
    b.io.refuse_mac = vec!["eth1".into()];
    b.io.macs.clear();
    let e = b.set_options(&["prio=eth0:5".to_string(), "macaddress=02:11:22:33:44:66".to_string()], 2 * MS).unwrap_err().to_string();
    assert_eq!(b.spec.prio_of("eth0"), 0, "nothing else of the same `set` changed");
    assert!(e.contains("macaddress 02:11:22:33:44:66 not taken, nothing changed: eth1 refused"), "{e}");
    assert_eq!(b.io.macs, [("b".to_string(), newer), ("eth0".to_string(), newer), ("eth0".to_string(), new), ("b".to_string(), new)]);
    assert_eq!((b.settings.mac, b.io.configs.last().unwrap().bond_mac[..6].to_vec()), (new, new.to_vec()));
    // The events of our own changes come late and change nothing.
    b.io.macs.clear();
    b.on_link_event(&crate::netdev::LinkEvent::Changed(Link::up(2, "b", newer)), 3 * MS).unwrap();
    b.on_link_event(&crate::netdev::LinkEvent::Changed(Link::up(2, "b", new)), 3 * MS).unwrap();
    assert!(b.io.macs.is_empty(), "{:?}", b.io.macs);
}

#[test]
fn balance_tlb_moves_the_bond_address_with_the_active_member() {
    let mut b = bond(3, "    mode: balance-tlb\n    miimon: 5\n");
    let mac_of = |b: &Bond<Fake>, i: usize| b.members[i].link.mac;
    assert_eq!(mac_of(&b, 0), BOND_MAC, "the active member carries the bond's address");
    b.cut(0);
    b.run(0, 10 * MS, 5 * MS);
    assert_eq!(b.active_now(), 1);
    assert_eq!((mac_of(&b, 0), mac_of(&b, 1)), ([2, 0, 0, 0, 1, 1], BOND_MAC), "swapped, holder first");
    let (first, second) = (&b.io.macs[b.io.macs.len() - 2], &b.io.macs[b.io.macs.len() - 1]);
    assert_eq!((first.0.as_str(), second.0.as_str()), ("eth0", "eth1"), "never two holders of the bond's address");
    let cfg = b.io.configs.last().unwrap();
    assert_eq!(cfg.member_mac[1][..6], BOND_MAC, "the config in force carries the new addresses");
}

#[test]
fn a_refused_policy_switch_changes_nothing_not_even_addresses() {
    let mut b = bond(2, "    mode: balance-tlb\n    miimon: 5\n");
    assert_eq!((b.active_now(), b.members[0].link.mac), (0, BOND_MAC));
    // A tlb policy that prefers eth1: the switch would move the bond's address to it.
    let text = "bonds:\n  b:\n    links: [eth0, eth1]\n    policy: tlb2\nsettings:\n  policies:\n    tlb2: { basePolicy: balance-tlb, monitorStrategy: passive, links: { eth0: {}, eth1: { mode: primary } } }\n";
    let cfg = config::parse(Path::new("t.yaml"), text).unwrap();
    let macs = |b: &Bond<Fake>| b.members.iter().map(|m| m.link.mac).collect::<Vec<_>>();
    let (before, writes) = (macs(&b), b.io.configs.len());
    b.io.refuse_configs = true;
    let e = b.set_policy(&cfg, "tlb2", 10 * MS).unwrap_err();
    assert!(format!("{e:#}").contains("refused"), "{e:#}");
    assert!(b.io.macs.iter().any(|(m, mac)| m == "eth1" && *mac == BOND_MAC), "the switch did move the address: {:?}", b.io.macs);
    assert_eq!(b.policy.name, "b", "the policy stays");
    assert_eq!(b.main.active, Some(0), "the active member stays");
    assert_eq!(macs(&b), before, "every address put back");
    assert_eq!(b.io.macs.last().map(|(m, mac)| (m.as_str(), *mac)), Some(("eth0", BOND_MAC)), "the bond's address back on eth0 last");
    assert_eq!(b.io.configs.len(), writes, "nothing written");
    // Accepted, it sticks.
    b.io.refuse_configs = false;
    b.set_policy(&cfg, "tlb2", 20 * MS).unwrap();
    assert_eq!((b.active_now(), b.members[1].link.mac), (1, BOND_MAC));
}

#[test]
fn a_failed_usable_mask_write_is_retried_at_the_next_tick() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n");
    b.run(0, 10 * MS, 5 * MS);
    b.cut(0);
    b.io.refuse_usable = 1;
    assert!(b.tick(15 * MS).is_err(), "the failure is reported");
    assert_eq!(b.usable_now(), 0b11, "the data plane still has the old mask");
    b.tick(20 * MS).unwrap();
    assert_eq!(b.usable_now(), 0b10, "written at the next tick");
}

#[test]
fn the_bond_is_running_while_a_member_is_usable() {
    let mut b = bond(2, "    mode: active-backup\n    miimon: 5\n");
    assert_eq!(b.io.running, [true]);
    b.cut(0);
    b.run(0, 10 * MS, 5 * MS);
    assert_eq!(b.io.running, [true], "one member left: still running");
    b.cut(1);
    b.run(15 * MS, 20 * MS, 5 * MS);
    assert_eq!(b.io.running, [true, false], "none usable: not running");
    b.restore(1);
    b.run(25 * MS, 30 * MS, 5 * MS);
    assert_eq!(b.io.running, [true, false, true], "running again");
    assert!(b.event_texts().iter().any(|e| e.contains("no member can carry traffic")), "{:?}", b.event_texts());
}

fn bond_link(mtu: u32) -> Link {
    Link { mtu, kind: Some("ifb".into()), ..Link::up(2, "b", BOND_MAC) }
}

#[test]
fn the_bonds_mtu_reaches_every_member_or_is_put_back() {
    let mut b = bond(2, "    mode: active-backup\n");
    b.device = Some(bond_link(1500));
    b.on_link_event(&crate::netdev::LinkEvent::Changed(bond_link(9000)), 0).unwrap();
    assert_eq!(b.io.mtus, [("eth0".to_string(), 9000), ("eth1".to_string(), 9000)]);
    assert!(b.members.iter().all(|m| m.link.mtu == 9000));
    // A member that cannot take it: everything back as it was.
    b.io.mtus.clear();
    b.io.refuse_mtu = vec!["eth1".into()];
    b.on_link_event(&crate::netdev::LinkEvent::Changed(bond_link(9600)), 0).unwrap();
    assert_eq!(b.io.mtus, [("eth0".to_string(), 9600), ("eth0".to_string(), 9000), ("b".to_string(), 9000)]);
    assert_eq!(b.device.as_ref().unwrap().mtu, 9000);
    assert!(b.event_texts().iter().any(|e| e.starts_with("eth1 refused MTU 9600")), "{:?}", b.event_texts());
}

#[test]
fn the_config_names_the_size_of_flow_statics_table() {
    let b = bond(2, "    flow_table_size: 8192\n    mode: balance-xor\n    miimon: 5\n");
    assert_eq!(b.io.configs.last().unwrap().sticky_sets, 2048, "sets of four: 8,192 flows");
}

/// balance-aware flow-dynamic over 20/10/5 Mbit/s: the busy flows all hashed into the first two
/// links' buckets, which carry 20 and 10 (each within 10 points of its share), and none into
/// the third's. On a fresh bond whose traffic starts 1 s after it came up, a rebalancing round
/// moves one busy bucket to the third link within seconds (rounds come four times as often
/// until the split is settled), and once a round finds nothing to move they come every
/// 2 x `failoverInterval` (10 s).
#[test]
fn a_link_no_busy_flow_hashed_to_is_given_one_within_seconds_then_rounds_slow_down() {
    let settings = "settings:\n  policies:\n    aw: { basePolicy: balance-aware, links: { eth0: { speed: 20 }, eth1: { speed: 10 }, eth2: { speed: 5 } } }\n";
    let mut b = bond(3, &format!("    policy: aw\n    miimon: 5\n{settings}"));
    b.run(0, 100 * MS, 10 * MS);
    let buckets = b.main.buckets;
    let of = |slot: u8| (0..BUCKETS).filter(|&i| buckets[i] == slot).collect::<Vec<_>>();
    assert!(!of(2).is_empty(), "the third link has buckets: {buckets:?}");
    // 1 MB/s per Mbit/s of the flows' rates, every 100 ms.
    let busy: Vec<(usize, u64)> = of(0).into_iter().take(10).map(|i| (i, 2)).chain(of(1).into_iter().take(5).map(|i| (i, 2))).collect();
    b.io.bucket_bytes.borrow_mut().resize(BUCKETS, 0);
    let on_third = |b: &Bond<Fake>| busy.iter().filter(|&&(i, _)| b.main.buckets[i] == 2).count();
    let (mut t, mut moved_at, mut rounds_settled) = (100 * MS, None, Vec::new());
    while t <= 40_000 * MS {
        if t >= 1_000 * MS {
            for &(i, mbit) in &busy {
                b.io.bucket_bytes.borrow_mut()[i] += mbit * 100_000 / 8;
            }
        }
        if t >= 15_000 * MS && b.wants(t).bucket_bytes {
            rounds_settled.push(t / MS);
        }
        b.run(t, t + 90 * MS, 10 * MS);
        if moved_at.is_none() && on_third(&b) > 0 {
            moved_at = Some(t / MS);
        }
        t += 100 * MS;
    }
    assert!(b.event_texts().iter().any(|e| e.starts_with("rebalanced")), "{:?}", b.event_texts());
    let moved_at = moved_at.expect("a busy bucket moved to the third link");
    assert!(moved_at <= 5_100, "within two quick rounds of the traffic's start: at {moved_at} ms");
    assert_eq!(on_third(&b), 1, "one busy bucket is enough");
    assert!(
        rounds_settled.len() <= 3 && rounds_settled.windows(2).all(|w| w[1] - w[0] >= 10_000),
        "settled: every 10 s: {rounds_settled:?}"
    );
    // Another policy, the links' speeds reversed: its rebalancing starts over, on its own
    // traffic (a baseline at once, then the quick pace), not on what the buckets carried before.
    let text = format!(
        "bonds:\n  b:\n    links: [eth0, eth1, eth2]\n    policy: aw\n{settings}    aw2: {{ basePolicy: balance-aware, links: {{ eth0: {{ speed: 5 }}, eth1: {{ speed: 10 }}, eth2: {{ speed: 20 }} }} }}\n"
    );
    let cfg = config::parse(Path::new("t.yaml"), &text).unwrap();
    b.set_policy(&cfg, "aw2", t).unwrap();
    let rebalanced = |b: &Bond<Fake>| b.event_texts().iter().filter(|e| e.starts_with("rebalanced")).count();
    let moves_before = rebalanced(&b);
    let mut rounds = Vec::new();
    for at in (1..=60).map(|i| t + i * 100 * MS) {
        if b.wants(at).bucket_bytes {
            rounds.push((at - t) / MS);
        }
        b.run(at, at + 10 * MS, 10 * MS);
    }
    assert_eq!(rounds.first(), Some(&100), "a baseline at the next tick: {rounds:?}");
    assert!(rounds.windows(2).all(|w| w[1] - w[0] == 2_500), "then every 2.5 s: {rounds:?}");
    assert_eq!(rebalanced(&b), moves_before, "no traffic since the switch: the old policy's does not count");
}

/// balance-tlb rebalances at bonding's steady pace, never the quicker one of balance-aware.
#[test]
fn balance_tlb_rebalances_at_a_steady_pace() {
    let mut b = bond(2, "    mode: balance-tlb\n    miimon: 5\n");
    let mut rounds = Vec::new();
    for at in (1..=300).map(|i| i * 100 * MS) {
        if b.wants(at).bucket_bytes {
            rounds.push(at / MS);
        }
        b.run(at, at + 10 * MS, 10 * MS);
    }
    assert!(rounds.len() >= 2 && rounds.windows(2).all(|w| w[1] - w[0] == 10_000), "every 10 s: {rounds:?}");
}
