//! Sending and receiving raw Ethernet frames on an interface (AF_PACKET).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// A send-only AF_PACKET socket for one interface.
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    /// A socket on `ifindex` (in the calling thread's network namespace). It receives nothing:
    /// it is bound to no protocol.
    pub fn new(ifindex: u32) -> io::Result<RawSender> {
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        Ok(RawSender { fd: unsafe { OwnedFd::from_raw_fd(fd) }, ifindex })
    }

    /// Sends one frame; `ether_type` becomes the skb's protocol (what the data plane checks
    /// before reading a probe).
    pub fn send(&self, frame: &[u8], ether_type: u16) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ether_type.to_be();
        sa.sll_ifindex = self.ifindex as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: valid buffer and address.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
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
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ether_type.to_be();
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: valid address of the given size.
        if unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32) }
            < 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zeroed packet_mreq is valid.
        let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mr.mr_ifindex = ifindex as i32;
        mr.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mr.mr_alen = 6;
        mr.mr_address[..6].copy_from_slice(&multicast);
        // SAFETY: valid option value of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mr as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawReceiver { fd })
    }

    /// The next frame waiting, copied into `buf` (its length), or None.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: valid buffer of the given length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        usize::try_from(n).ok()
    }
}
