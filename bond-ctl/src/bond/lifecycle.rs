//! Bringing a running bond up (creating or adopting its device and data plane, taking its
//! members) and down (giving everything back), or leaving it running for the next controller.

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use super::{Action, Bond, Core, Kernel, Wake, WakeWhat, members, watch};
use crate::{
    config::{BondSpec, Config},
    control::{self, Pending},
    dataplane::{self, Dataplane},
    netdev::{self, Netdev},
    plan::BondSettings,
    runstate,
    status::EventKind,
    sys,
};

impl Bond<Kernel> {
    pub async fn start(
        nl: &Netdev,
        spec: BondSpec,
        config: &Config,
        to_daemon: mpsc::Sender<Pending>,
        probe_events: mpsc::Sender<Wake>,
    ) -> anyhow::Result<Bond> {
        let policy = config.policy(&spec.policy).cloned().with_context(|| format!("no policy {}", spec.policy))?;
        let now = sys::monotonic_ns();
        let settings = BondSettings { probe_id: sys::random_u32(), ..Default::default() };
        let core = Core::new(spec, policy, settings, now);
        let mut bond = Bond {
            core,
            control: None,
            probe_reader: None,
            promisc_watch: None,
            joining: Vec::new(),
            leaving: Vec::new(),
            io: Kernel::new()?,
        };
        let name = bond.spec.name.clone();
        match bond.setup(nl, config, to_daemon, probe_events).await {
            Ok(()) => {
                tracing::info!(bond = %name, "up: policy {}, members {}", bond.policy.name, bond.spec.links.join(", "));
                Ok(bond)
            }
            Err(e) => {
                bond.stop(nl).await;
                Err(e.context(format!("bringing up bond {name}")))
            }
        }
    }

    /// Each step records what it changed, so `stop` can undo a partial setup.
    async fn setup(
        &mut self,
        nl: &Netdev,
        config: &Config,
        to_daemon: mpsc::Sender<Pending>,
        probe_events: mpsc::Sender<Wake>,
    ) -> anyhow::Result<()> {
        let name = self.spec.name.clone();
        // Claiming the control socket first also tells us whether another daemon runs it.
        self.control = Some(control::serve(&name, to_daemon)?);
        let (wake, bond) = (probe_events.clone(), name.clone());
        self.io
            .watch_carrier(self.spec.monitor.miimon, move || {
                // Dropped when the loop is behind: its next tick reads the carrier anyway.
                let _ = wake.try_send(Wake { bond: bond.clone(), what: WakeWhat::Carrier });
            })
            .context("starting carrier polling")?;
        for l in &self.spec.links {
            let link = nl.require_link(l).await.with_context(|| format!("member {l}"))?;
            netdev::check_member(&link, &name)?;
        }
        // What the previous version left under this namespace's inode, once proven ours.
        crate::sweep::adopt_legacy(&name)?;
        // A state file that cannot be read is not "no state": it holds the members' own
        // addresses, and a bond may run on them. Nothing is touched until someone looks.
        let state = runstate::load(&name).map_err(|e| {
            e.context(format!(
                "the state file of bond {name} cannot be read; it holds the members' original settings, so the bond (if it runs) \
                 is left as it is: repair or move away {} and start again",
                runstate::path(&name).display()
            ))
        })?;
        let adopted = match &state {
            Some(state) => self.adopt(nl, state).await?,
            None => false,
        };
        if !adopted {
            if let Some(stale) = &state {
                // A bond left behind that cannot be adopted: its members get their settings back.
                self.event(
                    EventKind::Bond,
                    format!("found {}; its bond cannot be adopted and is rebuilt", runstate::path(&name).display()),
                );
                for sm in &stale.members {
                    members::restore(nl, &name, &sm.name, &sm.saved()?, &stale.filter_addresses(sm.slot)).await;
                }
            }
            self.create(nl).await?;
        }
        // Members of the configuration not in the adopted bond join it; those no longer in
        // the configuration leave it once the config without them is in force (below).
        let leaving: Vec<String> = self.members.iter().map(|m| m.name.clone()).filter(|m| !self.spec.links.contains(m)).collect();
        for l in self.spec.links.clone() {
            if self.members.iter().all(|m| m.name != l) {
                self.take_member(nl, &l).await?;
            }
        }
        self.persist()?;

        let now = sys::monotonic_ns();
        let key = self.spec.probe_key;
        self.io.dataplane()?.maps.set_probe_key(key)?;
        if let Some(rb) = self.io.dataplane()?.maps.take_probe_events() {
            self.probe_reader = Some(watch::read_probe_events(name.clone(), rb, probe_events.clone())?);
        }
        let targets = self.monitor_targets();
        self.act(Action::SetMonitorTargets(targets));
        self.set_peers(config)?;
        self.sync_ports();
        self.hold_until_lacp_allows(now);
        // `active_slave`: the member to start with (an adopted bond keeps the one it has).
        if !adopted
            && let Some(slot) = self.spec.active_slave.as_deref().and_then(|a| self.members.iter().find(|m| m.name == a)).map(|m| m.slot)
        {
            self.main.selector.force(slot);
        }
        self.choose_active(now);
        self.reallocate(true);
        self.write_config();
        self.write_usable();
        self.execute(now)?;
        // An adopted bond whose file now names another address takes it, as a live change.
        if adopted && let Some(mac) = self.spec.mac.filter(|m| *m != self.settings.mac) {
            let spec = self.spec.clone();
            self.core.check_settings(&spec)?;
            self.change_mac(mac, false, now);
            self.execute(now)?;
        }
        self.io.dataplane()?.attach_egress(&name)?;
        for l in leaving {
            self.spec.links.push(l.clone());
            self.remove_member(nl, &l).await?;
        }

        let device = nl.require_link(&name).await?;
        nl.set_up(&device, true).await?;
        for (addr, prefix) in &self.spec.addresses {
            nl.add_address(&device, *addr, *prefix).await?;
        }
        let device = nl.require_link(&name).await?;
        self.io.open_bond(device.index).context("opening the probe socket")?;
        self.promisc_watch = Some(watch::watch_rx_filter(nl.clone(), name.clone(), probe_events));
        self.sync_ports();
        self.device = Some(device);
        if !adopted {
            let what = format!("bond up with policy {}", self.policy.name);
            self.event(EventKind::Bond, what);
        }
        Ok(())
    }

