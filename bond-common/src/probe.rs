//! Peer probes: small frames each bond sends on every member to the bond at the other end,
//! answered in the kernel by the far side's `member_ingress` and timestamped in the kernel at
//! both ends, so a round trip excludes user-space scheduling.
//!
//! ```text
//!  A: bondctl --AF_PACKET on bond--> bond_egress (t1, out member m) ==link==>
//!  B: member_ingress: REQUEST -> REPLY (t2), back out the same member ==link==>
//!  A: member_ingress: REPLY (t4) -> ring buffer event -> bondctl: rtt = t4 - t1
//! ```
//!
//! Frame: Ethernet header (EtherType [`ETH_P_PROBE`]) then [`ProbeHeader`], then
//! [`PATTERN_LEN`] pattern bytes derived from the sequence number. A probe whose magic, member
//! or pattern does not check out is corrupt; the responder flags it in its reply and the sender
//! counts it as an error (`per`).

use crate::packet::ETH_HLEN;

/// IEEE 802 local experimental EtherType 1.
pub const ETH_P_PROBE: u16 = 0x88b5;
pub const PROBE_MAGIC: u32 = 0x424e_4450; // "BNDP"
pub const PROBE_VERSION: u8 = 1;
pub const KIND_REQUEST: u8 = 1;
pub const KIND_REPLY: u8 = 2;
/// Reply flag: the request arrived corrupt.
pub const FLAG_CORRUPT: u8 = 1;
pub const PATTERN_LEN: usize = 32;

/// The probe header as it is on the wire (all multi-byte fields little-endian: both ends run
/// this software; the EtherType is what tells others to ignore it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeHeader {
    pub magic: u32,
    pub version: u8,
    pub kind: u8,
    /// Member slot the request was sent on (at the sender).
    pub member: u8,
    pub flags: u8,
    pub seq: u32,
    /// Identifies the sending bond instance: replies for another one are ignored.
    pub sender_id: u32,
    /// Sender's kernel time when the request left (`bpf_ktime_get_ns`).
    pub t1: u64,
    /// Responder's kernel time when the request arrived.
    pub t2: u64,
}

const _: () = assert!(core::mem::size_of::<ProbeHeader>() == 32);

/// Offsets of fields the kernel programs write, from the start of the frame.
pub const OFF_HEADER: usize = ETH_HLEN;
pub const OFF_KIND: usize = OFF_HEADER + 5;
pub const OFF_MEMBER: usize = OFF_HEADER + 6;
pub const OFF_FLAGS: usize = OFF_HEADER + 7;
pub const OFF_T1: usize = OFF_HEADER + 16;
pub const OFF_T2: usize = OFF_HEADER + 24;
pub const OFF_PATTERN: usize = OFF_HEADER + core::mem::size_of::<ProbeHeader>();
/// Where a reply carries its keyed hash (see [`reply_tag`]); zero in requests.
pub const OFF_TAG: usize = OFF_PATTERN + PATTERN_LEN;
/// Where a reply carries the bytes the answering member had received (all CPUs' counts, as
/// its `member_stats` has them), little-endian: with two replies, what the link delivered in
/// between, as the far end counted it. Zero in requests, and in the replies of earlier
/// versions (whose requests were 8 bytes shorter and whose replies leave it as it came).
/// Not covered by the keyed hash: a rate hint, not a proof of anything.
pub const OFF_RX_BYTES: usize = OFF_TAG + 8;
/// Length of a probe frame.
pub const PROBE_FRAME_LEN: usize = OFF_RX_BYTES + 8;

/// The pattern byte `i` of probe `seq`.
#[inline(always)]
pub fn pattern_byte(seq: u32, i: usize) -> u8 {
    (seq as u8).wrapping_add((i as u8).wrapping_mul(37))
}

impl ProbeHeader {
    #[inline(always)]
    pub fn from_bytes(b: &[u8; 32]) -> ProbeHeader {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        ProbeHeader {
            magic: u32_at(0),
            version: b[4],
            kind: b[5],
            member: b[6],
            flags: b[7],
            seq: u32_at(8),
            sender_id: u32_at(12),
            t1: u64_at(16),
            t2: u64_at(24),
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4] = self.version;
        b[5] = self.kind;
        b[6] = self.member;
        b[7] = self.flags;
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..16].copy_from_slice(&self.sender_id.to_le_bytes());
        b[16..24].copy_from_slice(&self.t1.to_le_bytes());
        b[24..32].copy_from_slice(&self.t2.to_le_bytes());
        b
    }

    /// Whether the fields a probe must carry make sense (the pattern is checked separately).
    #[inline(always)]
    pub fn is_sane(&self) -> bool {
        self.magic == PROBE_MAGIC
            && self.version == PROBE_VERSION
            && (self.kind == KIND_REQUEST || self.kind == KIND_REPLY)
            && usize::from(self.member) < crate::config::MAX_MEMBERS
    }
}

