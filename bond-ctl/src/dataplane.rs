//! The kernel side of one bond: loading the eBPF object, attaching its programs, and the maps.
//!
//! Every map is pinned under `/sys/fs/bpf/bond/<bond>/<map>` and every attachment is a pinned
//! TCX link (`link_egress_<bond>`, `link_ingress_<member>`), so `bpftool` can inspect a running
//! bond and the data plane keeps forwarding while no controller runs.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
};

use anyhow::{Context, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, PerCpuValues, RingBuf, lpm_trie::Key},
    programs::{
        SchedClassifier, TcAttachType,
        links::{FdLink, LinkOrder, PinnedLink},
        tc::TcAttachOptions,
    },
};
use bond_common::{
    config::{BUCKETS, BondConfig, CONFIG_BANKS, MAX_MEMBERS},
    maps::{self, MacKey},
    stats::{BondStats, ClassStats, MemberSeen, MemberStats},
};

use std::net::IpAddr;

use crate::{
    config::Peer,
    leftovers::{Egress, parse_part},
    sys,
};

/// The eBPF object, built from `bond-ebpf` and embedded at compile time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bond"));

/// The maps of one bond, opened from their pins.
pub struct Maps {
    config: Array<MapData, BondConfig>,
    config_bank: Array<MapData, u32>,
    member_usable: Array<MapData, u32>,
    member_stats: PerCpuArray<MapData, MemberStats>,
    bond_stats: PerCpuArray<MapData, BondStats>,
    peer_v4: LpmTrie<MapData, [u8; 4], u32>,
    peer_v6: LpmTrie<MapData, [u8; 16], u32>,
    peer_mac: HashMap<MapData, MacKey, u32>,
    monitor_targets: HashMap<MapData, [u8; 16], u32>,
    member_seen: PerCpuArray<MapData, MemberSeen>,
    bucket_bytes: PerCpuArray<MapData, u64>,
    class_stats: PerCpuArray<MapData, ClassStats>,
    probe_key: Array<MapData, bond_common::probe::ProbeKey>,
    schedule: Array<MapData, [bond_common::schedule::MemberSchedule; MAX_MEMBERS]>,
    busy_until: Array<MapData, [u64; MAX_MEMBERS]>,
    probe_events: Option<RingBuf<MapData>>,
    /// Bank in force.
    bank: u32,
    /// The grace period after the last switch, running on its own thread: until it ends,
    /// packets that read the bank index before the switch may still read the other bank. The
    /// daemon goes on meanwhile and waits only if it writes again before the period is over.
    /// A grace period per bank switch still running, oldest first (see `write_config`).
    graces: VecDeque<std::thread::JoinHandle<()>>,
    /// Started when the maps were taken over: a previous controller may have switched banks
    /// just before it stopped, so the first write waits for it.
    startup_grace: Option<std::thread::JoinHandle<()>>,
}

