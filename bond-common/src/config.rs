//! The bond's configuration as the data plane sees it: one [`BondConfig`] per config bank.
//!
//! The controller writes a complete `BondConfig` into the bank that is not in use, then flips the
//! `config_bank` index (one 4-byte write). A packet reads the index once and then only that bank,
//! so it sees either the old or the new configuration, never a mix.

/// Largest number of members (slots) a bond can have. Member state is a `u32` bit mask, but
/// the egress program's loops over members (the k-th usable member, balance-alb's rendezvous
/// choice, broadcast) are unrolled by the verifier: at 32 it gives up past its 1,000,000
/// instructions. More would need those loops rewritten with `bpf_loop`.
pub const MAX_MEMBERS: usize = 16;
/// Largest number of policies in force at once (the default plus peer-specific ones).
pub const MAX_POLICIES: usize = 16;
/// Buckets of a balance-aware policy's allocation table. A flow lands in bucket
/// `flow_hash % BUCKETS`; the controller assigns buckets to members in proportion to their
/// allocation, so one bucket is 1/256 (0.4 %) of the traffic.
pub const BUCKETS: usize = 256;
/// Number of config banks. The bank written next was left `CONFIG_BANKS - 1` switches ago, so
/// a write waits for a grace period only when that many writes fall within one (two banks
/// would make every write within a grace period of the last one wait).
pub const CONFIG_BANKS: u32 = 4;
/// "No member": an empty slot reference.
pub const NO_MEMBER: u8 = 0xff;

/// An enum stored in map values as `u32`: its variants with their numbers and names, `ALL`,
/// `from_u32` (for values read from a map), `name`/`from_name` (files and the command line).
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $num:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $num,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            #[inline(always)]
            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($num => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The name used in configuration files and on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }

            /// Every name, comma-separated (for error messages).
            pub fn names() -> &'static str {
                concat!($($text, ", ",)+)
            }
        }
    };
}

wire_enum! {
    /// Transmit policy. Stored as `u32` in [`PolicyConfig::mode`].
    Mode {
        /// One link at a time; traffic moves only when that link is gone.
        None = 0 => "none",
        /// Only the active member (bonding mode 1).
        ActiveBackup = 1 => "active-backup",
        /// Every usable member (mode 3).
        Broadcast = 2 => "broadcast",
        /// `packets_per_link` packets per member in turn (mode 0).
        BalanceRr = 3 => "balance-rr",
        /// Flow hash modulo the members (mode 2).
        BalanceXor = 4 => "balance-xor",
        /// Flows (or packets) placed by the allocation bucket table.
        BalanceAware = 5 => "balance-aware",
        /// IEEE 802.3ad / 802.1AX: the transmit hash over the members that LACP lets
        /// distribute (mode 4). The data plane sees only the usable mask shrink and grow.
        Lacp = 6 => "802.3ad",
        /// Transmit spread by load, members keep their own MAC addresses, receive on the
        /// active member (mode 5).
        BalanceTlb = 7 => "balance-tlb",
        /// balance-tlb plus receive balancing: ARP answers give peers different members' MAC
        /// addresses (mode 6).
        BalanceAlb = 8 => "balance-alb",
    }
}

wire_enum! {
    /// Transmit hash of balance-xor. Stored as `u32` in [`PolicyConfig::xmit_hash`].
    XmitHash {
        Layer2 = 0 => "layer2",
        Layer23 = 1 => "layer2+3",
        Layer34 = 2 => "layer3+4",
        Encap23 = 3 => "encap2+3",
        Encap34 = 4 => "encap3+4",
        VlanSrcMac = 5 => "vlan+srcmac",
        /// ZeroTier's flow id `src_port ^ dst_port ^ proto`, mixed (see `hash::zerotier_hash`); traffic
        /// without ports goes to a random member.
        ZeroTier = 6 => "zerotier",
    }
}

wire_enum! {
    /// How balance-aware places traffic. Stored as `u32` in [`PolicyConfig::balance`].
    Balance {
        /// A flow follows its bucket; the controller may move buckets to keep the target split.
        FlowDynamic = 0 => "flow-dynamic",
        /// A flow stays on the member it started on until that member fails or is degraded.
        FlowStatic = 1 => "flow-static",
        /// Every packet is placed by the allocation independently (reordering possible).
        Packet = 2 => "packet",
    }
}

