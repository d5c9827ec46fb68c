//! The data plane's maps (names and capacities from `bond_common::maps`) and small accessors.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use bond_common::{
    config::{BUCKETS, BondConfig, CONFIG_BANKS, MAX_CLASSES, MAX_MEMBERS, MAX_POLICIES},
    flow::{FlowEntry, sample_step},
    maps::{DEDUP_CAPACITY, FLOW_CAPACITY, MONITOR_TARGET_CAPACITY, MacKey, PEER_CAPACITY, PROBE_EVENTS_BYTES},
    packet::Headers,
    probe::{PROBE_SENT_SLOTS, ProbeEvent, ProbeKey, ProbeSent},
    schedule::MemberSchedule,
    stats::{BondStats, ClassStats, MemberSeen, MemberStats},
    sticky::{StickySet, sets_for},
};

#[btf_map(name = "config")]
pub static CONFIG: Array<BondConfig, { CONFIG_BANKS as usize }> = Array::new();

#[btf_map(name = "config_bank")]
pub static CONFIG_BANK: Array<u32, 1> = Array::new();

#[btf_map(name = "member_usable")]
pub static MEMBER_USABLE: Array<u32, 1> = Array::new();

#[btf_map(name = "member_stats")]
pub static MEMBER_STATS: PerCpuArray<MemberStats, MAX_MEMBERS> = PerCpuArray::new();

#[btf_map(name = "bond_stats")]
pub static BOND_STATS: PerCpuArray<BondStats, 1> = PerCpuArray::new();

#[btf_map(name = "rr_cursor")]
pub static RR_CURSOR: PerCpuArray<u32, MAX_POLICIES> = PerCpuArray::new();

/// What one CPU's program runs keep between and during packets: the pseudo-random state that
/// picks the packets the flow table samples, and room for the packet's parsed headers. One
/// value, so a packet pays one lookup and the neighbouring cache lines for both.
///
/// The headers are in a map rather than on the stack: the verifier tracks stack bytes
/// exactly, so a parsed and an unparsed packet would be different states for everything that
/// follows, doubling what it has to verify at every such branch.
#[repr(C)]
pub struct Scratch {
    pub sample_cursor: u32,
    pub headers: Headers,
}

#[btf_map(name = "scratch")]
pub static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// This CPU's scratch value.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: this CPU's entry, used by one program run at a time (TC programs run with
    // preemption disabled and do not nest on a CPU).
    SCRATCH.get_ptr_mut(0).map(|s| unsafe { &mut *s })
}

#[btf_map(name = "flows")]
pub static FLOWS: LruHashMap<u64, FlowEntry, FLOW_CAPACITY> = LruHashMap::new();

/// `BPF_F_MMAPABLE`: the array's values start on a page, so each 64-byte set is one cache line
/// (not mapped by anyone: the flag is for the alignment).
const PAGE_ALIGNED: usize = 1 << 10;

/// Sized by the controller at load time from `flow_table_size` (`sticky::sets_for`).
#[btf_map(name = "sticky_flows")]
pub static STICKY_FLOWS: Array<StickySet, { sets_for(FLOW_CAPACITY as u32) as usize }, PAGE_ALIGNED> = Array::new();

#[btf_map(name = "peer_v4")]
pub static PEER_V4: LpmTrie<[u8; 4], u32, PEER_CAPACITY> = LpmTrie::new();

#[btf_map(name = "peer_v6")]
pub static PEER_V6: LpmTrie<[u8; 16], u32, PEER_CAPACITY> = LpmTrie::new();

#[btf_map(name = "peer_mac")]
pub static PEER_MAC: HashMap<MacKey, u32, PEER_CAPACITY> = HashMap::new();

#[btf_map(name = "probe_events")]
pub static PROBE_EVENTS: RingBuf<ProbeEvent, PROBE_EVENTS_BYTES> = RingBuf::new();

#[btf_map(name = "member_seen")]
pub static MEMBER_SEEN: PerCpuArray<MemberSeen, MAX_MEMBERS> = PerCpuArray::new();

#[btf_map(name = "monitor_targets")]
pub static MONITOR_TARGETS: HashMap<[u8; 16], u32, MONITOR_TARGET_CAPACITY> = HashMap::new();

#[btf_map(name = "dedup")]
pub static DEDUP: LruHashMap<u64, u64, DEDUP_CAPACITY> = LruHashMap::new();

#[btf_map(name = "bucket_bytes")]
pub static BUCKET_BYTES: PerCpuArray<u64, { MAX_POLICIES * BUCKETS }> = PerCpuArray::new();

#[btf_map(name = "probe_sent")]
pub static PROBE_SENT: Array<ProbeSent, { MAX_MEMBERS * PROBE_SENT_SLOTS as usize }> = Array::new();

/// One value for every member: one lookup per packet, not one per member (the verifier walks
/// the members' loop with fewer branches).
#[btf_map(name = "schedule")]
pub static SCHEDULE: Array<[MemberSchedule; MAX_MEMBERS], 1> = Array::new();

#[btf_map(name = "busy_until")]
pub static BUSY_UNTIL: Array<[u64; MAX_MEMBERS], 1> = Array::new();

#[btf_map(name = "probe_key")]
pub static PROBE_KEY: Array<ProbeKey, 1> = Array::new();

#[btf_map(name = "answer_rate")]
pub static ANSWER_RATE: PerCpuArray<[u64; 2], MAX_MEMBERS> = PerCpuArray::new();

#[btf_map(name = "class_stats")]
pub static CLASS_STATS: PerCpuArray<ClassStats, MAX_CLASSES> = PerCpuArray::new();

/// The configuration in force: the bank `config_bank` points at.
#[inline(always)]
pub fn current_config() -> Option<&'static BondConfig> {
    let bank = *CONFIG_BANK.get(0)?;
    CONFIG.get(bank % CONFIG_BANKS)
}

/// Whether the flow table samples this packet (see `bond_common::flow::sample_step`).
#[inline(always)]
pub fn flow_sample_due(cursor: &mut u32) -> bool {
    let (next, due) = sample_step(*cursor);
    *cursor = next;
    due
}

/// Bit mask of usable member slots.
#[inline(always)]
pub fn member_usable() -> u32 {
    MEMBER_USABLE.get(0).copied().unwrap_or(0)
}

/// Applies `f` to this CPU's counters of member `slot`.
#[inline(always)]
pub fn member_stats(slot: u32, f: impl FnOnce(&mut MemberStats)) {
    if let Some(p) = MEMBER_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, only this program on this CPU touches it right now.
        f(unsafe { &mut *p });
    }
}

/// Applies `f` to this CPU's bond-wide counters.
#[inline(always)]
pub fn bond_stats(f: impl FnOnce(&mut BondStats)) {
    if let Some(p) = BOND_STATS.get_ptr_mut(0) {
        // SAFETY: as above.
        f(unsafe { &mut *p });
    }
}

/// The EtherType of the packet, from the skb (no packet read).
#[inline(always)]
pub fn skb_protocol(ctx: &aya_ebpf::programs::TcContext) -> u16 {
    // skb->protocol holds the EtherType in network byte order.
    u16::from_be(ctx.skb.protocol() as u16)
}
