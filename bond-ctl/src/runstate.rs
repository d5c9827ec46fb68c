//! What a running bond must remember across a restart of its controller:
//! `/run/bondctl/<bond>.json`.
//!
//! The data plane outlives the daemon (its programs and maps are pinned), but the members'
//! settings from before they joined exist nowhere else once their MAC addresses were changed.
//! A new daemon reads them here to adopt the bond, and `bondctl down` to restore the members
//! when no daemon runs. The file is written whenever the member set changes and removed with
//! the bond; /run is a tmpfs, so a reboot (which also clears the pins) forgets it.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::member::Saved;

/// Directory of the state files (`BONDCTL_RUN_DIR` overrides it).
pub fn run_dir() -> PathBuf {
    std::env::var_os("BONDCTL_RUN_DIR").map_or_else(|| PathBuf::from("/run/bondctl"), PathBuf::from)
}

/// The state file of `bond` in this network namespace: `RUN_DIR/<bond>.json`, in a namespace
/// other than the main one `RUN_DIR/netns-cookie:<cookie>/<bond>.json` (see `sys::netns_part`).
pub fn path(bond: &str) -> PathBuf {
    let dir = run_dir();
    crate::sys::netns_part().map_or(dir.clone(), |ns| dir.join(ns)).join(format!("{bond}.json"))
}

/// The data plane's map layout: a new daemon reuses pinned maps only when it matches.
pub fn layout() -> String {
    use bond_common::{
        config::{BondConfig, CONFIG_BANKS},
        flow::FlowEntry,
        stats::*,
    };
    use std::mem::size_of;
    format!(
        "config={}x{CONFIG_BANKS} flow={} sticky={}v{} member_stats={} bond_stats={} seen={}",
        size_of::<BondConfig>(),
        size_of::<FlowEntry>(),
        size_of::<bond_common::sticky::StickySet>(),
        bond_common::sticky::FORMAT,
        size_of::<MemberStats>(),
        size_of::<BondStats>(),
        size_of::<MemberSeen>()
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub bond: String,
    /// [`layout`] of the data plane the bond runs.
    pub layout: String,
    /// The bond device's ifindex, so a device re-created by someone else is not mistaken for it.
    pub ifindex: u32,
    pub members: Vec<SavedMember>,
    /// Under 802.3ad, LACP's state (see [`crate::lacp::LacpSnapshot`]): a new controller takes
    /// the aggregate over without a new negotiation. Absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp: Option<crate::lacp::LacpSnapshot>,
    /// Addresses of devices above the bond put in the members' unicast filters: taken out
    /// when the bond goes, with or without a daemon. Absent in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast: Vec<String>,
    /// The bond's probe id: its members' probe addresses (in their unicast filters) derive
    /// from it. 0 in older files.
    #[serde(default)]
    pub probe_id: u32,
}

impl RunState {
    /// [`RunState::unicast`] as addresses (any that does not parse is left out).
    pub fn unicast(&self) -> Vec<[u8; 6]> {
        self.unicast.iter().filter_map(|m| crate::mac::parse_mac(m)).collect()
    }

    /// What the bond put in member `slot`'s unicast filter (see [`member_filter`]).
    pub fn filter_addresses(&self, slot: u8) -> Vec<[u8; 6]> {
        member_filter(&self.unicast(), self.probe_id, slot)
    }
}

/// The addresses a bond puts in member `slot`'s unicast filter: those of devices above the bond,
/// and, while the bond probes (`probe_id` not 0), the member's probe address (replies, and
/// requests once a peer bond has found it, come to it by unicast).
pub fn member_filter(unicast: &[[u8; 6]], probe_id: u32, slot: u8) -> Vec<[u8; 6]> {
    let mut a = unicast.to_vec();
    if probe_id != 0 {
        a.push(bond_common::probe::member_probe_mac(probe_id, slot));
    }
    a
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedMember {
    pub name: String,
    /// Data-plane slot.
    pub slot: u8,
    /// Settings before it joined.
    pub mac: String,
    pub admin_up: bool,
    pub ipv6_disabled: Option<bool>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub allmulti: Option<bool>,
    #[serde(default)]
    pub promisc: Option<bool>,
}

impl SavedMember {
    pub fn new(name: &str, slot: u8, saved: &Saved) -> SavedMember {
        SavedMember {
            name: name.to_string(),
            slot,
            mac: crate::mac::format_mac(&saved.mac),
            admin_up: saved.admin_up,
            ipv6_disabled: saved.ipv6_disabled,
            mtu: saved.mtu,
            allmulti: saved.allmulti,
            promisc: saved.promisc,
        }
    }

    pub fn saved(&self) -> anyhow::Result<Saved> {
        Ok(Saved {
            mac: crate::mac::parse_mac(&self.mac).with_context(|| format!("member {}: bad MAC {}", self.name, self.mac))?,
            admin_up: self.admin_up,
            ipv6_disabled: self.ipv6_disabled,
            mtu: self.mtu,
            allmulti: self.allmulti,
            promisc: self.promisc,
        })
    }
}

/// The bond's state file, if there is one.
pub fn load(bond: &str) -> anyhow::Result<Option<RunState>> {
    read(&path(bond))
}

pub fn read(path: &Path) -> anyhow::Result<Option<RunState>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the state file atomically (a crash leaves the old or the new file, never half).
pub fn store(state: &RunState) -> anyhow::Result<()> {
    let path = path(&state.bond);
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    // Root's alone: it names the members and their addresses.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(state)?.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

pub fn remove(bond: &str) -> anyhow::Result<()> {
    let path = path(bond);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => {
            // A namespace's directory goes with its last bond (the run directory stays).
            if path.parent() != Some(run_dir().as_path()) {
                let _ = path.parent().map(std::fs::remove_dir);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("bondctl-runstate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let saved = Saved {
            mac: [2, 0, 0, 0, 0, 0xab],
            admin_up: false,
            ipv6_disabled: Some(false),
            mtu: Some(9000),
            allmulti: Some(false),
            promisc: Some(false),
        };
        let state = RunState {
            bond: "b0".into(),
            layout: layout(),
            ifindex: 7,
            members: vec![SavedMember::new("eth1", 1, &saved)],
            lacp: None,
            unicast: vec!["02:00:00:12:34:56".into()],
            probe_id: 0x0102_0304,
        };
        let file = dir.join("b0.json");
        std::fs::write(&file, serde_json::to_string(&state).unwrap()).unwrap();
        let back = read(&file).unwrap().unwrap();
        assert_eq!(back, state);
        let s = back.members[0].saved().unwrap();
        assert_eq!((s.mac, s.admin_up, s.ipv6_disabled), (saved.mac, false, Some(false)));
        assert_eq!(back.unicast(), [[2, 0, 0, 0x12, 0x34, 0x56]]);
        assert_eq!(back.filter_addresses(1), [[2, 0, 0, 0x12, 0x34, 0x56], [6, 1, 2, 3, 4, 1]], "and the member's probe address");
        assert!(read(&dir.join("none.json")).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
