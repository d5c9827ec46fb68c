//! What a running bond does to the world and reads from it on its timing path, as one
//! interface: the data plane's maps, frames on the bond and its members, members' MAC addresses
//! and carrier, the bond's neighbours. [`Kernel`] is the daemon's; the unit tests drive a bond
//! through a recording fake with a fake clock, without a kernel. Bringing a bond up and down
//! and changing its members (netlink, program attachment) is the daemon's alone, on `Kernel`.

use std::{collections::BTreeMap, io};

use bond_common::{
    config::{BUCKETS, BondConfig},
    stats::{BondStats, MemberSeen, MemberStats},
};

use super::action::{Action, Outcome, Ports, Sample, Wants};
use crate::{
    alb::Neighbour,
    carrier::{CarrierProbe, CarrierWatch},
    config::Peer,
    dataplane::Dataplane,
    flows,
    lacp::{ETH_P_SLOW, SLOW_PROTOCOLS_MAC},
    neighbours,
    rawsock::{RawReceiver, RawSender},
    sys,
};

/// Carries out `actions` in order through `io` and says what became of each (see
/// [`Outcome`]): an action resting on one that failed is skipped.
pub fn perform<I: BondIo>(io: &mut I, actions: Vec<Action>) -> Outcome {
    let mut out = Outcome::default();
    for a in actions {
        if out.blocks(&a) {
            out.skipped.push(a);
            continue;
        }
        // Done, but there was nothing to do (no group to report): not claimed as sent.
        let mut nothing_to_do = false;
        let result: Result<(), String> = match &a {
            Action::SetUsable(mask) => io.set_usable(*mask).map_err(|e| format!("{e:#}")),
            Action::SetRunning { ifindex, running, .. } => io.set_running(*ifindex, *running).map_err(|e| e.to_string()),
            Action::WriteConfig(cfg) => io.write_config(cfg).map_err(|e| format!("{e:#}")),
            Action::SetMonitorTargets(targets) => io.set_monitor_targets(targets).map_err(|e| format!("{e:#}")),
            Action::SetSchedule(s) => io.set_schedule(s).map_err(|e| format!("{e:#}")),
            Action::CountBusyUntil { slot, until } => io.count_busy_until(*slot, *until).map_err(|e| format!("{e:#}")),
            Action::SetPeers(entries) => io.set_peers(entries).map_err(|e| format!("{e:#}")),
            Action::Send { port, frame, ether_type, .. } => {
                if io.send(*port, frame, *ether_type) {
                    Ok(())
                } else {
                    Err("not sent".into())
                }
            }
            Action::SetMac { member, mac, .. } => io.set_mac(member, *mac).map_err(|e| e.to_string()),
            Action::SetDeviceMac { iface, mac, .. } => io.set_mac(iface, *mac).map_err(|e| e.to_string()),
            Action::SetMtu { iface, mtu, .. } => io.set_mtu(iface, *mtu).map_err(|e| e.to_string()),
            Action::OpenLacpdus { slot, ifindex } => io.open_lacpdus(*slot, *ifindex).map_err(|e| e.to_string()),
            Action::CloseLacpdus(slot) => {
                io.close_lacpdus(*slot);
                Ok(())
            }
            Action::SetPromisc { member, on } => {
                io.set_promisc(member, *on);
                Ok(())
            }
            Action::SendReports { slot, device, ifindex, mac, src, .. } => match io.memberships(device, *ifindex) {
                Ok(m) => {
                    nothing_to_do = m.is_empty();
                    let sent = m.reports(*mac, *src).into_iter().filter(|(f, et)| io.send(Port::Member(*slot), f, *et)).count();
                    if sent > 0 || nothing_to_do { Ok(()) } else { Err("not sent".into()) }
                }
                Err(e) => Err(format!("reading the bond's multicast groups: {e}")),
            },
            Action::SetPeerUp { iface } => io.set_up(iface).map_err(|e| e.to_string()),
            Action::SetUnicast { member, mac, on } => {
                io.set_unicast(member, *mac, *on);
                Ok(())
            }
            Action::ExpireFlows { bond, cutoff } => {
                io.expire_flows(bond, *cutoff);
                Ok(())
            }
        };
        match result {
            Ok(()) if nothing_to_do => out.skipped.push(a),
            Ok(()) => out.done.push(a),
            Err(e) => out.failed.push((a, e)),
        }
    }
    out
}

