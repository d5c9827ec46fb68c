//! Counters kept by the data plane in per-CPU maps (the controller sums the CPUs).

/// Per traffic-class counters (`class_stats`, indexed by the class rule's position).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Per-member counters (`member_stats`, indexed by member slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// Packets and bytes the bond sent on this member.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Redirects to this member the kernel refused (e.g. the device vanished).
    pub tx_errors: u64,
    /// Packets and bytes received on this member and handed to the bond.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets received on this member and dropped by the data plane (duplicates).
    pub rx_dropped: u64,
    /// Probes sent on this member, and probe replies received on it.
    pub tx_probes: u64,
    pub rx_probes: u64,
    /// Probe requests from the peer answered on this member.
    pub probes_answered: u64,
    /// Corrupt or malformed probes received on this member.
    pub probe_errors: u64,
}

const _: () = assert!(core::mem::size_of::<MemberStats>() == 80);

impl MemberStats {
    pub fn add(&mut self, o: &MemberStats) {
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_dropped += o.rx_dropped;
        self.tx_probes += o.tx_probes;
        self.rx_probes += o.rx_probes;
        self.probes_answered += o.probes_answered;
        self.probe_errors += o.probe_errors;
    }
}

/// Monitored targets: 16 ARP and 16 neighbour-solicitation targets, as bonding allows.
pub const MAX_TARGETS: usize = 32;

/// When a member last received monitoring traffic (`member_seen`, per CPU and member slot;
/// the controller takes the latest over CPUs). Kernel monotonic nanoseconds, 0 = never.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSeen {
    /// Any ARP or IPv6 neighbour advertisement.
    pub any_arp_ns: u64,
    /// ARP or a neighbour advertisement from each monitored target, by the index
    /// `monitor_targets` gives it.
    pub target_ns: [u64; MAX_TARGETS],
}

const _: () = assert!(core::mem::size_of::<MemberSeen>() == 8 + 8 * MAX_TARGETS);

impl Default for MemberSeen {
    fn default() -> Self {
        MemberSeen { any_arp_ns: 0, target_ns: [0; MAX_TARGETS] }
    }
}

impl MemberSeen {
    pub fn latest(&mut self, o: &MemberSeen) {
        self.any_arp_ns = self.any_arp_ns.max(o.any_arp_ns);
        for (a, b) in self.target_ns.iter_mut().zip(o.target_ns.iter()) {
            *a = (*a).max(*b);
        }
    }
}

/// Bond-wide counters (`bond_stats`, one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BondStats {
    /// Packets dropped because no member of the policy was usable.
    pub tx_no_member: u64,
    /// Packets sent without a configuration in place (dropped).
    pub tx_no_config: u64,
    /// Packets whose headers could not be parsed (sent on a deterministic member).
    pub tx_unparsed: u64,
    /// Extra copies made by broadcast.
    pub tx_broadcast_copies: u64,
    /// Packets received on an interface that is not a member of this bond (passed up unchanged).
    pub rx_not_member: u64,
    /// Slow-protocol frames (LACP) left on the member for the controller.
    pub rx_slow_protocol: u64,
    /// balance-alb: broadcast ARP requests the bond sent (each tells every peer that hears it
    /// the bond's own address; the controller then tells the peers their members again).
    pub tx_arp_broadcasts: u64,
}

const _: () = assert!(core::mem::size_of::<BondStats>() == 56);

impl BondStats {
    pub fn add(&mut self, o: &BondStats) {
        self.tx_no_member += o.tx_no_member;
        self.tx_no_config += o.tx_no_config;
        self.tx_unparsed += o.tx_unparsed;
        self.tx_broadcast_copies += o.tx_broadcast_copies;
        self.rx_not_member += o.rx_not_member;
        self.rx_slow_protocol += o.rx_slow_protocol;
        self.tx_arp_broadcasts += o.tx_arp_broadcasts;
    }
}
