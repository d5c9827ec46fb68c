//! Peer probes in the kernel (format in `bond_common::probe`): sending them out of the member
//! they name, answering the peer's, and reporting replies to the controller.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_ktime_get_ns, bpf_map_lookup_percpu_elem, bpf_redirect},
    programs::TcContext,
};
use bond_common::{
    config::{BondConfig, bond_flags},
    packet::PacketBytes,
    probe::{
        FLAG_CORRUPT, KIND_REPLY, KIND_REQUEST, OFF_FLAGS, OFF_HEADER, OFF_KIND, OFF_PATTERN, OFF_RX_BYTES, OFF_T2, OFF_TAG, PATTERN_LEN,
        PROBE_MAGIC, PROBE_SENT_SLOTS, PROBE_VERSION, ProbeEvent, ProbeHeader, ProbeKey, ProbeSent, frame_intact, member_probe_mac,
        reply_tag,
    },
    stats::MemberStats,
};

use crate::{
    maps::{ANSWER_RATE, BUSY_UNTIL, MEMBER_STATS, PROBE_EVENTS, PROBE_KEY, PROBE_SENT, member_stats},
    skb::Skb,
};

/// A frame of the probes' EtherType sent on the bond device: if it is one of the controller's
/// probes (a request of this run's bond, see `probe_id`), stamp the send time and put it on the
/// member it names, whether that member is usable or not (probes are how a member proves itself
/// again). None: another protocol on the same local experimental EtherType (a guest behind a
/// bridge above the bond, say), forwarded like any other traffic.
#[inline(always)]
pub fn send(ctx: &TcContext, cfg: &BondConfig) -> Option<i32> {
    let h = ProbeHeader::from_bytes(&Skb::new(ctx).bytes::<32>(OFF_HEADER)?);
    if h.magic != PROBE_MAGIC || h.version != PROBE_VERSION || h.kind != KIND_REQUEST || h.sender_id != cfg.probe_id {
        return None;
    }
    let slot = h.member;
    let ifindex = match cfg.member_ifindex.get(usize::from(slot)) {
        Some(&i) if i != 0 => i,
        _ => return Some(TC_ACT_SHOT),
    };
    // SAFETY: a BPF helper without arguments that only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // Kept for the reply (see `ProbeSent`); the frame carries the nonce in its t1 field.
    if let Some(sent) = PROBE_SENT.get_ptr_mut(u32::from(slot) * PROBE_SENT_SLOTS + h.seq % PROBE_SENT_SLOTS) {
        // SAFETY: an entry of the array; a reply read racing this write fails the seq or nonce
        // check and is not counted, which is what a reply to an older request deserves.
        unsafe { *sent = ProbeSent { nonce: h.t1, t1: now, seq: h.seq, backlog_us: scheduled_backlog_us(slot, now) } };
    }
    member_stats(u32::from(slot), |s| s.tx_probes += 1);
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    Some(unsafe { bpf_redirect(ifindex, 0) as i32 })
}

