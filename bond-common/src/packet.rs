//! Bounds-checked header parsing over any packet reader.
//!
//! [`parse`] reads Ethernet (with up to two VLAN tags), IPv4 (with options and fragments), IPv6
//! (with extension headers) and the transport header (TCP, UDP, UDP-Lite, SCTP, DCCP, ICMP,
//! ICMPv6). It never fails: whatever could not be read is left at its empty value, so a packet
//! with odd headers is still classified deterministically by what was readable.
//!
//! Loops have fixed bounds so the eBPF verifier can follow them.

/// Reads bytes of a packet. Implemented over the skb in the eBPF program and over `[u8]` in tests.
pub trait PacketBytes {
    /// The `N` bytes at `offset`, or `None` if the packet is shorter.
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;

    #[inline(always)]
    fn u8_at(&self, offset: usize) -> Option<u8> {
        self.bytes::<1>(offset).map(|b| b[0])
    }

    #[inline(always)]
    fn be16_at(&self, offset: usize) -> Option<u16> {
        self.bytes::<2>(offset).map(u16::from_be_bytes)
    }
}

impl PacketBytes for [u8] {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        let src = self.get(offset..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        Some(out)
    }
}

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Slow protocols (LACP, marker): handled by the controller, never by the bond.
pub const ETH_P_SLOW: u16 = 0x8809;
/// Transparent Ethernet bridging (Ethernet inside GRE).
pub const ETH_P_TEB: u16 = 0x6558;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_DCCP: u8 = 33;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;

/// An offset carried from one loop iteration to the next, hidden from the optimizer.
///
/// Inside loops LLVM's strength reduction folds constants into the packet pointer and then
/// checks `ptr - k` against the packet end and reads `ptr - k'`; the eBPF verifier derives no
/// safe range from a packet pointer with a negative fixed offset and rejects the program.
/// Hiding the offset at the top of each iteration keeps every access at `start + off + k`.
#[inline(always)]
pub fn loop_offset(off: usize) -> usize {
    core::hint::black_box(off)
}

/// VLAN tags looked through (802.1Q and 802.1ad, in any order).
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers skipped before giving up on the transport header.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;

/// What [`parse`] found. Addresses of IPv4 packets use the first 4 bytes of `src`/`dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The frame had a complete Ethernet header; the MAC addresses are meaningful only then.
    pub has_eth: bool,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// EtherType after any VLAN tags.
    pub ether_type: u16,
    /// TCI of the outermost VLAN tag (0 when untagged).
    pub vlan_tci: u16,
    /// Number of VLAN tags looked through.
    pub vlans: u8,
    /// Offset of the network header.
    pub l3_offset: u16,
    pub ip: IpHeader,
    pub l4: L4Header,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    /// 4 or 6 when the fixed IP header was read, else 0.
    pub version: u8,
    /// IPv4 protocol, or the Next Header of the fixed IPv6 header.
    pub first_proto: u8,
    /// Length of the fixed header: IPv4's IHL x 4 as written (even when invalid), 40 for IPv6.
    pub header_len: u8,
    /// A fragment (IPv4 MF or offset, or an IPv6 fragment header): no transport header used.
    pub fragment: bool,
    /// Differentiated services code point (IPv4 TOS or IPv6 traffic class, upper 6 bits).
    pub dscp: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Header {
    /// The transport header was located (not a fragment, extension headers skipped).
    pub present: bool,
    /// Transport protocol after IPv6 extension headers.
    pub proto: u8,
    pub offset: u16,
    /// Ports were read (TCP, UDP, UDP-Lite, SCTP, DCCP).
    pub has_ports: bool,
    pub src_port: u16,
    pub dst_port: u16,
    /// An ICMP or ICMPv6 header was read.
    pub is_icmp: bool,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Echo identifier (0 when the message has none).
    pub icmp_id: u16,
}

impl Headers {
    pub const EMPTY: Headers = Headers {
        has_eth: false,
        eth_dst: [0; 6],
        eth_src: [0; 6],
        ether_type: 0,
        vlan_tci: 0,
        vlans: 0,
        l3_offset: 0,
        ip: IpHeader { version: 0, first_proto: 0, header_len: 0, fragment: false, dscp: 0, src: [0; 16], dst: [0; 16] },
        l4: L4Header {
            present: false,
            proto: 0,
            offset: 0,
            has_ports: false,
            src_port: 0,
            dst_port: 0,
            is_icmp: false,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
        },
    };

