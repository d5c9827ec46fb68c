//! Direct carrier polling (what bonding calls MII monitoring).
//!
//! rtnetlink reports carrier changes through the kernel's linkwatch, which delays carrier-*down*
//! notifications of most devices (all physical NICs) by up to a second after the previous
//! linkwatch run. Asking the device with `ETHTOOL_GLINK` reads `netif_carrier_ok()` directly,
//! so a poll every few milliseconds sees a lost carrier within one poll interval.

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
};

use crate::sys;

// The ethtool ioctl passes a `struct ifreq` whose data pointer leads to the command structure;
// nix has neither the ifreq nor the ethtool structures, so those come from libc and here.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
nix::ioctl_readwrite_bad!(siocethtool, SIOCETHTOOL, libc::ifreq);
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
        Ok(CarrierProbe { fd: sys::ioctl_socket()? })
    }

    /// Whether `ifname` has carrier now. `Err` with `EOPNOTSUPP` when the driver cannot say.
    pub fn carrier(&self, ifname: &str) -> io::Result<bool> {
        let mut value = EthtoolValue { cmd: ETHTOOL_GLINK, data: 0 };
        let mut req = sys::ifreq(ifname)?;
        req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
        // SAFETY: ETHTOOL_GLINK reads the ifreq (a NUL-terminated name and the data pointer) and
        // reads and writes one `struct ethtool_value` through that pointer; both are live locals
        // of the right layout (#[repr(C)]) for the whole call.
        unsafe { siocethtool(self.fd.as_raw_fd(), &mut req) }?;
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
        let mut req = sys::ifreq(ifname).ok()?;
        req.ifr_ifru.ifru_data = (&mut cmd as *mut EthtoolCmd).cast();
        // SAFETY: ETHTOOL_GSET reads the ifreq and writes one `struct ethtool_cmd` (44 bytes,
        // laid out by #[repr(C)] above) through its data pointer, to a live local.
        unsafe { siocethtool(self.fd.as_raw_fd(), &mut req) }.ok()?;
        let speed = u32::from(cmd.speed) | u32::from(cmd.speed_hi) << 16;
        (speed != 0 && speed != u32::from(u16::MAX) && speed != u32::MAX).then_some(speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_always_has_carrier_and_no_speed() {
        let probe = CarrierProbe::new().expect("an ioctl socket");
        assert!(probe.carrier("lo").expect("lo answers ETHTOOL_GLINK"));
        assert_eq!(probe.speed_mbps("lo"), None);
        assert!(probe.carrier("no-such-if0").is_err());
    }
}