/// The source address of the probes member `member` of bond instance `sender_id` sends and
/// answers: its own, locally administered, never the bond's. Through a switch, probes from
/// every member carrying the bond's address would move it from port to port (and traffic for
/// the bond with it); these addresses are learnt on their member's port and nowhere else. Each
/// member has its own in its unicast filter (as a macvlan's address would be): replies come to
/// it, and once a peer is found, requests too; only discovery requests are broadcast.
#[inline(always)]
pub fn member_probe_mac(sender_id: u32, member: u8) -> [u8; 6] {
    let id = sender_id.to_be_bytes();
    [0x06, id[0], id[1], id[2], id[3], member]
}

/// The sending bond's probe id in a probe address `member_probe_mac` made: every member of
/// one bond shares it, another bond (or the same daemon restarted) has another.
pub fn probe_sender_of(mac: [u8; 6]) -> u32 {
    u32::from_be_bytes([mac[1], mac[2], mac[3], mac[4]])
}

/// Requests remembered per member (by `seq % PROBE_SENT_SLOTS`) until their reply.
pub const PROBE_SENT_SLOTS: u32 = 64;

/// A request the data plane sent (`probe_sent`, at `slot * PROBE_SENT_SLOTS + seq %
/// PROBE_SENT_SLOTS`): a reply counts only if it names this `seq` and echoes this `nonce`, and
/// its round trip runs from this `t1`, kept here rather than taken from the reply, so a forged
/// reply can neither prove a member alive blind nor change its round trip. `t1` is cleared
/// when the reply is counted: a replay counts nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSent {
    pub nonce: u64,
    pub t1: u64,
    pub seq: u32,
    /// The queue the packet schedule counted on the member when the request left
    /// (`busy_until` less the send time), in microseconds: 0 when it counts none (its queue
    /// has emptied, or no policy in force schedules packets; the controller reads it only
    /// under one that does).
    pub backlog_us: u32,
}

const _: () = assert!(core::mem::size_of::<ProbeSent>() == 24);

/// A request frame to `dst` (the broadcast address while the peer is being discovered, then
/// the probe address of the peer's member that answered), ready to send on the bond device:
/// `nonce` (random per request) travels in the `t1` field, which the peer echoes; the data
/// plane keeps it and the send time (see [`ProbeSent`]) and sends the frame out of member
/// `member`.
pub fn request_frame(dst: [u8; 6], member: u8, seq: u32, sender_id: u32, nonce: u64) -> [u8; PROBE_FRAME_LEN] {
    let mut f = [0u8; PROBE_FRAME_LEN];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&member_probe_mac(sender_id, member));
    f[12..14].copy_from_slice(&ETH_P_PROBE.to_be_bytes());
    let h =
        ProbeHeader { magic: PROBE_MAGIC, version: PROBE_VERSION, kind: KIND_REQUEST, member, flags: 0, seq, sender_id, t1: nonce, t2: 0 };
    f[OFF_HEADER..OFF_PATTERN].copy_from_slice(&h.to_bytes());
    for (i, b) in f[OFF_PATTERN..OFF_TAG].iter_mut().enumerate() {
        *b = pattern_byte(seq, i);
    }
    f
}

/// The key of the replies' keyed hash (`probeKey`), in the data plane's `probe_key` map;
/// `enabled` 0: no key, replies carry no hash and none is checked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeKey {
    pub k0: u64,
    pub k1: u64,
    pub enabled: u64,
}

const _: () = assert!(core::mem::size_of::<ProbeKey>() == 24);

impl ProbeKey {
    /// From the 16 bytes `probeKey` derives.
    pub fn new(key: [u8; 16]) -> ProbeKey {
        let w = |o: usize| u64::from_le_bytes([key[o], key[o + 1], key[o + 2], key[o + 3], key[o + 4], key[o + 5], key[o + 6], key[o + 7]]);
        ProbeKey { k0: w(0), k1: w(8), enabled: 1 }
    }
}