    /// Makes `self` equivalent to [`Headers::EMPTY`] for every reader: clears the fields that
    /// say what else is valid (readers look at the Ethernet fields only when `has_eth`).
    ///
    /// Volatile stores, field by field: LLVM would merge plain zero stores into a `memset`,
    /// which in eBPF is a call to a byte-at-a-time loop (it was a third of the parse cost).
    #[inline(always)]
    pub fn reset(&mut self) {
        // SAFETY: each pointer comes from a reference to a field of `*self`, which is exclusively
        // borrowed, so it is valid, aligned and unaliased for the write; the values are of the
        // fields' own types.
        unsafe {
            use core::ptr::write_volatile as w;
            w(&mut self.has_eth, false);
            w(&mut self.ether_type, 0);
            w(&mut self.vlan_tci, 0);
            w(&mut self.vlans, 0);
            w(&mut self.l3_offset, 0);
            w(&mut self.ip.version, 0);
            w(&mut self.ip.fragment, false);
            w(&mut self.l4.present, false);
            w(&mut self.l4.has_ports, false);
            w(&mut self.l4.is_icmp, false);
            w(&mut self.l4.icmp_id, 0);
        }
    }

    /// The IPv4 source address (meaningful when `ip.version == 4`).
    #[inline(always)]
    pub fn ipv4_src(&self) -> [u8; 4] {
        [self.ip.src[0], self.ip.src[1], self.ip.src[2], self.ip.src[3]]
    }

    #[inline(always)]
    pub fn ipv4_dst(&self) -> [u8; 4] {
        [self.ip.dst[0], self.ip.dst[1], self.ip.dst[2], self.ip.dst[3]]
    }
}

/// Parses a frame's headers. Never fails; see the module documentation.
#[inline(always)]
pub fn parse<P: PacketBytes + ?Sized>(p: &P) -> Headers {
    let mut h = Headers::EMPTY;
    parse_into(p, &mut h);
    h
}

/// [`parse`] into `h`, whatever it held before. Writing in place spares the eBPF program a
/// copy of the headers.
#[inline(always)]
pub fn parse_into<P: PacketBytes + ?Sized>(p: &P, h: &mut Headers) {
    h.reset();
    let Some(eth) = p.bytes::<ETH_HLEN>(0) else {
        return;
    };
    h.has_eth = true;
    h.eth_dst = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    h.eth_src = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    let mut ether_type = u16::from_be_bytes([eth[12], eth[13]]);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        off = loop_offset(off);
        let Some(tag) = p.bytes::<4>(off) else {
            break;
        };
        if h.vlans == 0 {
            h.vlan_tci = u16::from_be_bytes([tag[0], tag[1]]);
        }
        h.vlans += 1;
        ether_type = u16::from_be_bytes([tag[2], tag[3]]);
        off += 4;
    }
    h.ether_type = ether_type;
    h.l3_offset = off as u16;
    match ether_type {
        ETH_P_IP => parse_ipv4(p, off, h),
        ETH_P_IPV6 => parse_ipv6(p, off, h),
        _ => {}
    }
}

#[inline(always)]
fn parse_ipv4<P: PacketBytes + ?Sized>(p: &P, off: usize, h: &mut Headers) {
    let Some(b) = p.bytes::<20>(off) else {
        return;
    };
    h.ip.version = 4;
    h.ip.first_proto = b[9];
    h.ip.dscp = b[1] >> 2;
    // All 16 bytes: readers of IPv4 flows take the address arrays whole.
    set_ipv4(&mut h.ip.src, [b[12], b[13], b[14], b[15]]);
    set_ipv4(&mut h.ip.dst, [b[16], b[17], b[18], b[19]]);
    // More-fragments flag or a fragment offset.
    h.ip.fragment = u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0;
    h.ip.header_len = (b[0] & 0x0f) * 4;
    let header_len = usize::from(h.ip.header_len);
    if header_len < 20 || h.ip.fragment {
        return;
    }
    parse_l4(p, off + header_len, b[9], h);
}

/// An IPv4 address in a 16-byte address field, zero-padded: written as two 8-byte words so the
/// padding is not a `memset` call in eBPF.
#[inline(always)]
fn set_ipv4(field: &mut [u8; 16], a: [u8; 4]) {
    let lo = u64::from(u32::from_le_bytes(a));
    // SAFETY: `field` is an exclusively borrowed [u8; 16], so its pointer is valid for writing
    // 16 bytes, the size of [u64; 2]; write_unaligned needs no alignment.
    unsafe { (field.as_mut_ptr() as *mut [u64; 2]).write_unaligned([lo.to_le(), 0]) };
}

