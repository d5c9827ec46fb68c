//! TC egress on the bond device: choose a member per packet and redirect to it.

use aya_ebpf::{
    bindings::{TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_redirect},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use aya_log_ebpf::{debug, warn};
use bond_common::{
    config::{BUCKETS, Balance, BondConfig, MAX_CLASSES, MAX_MEMBERS, Mode, NO_MEMBER, PolicyConfig, XmitHash, bond_flags, peer_tables},
    flow::{FLOW_SAMPLE_EVERY, FlowEntry, bucket_hash, flow_id},
    hash::{kernel_hash, zerotier_hash},
    maps::MacKey,
    packet::{ETH_HLEN, ETH_P_ARP, Headers, PacketBytes, parse_into},
    probe::ETH_P_PROBE,
    schedule::earliest_arrival,
    select::{active_member, aware_member, is_usable, packet_hash, round_robin_member, rx_member, usable_count, xor_member},
    sticky,
};

use crate::{
    maps::{
        BUCKET_BYTES, BUSY_UNTIL, CLASS_STATS, FLOWS, PEER_MAC, PEER_V4, PEER_V6, RR_CURSOR, SCHEDULE, STICKY_FLOWS, Scratch, bond_stats,
        current_config, flow_sample_due, member_stats, member_usable, scratch, skb_protocol,
    },
    probe,
    skb::Skb,
};

/// What `choose` decided: a member slot (0..MAX_MEMBERS), or one of these.
const CHOICE_BROADCAST: u32 = 0x100;
const CHOICE_NOTHING: u32 = 0x200;
/// balance-aware flow-static: the flow's record decides (`sticky_choice`).
const CHOICE_STICKY: u32 = 0x400;

/// `SHORTCUTS`: whether the common cases take their own short paths (`plain_default_policy`);
/// always in the loaded program, off only in the bench's `stage_general`, which measures what
/// they save.
#[inline(always)]
pub fn bond_egress<const SHORTCUTS: bool>(ctx: &TcContext) -> i32 {
    let (Some(cfg), Some(scratch)) = (current_config(), scratch()) else {
        bond_stats(|s| s.tx_no_config += 1);
        warn!(ctx, "bond_egress: no configuration in force: packet dropped");
        return TC_ACT_SHOT;
    };
    let ether_type = skb_protocol(ctx);
    if ether_type == ETH_P_PROBE
        && let Some(verdict) = probe::send(ctx, cfg)
    {
        return verdict;
    }
    let len = u64::from(ctx.len());
    if SHORTCUTS && let Some(policy) = plain_default_policy(cfg) {
        let verdict = match Mode::from_u32(policy.mode) {
            Some(Mode::ActiveBackup | Mode::None) => {
                let usable = member_usable() & policy.family_mask(ether_type);
                Some(to_unparsed(ctx, cfg, scratch, active_member(policy, usable), len))
            }
            Some(Mode::BalanceRr) => Some(to_the_next_member(ctx, cfg, policy, scratch, ether_type, len)),
            Some(Mode::BalanceXor | Mode::Lacp) => to_the_hashed_member(ctx, cfg, policy, scratch, false, ether_type, len),
            Some(Mode::BalanceAware) if Balance::from_u32(policy.balance) == Some(Balance::FlowDynamic) => {
                to_the_hashed_member(ctx, cfg, policy, scratch, true, ether_type, len)
            }
            _ => None,
        };
        if let Some(verdict) = verdict {
            return verdict;
        }
    }
    let Scratch { sample_cursor, headers: h } = scratch;
    let pkt = Skb::new(ctx);
    // Headers are read only when something needs them: the destination table, the policy's
    // choice, or a flow-table sample. `h` is meaningful only after parse_headers.
    let by_headers = cfg.peer_tables != 0 || cfg.n_classes != 0;
    if by_headers {
        parse_headers(&pkt, h);
    }
    let policy_index = policy_for(cfg, h, len);
    let Some(policy) = cfg.policies.get(policy_index as usize) else {
        bond_stats(|s| s.tx_no_config += 1);
        warn!(ctx, "bond_egress: policy {} is not in the configuration: packet dropped", policy_index);
        return TC_ACT_SHOT;
    };
    // Members this packet may use: usable ones, restricted by ipvPref for its IP family.
    let usable = member_usable() & policy.family_mask(ether_type);
    let parsed = by_headers || policy.reads_headers();
    if !by_headers && policy.reads_headers() {
        parse_headers(&pkt, h);
    }

    // balance-alb: the bond's unicast ARP names the member its target is to send to.
    let steered =
        if ether_type == ETH_P_ARP && cfg.flags & bond_flags::RX_BALANCE != 0 { arp_member(ctx, cfg, policy, usable, h) } else { None };
    let choice = if cfg.flags & bond_flags::BROADCAST_NEIGH != 0 && parsed && is_neighbour_discovery(h) {
        CHOICE_BROADCAST
    } else {
        steered.map_or_else(|| choose(policy, policy_index, usable, &pkt, h), u32::from)
    };

    let choice = if choice == CHOICE_STICKY { sticky_choice(cfg, policy, policy_index, usable, h) } else { choice };
    if flow_sample_due(sample_cursor) {
        if !parsed {
            parse_headers(&pkt, h);
        }
        record_flow(h, choice | (policy_index & 0xff) << 16, len);
    }
    match choice {
        CHOICE_BROADCAST => broadcast(ctx, cfg, policy, usable, len),
        CHOICE_NOTHING => {
            bond_stats(|s| s.tx_no_member += 1);
            TC_ACT_SHOT
        }
        slot => {
            if cfg.flags & bond_flags::OWN_MACS != 0 {
                set_source_mac(ctx, cfg, slot as u8, &h.eth_src);
            }
            send(ctx, cfg, slot as u8, len)
        }
    }
}

/// The default policy, when it alone decides every packet: no traffic classes, no peer
/// tables and no flag that reads or rewrites the packet. The common cases then take short
/// paths of their own (`to_unparsed`, `to_the_next_member`, `to_the_hashed_member`): the same
/// decisions as the general path, in fewer steps (the bench's `stage_general` measures what
/// they save).
#[inline(always)]
fn plain_default_policy(cfg: &BondConfig) -> Option<&PolicyConfig> {
    const READS_PACKET: u32 = bond_flags::BROADCAST_NEIGH | bond_flags::RX_BALANCE | bond_flags::OWN_MACS;
    if cfg.n_classes != 0 || cfg.peer_tables != 0 || cfg.flags & READS_PACKET != 0 {
        return None;
    }
    cfg.policies.get(cfg.default_policy as usize)
}

/// balance-rr under a plain default policy: the next member in turn (or a random one).
#[inline(always)]
fn to_the_next_member(ctx: &TcContext, cfg: &BondConfig, policy: &PolicyConfig, scratch: &mut Scratch, ether_type: u16, len: u64) -> i32 {
    let counter = next_packet(cfg.default_policy);
    // SAFETY: a BPF helper without arguments that only returns a number.
    let random = if policy.packets_per_link == 0 { unsafe { bpf_get_prandom_u32() } } else { 0 };
    let choice = round_robin_member(policy, member_usable() & policy.family_mask(ether_type), counter, random);
    to_unparsed(ctx, cfg, scratch, choice, len)
}

/// Sends a packet whose member was chosen without reading it (active-backup, balance-rr),
/// parsing it only when the flow table samples it. active-backup is bonding's most common
/// mode, and its cost per packet is nearly all the program's own.
#[inline(always)]
fn to_unparsed(ctx: &TcContext, cfg: &BondConfig, scratch: &mut Scratch, choice: Option<u8>, len: u64) -> i32 {
    if flow_sample_due(&mut scratch.sample_cursor) {
        let h = &mut scratch.headers;
        parse_headers(&Skb::new(ctx), h);
        record_flow(h, choice.map_or(CHOICE_NOTHING, u32::from) | (cfg.default_policy & 0xff) << 16, len);
    }
    to(ctx, cfg, choice, len)
}

/// balance-xor and 802.3ad (the transmit hash's member) and flow-dynamic balance-aware (its
/// bucket's member, `by_bucket`) under a plain default policy. None for a frame without an
/// Ethernet header (the general path counts it and sends it on the active member).
#[inline(always)]
fn to_the_hashed_member(
    ctx: &TcContext,
    cfg: &BondConfig,
    policy: &PolicyConfig,
    scratch: &mut Scratch,
    by_bucket: bool,
    ether_type: u16,
    len: u64,
) -> Option<i32> {
    let Scratch { sample_cursor, headers: h } = scratch;
    let pkt = Skb::new(ctx);
    if !parse_headers(&pkt, h) {
        return None;
    }
    let usable = member_usable() & policy.family_mask(ether_type);
    let choice = if by_bucket {
        let hash = bucket_hash(flow_id(h));
        count_bucket(cfg.default_policy, hash, len);
        aware_member(policy, usable, hash, NO_MEMBER)
    } else {
        xor_member(policy, usable, policy_hash(policy, &pkt, h))
    };
    if flow_sample_due(sample_cursor) {
        record_flow(h, choice.map_or(CHOICE_NOTHING, u32::from) | (cfg.default_policy & 0xff) << 16, len);
    }
    Some(to(ctx, cfg, choice, len))
}

/// Sends to the chosen member, or drops (counted) when there is none.
#[inline(always)]
fn to(ctx: &TcContext, cfg: &BondConfig, choice: Option<u8>, len: u64) -> i32 {
    match choice {
        Some(slot) => send(ctx, cfg, slot, len),
        None => {
            bond_stats(|s| s.tx_no_member += 1);
            TC_ACT_SHOT
        }
    }
}

/// ARP, or an IPv6 neighbour solicitation or advertisement (`broadcast_neighbor`).
#[inline(always)]
fn is_neighbour_discovery(h: &Headers) -> bool {
    h.ether_type == ETH_P_ARP || (h.ip.version == 6 && h.l4.is_icmp && (h.l4.icmp_type == 135 || h.l4.icmp_type == 136))
}

/// balance-tlb / balance-alb: the frame leaves with its member's MAC address (the active
/// member's is the bond's), so the switch keeps the bond's address on the active member.
#[inline(always)]
fn set_source_mac(ctx: &TcContext, cfg: &BondConfig, slot: u8, src: &[u8; 6]) {
    let Some(mac) = cfg.member_mac.get(usize::from(slot)) else { return };
    // Frames the bond forwards for others (a bridge above it) keep their source. (`src` is the
    // parsed header: tlb and alb always parse.)
    let from_bond = src[..] == cfg.bond_mac[..6];
    if from_bond && mac[..6] != cfg.bond_mac[..6] && mac[..6] != [0; 6] {
        let src: [u8; 6] = [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]];
        if ctx.store(6, &src, 0).is_err() {
            bond_stats(|s| s.tx_unparsed += 1);
            debug!(ctx, "bond_egress: source address of a {}-byte frame not rewritten", ctx.len());
        }
    }
}

