//! Putting a changed configuration in force on a running bond (`bondctl reload`), change by
//! change, each one hitless: members join before others leave, the policy switches with one
//! config write, and what did not change is not touched.

use anyhow::Context;

use super::{Action, Bond, BondIo, Core};
use crate::{
    config::{BondSpec, Config, PolicySpec},
    health::metrics::Nanos,
    netdev::{self, Netdev},
    status::EventKind,
    sys,
};

impl Bond {
    /// Refuses a new specification that could not be put in force, before anything changes.
    pub async fn check_reconfigure(&self, nl: &Netdev, spec: &BondSpec, config: &Config) -> anyhow::Result<()> {
        let policy = config.policy(&spec.policy).with_context(|| format!("bond {}: no policy {}", spec.name, spec.policy))?;
        self.check_mode_switch(policy).with_context(|| format!("bond {}", spec.name))?;
        for l in spec.links.iter().filter(|l| self.members.iter().all(|m| &m.name != *l)) {
            let link = nl.require_link(l).await.with_context(|| format!("bond {}: member {l}", spec.name))?;
            netdev::check_member(&link, &spec.name)?;
        }
        Ok(())
    }

    /// Puts `spec` (from `config`) in force; returns what changed.
    pub async fn reconfigure(&mut self, nl: &Netdev, spec: &BondSpec, config: &Config) -> anyhow::Result<Vec<String>> {
        let mut changes = self.core.set_settings(spec);
        self.execute(sys::monotonic_ns())?;
        let device = self.device.clone().context("no bond device")?;
        for (addr, prefix) in spec.addresses.iter().filter(|a| !self.spec.addresses.contains(a)) {
            nl.add_address(&device, *addr, *prefix).await?;
            changes.push(format!("address {addr}/{prefix} added"));
        }
        for (addr, prefix) in self.spec.addresses.iter().filter(|a| !spec.addresses.contains(a)) {
            nl.del_address(&device, *addr, *prefix).await?;
            changes.push(format!("address {addr}/{prefix} removed"));
        }
        self.spec.addresses = spec.addresses.clone();
        // Joining first: the bond never runs short of members in between.
        let joining: Vec<String> = spec.links.iter().filter(|l| self.members.iter().all(|m| &m.name != *l)).cloned().collect();
        for l in joining {
            changes.push(self.add_member(nl, &l).await?);
        }
        let leaving: Vec<String> = self.members.iter().map(|m| m.name.clone()).filter(|m| !spec.links.contains(m)).collect();
        for l in leaving {
            changes.push(self.remove_member(nl, &l).await?);
        }
        self.spec.links = spec.links.clone();
        // Members in the file's order, which active-backup prefers them in.
        self.members.sort_by_key(|m| spec.links.iter().position(|l| *l == m.name));
        let policy = config.policy(&spec.policy).with_context(|| format!("no policy {}", spec.policy))?;
        self.spec.policy = spec.policy.clone();
        let peers_before: Vec<(String, PolicySpec)> = self.peers.iter().map(|p| (p.spec.name.clone(), p.spec.clone())).collect();
        let entries_before = self.peer_entries.clone();
        self.set_peers(config)?;
        let peers_changed = entries_before != self.peer_entries || peers_before.iter().map(|p| &p.1).ne(self.peers.iter().map(|p| &p.spec));
        let now = sys::monotonic_ns();
        if peers_changed {
            self.reallocate(true);
            self.settle(now, true);
        }
        self.execute(now)?;
        if peers_changed {
            let list: Vec<String> = config.peers.iter().map(|p| format!("{} -> {}", p.peer, p.policy)).collect();
            let what = format!("peer policies: {}", if list.is_empty() { "none".to_string() } else { list.join(", ") });
            self.event(EventKind::Config, format!("{what} (reload)"));
            changes.push(what);
        }
        if let Some(what) = self.put_policy_in_force(policy.clone(), sys::monotonic_ns())? {
            self.event(EventKind::Config, format!("{what} (reload)"));
            changes.push(what);
        }
        Ok(changes)
    }
}

impl Core {
    /// The bond's own settings (monitoring, 802.3ad, tlb) of `spec` put in force; what changed.
    fn set_settings(&mut self, spec: &BondSpec) -> Vec<String> {
        let mut changes = Vec::new();
        if spec.monitor != self.spec.monitor {
            self.spec.monitor = spec.monitor.clone();
            let targets = self.monitor_targets();
            self.act(Action::SetMonitorTargets(targets));
            changes.push("link monitoring".to_string());
        }
        if spec.lacp != self.spec.lacp || spec.tlb != self.spec.tlb {
            // LACP picks its new settings up on the next tick.
            self.spec.lacp = spec.lacp.clone();
            self.spec.tlb = spec.tlb.clone();
            changes.push("802.3ad / tlb settings".to_string());
        }
        changes
    }
}

impl<I: BondIo> Bond<I> {

    /// `bondctl set`: options changed on the running bond, checked whole first (a bad one
    /// changes nothing). Lasts until the next reload or restart, which apply the file.
    pub fn set_options(&mut self, options: &[String], now: Nanos) -> anyhow::Result<String> {
        let changed =
            crate::config::live::apply(&self.spec, &self.policy, options).map_err(|e| anyhow::anyhow!("{}: {e}", self.spec.name))?;
        self.core.set_settings(&changed.spec);
        self.execute(now)?;
        self.put_policy_in_force(changed.policy, now)?;
        let what = changed.changes.join(" ");
        self.event(EventKind::Config, format!("set {what}"));
        Ok(format!("{}: {what}", self.spec.name))
    }
}