/// The queue the packet schedule counts on member `slot` at `now` (see `schedule`), in
/// microseconds: the request waits behind it if the schedule counts the member's rate right,
/// and the controller compares it with the queue the reply found.
#[inline(always)]
fn scheduled_backlog_us(slot: u8, now: u64) -> u32 {
    let busy = BUSY_UNTIL.get(0).and_then(|b| b.get(usize::from(slot)).copied()).unwrap_or(0);
    let us = busy.saturating_sub(now) / 1000;
    if us > u64::from(u32::MAX) { u32::MAX } else { us as u32 }
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
    // The sender's probe address: a request is answered to it, a reply names the peer's member.
    let src = pkt.bytes::<6>(6)?;
    // The key the bonds share, if any (`probeKey`): replies carry a hash of the request only a
    // holder of the key computes.
    let key = PROBE_KEY.get(0).filter(|k| k.enabled != 0);
    let intact = frame_intact(&h, &pattern);
    if !intact {
        member_stats(u32::from(slot), |s| s.probe_errors += 1);
    }
    Some(match h.kind {
        // Our own request, flooded back by a switch to another member: not a peer's.
        KIND_REQUEST if h.sender_id == cfg.probe_id => TC_ACT_SHOT,
        KIND_REQUEST if cfg.flags & bond_flags::ANSWER_PROBES == 0 => TC_ACT_SHOT,
        KIND_REQUEST => answer(ctx, cfg, slot, intact, now, src, &h, key),
        // A switch floods the (broadcast) reply to every member: only the copy that came back
        // on the member its request left from says something about that member.
        KIND_REPLY if h.sender_id == cfg.probe_id && h.member != slot => TC_ACT_SHOT,
        KIND_REPLY if h.sender_id == cfg.probe_id => {
            // With a key, a reply without its hash is not the peer's: dropped before it can
            // take the request's place (the peer's own reply still counts).
            if let Some(k) = key
                && pkt.bytes::<8>(OFF_TAG).map(u64::from_le_bytes) != Some(reply_tag(k, &h))
            {
                member_stats(u32::from(slot), |s| s.probe_errors += 1);
                return Some(TC_ACT_SHOT);
            }
            let (t1, backlog_us) = match sent_time(slot, &h) {
                Sent::Waiting(t1, backlog_us) => (t1, backlog_us),
                // A second answer to a request already answered: two members of the peer (or
                // two peers) heard one broadcast discovery request. Not an error.
                Sent::Answered => return Some(TC_ACT_SHOT),
                // Not a reply to a request we sent: forged, or too late.
                Sent::Unknown => {
                    member_stats(u32::from(slot), |s| s.probe_errors += 1);
                    return Some(TC_ACT_SHOT);
                }
            };
            let event = ProbeEvent {
                member: h.member,
                flags: if intact { h.flags } else { h.flags | FLAG_CORRUPT },
                rx_member: slot,
                pad: 0,
                seq: h.seq,
                t1,
                t2: h.t2,
                t4: now,
                peer: src,
                pad2: [0; 2],
                // An earlier version's reply (a shorter frame) does not say: 0.
                peer_rx_bytes: pkt.bytes::<8>(OFF_RX_BYTES).map_or(0, u64::from_le_bytes),
                backlog_us,
                pad3: 0,
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

/// What a reply is to the requests sent on its member.
enum Sent {
    /// The one awaited: the request's send time and the schedule's backlog then.
    Waiting(u64, u32),
    /// The request it echoes was answered already.
    Answered,
    /// No request of ours.
    Unknown,
}

/// The send time of the request reply `h` answers on member `slot`, if it is one we are
/// waiting for (its seq and nonce, see `ProbeSent`); taken, so a replay counts nothing.
#[inline(always)]
fn sent_time(slot: u8, h: &ProbeHeader) -> Sent {
    let Some(sent) = PROBE_SENT.get_ptr_mut(u32::from(slot) * PROBE_SENT_SLOTS + h.seq % PROBE_SENT_SLOTS) else { return Sent::Unknown };
    // SAFETY: an entry of the array; see `send` for the race with a new request.
    let sent = unsafe { &mut *sent };
    if sent.seq != h.seq || sent.nonce != h.t1 {
        return Sent::Unknown;
    }
    if sent.t1 == 0 {
        return Sent::Answered;
    }
    let t1 = sent.t1;
    sent.t1 = 0;
    Sent::Waiting(t1, sent.backlog_us)
}

/// CPUs whose counts `rx_bytes_all_cpus` adds up at most (a bound the verifier can see).
const MAX_CPUS: u32 = 256;

/// Bytes member `slot` has handed to the bond, every CPU's count added up: what a reply tells
/// the peer (`OFF_RX_BYTES`). A lookup per CPU, on the reply path only; the per-packet path
/// keeps its per-CPU counters without contention.
#[inline(never)]
fn rx_bytes_all_cpus(slot: u32) -> u64 {
    let map = core::ptr::from_ref(&MEMBER_STATS).cast_mut().cast();
    let mut total = 0u64;
    let mut cpu = 0u32;
    while cpu < MAX_CPUS {
        // SAFETY: the map is this program's (the loader puts its descriptor in place of the
        // static's address, as aya's own lookups do); the key is a u32 on this stack frame.
        let p = unsafe { bpf_map_lookup_percpu_elem(map, core::ptr::from_ref(&slot).cast(), cpu) };
        if p.is_null() {
            break;
        }
        // SAFETY: a value of the map (a MemberStats) the kernel just returned.
        total = total.wrapping_add(unsafe { (*p.cast::<MemberStats>()).rx_bytes });
        cpu += 1;
    }
    total
}

/// Requests answered per member and window at most (per CPU): a flood of requests cannot turn
/// the bond into a reflector. Probes come every third of `failoverInterval` (10 ms at least)
/// from each peer member, far below this.
const ANSWERS_PER_WINDOW: u64 = 200;
const ANSWER_WINDOW_NS: u64 = 100_000_000;

/// Whether member `slot` may answer one more request now.
#[inline(always)]
fn may_answer(slot: u8, now: u64) -> bool {
    let Some(r) = ANSWER_RATE.get_ptr_mut(u32::from(slot)) else { return false };
    // SAFETY: per-CPU value, only this program on this CPU touches it right now.
    let r = unsafe { &mut *r };
    if now.wrapping_sub(r[0]) > ANSWER_WINDOW_NS {
        (r[0], r[1]) = (now, 0);
    }
    r[1] += 1;
    r[1] <= ANSWERS_PER_WINDOW
}

/// Turns the request `h` from `requester` into the reply and sends it back out of the member
/// it came in on: to the requester's probe address (in its member's unicast filter), from this
/// member's (see `member_probe_mac`), so a switch moves no address of the bonds and only the
/// requester receives it; with a key, carrying its hash of the request.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn answer(
    ctx: &TcContext,
    cfg: &BondConfig,
    slot: u8,
    intact: bool,
    now: u64,
    requester: [u8; 6],
    h: &ProbeHeader,
    key: Option<&ProbeKey>,
) -> i32 {
    if !may_answer(slot, now) {
        member_stats(u32::from(slot), |s| s.probe_errors += 1);
        return TC_ACT_SHOT;
    }
    let flags = if intact { 0u8 } else { FLAG_CORRUPT };
    // A request from a multicast source is nobody's to answer to: broadcast, as before.
    // (Stored from either array as it is: a 6-byte array picked into a third one is copied
    // with misaligned stack accesses the verifier refuses.)
    let to = if requester[0] & 1 == 0 { ctx.store(0, &requester, 0) } else { ctx.store(0, &[0xffu8; 6], 0) };
    let ok = to.is_ok()
        && ctx.store(6, &member_probe_mac(cfg.probe_id, slot), 0).is_ok()
        && ctx.store(OFF_KIND, &KIND_REPLY, 0).is_ok()
        && ctx.store(OFF_FLAGS, &flags, 0).is_ok()
        && ctx.store(OFF_T2, &now.to_le_bytes(), 0).is_ok();
    if !ok {
        return TC_ACT_SHOT;
    }
    // A request of an earlier version has no room for the hash: its reply cannot carry one
    // (and a keyed requester would not take it).
    if let Some(k) = key {
        let _ = ctx.store(OFF_TAG, &reply_tag(k, h).to_le_bytes(), 0);
    }
    // And no room for the byte count either.
    let _ = ctx.store(OFF_RX_BYTES, &rx_bytes_all_cpus(u32::from(slot)).to_le_bytes(), 0);
    member_stats(u32::from(slot), |s| s.probes_answered += 1);
    // SAFETY: the skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: bpf_redirect takes only integers (an ifindex, flags) and touches no memory of
    // ours; the kernel checks the ifindex when it redirects.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}