impl Mode {
    /// Whether the mode shapes the whole bond (LACP on its members, their MAC addresses), so it
    /// cannot be a peer-specific policy nor be switched to or from while the bond runs.
    pub fn runs_whole_bond(self) -> bool {
        matches!(self, Mode::Lacp | Mode::BalanceTlb | Mode::BalanceAlb)
    }
}

/// One transmit policy. Members are referred to by slot (index into
/// [`BondConfig::member_ifindex`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// [`Mode`] as `u32`.
    pub mode: u32,
    /// [`XmitHash`] as `u32` (balance-xor).
    pub xmit_hash: u32,
    /// [`Balance`] as `u32` (balance-aware).
    pub balance: u32,
    /// balance-rr: packets per member before moving on; 0 = a random member per packet.
    pub packets_per_link: u32,
    /// Preferred member slot for active-backup and none, or [`NO_MEMBER`].
    pub active: u32,
    /// Number of valid entries in `members`.
    pub n_members: u32,
    /// Bit `s` set when slot `s` belongs to this policy.
    pub member_mask: u32,
    /// Members that may carry IPv4 traffic (`ipvPref`); other traffic uses `member_mask`.
    pub v4_mask: u32,
    /// Members that may carry IPv6 traffic.
    pub v6_mask: u32,
    /// balance-aware flow-static: ticks a flow may stay idle before it is forgotten
    /// (`flowExpiry`, see [`crate::sticky`]).
    pub flow_expiry_ticks: u32,
    /// Member slots in order of preference (active-backup failover order, round-robin order,
    /// balance-xor modulo order).
    pub members: [u8; MAX_MEMBERS],
    /// balance-aware: bucket -> member slot.
    pub buckets: [u8; BUCKETS],
}

const _: () = assert!(core::mem::size_of::<PolicyConfig>() == 40 + MAX_MEMBERS + BUCKETS);

impl PolicyConfig {
    pub const EMPTY: PolicyConfig = PolicyConfig {
        mode: Mode::ActiveBackup as u32,
        xmit_hash: XmitHash::Layer2 as u32,
        balance: Balance::FlowDynamic as u32,
        packets_per_link: 1,
        active: NO_MEMBER as u32,
        n_members: 0,
        member_mask: 0,
        v4_mask: 0,
        v6_mask: 0,
        flow_expiry_ticks: 1,
        members: [NO_MEMBER; MAX_MEMBERS],
        buckets: [NO_MEMBER; BUCKETS],
    };

    /// The members that may carry a packet of this EtherType (IPv4 or IPv6 restricted by
    /// `ipvPref`), as a mask.
    #[inline(always)]
    pub fn family_mask(&self, ether_type: u16) -> u32 {
        match ether_type {
            crate::packet::ETH_P_IP => self.v4_mask,
            crate::packet::ETH_P_IPV6 => self.v6_mask,
            _ => self.member_mask,
        }
    }

    /// Whether choosing a member reads the packet's headers (the others need none).
    #[inline(always)]
    pub fn reads_headers(&self) -> bool {
        match Mode::from_u32(self.mode) {
            Some(Mode::BalanceXor | Mode::Lacp | Mode::BalanceTlb | Mode::BalanceAlb) => true,
            // Packet placement is random: no flow to classify.
            Some(Mode::BalanceAware) => Balance::from_u32(self.balance) != Some(Balance::Packet),
            _ => false,
        }
    }

    /// Whether flows stay on the member they started on (balance-aware flow-static), so
    /// `sticky_flows` is consulted for every packet.
    #[inline(always)]
    pub fn sticky_flows(&self) -> bool {
        Mode::from_u32(self.mode) == Some(Mode::BalanceAware) && Balance::from_u32(self.balance) == Some(Balance::FlowStatic)
    }

    /// The member slots of this policy, in order.
    pub fn member_slots(&self) -> &[u8] {
        let n = (self.n_members as usize).min(MAX_MEMBERS);
        &self.members[..n]
    }
}