#[inline(always)]
fn parse_ipv6<P: PacketBytes + ?Sized>(p: &P, off: usize, h: &mut Headers) {
    // Field by field rather than one 40-byte read: keeps the eBPF stack small.
    let (Some(fixed), Some(src), Some(dst)) = (p.bytes::<8>(off), p.bytes::<16>(off + 8), p.bytes::<16>(off + 24)) else {
        return;
    };
    h.ip.version = 6;
    h.ip.first_proto = fixed[6];
    h.ip.dscp = ((fixed[0] & 0x0f) << 2) | (fixed[1] >> 6);
    h.ip.header_len = 40;
    h.ip.src = src;
    h.ip.dst = dst;
    let mut next = fixed[6];
    let mut off = off + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        off = loop_offset(off);
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(e) = p.bytes::<2>(off) else {
                    return;
                };
                next = e[0];
                off += (usize::from(e[1]) + 1) * 8;
            }
            IPPROTO_AH => {
                let Some(e) = p.bytes::<2>(off) else {
                    return;
                };
                next = e[0];
                off += (usize::from(e[1]) + 2) * 4;
            }
            IPPROTO_FRAGMENT => {
                // Fragments of one datagram must stay together: none of them uses ports.
                h.ip.fragment = true;
                return;
            }
            _ => {
                parse_l4(p, off, next, h);
                return;
            }
        }
    }
}

#[inline(always)]
fn parse_l4<P: PacketBytes + ?Sized>(p: &P, off: usize, proto: u8, h: &mut Headers) {
    h.l4.present = true;
    h.l4.proto = proto;
    h.l4.offset = off as u16;
    match proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP => {
            if let Some(b) = p.bytes::<4>(off) {
                h.l4.has_ports = true;
                h.l4.src_port = u16::from_be_bytes([b[0], b[1]]);
                h.l4.dst_port = u16::from_be_bytes([b[2], b[3]]);
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if let Some(b) = p.bytes::<8>(off) {
                h.l4.is_icmp = true;
                h.l4.icmp_type = b[0];
                h.l4.icmp_code = b[1];
                if icmp_has_id(b[0]) {
                    h.l4.icmp_id = u16::from_be_bytes([b[4], b[5]]);
                }
            }
        }
        _ => {}
    }
}

