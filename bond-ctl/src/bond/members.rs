//! Members joining and leaving a running bond, and a new controller adopting a bond that a
//! previous one left running (its data plane pinned, its members' old settings in
//! [`runstate`]).
//!
//! Both directions keep traffic flowing: a joining member is taken (bond MAC, up, receive
//! program) before any packet is sent on it; a leaving member is first taken out of the
//! configuration in force, and released only after the grace period, when no packet can
//! still be sent on it.

use anyhow::{Context, bail};
use bond_common::config::{MAX_MEMBERS, Mode, NO_MEMBER};

use super::{Action, Bond, BondIo, Core, keepalive};
use crate::{
    dataplane::{self, Dataplane},
    member::{Member, Saved},
    netdev::{self, Link, Netdev},
    runstate::{self, RunState, SavedMember},
    status::EventKind,
    sys,
};

/// A member being taken: its slot reserved and its settings recorded (in the state file), its
/// device not changed yet. See [`Bond::reserve_member`].
#[derive(Clone)]
pub struct Joining {
    pub name: String,
    slot: u8,
    link: Link,
    saved: Saved,
    /// The bond's MAC address, for members that take it (not under balance-tlb / alb).
    mac: Option<[u8; 6]>,
    /// The bond's MTU, where the device's differs.
    mtu: Option<u32>,
}

/// A member on its way out: no traffic on it, its settings still recorded until they are
/// given back. See [`Bond::begin_removal`].
#[derive(Clone)]
pub struct Leaving {
    pub name: String,
    slot: u8,
    saved: Option<Saved>,
    /// Addresses of devices above the bond it was given, taken back with its settings.
    pub unicast: Vec<[u8; 6]>,
}

impl Joining {
    pub fn saved(&self) -> &Saved {
        &self.saved
    }
}

impl Leaving {
    pub fn saved(&self) -> Option<&Saved> {
        self.saved.as_ref()
    }
}

impl Bond {
    /// Takes interface `name` as a new member in the lowest free slot. It carries traffic from
    /// the next config write.
    pub(super) async fn take_member(&mut self, nl: &Netdev, name: &str) -> anyhow::Result<()> {
        let link = nl.require_link(name).await.with_context(|| format!("member {name}"))?;
        let joining = self.reserve_member(link)?;
        let prepared = prepare_member(nl, &joining).await;
        let attached = prepared.and_then(|link| dataplane::attach_ingress_pinned(&sys::pin_dir(&self.spec.name), name).map(|()| link));
        let speed = self.io.speed_mbps(name);
        let admitted = attached.and_then(|link| self.admit_member(&joining, link, speed));
        if let Err(e) = admitted {
            self.give_back(nl, joining).await;
            return Err(e);
        }
        Ok(())
    }

    /// First step of taking `link` (no I/O but the state file): checks, a slot, and the
    /// device's settings recorded before anything changes, so a failure later (or a crash)
    /// still gives them back.
    pub fn reserve_member(&mut self, link: Link) -> anyhow::Result<Joining> {
        let name = link.name.clone();
        if self.has_member(&name) || self.joining.iter().any(|j| j.name == name) {
            bail!("{name} is a member of {} already", self.spec.name);
        }
        netdev::check_member(&link, &self.spec.name)?;
        if link.index == self.settings.ifindex {
            bail!("{name} is the bond device itself");
        }
        let taken =
            |s: u8| self.member(s).is_some() || self.joining.iter().any(|j| j.slot == s) || self.leaving.iter().any(|l| l.slot == s);
        let slot = (0..MAX_MEMBERS as u8).find(|s| !taken(*s)).with_context(|| format!("a bond has at most {MAX_MEMBERS} members"))?;
        let saved = settings_of(&link);
        let joining = Joining {
            name: name.clone(),
            slot,
            saved,
            // balance-tlb / balance-alb members keep their own (see `apply_mac_roles`).
            mac: (!self.own_macs()).then_some(self.settings.mac),
            // The bond's MTU, as bonding gives its members.
            mtu: self.device.as_ref().map(|d| d.mtu).filter(|m| *m != link.mtu),
            link,
        };
        self.joining.push(joining.clone());
        if let Err(e) = self.persist() {
            self.joining.retain(|j| j.slot != slot);
            return Err(e.context(format!("recording {name}'s settings")));
        }
        Ok(joining)
    }

