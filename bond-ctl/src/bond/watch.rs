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
    /// The bond device became promiscuous (a bridge took it as a port, `ip link set ...
    /// promisc on`) or stopped being so.
    Promiscuous(bool),
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

/// How often the bond device's promiscuity is read.
const PROMISCUITY_POLL: Duration = Duration::from_millis(500);

/// Reads the bond device's promiscuity every [`PROMISCUITY_POLL`] and tells the daemon when it
/// changes. A bridge taking the bond as a port makes it promiscuous without any notification,
/// so it is polled (a netlink request, awaited beside the loop).
pub fn watch_promiscuity(nl: crate::netdev::Netdev, bond: String, tx: mpsc::Sender<Wake>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = false;
        loop {
            if let Ok(Some(l)) = nl.link(&bond).await {
                let now = l.promiscuity > 0;
                if now != last {
                    if tx.send(Wake { bond: bond.clone(), what: WakeWhat::Promiscuous(now) }).await.is_err() {
                        return;
                    }
                    last = now;
                }
            }
            tokio::time::sleep(PROMISCUITY_POLL).await;
        }
    })
}
