//! The bond device's IPv4 neighbours, from the kernel's neighbour table: an `RTM_GETNEIGH` dump
//! on a netlink socket of its own, synchronous (balance-alb's round runs in the daemon's tick).
//!
//! The I/O is [`ipv4_neighbours`]; what is kept of the kernel's answer is decided by the pure
//! [`parse_dump`], tested on constructed messages.

use std::{io, net::Ipv4Addr};

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};
use rtnetlink::{
    packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload},
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

use crate::alb::Neighbour;

/// The IPv4 neighbours of interface `device` (in the calling thread's network namespace) that
/// have a link-layer address the kernel believes in: the entries `/proc/net/arp` marks complete,
/// less `NOARP` ones (those are not peers on the wire).
pub fn ipv4_neighbours(device: &str) -> io::Result<Vec<Neighbour>> {
    let ifindex = crate::sys::ifindex(device).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {device}")))?;
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&dump_request(ifindex, 1), 0)?;
    let mut out = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        if parse_dump(&datagram, ifindex, &mut out)? {
            return Ok(out);
        }
    }
}

/// `RTM_GETNEIGH` with `NLM_F_DUMP` for IPv4, filtered by the kernel to `ifindex` (the
/// `NDA_IFINDEX` attribute; the header's ifindex must stay 0 for a dump request).
fn dump_request(ifindex: u32, sequence_number: u32) -> Vec<u8> {
    let mut request = NeighbourMessage::default();
    request.header.family = AddressFamily::Inet;
    request.attributes.push(NeighbourAttribute::IfIndex(ifindex));
    let mut message = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(request));
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.sequence_number = sequence_number;
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// Adds the usable neighbours of `ifindex` in one datagram of a dump to `out`; true once the
/// dump is done. An error message from the kernel becomes the error.
fn parse_dump(mut datagram: &[u8], ifindex: u32, out: &mut Vec<Neighbour>) -> io::Result<bool> {
    while !datagram.is_empty() {
        let message =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Messages are 4-byte aligned within a datagram.
        let len = (message.header.length as usize).next_multiple_of(4);
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "netlink message of length 0"));
        }
        datagram = datagram.get(len..).unwrap_or_default();
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => out.extend(usable(&m, ifindex)),
            _ => {}
        }
    }
    Ok(false)
}

/// The entry as a [`Neighbour`] if it is an IPv4 neighbour of `ifindex` in a state with a valid
/// link-layer address (REACHABLE, STALE, DELAY, PROBE, PERMANENT) and has a non-zero one.
fn usable(m: &NeighbourMessage, ifindex: u32) -> Option<Neighbour> {
    let valid = matches!(
        m.header.state,
        NeighbourState::Reachable | NeighbourState::Stale | NeighbourState::Delay | NeighbourState::Probe | NeighbourState::Permanent
    );
    if m.header.ifindex != ifindex || m.header.family != AddressFamily::Inet || !valid {
        return None;
    }
    let ip = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    let mac = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
        _ => None,
    })?;
    (mac != [0; 6] && ip != Ipv4Addr::UNSPECIFIED).then_some(Neighbour { ip, mac })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_route::neighbour::NeighbourHeader;
    use rtnetlink::packet_core::{DoneMessage, ErrorMessage, NetlinkHeader, NetlinkSerializable};

    use super::*;

    const BOND: u32 = 7;

    fn entry(ifindex: u32, state: NeighbourState, ip: [u8; 4], mac: Option<&[u8]>) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header = NeighbourHeader { family: AddressFamily::Inet, ifindex, state, ..Default::default() };
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip.into())));
        if let Some(mac) = mac {
            m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        m
    }

    fn bytes<I: NetlinkSerializable + std::fmt::Debug>(payload: NetlinkPayload<I>) -> Vec<u8> {
        let mut message = NetlinkMessage::new(NetlinkHeader::default(), payload);
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    fn neighbour(m: NeighbourMessage) -> Vec<u8> {
        bytes(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)))
    }

    fn done() -> Vec<u8> {
        bytes::<RouteNetlinkMessage>(NetlinkPayload::Done(DoneMessage::default()))
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

    #[test]
    fn keeps_entries_of_the_bond_with_a_valid_address() {
        let mut datagram = Vec::new();
        for state in
            [NeighbourState::Reachable, NeighbourState::Stale, NeighbourState::Delay, NeighbourState::Probe, NeighbourState::Permanent]
        {
            datagram.extend(neighbour(entry(BOND, state, [192, 0, 2, 11], Some(&MAC))));
        }
        let mut out = Vec::new();
        assert!(!parse_dump(&datagram, BOND, &mut out).unwrap(), "no NLMSG_DONE yet");
        assert_eq!(out, [Neighbour { ip: Ipv4Addr::new(192, 0, 2, 11), mac: MAC }; 5]);
    }

    #[test]
    fn drops_incomplete_failed_noarp_foreign_and_addressless_entries() {
        let mut datagram = Vec::new();
        for state in [NeighbourState::Incomplete, NeighbourState::Failed, NeighbourState::Noarp, NeighbourState::None] {
            datagram.extend(neighbour(entry(BOND, state, [192, 0, 2, 12], Some(&MAC))));
        }
        datagram.extend(neighbour(entry(BOND + 1, NeighbourState::Reachable, [192, 0, 2, 13], Some(&MAC))));
        datagram.extend(neighbour(entry(BOND, NeighbourState::Reachable, [192, 0, 2, 14], None)));
        datagram.extend(neighbour(entry(BOND, NeighbourState::Stale, [192, 0, 2, 15], Some(&[0; 6]))));
        datagram.extend(neighbour(entry(BOND, NeighbourState::Stale, [192, 0, 2, 16], Some(&[1, 2, 3]))));
        datagram.extend(done());
        let mut out = Vec::new();
        assert!(parse_dump(&datagram, BOND, &mut out).unwrap());
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_dump_spans_datagrams_until_done() {
        let mut out = Vec::new();
        let first = neighbour(entry(BOND, NeighbourState::Reachable, [192, 0, 2, 11], Some(&MAC)));
        assert!(!parse_dump(&first, BOND, &mut out).unwrap());
        let mut last = neighbour(entry(BOND, NeighbourState::Stale, [192, 0, 2, 12], Some(&MAC)));
        last.extend(done());
        assert!(parse_dump(&last, BOND, &mut out).unwrap());
        assert_eq!(out.iter().map(|n| n.ip.octets()[3]).collect::<Vec<_>>(), [11, 12]);
    }

    #[test]
    fn a_kernel_error_is_the_error() {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-libc::EINVAL);
        let err = parse_dump(&bytes::<RouteNetlinkMessage>(NetlinkPayload::Error(e)), BOND, &mut Vec::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert!(parse_dump(&[1, 2, 3], BOND, &mut Vec::new()).is_err(), "garbage is an error");
    }

    #[test]
    fn the_request_asks_for_an_ipv4_dump_of_the_bond() {
        let request = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&dump_request(BOND, 9)).unwrap();
        assert_eq!(request.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(request.header.sequence_number, 9);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetNeighbour(m)) = request.payload else { panic!("not RTM_GETNEIGH") };
        assert_eq!((m.header.family, m.header.ifindex), (AddressFamily::Inet, 0));
        assert_eq!(m.attributes, [NeighbourAttribute::IfIndex(BOND)]);
    }

    /// Needs no privileges: every process may dump its namespace's neighbour table.
    #[test]
    fn loopback_dump_completes() {
        ipv4_neighbours("lo").expect("dumping lo's neighbours");
    }
}