    /// Last step of taking a member whose device is ready (`link` as it is now) and has its
    /// receive program (`dataplane::attach_ingress_pinned`) and whose speed was read (ethtool
    /// waits for the RTNL lock: not on the daemon's loop): its counters and sockets, and a
    /// member from now on (usable from the next config write).
    pub fn admit_member(&mut self, joining: &Joining, link: Link, speed: Option<u32>) -> anyhow::Result<()> {
        let (name, slot) = (joining.name.as_str(), joining.slot);
        let kept = self.io.dataplane().and_then(|dp| {
            dp.maps.reset_member(slot)?;
            dp.keep_ingress_link(name)
        });
        kept.with_context(|| format!("taking {name} into {}", self.spec.name))?;
        self.joining.retain(|j| j.slot != slot);
        let mut m = Member::new(name.to_string(), slot, link.clone(), joining.saved.clone(), sys::monotonic_ns());
        m.speed = speed;
        self.io.open_member(slot, link.index);
        self.io.watch_member(name);
        m.usable = link.usable();
        m.liveness = crate::health::liveness::Liveness::new(m.usable, sys::monotonic_ns());
        self.core.members.push(m);
        Ok(())
    }

    /// Gives a member that could not be taken its settings back, and forgets it.
    pub async fn give_back(&mut self, nl: &Netdev, joining: Joining) {
        self.detach_joining(&joining);
        restore(nl, &self.spec.name, &joining.name, &joining.saved, &[]).await;
        self.forget_joining(&joining);
    }

    /// Takes the receive program off a member that could not be taken (if it got one).
    pub fn detach_joining(&mut self, joining: &Joining) {
        // Its link, if the program was attached, is pinned whether or not it was kept.
        if let Some(dp) = self.io.dataplane.as_mut() {
            let _ = dp.keep_ingress_link(&joining.name).and_then(|()| dp.detach(&joining.name));
        }
    }

    /// A member that could not be taken (its settings given back) is no longer recorded.
    pub fn forget_joining(&mut self, joining: &Joining) {
        self.joining.retain(|j| j.slot != joining.slot);
        if let Err(e) = self.persist() {
            tracing::warn!(bond = %self.spec.name, "recording the members: {e:#}");
        }
    }

    /// Re-reads member `slot`'s device after its settings changed.
    async fn refresh_member(&mut self, nl: &Netdev, slot: u8) -> anyhow::Result<()> {
        let i = self.members.iter().position(|m| m.slot == slot).context("no such member")?;
        let link = nl.require_link(&self.members[i].name).await?;
        let m = &mut self.core.members[i];
        m.speed = self.io.speed_mbps(&m.name);
        self.io.open_member(slot, link.index);
        self.io.watch_member(&m.name);
        m.usable = link.usable();
        m.liveness = crate::health::liveness::Liveness::new(m.usable, sys::monotonic_ns());
        m.link = link;
        Ok(())
    }

    /// A member just admitted carries traffic: usable first (its bit may still be clear from an
    /// earlier member of the slot), then the config that sends on it.
    pub fn member_added(&mut self, name: &str) -> String {
        self.spec.links.push(name.to_string());
        self.put_member_in_force(name, sys::monotonic_ns());
        self.event(EventKind::Member, format!("member {name} added"));
        format!("{}: {name} added", self.spec.name)
    }