/// Reads what a tick wants (see [`Wants`]) for `slots`; what cannot be read is left out.
pub fn sample<I: BondIo>(io: &mut I, wants: Wants, slots: &[(u8, &str)], bond: &str) -> Sample {
    let mut s = Sample::default();
    for &(slot, name) in slots {
        if wants.carrier
            && let Ok(c) = io.carrier(name)
        {
            s.carrier.insert(slot, c);
            if let Some(speed) = io.link_speed(name) {
                s.speed.insert(slot, speed);
            }
        }
        if (wants.rx_packets || wants.tx_bytes)
            && let Ok(st) = io.member_stats(slot)
        {
            if wants.rx_packets {
                s.rx_packets.insert(slot, st.rx_packets);
            }
            if wants.tx_bytes {
                s.tx_bytes.insert(slot, st.tx_bytes);
            }
        }
        if wants.seen
            && let Ok(seen) = io.member_seen(slot)
        {
            s.seen.insert(slot, seen);
        }
        if wants.lacpdus {
            let pdus = io.receive_lacpdus(slot);
            if !pdus.is_empty() {
                s.lacpdus.insert(slot, pdus);
            }
        }
    }
    if wants.bucket_bytes {
        s.bucket_bytes = io.bucket_bytes().ok();
    }
    if wants.neighbours
        && let Ok(n) = io.neighbours(bond)
    {
        s.neighbours = Some((n, io.bond_stats().map_or(0, |st| st.tx_arp_broadcasts)));
    }
    s
}

/// Where frames can go out through `io` for `slots`.
pub fn ports<I: BondIo>(io: &I, slots: impl Iterator<Item = u8>) -> Ports {
    let members = slots.filter(|s| io.can_send(Port::Member(*s))).fold(0u64, |m, s| m | 1 << s);
    Ports { bond: io.can_send(Port::Bond), members }
}

/// Where a frame goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Port {
    /// On the bond device: the data plane puts it on its member (probes).
    Bond,
    /// Straight on member `slot` (announcements, ARP monitor, LACPDUs, learning packets).
    Member(u8),
}

/// The bond's I/O on its timing path.
pub trait BondIo {
    /// Marks members usable (bit per slot): one write, in force from the next packet.
    fn set_usable(&mut self, mask: u32) -> anyhow::Result<()>;
    /// Puts a configuration in force (the next idle bank, then the switch).
    fn write_config(&mut self, cfg: &BondConfig) -> anyhow::Result<()>;
    fn set_monitor_targets(&mut self, targets: &[([u8; 16], u32)]) -> anyhow::Result<()>;
    /// balance-aware `packet`'s rates and delays, one per slot.
    fn set_schedule(&mut self, schedule: &[bond_common::schedule::MemberSchedule]) -> anyhow::Result<()>;
    /// The schedule counts member `slot` busy until at least `until` (monotonic ns).
    fn count_busy_until(&mut self, slot: u8, until: u64) -> anyhow::Result<()>;
    /// Replaces the destination tables.
    fn set_peers(&mut self, entries: &[(Peer, u32)]) -> anyhow::Result<()>;
    /// The configuration in force.
    fn config(&self) -> anyhow::Result<BondConfig>;
    fn member_stats(&self, slot: u8) -> anyhow::Result<MemberStats>;
    fn bond_stats(&self) -> anyhow::Result<BondStats>;
    /// What traffic class `i` sent (none where there is no data plane to ask).
    fn class_stats(&self, _i: u32) -> anyhow::Result<bond_common::stats::ClassStats> {
        Ok(Default::default())
    }
    /// What the ARP / NS monitor saw on member `slot`.
    fn member_seen(&self, slot: u8) -> anyhow::Result<MemberSeen>;
    /// Bytes per bucket of the default policy.
    fn bucket_bytes(&self) -> anyhow::Result<[u64; BUCKETS]>;
    /// Whether frames can go out on `port`.
    fn can_send(&self, port: Port) -> bool;
    /// Sends a frame; whether it went out.
    fn send(&self, port: Port, frame: &[u8], ether_type: u16) -> bool;
    /// Starts receiving LACPDUs on member `slot` (device `ifindex`).
    fn open_lacpdus(&mut self, slot: u8, ifindex: u32) -> io::Result<()>;
    fn close_lacpdus(&mut self, slot: u8);
    /// LACPDUs received on member `slot` since the last call.
    fn receive_lacpdus(&mut self, slot: u8) -> Vec<Vec<u8>>;
    /// Gives interface `member` the MAC address `mac`.
    fn set_mac(&mut self, member: &str, mac: [u8; 6]) -> io::Result<()>;
    /// Gives interface `iface` (a member, or the bond putting its MTU back) the MTU `mtu`.
    fn set_mtu(&mut self, iface: &str, mtu: u32) -> io::Result<()>;
    /// Whether interface `member` has carrier, asked of the device.
    fn carrier(&self, member: &str) -> io::Result<bool>;
    /// The bond device's IPv4 neighbours.
    fn neighbours(&self, bond: &str) -> io::Result<Vec<Neighbour>>;
    /// Forgets the flows last seen before `cutoff_ns`, off the timing path.
    fn expire_flows(&mut self, bond: &str, cutoff_ns: u64);
    /// The bond device RUNNING (operational state UP) or not (DORMANT): see `crate::operstate`.
    fn set_running(&mut self, bond_ifindex: u32, running: bool) -> io::Result<()>;
    /// Carrier is polled every `ms` milliseconds (0: not polled).
    fn set_carrier_interval(&mut self, _ms: u64) {}
    /// rtnetlink reported a change of `iface`: carrier read before it is older than the report.
    fn link_changed(&mut self, _iface: &str) {}
    /// Sets interface `iface` up.
    fn set_up(&mut self, iface: &str) -> io::Result<()>;
    /// Device `index` as it is now (None: not read, or not quickly; the event is taken as it
    /// says).
    fn link_now(&self, _index: u32) -> Option<crate::netdev::Link> {
        None
    }
    /// Member `member` promiscuous or not (queued, in order, off the loop: see `rx_filters`).
    fn set_promisc(&mut self, member: &str, on: bool);
    /// `mac` in member `member`'s unicast filter or not (queued like `set_promisc`).
    fn set_unicast(&mut self, member: &str, mac: [u8; 6], on: bool);
    /// The multicast groups bond device `device` (`ifindex`) has joined, as the kernel lists
    /// them.
    fn memberships(&self, device: &str, ifindex: u32) -> io::Result<crate::mcast::Memberships>;
    /// The speed `member` reported when its carrier last came up (Mb/s), where known.
    fn link_speed(&self, _member: &str) -> Option<u32> {
        None
    }
    /// Writes the bond's state file (see [`crate::runstate`]).
    fn store_state(&mut self, state: &crate::runstate::RunState) -> anyhow::Result<()>;
}

