//! Frames the controller sends itself: ARP requests and neighbour solicitations for the link
//! monitor, gratuitous ARP and unsolicited neighbour advertisements after a failover. Pure
//! byte building.

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

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];

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
