//! Sending raw Ethernet frames out of an interface (AF_PACKET).

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