/// balance-alb: unicast ARP sent by the bond (sender hardware address = the bond's MAC) goes
/// out of the member chosen for its target (`rx_member`), and names that member's address as
/// the bond's: the target then sends to the bond on that member. (`set_source_mac` fixes the
/// Ethernet header.) None for any other ARP.
#[inline(always)]
fn arp_member(ctx: &TcContext, cfg: &BondConfig, policy: &PolicyConfig, usable: u32, h: &Headers) -> Option<u8> {
    const SHA: usize = ETH_HLEN + 8;
    const TPA: usize = ETH_HLEN + 24;
    let pkt = Skb::new(ctx);
    const SPA: usize = ETH_HLEN + 14;
    let sha = pkt.bytes::<6>(SHA)?;
    let spa = pkt.bytes::<4>(SPA)?;
    let tpa = pkt.bytes::<4>(TPA)?;
    if sha[..] != cfg.bond_mac[..6] {
        return None;
    }
    // Broadcast (requests, gratuitous ARP) is heard by every peer: it keeps the bond's own
    // address, and the controller, seeing the count move, tells the peers their members again.
    if !h.has_eth || h.eth_dst[0] & 1 != 0 || spa == tpa {
        bond_stats(|s| s.tx_arp_broadcasts += 1);
        return None;
    }
    let slot = rx_member(policy, usable, u32::from_be_bytes(tpa))?;
    let mac = cfg.member_mac.get(usize::from(slot))?;
    if mac[..6] != [0; 6] {
        let own: [u8; 6] = [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]];
        ctx.store(SHA, &own, 0).ok()?;
    }
    Some(slot)
}

