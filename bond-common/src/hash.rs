//! Transmit hashes of balance-xor, computed as Linux bonding computes them
//! (`drivers/net/bonding/bond_main.c`: `__bond_xmit_hash` and helpers), plus ZeroTier's.
//!
//! The kernel reads header fields in network byte order into host integers with plain memory
//! loads (`(__force u32)` of a `__be32`), so on little-endian machines the values below are the
//! header bytes read little-endian. The eBPF target and x86 are both little-endian; we spell the
//! byte order out so the host unit tests compute the same numbers.
//!
//! VLAN tags: the kernel normally sees a bond's VLAN tag offloaded (not in the packet data), so
//! its hashes look at the headers after the tag. We do the same for tags in the data: layer2 uses
//! the EtherType after the tags and vlan+srcmac uses the outer tag's TCI.

use crate::config::XmitHash;
use crate::packet::*;

/// Layer-3/4 fields as the kernel's flow dissection leaves them for the hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KernelFlow {
    src: u32,
    dst: u32,
    /// The 4 port bytes as a little-endian load (0 when there are none).
    ports: u32,
    /// ICMP type | code << 8 | id << 16 (`struct flow_dissector_key_icmp` as a u32 load).
    icmp: u32,
}

impl KernelFlow {
    #[inline(always)]
    fn icmp_id(&self) -> u16 {
        (self.icmp >> 16) as u16
    }
}

#[inline(always)]
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The kernel's `ipv6_addr_hash`: the four 32-bit words XORed.
#[inline(always)]
fn ipv6_addr_hash(a: &[u8]) -> u32 {
    le32(&a[0..4]) ^ le32(&a[4..8]) ^ le32(&a[8..12]) ^ le32(&a[12..16])
}

/// The kernel's `proto_ports_offset`: where the 4 "port" bytes are, per protocol.
#[inline(always)]
fn ports_offset(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_DCCP | IPPROTO_ESP | IPPROTO_SCTP | IPPROTO_UDPLITE => Some(0),
        IPPROTO_AH => Some(4),
        _ => None,
    }
}

/// The kernel's `__skb_flow_get_ports`.
#[inline(always)]
fn kernel_ports<P: PacketBytes + ?Sized>(p: &P, proto: u8, thoff: usize) -> u32 {
    match ports_offset(proto) {
        Some(poff) => p.bytes::<4>(thoff + poff).map(|b| le32(&b)).unwrap_or(0),
        None => 0,
    }
}

/// The kernel's `skb_flow_get_icmp_tci` packed as a u32 load of `flow_dissector_key_icmp`.
#[inline(always)]
fn icmp_key<P: PacketBytes + ?Sized>(p: &P, thoff: usize) -> u32 {
    let Some(b) = p.bytes::<8>(thoff) else {
        return 0;
    };
    let id = if icmp_has_id(b[0]) {
        // 0 means "no id", so an id of 0 is recorded as 1.
        match u16::from_be_bytes([b[4], b[5]]) {
            0 => 1,
            id => id,
        }
    } else {
        0
    };
    u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(id) << 16
}

