//! Synchronous rtnetlink requests, each on a netlink socket of its own: for the executor, which
//! runs on the daemon's timing path and cannot await rtnetlink's async handle (`operstate`'s
//! state changes, `addrlist`'s unicast filters).

use std::io;

use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload},
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

/// A socket bound and connected to the kernel.
pub fn socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// `payload` as one request datagram with header `flags`.
pub fn request(payload: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut message = NetlinkMessage::from(payload);
    message.header.flags = flags;
    message.header.sequence_number = 1;
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// Sends `payload` (flags should ask for an ACK) and returns the kernel's answer as a result.
pub fn ack(payload: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
    let socket = socket()?;
    socket.send(&request(payload, flags), 0)?;
    let (datagram, _) = socket.recv_from_full()?;
    let message =
        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    match message.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Ok(()),
    }
}
