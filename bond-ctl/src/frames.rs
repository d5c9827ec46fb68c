//! Frames the controller sends itself: ARP requests and neighbour solicitations for the link
//! monitor, gratuitous ARP and unsolicited neighbour advertisements after a failover, IGMP and
//! MLD membership reports (`resend_igmp`, see [`crate::mcast`]). Pure byte building (no crate
//! builds IGMPv3 and MLDv2 reports; these few headers are written out as the RFCs draw them).

use std::net::{Ipv4Addr, Ipv6Addr};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet frames are at least 60 bytes before the FCS.
const MIN_FRAME: usize = 60;

fn ethernet(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

fn arp(op: u16, mac: [u8; 6], sender: Ipv4Addr, target_mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let dst = if target_mac == [0; 6] { BROADCAST } else { target_mac };
    let mut f = ethernet(dst, mac, ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target.octets());
    pad(f)
}

/// "Who has `target`? Tell `sender`" (the ARP monitor's probe).
pub fn arp_request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp(1, mac, sender, [0; 6], target)
}

/// A gratuitous ARP announcing that `addr` is at `mac` (switches and neighbours relearn it).
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    arp(1, mac, addr, [0; 6], addr)
}

/// "`sender` is at `mac`", sent to `target` alone (balance-alb tells each peer which member's
/// address to send to).
pub fn arp_reply(mac: [u8; 6], sender: Ipv4Addr, target_mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    arp(2, mac, sender, target_mac, target)
}

/// EtherType of learning packets (as bonding sends them: ETH_P_LOOPBACK).
pub const ETH_P_LOOPBACK: u16 = 0x9000;

/// A learning packet: a frame from `mac` to itself, so that switches learn the port behind
/// `mac` and nobody else receives it.
pub fn learning_packet(mac: [u8; 6]) -> Vec<u8> {
    pad(ethernet(mac, mac, ETH_P_LOOPBACK))
}

/// The Ethernet multicast address of an IPv6 multicast address.
fn ipv6_multicast_mac(a: &Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast address of `a`.
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The ICMPv6 checksum of `msg` between `src` and `dst`.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn icmpv6_frame(mac: [u8; 6], src: &Ipv6Addr, dst: &Ipv6Addr, mut msg: Vec<u8>) -> Vec<u8> {
    let sum = icmpv6_checksum(src, dst, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(ipv6_multicast_mac(dst), mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]); // ICMPv6, hop limit 255 as neighbour discovery requires
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&msg);
    pad(f)
}

/// A neighbour solicitation for `target` from `src` (the NS monitor's probe).
pub fn neighbour_solicitation(mac: [u8; 6], src: &Ipv6Addr, target: &Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&target.octets());
    msg.extend_from_slice(&[1, 1]); // source link-layer address option
    msg.extend_from_slice(&mac);
    icmpv6_frame(mac, src, &solicited_node(target), msg)
}

/// An unsolicited neighbour advertisement (override) that `addr` is at `mac`, to all nodes.
pub fn unsolicited_na(mac: [u8; 6], addr: &Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![136, 0, 0, 0, 0x20, 0, 0, 0]; // override flag
    msg.extend_from_slice(&addr.octets());
    msg.extend_from_slice(&[2, 1]); // target link-layer address option
    msg.extend_from_slice(&mac);
    icmpv6_frame(mac, addr, &Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), msg)
}

/// The Internet checksum (RFC 1071) of `data`.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 frame carrying IGMP `msg` to `dst`: TTL 1, the Router Alert option, DSCP CS6, as
/// Linux sends its reports.
fn igmp_frame(mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, mut msg: Vec<u8>) -> Vec<u8> {
    let sum = internet_checksum(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    let o = dst.octets();
    let mut f = ethernet([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]], mac, 0x0800);
    let total = (24 + msg.len()) as u16;
    let mut ip = vec![0x46, 0xc0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]); // id 0, DF, TTL 1, IGMP, checksum
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&o);
    ip.extend_from_slice(&[0x94, 0x04, 0, 0]); // Router Alert
    let sum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&msg);
    pad(f)
}