#[inline(always)]
fn icmp_is_err(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

#[inline(always)]
fn icmpv6_is_err(t: u8) -> bool {
    matches!(t, 1..=4)
}

/// The kernel's `bond_eth_hash`.
#[inline(always)]
pub fn eth_hash(h: &Headers) -> u32 {
    if !h.has_eth {
        return 0;
    }
    u32::from(h.eth_dst[5] ^ h.eth_src[5]) ^ u32::from(h.ether_type)
}

/// The kernel's `bond_vlan_srcmac_hash`.
#[inline(always)]
pub fn vlan_srcmac_hash(h: &Headers) -> u32 {
    if !h.has_eth {
        return 0;
    }
    let s = h.eth_src;
    let vendor = u32::from(s[0]) << 16 | u32::from(s[1]) << 8 | u32::from(s[2]);
    let dev = u32::from(s[3]) << 16 | u32::from(s[4]) << 8 | u32::from(s[5]);
    u32::from(h.vlan_tci) ^ vendor ^ dev
}

/// One IP header as the kernel's dissection sees it.
#[derive(Clone, Copy)]
struct IpFields {
    /// Addresses as the hash uses them (IPv4 raw, IPv6 `ipv6_addr_hash`).
    src: u32,
    dst: u32,
    /// Header length as written (IPv4 IHL x 4, unchecked by `bond_flow_ip`).
    header_len: usize,
    /// IPv4 protocol or IPv6 Next Header.
    proto: u8,
    /// IPv4 fragment (MF or offset): the kernel keeps no transport protocol for it.
    fragment: bool,
}

impl IpFields {
    /// The outer header, already read by the parser.
    #[inline(always)]
    fn outer(h: &Headers) -> IpFields {
        let (src, dst) = if h.ip.version == 4 {
            (le32(&h.ip.src[..4]), le32(&h.ip.dst[..4]))
        } else {
            (ipv6_addr_hash(&h.ip.src), ipv6_addr_hash(&h.ip.dst))
        };
        IpFields {
            src,
            dst,
            header_len: usize::from(h.ip.header_len),
            proto: h.ip.first_proto,
            fragment: h.ip.version == 4 && h.ip.fragment,
        }
    }

    /// A header of family `ether_type` at `off` (inside an ICMP error or a tunnel).
    #[inline(always)]
    fn at<P: PacketBytes + ?Sized>(p: &P, ether_type: u16, off: usize) -> Option<IpFields> {
        if ether_type == ETH_P_IP {
            let b = p.bytes::<20>(off)?;
            Some(IpFields {
                src: le32(&b[12..16]),
                dst: le32(&b[16..20]),
                header_len: usize::from(b[0] & 0x0f) * 4,
                proto: b[9],
                fragment: u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0,
            })
        } else if ether_type == ETH_P_IPV6 {
            let fixed = p.bytes::<8>(off)?;
            let src = ipv6_addr_hash(&p.bytes::<16>(off + 8)?);
            let dst = ipv6_addr_hash(&p.bytes::<16>(off + 24)?);
            Some(IpFields { src, dst, header_len: 40, proto: fixed[6], fragment: false })
        } else {
            None
        }
    }
}

/// The kernel's `bond_flow_dissect` for the non-encap policies (layer2+3, layer3+4): the outer
/// IP header and its ports (with `bond_flow_ip`'s rules: no transport protocol for IPv4
/// fragments, IPv6 extension headers not skipped), and for ICMP errors the addresses and ports
/// of the quoted packet.
#[inline(always)]
fn bond_flow_dissect<P: PacketBytes + ?Sized>(p: &P, h: &Headers, l34: bool) -> Option<KernelFlow> {
    if !h.has_eth || h.ip.version == 0 {
        return None;
    }
    let outer = IpFields::outer(h);
    let mut f = KernelFlow { src: outer.src, dst: outer.dst, ports: 0, icmp: 0 };
    let mut nhoff = usize::from(h.l3_offset) + outer.header_len;
    let mut ip_proto = if outer.fragment { None } else { Some(outer.proto) };
    if let (true, Some(proto)) = (l34, ip_proto) {
        f.ports = kernel_ports(p, proto, nhoff);
    }
    let err = match ip_proto {
        Some(IPPROTO_ICMP) => {
            f.icmp = icmp_key(p, nhoff);
            icmp_is_err(f.icmp as u8)
        }
        Some(IPPROTO_ICMPV6) => {
            f.icmp = icmp_key(p, nhoff);
            icmpv6_is_err(f.icmp as u8)
        }
        _ => false,
    };
    if err {
        // The quoted header follows the 8-byte ICMP header; it is read as the outer family.
        nhoff += 8;
        let inner = IpFields::at(p, h.ether_type, nhoff)?;
        f.src = inner.src;
        f.dst = inner.dst;
        nhoff += inner.header_len;
        if !inner.fragment {
            ip_proto = Some(inner.proto);
        }
        if let (true, Some(proto)) = (l34, ip_proto) {
            f.ports = kernel_ports(p, proto, nhoff);
        }
    }
    Some(f)
}

/// Network headers followed by the encap policies (the outer one and two encapsulations).
const MAX_DISSECT_HEADERS: usize = 3;

// GRE flags: checksum 0x8000, routing 0x4000, key 0x2000, sequence 0x1000, version 0x0007.
const GRE_ROUTING: u16 = 0x4000;
const GRE_VERSION: u16 = 0x0007;

/// Next step of the dissector after an IP protocol.
enum Next {
    /// Done: the flow is complete (ports/ICMP key set as far as they apply).
    Done,
    /// An encapsulated network header of this EtherType follows at `nhoff`.
    Again(u16),
    /// The packet is malformed where the dissector needs it: no flow.
    Bad,
}

/// EtherTypes the kernel's dissector accepts without finding addresses (ARP, RARP, MPLS, TIPC,
/// FCoE, PTP, CFM): the flow is "found" but empty.
#[inline(always)]
fn empty_flow_ether_type(t: u16) -> bool {
    matches!(t, ETH_P_ARP | 0x8035 | ETH_P_MPLS_UC | 0x8848 | 0x88ca | 0x8906 | 0x88f7 | 0x8902)
}

const ETH_P_MPLS_UC: u16 = 0x8847;
const IPPROTO_MPLS: u8 = 137;

/// The kernel's `__skb_flow_dissect` with the bonding key set, for encap2+3 and encap3+4: looks
/// through IPv6 extension headers, IP-in-IP, IPv6-in-IP, GRE (including Ethernet over GRE) and
/// VLAN headers inside tunnels. (PPPoE, HSR and BATMAN are not followed.)
#[inline(always)]
fn encap_flow_dissect<P: PacketBytes + ?Sized>(p: &P, h: &Headers) -> Option<KernelFlow> {
    if !h.has_eth {
        return None;
    }
    let mut f = KernelFlow::default();
    let mut nhoff = usize::from(h.l3_offset);
    let mut proto = h.ether_type;
    for _ in 0..MAX_DISSECT_HEADERS {
        nhoff = loop_offset(nhoff);
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = p.be16_at(nhoff + 2)?;
            nhoff += 4;
            continue;
        }
        if empty_flow_ether_type(proto) {
            return Some(f);
        }
        let ip = IpFields::at(p, proto, nhoff)?;
        if proto == ETH_P_IP && ip.header_len < 20 {
            return None;
        }
        f.src = ip.src;
        f.dst = ip.dst;
        nhoff += ip.header_len;
        if ip.fragment {
            // Addresses only: not even the first fragment's ports are parsed.
            return Some(f);
        }
        match dissect_ip_proto(p, proto, ip.proto, &mut nhoff, &mut f) {
            Next::Done => return Some(f),
            Next::Bad => return None,
            Next::Again(t) => proto = t,
        }
    }
    Some(f)
}

