//! What wakes a bond's daemon loop from outside it: probe replies read from the data plane's
//! ring buffer as they arrive, carrier changes, and the bond device's promiscuity, each watched
//! by a task of its own beside the loop.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use bond_common::probe::ProbeEvent;
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};

/// Something for one bond from outside the loop, handled before timers: probe replies read from
/// its ring buffer, or a carrier change.
pub struct Wake {
    pub bond: String,
    pub what: WakeWhat,
}

pub enum WakeWhat {
    /// Probe replies from the ring buffer.
    ProbeReplies(Vec<ProbeEvent>),
    /// A member's carrier changed (the carrier watch saw it).
    Carrier,
    /// What the bond device receives changed (see [`RxFilter`]).
    RxFilter(RxFilter),
}

/// What the bond device itself receives, for its members to receive too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RxFilter {
    /// It is promiscuous itself (a bridge took it as a port, `ip link set ... promisc on`, a
    /// capture), not merely for the addresses in its unicast list.
    pub promisc: bool,
    /// Unicast addresses of devices above it (a macvlan, a bridge's `self` entries).
    pub unicast: Vec<[u8; 6]>,
    /// Its IP addresses (announced after a failover, as bonding's peer notification does).
    pub addresses: Vec<std::net::IpAddr>,
}

impl RxFilter {
    /// From the device as netlink reports it and its unicast list. A device that filters no
    /// unicast in hardware (every kind a bond device can be) counts one promiscuity for a
    /// non-empty list while it is up (the kernel's `uc_promisc`): that one is not the bond's
    /// own.
    pub fn of(l: &crate::netdev::Link, mut unicast: Vec<[u8; 6]>, addresses: Vec<std::net::IpAddr>) -> RxFilter {
        unicast.retain(|m| *m != l.mac);
        unicast.sort_unstable();
        let for_the_list = u32::from(l.admin_up && !unicast.is_empty());
        RxFilter { promisc: l.promisc || l.promiscuity > for_the_list, unicast, addresses }
    }
}

/// Reads `probe_events` as replies arrive and forwards them to the daemon.
pub fn read_probe_events(bond: String, rb: RingBuf<MapData>, tx: mpsc::Sender<Wake>) -> anyhow::Result<JoinHandle<()>> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
    // the AsyncFd owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(rb, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("watching the probe event ring buffer: {e}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            // Readiness is cleared before draining: a record that lands after the drain then
            // wakes us again. (Cleared after, its wakeup could be lost, and the ring buffer only
            // notifies again once it has been emptied.)
            guard.clear_ready();
            let rb = guard.get_inner_mut();
            let mut events = Vec::new();
            while let Some(item) = rb.next() {
                events.extend(ProbeEvent::from_record(&item));
            }
            if !events.is_empty() && tx.send(Wake { bond: bond.clone(), what: WakeWhat::ProbeReplies(events) }).await.is_err() {
                return;
            }
        }
    }))
}

/// How often what the bond device receives is read.
const RX_FILTER_POLL: Duration = Duration::from_millis(500);

/// Reads what the bond device receives (its promiscuity and unicast list) every
/// [`RX_FILTER_POLL`] and tells the daemon when it changes. A bridge taking the bond as a port,
/// or a macvlan above it, changes them without any notification, so they are polled (netlink
/// requests beside the loop).
pub fn watch_rx_filter(nl: crate::netdev::Netdev, bond: String, tx: mpsc::Sender<Wake>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = RxFilter::default();
        loop {
            if let Ok(Some(l)) = nl.link(&bond).await {
                let index = l.index;
                let unicast = tokio::task::spawn_blocking(move || crate::addrlist::unicast(index)).await;
                if let (Ok(Ok(unicast)), Ok(addresses)) = (unicast, nl.addresses(index).await) {
                    let now = RxFilter::of(&l, unicast, addresses);
                    if now != last {
                        if tx.send(Wake { bond: bond.clone(), what: WakeWhat::RxFilter(now.clone()) }).await.is_err() {
                            return;
                        }
                        last = now;
                    }
                }
            }
            tokio::time::sleep(RX_FILTER_POLL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bond_is_promiscuous_only_by_its_own_request() {
        let mut l = crate::netdev::Link::up(2, "bond0", [2, 0, 0, 0, 0, 1]);
        let macvlan = [2, 0, 0, 0x12, 0x34, 0x56];
        l.promiscuity = 1;
        assert_eq!(
            RxFilter::of(&l, vec![macvlan, l.mac], vec![]),
            RxFilter { promisc: false, unicast: vec![macvlan], addresses: vec![] },
            "for the list"
        );
        assert!(RxFilter::of(&l, vec![], vec![]).promisc, "a bridge port");
        l.promiscuity = 2;
        assert!(RxFilter::of(&l, vec![macvlan], vec![]).promisc, "a bridge port with a macvlan");
        l.promiscuity = 1;
        l.admin_up = false;
        assert!(RxFilter::of(&l, vec![macvlan], vec![]).promisc, "down: the list counts nothing");
    }
}
