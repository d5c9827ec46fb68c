//! Peer probes in the kernel (format in `bond_common::probe`): sending them out of the member
//! they name, answering the peer's, and reporting replies to the controller.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_ktime_get_ns, bpf_redirect},
    programs::TcContext,
};
use bond_common::{
    config::{BondConfig, MAX_MEMBERS},
    packet::PacketBytes,
    probe::{
        FLAG_CORRUPT, KIND_REPLY, KIND_REQUEST, OFF_FLAGS, OFF_HEADER, OFF_KIND, OFF_MEMBER, OFF_PATTERN, OFF_T1, OFF_T2, PATTERN_LEN,
        PROBE_MAGIC, ProbeEvent, ProbeHeader, frame_intact, member_probe_mac,
    },
};

use crate::{
    maps::{PROBE_EVENTS, member_stats},
    skb::Skb,
};

/// A probe the controller sent on the bond device: stamp the send time and put it on the
/// member it names, whether that member is usable or not (probes are how a member proves
/// itself again).
#[inline(always)]
pub fn send(ctx: &TcContext, cfg: &BondConfig) -> i32 {
    let slot = match Skb::new(ctx).bytes::<1>(OFF_MEMBER) {
        Some([s]) if usize::from(s) < MAX_MEMBERS => s,
        _ => return TC_ACT_SHOT,
    };
    let Some(&ifindex) = cfg.member_ifindex.get(usize::from(slot)) else {
        return TC_ACT_SHOT;
    };
    if ifindex == 0 {
        return TC_ACT_SHOT;
    }
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    if ctx.store(OFF_T1, &now.to_le_bytes(), 0).is_err() {
        return TC_ACT_SHOT;
    }
    member_stats(u32::from(slot), |s| s.tx_probes += 1);
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}

/// A frame of the probes' EtherType received on member `slot`: answer a request from the peer
/// in place (back out of the same member), report a reply to our own request, drop anything
/// else of ours. None: not a probe of ours (another protocol on the same local experimental
/// EtherType), delivered to the bond like any frame.
#[inline(always)]
pub fn receive(ctx: &TcContext, cfg: &BondConfig, slot: u8) -> Option<i32> {
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let pkt = Skb::new(ctx);
    let (hb, pattern) = (pkt.bytes::<32>(OFF_HEADER)?, pkt.bytes::<PATTERN_LEN>(OFF_PATTERN)?);
    let h = ProbeHeader::from_bytes(&hb);
    if h.magic != PROBE_MAGIC {
        return None;
    }
    let intact = frame_intact(&h, &pattern);
    if !intact {
        member_stats(u32::from(slot), |s| s.probe_errors += 1);
    }
    Some(match h.kind {
        // Our own request, flooded back by a switch to another member: not a peer's.
        KIND_REQUEST if h.sender_id == cfg.probe_id => TC_ACT_SHOT,
        KIND_REQUEST => answer(ctx, cfg, slot, intact, now),
        KIND_REPLY if h.sender_id == cfg.probe_id => {
            let event = ProbeEvent {
                member: h.member,
                flags: if intact { h.flags } else { h.flags | FLAG_CORRUPT },
                rx_member: slot,
                pad: 0,
                seq: h.seq,
                t1: h.t1,
                t2: h.t2,
                t4: now,
            };
            // A full ring buffer loses the event: the controller then counts the probe lost.
            let _ = PROBE_EVENTS.output(event, 0);
            member_stats(u32::from(slot), |s| s.rx_probes += 1);
            TC_ACT_SHOT
        }
        // A reply to another bond instance, or a frame too mangled to tell.
        _ => TC_ACT_SHOT,
    })
}

/// Turns the request into the reply and sends it back out of the member it came in on.
#[inline(always)]
fn answer(ctx: &TcContext, cfg: &BondConfig, slot: u8, intact: bool, now: u64) -> i32 {
    let flags = if intact { 0u8 } else { FLAG_CORRUPT };
    // Broadcast, from this member's probe address (see `member_probe_mac`): a NIC's filter
    // passes it, and a switch moves no address of the bonds.
    let ok = ctx.store(0, &[0xffu8; 6], 0).is_ok()
        && ctx.store(6, &member_probe_mac(cfg.probe_id, slot), 0).is_ok()
        && ctx.store(OFF_KIND, &KIND_REPLY, 0).is_ok()
        && ctx.store(OFF_FLAGS, &flags, 0).is_ok()
        && ctx.store(OFF_T2, &now.to_le_bytes(), 0).is_ok();
    if !ok {
        return TC_ACT_SHOT;
    }
    member_stats(u32::from(slot), |s| s.probes_answered += 1);
    // SAFETY: the skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}