#[inline(always)]
fn dissect_ip_proto<P: PacketBytes + ?Sized>(p: &P, l3: u16, mut ip_proto: u8, nhoff: &mut usize, f: &mut KernelFlow) -> Next {
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        *nhoff = loop_offset(*nhoff);
        match ip_proto {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS if l3 == ETH_P_IPV6 => {
                let Some(e) = p.bytes::<2>(*nhoff) else {
                    return Next::Bad;
                };
                ip_proto = e[0];
                *nhoff += (usize::from(e[1]) + 1) * 8;
            }
            IPPROTO_FRAGMENT if l3 == ETH_P_IPV6 => {
                return if p.bytes::<8>(*nhoff).is_some() { Next::Done } else { Next::Bad };
            }
            _ => break,
        }
    }
    match ip_proto {
        IPPROTO_IPIP => Next::Again(ETH_P_IP),
        IPPROTO_IPV6 => Next::Again(ETH_P_IPV6),
        // MPLS ends the dissection with the outer addresses.
        IPPROTO_MPLS => Next::Done,
        IPPROTO_GRE => dissect_gre(p, nhoff),
        _ => {
            f.ports = kernel_ports(p, ip_proto, *nhoff);
            if ip_proto == IPPROTO_ICMP || ip_proto == IPPROTO_ICMPV6 {
                f.icmp = icmp_key(p, *nhoff);
            }
            Next::Done
        }
    }
}

/// The kernel's `__skb_flow_dissect_gre` (version 0; PPTP and routed GRE end the dissection).
#[inline(always)]
fn dissect_gre<P: PacketBytes + ?Sized>(p: &P, nhoff: &mut usize) -> Next {
    let Some(b) = p.bytes::<4>(*nhoff) else {
        return Next::Bad;
    };
    let flags = u16::from_be_bytes([b[0], b[1]]);
    let mut proto = u16::from_be_bytes([b[2], b[3]]);
    if flags & GRE_ROUTING != 0 || flags & GRE_VERSION != 0 {
        return Next::Done;
    }
    // 4 bytes, plus 4 for each of checksum, key and sequence number present. Computed without
    // branches: each branch would double the paths the eBPF verifier has to walk.
    // (Shifts, not comparisons: BPF has no set-on-condition, so a bool becomes a branch.)
    let present = usize::from((flags >> 15) & 1) + usize::from((flags >> 13) & 1) + usize::from((flags >> 12) & 1);
    let mut offset = 4 + 4 * present;
    if proto == ETH_P_TEB {
        let Some(t) = p.be16_at(*nhoff + offset + 12) else {
            return Next::Bad;
        };
        proto = t;
        offset += ETH_HLEN;
    }
    *nhoff += offset;
    Next::Again(proto)
}