// The stages below are separate BPF functions (not inlined) on purpose: each one's register
// spills live in its own stack frame, which is gone before the next stage runs (inlined, they
// add up past the verifier's 512-byte stack limit), and the verifier explores each stage's
// branches without multiplying them by every other stage's.

/// Returns whether the frame had an Ethernet header. (A subprogram must leave a scalar in R0:
/// the verifier rejects one that returns with a stack pointer there.)
#[inline(never)]
pub(crate) fn parse_headers(pkt: &Skb, h: &mut Headers) -> bool {
    parse_into(pkt, h);
    h.has_eth
}

#[inline(never)]
pub(crate) fn xmit_hash(policy: XmitHash, pkt: &Skb, h: &Headers) -> u32 {
    kernel_hash(policy, pkt, h)
}

/// Updates (or creates) the flow's record. `placed` is the choice in the low bits and the
/// policy index from bit 16; a sampled packet stands for FLOW_SAMPLE_EVERY packets.
#[inline(never)]
pub(crate) fn record_flow(h: &Headers, placed: u32, len: u64) -> u32 {
    let id = flow_id(h);
    let member = if placed & 0xffff < MAX_MEMBERS as u32 { placed as u8 } else { NO_MEMBER };
    let policy = (placed >> 16) as u8;
    let weight = u64::from(FLOW_SAMPLE_EVERY);
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    match FLOWS.get_ptr_mut(id) {
        Some(f) => {
            // SAFETY: a pointer into the flow table from the lookup just above.
            unsafe { record_in_place(f, member, policy, len, weight, now) };
            0
        }
        None => FLOWS.insert(id, FlowEntry::new(h, member, policy, weight, len * weight, now), 0).map_or(1, |_| 0),
    }
}

