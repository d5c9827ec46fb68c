//! One running bond, in two halves: [`Core`], its state and every decision about it, pure
//! (inputs and the time in, [`Action`]s out, unit-tested with a fake clock), and [`Bond`], the
//! core with its executor ([`BondIo`]: the kernel for the daemon, a recording fake in tests),
//! which reads what a tick needs, carries out the actions and feeds back what became of them.
//! Bringing a bond up and down ([`lifecycle`]) and changing its members ([`members`]; netlink,
//! program attachment) are
//! `Bond<Kernel>`'s alone. The monitoring (what happens on every tick) is in [`monitor`].

pub mod action;
mod address;
mod aggregation;
mod announce;
mod devices;
mod feedback;
pub mod io;
mod keepalive;
mod lifecycle;
mod members;
mod monitor;
mod own_macs;
mod probing;
mod quality;
mod reconfigure;
mod status;
#[cfg(test)]
mod tests;
mod watch;

use std::{
    collections::VecDeque,
    ops::{Deref, DerefMut},
    time::SystemTime,
};

use anyhow::{Context, bail};
use bond_common::config::{BUCKETS, Mode};
use tokio::task::JoinHandle;

use crate::{
    config::{BondSpec, ClassPolicy, Config, Peer, PolicySpec, check_policy_links},
    control::{Request, Response},
    health::metrics::Nanos,
    member::Member,
    netdev,
    placement::Placement,
    plan::{self, BondSettings, MemberView},
    status::{Event, EventKind},
};

pub use action::{Action, Outcome, Ports, Sample, SendKind, Wants};
pub use io::{BondIo, Kernel, Port};
pub use members::{Joining, Leaving, prepare_member, remove_orphan, restore, wait_for_grace_period};
pub use watch::{RxFilter, Wake, WakeWhat};

/// Events kept for `bondctl status`.
const EVENT_HISTORY: usize = 32;

/// Rounds of feedback per operation: actions, what failed, the core's answer to it (e.g. a
/// config again without the address a member refused), and what failed of that.
const FEEDBACK_ROUNDS: usize = 3;

/// A running bond's state and its decisions. Every input (a tick's [`Sample`], a link event,
/// probe replies, a request, an [`Outcome`]) comes with the time; what is to be done to the
/// world is queued as [`Action`]s, taken with [`Core::take_actions`].
pub struct Core {
    pub spec: BondSpec,
    pub policy: PolicySpec,
    device: Option<netdev::Link>,
    members: Vec<Member>,
    settings: BondSettings,
    /// Where the default policy puts traffic.
    main: Placement,
    /// Peer-specific policies (`peerSpecificBonds`), data-plane policy indices 1..
    peers: Vec<PeerPlacement>,
    /// The destination table: each peer and its policy index.
    peer_entries: Vec<(Peer, u32)>,
    /// Traffic classes with their own policy, in the data plane's order.
    classes: Vec<ClassPolicy>,
    generation: u64,
    /// See [`BondStatus::failovers`](crate::status::BondStatus::failovers).
    failovers: u64,
    events: VecDeque<Event>,
    /// Announcements still to send after a failover.
    announcing: Option<announce::Rounds>,
    /// Membership reports still to send after a failover (`resend_igmp`).
    rejoining: Option<announce::Rounds>,
    monitor: monitor::State,
    /// balance-tlb / balance-alb: learning packets and peer updates.
    own: own_macs::State,
    /// 802.3ad: LACP on the members.
    aggregation: Option<aggregation::Aggregation>,
    /// Where frames can go out (the executor's sockets).
    ports: Ports,
    /// A change of the bond's MTU being made: (old, new).
    mtu_change: Option<(u32, u32)>,
    /// A change of the bond's MAC address being made: (old, new).
    mac_change: Option<([u8; 6], [u8; 6])>,
    /// Addresses given to the bond device whose link events have not come yet.
    own_device_macs: VecDeque<[u8; 6]>,
    /// Whether the bond device is promiscuous (its members are then too).
    promiscuous: bool,
    /// Unicast addresses of devices above the bond, given to every member's filter.
    unicast: Vec<[u8; 6]>,
    /// `unicast` changed since the state file was written (it lists them, so that a bond taken
    /// down without a daemon takes them off its members).
    unicast_unsaved: bool,
    /// Whether the members' probe addresses are in their unicast filters (while it probes).
    probe_filters: bool,
    /// The bond device's IP addresses as the kernel has them (the file's, and any added by
    /// DHCP, NetworkManager or `ip addr`), read with what it receives (`watch_rx_filter`).
    device_addresses: Vec<std::net::IpAddr>,
    /// Decided, not yet carried out.
    actions: Vec<Action>,
}

