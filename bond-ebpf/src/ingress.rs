//! TC ingress on each member: hand received traffic to the bond device. On the way: answer and
//! report probes, note monitoring traffic (ARP, neighbour advertisements), drop duplicates of
//! broadcast copies, leave slow-protocol frames to the controller.

use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_ns, bpf_redirect},
    programs::TcContext,
};
use aya_log_ebpf::warn;
use bond_common::{
    config::{BondConfig, DEDUP_WINDOW_NS, bond_flags},
    packet::{ETH_HLEN, ETH_P_ARP, ETH_P_IPV6, ETH_P_SLOW, PacketBytes},
    probe::ETH_P_PROBE,
    select::active_member,
    stats::MAX_TARGETS,
};

use crate::{
    maps::{DEDUP, MEMBER_SEEN, MONITOR_TARGETS, bond_stats, current_config, member_stats, member_usable, skb_protocol},
    probe,
    skb::Skb,
};

#[inline(always)]
pub fn member_ingress(ctx: &TcContext) -> i32 {
    let Some(cfg) = current_config() else {
        warn!(ctx, "member_ingress: no configuration in force: frame left to the member");
        return TC_ACT_OK;
    };
    // SAFETY: the context's skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(slot) = cfg.slot_of(ifindex) else {
        bond_stats(|s| s.rx_not_member += 1);
        return TC_ACT_OK;
    };
    match skb_protocol(ctx) {
        ETH_P_PROBE => {
            if let Some(verdict) = probe::receive(ctx, cfg, slot) {
                return verdict;
            }
        }
        // LACP and marker frames belong to the controller, which reads them on the member.
        ETH_P_SLOW => {
            bond_stats(|s| s.rx_slow_protocol += 1);
            return TC_ACT_OK;
        }
        ETH_P_ARP if cfg.flags & bond_flags::ARP_MONITOR != 0 => saw_monitoring(cfg, slot, arp_sender(ctx)),
        ETH_P_IPV6 if cfg.flags & bond_flags::NS_MONITOR != 0 => {
            if let Some(src) = neighbour_advert_source(ctx) {
                saw_monitoring(cfg, slot, Some(src));
            }
        }
        _ => {}
    }
    if cfg.flags & bond_flags::RX_COLLECTING_ONLY != 0 && member_usable() & (1 << slot) == 0 {
        member_stats(u32::from(slot), |s| s.rx_dropped += 1);
        return TC_ACT_SHOT;
    }
    if cfg.flags & bond_flags::OWN_MACS != 0 && !own_macs_receive(ctx, cfg, slot) {
        member_stats(u32::from(slot), |s| s.rx_dropped += 1);
        return TC_ACT_SHOT;
    }
    let len = u64::from(ctx.len());
    if cfg.flags & bond_flags::RX_DEDUP != 0 && is_duplicate(ctx, len) {
        member_stats(u32::from(slot), |s| s.rx_dropped += 1);
        return TC_ACT_SHOT;
    }
    member_stats(u32::from(slot), |s| {
        s.rx_packets += 1;
        s.rx_bytes += len;
    });
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    unsafe { bpf_redirect(cfg.bond_ifindex, u64::from(BPF_F_INGRESS)) as i32 }
}

/// balance-tlb / balance-alb, where each member has its own MAC address: whether the frame is
/// for the bond. The switch floods broadcast and multicast to every member, so only the active
/// member's copy is taken. Unicast is taken on every member: frames the bond forwards for
/// others (a bridge above it) keep their source address, so a switch learns a guest's address
/// on whichever member carried its traffic and sends the replies there. With receive balancing
/// (alb), peers send to the member's own address: such a frame is readdressed to the bond's, or
/// the bond would take it for another host's.
#[inline(always)]
fn own_macs_receive(ctx: &TcContext, cfg: &BondConfig, slot: u8) -> bool {
    let Some(dst) = Skb::new(ctx).bytes::<6>(0) else { return true };
    if dst[0] & 1 != 0 {
        let Some(policy) = cfg.policies.get(cfg.default_policy as usize) else { return true };
        return active_member(policy, member_usable()) == Some(slot);
    }
    if cfg.flags & bond_flags::RX_BALANCE != 0
        && let Some(own) = cfg.member_mac.get(usize::from(slot))
        && dst[..] == own[..6]
        && own[..6] != cfg.bond_mac[..6]
    {
        let bond: [u8; 6] = [cfg.bond_mac[0], cfg.bond_mac[1], cfg.bond_mac[2], cfg.bond_mac[3], cfg.bond_mac[4], cfg.bond_mac[5]];
        let _ = ctx.store(0, &bond, 0);
    }
    true
}

/// The sender IP of an ARP frame, IPv4-mapped as in `monitor_targets`.
#[inline(always)]
fn arp_sender(ctx: &TcContext) -> Option<[u8; 16]> {
    let ip = Skb::new(ctx).bytes::<4>(ETH_HLEN + 14)?;
    Some([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[0], ip[1], ip[2], ip[3]])
}

/// The source address of an ICMPv6 neighbour advertisement (no extension headers).
#[inline(always)]
fn neighbour_advert_source(ctx: &TcContext) -> Option<[u8; 16]> {
    let pkt = Skb::new(ctx);
    let fixed = pkt.bytes::<8>(ETH_HLEN)?;
    let icmp_type = pkt.bytes::<1>(ETH_HLEN + 40)?;
    (fixed[6] == 58 && icmp_type[0] == 136).then_some(())?;
    pkt.bytes::<16>(ETH_HLEN + 8)
}

/// Notes that member `slot` received ARP or a neighbour advertisement, from a monitored target
/// or not.
#[inline(always)]
fn saw_monitoring(_cfg: &BondConfig, slot: u8, sender: Option<[u8; 16]>) {
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a plain u32 read from the table.
    let target = sender.and_then(|s| MONITOR_TARGETS.get_ptr(s)).map(|i| unsafe { *i } as usize % MAX_TARGETS);
    if let Some(p) = MEMBER_SEEN.get_ptr_mut(u32::from(slot)) {
        // SAFETY: per-CPU value.
        let seen = unsafe { &mut *p };
        seen.any_arp_ns = now;
        if let Some(t) = target.and_then(|i| seen.target_ns.get_mut(i)) {
            *t = now;
        }
    }
}

/// Whether an identical frame arrived within the dedup window (on any member): the content of
/// its first 64 bytes after the Ethernet header and its length identify it. Copies arriving at
/// once on two CPUs race on one insert, so exactly one of them passes.
#[inline(always)]
fn is_duplicate(ctx: &TcContext, len: u64) -> bool {
    let pkt = Skb::new(ctx);
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ len;
    let mut off = ETH_HLEN - 2;
    for _ in 0..8 {
        let Some(w) = pkt.bytes::<8>(off) else { break };
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(31);
        off += 8;
    }
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    if DEDUP.insert(h, now, u64::from(BPF_NOEXIST)).is_ok() {
        return false;
    }
    match DEDUP.get_ptr_mut(h) {
        // SAFETY: a pointer into the table from the lookup just above.
        // The copy that won the insert may have read the clock after this one did (another
        // CPU): a time stamped after `now` is as recent as can be, not 584 years old.
        Some(seen) => unsafe {
            if now.abs_diff(*seen) < DEDUP_WINDOW_NS {
                true
            } else {
                *seen = now;
                false
            }
        },
        None => false,
    }
}
