//! Devices' unicast address lists (the kernel's `dev->uc`, what `bridge fdb show dev DEV self`
//! lists and `bridge fdb add ADDR dev DEV self permanent` adds to): read on the bond device, where
//! devices above it (a macvlan, a bridge's `self` entries) put their addresses, and copied onto
//! the members, whose NICs then take those addresses in by their hardware filters rather than
//! by going promiscuous (bonding's `dev_uc_sync`).
//!
//! Synchronous `RTM_*NEIGH` requests of the bridge family on a netlink socket of their own (the
//! executor runs them from the daemon's loop, as `operstate` does); what is kept of the kernel's
//! answer is decided by the pure [`parse_dump`], tested on constructed messages.

use std::io;

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
};
use rtnetlink::{
    packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload},
    sys::Socket,
};

use crate::rtnl_sync::{self, ack, request};

fn socket() -> io::Result<Socket> {
    let socket = rtnl_sync::socket()?;
    // So the kernel filters the dump by the header's ifindex.
    socket.set_netlink_get_strict_chk(true)?;
    Ok(socket)
}

/// The unicast addresses in device `ifindex`'s own address list (its `self` entries), its own
/// MAC address aside.
pub fn unicast(ifindex: u32) -> io::Result<Vec<[u8; 6]>> {
    let socket = socket()?;
    socket.send(&request(RouteNetlinkMessage::GetNeighbour(message(ifindex, None)), NLM_F_REQUEST | NLM_F_DUMP), 0)?;
    let mut out = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        if parse_dump(&datagram, ifindex, &mut out)? {
            return Ok(out);
        }
    }
}

/// Puts `mac` in device `ifindex`'s unicast filter (present already: nothing to do).
pub fn add(ifindex: u32, mac: [u8; 6]) -> io::Result<()> {
    match ack(RouteNetlinkMessage::NewNeighbour(message(ifindex, Some(mac))), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Takes `mac` out of device `ifindex`'s unicast filter (absent: nothing to do).
pub fn del(ifindex: u32, mac: [u8; 6]) -> io::Result<()> {
    match ack(RouteNetlinkMessage::DelNeighbour(message(ifindex, Some(mac))), NLM_F_REQUEST | NLM_F_ACK) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
        r => r,
    }
}

/// An entry of device `ifindex`'s own list (`NTF_SELF`, permanent), or the dump's filter.
fn message(ifindex: u32, mac: Option<[u8; 6]>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = ifindex;
    if let Some(mac) = mac {
        m.header.flags = NeighbourFlags::Own;
        m.header.state = NeighbourState::Permanent;
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    m
}

/// Adds the unicast addresses of `ifindex` in one datagram of a dump to `out`; true once the
/// dump is done. Multicast addresses are left out (members receive every group anyway).
fn parse_dump(mut datagram: &[u8], ifindex: u32, out: &mut Vec<[u8; 6]>) -> io::Result<bool> {
    while !datagram.is_empty() {
        let message =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let len = (message.header.length as usize).next_multiple_of(4);
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
            // The device's own list only (`self`): when it is a bridge port, the dump also
            // holds the bridge's entries for the port (`master`: hosts learnt through it).
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n))
                if n.header.ifindex == ifindex
                    && n.header.flags.contains(NeighbourFlags::Own)
                    && !n.header.flags.contains(NeighbourFlags::Controller) =>
            {
                for a in &n.attributes {
                    if let NeighbourAttribute::LinkLayerAddress(mac) = a
                        && let Ok(mac) = <[u8; 6]>::try_from(mac.as_slice())
                        && mac[0] & 1 == 0
                        && !out.contains(&mac)
                    {
                        out.push(mac);
                    }
                }
            }
            _ => {}
        }
        if len == 0 || len >= datagram.len() {
            break;
        }
        datagram = &datagram[len..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ifindex: u32, mac: [u8; 6]) -> Vec<u8> {
        let mut m = message(ifindex, Some(mac));
        m.header.flags = NeighbourFlags::Own;
        request(RouteNetlinkMessage::NewNeighbour(m), 0)
    }

    #[test]
    fn a_dump_keeps_the_devices_unicast_entries() {
        let mut datagram = entry(7, [2, 0, 0, 0x12, 0x34, 0x56]);
        datagram.extend(entry(7, [0x33, 0x33, 0xff, 0x78, 0x9a, 0xbc]));
        datagram.extend(entry(8, [2, 0, 0, 0, 0, 8]));
        // A bridge's entry for the device as its port (a host learnt through it).
        let mut learnt = message(7, Some([2, 0, 0, 0, 0, 0x77]));
        learnt.header.flags = NeighbourFlags::Own | NeighbourFlags::Controller;
        datagram.extend(request(RouteNetlinkMessage::NewNeighbour(learnt), 0));
        let mut out = Vec::new();
        assert!(!parse_dump(&datagram, 7, &mut out).unwrap());
        assert_eq!(out, [[2, 0, 0, 0x12, 0x34, 0x56]], "multicast, other devices' and the bridge's entries left out");
        let mut done = NetlinkMessage::<RouteNetlinkMessage>::new(
            rtnetlink::packet_core::NetlinkHeader::default(),
            NetlinkPayload::Done(rtnetlink::packet_core::DoneMessage::default()),
        );
        done.finalize();
        let mut buf = vec![0; done.buffer_len()];
        done.serialize(&mut buf);
        assert!(parse_dump(&buf, 7, &mut out).unwrap());
    }

    #[test]
    fn entries_are_the_devices_own_and_permanent() {
        let m = message(9, Some([2, 1, 2, 3, 4, 5]));
        assert_eq!(
            (m.header.family, m.header.ifindex, m.header.flags, m.header.state),
            (AddressFamily::Bridge, 9, NeighbourFlags::Own, NeighbourState::Permanent)
        );
    }
}
