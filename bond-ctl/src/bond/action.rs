//! What goes into a running bond's core and what comes out of it: [`Sample`] (what the
//! executor read from the world for a tick), [`Action`] (what the core decided to do to it) and
//! [`Outcome`] (what became of those actions, fed back so later decisions rest on what
//! happened, not on what was asked). The core decides; [`super::io::perform`] acts.

use std::collections::BTreeMap;

use bond_common::{
    config::{BUCKETS, BondConfig, peer_tables},
    stats::MemberSeen,
};

use super::Port;
use crate::{alb::Neighbour, config::Peer, health::metrics::Nanos};

/// One thing the core decided to do to the world.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The usable mask (bit per slot): the one-word fast path of a failover.
    SetUsable(u32),
    /// The bond device RUNNING or not; `was` is what the core believed before.
    SetRunning {
        ifindex: u32,
        running: bool,
        was: Option<bool>,
    },
    /// A configuration put in force (the next idle bank, then the switch).
    WriteConfig(Box<BondConfig>),
    SetMonitorTargets(Vec<([u8; 16], u32)>),
    /// balance-aware `packet`'s rates and delays, one per slot.
    SetSchedule(Vec<bond_common::schedule::MemberSchedule>),
    /// balance-aware `packet`: the schedule counts member `slot` busy until at least `until`
    /// (a queue it did not count, found on the link).
    CountBusyUntil {
        slot: u8,
        until: u64,
    },
    /// The destination tables of peer-specific policies.
    SetPeers(Vec<(Peer, u32)>),
    Send {
        port: Port,
        frame: Vec<u8>,
        ether_type: u16,
        kind: SendKind,
    },
    /// Member `slot` (interface `member`) gets MAC address `mac` (it had `was`).
    SetMac {
        slot: u8,
        member: String,
        mac: [u8; 6],
        was: [u8; 6],
    },
    /// The bond device `iface` gets MAC address `mac` (it had `was`).
    SetDeviceMac {
        iface: String,
        mac: [u8; 6],
        was: [u8; 6],
    },
    /// Interface `iface` (a member, or the bond putting its MTU back) gets `mtu` (it had `was`).
    SetMtu {
        iface: String,
        mtu: u32,
        was: u32,
    },
    /// The veth bond device's peer `iface` up again (the bond has carrier only while it is).
    SetPeerUp {
        iface: String,
    },
    /// Member `member` promiscuous or not, as the bond device is.
    SetPromisc {
        member: String,
        on: bool,
    },
    /// Member `member`'s unicast filter takes `mac` (an address of a device above the bond),
    /// or gives it up.
    SetUnicast {
        member: String,
        mac: [u8; 6],
        on: bool,
    },
    /// Membership reports for the multicast groups the bond device (`device`, `ifindex`) has
    /// joined, from `mac` (IPv4 from `src`), out of member `slot`; `first`: the first round
    /// after a failover.
    SendReports {
        slot: u8,
        device: String,
        ifindex: u32,
        mac: [u8; 6],
        src: std::net::Ipv4Addr,
        first: bool,
    },
    /// Start receiving LACPDUs on member `slot`, device `ifindex`.
    OpenLacpdus {
        slot: u8,
        ifindex: u32,
    },
    CloseLacpdus(u8),
    /// Forget the flows last seen before `cutoff` (off the timing path).
    ExpireFlows {
        bond: String,
        cutoff: Nanos,
    },
}

/// Why a frame is sent: what the core must learn when it does not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// Probe `seq` on member `slot`: unsent, it is neither answered nor lost.
    Probe { slot: u8, seq: u32 },
    /// The first round of announcements after a failover (recorded as an event once sent).
    FirstAnnouncement { slot: u8 },
    /// Anything else: best effort (later rounds, ARP monitor, LACPDUs, learning packets).
    Other,
}

impl Action {
    /// A failure of this action is the operation's failure (a map the data plane reads was not
    /// written), reported to whoever asked; other failures are the core's to handle.
    pub fn failure_is_error(&self) -> bool {
        matches!(
            self,
            Action::SetUsable(_)
                | Action::WriteConfig(_)
                | Action::SetMonitorTargets(_)
                | Action::SetPeers(_)
                | Action::SetDeviceMac { .. }
        )
    }