/// A running bond: its [`Core`] and the executor `I` that does its I/O.
pub struct Bond<I: BondIo = Kernel> {
    core: Core,
    control: Option<JoinHandle<()>>,
    probe_reader: Option<JoinHandle<()>>,
    /// Follows the bond device's promiscuity (see `watch_promiscuity`).
    promisc_watch: Option<JoinHandle<()>>,
    /// Members being taken (their devices being prepared, off the daemon's loop).
    joining: Vec<members::Joining>,
    /// Members on their way out (their settings being given back).
    leaving: Vec<members::Leaving>,
    io: I,
}

impl<I: BondIo> Deref for Bond<I> {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl<I: BondIo> DerefMut for Bond<I> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

/// A peer-specific policy in force and where it puts traffic.
struct PeerPlacement {
    spec: PolicySpec,
    place: Placement,
}

/// A change of policy being made: what to put back if the data plane refuses it.
struct PolicySwitch {
    old: PolicySpec,
    old_main: Placement,
}

impl Core {
    fn new(spec: BondSpec, policy: PolicySpec, settings: BondSettings, now: Nanos) -> Core {
        // The table loaded with the data plane (a new size waits for a restart, as its maps).
        let settings = BondSettings { sticky_sets: bond_common::sticky::sets_for(spec.flow_table_size), ..settings };
        Core {
            spec,
            policy,
            device: None,
            members: Vec::new(),
            settings,
            main: Placement::default(),
            peers: Vec::new(),
            peer_entries: Vec::new(),
            classes: Vec::new(),
            generation: 0,
            failovers: 0,
            events: VecDeque::new(),
            announcing: None,
            rejoining: None,
            monitor: monitor::State::new(now),
            own: own_macs::State::default(),
            aggregation: None,
            ports: Ports::default(),
            mtu_change: None,
            mac_change: None,
            own_device_macs: VecDeque::new(),
            promiscuous: false,
            unicast: Vec::new(),
            unicast_unsaved: false,
            probe_filters: false,
            device_addresses: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// The actions decided so far, to be carried out in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn act(&mut self, action: Action) {
        self.actions.push(action);
    }
}

impl<I: BondIo> Bond<I> {
    /// Carries out what the core decided and feeds back what became of it, until the core has
    /// nothing more to do (at most [`FEEDBACK_ROUNDS`]). The first failure of a map write is
    /// returned; the core has already taken it into account (retried at the next tick, or
    /// put back).
    fn execute(&mut self, now: Nanos) -> anyhow::Result<()> {
        let mut error = None;
        for _ in 0..FEEDBACK_ROUNDS {
            let actions = self.core.take_actions();
            if actions.is_empty() {
                break;
            }
            let outcome = io::perform(&mut self.io, actions);
            error = error.or_else(|| outcome.error());
            self.core.executed(outcome, now);
        }
        // LACP's state changed (a port selected, attached, a new partner): written down for the
        // next controller; a failure is tried again at the next change.
        if (self.core.lacp_unsaved() || self.core.unicast_unsaved)
            && let Err(e) = self.persist()
        {
            tracing::warn!(bond = %self.spec.name, "recording the LACP state: {e:#}");
        }
        error.map_or(Ok(()), Err)
    }

    /// Tells the core where frames can go out now.
    fn sync_ports(&mut self) {
        let slots: Vec<u8> = self.core.members.iter().map(|m| m.slot).collect();
        self.core.ports = io::ports(&self.io, slots.into_iter());
    }
}

impl Core {
    fn views(&self) -> Vec<MemberView> {
        self.members
            .iter()
            .map(|m| MemberView {
                name: m.name.clone(),
                slot: m.slot,
                ifindex: m.link.index,
                usable: m.usable,
                score: m.score,
                judged: m.judged,
                speed: m.speed,
                mac: m.link.mac,
                prio: self.spec.prio_of(&m.name),
            })
            .collect()
    }