/// Bits of [`BondConfig::flags`].
pub mod bond_flags {
    /// Received duplicates (broadcast with dedup at the sender) are dropped.
    pub const RX_DEDUP: u32 = 1;
    /// Record ARP sightings per member (ARP monitor).
    pub const ARP_MONITOR: u32 = 2;
    /// Record IPv6 neighbour advertisements per member (NS monitor).
    pub const NS_MONITOR: u32 = 4;
    /// balance-tlb / balance-alb: each member sends with its own MAC address
    /// ([`BondConfig::member_mac`]), and only the active member receives broadcast and
    /// multicast (the switch floods them to every member).
    pub const OWN_MACS: u32 = 8;
    /// balance-alb: ARP from the bond leaves on the member chosen for its target, carrying that
    /// member's MAC address, and frames to a member's own address are handed to the bond as
    /// addressed to it.
    pub const RX_BALANCE: u32 = 16;
    /// 802.3ad: frames arriving on a member that is not collecting (a standby aggregator, LACP
    /// not yet in sync: not in the usable mask) are dropped and counted, slow-protocol frames
    /// aside, as bonding drops what its inactive ports receive.
    pub const RX_COLLECTING_ONLY: u32 = 32;
    /// 802.3ad `broadcast_neighbor`: ARP and IPv6 neighbour solicitations and advertisements
    /// go out on every usable member, so every port of the partner's aggregate learns them.
    pub const BROADCAST_NEIGH: u32 = 64;
    /// Peer probes from another bond are answered (the bond probes too; a bond configured the
    /// bonding.ko way sends no replies either).
    pub const ANSWER_PROBES: u32 = 128;
}

/// A received frame identical to one seen within this time on another member is a duplicate.
pub const DEDUP_WINDOW_NS: u64 = 50_000_000;

/// Largest number of traffic-class rules (`classSpecificBonds`).
pub const MAX_CLASSES: usize = 16;

/// Which fields a [`ClassRule`] compares.
pub mod class_match {
    pub const DSCP: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    /// The source or the destination port within `port_lo..=port_hi`.
    pub const PORTS: u8 = 4;
}

/// A traffic class with its own policy: packets whose headers match every field it compares
/// take policy `policy`. The controller writes the rules most specific first; the first match
/// wins, before the peer tables.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassRule {
    /// Bits of [`class_match`].
    pub fields: u8,
    pub dscp: u8,
    /// IP protocol (after IPv6 extension headers).
    pub protocol: u8,
    pub pad: u8,
    pub port_lo: u16,
    pub port_hi: u16,
    /// Index in [`BondConfig::policies`].
    pub policy: u32,
}

const _: () = assert!(core::mem::size_of::<ClassRule>() == 12);

impl ClassRule {
    pub const EMPTY: ClassRule = ClassRule { fields: 0, dscp: 0, protocol: 0, pad: 0, port_lo: 0, port_hi: 0, policy: 0 };

    /// Whether a packet with headers `h` belongs to this class (an IP packet whose compared
    /// fields all match; a rule comparing nothing matches nothing).
    #[inline(always)]
    pub fn matches(&self, h: &crate::packet::Headers) -> bool {
        let f = self.fields;
        if f == 0 || h.ip.version == 0 {
            return false;
        }
        if f & class_match::DSCP != 0 && h.ip.dscp != self.dscp {
            return false;
        }
        if f & class_match::PROTOCOL != 0 && (!h.l4.present || h.l4.proto != self.protocol) {
            return false;
        }
        if f & class_match::PORTS != 0 {
            let within = |p: u16| p >= self.port_lo && p <= self.port_hi;
            if !h.l4.has_ports || !(within(h.l4.src_port) || within(h.l4.dst_port)) {
                return false;
            }
        }
        true
    }
}

/// Which peer tables hold entries ([`BondConfig::peer_tables`]); empty tables are not looked up.
pub mod peer_tables {
    pub const IPV4: u32 = 1;
    pub const IPV6: u32 = 2;
    pub const MAC: u32 = 4;
}

