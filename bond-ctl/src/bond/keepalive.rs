//! LACPDUs kept going while a new controller takes an aggregate over (what to send is
//! `LacpSnapshot::keepalive`'s to say): on a thread of its own, since loading the programs
//! holds the daemon up for as long as the verifier takes, seconds on a busy host.

use std::{
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::lacp::{ETH_P_SLOW, LacpSnapshot};
use crate::rawsock::RawSender;
use crate::runstate::SavedMember;

/// Sends each port's saved LACPDU at once and then at its period, until dropped.
pub struct LacpKeepalive {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LacpKeepalive {
    /// For the ports of `snapshot`, on the members `members` name (a member gone, or a socket
    /// that cannot be opened, is left out: the new controller's own LACPDUs follow anyway).
    pub fn start(snapshot: &LacpSnapshot, members: &[SavedMember]) -> LacpKeepalive {
        let mut ports = Vec::new();
        for k in snapshot.keepalive() {
            let Some(member) = members.iter().find(|m| m.slot == k.slot) else { continue };
            let sender = nix::net::if_::if_nametoindex(member.name.as_str()).map_err(std::io::Error::from).and_then(RawSender::new);
            match sender {
                Ok(sender) => ports.push((sender, k.frame, Duration::from_nanos(k.period))),
                Err(e) => tracing::warn!("LACP: no LACPDUs on {} while the aggregate is taken over: {e}", member.name),
            }
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("lacp-keepalive".into()).spawn(move || {
            let mut due: Vec<Instant> = vec![Instant::now(); ports.len()];
            loop {
                let now = Instant::now();
                for ((sender, frame, period), due) in ports.iter().zip(due.iter_mut()) {
                    if *due <= now {
                        // Best effort: a frame lost here is one the partner would have missed anyway.
                        let _ = sender.send(frame, ETH_P_SLOW);
                        *due = now + *period;
                    }
                }
                let Some(next) = due.iter().min() else { return };
                match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
        match thread {
            Ok(thread) => LacpKeepalive { stop: Some(stop), thread: Some(thread) },
            Err(e) => {
                tracing::warn!("LACP: no LACPDUs while the aggregate is taken over: {e}");
                LacpKeepalive { stop: None, thread: None }
            }
        }
    }
}

impl Drop for LacpKeepalive {
    /// Stops the thread and waits for it, so the new controller's own LACPDUs never interleave.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