    /// A member (just admitted, or back) carries traffic: usable first (its bit may still be
    /// clear from an earlier member of the slot), then the config that sends on it.
    fn put_member_in_force(&mut self, name: &str, now: crate::health::metrics::Nanos) {
        self.sync_ports();
        self.hold_until_lacp_allows(now);
        self.write_usable();
        self.settle(now, true);
        if self.promiscuous {
            self.act(Action::SetPromisc { member: name.to_string(), on: true });
        }
        if let Some(slot) = self.members.iter().find(|m| m.name == name).map(|m| m.slot) {
            for mac in self.filter_addresses(slot) {
                self.act(Action::SetUnicast { member: name.to_string(), mac, on: true });
            }
        }
        if let Err(e) = self.execute(now) {
            // Written again at the next tick (see `Core::executed`).
            tracing::warn!(bond = %self.spec.name, "putting {name} in force: {e:#}");
        }
    }

    /// Member `name`'s device was deleted (see `Core::on_link`): what the bond held on it goes
    /// (its sockets, the pinned link of its receive program, its carrier watch); it stays a
    /// member, not usable, with its slot and saved settings.
    pub fn release_vanished(&mut self, name: &str) -> anyhow::Result<()> {
        let m = self.members.iter().find(|m| m.name == name && m.gone).with_context(|| format!("{name} is not a vanished member"))?;
        let slot = m.slot;
        self.io.close_member(slot);
        self.io.unwatch_member(name);
        // The kernel took the program off with the device; what is left is the pin.
        if let Some(dp) = self.io.dataplane.as_mut() {
            let _ = dp.detach(name);
        }
        self.sync_ports();
        Ok(())
    }

    /// First step of taking back member `link.name`, whose device was deleted, on the device of
    /// that name that appeared (`link`): the bond's settings for it, with the member's slot and
    /// its settings from before it first joined (given back when it leaves). None when there is
    /// nothing to take back (taken back already, or removed).
    pub fn begin_retake(&mut self, link: Link) -> anyhow::Result<Option<Joining>> {
        let Some(m) = self.members.iter().find(|m| m.name == link.name && m.gone) else { return Ok(None) };
        let (slot, saved) = (m.slot, m.saved.clone());
        if let Err(e) = netdev::check_member(&link, &self.spec.name) {
            self.refuse_retake(&link.name, link.index);
            return Err(e);
        }
        let saved = saved.unwrap_or_else(|| settings_of(&link));
        Ok(Some(Joining {
            name: link.name.clone(),
            slot,
            saved,
            mac: (!self.own_macs()).then_some(self.settings.mac),
            mtu: self.device.as_ref().map(|d| d.mtu).filter(|m| *m != link.mtu),
            link,
        }))
    }

    /// Last step of taking back a member whose device was deleted: its new device (prepared,
    /// with its receive program, `link` as it is now) carries traffic again.
    pub fn readmit_member(&mut self, joining: &Joining, link: Link, speed: Option<u32>) -> anyhow::Result<String> {
        let name = joining.name.as_str();
        self.io.dataplane()?.keep_ingress_link(name).with_context(|| format!("taking {name} back"))?;
        let now = sys::monotonic_ns();
        let index = link.index;
        let m = self
            .core
            .members
            .iter_mut()
            .find(|m| m.slot == joining.slot && m.gone)
            .with_context(|| format!("{name} is no longer a vanished member"))?;
        (m.gone, m.retake_refused, m.speed) = (false, None, speed);
        m.usable = link.usable();
        m.liveness = crate::health::liveness::Liveness::new(m.usable, sys::monotonic_ns());
        // Probes get a failover interval to prove it before silence counts.
        m.probe_epoch = now;
        m.link = link;
        self.io.open_member(joining.slot, index);
        self.io.watch_member(name);
        self.put_member_in_force(name, now);
        self.event(EventKind::Member, format!("member {name} is back (ifindex {index}): taken again with its saved settings"));
        Ok(format!("{}: {name} taken back", self.spec.name))
    }

