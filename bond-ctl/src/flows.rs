//! The flow table read off the daemon's timing path: `bondctl flows`, the flow count of
//! `status` and the metrics, and the expiry of idle flows. Walking the table takes about a
//! millisecond of system calls per thousand entries (65,536 by default, up to 4,194,304 with
//! `flow_table_size`), which failover and probe timing must not wait for, so these open the
//! bond's pinned maps themselves and run on threads of their own.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context;
use aya::maps::{Array, HashMap, Map, MapData};
use bond_common::{
    config::{BondConfig, CONFIG_BANKS},
    flow::FlowEntry,
    maps,
};

use crate::{status::FlowStatus, sys};

fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(pin_dir: &Path, name: &str) -> anyhow::Result<T> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    T::try_from(Map::from_map_data(data).with_context(|| format!("map {name}"))?).with_context(|| format!("map {name}"))
}

fn flow_map(bond: &str) -> anyhow::Result<HashMap<MapData, u64, FlowEntry>> {
    open(&sys::pin_dir(bond), maps::FLOWS)
}

/// Every flow of the bond's table.
fn entries(bond: &str) -> anyhow::Result<Vec<(u64, FlowEntry)>> {
    Ok(flow_map(bond)?.iter().filter_map(Result::ok).collect())
}

/// The number of flows in the bond's table.
pub fn count(bond: &str) -> anyhow::Result<u64> {
    Ok(flow_map(bond)?.keys().filter(Result::is_ok).count() as u64)
}

/// The `top` flows by bytes, with the member each was last sent on.
pub fn top(bond: &str, top: usize) -> anyhow::Result<Vec<FlowStatus>> {
    let pin_dir = sys::pin_dir(bond);
    let bank: Array<MapData, u32> = open(&pin_dir, maps::CONFIG_BANK)?;
    let config: Array<MapData, BondConfig> = open(&pin_dir, maps::CONFIG)?;
    let bank = bank.get(&0, 0).context("reading config_bank")? % CONFIG_BANKS;
    let cfg = config.get(&bank, 0).context("reading the config bank")?;
    let mut flows: Vec<FlowEntry> = entries(bond)?.into_iter().map(|(_, f)| f).collect();
    flows.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    let now = sys::monotonic_ns();
    let member = |slot: u8| {
        let ifindex = cfg.member_ifindex.get(usize::from(slot)).copied().filter(|i| *i != 0);
        ifindex.and_then(sys::ifname).unwrap_or_else(|| "-".into())
    };
    Ok(flows
        .iter()
        .take(top)
        .map(|f| {
            let (src, dst) = endpoints(f);
            FlowStatus {
                src,
                dst,
                proto: protocol(f),
                member: member(f.member),
                packets: f.packets,
                bytes: f.bytes,
                idle_ms: now.saturating_sub(f.last_seen_ns) / 1_000_000,
            }
        })
        .collect())
}

/// Forgets idle flows on a thread of its own, one walk at a time per bond.
#[derive(Default)]
pub struct Expiry {
    running: Arc<AtomicBool>,
}

impl Expiry {
    /// Starts forgetting the flows of `bond` last seen before `cutoff_ns` (kernel monotonic
    /// time), unless the previous walk is still going.
    pub fn start(&self, bond: &str, cutoff_ns: u64) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (running, bond) = (self.running.clone(), bond.to_string());
        let spawned = std::thread::Builder::new().name("flow-expiry".into()).spawn(move || {
            match forget_idle(&bond, cutoff_ns) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(bond = %bond, "forgot {n} idle flows"),
                Err(e) => tracing::warn!(bond = %bond, "expiring flows: {e:#}"),
            }
            running.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.running.store(false, Ordering::Release);
        }
    }
}

fn forget_idle(bond: &str, cutoff_ns: u64) -> anyhow::Result<usize> {
    let mut map = flow_map(bond)?;
    let idle: Vec<u64> = map.iter().filter_map(Result::ok).filter(|(_, f)| f.last_seen_ns < cutoff_ns).map(|(k, _)| k).collect();
    Ok(idle.iter().filter(|k| map.remove(k).is_ok()).count())
}

fn endpoints(f: &FlowEntry) -> (String, String) {
    let ports = matches!(f.proto, 6 | 17 | 132 | 33 | 136);
    let addr = |a: &[u8; 16], port: u16| -> String {
        let ip = match f.family {
            4 => std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
            6 => format!("[{}]", std::net::Ipv6Addr::from(*a)),
            _ => return a[..6].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
        };
        if ports { format!("{ip}:{port}") } else { ip.trim_matches(['[', ']']).to_string() }
    };
    (addr(&f.src, f.src_port), addr(&f.dst, f.dst_port))
}

fn protocol(f: &FlowEntry) -> String {
    if f.family == 0 {
        return format!("{:#06x}", f.dst_port);
    }
    match f.proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}