/// ICMP and ICMPv6 messages that carry an identifier (echo and timestamp), as the kernel's
/// `icmp_has_id` (which checks both families' type numbers whatever the protocol).
#[inline(always)]
pub fn icmp_has_id(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13 | 14 | 128 | 129)
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use crate::packet::tests::build::*;

    #[test]
    fn parses_udp_over_ipv4() {
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        let h = parse(&pkt[..]);
        assert!(h.has_eth);
        assert_eq!(h.ether_type, ETH_P_IP);
        assert_eq!(h.l3_offset, 14);
        assert_eq!(h.ip.version, 4);
        assert_eq!(h.ipv4_src(), [192, 0, 2, 1]);
        assert_eq!(h.ipv4_dst(), [192, 0, 2, 2]);
        assert!(h.l4.present && h.l4.has_ports);
        assert_eq!((h.l4.proto, h.l4.src_port, h.l4.dst_port), (IPPROTO_UDP, 1000, 2000));
    }

    #[test]
    fn looks_through_two_vlan_tags() {
        let inner = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1, 2);
        let pkt = with_vlan_tags(&inner, &[(ETH_P_8021AD, 0x2064), (ETH_P_8021Q, 0x0005)]);
        let h = parse(&pkt[..]);
        assert_eq!(h.vlans, 2);
        assert_eq!(h.vlan_tci, 0x2064);
        assert_eq!(h.ether_type, ETH_P_IP);
        assert_eq!(h.l3_offset, 22);
        assert_eq!((h.l4.src_port, h.l4.dst_port), (1, 2));
    }

    #[test]
    fn skips_ipv4_options() {
        let pkt = eth_ipv4_with_options([192, 0, 2, 1], [192, 0, 2, 2], IPPROTO_TCP, 8, &[0, 80, 1, 187]);
        let h = parse(&pkt[..]);
        assert_eq!(h.l4.offset, 14 + 28);
        assert_eq!((h.l4.src_port, h.l4.dst_port), (80, 443));
    }

    #[test]
    fn ipv4_fragments_have_no_ports() {
        let mut pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        pkt[14 + 6] = 0x20; // more fragments
        let h = parse(&pkt[..]);
        assert!(h.ip.fragment);
        assert!(!h.l4.present);
        assert_eq!(h.ipv4_dst(), [192, 0, 2, 2]);
    }

    #[test]
    fn walks_ipv6_extension_headers() {
        let pkt = eth_ipv6(
            &fd(1),
            &fd(2),
            IPPROTO_HOPOPTS,
            &[&[IPPROTO_DSTOPTS, 0, 0, 0, 0, 0, 0, 0], &[IPPROTO_TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
            &[0x1f, 0x90, 0x00, 0x50, 0, 0, 0, 0],
        );
        let h = parse(&pkt[..]);
        assert_eq!(h.ip.version, 6);
        assert_eq!(h.ip.first_proto, IPPROTO_HOPOPTS);
        assert_eq!(h.l4.proto, IPPROTO_TCP);
        assert_eq!(h.l4.offset, 14 + 40 + 8 + 16);
        assert_eq!((h.l4.src_port, h.l4.dst_port), (8080, 80));
    }

    #[test]
    fn ipv6_fragment_header_marks_fragment() {
        let pkt = eth_ipv6(&fd(1), &fd(2), IPPROTO_FRAGMENT, &[&[IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 7]], &[0, 1, 0, 2]);
        let h = parse(&pkt[..]);
        assert!(h.ip.fragment);
        assert!(!h.l4.present);
    }

    #[test]
    fn reads_the_dscp_of_ipv4_and_ipv6() {
        let mut pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        pkt[15] = 46 << 2 | 1; // EF, and an ECN bit that is not part of it
        assert_eq!(parse(&pkt[..]).ip.dscp, 46);
        let mut pkt = eth_ipv6(&fd(1), &fd(2), IPPROTO_UDP, &[], &[0, 1, 0, 2]);
        // Traffic class 0xb8 (EF) straddles the first two bytes: 0x6b, 0x8_.
        pkt[14] = 0x6b;
        pkt[15] = 0x80;
        assert_eq!(parse(&pkt[..]).ip.dscp, 46);
    }

    #[test]
    fn reads_icmp_echo_id() {
        let pkt = eth_ipv4_icmp([192, 0, 2, 1], [192, 0, 2, 2], 8, 0, 0x1234);
        let h = parse(&pkt[..]);
        assert!(h.l4.is_icmp);
        assert_eq!((h.l4.icmp_type, h.l4.icmp_id), (8, 0x1234));
        assert!(!h.l4.has_ports);
    }

    #[test]
    fn truncated_frames_parse_as_far_as_they_go() {
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        for len in 0..pkt.len() {
            let h = parse(&pkt[..len]);
            assert_eq!(h.has_eth, len >= 14, "len {len}");
            assert_eq!(h.ip.version == 4, len >= 34, "len {len}");
            assert_eq!(h.l4.has_ports, len >= 38, "len {len}");
        }
    }

    #[test]
    fn parsing_into_used_headers_equals_a_fresh_parse() {
        // The eBPF program reuses one Headers per CPU: what a previous packet left must not leak.
        let frames = [
            eth_ipv6(&fd(1), &fd(2), IPPROTO_UDP, &[], &[0, 1, 0, 2]),
            eth_ipv4_icmp([192, 0, 2, 1], [192, 0, 2, 2], 8, 0, 7),
            with_vlan_tags(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1, 2), &[(ETH_P_8021Q, 5)]),
            eth_frame([0xff; 6], MAC_A, ETH_P_ARP, &[0; 28]),
            eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000),
            [1u8, 2, 3].to_vec(),
        ];
        for a in &frames {
            for b in &frames {
                let mut h = parse(&a[..]);
                parse_into(&b[..], &mut h);
                assert_eq!(visible(&h), visible(&parse(&b[..])), "parsing {b:?} after {a:?}");
            }
        }
    }

    /// What readers may look at: fields behind a cleared validity flag are left out.
    fn visible(h: &Headers) -> Headers {
        let mut v = Headers::EMPTY;
        (v.has_eth, v.ether_type) = (h.has_eth, h.ether_type);
        if h.has_eth {
            (v.eth_dst, v.eth_src) = (h.eth_dst, h.eth_src);
        }
        (v.vlan_tci, v.vlans, v.l3_offset) = (h.vlan_tci, h.vlans, h.l3_offset);
        if h.ip.version != 0 {
            v.ip = h.ip;
        }
        if h.l4.present {
            (v.l4.present, v.l4.proto, v.l4.offset) = (true, h.l4.proto, h.l4.offset);
        }
        if h.l4.has_ports {
            (v.l4.has_ports, v.l4.src_port, v.l4.dst_port) = (true, h.l4.src_port, h.l4.dst_port);
        }
        if h.l4.is_icmp {
            (v.l4.is_icmp, v.l4.icmp_type, v.l4.icmp_code, v.l4.icmp_id) = (true, h.l4.icmp_type, h.l4.icmp_code, h.l4.icmp_id);
        }
        v
    }

    #[test]
    fn arp_is_not_ip() {
        let pkt = eth_frame([0xff; 6], [2, 0, 0, 0, 0, 1], ETH_P_ARP, &[0; 28]);
        let h = parse(&pkt[..]);
        assert_eq!(h.ether_type, ETH_P_ARP);
        assert_eq!(h.ip.version, 0);
    }

    /// Builders for crafted test frames, shared by the unit tests of this crate.
    pub(crate) mod build {
        extern crate std;
        use super::super::*;
        use std::vec::Vec;

        pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
        pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

        pub fn fd(n: u8) -> [u8; 16] {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = n;
            a
        }

        pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            v.extend_from_slice(&dst);
            v.extend_from_slice(&src);
            v.extend_from_slice(&ether_type.to_be_bytes());
            v.extend_from_slice(payload);
            v
        }

        pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, options: usize, l4: &[u8]) -> Vec<u8> {
            let hl = 20 + options;
            let mut v = std::vec![0u8; hl];
            v[0] = 0x40 | (hl / 4) as u8;
            let total = (hl + l4.len()) as u16;
            v[2..4].copy_from_slice(&total.to_be_bytes());
            v[8] = 64;
            v[9] = proto;
            v[12..16].copy_from_slice(&src);
            v[16..20].copy_from_slice(&dst);
            v.extend_from_slice(l4);
            v
        }

        pub fn ports(src: u16, dst: u16) -> Vec<u8> {
            let mut v = Vec::new();
            v.extend_from_slice(&src.to_be_bytes());
            v.extend_from_slice(&dst.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v
        }

        pub fn eth_ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
            eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4(src, dst, IPPROTO_UDP, 0, &ports(sport, dport)))
        }

        pub fn eth_ipv4_with_options(src: [u8; 4], dst: [u8; 4], proto: u8, options: usize, l4: &[u8]) -> Vec<u8> {
            eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4(src, dst, proto, options, l4))
        }

        pub fn icmp(ty: u8, code: u8, id: u16) -> Vec<u8> {
            let mut v = std::vec![ty, code, 0, 0];
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&[0, 1]);
            v
        }

        pub fn eth_ipv4_icmp(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, id: u16) -> Vec<u8> {
            eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4(src, dst, IPPROTO_ICMP, 0, &icmp(ty, code, id)))
        }

        pub fn ipv6(src: &[u8; 16], dst: &[u8; 16], next: u8, ext: &[&[u8]], l4: &[u8]) -> Vec<u8> {
            let mut v = std::vec![0x60, 0, 0, 0];
            let plen: usize = ext.iter().map(|e| e.len()).sum::<usize>() + l4.len();
            v.extend_from_slice(&(plen as u16).to_be_bytes());
            v.push(next);
            v.push(64);
            v.extend_from_slice(src);
            v.extend_from_slice(dst);
            for e in ext {
                v.extend_from_slice(e);
            }
            v.extend_from_slice(l4);
            v
        }

        pub fn eth_ipv6(src: &[u8; 16], dst: &[u8; 16], next: u8, ext: &[&[u8]], l4: &[u8]) -> Vec<u8> {
            eth_frame(MAC_B, MAC_A, ETH_P_IPV6, &ipv6(src, dst, next, ext, l4))
        }

        /// Inserts VLAN tags (TPID, TCI), outermost first, after the MAC addresses.
        pub fn with_vlan_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
            let mut v = frame[..12].to_vec();
            for (tpid, tci) in tags {
                v.extend_from_slice(&tpid.to_be_bytes());
                v.extend_from_slice(&tci.to_be_bytes());
            }
            v.extend_from_slice(&frame[12..]);
            v
        }
    }
}