/// Brings a flow's entry up to date: `weight` packets of `len` bytes, sent on `member` by
/// `policy`, at `now` (the coarse clock).
///
/// # Safety
/// `f` points into the flow table (a lookup of this program run). Counters race between CPUs
/// sending the same flow at once; the flow table is for observation and stickiness, not
/// accounting (member_stats is exact).
#[inline(always)]
unsafe fn record_in_place(f: *mut FlowEntry, member: u8, policy: u8, len: u64, weight: u64, now: u64) {
    // SAFETY: see the function's contract.
    unsafe {
        (*f).packets += weight;
        (*f).bytes += len * weight;
        (*f).last_seen_ns = now;
        // Rarely changed: written only then.
        if (*f).member != member || (*f).policy != policy {
            (*f).member = member;
            (*f).policy = policy;
        }
    }
}

/// balance-aware flow-static: the member the flow started on while it is usable, else its
/// bucket's (the flow then stays there); recorded in `sticky_flows`, whose entry is rewritten
/// only when the member or the tick changed (see `bond_common::sticky`). Without the table,
/// the bucket's member.
#[inline(always)]
fn sticky_choice(cfg: &BondConfig, policy: &PolicyConfig, policy_index: u32, usable: u32, h: &Headers) -> u32 {
    let id = flow_id(h);
    let hash = bucket_hash(id);
    let sets = cfg.sticky_sets;
    let looked_up = if sets == 0 {
        None
    } else {
        let (index, tag) = sticky::place(id, sets);
        STICKY_FLOWS.get_ptr_mut(index).map(|set| (set, tag))
    };
    let Some((set, tag)) = looked_up else {
        return aware_member(policy, usable, hash, NO_MEMBER).map_or(CHOICE_NOTHING, u32::from);
    };
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = sticky::tick(unsafe { bpf_ktime_get_coarse_ns() });
    // SAFETY: a pointer into the table from the lookup above, valid while the program runs;
    // entries are written whole (see bond_common::sticky).
    let set = unsafe { &mut *set };
    let found = sticky::find(set, tag, policy_index as u8, now, policy.flow_expiry_ticks);
    let Some(slot) = aware_member(policy, usable, hash, found.member) else { return CHOICE_NOTHING };
    let e = sticky::entry(tag, slot, policy_index as u8, now);
    if let Some(old) = set.get_mut(found.way)
        && *old != e
    {
        *old = e;
    }
    u32::from(slot)
}

