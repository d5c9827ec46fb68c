//! Names and capacities of the data plane's maps, in one place.
//!
//! The names are the kernel map names (at most 15 characters) and also the file names under the
//! pin directory `/sys/fs/bpf/bond/<bond>/`, so `bpftool map dump pinned
//! /sys/fs/bpf/bond/bond0/member_stats` works.

/// `Array<BondConfig, 2>`: the two config banks.
pub const CONFIG: &str = "config";
/// `Array<u32, 1>`: which bank of `config` is in force.
pub const CONFIG_BANK: &str = "config_bank";
/// `Array<u32, 1>`: bit mask of usable member slots. Marking a member down is one write here.
pub const MEMBER_USABLE: &str = "member_usable";
/// `PerCpuArray<MemberStats, MAX_MEMBERS>`.
pub const MEMBER_STATS: &str = "member_stats";
/// `PerCpuArray<BondStats, 1>`.
pub const BOND_STATS: &str = "bond_stats";
/// `PerCpuArray<u32, MAX_POLICIES>`: balance-rr packet counter per policy and CPU.
pub const RR_CURSOR: &str = "rr_cursor";
/// `LruHashMap<u64, FlowEntry, FLOW_CAPACITY>`: flow id -> flow record.
pub const FLOWS: &str = "flows";
/// `Array<StickySet, sticky::sets_for(flow_table_size)>`, page-aligned: balance-aware
/// flow-static's record of each flow's member (see `sticky`).
pub const STICKY_FLOWS: &str = "sticky_flows";
/// `RingBuf`: `ProbeEvent`s for probe replies.
pub const PROBE_EVENTS: &str = "probe_events";
/// `PerCpuArray<MemberSeen, MAX_MEMBERS>`: ARP / neighbour-advertisement sightings per member.
pub const MEMBER_SEEN: &str = "member_seen";
/// `HashMap<[u8; 16], u32>`: ARP (IPv4-mapped) and neighbour-solicitation targets monitored,
/// with their index in `MemberSeen::target_ns`.
pub const MONITOR_TARGETS: &str = "monitor_targets";
/// `LruHashMap<u64, u64>`: recently received frames (content hash -> time), for dedup.
pub const DEDUP: &str = "dedup";
/// `PerCpuArray<u64, MAX_POLICIES * BUCKETS>`: bytes sent per balance-aware bucket.
pub const BUCKET_BYTES: &str = "bucket_bytes";
/// `LpmTrie<[u8; 4], u32>`: IPv4 destination prefix -> policy index.
pub const PEER_V4: &str = "peer_v4";
/// `LpmTrie<[u8; 16], u32>`: IPv6 destination prefix -> policy index.
pub const PEER_V6: &str = "peer_v6";
/// `HashMap<MacKey, u32>`: destination MAC -> policy index.
pub const PEER_MAC: &str = "peer_mac";

/// `PerCpuArray<ClassStats, MAX_CLASSES>`: packets sent per traffic class.
pub const CLASS_STATS: &str = "class_stats";

/// `Array<ProbeSent, MAX_MEMBERS * PROBE_SENT_SLOTS>`: requests awaiting their reply.
pub const PROBE_SENT: &str = "probe_sent";
/// `PerCpuArray<[u64; 2], MAX_MEMBERS>`: requests answered per member in the current window.
pub const ANSWER_RATE: &str = "answer_rate";

/// `Array<ProbeKey, 1>`: the key of the probe replies' keyed hash (`probeKey`).
pub const PROBE_KEY: &str = "probe_key";

/// `Array<[MemberSchedule; MAX_MEMBERS], 1>`: each member's rate and one-way delay, for
/// balance-aware `packet` (written by the controller).
pub const SCHEDULE: &str = "schedule";
/// `Array<[u64; MAX_MEMBERS], 1>`: when each member's modelled queue empties (ns, kernel
/// clock), kept by `bond_egress` for balance-aware `packet`.
pub const BUSY_UNTIL: &str = "busy_until";

/// Every map, for pinning and adoption.
pub const ALL: [&str; 22] = [
    SCHEDULE,
    BUSY_UNTIL,
    PROBE_KEY,
    CONFIG,
    CONFIG_BANK,
    MEMBER_USABLE,
    MEMBER_STATS,
    BOND_STATS,
    RR_CURSOR,
    FLOWS,
    STICKY_FLOWS,
    PEER_V4,
    PEER_V6,
    PEER_MAC,
    PROBE_EVENTS,
    MEMBER_SEEN,
    MONITOR_TARGETS,
    DEDUP,
    BUCKET_BYTES,
    CLASS_STATS,
    PROBE_SENT,
    ANSWER_RATE,
];

/// Bytes of the probe event ring buffer.
pub const PROBE_EVENTS_BYTES: usize = 256 * 1024;
/// Frames remembered for dedup.
pub const DEDUP_CAPACITY: usize = 16384;
/// Monitored ARP / NS targets (bonding allows 16 of each).
pub const MONITOR_TARGET_CAPACITY: usize = 32;

/// Flows remembered at once by default (ZeroTier's limit; least recently used flows are evicted
/// first). The bond setting `flow_table_size` replaces it when the programs are loaded.
pub const FLOW_CAPACITY: usize = 65536;
/// Entries per peer table.
pub const PEER_CAPACITY: usize = 1024;

/// Program names (the functions in bond-ebpf).
pub const PROG_BOND_EGRESS: &str = "bond_egress";
pub const PROG_MEMBER_INGRESS: &str = "member_ingress";

/// Key of `peer_mac`: a MAC address padded to 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacKey {
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<MacKey>() == 8);