    /// Removes a member from a bond being adopted (the daemon's `remove-link` and reloads do
    /// it in steps beside its loop):
    /// its traffic moves to the others first, then it gets its own settings back.
    pub async fn remove_member(&mut self, nl: &Netdev, name: &str) -> anyhow::Result<String> {
        let leaving = self.begin_removal(name)?;
        wait_for_grace_period().await;
        if let Some(saved) = &leaving.saved {
            restore(nl, &self.spec.name, &leaving.name, saved, &leaving.unicast).await;
        }
        Ok(self.member_removed(leaving))
    }

    /// First step of removing member `name`: the config without it (another active member,
    /// its buckets elsewhere) and the usable mask, its last LACPDU, its receive program and
    /// sockets. Packets that read the old config finish within the grace period, after which
    /// its settings may be given back.
    pub fn begin_removal(&mut self, name: &str) -> anyhow::Result<Leaving> {
        let Some(i) = self.members.iter().position(|m| m.name == name) else {
            bail!("{name} is not a member of {}", self.spec.name);
        };
        if self.members.len() == 1 {
            bail!("{name} is the last member of {}; `bondctl down {}` removes the bond", self.spec.name, self.spec.name);
        }
        let now = sys::monotonic_ns();
        let m = self.core.take_out(i, now);
        self.write_usable();
        if let Err(e) = self.execute(now) {
            // Still attached and maybe still in the config in force: it stays a member, and the
            // next tick writes the mask and config of all the members again.
            self.core.members.insert(i, m);
            self.monitor.usable_unwritten = true;
            self.monitor.config_unwritten = true;
            return Err(e.context(format!("removing {name} from {}", self.spec.name)));
        }
        self.spec.links.retain(|l| l != name);
        self.lacp_leave(m.slot, now);
        // The last LACPDU goes out now; a failure to send it is the partner's timeout.
        let _ = self.execute(now);
        self.io.close_member(m.slot);
        self.io.unwatch_member(&m.name);
        if let Some(dp) = self.io.dataplane.as_mut()
            && let Err(e) = dp.detach(&m.name)
        {
            tracing::warn!(bond = %self.spec.name, "detaching {}: {e:#}", m.name);
        }
        let unicast = self.filter_addresses(m.slot);
        let leaving = Leaving { name: m.name, slot: m.slot, saved: m.saved, unicast };
        self.leaving.push(leaving.clone());
        Ok(leaving)
    }

    /// Last step of removing a member whose settings were given back.
    pub fn member_removed(&mut self, leaving: Leaving) -> String {
        let name = leaving.name;
        self.leaving.retain(|l| l.slot != leaving.slot);
        if let Err(e) = self.persist() {
            tracing::warn!(bond = %self.spec.name, "recording the members: {e:#}");
        }
        self.event(EventKind::Member, format!("member {name} removed"));
        if leaving.saved.map(|s| s.mac) == Some(self.settings.mac) {
            self.event(EventKind::Warning, format!("{name} has its own MAC address back, which the bond still uses: both now share it"));
        }
        format!("{}: {name} removed", self.spec.name)
    }