/// How long a link event that says a member is down waits for the device's state to be read.
const LINK_NOW_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Slow-protocol frames read per member and tick at most, and of those the newest handled.
const LACPDUS_READ_PER_TICK: usize = 64;
const LACPDUS_HANDLED_PER_TICK: usize = 4;

/// The kernel: the bond's data plane, a raw socket on the bond and on each member, LACPDU
/// sockets, and an ethtool socket.
pub struct Kernel {
    pub dataplane: Option<Dataplane>,
    bond_sender: Option<RawSender>,
    senders: BTreeMap<u8, RawSender>,
    lacpdus: BTreeMap<u8, RawReceiver>,
    ethtool: CarrierProbe,
    /// Polls the members' carrier off the loop, once started (`watch_carrier`).
    carrier_watch: Option<CarrierWatch>,
    expiry: flows::Expiry,
}

impl Kernel {
    pub fn new() -> anyhow::Result<Kernel> {
        let ethtool = CarrierProbe::new().map_err(|e| anyhow::anyhow!("opening a socket for carrier polling: {e}"))?;
        Ok(Kernel {
            dataplane: None,
            bond_sender: None,
            senders: BTreeMap::new(),
            lacpdus: BTreeMap::new(),
            ethtool,
            carrier_watch: None,
            expiry: Default::default(),
        })
    }

    /// Polls the members' carrier every `interval_ms` on a thread of its own; `wake` is called
    /// after a change.
    pub fn watch_carrier(&mut self, interval_ms: u64, wake: impl Fn() + Send + 'static) -> io::Result<()> {
        self.carrier_watch = Some(CarrierWatch::start(interval_ms, wake)?);
        Ok(())
    }

    /// Member `name`'s carrier is polled from now on (see `watch_carrier`).
    pub fn watch_member(&self, name: &str) {
        if let Some(w) = &self.carrier_watch {
            w.watch(name);
        }
    }

    pub fn unwatch_member(&self, name: &str) {
        if let Some(w) = &self.carrier_watch {
            w.unwatch(name);
        }
    }

