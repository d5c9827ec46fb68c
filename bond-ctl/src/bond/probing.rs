//! Peer probes: when each member's next request is due (quieter while no peer answers), the
//! requests themselves, what the replies the data plane reports change, and how the bond's
//! probes go out, for status. The arithmetic of the measurements is [`crate::health::metrics`];
//! when they make a member fail is `Core::evaluate` (`monitor.rs`).

use bond_common::probe::{self, ETH_P_PROBE, ProbeEvent, probe_sender_of};

use super::{Action, Core, Port, SendKind};
use crate::{
    config::model::MonitorStrategy,
    health::{
        capacity::{TRAIN_FRAME_LEN, TRAIN_FRAMES},
        metrics::{MS, Nanos},
        rates::Reply,
    },
    status::EventKind,
};

/// With no peer answering for this long, probes slow down to discovery frames...
const DISCOVERY_QUIET_AFTER: Nanos = 30_000 * MS;
/// ...one per member this far apart.
const DISCOVERY_INTERVAL: Nanos = 10_000 * MS;
/// A member given traffic within this long carries traffic (its rate is measured meanwhile).
const CARRYING_WITHIN: Nanos = 1_000 * MS;

impl Core {
    /// Probe replies from the data plane.
    pub fn on_probe_replies(&mut self, events: &[ProbeEvent], now: Nanos) {
        let mut found = None;
        let measures_rates = self.policy.measures_rates();
        let mut rates_moved = false;
        let mut uncounted = Vec::new();
        // The peer bond no member has heard within its failover interval has gone (its daemon
        // restarted with a new probe id, or it left the segment): the next bond to answer is
        // the peer. Held to it for ever, the members would stay failed while the new one answers.
        if self.monitor.peer_id.is_some() && !self.peer_heard_within_failover(now) {
            self.monitor.peer_id = None;
        }
        for e in events {
            // Earlier versions' programs report no peer address (all zero): taken as the peer's.
            let id = probe_sender_of(e.peer);
            if e.peer != [0; 6] && self.monitor.peer_id.is_some_and(|p| p != id) {
                continue;
            }
            if !self.members.iter().any(|m| m.slot == e.member) {
                continue;
            }
            // The peer answers again after it was away everywhere (or for the first time): the
            // probes lost meanwhile are not the links' (no loss punishment for a peer's restart).
            if self.monitor.peer_probes_since.is_none() {
                self.members.iter_mut().for_each(|m| m.probes.forget_outcomes());
            }
            let Some(m) = self.members.iter_mut().find(|m| m.slot == e.member) else { continue };
            if e.peer != [0; 6] {
                self.monitor.peer_id = Some(id);
            }
            // A train's frame waited behind the ones before it: its capacity, not a round trip.
            if m.rate.capacity.is_train(e.seq) {
                if e.flags & bond_common::probe::FLAG_CORRUPT == 0 && m.rate.capacity.replied(e.seq, e.t1, e.t2) {
                    rates_moved |= measures_rates && m.rate.bps.is_none();
                }
                continue;
            }
            rates_moved |= m.rate.capacity.later_reply(e.seq) && measures_rates && m.rate.bps.is_none();
            m.probes.replied_event(e, now);
            if e.flags & bond_common::probe::FLAG_CORRUPT == 0 {
                m.delivery.record(e.t2, e.peer_rx_bytes);
                if measures_rates {
                    let queue = m.probes.queue_of(e);
                    let reply = Reply {
                        seq: e.seq,
                        t1: e.t1,
                        t2: e.t2,
                        rx_bytes: e.peer_rx_bytes,
                        queue,
                        backlog: u64::from(e.backlog_us) * 1_000,
                    };
                    let replied = m.rate.replied(reply);
                    rates_moved |= replied.moved;
                    // A queue the schedule did not count: counted from now on.
                    if let Some(q) = replied.uncounted_queue {
                        uncounted.push((m.slot, now + q));
                    }
                }
            }
            m.probes_unanswered = 0;
            // The peer's member that answered: requests go to it by unicast from now on.
            m.rediscover = false;
            if e.peer[0] & 1 == 0 && e.peer != [0; 6] && m.probe_peer != Some(e.peer) {
                m.probe_peer = Some(e.peer);
                found.get_or_insert((m.name.clone(), e.peer));
            }
            if self.monitor.peer_probes_since.is_none() && m.probes.peer_seen {
                self.monitor.peer_probes_since = Some(now);
                self.monitor.no_peer_since = None;
            }
        }
        if let Some((name, peer)) = found {
            self.event(
                EventKind::Health,
                format!("{name}: a peer bond answers probes ({}): probing it by unicast", crate::mac::format_mac(&peer)),
            );
        }
        for (slot, until) in uncounted {
            self.act(Action::CountBusyUntil { slot, until });
        }
        if rates_moved {
            self.update_schedule();
        }
        self.evaluate(now);
    }

    /// Whether some member had a reply from the peer within its failover interval.
    fn peer_heard_within_failover(&self, now: Nanos) -> bool {
        self.members.iter().any(|m| {
            let failover = self.policy.link_timing(&m.name).0 * MS;
            m.probes.last_reply.is_some_and(|r| now.saturating_sub(r) <= failover)
        })
    }