    /// Takes over a bond whose data plane a previous controller left running: the same
    /// device, maps and member slots; the programs are replaced without a gap; the active
    /// member and bucket table in force are kept. Returns false (changing nothing) when there
    /// is nothing to adopt.
    pub(super) async fn adopt(&mut self, nl: &Netdev, state: &RunState) -> anyhow::Result<bool> {
        let name = self.spec.name.clone();
        let pin_dir = sys::pin_dir(&name);
        let device = nl.link(&name).await?.filter(|d| netdev::is_bond_device_at(d, state.ifindex));
        let Some(device) = device else { return Ok(false) };
        if state.layout != runstate::layout() || !pin_dir.join(dataplane::egress_pin(&name)).exists() {
            return Ok(false);
        }
        // What can fail without touching the running bond comes first: a failure here leaves
        // it (and its state file) as it was.
        let saved = state.members.iter().map(|sm| Ok((sm, sm.saved()?))).collect::<anyhow::Result<Vec<_>>>()?;
        // A fast-rate partner disables a port after 3 s without a LACPDU, and loading the
        // programs can take that long on a busy host: the saved LACPDUs go out meanwhile.
        let _keepalive = state
            .lacp
            .as_ref()
            .filter(|_| self.policy.mode == Mode::Lacp)
            .map(|snapshot| keepalive::LacpKeepalive::start(snapshot, &state.members));
        if let Some(ms) = std::env::var("BONDCTL_TEST_ADOPT_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
            // Tests stand in for a busy host's slow verifier with this.
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let dp = Dataplane::load(&pin_dir, self.spec.flow_table_size).context("loading the data plane over the running bond's maps")?;
        let cfg = dp.maps.config()?;
        let resized = dp.flow_table_resized_from.map(|from| {
            format!("flow table resized from {from} to {} entries: its flows are placed afresh by their buckets", self.spec.flow_table_size)
        });
        self.settings.ifindex = device.index;
        self.settings.mac = device.mac;
        // The same probe addresses: peers keep probing them, and they stay in the filters.
        if cfg.probe_id != 0 {
            self.settings.probe_id = cfg.probe_id;
        }
        self.device = Some(device);
        self.io.dataplane = Some(dp);
        let now = sys::monotonic_ns();
        for (sm, saved) in saved {
            match nl.link(&sm.name).await? {
                Some(link) => self.members.push(Member::new(sm.name.clone(), sm.slot, link, saved, now)),
                None => self.event(EventKind::Member, format!("member {} vanished while no controller ran", sm.name)),
            }
        }
        for slot in self.members.iter().map(|m| m.slot).collect::<Vec<_>>() {
            self.refresh_member(nl, slot).await?;
        }
        for m in &self.core.members {
            self.io.dataplane()?.attach_ingress(&m.name)?;
        }
        self.generation = cfg.generation;
        let policy = &cfg.policies[usize::try_from(cfg.default_policy).unwrap_or(0).min(cfg.policies.len() - 1)];
        self.main.active = u8::try_from(policy.active).ok().filter(|s| *s != NO_MEMBER && self.member(*s).is_some());
        self.main.buckets = policy.buckets;
        if let Some(snapshot) = &state.lacp {
            self.lacp_take_over(snapshot, now);
        }
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let what = format!("adopted the running bond (generation {}, members {})", cfg.generation, names.join(", "));
        self.event(EventKind::Bond, what);
        if let Some(resized) = resized {
            self.event(EventKind::Config, resized);
        }
        Ok(true)
    }
}

impl<I: BondIo> Bond<I> {
    /// Records the members' saved settings (see [`runstate`]).
    pub(super) fn persist(&mut self) -> anyhow::Result<()> {
        let members = self.members.iter().filter_map(|m| m.saved.as_ref().map(|s| SavedMember::new(&m.name, m.slot, s)));
        // Members on their way in or out too: their devices may be changed already.
        let joining = self.joining.iter().map(|j| SavedMember::new(&j.name, j.slot, &j.saved));
        let leaving = self.leaving.iter().filter_map(|l| l.saved.as_ref().map(|s| SavedMember::new(&l.name, l.slot, s)));
        let members = members.chain(joining).chain(leaving).collect();
        let lacp = self.lacp_snapshot();
        self.io.store_state(&RunState {
            bond: self.spec.name.clone(),
            layout: runstate::layout(),
            ifindex: self.settings.ifindex,
            members,
            lacp: lacp.clone(),
            unicast: self.unicast.iter().map(|m| crate::mac::format_mac(m)).collect(),
            probe_id: self.probe_filter_id(),
        })?;
        self.core.lacp_saved(lacp);
        self.core.unicast_unsaved = false;
        Ok(())
    }
}

impl Core {
    /// The addresses the bond puts in member `slot`'s unicast filter (see
    /// [`runstate::member_filter`]).
    pub(super) fn filter_addresses(&self, slot: u8) -> Vec<[u8; 6]> {
        runstate::member_filter(&self.unicast, self.probe_filter_id(), slot)
    }