    pub fn has_member(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name)
    }

    /// The member in data-plane slot `slot` (slots stay put when other members leave).
    fn member(&self, slot: u8) -> Option<&Member> {
        self.members.iter().find(|m| m.slot == slot)
    }

    /// Monitored targets for the data plane: ARP targets IPv4-mapped at 0.., NS targets at 16..
    fn monitor_targets(&self) -> Vec<([u8; 16], u32)> {
        let Some(arp) = &self.spec.monitor.arp else {
            return Vec::new();
        };
        let v4 = arp.ip_targets.iter().enumerate().map(|(i, a)| (a.to_ipv6_mapped().octets(), i as u32));
        let v6 = arp.ns_targets.iter().enumerate().map(|(i, a)| (a.octets(), 16 + i as u32));
        v4.chain(v6).collect()
    }

    /// Recomputes the configuration and puts it in force.
    fn write_config(&mut self) {
        self.sync_probe_filters();
        let views = self.views();
        let arp = self.spec.monitor.arp.as_ref();
        self.settings.flags = BondSettings::flags_for(
            &self.policy,
            arp.is_some_and(|a| !a.ip_targets.is_empty()),
            arp.is_some_and(|a| !a.ns_targets.is_empty()),
        );
        if self.policy.mode == Mode::Lacp && self.spec.lacp.broadcast_neighbor {
            self.settings.flags |= bond_common::config::bond_flags::BROADCAST_NEIGH;
        }
        // A peer's or class's broadcast with dedup: the receiver drops the copies of any traffic.
        if self.peers.iter().any(|p| p.spec.mode == Mode::Broadcast && p.spec.dedup) {
            self.settings.flags |= bond_common::config::bond_flags::RX_DEDUP;
        }
        let main = plan::policy_config(&self.policy, &views, self.main.active, &self.main.buckets);
        let peers = self.peers.iter().map(|p| plan::policy_config(&p.spec, &views, p.place.active, &p.place.buckets));
        let policies: Vec<_> = std::iter::once(main).chain(peers).collect();
        self.generation += 1;
        self.monitor.config_unwritten = false;
        let cfg = plan::bond_config(&self.settings, &views, &policies, self.generation);
        self.act(Action::WriteConfig(Box::new(cfg)));
        self.update_schedule();
    }

    /// balance-aware `packet`'s rates and delays (`plan::schedules`), written when they changed:
    /// a rate, or a delay by more than a tenth (probes wander; each write is one map update per
    /// member).
    fn update_schedule(&mut self) {
        let views = self.views();
        let base = |slot: u8| self.member(slot).and_then(|m| m.probes.base_rtt());
        let measured = |slot: u8| self.member(slot).map_or(crate::health::rates::Measured::Unmeasurable, |m| m.rate.measured());
        let next = plan::schedules(&self.policy, &views, base, measured).to_vec();
        let old = &self.monitor.schedule;
        let moved = |a: u32, b: u32| a.abs_diff(b) > b / 10;
        let changed =
            old.len() != next.len() || old.iter().zip(&next).any(|(o, n)| o.ps_per_byte != n.ps_per_byte || moved(o.delay_ns, n.delay_ns));
        if changed {
            self.monitor.schedule = next.clone();
            self.act(Action::SetSchedule(next));
        }
    }

    /// Re-allocates balance-aware's buckets of every policy in force when the usable members
    /// or their weights changed (`force`: whatever the change).
    fn reallocate(&mut self, force: bool) {
        let views = self.views();
        let before = self.main.buckets;
        self.main.reallocate(&self.policy, &views, force);
        if self.main.buckets != before {
            // Flows moved: how they now fall on the members is judged again soon.
            self.monitor.rebalance_settled = false;
        }
        for p in &mut self.peers {
            p.place.reallocate(&p.spec, &views, force);
        }
    }