/// The kernel's `bond_ip_hash`.
#[inline(always)]
fn ip_hash(hash: u32, f: &KernelFlow, drop_low_bit: bool) -> u32 {
    let mut h = hash ^ f.dst ^ f.src;
    h ^= h >> 16;
    h ^= h >> 8;
    if drop_low_bit { h >> 1 } else { h }
}

/// The kernel's `__bond_xmit_hash` for `policy`. For [`XmitHash::ZeroTier`] see [`zerotier_hash`].
#[inline(always)]
pub fn kernel_hash<P: PacketBytes + ?Sized>(policy: XmitHash, p: &P, h: &Headers) -> u32 {
    let (flow, l23, l34) = match policy {
        XmitHash::VlanSrcMac => return vlan_srcmac_hash(h),
        XmitHash::Layer2 | XmitHash::ZeroTier => return eth_hash(h),
        XmitHash::Layer23 => (bond_flow_dissect(p, h, false), true, false),
        XmitHash::Layer34 => (bond_flow_dissect(p, h, true), false, true),
        XmitHash::Encap23 => (encap_flow_dissect(p, h), true, false),
        XmitHash::Encap34 => (encap_flow_dissect(p, h), false, true),
    };
    let Some(f) = flow else {
        return eth_hash(h);
    };
    let base = if l23 {
        eth_hash(h)
    } else if f.icmp_id() != 0 {
        f.icmp
    } else {
        f.ports
    };
    ip_hash(base, &f, l34)
}

/// ZeroTier's flow id `src_port ^ dst_port ^ proto` for TCP, UDP and SCTP, mixed (see below);
/// `None` for other traffic, which ZeroTier sends on a random link.
///
/// ZeroTier takes the bare id modulo the number of links. Its low bit is the ports' parity, and
/// Linux connects from even ports: over two links every flow between one server port and Linux
/// clients would take the same link (over four, two of them). Mixed first, every bit of the
/// ports and protocol counts in every bit of the hash, so flows spread whatever the member count.
#[inline(always)]
pub fn zerotier_hash(h: &Headers) -> Option<u32> {
    match h.l4.proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP if h.l4.has_ports => {
            Some(mix32(u32::from(h.l4.src_port ^ h.l4.dst_port) ^ u32::from(h.l4.proto)))
        }
        _ => None,
    }
}

