//! Direct carrier polling (what bonding calls MII monitoring).
//!
//! rtnetlink reports carrier changes through the kernel's linkwatch, which delays carrier-*down*
//! notifications of most devices (all physical NICs) by up to a second after the previous
//! linkwatch run. Asking the device with `ETHTOOL_GLINK` reads `netif_carrier_ok()` directly,
//! so a poll every few milliseconds sees a lost carrier within one poll interval.

use std::{
    collections::BTreeMap,
    io,
    os::fd::{AsRawFd, OwnedFd},
    sync::{Arc, Mutex},
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

/// The link speed `ifname`'s driver reports (Mb/s), if it knows one (a socket of its own, for
/// threads other than the daemon's loop).
pub fn speed_mbps(ifname: &str) -> Option<u32> {
    CarrierProbe::new().ok()?.speed_mbps(ifname)
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

/// Polls the carrier of a bond's members on a thread of its own, every `miimon`: an ethtool
/// request waits for the RTNL lock, which whatever changes links holds (for tens of
/// milliseconds while TCX links come and go), and the daemon's loop must not wait. The loop
/// reads the last values ([`CarrierWatch::carrier`]) and is woken when one changes.
pub struct CarrierWatch {
    shared: Arc<Mutex<Watched>>,
}

/// The last reading of one member.
#[derive(Default, Clone, Copy, PartialEq)]
struct Reading {
    /// None: not read yet, or the device cannot say.
    carrier: Option<bool>,
    /// Read again each time the carrier returns (a link may come back at another speed).
    speed: Option<u32>,
}

#[derive(Default)]
struct Watched {
    members: BTreeMap<String, Reading>,
    /// Moves on with every change the loop makes to `members`: the polling thread copies them
    /// again only then (it wakes every few milliseconds and should not allocate each time).
    generation: u64,
    interval_ms: u64,
    stop: bool,
}

impl CarrierWatch {
    /// Starts polling every `interval_ms` (0: not at all, until set); `wake` is called (on the
    /// polling thread) after a change.
    pub fn start(interval_ms: u64, wake: impl Fn() + Send + 'static) -> io::Result<CarrierWatch> {
        let probe = CarrierProbe::new()?;
        let shared = Arc::new(Mutex::new(Watched { interval_ms, ..Default::default() }));
        let watched = shared.clone();
        std::thread::Builder::new().name("carrier".into()).spawn(move || poll(&probe, &watched, wake))?;
        Ok(CarrierWatch { shared })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Watched) -> R) -> R {
        f(&mut self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub fn watch(&self, member: &str) {
        self.with(|w| {
            w.members.entry(member.to_string()).or_default();
            w.generation += 1;
        });
    }

    pub fn unwatch(&self, member: &str) {
        self.with(|w| {
            w.members.remove(member);
            w.generation += 1;
        });
    }

    /// Forgets `member`'s last reading (older than news of it): none until the next poll.
    pub fn forget(&self, member: &str) {
        self.with(|w| {
            if let Some(r) = w.members.get_mut(member) {
                r.carrier = None;
            }
            w.generation += 1;
        });
    }

    pub fn set_interval(&self, interval_ms: u64) {
        self.with(|w| w.interval_ms = interval_ms);
    }

    /// The carrier `member` had at the last poll (None: not read yet or unknown).
    pub fn carrier(&self, member: &str) -> Option<bool> {
        self.with(|w| w.members.get(member).and_then(|r| r.carrier))
    }

    /// The speed `member` reported when its carrier last came up (Mb/s).
    pub fn speed(&self, member: &str) -> Option<u32> {
        self.with(|w| w.members.get(member).and_then(|r| r.speed))
    }
}

impl Drop for CarrierWatch {
    fn drop(&mut self) {
        self.with(|w| w.stop = true);
    }
}

/// The polling thread: reads every member's carrier each interval; wakes the loop on a change.
fn poll(probe: &CarrierProbe, watched: &Mutex<Watched>, wake: impl Fn()) {
    let lock = || watched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // This thread's copy of the members and their last readings, refreshed when the loop
    // changes them.
    let mut members: Vec<(String, Reading)> = Vec::new();
    let mut generation = None;
    loop {
        let interval = {
            let w = lock();
            if w.stop {
                return;
            }
            if generation != Some(w.generation) {
                generation = Some(w.generation);
                members = w.members.iter().map(|(n, r)| (n.clone(), *r)).collect();
            }
            w.interval_ms
        };
        if interval == 0 {
            // Not polled (miimon 0): rtnetlink alone follows carrier. Looked at again shortly.
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        // Read without the lock held: a read may wait for the RTNL lock.
        let mut changed = false;
        let mut read = false;
        for (name, was) in &mut members {
            let carrier = probe.carrier(name).ok();
            let back = carrier == Some(true) && was.carrier != Some(true);
            let speed = if back { probe.speed_mbps(name) } else { was.speed };
            let now = Reading { carrier, speed };
            if now != *was {
                // The first reading after `forget` or `watch` is news to nobody.
                changed |= was.carrier.is_some();
                read = true;
                *was = now;
            }
        }
        if read {
            let mut w = lock();
            // Unless the loop changed the members meanwhile (then they are copied and read again).
            if generation == Some(w.generation) {
                for (name, now) in &members {
                    if let Some(r) = w.members.get_mut(name) {
                        *r = *now;
                    }
                }
            }
        }
        if changed {
            wake();
        }
        std::thread::sleep(std::time::Duration::from_millis(interval));
    }
}