    /// The probe id whose addresses are in the members' filters (0: none, the bond does not
    /// probe).
    pub(super) fn probe_filter_id(&self) -> u32 {
        if self.probe_filters { self.settings.probe_id } else { 0 }
    }

    /// Puts the members' probe addresses in their filters while the bond probes, and takes
    /// them out when it stops (a policy switch, `monitorStrategy` set).
    pub(super) fn sync_probe_filters(&mut self) {
        let want = self.policy.monitor != crate::config::model::MonitorStrategy::Passive;
        if want == self.probe_filters {
            return;
        }
        for m in self.members.iter().filter(|m| !m.gone) {
            let mac = bond_common::probe::member_probe_mac(self.settings.probe_id, m.slot);
            self.actions.push(Action::SetUnicast { member: m.name.clone(), mac, on: want });
        }
        self.probe_filters = want;
        self.unicast_unsaved = true;
    }

    /// Member `i` leaves the members: the others settle without it (another active member,
    /// its buckets elsewhere), and under balance-tlb/alb whoever carries its own address gives
    /// it up (see `free_own_address`). Returns it.
    pub(super) fn take_out(&mut self, i: usize, now: crate::health::metrics::Nanos) -> Member {
        let m = self.members.remove(i);
        self.settle(now, true);
        self.free_own_address(&m);
        m
    }

    /// The ifindex of member `name`'s device.
    pub fn member_index(&self, name: &str) -> Option<u32> {
        self.members.iter().find(|m| m.name == name).map(|m| m.link.index)
    }

    /// The bond device's ifindex.
    pub fn device_index(&self) -> Option<u32> {
        self.device.as_ref().map(|d| d.index)
    }

    /// Whether device `link` is one a member whose device was deleted should be taken back on
    /// (same name, not refused before).
    pub fn wants_back(&self, link: &Link) -> bool {
        self.members.iter().any(|m| m.name == link.name && m.gone && m.retake_refused != Some(link.index))
    }

    /// Records a warning for `bondctl status` and the logs.
    pub fn note_warning(&mut self, what: String) {
        self.event(EventKind::Warning, what);
    }