    /// Chooses the active member of every policy in force (active-backup, none); announces a
    /// change of the default policy's.
    fn choose_active(&mut self, now: u64) {
        let views = self.views();
        for p in &mut self.peers {
            p.place.choose_active(&p.spec, &views, now);
        }
        let changed = self.main.choose_active(&self.policy, &views, now);
        // Also when the active member stays: a member that just joined may need an address.
        let macs = self.apply_mac_roles(now);
        if let Some(applied) = &mut self.own.applied {
            applied.extend(macs);
        }
        let Some(before) = changed else { return };
        self.monitor.active_since = now;
        // The new active member receives the bond's multicast (in balance-tlb and balance-alb
        // too): snooping switches are told at once (`resend_igmp`).
        if before.is_some()
            && let Some(a) = self
                .main
                .active
                .filter(|_| matches!(self.policy.mode, Mode::ActiveBackup | Mode::None | Mode::BalanceTlb | Mode::BalanceAlb))
        {
            self.rejoin(a, now);
        }
        if matches!(self.policy.mode, Mode::ActiveBackup | Mode::None) {
            let name = |s: Option<u8>| match s {
                None => "none".to_string(),
                Some(s) => self.member(s).map_or_else(|| format!("slot {s} (removed)"), |m| m.name.clone()),
            };
            self.event(EventKind::Active, format!("active member {} -> {}", name(before), name(self.main.active)));
            if before.is_some()
                && let Some(a) = self.main.active
            {
                self.failovers += 1;
                self.announce(a, now);
            }
        }
    }

    /// What the data plane must see change after a choice or an allocation.
    fn placement_key(&self) -> Vec<(Option<u8>, [u8; BUCKETS])> {
        std::iter::once(&self.main).chain(self.peers.iter().map(|p| &p.place)).map(Placement::key).collect()
    }

    /// Puts the configuration's peer- and class-specific policies in force (with the next
    /// config write): one data-plane policy per distinct policy, the class rules and the
    /// destination tables pointing at them.
    fn set_peers(&mut self, config: &Config) -> anyhow::Result<()> {
        let mut names: Vec<&String> = config.peers.iter().map(|p| &p.policy).chain(config.classes.iter().map(|c| &c.policy)).collect();
        names.sort();
        names.dedup();
        let mut peers = Vec::new();
        for name in names {
            let spec = config.policy(name).with_context(|| format!("no policy {name}"))?.clone();
            // A policy kept from before keeps its placement (no flow moves).
            let place = self.peers.iter().find(|p| p.spec.name == *name).map(|p| p.place.clone()).unwrap_or_default();
            peers.push(PeerPlacement { spec, place });
        }
        let index = |policy: &str| peers.iter().position(|p| p.spec.name == policy).map_or(0, |i| i as u32 + 1);
        let entries: Vec<(Peer, u32)> = config.peers.iter().map(|p| (p.peer, index(&p.policy))).collect();
        self.settings.peer_tables = action::peer_table_bits(&entries);
        self.settings.classes = Default::default();
        for (slot, c) in self.settings.classes.iter_mut().zip(&config.classes) {
            *slot = c.rule(index(&c.policy));
        }
        self.settings.n_classes = config.classes.len().min(bond_common::config::MAX_CLASSES) as u32;
        self.classes = config.classes.clone();
        self.act(Action::SetPeers(entries.clone()));
        self.peers = peers;
        self.peer_entries = entries;
        Ok(())
    }

    /// The bond's IP addresses: those the kernel has on its device, else (not read yet) the
    /// file's. What announcements announce, and where the monitors' requests come from.
    pub(super) fn addresses(&self) -> Vec<std::net::IpAddr> {
        if self.device_addresses.is_empty() { self.spec.addresses.iter().map(|(a, _)| *a).collect() } else { self.device_addresses.clone() }
    }

    /// The bond's first IPv4 address.
    pub(super) fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.addresses().into_iter().find_map(|a| if let std::net::IpAddr::V4(a) = a { Some(a) } else { None })
    }

    fn event(&mut self, kind: EventKind, what: String) {
        tracing::info!(bond = %self.spec.name, "{what}");
        let seq = self.events.back().map_or(1, |e| e.seq + 1);
        self.events.push_back(Event::new(seq, SystemTime::now(), kind, what));
        while self.events.len() > EVENT_HISTORY {
            self.events.pop_front();
        }
    }

    /// Events after `seq` (all kept, for 0).
    pub fn events_after(&self, seq: u64) -> Vec<Event> {
        self.events.iter().filter(|e| e.seq > seq).cloned().collect()
    }