/// What a reply to request `h` carries when the bonds share a key: SipHash-2-4 of the request's
/// nonce, sequence number and sender. A third host that sees the request can echo its nonce,
/// but without the key it cannot compute this.
#[inline(always)]
pub fn reply_tag(key: &ProbeKey, h: &ProbeHeader) -> u64 {
    crate::siphash::siphash24_16(key.k0, key.k1, h.t1, u64::from(h.seq) | u64::from(h.sender_id) << 32)
}

/// Whether a probe frame is intact: sane header and the pattern its sequence number implies.
#[inline(always)]
pub fn frame_intact(h: &ProbeHeader, pattern: &[u8; PATTERN_LEN]) -> bool {
    // Compared as four 64-bit words, the expected ones built with carry-free byte additions:
    // a comparison per byte would be a branch per byte in eBPF (it has no set-on-condition),
    // and 32 branches multiply the paths the verifier walks past its limit.
    let seq = u64::from(h.seq as u8) * 0x0101_0101_0101_0101;
    let mut diff = 0u64;
    let mut k = 0;
    while k < PATTERN_LEN / 8 {
        let mut offsets = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            offsets[i] = ((k * 8 + i) as u8).wrapping_mul(37);
            i += 1;
        }
        let c = u64::from_le_bytes(offsets);
        let expected = ((seq & 0x7f7f_7f7f_7f7f_7f7f) + (c & 0x7f7f_7f7f_7f7f_7f7f)) ^ ((seq ^ c) & 0x8080_8080_8080_8080);
        let got = u64::from_le_bytes([
            pattern[k * 8],
            pattern[k * 8 + 1],
            pattern[k * 8 + 2],
            pattern[k * 8 + 3],
            pattern[k * 8 + 4],
            pattern[k * 8 + 5],
            pattern[k * 8 + 6],
            pattern[k * 8 + 7],
        ]);
        diff |= got ^ expected;
        k += 1;
    }
    diff == 0 && h.is_sane()
}

/// What the data plane reports for each reply (ring buffer `probe_events`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeEvent {
    /// Member slot the request was sent on.
    pub member: u8,
    /// `FLAG_CORRUPT` when the reply, or the request it answers, arrived corrupt.
    pub flags: u8,
    /// Member slot the reply arrived on.
    pub rx_member: u8,
    pub pad: u8,
    pub seq: u32,
    pub t1: u64,
    pub t2: u64,
    /// Local kernel time the reply arrived.
    pub t4: u64,
    /// The reply's source: the probe address of the peer's member that answered.
    pub peer: [u8; 6],
    pub pad2: [u8; 2],
    /// Bytes the peer's answering member had received by `t2` (see [`OFF_RX_BYTES`]; 0 when
    /// the peer does not say).
    pub peer_rx_bytes: u64,
    /// [`ProbeSent::backlog_us`] of the request (0 from earlier versions' programs).
    pub backlog_us: u32,
    pub pad3: u32,
}

const _: () = assert!(core::mem::size_of::<ProbeEvent>() == 56);

