//! Network namespaces that remove themselves.

use std::{fs::File, marker::PhantomData};

use anyhow::{Context, bail};
use nix::sched::{CloneFlags, setns};

use crate::cmd::ip;

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// The MAC address of each of the links eth0..eth`links - 1` in this namespace.
    pub fn link_macs(&self, links: usize) -> Vec<String> {
        (0..links)
            .map(|i| {
                let out = self.ip(&["-j", "link", "show", &format!("eth{i}")]).expect("ip link show");
                let v: serde_json::Value = serde_json::from_str(&out).expect("ip's JSON");
                v[0]["address"].as_str().expect("an address").to_string()
            })
            .collect()
    }

    /// A new namespace with a unique name starting with `prefix`, loopback up.
    pub fn new(prefix: &str) -> anyhow::Result<Netns> {
        let name = crate::unique_name(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Runs a program inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["netns", "exec", &self.name, program];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Writes a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")]).map(drop)
    }

    /// Runs `f` with the calling thread inside the namespace. Sockets created in `f` stay in
    /// the namespace afterwards.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> anyhow::Result<T> {
        enter_named(&self.name, f)
    }

    /// The kernel's counters of an interface: (rx packets, rx bytes, tx packets, tx bytes).
    pub fn counters(&self, dev: &str) -> anyhow::Result<Counters> {
        let out = self.ip(&["-s", "-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("ip -j output {out}"))?;
        let s = &v[0]["stats64"];
        let n = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or(0);
        Ok(Counters {
            rx_packets: n("rx", "packets"),
            rx_bytes: n("rx", "bytes"),
            tx_packets: n("tx", "packets"),
            tx_bytes: n("tx", "bytes"),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // bondctl's control directory of this namespace, empty once its daemons are gone.
        if let Ok(dir) = crate::lab::control_dir(&self.name) {
            let _ = std::fs::remove_dir(dir);
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: removing namespace {}: {e:#}", self.name);
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            rx_packets: self.rx_packets.saturating_sub(o.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(o.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(o.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(o.tx_bytes),
        }
    }
}

/// Runs `f` with the calling thread inside the network namespace `name` (for threads that
/// cannot hold the [`Netns`], which is not `Send`).
pub fn enter_named<T>(name: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    let _guard = ThreadNetns::enter(&format!("/var/run/netns/{name}"))?;
    Ok(f())
}

/// The calling thread in another network namespace until dropped. Not `Send`: namespace
/// membership belongs to the thread.
struct ThreadNetns {
    original: File,
    _not_send: PhantomData<*const ()>,
}

impl ThreadNetns {
    fn enter(path: &str) -> anyhow::Result<ThreadNetns> {
        let original = File::open("/proc/thread-self/ns/net").context("opening own network namespace")?;
        let target = File::open(path).with_context(|| format!("opening {path}"))?;
        if let Err(e) = setns(&target, CloneFlags::CLONE_NEWNET) {
            bail!("setns {path}: {e}");
        }
        Ok(ThreadNetns { original, _not_send: PhantomData })
    }
}

impl Drop for ThreadNetns {
    fn drop(&mut self) {
        // Failure would leave the thread elsewhere, so abort loudly.
        if let Err(e) = setns(&self.original, CloneFlags::CLONE_NEWNET)
            && !std::thread::panicking()
        {
            panic!("returning to the original network namespace: {e}");
        }
    }
}
