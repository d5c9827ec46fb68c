//! The bond's controller: configuration, planning, the data plane's maps, the daemon and the
//! `bondctl` command line. `ARCHITECTURE.md` at the top of the repository maps it.
//!
//! Decisions, pure (state, inputs and time in; no I/O; unit-tested with a fake clock):
//! - [`config`]: the file, its validation, the option table ([`config::options`]) and live
//!   changes ([`config::live`]);
//! - [`health`]: liveness with up/down delays, probe metrics, quality scores, punishment, the
//!   active member's reselection, rebalancing;
//! - [`lacp`]: IEEE 802.1AX as state machines;
//! - [`plan`], [`alloc`], [`placement`]: from specs and member states to the data plane's
//!   configuration, bucket allocation, where each policy puts traffic;
//! - [`alb`]: which peers balance-alb must tell of a member's address; [`mac_roles`]: which
//!   member carries which MAC address under balance-tlb and balance-alb;
//! - [`frames`]: the frames the controller sends (ARP, NS/NA, learning packets, IGMP and MLD
//!   reports); [`mcast`]: the bond's multicast groups and their reports; [`mac`]: MAC
//!   addresses as text;
//! - [`status`]: the status and event model and its text forms;
//! - [`import`]: other tools' bond definitions (netplan, ifupdown, NetworkManager, networkd, a
//!   running bond's sysfs or /proc) as the configuration, for `bondctl import` (only its
//!   `run` reads files);
//! - [`leftovers`]: how paths name a network namespace, whether what another namespace left
//!   is dead, whether a bond under the previous version's naming is this namespace's.
//!
//! The running bond and the daemon, which gather inputs and carry decisions out:
//! - [`bond`]: one running bond (members, monitoring, reconfiguration, status);
//! - [`member`]: what the controller knows of one member;
//! - [`daemon`]: the event loop of `bondctl up`;
//! - [`control`]: the control socket; [`prometheus`]: the metrics endpoint;
//! - [`cli`]: the command line; [`manual`]: its man pages and shell completions.
//!
//! I/O, thin: [`addrlist`] (devices' unicast address lists), [`dataplane`] (eBPF object, programs, maps), [`ebpf_log`] (the programs' diagnostics, `--ebpf-log`), [`flows`] (the flow table off the
//! timing path), [`netdev`] (rtnetlink), [`neighbours`] (the bond's ARP neighbours by a
//! netlink dump), [`operstate`] (the bond device RUNNING or DORMANT), [`carrier`] (ethtool carrier polling), [`rawsock`]
//! (AF_PACKET frames), [`rtnl_sync`] (synchronous rtnetlink requests), [`runstate`] (state kept across restarts), [`rx_filters`] (members'
//! promiscuity and unicast filters changed in order off the loop), [`sweep`] (other namespaces'
//! leftovers cleared, the previous version's paths taken over), [`sys`] (bpffs, namespaces,
//! ioctls, clocks).

pub mod addrlist;
pub mod alb;
pub mod alloc;
pub mod bond;
pub mod carrier;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod ebpf_log;
pub mod flows;
pub mod frames;
pub mod health;
pub mod import;
pub mod lacp;
pub mod leftovers;
pub mod mac;
pub mod mac_roles;
pub mod manual;
pub mod mcast;
pub mod member;
pub mod neighbours;
pub mod netdev;
pub mod operstate;
pub mod placement;
pub mod plan;
pub mod prometheus;
pub mod rawsock;
pub mod rtnl_sync;
pub mod runstate;
pub mod rx_filters;
pub mod status;
pub mod sweep;
pub mod sys;

#[cfg(test)]
mod tests {
    /// The pure modules, and what they may not import (the running bond and the I/O).
    const PURE: &[&str] = &[
        "config",
        "health",
        "lacp",
        "plan.rs",
        "alloc.rs",
        "placement.rs",
        "alb.rs",
        "frames.rs",
        "mcast.rs",
        "status.rs",
        "mac.rs",
        "mac_roles.rs",
        "leftovers.rs",
        "import/convert.rs",
        "import/ini.rs",
        "import/netplan.rs",
        "import/ifupdown.rs",
        "import/nm.rs",
        "import/networkd.rs",
        "import/sysfs.rs",
        "import/proc.rs",
    ];
    const NOT_FROM_PURE: &[&str] = &[
        "addrlist",
        "bond",
        "member",
        "daemon",
        "control",
        "prometheus",
        "cli",
        "dataplane",
        "flows",
        "netdev",
        "neighbours",
        "carrier",
        "rawsock",
        "rtnl_sync",
        "runstate",
        "rx_filters",
        "sweep",
        "sys",
    ];

    fn rust_files(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for e in std::fs::read_dir(path).unwrap() {
                rust_files(&e.unwrap().path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
    }

    /// Decisions stay testable without a kernel: no pure module imports the running bond or
    /// an I/O module (ARCHITECTURE.md's layering).
    #[test]
    fn pure_modules_import_no_io() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for m in PURE {
            rust_files(&src.join(m), &mut files);
        }
        assert!(files.len() > 20, "{files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            for (i, _) in code.match_indices("crate::") {
                let path = &code[i + "crate::".len()..];
                let end = path.find(';').unwrap_or(path.len()).min(if path.starts_with('{') {
                    usize::MAX
                } else {
                    path.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(path.len())
                });
                let tokens = path[..end].split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| !t.is_empty());
                for t in tokens {
                    assert!(!NOT_FROM_PURE.contains(&t), "{} imports crate::...{t}: pure modules may not", f.display());
                }
            }
        }
    }

    /// Every module is named in this crate's documentation and in ARCHITECTURE.md.
    #[test]
    fn module_lists_name_every_module() {
        let lib = include_str!("lib.rs");
        let arch = include_str!("../../ARCHITECTURE.md");
        let doc: String = lib.lines().filter(|l| l.starts_with("//!")).collect();
        for m in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')) {
            assert!(doc.contains(&format!("[`{m}`]")), "lib.rs's documentation does not name module {m}");
            assert!(arch.contains(&format!("`{m}`")), "ARCHITECTURE.md does not name module {m}");
        }
    }
}