    pub fn dataplane(&mut self) -> anyhow::Result<&mut Dataplane> {
        self.dataplane.as_mut().ok_or_else(|| anyhow::anyhow!("the data plane is not loaded"))
    }

    fn maps(&self) -> anyhow::Result<&crate::dataplane::Maps> {
        self.dataplane.as_ref().map(|d| &d.maps).ok_or_else(|| anyhow::anyhow!("the data plane is not loaded"))
    }

    /// Opens the socket probes leave by, on the bond device.
    pub fn open_bond(&mut self, ifindex: u32) -> io::Result<()> {
        self.bond_sender = Some(RawSender::new(ifindex)?);
        Ok(())
    }

    /// Opens (again, when its device changed) the socket that sends on member `slot`.
    pub fn open_member(&mut self, slot: u8, ifindex: u32) {
        match RawSender::new(ifindex) {
            Ok(s) => {
                self.senders.insert(slot, s);
            }
            Err(e) => tracing::warn!("no raw socket on ifindex {ifindex}: {e}"),
        }
    }

    /// Closes member `slot`'s sockets (it left), off the loop (see `sys::drop_in_background`).
    pub fn close_member(&mut self, slot: u8) {
        let sockets = (self.senders.remove(&slot), self.lacpdus.remove(&slot));
        if sockets.0.is_some() || sockets.1.is_some() {
            sys::drop_in_background(sockets);
        }
    }

    /// Link speed the driver of `member` reports (Mb/s).
    pub fn speed_mbps(&self, member: &str) -> Option<u32> {
        self.ethtool.speed_mbps(member)
    }
}

impl BondIo for Kernel {
    fn set_usable(&mut self, mask: u32) -> anyhow::Result<()> {
        self.dataplane()?.maps.set_usable(mask)
    }

    fn store_state(&mut self, state: &crate::runstate::RunState) -> anyhow::Result<()> {
        crate::runstate::store(state)
    }

    fn write_config(&mut self, cfg: &BondConfig) -> anyhow::Result<()> {
        self.dataplane()?.maps.write_config(cfg)
    }

    fn set_monitor_targets(&mut self, targets: &[([u8; 16], u32)]) -> anyhow::Result<()> {
        self.dataplane()?.maps.set_monitor_targets(targets)
    }

    fn set_schedule(&mut self, schedule: &[bond_common::schedule::MemberSchedule]) -> anyhow::Result<()> {
        self.dataplane()?.maps.set_schedule(schedule)
    }

    fn count_busy_until(&mut self, slot: u8, until: u64) -> anyhow::Result<()> {
        self.dataplane()?.maps.count_busy_until(slot, until)
    }

    fn set_peers(&mut self, entries: &[(Peer, u32)]) -> anyhow::Result<()> {
        self.dataplane()?.maps.set_peers(entries)
    }

    fn config(&self) -> anyhow::Result<BondConfig> {
        self.maps()?.config()
    }

    fn member_stats(&self, slot: u8) -> anyhow::Result<MemberStats> {
        self.maps()?.member_stats(slot)
    }

    fn class_stats(&self, i: u32) -> anyhow::Result<bond_common::stats::ClassStats> {
        self.maps()?.class_stats(i)
    }
    fn bond_stats(&self) -> anyhow::Result<BondStats> {
        self.maps()?.bond_stats()
    }

    fn member_seen(&self, slot: u8) -> anyhow::Result<MemberSeen> {
        self.maps()?.member_seen(slot)
    }

    fn bucket_bytes(&self) -> anyhow::Result<[u64; BUCKETS]> {
        self.maps()?.bucket_bytes(0)
    }

    fn can_send(&self, port: Port) -> bool {
        match port {
            Port::Bond => self.bond_sender.is_some(),
            Port::Member(slot) => self.senders.contains_key(&slot),
        }
    }

    fn send(&self, port: Port, frame: &[u8], ether_type: u16) -> bool {
        let sender = match port {
            Port::Bond => self.bond_sender.as_ref(),
            Port::Member(slot) => self.senders.get(&slot),
        };
        sender.is_some_and(|s| s.send(frame, ether_type).is_ok())
    }

    fn open_lacpdus(&mut self, slot: u8, ifindex: u32) -> io::Result<()> {
        let rx = RawReceiver::new(ifindex, ETH_P_SLOW, SLOW_PROTOCOLS_MAC)?;
        self.lacpdus.insert(slot, rx);
        Ok(())
    }

    fn close_lacpdus(&mut self, slot: u8) {
        if let Some(rx) = self.lacpdus.remove(&slot) {
            sys::drop_in_background(rx);
        }
    }

