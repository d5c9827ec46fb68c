//! Sending and receiving raw Ethernet frames on an interface (AF_PACKET).

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
};

use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike};

/// A non-blocking AF_PACKET socket bound to no protocol yet (it receives nothing until bound).
fn packet_socket() -> io::Result<OwnedFd> {
    Ok(socket::socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?)
}

/// A `sockaddr_ll` for `ifindex` and `ether_type`, with `dst` as the link-layer address if given.
fn link_addr(ifindex: u32, ether_type: u16, dst: Option<[u8; 6]>) -> io::Result<LinkAddr> {
    let mut sll_addr = [0u8; 8];
    if let Some(dst) = dst {
        sll_addr[..6].copy_from_slice(&dst);
    }
    let sa = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ether_type.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: if dst.is_some() { 6 } else { 0 },
        sll_addr,
    };
    // nix builds a LinkAddr only from raw memory (there is no constructor from fields).
    // SAFETY: the pointer is to a live, fully initialised sockaddr_ll and the length given is
    // its size; from_raw copies it out and checks the family.
    unsafe { LinkAddr::from_raw((&sa as *const libc::sockaddr_ll).cast(), Some(size_of::<libc::sockaddr_ll>() as libc::socklen_t)) }
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// A send-only AF_PACKET socket for one interface.
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    /// A socket on `ifindex` (in the calling thread's network namespace). It receives nothing:
    /// it is bound to no protocol.
    pub fn new(ifindex: u32) -> io::Result<RawSender> {
        Ok(RawSender { fd: packet_socket()?, ifindex })
    }

    /// Sends one frame; `ether_type` becomes the skb's protocol (what the data plane checks
    /// before reading a probe).
    pub fn send(&self, frame: &[u8], ether_type: u16) -> io::Result<()> {
        let dst = frame.first_chunk::<6>().copied().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let sa = link_addr(self.ifindex, ether_type, Some(dst))?;
        socket::sendto(self.fd.as_raw_fd(), frame, &sa, MsgFlags::empty())?;
        Ok(())
    }
}

/// A non-blocking AF_PACKET socket receiving one EtherType on one interface (LACPDUs on a
/// member), read whole frames with their Ethernet header.
pub struct RawReceiver {
    fd: OwnedFd,
}

impl RawReceiver {
    /// Also joins `multicast` on the interface, so a NIC that filters multicast passes frames
    /// sent to it (the slow-protocols address).
    pub fn new(ifindex: u32, ether_type: u16, multicast: [u8; 6]) -> io::Result<RawReceiver> {
        // Protocol 0 until bound: opened with the EtherType, it would queue frames from every
        // interface until the bind.
        let fd = packet_socket()?;
        socket::bind(fd.as_raw_fd(), &link_addr(ifindex, ether_type, None)?)?;
        // nix has no PACKET_ADD_MEMBERSHIP socket option: set it through libc.
        let mut mr =
            libc::packet_mreq { mr_ifindex: ifindex as i32, mr_type: libc::PACKET_MR_MULTICAST as u16, mr_alen: 6, mr_address: [0; 8] };
        mr.mr_address[..6].copy_from_slice(&multicast);
        // SAFETY: the kernel reads one packet_mreq from a live local of exactly the length
        // passed, on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mr as *const libc::packet_mreq).cast(),
                size_of::<libc::packet_mreq>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawReceiver { fd })
    }

    /// The next frame waiting, copied into `buf` (its length), or None.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).ok()
    }
}
