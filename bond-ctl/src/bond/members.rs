//! Members joining and leaving a running bond, and a new controller adopting a bond that a
//! previous one left running (its data plane pinned, its members' old settings in
//! [`runstate`]).
//!
//! Both directions keep traffic flowing: a joining member is taken (bond MAC, up, receive
//! program) before any packet is sent on it; a leaving member is first taken out of the
//! configuration in force, and released only after the grace period, when no packet can
//! still be sent on it.

use anyhow::{Context, bail};
use bond_common::config::{MAX_MEMBERS, NO_MEMBER};

use super::{Bond, BondIo};
use crate::{
    dataplane::{self, Dataplane},
    member::{Member, Saved},
    netdev::{self, Netdev},
    runstate::{self, RunState, SavedMember},
    status::EventKind,
    sys,
};

impl Bond {
    /// Takes interface `name` as a new member in the lowest free slot. It carries traffic from
    /// the next config write.
    pub(super) async fn take_member(&mut self, nl: &Netdev, name: &str) -> anyhow::Result<()> {
        if self.members.iter().any(|m| m.name == name) {
            bail!("{name} is a member of {} already", self.spec.name);
        }
        let link = nl.require_link(name).await.with_context(|| format!("member {name}"))?;
        netdev::check_member(&link, &self.spec.name)?;
        if link.index == self.settings.ifindex {
            bail!("{name} is the bond device itself");
        }
        let slot = (0..MAX_MEMBERS as u8)
            .find(|s| self.member(*s).is_none())
            .with_context(|| format!("a bond has at most {MAX_MEMBERS} members"))?;
        let saved = Saved {
            mac: link.mac,
            admin_up: link.admin_up,
            ipv6_disabled: sys::ipv6_disabled(name),
            mtu: Some(link.mtu),
            allmulti: Some(link.allmulti),
        };
        // Recorded before anything changes, so a failure below (or a crash) still restores it.
        self.members.push(Member::new(name.to_string(), slot, link.clone(), saved, sys::monotonic_ns()));
        self.persist()?;
        let result = async {
            // The member's own IPv6 (link-local, ND) would bypass the bond.
            if sys::ipv6_disabled(name) == Some(false) {
                sys::set_ipv6_disabled(name, true)?;
            }
            // balance-tlb / balance-alb members keep their own (see `apply_mac_roles`).
            if !self.own_macs() {
                nl.set_mac(&link, self.settings.mac).await?;
            }
            // The bond's MTU, as bonding gives its members.
            if let Some(mtu) = self.device.as_ref().map(|d| d.mtu).filter(|m| *m != link.mtu) {
                self.io.set_mtu(name, mtu).with_context(|| format!("giving {name} the bond's MTU {mtu}"))?;
            }
            nl.set_up(&link, true).await?;
            // Every multicast group the bond joins (IPv6 neighbour discovery, groups of
            // applications and `ip maddr`) reaches it through any member, whatever the NIC
            // filters in hardware: members receive all multicast, as bonding's do for its
            // active member (here every member may be receiving for the bond).
            nl.set_allmulti(&link, true).await?;
            self.io.dataplane()?.maps.reset_member(slot)?;
            self.io.dataplane()?.attach_ingress(name)?;
            self.refresh_member(nl, slot).await
        }
        .await;
        if let Err(e) = result {
            if let Some(i) = self.members.iter().position(|m| m.slot == slot) {
                let m = self.members.remove(i);
                self.release(nl, m).await;
                let _ = self.persist();
            }
            return Err(e.context(format!("taking {name} into {}", self.spec.name)));
        }
        Ok(())
    }

    /// Re-reads member `slot`'s device after its settings changed.
    async fn refresh_member(&mut self, nl: &Netdev, slot: u8) -> anyhow::Result<()> {
        let i = self.members.iter().position(|m| m.slot == slot).context("no such member")?;
        let link = nl.require_link(&self.members[i].name).await?;
        let m = &mut self.core.members[i];
        m.speed = self.io.speed_mbps(&m.name);
        self.io.open_member(slot, link.index);
        m.usable = link.usable();
        m.liveness = crate::health::liveness::Liveness::new(m.usable);
        m.link = link;
        Ok(())
    }

    /// Adds a member to the running bond (`bondctl add-link`, reload).
    pub async fn add_member(&mut self, nl: &Netdev, name: &str) -> anyhow::Result<String> {
        self.take_member(nl, name).await?;
        self.spec.links.push(name.to_string());
        let now = sys::monotonic_ns();
        self.sync_ports();
        self.hold_until_lacp_allows(now);
        // Usable first (its bit may still be clear from an earlier member of the slot), then the
        // config that sends on it.
        self.write_usable();
        self.settle(now, true);
        self.execute(now)?;
        self.event(EventKind::Member, format!("member {name} added"));
        Ok(format!("{}: {name} added", self.spec.name))
    }