/// The whole configuration of one bond, as one map value (one per config bank).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BondConfig {
    /// Increases with every configuration the controller writes.
    pub generation: u64,
    /// ifindex of the bond device (received traffic is handed to it).
    pub bond_ifindex: u32,
    /// Policy used when no peer entry matches the destination.
    pub default_policy: u32,
    /// Bits of [`peer_tables`] for the peer tables that hold entries.
    pub peer_tables: u32,
    /// Number of member slots in use (the highest used slot + 1).
    pub n_slots: u32,
    /// Bits of [`bond_flags`].
    pub flags: u32,
    /// Identifies this bond's probes (see `probe`): replies to another sender are ignored.
    pub probe_id: u32,
    /// The bond's MAC address (source of probe replies), padded to 8 bytes.
    pub bond_mac: [u8; 8],
    /// Traffic classes in use in `classes`. Here, beside the fields every packet reads, not
    /// beside the classes: one cache line fewer per packet.
    pub n_classes: u32,
    /// Sets of the `sticky_flows` table (see [`crate::sticky`]); 0: none, flow-static flows
    /// are placed by their bucket.
    pub sticky_sets: u32,
    /// Slot -> member ifindex (0 = empty slot).
    pub member_ifindex: [u32; MAX_MEMBERS],
    /// Slot -> the member's MAC address (padded to 8 bytes), for [`bond_flags::OWN_MACS`].
    pub member_mac: [[u8; 8]; MAX_MEMBERS],
    pub policies: [PolicyConfig; MAX_POLICIES],
    /// Traffic classes with their own policy, most specific first; `n_classes` are in use.
    pub classes: [ClassRule; MAX_CLASSES],
}

const _: () = assert!(
    core::mem::size_of::<BondConfig>() == 48 + 12 * MAX_MEMBERS + MAX_POLICIES * core::mem::size_of::<PolicyConfig>() + 12 * MAX_CLASSES
);

impl BondConfig {
    pub const EMPTY: BondConfig = BondConfig {
        generation: 0,
        bond_ifindex: 0,
        default_policy: 0,
        peer_tables: 0,
        n_slots: 0,
        flags: 0,
        probe_id: 0,
        bond_mac: [0; 8],
        n_classes: 0,
        sticky_sets: 0,
        member_ifindex: [0; MAX_MEMBERS],
        member_mac: [[0; 8]; MAX_MEMBERS],
        policies: [PolicyConfig::EMPTY; MAX_POLICIES],
        classes: [ClassRule::EMPTY; MAX_CLASSES],
    };

    /// The slot of the member with this ifindex.
    #[inline(always)]
    pub fn slot_of(&self, ifindex: u32) -> Option<u8> {
        let mut i = 0;
        while i < MAX_MEMBERS {
            if i as u32 >= self.n_slots {
                break;
            }
            if self.member_ifindex[i] == ifindex && ifindex != 0 {
                return Some(i as u8);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod class_tests {
    use super::{ClassRule, class_match};
    use crate::packet::Headers;

    fn udp(dscp: u8, src_port: u16, dst_port: u16) -> Headers {
        let mut h = Headers::EMPTY;
        h.ip.version = 4;
        h.ip.dscp = dscp;
        h.l4.present = true;
        h.l4.proto = 17;
        h.l4.has_ports = true;
        (h.l4.src_port, h.l4.dst_port) = (src_port, dst_port);
        h
    }

    #[test]
    fn a_class_matches_every_field_it_compares_and_nothing_else() {
        let ef = ClassRule { fields: class_match::DSCP, dscp: 46, ..ClassRule::EMPTY };
        assert!(ef.matches(&udp(46, 1, 2)));
        assert!(!ef.matches(&udp(0, 1, 2)));
        let rtp = ClassRule {
            fields: class_match::PROTOCOL | class_match::PORTS,
            protocol: 17,
            port_lo: 5004,
            port_hi: 5010,
            ..ClassRule::EMPTY
        };
        assert!(rtp.matches(&udp(0, 40000, 5006)), "destination port in range");
        assert!(rtp.matches(&udp(0, 5010, 40000)), "source port in range (the answers)");
        assert!(!rtp.matches(&udp(0, 40000, 5011)));
        let mut tcp = udp(0, 40000, 5006);
        tcp.l4.proto = 6;
        assert!(!rtp.matches(&tcp), "another protocol");
        assert!(!ClassRule::EMPTY.matches(&udp(46, 1, 2)), "a rule comparing nothing matches nothing");
        assert!(!ef.matches(&Headers::EMPTY), "not IP");
    }
}