    /// When member `m`'s next probe is due: on its schedule (`Member::next_probe`), or, while
    /// no peer has answered for [`DISCOVERY_QUIET_AFTER`], one discovery frame per
    /// [`DISCOVERY_INTERVAL`].
    pub(super) fn probe_due(&self, m: &crate::member::Member, now: Nanos) -> Nanos {
        let failover = self.policy.link_timing(&m.name).0 * MS;
        // A member no reply has come to for a while (no peer at all, or its path to the peer
        // broken while its carrier stays): one request every 10 s, wherever it goes.
        let quiet_since = m.probes.last_reply.unwrap_or(0).max(m.probe_epoch).max(self.monitor.no_peer_since.unwrap_or(0));
        if now.saturating_sub(quiet_since) >= DISCOVERY_QUIET_AFTER {
            return m.last_probe + (failover / 3).max(DISCOVERY_INTERVAL);
        }
        match self.monitor.no_peer_since {
            // Nobody to hear a quicker retry: the regular third of the failover interval.
            Some(_) => m.last_probe + (failover / 3).max(MS),
            None => m.next_probe(failover, self.measuring_rate(m, now)),
        }
    }

    /// Whether member `m`'s rate is being measured (`health::rates`): balance-aware `packet`
    /// told nothing of how to split (`PolicySpec::measures_rates`), while the member carries
    /// traffic. Then how often its probes should go.
    pub(super) fn measuring_rate(&self, m: &crate::member::Member, now: Nanos) -> Option<Nanos> {
        (self.policy.measures_rates() && m.rate.carrying(now, CARRYING_WITHIN)).then(|| m.rate.probe_interval())
    }

    /// How the bond's probes go out now, for status (None: it sends none).
    pub(super) fn probing_status(&self, now: Nanos) -> Option<String> {
        if self.policy.monitor == MonitorStrategy::Passive {
            return None;
        }
        Some(match self.monitor.no_peer_since {
            Some(since) if now.saturating_sub(since) >= DISCOVERY_QUIET_AFTER => format!(
                "discovering: no peer bond has answered for {} s; one broadcast per member every {} s",
                now.saturating_sub(since) / (1000 * MS),
                DISCOVERY_INTERVAL / (1000 * MS)
            ),
            Some(_) => "discovering: broadcast until a peer bond answers".to_string(),
            None => "to the peer bond, by unicast".to_string(),
        })
    }

    /// Probes every member whose turn it is (see `Member::next_probe`); under the dynamic
    /// strategy only members that received nothing for a third of the failover interval.
    pub(super) fn send_probes(&mut self, now: Nanos) {
        if self.policy.monitor == MonitorStrategy::Passive || !self.ports.can_send(Port::Bond) {
            return;
        }
        let due: Vec<Nanos> = self.members.iter().map(|m| self.probe_due(m, now)).collect();
        let measures_rates = self.policy.measures_rates();
        for (m, due) in self.members.iter_mut().zip(due) {
            let failover = self.policy.link_timing(&m.name).0 * MS;
            if now < due || !m.link.usable() {
                continue;
            }
            // The last request went unanswered: after a few in a row, discover the peer again.
            if m.probe_outstanding && m.probes.last_reply.is_none_or(|r| r < m.last_probe) {
                m.probes_unanswered += 1;
                if m.probes_unanswered >= crate::member::REDISCOVER_AFTER {
                    m.rediscover = true;
                }
            }
            let quiet = now.saturating_sub(m.last_rx) >= failover / 3;
            m.last_probe = now;
            m.probe_outstanding = self.policy.monitor != MonitorStrategy::Dynamic || quiet;
            if !m.probe_outstanding {
                continue;
            }
            m.probe_seq = m.probe_seq.wrapping_add(1);
            let nonce = rand::Rng::random::<u64>(&mut self.monitor.nonce);
            let to = m.probe_peer.filter(|_| !m.rediscover).unwrap_or([0xff; 6]);
            let frame = probe::request_frame(to, m.slot, m.probe_seq, self.settings.probe_id, nonce);
            m.probes.sent(m.probe_seq, now);
            m.rate.probe_sent(m.probe_seq);
            let kind = SendKind::Probe { slot: m.slot, seq: m.probe_seq };
            self.actions.push(Action::Send { port: Port::Bond, frame: frame.to_vec(), ether_type: ETH_P_PROBE, kind });
            // A link whose rate is measured and not found full yet: a packet train says its
            // capacity meanwhile (`health::capacity`), to the peer's member by unicast.
            if measures_rates && m.rate.bps.is_none() && m.probe_peer.is_some() && !m.rediscover && m.rate.capacity.due(now) {
                m.rate.capacity.sent(m.probe_seq.wrapping_add(1), now);
                for _ in 0..TRAIN_FRAMES {
                    m.probe_seq = m.probe_seq.wrapping_add(1);
                    let nonce = rand::Rng::random::<u64>(&mut self.monitor.nonce);
                    let mut frame = probe::request_frame(to, m.slot, m.probe_seq, self.settings.probe_id, nonce).to_vec();
                    frame.resize(TRAIN_FRAME_LEN, 0);
                    let kind = SendKind::Probe { slot: m.slot, seq: m.probe_seq };
                    self.actions.push(Action::Send { port: Port::Bond, frame, ether_type: ETH_P_PROBE, kind });
                }
            }
        }
    }
}