    /// Removes a member from the running bond (`bondctl remove-link`, reload): its traffic
    /// moves to the others first, then it gets its own settings back.
    pub async fn remove_member(&mut self, nl: &Netdev, name: &str) -> anyhow::Result<String> {
        let Some(i) = self.members.iter().position(|m| m.name == name) else {
            bail!("{name} is not a member of {}", self.spec.name);
        };
        if self.members.len() == 1 {
            bail!("{name} is the last member of {}; `bondctl down {}` removes the bond", self.spec.name, self.spec.name);
        }
        let m = self.members.remove(i);
        let now = sys::monotonic_ns();
        // The config without it first (another active member, its buckets elsewhere), then
        // the usable mask; packets that read the old config finish within the grace period.
        self.settle(now, true);
        self.write_usable();
        if let Err(e) = self.execute(now) {
            // Still attached and maybe still in the config in force: it stays a member, and the
            // next tick writes the mask and config of all the members again.
            self.members.insert(i, m);
            self.monitor.usable_unwritten = true;
            self.monitor.config_unwritten = true;
            return Err(e.context(format!("removing {name} from {}", self.spec.name)));
        }
        self.spec.links.retain(|l| l != name);
        self.lacp_leave(m.slot, now);
        // The last LACPDU goes out now; a failure to send it is the partner's timeout.
        let _ = self.execute(now);
        self.io.dataplane()?.maps.wait_grace_period();
        let mac = m.saved.as_ref().map(|s| s.mac);
        self.release(nl, m).await;
        self.persist()?;
        self.event(EventKind::Member, format!("member {name} removed"));
        if mac == Some(self.settings.mac) {
            self.event(EventKind::Warning, format!("{name} has its own MAC address back, which the bond still uses: both now share it"));
        }
        Ok(format!("{}: {name} removed", self.spec.name))
    }

    /// Detaches a member that no longer carries traffic and restores its settings.
    pub(super) async fn release(&mut self, nl: &Netdev, m: Member) {
        self.io.close_member(m.slot);
        if let Some(dp) = self.io.dataplane.as_mut()
            && let Err(e) = dp.detach(&m.name)
        {
            tracing::warn!(bond = %self.spec.name, "detaching {}: {e:#}", m.name);
        }
        if let Some(saved) = &m.saved {
            restore(nl, &self.spec.name, &m.name, saved).await;
        }
    }

    /// Records the members' saved settings (see [`runstate`]).
    pub(super) fn persist(&self) -> anyhow::Result<()> {
        let members = self.members.iter().filter_map(|m| m.saved.as_ref().map(|s| SavedMember::new(&m.name, m.slot, s))).collect();
        runstate::store(&RunState { bond: self.spec.name.clone(), layout: runstate::layout(), ifindex: self.settings.ifindex, members })
    }

    /// Takes over a bond whose data plane a previous controller left running: the same
    /// device, maps and member slots; the programs are replaced without a gap; the active
    /// member and bucket table in force are kept. Returns false (changing nothing) when there
    /// is nothing to adopt.
    pub(super) async fn adopt(&mut self, nl: &Netdev, state: &RunState) -> anyhow::Result<bool> {
        let name = self.spec.name.clone();
        let pin_dir = sys::pin_dir(&name);
        let device = nl.link(&name).await?.filter(|d| netdev::is_bond_device(d) && d.index == state.ifindex);
        let Some(device) = device else { return Ok(false) };
        if state.layout != runstate::layout() || !pin_dir.join(dataplane::egress_pin(&name)).exists() {
            return Ok(false);
        }
        // What can fail without touching the running bond comes first: a failure here leaves
        // it (and its state file) as it was.
        let saved = state.members.iter().map(|sm| Ok((sm, sm.saved()?))).collect::<anyhow::Result<Vec<_>>>()?;
        let dp = Dataplane::load(&pin_dir).context("loading the data plane over the running bond's maps")?;
        let cfg = dp.maps.config()?;
        self.settings.ifindex = device.index;
        self.settings.mac = device.mac;
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
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let what = format!("adopted the running bond (generation {}, members {})", cfg.generation, names.join(", "));
        self.event(EventKind::Bond, what);
        Ok(true)
    }
}

/// Gives a member its settings from before it joined. Never fails: problems are logged.
pub async fn restore(nl: &Netdev, bond: &str, member: &str, saved: &Saved) {
    let warn = |what: &str, e: anyhow::Error| tracing::warn!(bond = %bond, "{what} of {member}: {e:#}");
    let Ok(Some(link)) = nl.link(member).await else { return };
    if let Err(e) = nl.set_mac(&link, saved.mac).await {
        warn("restoring the MAC address", e);
    }
    if saved.allmulti == Some(false)
        && let Err(e) = nl.set_allmulti(&link, false).await
    {
        warn("restoring allmulticast", e);
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
    let state = runstate::load(name)?;
    let pin_dir = sys::pin_dir(name);
    let device = nl.link(name).await?.filter(|d| netdev::is_bond_device(d) && state.as_ref().is_none_or(|s| s.ifindex == d.index));
    if state.is_none() && device.is_none() && !pin_dir.exists() {
        bail!("there is no bond {name} here (no daemon, no device, no pinned data plane)");
    }
    dataplane::remove_pins(&pin_dir)?;
    if let Some(d) = device {
        nl.delete(d.index).await?;
    }
    for sm in state.iter().flat_map(|s| &s.members) {
        restore(nl, name, &sm.name, &sm.saved()?).await;
    }
    runstate::remove(name)?;
    Ok(format!("{name}: removed (no daemon was running it)"))
}