/// A 32-bit mix (murmur3's finalizer): every input bit moves every output bit.
#[inline(always)]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^ (x >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::build::*;

    fn hash(policy: XmitHash, pkt: &[u8]) -> u32 {
        kernel_hash(policy, pkt, &parse(pkt))
    }

    // Expected values are worked out by hand from the kernel's formulas, step by step, so a
    // change in the implementation cannot silently change them.

    #[test]
    fn layer2_is_last_mac_bytes_and_ethertype() {
        // dst ..0b, src ..0a: 0x0b ^ 0x0a ^ 0x0800 = 0x0801
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        assert_eq!(hash(XmitHash::Layer2, &pkt), 0x0801);
    }

    #[test]
    fn layer23_folds_addresses() {
        // eth 0x0801; saddr c0 00 02 01 -> le 0x010200c0; daddr -> 0x020200c0.
        // 0x0801 ^ 0x010200c0 ^ 0x020200c0 = 0x03000801; ^>>16: 0x03000801 ^ 0x0300 = 0x03000b01;
        // ^>>8: 0x03000b01 ^ 0x0003000b = 0x03030b0a
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        assert_eq!(hash(XmitHash::Layer23, &pkt), 0x0303_0b0a);
    }

    #[test]
    fn layer34_uses_ports_and_drops_low_bit() {
        // ports 1000 (03e8), 2000 (07d0): bytes 03 e8 07 d0 -> le 0xd007e803.
        // ^ saddr ^ daddr (0x03000000 net) = 0xd307e803; ^>>16 = 0xd307e803 ^ 0xd307 = 0xd3073b04;
        // ^>>8 = 0xd3073b04 ^ 0x00d3073b = 0xd3d43c3f; >>1 = 0x69ea1e1f
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        assert_eq!(hash(XmitHash::Layer34, &pkt), 0x69ea_1e1f);
    }

    #[test]
    fn layer34_fragment_hashes_addresses_only() {
        let mut pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        pkt[14 + 6] = 0x20;
        // 0x03000000; ^>>16 -> 0x03000300; ^>>8 -> 0x03030303; >>1 -> 0x01818181
        assert_eq!(hash(XmitHash::Layer34, &pkt), 0x0181_8181);
    }

    #[test]
    fn layer34_icmp_echo_uses_type_code_id() {
        // echo request type 8, id 0x1234: key 0x12340008. ^ addresses (0x03000000) = 0x11340008;
        // ^>>16 = 0x1134113c; ^>>8 = 0x1125252d; >>1 = 0x08929296.
        let pkt = eth_ipv4_icmp([192, 0, 2, 1], [192, 0, 2, 2], 8, 0, 0x1234);
        let mut h = 0x1234_0008u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Layer34, &pkt), h >> 1);
        assert_eq!(h >> 1, 0x0892_9296);
    }

    #[test]
    fn layer34_icmp_error_uses_quoted_packet() {
        // Port unreachable quoting a UDP packet 192.0.2.2:2000 -> 192.0.2.1:1000.
        let quoted = ipv4([192, 0, 2, 2], [192, 0, 2, 1], IPPROTO_UDP, 0, &ports(2000, 1000));
        let mut l4 = icmp(3, 3, 0);
        l4.extend_from_slice(&quoted);
        let pkt = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([198, 51, 100, 9], [192, 0, 2, 2], IPPROTO_ICMP, 0, &l4));
        // Inner addresses xor to 0x03000000 as before; ports bytes 07 d0 03 e8 -> 0xe803d007.
        let mut h = 0xe803_d007u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Layer34, &pkt), h >> 1);
    }

    #[test]
    fn layer34_ipv6_with_extension_header_has_no_ports() {
        let pkt = eth_ipv6(&fd(1), &fd(2), IPPROTO_DSTOPTS, &[&[IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 0]], &ports(1000, 2000));
        // ipv6_addr_hash(fd00::1) = 0x000000fd ^ 0x01000000; fd00::2 -> 0x000000fd ^ 0x02000000.
        // xor = 0x03000000 -> 0x01818181 as in the fragment case.
        assert_eq!(hash(XmitHash::Layer34, &pkt), 0x0181_8181);
        // Encap3+4 uses the kernel's full dissector, which skips extension headers.
        let mut h = 0xd007_e803u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Encap34, &pkt), h >> 1);
    }

    #[test]
    fn non_ip_falls_back_to_layer2() {
        let pkt = eth_frame([0xff; 6], MAC_A, ETH_P_ARP, &[0; 28]);
        let l2 = 0xffu32 ^ 0x0a ^ 0x0806;
        for p in [XmitHash::Layer2, XmitHash::Layer23, XmitHash::Layer34] {
            assert_eq!(hash(p, &pkt), l2, "{p:?}");
        }
        // The full dissector "finds" an empty flow for ARP: encap3+4 hashes it to 0 and
        // encap2+3 folds the layer-2 hash.
        assert_eq!(hash(XmitHash::Encap34, &pkt), 0);
        let folded = (l2 ^ (l2 >> 16)) ^ ((l2 ^ (l2 >> 16)) >> 8);
        assert_eq!(hash(XmitHash::Encap23, &pkt), folded);
        // An EtherType the dissector does not know: layer 2 for every policy.
        let other = eth_frame([0xff; 6], MAC_A, 0x88b6, &[0; 28]);
        assert_eq!(hash(XmitHash::Encap34, &other), 0xffu32 ^ 0x0a ^ 0x88b6);
    }

    #[test]
    fn encap_walks_vlan_inside_ethernet_over_gre() {
        let inner = with_vlan_tags(
            &eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 0, &ports(1000, 2000))),
            &[(ETH_P_8021Q, 7)],
        );
        let mut gre = std::vec![0, 0, 0x65, 0x58];
        gre.extend_from_slice(&inner);
        let pkt = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPPROTO_GRE, 0, &gre));
        let mut h = 0xd007_e803u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Encap34, &pkt), h >> 1);
    }

    #[test]
    fn encap_hashes_inner_headers_of_ipip() {
        let inner = ipv4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 0, &ports(1000, 2000));
        let pkt = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPPROTO_IPIP, 0, &inner));
        // Inner saddr 0a 00 00 01 / daddr 0a 00 00 02 xor to 0x03000000, as the outer ones do;
        // the difference to layer3+4 is that the ports are the inner ones.
        let mut h = 0xd007_e803u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Encap34, &pkt), h >> 1);
        // layer3+4 sees protocol 4, which has no ports: addresses only.
        assert_eq!(hash(XmitHash::Layer34, &pkt), 0x0181_8181);
    }

    #[test]
    fn encap_looks_through_ethernet_over_gre() {
        let inner = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 0, &ports(1000, 2000)));
        let mut gre = std::vec![0x20, 0, 0x65, 0x58, 0, 0, 0, 42]; // key present
        gre.extend_from_slice(&inner);
        let pkt = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPPROTO_GRE, 0, &gre));
        let ipip_inner = ipv4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 0, &ports(1000, 2000));
        let ipip = eth_frame(MAC_B, MAC_A, ETH_P_IP, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPPROTO_IPIP, 0, &ipip_inner));
        assert_eq!(hash(XmitHash::Encap34, &pkt), hash(XmitHash::Encap34, &ipip));
        // encap2+3: outer Ethernet hash with inner addresses.
        let mut h = 0x0801u32 ^ 0x0300_0000;
        h ^= h >> 16;
        h ^= h >> 8;
        assert_eq!(hash(XmitHash::Encap23, &pkt), h);
    }

    #[test]
    fn vlan_srcmac_uses_tci_and_source_mac() {
        let pkt = with_vlan_tags(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1, 2), &[(ETH_P_8021Q, 0x0064)]);
        // src 02:00:00:00:00:0a: vendor 0x020000, device 0x00000a; ^ 0x64
        assert_eq!(hash(XmitHash::VlanSrcMac, &pkt), 0x0002_0000 ^ 0x0a ^ 0x64);
    }

    #[test]
    fn zerotier_hash_is_ports_and_proto_mixed() {
        let h = parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000)[..]);
        assert_eq!(zerotier_hash(&h), Some(mix32((1000 ^ 2000) ^ 17)));
        let icmp = parse(&eth_ipv4_icmp([192, 0, 2, 1], [192, 0, 2, 2], 8, 0, 1)[..]);
        assert_eq!(zerotier_hash(&icmp), None);
    }

    #[test]
    fn zerotier_flows_from_even_client_ports_spread_over_two_and_four_members() {
        // Linux clients connect from even ports: 64 flows to one server port (443, odd).
        let hashes: std::vec::Vec<u32> = (0..64u16)
            .map(|i| zerotier_hash(&parse(&eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 40_000 + 2 * i, 443)[..])).unwrap())
            .collect();
        for members in [2u32, 4] {
            let mut per = [0u32; 4];
            for h in &hashes {
                per[(h % members) as usize] += 1;
            }
            let fair = 64 / members;
            assert!(per[..members as usize].iter().all(|&n| n >= fair / 2), "{members} members: {per:?}");
        }
        // ZeroTier's bare id puts every one of them on the same member of two.
        assert!((0..64u32).all(|i| ((40_000 + 2 * i) ^ 443 ^ 17) % 2 == 0));
    }

    #[test]
    fn layer34_over_three_members_alternates_consecutive_even_ports_between_two() {
        // What Benchmarks says of bonding.ko's formula and Linux's even source ports: with the
        // lowest bit dropped, ports two apart still differ by a step that takes turns between
        // two residues of three.
        let members: std::collections::BTreeSet<u32> =
            (0..16u16).map(|i| hash(XmitHash::Layer34, &eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 40_000 + 2 * i, 9100)) % 3).collect();
        assert_eq!(members.len(), 2, "{members:?}");
    }

    #[test]
    fn truncated_frames_hash_without_panicking() {
        let pkt = eth_ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], 1000, 2000);
        for len in 0..pkt.len() {
            for &p in XmitHash::ALL {
                let _ = hash(p, &pkt[..len]);
            }
        }
        assert_eq!(hash(XmitHash::Layer34, &pkt[..10]), 0);
    }

    extern crate std;
}