impl Maps {
    fn take(ebpf: &mut Ebpf) -> anyhow::Result<Maps> {
        fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(e: &mut Ebpf, name: &str) -> anyhow::Result<T> {
            let m = e.take_map(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))?;
            T::try_from(m).with_context(|| format!("map {name}"))
        }
        let config_bank: Array<MapData, u32> = take(ebpf, maps::CONFIG_BANK)?;
        let bank = config_bank.get(&0, 0).context("reading config_bank")? % CONFIG_BANKS;
        Ok(Maps {
            config: take(ebpf, maps::CONFIG)?,
            config_bank,
            member_usable: take(ebpf, maps::MEMBER_USABLE)?,
            member_stats: take(ebpf, maps::MEMBER_STATS)?,
            bond_stats: take(ebpf, maps::BOND_STATS)?,
            peer_v4: take(ebpf, maps::PEER_V4)?,
            peer_v6: take(ebpf, maps::PEER_V6)?,
            peer_mac: take(ebpf, maps::PEER_MAC)?,
            monitor_targets: take(ebpf, maps::MONITOR_TARGETS)?,
            member_seen: take(ebpf, maps::MEMBER_SEEN)?,
            bucket_bytes: take(ebpf, maps::BUCKET_BYTES)?,
            class_stats: take(ebpf, maps::CLASS_STATS)?,
            probe_key: take(ebpf, maps::PROBE_KEY)?,
            schedule: take(ebpf, maps::SCHEDULE)?,
            busy_until: take(ebpf, maps::BUSY_UNTIL)?,
            probe_events: Some(take(ebpf, maps::PROBE_EVENTS)?),
            bank,
            graces: VecDeque::new(),
            startup_grace: Some(std::thread::spawn(sys::wait_for_bpf_readers)),
        })
    }

    /// Puts `cfg` in force atomically: written whole into the next idle bank, then one 4-byte
    /// write switches banks. That bank was left `CONFIG_BANKS - 1` switches ago: once the grace
    /// period after that switch has passed, no packet reads it. It usually has, so a write
    /// rarely waits (only when `CONFIG_BANKS - 1` writes fall within one grace period).
    pub fn write_config(&mut self, cfg: &BondConfig) -> anyhow::Result<()> {
        if let Some(grace) = self.startup_grace.take() {
            let _ = grace.join();
        }
        while self.graces.len() >= CONFIG_BANKS as usize - 1 {
            if let Some(grace) = self.graces.pop_front() {
                let _ = grace.join();
            }
        }
        let next = (self.bank + 1) % CONFIG_BANKS;
        self.config.set(next, cfg, 0).context("writing the config bank")?;
        self.config_bank.set(0, next, 0).context("switching config banks")?;
        self.bank = next;
        // Finished ones go: only running grace periods can make a write wait.
        self.graces.retain(|g| !g.is_finished());
        self.graces.push_back(std::thread::spawn(sys::wait_for_bpf_readers));
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> anyhow::Result<BondConfig> {
        self.config.get(&self.bank, 0).context("reading the config bank")
    }

    /// The key probe replies are hashed with (`probeKey`; None: replies carry no hash).
    pub fn set_probe_key(&mut self, key: Option<[u8; 16]>) -> anyhow::Result<()> {
        let k = key.map_or_else(Default::default, bond_common::probe::ProbeKey::new);
        self.probe_key.set(0, k, 0).context("writing probe_key")
    }

    /// Marks members usable or not: one write, effective from the next packet.
    pub fn set_usable(&mut self, mask: u32) -> anyhow::Result<()> {
        self.member_usable.set(0, mask, 0).context("writing member_usable")
    }

    pub fn usable(&self) -> anyhow::Result<u32> {
        self.member_usable.get(&0, 0).context("reading member_usable")
    }

    /// Counters of member `slot`, summed over CPUs.
    pub fn member_stats(&self, slot: u8) -> anyhow::Result<MemberStats> {
        let per_cpu = self.member_stats.get(&u32::from(slot), 0).context("reading member_stats")?;
        let mut sum = MemberStats::default();
        per_cpu.iter().for_each(|s| sum.add(s));
        Ok(sum)
    }

    /// What traffic class `i` (its rule's position in the config) sent, summed over CPUs.
    pub fn class_stats(&self, i: u32) -> anyhow::Result<ClassStats> {
        let per_cpu = self.class_stats.get(&i, 0).context("reading class_stats")?;
        Ok(per_cpu
            .iter()
            .fold(ClassStats::default(), |a, s| ClassStats { tx_packets: a.tx_packets + s.tx_packets, tx_bytes: a.tx_bytes + s.tx_bytes }))
    }

    pub fn bond_stats(&self) -> anyhow::Result<BondStats> {
        let per_cpu = self.bond_stats.get(&0, 0).context("reading bond_stats")?;
        let mut sum = BondStats::default();
        per_cpu.iter().for_each(|s| sum.add(s));
        Ok(sum)
    }

    /// Replaces the destination tables with `entries` (peer, policy index); the config says
    /// which hold entries (`bond::action::peer_table_bits`). New entries go in before stale ones
    /// are removed, so a peer kept from before is never missing.
    pub fn set_peers(&mut self, entries: &[(Peer, u32)]) -> anyhow::Result<()> {
        let (mut v4, mut v6, mut mac) = (Vec::new(), Vec::new(), Vec::new());
        for (peer, index) in entries {
            match *peer {
                Peer::Ip(IpAddr::V4(a), len) => {
                    self.peer_v4.insert(&Key::new(u32::from(len), a.octets()), index, 0).context("writing peer_v4")?;
                    v4.push((u32::from(len), a.octets()));
                }
                Peer::Ip(IpAddr::V6(a), len) => {
                    self.peer_v6.insert(&Key::new(u32::from(len), a.octets()), index, 0).context("writing peer_v6")?;
                    v6.push((u32::from(len), a.octets()));
                }
                Peer::Mac(m) => {
                    self.peer_mac.insert(MacKey { mac: m, pad: [0; 2] }, index, 0).context("writing peer_mac")?;
                    mac.push(m);
                }
            }
        }
        for k in self.peer_v4.keys().filter_map(Result::ok).filter(|k| !v4.contains(&(k.prefix_len(), k.data()))).collect::<Vec<_>>() {
            self.peer_v4.remove(&k).context("removing from peer_v4")?;
        }
        for k in self.peer_v6.keys().filter_map(Result::ok).filter(|k| !v6.contains(&(k.prefix_len(), k.data()))).collect::<Vec<_>>() {
            self.peer_v6.remove(&k).context("removing from peer_v6")?;
        }
        for k in self.peer_mac.keys().filter_map(Result::ok).filter(|k| !mac.contains(&k.mac)).collect::<Vec<_>>() {
            self.peer_mac.remove(&k).context("removing from peer_mac")?;
        }
        Ok(())
    }

    /// The monitored ARP / NS targets: (address IPv4-mapped or IPv6, index).
    pub fn set_monitor_targets(&mut self, targets: &[([u8; 16], u32)]) -> anyhow::Result<()> {
        let old: Vec<[u8; 16]> = self.monitor_targets.keys().filter_map(Result::ok).collect();
        for k in old {
            let _ = self.monitor_targets.remove(&k);
        }
        for (addr, index) in targets {
            self.monitor_targets.insert(addr, index, 0).context("writing monitor_targets")?;
        }
        Ok(())
    }

    /// balance-aware `packet`'s rate and delay of every slot, in one write (a packet placed
    /// meanwhile sees old or new entries, both sane).
    pub fn set_schedule(&mut self, schedule: &[bond_common::schedule::MemberSchedule]) -> anyhow::Result<()> {
        let mut all = [bond_common::schedule::MemberSchedule::default(); MAX_MEMBERS];
        for (a, s) in all.iter_mut().zip(schedule) {
            *a = *s;
        }
        self.schedule.set(0, all, 0).context("writing schedule")
    }

    /// balance-aware `packet`: the schedule counts member `slot` busy until at least `until`
    /// (monotonic ns, the data plane's clock). The entry holds every member, so this reads,
    /// raises and writes back all of them: a packet placed on another member in between loses
    /// its update, which only makes the model optimistic about that member by one packet.
    pub fn count_busy_until(&mut self, slot: u8, until: u64) -> anyhow::Result<()> {
        let mut all = self.busy_until.get(&0, 0).context("reading busy_until")?;
        if let Some(b) = all.get_mut(usize::from(slot)) {
            *b = (*b).max(until);
        }
        self.busy_until.set(0, all, 0).context("writing busy_until")
    }

    /// Zeroes the counters and sightings of slot `slot`, for a member that takes it.
    pub fn reset_member(&mut self, slot: u8) -> anyhow::Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e).context("counting CPUs")?;
        let stats = PerCpuValues::try_from(vec![MemberStats::default(); cpus])?;
        self.member_stats.set(u32::from(slot), stats, 0).context("writing member_stats")?;
        let seen = PerCpuValues::try_from(vec![MemberSeen::default(); cpus])?;
        self.member_seen.set(u32::from(slot), seen, 0).context("writing member_seen")
    }

    /// Latest monitoring sightings of member `slot`, over CPUs.
    pub fn member_seen(&self, slot: u8) -> anyhow::Result<MemberSeen> {
        let per_cpu = self.member_seen.get(&u32::from(slot), 0).context("reading member_seen")?;
        let mut latest = MemberSeen::default();
        per_cpu.iter().for_each(|s| latest.latest(s));
        Ok(latest)
    }

    /// Bytes sent per balance-aware bucket of policy `index`, over CPUs (running totals).
    pub fn bucket_bytes(&self, policy: u32) -> anyhow::Result<[u64; BUCKETS]> {
        let mut out = [0u64; BUCKETS];
        for (b, total) in out.iter_mut().enumerate() {
            let per_cpu = self.bucket_bytes.get(&(policy * BUCKETS as u32 + b as u32), 0).context("reading bucket_bytes")?;
            *total = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// The probe event ring buffer (taken once, by the task that reads it).
    pub fn take_probe_events(&mut self) -> Option<RingBuf<MapData>> {
        self.probe_events.take()
    }
}

/// A loaded and attached bond data plane.
pub struct Dataplane {
    pin_dir: PathBuf,
    pub maps: Maps,
    /// Keeps the programs loaded while we may attach more members.
    ebpf: Ebpf,
    links: Vec<(String, PinnedLink)>,
    /// The size of the pinned flow table this load replaced, when it had another size.
    pub flow_table_resized_from: Option<u32>,
    /// The programs' diagnostics into the daemon's log (`bondctl up --ebpf-log`).
    _log: Option<crate::ebpf_log::Reader>,
}

/// The maps whose size follows `flow_table_size`, with their entries.
fn sized_maps(flow_table_size: u32) -> [(&'static str, u32); 2] {
    [(maps::FLOWS, flow_table_size), (maps::STICKY_FLOWS, bond_common::sticky::sets_for(flow_table_size))]
}

/// Pins back the maps a failed load had unpinned to resize them, in place of any new one the
/// loader pinned there before it failed (unused: no program of it runs).
fn restore_pins(replaced: &[(MapData, PathBuf)]) {
    for (old, pin) in replaced {
        let _ = std::fs::remove_file(pin);
        let _ = old.pin(pin);
    }
}

impl Dataplane {
    /// Loads the object with every map pinned under `pin_dir`: maps pinned there already (a
    /// running bond being adopted) are reused with their contents, others are created. The
    /// flow tables (`flows` and flow-static's `sticky_flows`) hold `flow_table_size` flows: a
    /// pinned one of another size is replaced by a new, empty one (the running programs keep
    /// the old until the new ones replace them).
    pub fn load(pin_dir: &Path, flow_table_size: u32) -> anyhow::Result<Dataplane> {
        std::fs::create_dir_all(pin_dir).with_context(|| format!("creating {}", pin_dir.display()))?;
        // Every pinned table is opened and measured before any is touched: a failure here
        // leaves the running bond's pins as they were.
        let mut pinned = Vec::new();
        for (name, size) in sized_maps(flow_table_size) {
            let pin = pin_dir.join(name);
            if !pin.exists() {
                continue;
            }
            let map = MapData::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?;
            let had = map.info().map(|i| i.max_entries()).with_context(|| format!("reading {}", pin.display()))?;
            if had != size {
                pinned.push((name, had, map, pin));
            }
        }
        // Another size: unpinned, so the loader creates the table anew; held open meanwhile and
        // pinned back if anything below fails.
        let mut replaced = Vec::new();
        let mut flow_table_resized_from = None;
        for (name, had, map, pin) in pinned {
            if let Err(e) = std::fs::remove_file(&pin) {
                restore_pins(&replaced);
                return Err(e).with_context(|| format!("removing {} to resize it", pin.display()));
            }
            if name == maps::FLOWS {
                flow_table_resized_from = Some(had);
            }
            replaced.push((map, pin));
        }
        let loaded = Self::load_object(pin_dir, flow_table_size).and_then(|(maps, mut ebpf)| {
            Ok((maps, crate::ebpf_log::Reader::start(&mut ebpf).context("reading the data plane's log")?, ebpf))
        });
        if loaded.is_err() {
            restore_pins(&replaced);
        }
        let (maps, _log, ebpf) = loaded?;
        Ok(Dataplane { pin_dir: pin_dir.to_path_buf(), maps, ebpf, links: Vec::new(), flow_table_resized_from, _log })
    }

    fn load_object(pin_dir: &Path, flow_table_size: u32) -> anyhow::Result<(Maps, Ebpf)> {
        let paths: Vec<(&str, PathBuf)> = maps::ALL.iter().map(|m| (*m, pin_dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        for (name, size) in sized_maps(flow_table_size) {
            loader.map_max_entries(name, size);
        }
        crate::ebpf_log::configure(&mut loader);
        // The verifier's whole log on a rejected program (long): BOND_VERIFIER_LOG=1.
        if std::env::var_os("BOND_VERIFIER_LOG").is_some() {
            loader.verifier_log_level(aya::VerifierLogLevel::VERBOSE | aya::VerifierLogLevel::STATS);
        }
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(EBPF_OBJECT).context("loading the eBPF object")?;
        for prog in [maps::PROG_BOND_EGRESS, maps::PROG_MEMBER_INGRESS] {
            classifier(&mut ebpf, prog)?.load().with_context(|| format!("verifying program {prog}"))?;
        }
        // The receive program pinned too, so members can be attached to it off the daemon's
        // loop (`attach_ingress_pinned`); replaced when a new controller loads its own.
        let prog_pin = pin_dir.join(INGRESS_PROG_PIN);
        let _ = std::fs::remove_file(&prog_pin);
        classifier(&mut ebpf, maps::PROG_MEMBER_INGRESS)?.pin(&prog_pin).with_context(|| format!("pinning {}", prog_pin.display()))?;
        let maps = Maps::take(&mut ebpf)?;
        Ok((maps, ebpf))
    }

    /// Attaches the transmit program to the bond device.
    pub fn attach_egress(&mut self, bond: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_BOND_EGRESS, bond, TcAttachType::Egress, egress_pin(bond))
    }

    /// Attaches the receive program to a member.
    pub fn attach_ingress(&mut self, member: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_MEMBER_INGRESS, member, TcAttachType::Ingress, ingress_pin(member))
    }

    /// Attaches `prog` and pins the link as `pin` (see `attach_pinned_link`).
    fn attach(&mut self, prog: &str, iface: &str, dir: TcAttachType, pin: String) -> anyhow::Result<()> {
        attach_pinned_link(classifier(&mut self.ebpf, prog)?, prog, &self.pin_dir, iface, dir, &pin)?;
        self.keep_link(iface, &pin)
    }

    /// Takes over the link `attach_ingress_pinned` made for `member`.
    pub fn keep_ingress_link(&mut self, member: &str) -> anyhow::Result<()> {
        self.keep_link(member, &ingress_pin(member))
    }

    fn keep_link(&mut self, iface: &str, pin: &str) -> anyhow::Result<()> {
        let path = self.pin_dir.join(pin);
        let pinned = PinnedLink::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        self.links.retain(|(n, _)| n != iface);
        self.links.push((iface.to_string(), pinned));
        Ok(())
    }

    /// Detaches the receive program from one member: its link unpinned at once, and released
    /// (which waits for an RCU grace period in the kernel) off the caller's thread.
    pub fn detach(&mut self, iface: &str) -> anyhow::Result<()> {
        if let Some(i) = self.links.iter().position(|(n, _)| n == iface) {
            let (_, pinned) = self.links.remove(i);
            sys::drop_in_background(pinned.unpin().context("unpinning link")?);
        }
        Ok(())
    }

    /// Detaches everything and removes the pins.
    /// Detaches every program and removes the pins. Goes on past a failure (a program left
    /// attached would send into a deleted bond); returns the first.
    pub fn remove(mut self) -> anyhow::Result<()> {
        let mut first = None;
        for (iface, pinned) in std::mem::take(&mut self.links) {
            if let Err(e) = pinned.unpin() {
                first.get_or_insert(anyhow::anyhow!(e).context(format!("unpinning the link of {iface}")));
            }
        }
        if let Err(e) = remove_pins(&self.pin_dir) {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

/// The pinned receive program, in a bond's pin directory.
const INGRESS_PROG_PIN: &str = "prog_member_ingress";

/// File name of the pinned receive link of `member`.
fn ingress_pin(member: &str) -> String {
    format!("link_ingress_{member}")
}

/// Attaches the receive program pinned in `pin_dir` to `member` and pins the link, without
/// the loaded data plane (for a thread of its own: creating a TCX link waits for an RCU grace
/// period). [`Dataplane::keep_ingress_link`] takes it over.
pub fn attach_ingress_pinned(pin_dir: &Path, member: &str) -> anyhow::Result<()> {
    let path = pin_dir.join(INGRESS_PROG_PIN);
    let mut prog = SchedClassifier::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    attach_pinned_link(&mut prog, maps::PROG_MEMBER_INGRESS, pin_dir, member, TcAttachType::Ingress, &ingress_pin(member))
}

/// Attaches `p` to `iface` and pins the link as `pin`. A link already pinned there (left by a
/// previous controller) is replaced without a gap: the new program goes first in the device's
/// TCX chain and takes every packet (it never passes one on) before the old link is released.
fn attach_pinned_link(
    p: &mut SchedClassifier,
    prog: &str,
    pin_dir: &Path,
    iface: &str,
    dir: TcAttachType,
    pin: &str,
) -> anyhow::Result<()> {
    let path = pin_dir.join(pin);
    let id = p
        .attach_with_options(iface, dir, TcAttachOptions::TcxOrder(LinkOrder::first()))
        .with_context(|| format!("attaching {prog} to {iface}"))?;
    let link: FdLink = p.take_link(id)?.try_into().context("TCX link")?;
    // Pinned under a temporary name and renamed over the old pin: at every moment one of the
    // two links is pinned, so a failure here never leaves the device without a program.
    // (bpffs refuses names with dots.)
    let fresh = pin_dir.join(format!("{pin}_new"));
    let _ = std::fs::remove_file(&fresh);
    drop(link.pin(&fresh).with_context(|| format!("pinning {pin}"))?);
    std::fs::rename(&fresh, &path).with_context(|| format!("replacing the pin {}", path.display()))?;
    // The old link lost its pin with the rename; nothing holds it now, so it is detached.
    Ok(())
}

/// File name of the pinned transmit link of `bond` in its pin directory.
pub fn egress_pin(bond: &str) -> String {
    format!("link_egress_{bond}")
}

/// What became of a bond's pinned transmit link (`pin_dir/link_egress_<bond>`): attached (to
/// which ifindex), detached (its device, and so the namespace it ran in, gone) or not pinned.
pub fn egress_link(pin_dir: &Path, bond: &str) -> Egress {
    let path = pin_dir.join(egress_pin(bond));
    if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Egress::Missing;
    }
    match tcx_link_ifindex(&path) {
        Ok(ifindex) => Egress::from_ifindex(ifindex),
        Err(e) => {
            tracing::debug!("reading {}: {e:#}", path.display());
            Egress::Unreadable
        }
    }
}

fn tcx_link_ifindex(path: &Path) -> anyhow::Result<u32> {
    use aya::programs::{MultiProgLink, tc::SchedClassifierLink};
    let link = FdLink::from(PinnedLink::from_pin(path)?);
    // aya lends a link's descriptor only as a TCX link's (checking its type); dropping it
    // closes the descriptor, and the pin keeps the link as it was.
    let link = SchedClassifierLink::try_from(link)?;
    Ok(sys::tcx_link_ifindex(link.fd()?)?)
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no program {name}"))?
        .try_into()
        .with_context(|| format!("program {name}"))
}

/// Removes a bond's pin directory: its link pins (detaching the programs) and map pins.
pub fn remove_pins(pin_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(pin_dir) {
        Ok(()) => {
            // A namespace's directory (`netns-cookie:<cookie>`) goes with its last bond.
            if let Some(parent) = pin_dir.parent().filter(|p| p.file_name().and_then(|n| n.to_str()).and_then(parse_part).is_some()) {
                let _ = std::fs::remove_dir(parent);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", pin_dir.display())),
    }
}

/// Member slots a config names, for sanity checks.
pub fn slots_in_use(cfg: &BondConfig) -> impl Iterator<Item = (u8, u32)> + '_ {
    cfg.member_ifindex.iter().take(MAX_MEMBERS).enumerate().filter(|(_, i)| **i != 0).map(|(s, i)| (s as u8, *i))
}
