//! Putting a changed configuration in force on a running bond (`bondctl reload`), change by
//! change, each one hitless: members join before others leave, the policy switches with one
//! config write, and what did not change is not touched.

use anyhow::Context;

use super::{Action, Bond, BondIo, Core};
use crate::{
    config::{BondSpec, Config, PolicySpec},
    health::metrics::Nanos,
    netdev,
    status::EventKind,
    sys,
};

impl Bond {
    /// Refuses a new specification that could not be put in force, before anything changes
    /// (what needs netlink, the new members' devices, the daemon checks).
    pub fn check_reconfigure(&self, spec: &BondSpec, config: &Config) -> anyhow::Result<()> {
        let policy = config.policy(&spec.policy).with_context(|| format!("bond {}: no policy {}", spec.name, spec.policy))?;
        self.check_mode_switch(policy).with_context(|| format!("bond {}", spec.name))
    }

    /// Links of `spec` that are not members yet.
    pub fn joining_links(&self, spec: &BondSpec) -> Vec<String> {
        spec.links.iter().filter(|l| !self.has_member(l)).cloned().collect()
    }

    /// Members that `spec` no longer has.
    pub fn leaving_links(&self, spec: &BondSpec) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).filter(|m| !spec.links.contains(m)).collect()
    }

    /// First part of putting `spec` in force: the bond's own settings. Returns what changed and
    /// the addresses to add and to remove (netlink, done by the caller).
    pub fn reconfigure_settings(&mut self, spec: &BondSpec) -> anyhow::Result<(Vec<String>, netdev::Link, Addresses, Addresses)> {
        self.core.check_settings(spec)?;
        let mut changes = self.core.set_settings(spec, sys::monotonic_ns());
        self.io.set_carrier_interval(self.spec.monitor.miimon);
        self.execute(sys::monotonic_ns())?;
        if let Some(mac) = spec.mac.filter(|m| *m != self.settings.mac) {
            // A member refused it: put back (the event says who and why).
            let refused = format!("macaddress {} refused (see the events)", crate::mac::format_mac(&mac));
            changes.retain(|c| !c.starts_with("macaddress"));
            changes.push(refused);
        }
        let device = self.device.clone().context("no bond device")?;
        let add = spec.addresses.iter().filter(|a| !self.spec.addresses.contains(a)).copied().collect();
        let del = self.spec.addresses.iter().filter(|a| !spec.addresses.contains(a)).copied().collect();
        Ok((changes, device, add, del))
    }

    /// Last part of putting `spec` (from `config`) in force, once its members are: their order,
    /// the peer policies and the policy. Returns what changed.
    pub fn reconfigure_policies(&mut self, spec: &BondSpec, config: &Config) -> anyhow::Result<Vec<String>> {
        let mut changes = Vec::new();
        self.spec.addresses = spec.addresses.clone();
        self.spec.links = spec.links.clone();
        // Members in the file's order, which active-backup prefers them in.
        self.core.members.sort_by_key(|m| spec.links.iter().position(|l| *l == m.name));
        let policy = config.policy(&spec.policy).with_context(|| format!("no policy {}", spec.policy))?;
        self.spec.policy = spec.policy.clone();
        let peers_before: Vec<(String, PolicySpec)> = self.peers.iter().map(|p| (p.spec.name.clone(), p.spec.clone())).collect();
        let entries_before = self.peer_entries.clone();
        let classes_before = self.classes.clone();
        self.set_peers(config)?;
        let peers_changed = entries_before != self.peer_entries || peers_before.iter().map(|p| &p.1).ne(self.peers.iter().map(|p| &p.spec));
        let classes_changed = classes_before != self.classes;
        let peers_changed = peers_changed || classes_changed;
        let now = sys::monotonic_ns();
        if peers_changed {
            self.reallocate(true);
            self.settle(now, true);
        }
        self.execute(now)?;
        if classes_changed {
            let list: Vec<String> = config.classes.iter().map(|c| format!("{c} -> {}", c.policy)).collect();
            let what = format!("class policies: {}", if list.is_empty() { "none".to_string() } else { list.join(", ") });
            self.event(EventKind::Config, format!("{what} (reload)"));
            changes.push(what);
        }
        if peers_changed && !classes_changed {
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

/// Addresses with their prefix lengths.
pub type Addresses = Vec<(std::net::IpAddr, u8)>;

impl Core {
    /// Refuses settings of `spec` the bond cannot take as it is, before anything changes: a new
    /// `active_slave` must name a usable member (as bonding refuses one that is not up).
    pub(super) fn check_settings(&self, spec: &BondSpec) -> anyhow::Result<()> {
        if let Some(a) = spec.active_slave.as_deref().filter(|_| spec.active_slave != self.spec.active_slave) {
            self.check_active(a)?;
        }
        if let Some(mac) = spec.mac.filter(|m| *m != self.settings.mac)
            && let Some(d) = self.device.as_ref().filter(|d| crate::netdev::is_legacy_bond_device(d))
        {
            anyhow::bail!(
                "macaddress {}: {} is an ifb device (made by an earlier version), which cannot change its address; take the bond down \
                 and up again (`bondctl down {}`, then `bondctl up`) and it is made a device whose address can change",
                crate::mac::format_mac(&mac),
                d.name,
                d.name
            );
        }
        Ok(())
    }

    /// Whether member `a` may be made active now.
    fn check_active(&self, a: &str) -> anyhow::Result<()> {
        match self.members.iter().find(|m| m.name == a) {
            Some(m) if !m.usable => anyhow::bail!("active_slave: {a} is not usable ({})", super::monitor::why_not_usable(m, None)),
            _ => Ok(()),
        }
    }

    /// Member `a` active from now (`active_slave`), until the members' health changes.
    fn make_active(&mut self, a: &str, now: Nanos) {
        if let Some(slot) = self.members.iter().find(|m| m.name == a).map(|m| m.slot) {
            self.main.selector.force(slot);
            self.settle(now, false);
        }
    }

    /// The bond's own settings (monitoring, 802.3ad, tlb, member preferences) of `spec` put in
    /// force; what changed.
    fn set_settings(&mut self, spec: &BondSpec, now: Nanos) -> Vec<String> {
        let mut changes = Vec::new();
        let (mut reselect, mut order_changed) = (false, false);
        if spec.prio != self.spec.prio {
            self.spec.prio = spec.prio.clone();
            changes.push("prio".to_string());
            // The failover order the data plane falls back along changes with it.
            (reselect, order_changed) = (true, true);
        }
        // A file's `active_slave` acts when it changes (a reload does not move the active
        // member back to it); `bondctl set active_slave=` always does (`set_options`).
        if let Some(a) = spec.active_slave.clone().filter(|_| spec.active_slave != self.spec.active_slave) {
            self.make_active(&a, now);
            changes.push(format!("active_slave {a}"));
        }
        self.spec.active_slave = spec.active_slave.clone();
        // A bond without `macaddress` keeps whatever address it has (`ip link set` included).
        if let Some(mac) = spec.mac.filter(|m| *m != self.settings.mac) {
            self.change_mac(mac, false, now);
            changes.push(format!("macaddress {}", crate::mac::format_mac(&mac)));
        }
        self.spec.mac = spec.mac;
        if reselect {
            self.settle(now, order_changed);
        }
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
        if spec.flow_table_size != self.spec.flow_table_size {
            // The table's size is fixed when the programs are loaded; a daemon that restarts
            // loads them with the new size (adopting the bond without a gap after `--persist`).
            changes.push(format!(
                "flow_table_size {} takes effect when the daemon restarts (the table holds {} until then; with --persist the bond is adopted without a gap)",
                spec.flow_table_size, self.spec.flow_table_size
            ));
        }
        if let Some(mtu) = spec.mtu.filter(|m| Some(*m) != self.spec.mtu) {
            // The running bond keeps its MTU: `ip link set BOND mtu N` changes it, members too.
            changes.push(format!("mtu {mtu} takes effect when the bond is made (now: `ip link set {} mtu {mtu}`)", self.spec.name));
        }
        changes
    }
}

impl<I: BondIo> Bond<I> {
    /// `bondctl set`: options changed on the running bond, checked whole first (a bad one
    /// changes nothing). Lasts until the next reload or restart, which apply the file.
    pub fn set_options(&mut self, options: &[String], now: Nanos) -> anyhow::Result<String> {
        let name = self.spec.name.clone();
        let changed = crate::config::live::apply(&self.spec, &self.policy, options).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        self.core.check_settings(&changed.spec).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if let Some(a) = changed.spec.active_slave.as_deref().filter(|_| changed.made_active) {
            self.core.check_active(a).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        // The address first, alone: a member may refuse it, and then nothing else changes.
        if let Some(mac) = changed.spec.mac.filter(|m| *m != self.settings.mac) {
            let address_only = BondSpec { mac: Some(mac), ..self.spec.clone() };
            self.core.set_settings(&address_only, now);
            self.execute(now)?;
            if self.settings.mac != mac {
                // Put back (the event says who and why).
                let why = self.events.iter().rev().find(|e| e.kind == EventKind::Warning).map_or(String::new(), |e| e.message.clone());
                self.spec.mac = None;
                anyhow::bail!("{name}: macaddress {} not taken, nothing changed: {why}", crate::mac::format_mac(&mac));
            }
        }
        self.core.set_settings(&changed.spec, now);
        if let Some(a) = changed.spec.active_slave.as_deref().filter(|_| changed.made_active) {
            self.core.make_active(a, now);
        }
        self.io.set_carrier_interval(self.spec.monitor.miimon);
        self.execute(now)?;
        self.put_policy_in_force(changed.policy, now)?;
        let what = changed.changes.join(" ");
        self.event(EventKind::Config, format!("set {what}"));
        Ok(format!("{}: {what}", self.spec.name))
    }
}