    /// Puts `policy` in force in place of the one in force (one config write, addresses of
    /// tlb/alb members moved first); [`Core::undo_policy`] puts everything back if the data
    /// plane refuses it.
    fn switch_policy(&mut self, policy: PolicySpec, now: Nanos) -> PolicySwitch {
        let old = std::mem::replace(&mut self.policy, policy);
        let switch = PolicySwitch { old, old_main: self.main.clone() };
        self.monitor.restart_rebalancing();
        self.own.applied = Some(Vec::new());
        self.choose_active(now);
        self.reallocate(true);
        self.write_config();
        self.announce_due(now);
        switch
    }

    /// The data plane refused `switch`: nothing of it stays, not the policy, its placement,
    /// nor the members' addresses.
    fn undo_policy(&mut self, switch: PolicySwitch) {
        (self.policy, self.main) = (switch.old, switch.old_main);
        let applied = self.own.applied.take().unwrap_or_default();
        self.undo_mac_roles(&applied);
    }

    /// `switch` is in force.
    fn policy_switched(&mut self, switch: &PolicySwitch) -> Option<String> {
        self.own.applied = None;
        (switch.old != self.policy).then(|| {
            if switch.old.name == self.policy.name {
                format!("policy {} changed", self.policy.name)
            } else {
                format!("policy {} -> {}", switch.old.name, self.policy.name)
            }
        })
    }

    /// Refuses a switch into or out of a mode that shapes how members take part (802.3ad runs
    /// LACP on them; balance-tlb / balance-alb give them their own MAC addresses, and alb tells
    /// peers to use them), as bonding refuses a mode change while it has members.
    pub fn check_mode_switch(&self, to: &PolicySpec) -> anyhow::Result<()> {
        let family = |m: Mode| match m {
            Mode::Lacp => 1,
            Mode::BalanceTlb => 2,
            // alb's peers send to members' own addresses, which tlb does not take.
            Mode::BalanceAlb => 3,
            _ => 0,
        };
        let from = self.policy.mode;
        if family(from) != family(to.mode) {
            bail!(
                "policy {} ({}) cannot replace {} ({}) on a running bond: {} and {} treat members differently; \
                 take the bond down and up again with the new policy",
                to.name,
                to.mode.name(),
                self.policy.name,
                from.name(),
                from.name(),
                to.mode.name()
            );
        }
        Ok(())
    }
}

impl<I: BondIo> Bond<I> {
    pub fn handle(&mut self, config: &Config, req: Request, now: Nanos) -> Response {
        let result = match req {
            Request::Status => {
                return self
                    .status()
                    .map_or_else(|e| Response::Error { error: format!("{e:#}") }, |s| Response::Status { status: Box::new(s) });
            }
            Request::SetPolicy { policy } => self.set_policy(config, &policy, now),
            Request::Set { options } => self.set_options(&options, now),
            Request::Events { after } => return Response::Events { events: self.events_after(after) },
            // Changes of the member set and the daemon's bonds are the daemon's (they await
            // netlink).
            other => Err(anyhow::anyhow!("{other:?} is not a request for one bond")),
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(e) => Response::Error { error: format!("{e:#}") },
        }
    }

    fn set_policy(&mut self, config: &Config, name: &str, now: Nanos) -> anyhow::Result<String> {
        let Some(policy) = config.policy(name) else {
            bail!("unknown policy \"{name}\" (known: {})", config.policies.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        check_policy_links(std::path::Path::new("(config)"), &format!("settings.policies.{name}"), policy, &self.spec.links)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.reason))?;
        self.check_mode_switch(policy)?;
        let old = self.policy.name.clone();
        self.put_policy_in_force(policy.clone(), now)?;
        let what = format!("policy {old} -> {}", self.policy.name);
        self.event(EventKind::Config, what);
        Ok(format!("{}: policy {}", self.spec.name, self.policy.name))
    }

    /// `policy` in force, or (refused) nothing changed; what changed.
    fn put_policy_in_force(&mut self, policy: PolicySpec, now: Nanos) -> anyhow::Result<Option<String>> {
        if policy == self.policy {
            return Ok(None);
        }
        self.sync_ports();
        let switch = self.core.switch_policy(policy, now);
        if let Err(e) = self.execute(now) {
            self.core.undo_policy(switch);
            // Best effort: what the undo cannot put back is in the events.
            let _ = self.execute(now);
            return Err(e);
        }
        Ok(self.core.policy_switched(&switch))
    }
}