impl ProbeEvent {
    /// A ring buffer record as the kernel wrote it (this host's byte order); records shorter
    /// than an event are not events, but for the 32-, 40- and 48-byte ones of earlier
    /// versions' programs (no peer address; no peer byte count; no backlog), which a new daemon
    /// reads until it has replaced them.
    pub fn from_record(r: &[u8]) -> Option<ProbeEvent> {
        let b: &[u8; 32] = r.get(..32)?.try_into().ok()?;
        let peer = match r.len() {
            32 => [0; 6],
            n if n >= 40 => [r[32], r[33], r[34], r[35], r[36], r[37]],
            _ => return None,
        };
        let peer_rx_bytes = r.get(40..48).map_or(0, |w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        let backlog_us = r.get(48..52).map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4], b[o + 5], b[o + 6], b[o + 7]]);
        Some(ProbeEvent {
            member: b[0],
            flags: b[1],
            rx_member: b[2],
            pad: b[3],
            seq: u32_at(4),
            t1: u64_at(8),
            t2: u64_at(16),
            t4: u64_at(24),
            peer,
            pad2: [0; 2],
            peer_rx_bytes,
            backlog_us,
            pad3: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_buffer_record_reads_as_the_event_the_kernel_wrote() {
        let e = ProbeEvent {
            member: 1,
            flags: FLAG_CORRUPT,
            rx_member: 2,
            pad: 0,
            seq: 7,
            t1: 10,
            t2: 20,
            t4: 1 << 40,
            peer: [6, 1, 2, 3, 4, 5],
            pad2: [0; 2],
            peer_rx_bytes: 1 << 33,
            backlog_us: 12_345,
            pad3: 0,
        };
        // SAFETY: ProbeEvent is repr(C), integers only, 56 bytes without padding (asserted above).
        let bytes: [u8; 56] = unsafe { core::mem::transmute(e) };
        assert_eq!(ProbeEvent::from_record(&bytes), Some(e));
        assert_eq!(ProbeEvent::from_record(&bytes[..48]), Some(ProbeEvent { backlog_us: 0, ..e }), "an earlier version's record");
        assert_eq!(ProbeEvent::from_record(&bytes[..40]), Some(ProbeEvent { peer_rx_bytes: 0, backlog_us: 0, ..e }), "an earlier one's");
        assert_eq!(
            ProbeEvent::from_record(&bytes[..32]),
            Some(ProbeEvent { peer: [0; 6], peer_rx_bytes: 0, backlog_us: 0, ..e }),
            "an earlier one's"
        );
        assert_eq!(ProbeEvent::from_record(&bytes[..31]), None, "short records are not events");
        assert_eq!(ProbeEvent::from_record(&bytes[..36]), None);
    }

    #[test]
    fn request_round_trips_and_checks_out() {
        let f = request_frame([0xff; 6], 3, 77, 0xabcd, 0x1122);
        assert_eq!(f[..6], [0xff; 6], "discovery: broadcast");
        assert_eq!(f[OFF_TAG..], [0; 16], "no tag and no byte count in a request");
        assert_eq!(f[6..12], member_probe_mac(0xabcd, 3), "from the member's own probe address");
        assert_eq!(probe_sender_of(member_probe_mac(0xabcd, 3)), 0xabcd, "the sender's id read back");
        assert_eq!(f[6] & 3, 2, "locally administered, unicast");
        assert_eq!(f.len(), PROBE_FRAME_LEN);
        let h = ProbeHeader::from_bytes(f[OFF_HEADER..OFF_PATTERN].try_into().unwrap());
        assert_eq!((h.kind, h.member, h.seq, h.sender_id), (KIND_REQUEST, 3, 77, 0xabcd));
        assert!(frame_intact(&h, f[OFF_PATTERN..OFF_TAG].try_into().unwrap()));
        assert_eq!(f[OFF_MEMBER], 3);
        assert_eq!(f[OFF_KIND], KIND_REQUEST);
    }

    #[test]
    fn corruption_is_detected() {
        let f = request_frame([0xff; 6], 3, 77, 1, 5);
        let h = ProbeHeader::from_bytes(f[OFF_HEADER..OFF_PATTERN].try_into().unwrap());
        for i in 0..PATTERN_LEN {
            let mut p: [u8; PATTERN_LEN] = f[OFF_PATTERN..OFF_TAG].try_into().unwrap();
            p[i] ^= 0x40;
            assert!(!frame_intact(&h, &p), "byte {i}");
        }
        let mut bad = h;
        bad.member = 200;
        assert!(!frame_intact(&bad, f[OFF_PATTERN..OFF_TAG].try_into().unwrap()));
        let mut bad = h;
        bad.seq ^= 1;
        assert!(!frame_intact(&bad, f[OFF_PATTERN..OFF_TAG].try_into().unwrap()), "a changed sequence no longer matches its pattern");
    }

    #[test]
    fn the_reply_tag_depends_on_the_key_and_every_field_it_covers() {
        let f = request_frame([0xff; 6], 3, 77, 0xabcd, 0x1122);
        let h = ProbeHeader::from_bytes(f[OFF_HEADER..OFF_PATTERN].try_into().unwrap());
        let key = ProbeKey::new(*b"0123456789abcdef");
        let tag = reply_tag(&key, &h);
        assert_ne!(reply_tag(&ProbeKey::new(*b"0123456789abcdeg"), &h), tag, "another key");
        for changed in [ProbeHeader { t1: h.t1 ^ 1, ..h }, ProbeHeader { seq: h.seq + 1, ..h }, ProbeHeader { sender_id: 1, ..h }] {
            assert_ne!(reply_tag(&key, &changed), tag);
        }
        assert_eq!(reply_tag(&key, &ProbeHeader { t2: 99, member: 1, ..h }), tag, "what the responder changes is not covered");
    }
}