    fn receive_lacpdus(&mut self, slot: u8) -> Vec<Vec<u8>> {
        let Some(rx) = self.lacpdus.get(&slot) else { return Vec::new() };
        let mut buf = [0u8; 1518];
        // A partner sends one LACPDU a second (fast rate): a flood is read a bounded batch at a
        // time (the socket's buffer drops the rest) and only its newest frames are handled, so
        // it cannot starve the loop nor make the bond answer markers at its rate.
        let mut frames = std::collections::VecDeque::new();
        for _ in 0..LACPDUS_READ_PER_TICK {
            let Some(n) = rx.recv(&mut buf) else { break };
            if frames.len() == LACPDUS_HANDLED_PER_TICK {
                frames.pop_front();
            }
            frames.push_back(buf[..n].to_vec());
        }
        frames.into()
    }

    fn set_mac(&mut self, member: &str, mac: [u8; 6]) -> io::Result<()> {
        sys::set_mac(member, mac)
    }

    fn set_mtu(&mut self, iface: &str, mtu: u32) -> io::Result<()> {
        sys::set_mtu(iface, mtu)
    }

    /// The watch's last reading (without waiting: see `carrier::CarrierWatch`); the device
    /// itself when there is no watch.
    fn carrier(&self, member: &str) -> io::Result<bool> {
        match &self.carrier_watch {
            Some(w) => w.carrier(member).ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "not read yet")),
            None => self.ethtool.carrier(member),
        }
    }

    fn neighbours(&self, bond: &str) -> io::Result<Vec<Neighbour>> {
        neighbours::ipv4_neighbours(bond)
    }

    fn expire_flows(&mut self, bond: &str, cutoff_ns: u64) {
        self.expiry.start(bond, cutoff_ns);
    }

    fn set_running(&mut self, bond_ifindex: u32, running: bool) -> io::Result<()> {
        crate::operstate::set_running(bond_ifindex, running)
    }

    fn set_carrier_interval(&mut self, ms: u64) {
        if let Some(w) = &self.carrier_watch {
            w.set_interval(ms);
        }
    }

    fn link_changed(&mut self, iface: &str) {
        if let Some(w) = &self.carrier_watch {
            w.forget(iface);
        }
    }

    fn link_now(&self, index: u32) -> Option<crate::netdev::Link> {
        // The read waits for RTNL, which a device's deletion holds for tens of milliseconds
        // (its first event says it is down): past a few milliseconds the event is taken as it
        // says, so a member deleted under traffic fails at once. The read finishes on its own.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("link-now".into()).spawn(move || tx.send(crate::netdev::link_now(index))).ok()?;
        rx.recv_timeout(LINK_NOW_WAIT).ok()?.ok()
    }

    fn set_up(&mut self, iface: &str) -> io::Result<()> {
        sys::set_up(iface)
    }

    fn link_speed(&self, member: &str) -> Option<u32> {
        self.carrier_watch.as_ref().and_then(|w| w.speed(member))
    }

    fn set_promisc(&mut self, member: &str, on: bool) {
        crate::rx_filters::request(crate::rx_filters::Change::Promisc { member: member.to_string(), on });
    }

    fn memberships(&self, device: &str, ifindex: u32) -> io::Result<crate::mcast::Memberships> {
        let read = |p: &str| match std::fs::read_to_string(p) {
            // A kernel without IPv6 has no igmp6 files: no IPv6 groups.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            r => r,
        };
        let (igmp, mcfilter, igmp6, mcfilter6, if_inet6, mld) = (
            read("/proc/net/igmp")?,
            read("/proc/net/mcfilter")?,
            read("/proc/net/igmp6")?,
            read("/proc/net/mcfilter6")?,
            read("/proc/net/if_inet6")?,
            read(&format!("/proc/sys/net/ipv6/conf/{device}/force_mld_version"))?,
        );
        let texts = crate::mcast::ProcTexts {
            igmp: &igmp,
            mcfilter: &mcfilter,
            igmp6: &igmp6,
            mcfilter6: &mcfilter6,
            if_inet6: &if_inet6,
            force_mld_version: &mld,
        };
        Ok(crate::mcast::Memberships::parse(device, ifindex, &texts))
    }

    fn set_unicast(&mut self, member: &str, mac: [u8; 6], on: bool) {
        crate::rx_filters::request(crate::rx_filters::Change::Unicast { member: member.to_string(), mac, on });
    }
}
