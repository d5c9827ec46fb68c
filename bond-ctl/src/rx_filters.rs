//! Changes to the members' receive filters (promiscuous mode, unicast addresses), run in order
//! on one thread of their own. Off the daemon's loop, because each waits for the kernel's RTNL
//! lock, which anything changing links on the host may hold for a while; in order, because an
//! address added then removed (or promiscuous mode set then cleared) must end as the last
//! request says, not as two racing threads finish. [`settled`] waits for everything queued
//! before a member gets its own settings back, so nothing queued lands after them.

use std::{
    sync::{OnceLock, mpsc},
    time::Duration,
};

/// How long [`settled`] waits for the queue at most (RTNL held that long is a stuck host; the
/// member is given back anyway).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One ordered worker: jobs run one after another, in the order pushed.
pub struct Queue<J: Send + 'static> {
    tx: Option<mpsc::Sender<Item<J>>>,
}

enum Item<J> {
    Job(J),
    Done(mpsc::Sender<()>),
}

impl<J: Send + 'static> Queue<J> {
    /// Starts the worker thread `name`, which hands every job to `run`. Without a thread (the
    /// host out of them), jobs run at once on the caller's.
    pub fn start(name: &str, mut run: impl FnMut(J) + Send + 'static) -> Queue<J> {
        let (tx, rx) = mpsc::channel::<Item<J>>();
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
            for item in rx {
                match item {
                    Item::Job(j) => run(j),
                    Item::Done(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        match spawned {
            Ok(_) => Queue { tx: Some(tx) },
            Err(e) => {
                tracing::warn!("no thread for {name}, its work is done inline: {e}");
                Queue { tx: None }
            }
        }
    }

    /// Queues `job` (or returns it to be run inline when there is no worker).
    pub fn push(&self, job: J) -> Option<J> {
        match &self.tx {
            Some(tx) => tx.send(Item::Job(job)).err().map(|e| match e.0 {
                Item::Job(j) => j,
                Item::Done(_) => unreachable!(),
            }),
            None => Some(job),
        }
    }

    /// A receiver that hears once everything queued before this call is done.
    pub fn marker(&self) -> Option<mpsc::Receiver<()>> {
        let (done, heard) = mpsc::channel();
        self.tx.as_ref()?.send(Item::Done(done)).ok()?;
        Some(heard)
    }
}

/// A change to member `member`'s receive filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Promisc { member: String, on: bool },
    Unicast { member: String, mac: [u8; 6], on: bool },
}

fn apply(change: Change) {
    match change {
        Change::Promisc { member, on } => {
            if let Err(e) = crate::sys::set_promisc(&member, on) {
                tracing::warn!("setting promiscuous mode {} on {member}: {e}", if on { "on" } else { "off" });
            }
        }
        Change::Unicast { member, mac, on } => {
            let Some(ifindex) = crate::sys::ifindex(&member) else { return };
            let r = if on { crate::addrlist::add(ifindex, mac) } else { crate::addrlist::del(ifindex, mac) };
            if let Err(e) = r {
                let what = if on { "adding" } else { "removing" };
                tracing::warn!("{what} {} in the unicast filter of {member}: {e}", crate::mac::format_mac(&mac));
            }
        }
    }
}

/// The process's queue: one for every bond, as the kernel serialises the changes under RTNL
/// anyway.
fn queue() -> &'static Queue<Change> {
    static QUEUE: OnceLock<Queue<Change>> = OnceLock::new();
    QUEUE.get_or_init(|| Queue::start("rx-filters", apply))
}

/// Queues `change` (see the module's text).
pub fn request(change: Change) {
    if let Some(inline) = queue().push(change) {
        apply(inline);
    }
}

/// Waits until every change requested so far is done (or [`SETTLE_TIMEOUT`] passed).
pub async fn settled() {
    let Some(heard) = queue().marker() else { return };
    let waited = tokio::task::spawn_blocking(move || heard.recv_timeout(SETTLE_TIMEOUT)).await;
    if !matches!(waited, Ok(Ok(()))) {
        tracing::warn!("receive filter changes still pending after {} s; going on", SETTLE_TIMEOUT.as_secs());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn jobs_run_in_the_order_pushed_and_a_marker_waits_for_them_all() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let seen = done.clone();
        let q = Queue::start("test-queue", move |j: u32| {
            // The first job is the slowest: a thread per job would finish it last.
            std::thread::sleep(Duration::from_millis(if j == 0 { 50 } else { 1 }));
            seen.lock().unwrap().push(j);
        });
        for j in 0..5 {
            assert_eq!(q.push(j), None);
        }
        let marker = q.marker().unwrap();
        marker.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(*done.lock().unwrap(), [0, 1, 2, 3, 4]);
    }
}