/// Adds a packet's bytes to its balance-aware bucket (what rebalancing measures).
#[inline(always)]
fn count_bucket(policy_index: u32, hash: u32, len: u64) {
    let index = policy_index * BUCKETS as u32 + hash % BUCKETS as u32;
    if let Some(b) = BUCKET_BYTES.get_ptr_mut(index) {
        // SAFETY: per-CPU counter.
        unsafe { *b += len };
    }
}

/// The policy for this packet: its traffic class's (counted), else a peer entry's for its
/// destination, else the default.
#[inline(always)]
fn policy_for(cfg: &BondConfig, h: &Headers, len: u64) -> u32 {
    if cfg.n_classes != 0
        && let Some(p) = class_policy(cfg, h, len)
    {
        return p;
    }
    let tables = cfg.peer_tables;
    if tables != 0 {
        if h.ip.version == 4
            && tables & peer_tables::IPV4 != 0
            && let Some(p) = PEER_V4.get(&Key::new(32, h.ipv4_dst())).and_then(|p| in_config(cfg, *p))
        {
            return p;
        }
        if h.ip.version == 6
            && tables & peer_tables::IPV6 != 0
            && let Some(p) = PEER_V6.get(&Key::new(128, h.ip.dst)).and_then(|p| in_config(cfg, *p))
        {
            return p;
        }
        if tables & peer_tables::MAC != 0 && h.has_eth {
            let key = MacKey { mac: h.eth_dst, pad: [0; 2] };
            // SAFETY: the value is a plain u32 read right away.
            if let Some(p) = unsafe { PEER_MAC.get(key) }.and_then(|p| in_config(cfg, *p)) {
                return p;
            }
        }
    }
    cfg.default_policy
}

/// The policy of the first class rule `h` matches (the controller writes them most specific
/// first), counted in `class_stats`.
#[inline(never)]
fn class_policy(cfg: &BondConfig, h: &Headers, len: u64) -> Option<u32> {
    let mut i = 0;
    while i < MAX_CLASSES {
        if i as u32 >= cfg.n_classes {
            break;
        }
        let rule = &cfg.classes[i];
        if rule.matches(h)
            && let Some(p) = in_config(cfg, rule.policy)
        {
            if let Some(s) = CLASS_STATS.get_ptr_mut(i as u32) {
                // SAFETY: per-CPU value, only this program on this CPU touches it right now.
                let s = unsafe { &mut *s };
                s.tx_packets += 1;
                s.tx_bytes += len;
            }
            return Some(p);
        }
        i += 1;
    }
    None
}

/// A peer entry's policy index, if the config in force holds that policy. The controller writes
/// the tables and the config separately, so for a moment an entry may name a policy the config
/// does not have yet (or any more): its traffic takes the default policy meanwhile.
#[inline(always)]
fn in_config(cfg: &BondConfig, index: u32) -> Option<u32> {
    cfg.policies.get(index as usize).filter(|p| p.n_members != 0).map(|_| index)
}

