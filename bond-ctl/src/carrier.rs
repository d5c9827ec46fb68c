//! Direct carrier polling (what bonding calls MII monitoring).
//!
//! rtnetlink reports carrier changes through the kernel's linkwatch, which delays carrier-*down*
//! notifications of most devices (all physical NICs) by up to a second after the previous
//! linkwatch run. Asking the device with `ETHTOOL_GLINK` reads `netif_carrier_ok()` directly,
//! so a poll every few milliseconds sees a lost carrier within one poll interval.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GLINK: u32 = 0x0000_000a;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// A socket for ethtool requests, in the network namespace it was created in.
pub struct CarrierProbe {
    fd: OwnedFd,
}

impl CarrierProbe {
    pub fn new() -> io::Result<CarrierProbe> {
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        Ok(CarrierProbe { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Whether `ifname` has carrier now. `Err` with `EOPNOTSUPP` when the driver cannot say.
    pub fn carrier(&self, ifname: &str) -> io::Result<bool> {
        let mut value = EthtoolValue { cmd: ETHTOOL_GLINK, data: 0 };
        // SAFETY: zeroed ifreq is valid; the name is copied within bounds below.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        let name = ifname.as_bytes();
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (d, s) in req.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
        // SAFETY: SIOCETHTOOL with a valid ifreq pointing at a live ethtool_value.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value.data != 0)
    }
}

const ETHTOOL_GSET: u32 = 0x0000_0001;

/// `struct ethtool_cmd` (the legacy settings query, answered by every driver that has speeds).
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

impl CarrierProbe {
    /// The link speed the driver reports (Mb/s), if it knows one.
    pub fn speed_mbps(&self, ifname: &str) -> Option<u32> {
        let mut cmd = EthtoolCmd { cmd: ETHTOOL_GSET, ..Default::default() };
        // SAFETY: zeroed ifreq is valid; the name is copied within bounds below.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if ifname.len() >= req.ifr_name.len() {
            return None;
        }
        for (d, s) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut cmd as *mut EthtoolCmd).cast();
        // SAFETY: SIOCETHTOOL with a valid ifreq pointing at a live ethtool_cmd.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) } != 0 {
            return None;
        }
        let speed = u32::from(cmd.speed) | u32::from(cmd.speed_hi) << 16;
        (speed != 0 && speed != u32::from(u16::MAX) && speed != u32::MAX).then_some(speed)
    }
}