/// A version 3 report of message type `kind` (IGMPv3 0x22, MLDv2 143): type, reserved,
/// checksum (0, filled in later), reserved, the record count, then one record per group of the
/// group's current state, MODE_IS_INCLUDE (1) or MODE_IS_EXCLUDE (2), no auxiliary data.
fn group_records<A>(kind: u8, groups: &[crate::mcast::Group<A>], octets: impl Fn(&A) -> Vec<u8>) -> Vec<u8> {
    let mut msg = vec![kind, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in groups {
        msg.extend_from_slice(&[if g.include { 1 } else { 2 }, 0]);
        msg.extend_from_slice(&(g.sources.len() as u16).to_be_bytes());
        msg.extend_from_slice(&octets(&g.addr));
        for s in &g.sources {
            msg.extend_from_slice(&octets(s));
        }
    }
    msg
}

/// An IGMPv3 membership report (RFC 3376) of the current state of `groups`, to 224.0.0.22.
pub fn igmpv3_report(mac: [u8; 6], src: Ipv4Addr, groups: &[crate::mcast::Group<Ipv4Addr>]) -> Vec<u8> {
    let msg = group_records(0x22, groups, |a| a.octets().to_vec());
    igmp_frame(mac, src, Ipv4Addr::new(224, 0, 0, 22), msg)
}

/// An IGMPv1 or v2 membership report for `group`, to the group.
pub fn igmp_report(mac: [u8; 6], src: Ipv4Addr, group: Ipv4Addr, version: u8) -> Vec<u8> {
    let mut msg = vec![if version == 1 { 0x12 } else { 0x16 }, 0, 0, 0];
    msg.extend_from_slice(&group.octets());
    igmp_frame(mac, src, group, msg)
}

/// An IPv6 frame carrying MLD `msg` to `dst`: hop limit 1, a Hop-by-Hop header with the Router
/// Alert option (MLD), as RFC 3810 asks.
fn mld_frame(mac: [u8; 6], src: &Ipv6Addr, dst: &Ipv6Addr, mut msg: Vec<u8>) -> Vec<u8> {
    let sum = icmpv6_checksum(src, dst, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(ipv6_multicast_mac(dst), mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1]); // Hop-by-Hop next, hop limit 1
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]); // ICMPv6 next; Router Alert (MLD); PadN
    f.extend_from_slice(&msg);
    pad(f)
}

/// An MLDv2 report (RFC 3810) of the current state of `groups`, to ff02::16.
pub fn mldv2_report(mac: [u8; 6], src: &Ipv6Addr, groups: &[crate::mcast::Group<Ipv6Addr>]) -> Vec<u8> {
    let msg = group_records(143, groups, |a| a.octets().to_vec());
    mld_frame(mac, src, &Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16), msg)
}