    /// Member `name`'s device `index` cannot be taken back: not tried again on it.
    pub fn refuse_retake(&mut self, name: &str, index: u32) {
        if let Some(m) = self.members.iter_mut().find(|m| m.name == name) {
            m.retake_refused = Some(index);
        }
    }
}

/// The settings of device `link` that taking it changes (given back when it leaves).
fn settings_of(link: &Link) -> Saved {
    Saved {
        mac: link.mac,
        admin_up: link.admin_up,
        ipv6_disabled: sys::ipv6_disabled(&link.name),
        mtu: Some(link.mtu),
        allmulti: Some(link.allmulti),
        promisc: Some(link.promisc),
    }
}

/// Makes `joining`'s device a member's (netlink and sysctls only, no state of the bond):
/// its own IPv6 off, the bond's MAC address and MTU, up, all-multicast. Returns the device as
/// it is now.
pub async fn prepare_member(nl: &Netdev, joining: &Joining) -> anyhow::Result<Link> {
    let (name, link) = (joining.name.as_str(), &joining.link);
    let prepared = async {
        // The member's own IPv6 (link-local, ND) would bypass the bond.
        if joining.saved.ipv6_disabled == Some(false) {
            sys::set_ipv6_disabled(name, true)?;
        }
        if let Some(mac) = joining.mac {
            nl.set_mac(link, mac).await?;
        }
        if let Some(mtu) = joining.mtu {
            sys::set_mtu(name, mtu).with_context(|| format!("giving {name} the bond's MTU {mtu}"))?;
        }
        nl.set_up(link, true).await?;
        // Every multicast group the bond joins (IPv6 neighbour discovery, groups of
        // applications and `ip maddr`) reaches it through any member, whatever the NIC filters
        // in hardware: members receive all multicast, as bonding's do for its active member
        // (here every member may be receiving for the bond).
        nl.set_allmulti(link, true).await?;
        nl.require_link(name).await
    };
    prepared.await.with_context(|| format!("taking {name}"))
}

/// Waits, off the caller's thread, until no packet can still be reading a config switched away
/// from before the call (see [`sys::wait_for_bpf_readers`]).
pub async fn wait_for_grace_period() {
    if let Err(e) = tokio::task::spawn_blocking(sys::wait_for_bpf_readers).await {
        tracing::warn!("waiting for the grace period: {e}");
        sys::wait_for_bpf_readers();
    }
}

/// Gives a member its settings from before it joined. Never fails: problems are logged.
pub async fn restore(nl: &Netdev, bond: &str, member: &str, saved: &Saved, unicast: &[[u8; 6]]) {
    let warn = |what: &str, e: anyhow::Error| tracing::warn!(bond = %bond, "{what} of {member}: {e:#}");
    // Nothing the bond asked of the member's filters lands after this.
    crate::rx_filters::settled().await;
    let Ok(Some(link)) = nl.link(member).await else { return };
    // The addresses of devices above the bond come out of its filter.
    for mac in unicast {
        if let Err(e) = crate::addrlist::del(link.index, *mac) {
            warn("removing an address from the unicast filter", e.into());
        }
    }
    if let Err(e) = nl.set_mac(&link, saved.mac).await {
        warn("restoring the MAC address", e);
    }
    if saved.allmulti == Some(false)
        && let Err(e) = nl.set_allmulti(&link, false).await
    {
        warn("restoring allmulticast", e);
    }
    if saved.promisc == Some(false)
        && link.promisc
        && let Err(e) = nl.set_promisc(&link, false).await
    {
        warn("restoring promiscuous mode", e);
    }
    if !saved.admin_up
        && let Err(e) = nl.set_up(&link, false).await
    {
        warn("restoring the link state", e);
    }
    if let Some(v) = saved.ipv6_disabled
        && let Err(e) = sys::set_ipv6_disabled(member, v)
    {
        warn("restoring the IPv6 setting", e);
    }
    if let Some(mtu) = saved.mtu.filter(|m| *m != link.mtu)
        && let Err(e) = sys::set_mtu(member, mtu)
    {
        warn("restoring the MTU", e.into());
    }
}

/// Removes a bond that no controller runs (`bondctl down` after the daemon was killed): its
/// data plane, its device, and the members' settings from the state file.
pub async fn remove_orphan(nl: &Netdev, name: &str) -> anyhow::Result<String> {
    crate::sweep::adopt_legacy(name)?;
    let state = runstate::load(name)?;
    let pin_dir = sys::pin_dir(name);
    let device = nl.link(name).await?.filter(|d| match &state {
        Some(s) => netdev::is_bond_device_at(d, s.ifindex),
        None => netdev::is_bond_device(d),
    });
    if state.is_none() && device.is_none() && !pin_dir.exists() {
        bail!("there is no bond {name} here (no daemon, no device, no pinned data plane)");
    }
    dataplane::remove_pins(&pin_dir)?;
    if let Some(d) = device {
        nl.delete(d.index).await?;
    }
    if let Some(s) = &state {
        for sm in &s.members {
            restore(nl, name, &sm.name, &sm.saved()?, &s.filter_addresses(sm.slot)).await;
        }
    }
    runstate::remove(name)?;
    Ok(format!("{name}: removed (no daemon was running it)"))
}