    /// Whether this action rests on `failed` having been done, so it is skipped after it
    /// failed: MAC changes come in an order where each assumes the earlier ones (the bond
    /// device's first, and the config after them carries the new addresses); MTU changes go
    /// member by member.
    fn rests_on(&self, failed: &Action) -> bool {
        match failed {
            Action::SetMac { .. } | Action::SetDeviceMac { .. } => matches!(self, Action::SetMac { .. } | Action::WriteConfig(_)),
            Action::SetMtu { .. } => matches!(self, Action::SetMtu { .. }),
            _ => false,
        }
    }
}

/// What became of a batch of actions, in order.
#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<Action>,
    pub failed: Vec<(Action, String)>,
    /// Not tried: they rested on one that failed, or there was nothing to do.
    pub skipped: Vec<Action>,
}

impl Outcome {
    /// Whether `action` is to be skipped after the failures so far.
    pub fn blocks(&self, action: &Action) -> bool {
        self.failed.iter().any(|(f, _)| action.rests_on(f))
    }

    /// The first failure that is the operation's failure (see [`Action::failure_is_error`]).
    pub fn error(&self) -> Option<anyhow::Error> {
        let (_, e) = self.failed.iter().find(|(a, _)| a.failure_is_error())?;
        Some(anyhow::anyhow!("{e}"))
    }
}

/// What a tick needs read from the world (see [`super::Core::wants`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    pub carrier: bool,
    /// Received-packet counters.
    pub rx_packets: bool,
    /// Transmitted-byte counters (measured rates, `health::rates`).
    pub tx_bytes: bool,
    /// What the ARP / NS monitor saw.
    pub seen: bool,
    pub lacpdus: bool,
    pub bucket_bytes: bool,
    /// The bond's neighbours and its count of broadcast ARP requests (balance-alb).
    pub neighbours: bool,
}

/// What the executor read for a tick. What could not be read is absent: the core goes on
/// with what it knew.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Carrier per member slot, asked of the device.
    pub carrier: BTreeMap<u8, bool>,
    /// Link speed per member slot (Mb/s), read when its carrier last came up.
    pub speed: BTreeMap<u8, u32>,
    pub rx_packets: BTreeMap<u8, u64>,
    pub tx_bytes: BTreeMap<u8, u64>,
    pub seen: BTreeMap<u8, MemberSeen>,
    pub lacpdus: BTreeMap<u8, Vec<Vec<u8>>>,
    pub bucket_bytes: Option<[u64; BUCKETS]>,
    pub neighbours: Option<(Vec<Neighbour>, u64)>,
}

/// Where frames can go out now (the executor's sockets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    pub bond: bool,
    /// Bit per member slot.
    pub members: u64,
}

impl Ports {
    pub fn can_send(&self, port: Port) -> bool {
        match port {
            Port::Bond => self.bond,
            Port::Member(slot) => self.members & (1 << slot) != 0,
        }
    }
}

/// The `peer_tables` bits of a destination table: which tables hold entries.
pub fn peer_table_bits(entries: &[(Peer, u32)]) -> u32 {
    entries.iter().fold(0, |bits, (peer, _)| {
        bits | match peer {
            Peer::Ip(std::net::IpAddr::V4(_), _) => peer_tables::IPV4,
            Peer::Ip(std::net::IpAddr::V6(_), _) => peer_tables::IPV6,
            Peer::Mac(_) => peer_tables::MAC,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_mac_change_skips_the_later_ones_and_the_config_that_assumed_them() {
        let mac = |slot: u8| Action::SetMac { slot, member: format!("eth{slot}"), mac: [2; 6], was: [3; 6] };
        let mut o = Outcome::default();
        o.failed.push((mac(0), "refused".into()));
        assert!(o.blocks(&mac(1)));
        assert!(o.blocks(&Action::WriteConfig(Box::new(BondConfig::EMPTY))));
        assert!(!o.blocks(&Action::SetUsable(1)), "the usable mask does not rest on addresses");
        assert!(o.error().is_none(), "a refused address is the core's to handle");
        o.failed.push((Action::SetUsable(1), "map".into()));
        assert_eq!(o.error().map(|e| e.to_string()).as_deref(), Some("map"));
    }

    #[test]
    fn peer_table_bits_name_the_tables_in_use() {
        let v4 = Peer::Ip("192.0.2.0".parse().unwrap(), 24);
        let mac = Peer::Mac([2, 0, 0, 0, 0, 1]);
        assert_eq!(peer_table_bits(&[]), 0);
        assert_eq!(peer_table_bits(&[(v4, 1), (mac, 1)]), peer_tables::IPV4 | peer_tables::MAC);
    }
}