/// An MLDv1 report (RFC 2710) for `group`, to the group.
pub fn mldv1_report(mac: [u8; 6], src: &Ipv6Addr, group: &Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![131, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&group.octets());
    mld_frame(mac, src, group, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];

    /// Byte for byte what Linux 6.18 sent for these joins (captured in the lab): IGMPv3
    /// `232.1.1.1 allow {198.51.100.1}, 239.1.1.1 to_ex {}` from 192.0.2.61 differs from ours
    /// only in the record types (a change there, the current state here) and the checksums.
    #[test]
    fn igmpv3_report_as_linux_sends_it() {
        use crate::mcast::Group;
        let groups = [
            Group { addr: Ipv4Addr::new(232, 1, 1, 1), include: true, sources: vec![Ipv4Addr::new(198, 51, 100, 1)] },
            Group { addr: Ipv4Addr::new(239, 1, 1, 1), include: false, sources: vec![] },
        ];
        let f = igmpv3_report([2, 0, 0, 0, 6, 1], Ipv4Addr::new(192, 0, 2, 61), &groups);
        let linux_head = [0x01, 0x00, 0x5e, 0, 0, 0x16, 2, 0, 0, 0, 6, 1, 0x08, 0x00, 0x46, 0xc0, 0x00, 0x34, 0, 0, 0x40, 0, 1, 2];
        assert_eq!(f[..24], linux_head);
        assert_eq!(f[24..26], [0x41, 0xb0], "the IP header checksum Linux computed");
        assert_eq!(f[26..38], [192, 0, 2, 61, 224, 0, 0, 22, 0x94, 0x04, 0, 0]);
        assert_eq!(f[38], 0x22);
        assert_eq!(internet_checksum(&f[38..66]), 0, "the IGMP checksum");
        assert_eq!(f[44..46], [0, 2], "two records");
        assert_eq!(f[46..58], [1, 0, 0, 1, 232, 1, 1, 1, 198, 51, 100, 1], "IS_IN {{198.51.100.1}}");
        assert_eq!(f[58..66], [2, 0, 0, 0, 239, 1, 1, 1], "IS_EX {{}}");
    }

    #[test]
    fn mldv2_report_has_the_router_alert_and_a_good_checksum() {
        use crate::mcast::Group;
        let src: Ipv6Addr = "fe80::ff:fe00:601".parse().unwrap();
        let g = Group { addr: "ff0e::1:1".parse::<Ipv6Addr>().unwrap(), include: false, sources: vec![] };
        let f = mldv2_report([2, 0, 0, 0, 6, 1], &src, &[g]);
        assert_eq!(f[..6], [0x33, 0x33, 0, 0, 0, 0x16]);
        assert_eq!((f[20], f[21]), (0, 1), "Hop-by-Hop, hop limit 1");
        assert_eq!(f[54..62], [0x3a, 0, 5, 2, 0, 0, 1, 0], "Router Alert for MLD, as Linux writes it");
        let msg = f[62..62 + 28].to_vec();
        assert_eq!((msg[0], msg[6], msg[7]), (143, 0, 1));
        let mut zeroed = msg.clone();
        zeroed[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(icmpv6_checksum(&src, &"ff02::16".parse().unwrap(), &zeroed), u16::from_be_bytes([msg[2], msg[3]]));
        let v1 = mldv1_report(MAC, &src, &"ff0e::1:1".parse().unwrap());
        assert_eq!((v1[..6].to_vec(), v1[62]), (vec![0x33, 0x33, 0, 1, 0, 1], 131));
        let v2 = igmp_report(MAC, Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(239, 129, 2, 3), 2);
        assert_eq!((v2[..6].to_vec(), v2[38]), (vec![1, 0, 0x5e, 1, 2, 3], 0x16));
    }

    #[test]
    fn arp_request_layout() {
        let f = arp_request(MAC, "192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap());
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[192, 0, 2, 1]);
        assert_eq!(&f[38..42], &[192, 0, 2, 9]);
        let g = gratuitous_arp(MAC, "198.51.100.7".parse().unwrap());
        assert_eq!(&g[28..32], &g[38..42], "sender and target are the announced address");
    }

    #[test]
    fn arp_reply_goes_to_its_target_alone() {
        let f = arp_reply([2, 0, 0, 0, 0, 9], Ipv4Addr::new(192, 0, 2, 1), [2, 0, 0, 0, 0, 7], Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 7]);
        assert_eq!(&f[20..22], &[0, 2], "op reply");
        assert_eq!(&f[22..28], &[2, 0, 0, 0, 0, 9], "sender hardware address");
        assert_eq!(&f[38..42], &[192, 0, 2, 7]);
        assert_eq!(learning_packet([2, 0, 0, 0, 0, 9])[..14], [2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 9, 0x90, 0]);
    }

    fn checksum_ok(f: &[u8]) -> bool {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
        let mut msg = f[54..54 + len].to_vec();
        let stored = u16::from_be_bytes([msg[2], msg[3]]);
        msg[2] = 0;
        msg[3] = 0;
        icmpv6_checksum(&src, &dst, &msg) == stored
    }

    #[test]
    fn neighbour_solicitation_goes_to_the_solicited_node_group() {
        let target: Ipv6Addr = "fd00::1:2:3".parse().unwrap();
        let f = neighbour_solicitation(MAC, &"fd00::9".parse().unwrap(), &target);
        assert_eq!(solicited_node(&target), "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
        assert_eq!((f[20], f[21], f[54]), (58, 255, 135));
        assert_eq!(&f[62..78], &target.octets());
        assert!(checksum_ok(&f));
    }

    #[test]
    fn unsolicited_na_overrides_to_all_nodes() {
        let addr: Ipv6Addr = "fd00::7".parse().unwrap();
        let f = unsolicited_na(MAC, &addr);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!((f[54], f[58]), (136, 0x20));
        assert_eq!(&f[80..86], &MAC, "target link-layer address option");
        assert!(checksum_ok(&f));
    }

    #[test]
    fn checksum_of_a_known_message() {
        // An all-zero 8-byte message between :: and ::: only the pseudo-header's length (8) and
        // next header (58) contribute: !(8 + 58) = 0xffbd.
        assert_eq!(icmpv6_checksum(&Ipv6Addr::UNSPECIFIED, &Ipv6Addr::UNSPECIFIED, &[0; 8]), 0xffbd);
    }
}