    /// A new bond: its device (the first member's MAC address, as bonding does) and a fresh
    /// data plane.
    async fn create(&mut self, nl: &Netdev) -> anyhow::Result<()> {
        let name = self.spec.name.clone();
        // Left behind by a bond that cannot be adopted: removed and rebuilt.
        dataplane::remove_pins(&sys::pin_dir(&name))?;
        let mut links = Vec::new();
        for l in &self.spec.links {
            links.push(nl.require_link(l).await?);
        }
        // `macaddress`, else the first member's, as bonding takes it.
        let mac = self.spec.mac.unwrap_or(links[0].mac);
        // Members get the bond's MTU as they join (and their own back when they leave).
        let mtu = self.spec.mtu.unwrap_or_else(|| links.iter().map(|l| l.mtu).min().unwrap_or(1500));
        match nl.link(&name).await? {
            Some(l) if netdev::is_bond_device(&l) => {
                self.device = Some(l.clone());
                if l.mac != mac {
                    nl.delete(l.index).await?;
                    self.device = None;
                }
            }
            Some(l) => bail!("an interface named {name} exists and is not a bond device ({})", l.kind.as_deref().unwrap_or("physical")),
            None => {}
        }
        if self.device.is_none() {
            self.device = Some(nl.create_bond_device(&name, mac, mtu).await?);
        }
        let device = nl.require_link(&name).await?;
        self.settings.ifindex = device.index;
        self.settings.mac = device.mac;
        self.device = Some(device);
        self.io.dataplane = Some(Dataplane::load(&sys::pin_dir(&name), self.spec.flow_table_size)?);
        Ok(())
    }

    /// Removes the bond and gives members back their settings. Never fails: problems are
    /// logged and the rest is still undone.
    pub async fn stop(mut self, nl: &Netdev) {
        let name = self.spec.name.clone();
        let warn = |what: &str, e: anyhow::Error| tracing::warn!(bond = %name, "{what}: {e:#}");
        // Only a daemon that claimed the bond's socket removes it (not one refused because
        // another runs the bond).
        let claimed = self.control.is_some();
        // 802.3ad: the partner stops using every link now, not at its timeout.
        let now = sys::monotonic_ns();
        for slot in self.members.iter().map(|m| m.slot).collect::<Vec<_>>() {
            self.lacp_leave(slot, now);
        }
        if let Err(e) = self.execute(now) {
            warn("sending the last LACPDUs", e);
        }
        for task in [self.control.take(), self.probe_reader.take(), self.promisc_watch.take()].into_iter().flatten() {
            task.abort();
        }
        let created = self.device.is_some() || !self.members.is_empty();
        match self.io.dataplane.take() {
            Some(dp) => {
                if let Err(e) = dp.remove() {
                    warn("removing the data plane", e);
                }
            }
            None => {
                if self.device.is_some()
                    && let Err(e) = dataplane::remove_pins(&sys::pin_dir(&name))
                {
                    warn("removing pins", e);
                }
            }
        }
        if let Some(d) = self.device.take()
            && let Err(e) = nl.delete(d.index).await
        {
            warn("deleting the bond device", e);
        }
        for m in self.members.iter().rev() {
            if let Some(saved) = &m.saved {
                members::restore(nl, &name, &m.name, saved, &self.core.filter_addresses(m.slot)).await;
            }
        }
        // Members caught half-way in or out (the daemon finishes its operations first, so
        // only after a failure).
        // (A joining member was given nothing yet; a leaving one what it had.)
        let halfway = self.joining.iter().map(|j| (j.name.clone(), Some(j.saved().clone()), Vec::new()));
        let leaving = self.leaving.iter().map(|l| (l.name.clone(), l.saved().cloned(), l.unicast.clone()));
        let halfway: Vec<_> = halfway.chain(leaving).collect();
        for (member, saved, unicast) in halfway {
            if let Some(saved) = saved {
                members::restore(nl, &name, &member, &saved, &unicast).await;
            }
        }
        if claimed {
            control::remove_socket(&name);
        }
        if created {
            if let Err(e) = runstate::remove(&name) {
                warn("removing the state file", e);
            }
            tracing::info!(bond = %name, "removed");
        }
    }

    /// Leaves the bond running for the next controller to adopt: the data plane stays pinned
    /// and attached, the members keep the bond's settings (SIGKILL does the same).
    pub fn detach(mut self) {
        if self.control.is_some() {
            // The daemon exits: its socket would only be stale (the next one makes its own).
            control::remove_socket(&self.spec.name);
        }
        for task in [self.control.take(), self.probe_reader.take(), self.promisc_watch.take()].into_iter().flatten() {
            task.abort();
        }
        tracing::info!(bond = %self.spec.name, "left running for the next controller");
    }
}