/// The member for this packet (a slot), CHOICE_BROADCAST or CHOICE_NOTHING.
#[inline(never)]
fn choose(policy: &PolicyConfig, policy_index: u32, usable: u32, pkt: &Skb, h: &Headers) -> u32 {
    let member = match Mode::from_u32(policy.mode) {
        Some(Mode::Broadcast) => {
            return if usable_count(policy, usable) > 0 { CHOICE_BROADCAST } else { CHOICE_NOTHING };
        }
        // Before the headers are looked at: packet placement reads none (they may not be parsed).
        // Over links of known rate, where the packet arrives first; else walking the buckets.
        Some(Mode::BalanceAware) if Balance::from_u32(policy.balance) == Some(Balance::Packet) => match scheduled(policy, usable, pkt) {
            Some(slot) => Some(slot),
            None => aware_member(policy, usable, packet_hash(next_packet(policy_index)), NO_MEMBER),
        },
        // Nothing to classify by: send it where active-backup would, deterministically.
        Some(Mode::BalanceXor | Mode::BalanceAware | Mode::Lacp) if !h.has_eth => {
            bond_stats(|s| s.tx_unparsed += 1);
            active_member(policy, usable)
        }
        Some(Mode::BalanceRr) => {
            let counter = next_packet(policy_index);
            // SAFETY: a BPF helper without arguments that only returns a number.
            let random = if policy.packets_per_link == 0 { unsafe { bpf_get_prandom_u32() } } else { 0 };
            round_robin_member(policy, usable, counter, random)
        }
        Some(Mode::BalanceXor | Mode::Lacp) => xor_member(policy, usable, policy_hash(policy, pkt, h)),
        // Only unicast IP is balanced; the rest (ARP, broadcast, multicast) leaves where the
        // bond's MAC address is, on the active member.
        Some(Mode::BalanceTlb | Mode::BalanceAlb) if !h.has_eth || h.eth_dst[0] & 1 != 0 || h.ip.version == 0 => {
            active_member(policy, usable)
        }
        // tlb_dynamic_lb 1: buckets placed by load; 0: the transmit hash.
        Some(Mode::BalanceTlb | Mode::BalanceAlb) if Balance::from_u32(policy.balance) == Some(Balance::FlowDynamic) => {
            let hash = bucket_hash(flow_id(h));
            count_bucket(policy_index, hash, u64::from(pkt.len()));
            aware_member(policy, usable, hash, NO_MEMBER)
        }
        Some(Mode::BalanceTlb | Mode::BalanceAlb) => xor_member(policy, usable, policy_hash(policy, pkt, h)),
        // flow-static: the flow's record decides, read where the table's size is known.
        Some(Mode::BalanceAware) if policy.sticky_flows() => return CHOICE_STICKY,
        Some(Mode::BalanceAware) => {
            let hash = bucket_hash(flow_id(h));
            // Only flow-dynamic rebalancing reads the per-bucket traffic.
            count_bucket(policy_index, hash, u64::from(pkt.len()));
            aware_member(policy, usable, hash, NO_MEMBER)
        }
        // none and active-backup (and anything unknown): the active member.
        _ => active_member(policy, usable),
    };
    member.map_or(CHOICE_NOTHING, u32::from)
}

/// balance-aware `packet`: the member where the packet arrives first (`schedule`), whose
/// queue then holds it; None when a usable member's rate is unknown.
#[inline(always)]
fn scheduled(policy: &PolicyConfig, usable: u32, pkt: &Skb) -> Option<u8> {
    let schedule = SCHEDULE.get(0)?;
    let busy = BUSY_UNTIL.get_ptr_mut(0)?;
    // SAFETY: a BPF helper without arguments that only returns a number.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the map's one value, valid while the program runs. Not atomic: two CPUs placing
    // packets at once may both see a member free, which makes the model briefly optimistic,
    // never wrong for long (see bond_common::schedule).
    let busy = unsafe { &mut *busy };
    let placed = earliest_arrival(
        policy,
        usable,
        now,
        pkt.wire_len(),
        |slot| schedule.get(usize::from(slot)).copied(),
        |slot| busy.get(usize::from(slot)).copied().unwrap_or(0),
    )?;
    if let Some(b) = busy.get_mut(usize::from(placed.slot)) {
        *b = placed.busy_until;
    }
    Some(placed.slot)
}

