//! Flow identity and the flow table's records.
//!
//! The flow table observes traffic; forwarding does not depend on it (balance-aware
//! flow-static keeps its flows' members in a table of its own, [`crate::sticky`]). So it is
//! updated from one packet in [`FLOW_SAMPLE_EVERY`] per CPU, with packet and byte counts scaled
//! up: an LRU lookup and update on every packet would cost more than everything else the bond
//! does per packet.
//!
//! A flow is one direction of a conversation: IP family, addresses, transport protocol and ports
//! (the echo identifier for ICMP echo). Non-IP traffic is a flow per (source MAC, destination
//! MAC, EtherType). Fragments carry no ports, so every fragment of a datagram is the same flow.

use crate::packet::Headers;

/// The flow table is updated from one packet in this many, per CPU (ZeroTier samples the same
/// share of its traffic for its measurements).
pub const FLOW_SAMPLE_EVERY: u32 = 16;

/// One record of the `flows` table, keyed by [`flow_id`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    /// `bpf_ktime_get_coarse_ns` when the flow was first and last seen.
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// IPv6 addresses, IPv4 addresses in the first 4 bytes, or MAC addresses in the first 6.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    /// Destination port, or the EtherType for non-IP flows.
    pub dst_port: u16,
    /// 4, 6, or 0 for non-IP.
    pub family: u8,
    pub proto: u8,
    /// Member slot the flow was last sent on, or `NO_MEMBER` (broadcast, or dropped).
    pub member: u8,
    /// Index of the policy that placed it.
    pub policy: u8,
}

const _: () = assert!(core::mem::size_of::<FlowEntry>() == 72);

impl FlowEntry {
    /// A new record for the flow of `h`, first seen with `packets` packets of `bytes` bytes.
    #[inline(always)]
    pub fn new(h: &Headers, member: u8, policy: u8, packets: u64, bytes: u64, now_ns: u64) -> FlowEntry {
        let mut e = FlowEntry {
            first_seen_ns: now_ns,
            last_seen_ns: now_ns,
            packets,
            bytes,
            src: [0; 16],
            dst: [0; 16],
            src_port: 0,
            dst_port: 0,
            family: 0,
            proto: 0,
            member,
            policy,
        };
        if h.ip.version != 0 {
            e.family = h.ip.version;
            e.src = h.ip.src;
            e.dst = h.ip.dst;
            e.proto = if h.l4.present { h.l4.proto } else { h.ip.first_proto };
            let (sp, dp) = flow_ports(h);
            e.src_port = sp;
            e.dst_port = dp;
        } else if h.has_eth {
            e.src[..6].copy_from_slice(&h.eth_src);
            e.dst[..6].copy_from_slice(&h.eth_dst);
            e.dst_port = h.ether_type;
        }
        e
    }
}

/// The ports that identify the flow: transport ports, or (echo id, 0) for ICMP echo.
#[inline(always)]
fn flow_ports(h: &Headers) -> (u16, u16) {
    if h.l4.has_ports {
        (h.l4.src_port, h.l4.dst_port)
    } else if h.l4.is_icmp {
        (h.l4.icmp_id, 0)
    } else {
        (0, 0)
    }
}

/// One step of the flow table's sampler: the next per-CPU state, and whether this packet is
/// sampled (one in [`FLOW_SAMPLE_EVERY`] on average). Pseudo-random (xorshift32) rather than
/// "every 16th packet", which would alias with periodic traffic: 16 flows sent in turn would
/// always sample the same flow.
#[inline(always)]
pub fn sample_step(state: u32) -> (u32, bool) {
    let mut x = if state == 0 { 0x9e37_79b9 } else { state };
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    (x, x % FLOW_SAMPLE_EVERY == 0)
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(K).rotate_left(29)
}

#[inline(always)]
fn word(b: &[u8; 16], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// A 64-bit identity of the flow of `h` (the `flows` key; its halves feed balance-aware's
/// buckets). Not a kernel formula: a multiply-rotate mix, cheap in eBPF.
#[inline(always)]
pub fn flow_id(h: &Headers) -> u64 {
    let mut x = K;
    if h.ip.version != 0 {
        let (sp, dp) = flow_ports(h);
        let proto = if h.l4.present { h.l4.proto } else { h.ip.first_proto };
        x = mix(x, u64::from(h.ip.version) | u64::from(proto) << 8 | u64::from(sp) << 16 | u64::from(dp) << 32);
        x = mix(x, word(&h.ip.src, 0));
        x = mix(x, word(&h.ip.src, 1));
        x = mix(x, word(&h.ip.dst, 0));
        x = mix(x, word(&h.ip.dst, 1));
    } else if h.has_eth {
        let mut src = [0u8; 8];
        src[..6].copy_from_slice(&h.eth_src);
        let mut dst = [0u8; 8];
        dst[..6].copy_from_slice(&h.eth_dst);
        x = mix(x, u64::from(h.ether_type));
        x = mix(x, u64::from_le_bytes(src));
        x = mix(x, u64::from_le_bytes(dst));
    }
    // Final avalanche (murmur3 fmix64) so every bit of the id depends on every input bit.
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The 32-bit hash balance-aware uses to pick a bucket.
#[inline(always)]
pub fn bucket_hash(flow_id: u64) -> u32 {
    (flow_id ^ (flow_id >> 32)) as u32
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::packet::{parse, tests::build::*};

    #[test]
    fn same_flow_same_id_other_port_other_id() {
        let a = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000)[..]);
        let b = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000)[..]);
        let c = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1001, 2000)[..]);
        assert_eq!(flow_id(&a), flow_id(&b));
        assert_ne!(flow_id(&a), flow_id(&c));
    }

    #[test]
    fn fragments_of_a_datagram_share_the_id_of_unported_traffic() {
        let mut first = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        first[14 + 6] = 0x20;
        let mut later = first.clone();
        later[14 + 7] = 0x10;
        assert_eq!(flow_id(&parse(&first[..])), flow_id(&parse(&later[..])));
    }

    #[test]
    fn entry_records_the_tuple() {
        let h = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000)[..]);
        let e = FlowEntry::new(&h, 2, 0, 1, 100, 5);
        assert_eq!((e.family, e.proto, e.src_port, e.dst_port, e.member), (4, 17, 1000, 2000, 2));
        assert_eq!(&e.dst[..4], &[192, 0, 2, 2]);
    }

    #[test]
    fn sampling_does_not_alias_with_flows_sent_in_turn() {
        // 8 and 16 flows sent round-robin: every flow gets its share of the samples.
        for flows in [8usize, 16] {
            let mut state = 0;
            let mut samples = std::vec![0u32; flows];
            for i in 0..160_000usize {
                let (s, due) = sample_step(state);
                state = s;
                if due {
                    samples[i % flows] += 1;
                }
            }
            let expect = 160_000 / 16 / flows as u32;
            for (f, n) in samples.iter().enumerate() {
                assert!(n.abs_diff(expect) * 5 < expect, "{flows} flows: flow {f} got {n} samples, expected about {expect}");
            }
        }
    }

    #[test]
    fn buckets_spread_evenly() {
        // 25,600 flows over 256 buckets: every bucket within 40 % of the mean.
        let mut counts = [0u32; 256];
        for i in 0..25_600u32 {
            let h = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], (i % 60_000) as u16, (i / 60_000) as u16 + 1)[..]);
            counts[(bucket_hash(flow_id(&h)) % 256) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min >= 60 && *max <= 140, "min {min} max {max}");
    }
}