/// This CPU's count of the packets policy `policy_index` placed one by one (balance-rr,
/// packet-based balance-aware), moved on by one.
#[inline(always)]
fn next_packet(policy_index: u32) -> u32 {
    match RR_CURSOR.get_ptr_mut(policy_index) {
        // SAFETY: per-CPU counter of this policy.
        Some(c) => unsafe {
            let v = *c;
            *c = v.wrapping_add(1);
            v
        },
        None => 0,
    }
}

/// The policy's transmit hash of the packet.
#[inline(always)]
fn policy_hash(policy: &PolicyConfig, pkt: &Skb, h: &Headers) -> u32 {
    match XmitHash::from_u32(policy.xmit_hash) {
        // SAFETY: a BPF helper without arguments that only returns a number.
        Some(XmitHash::ZeroTier) => zerotier_hash(h).unwrap_or_else(|| unsafe { bpf_get_prandom_u32() }),
        Some(x) => xmit_hash(x, pkt, h),
        None => xmit_hash(XmitHash::Layer2, pkt, h),
    }
}

#[inline(always)]
fn send(ctx: &TcContext, cfg: &BondConfig, slot: u8, len: u64) -> i32 {
    let Some(&ifindex) = cfg.member_ifindex.get(usize::from(slot)) else {
        return TC_ACT_SHOT;
    };
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    let verdict = unsafe { bpf_redirect(ifindex, 0) } as i32;
    member_stats(u32::from(slot), |s| {
        if verdict == TC_ACT_REDIRECT {
            s.tx_packets += 1;
            s.tx_bytes += len;
        } else {
            s.tx_errors += 1;
        }
    });
    if verdict != TC_ACT_REDIRECT {
        warn!(ctx, "bond_egress: redirect to member slot {} (ifindex {}) failed", slot, ifindex);
    }
    verdict
}

/// A copy on every usable member: clones to all but the last, the packet itself to the last.
#[inline(always)]
fn broadcast(ctx: &TcContext, cfg: &BondConfig, policy: &PolicyConfig, usable: u32, len: u64) -> i32 {
    let mut last = NO_MEMBER;
    let mut i = 0usize;
    while i < MAX_MEMBERS {
        if i as u32 >= policy.n_members {
            break;
        }
        let slot = policy.members[i];
        i += 1;
        if !is_usable(policy, usable, u32::from(slot)) {
            continue;
        }
        if last != NO_MEMBER {
            clone_to(ctx, cfg, last, len);
        }
        last = slot;
    }
    if last == NO_MEMBER {
        bond_stats(|s| s.tx_no_member += 1);
        return TC_ACT_SHOT;
    }
    send(ctx, cfg, last, len)
}

#[inline(always)]
fn clone_to(ctx: &TcContext, cfg: &BondConfig, slot: u8, len: u64) {
    let Some(&ifindex) = cfg.member_ifindex.get(usize::from(slot)) else {
        return;
    };
    let ok = ctx.clone_redirect(ifindex, 0).is_ok();
    if !ok {
        warn!(ctx, "bond_egress: copy to member slot {} (ifindex {}) failed", slot, ifindex);
    }
    member_stats(u32::from(slot), |s| {
        if ok {
            s.tx_packets += 1;
            s.tx_bytes += len;
        } else {
            s.tx_errors += 1;
        }
    });
    if ok {
        bond_stats(|s| s.tx_broadcast_copies += 1);
    }
}
