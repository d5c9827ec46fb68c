//! Paths of other network namespaces, and of the previous version: what a dead namespace left
//! (pins, whose maps hold kernel memory, state files, control directories) is removed at
//! `bondctl up`, and a bond the previous version left under this namespace's inode is taken
//! over once proven this namespace's. The decisions are `leftovers`'.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::{
    dataplane,
    leftovers::{self, Egress, Leftover, LiveNamespaces, NetnsId, NsKey},
    runstate, sys,
};

/// Moves `bond`'s state file and pins from the previous version's paths of this namespace
/// (`netns:<inode>`) to today's, when only those exist and they are proven this namespace's
/// (`leftovers::legacy_is_ours`). Unproven, they belong to a dead namespace that had this
/// inode: left alone (the sweep removes them once their links are detached), and the bond
/// starts afresh.
pub fn adopt_legacy(bond: &str) -> anyhow::Result<()> {
    let Some(legacy) = sys::this_netns().and_then(|ns| ns.legacy_part()) else { return Ok(()) };
    let (state, pins) = (runstate::path(bond), sys::pin_dir(bond));
    let (old_state, old_pins) = (runstate::run_dir().join(&legacy).join(format!("{bond}.json")), bond_pins().join(&legacy).join(bond));
    if state.exists() || pins.exists() || !(old_state.exists() || old_pins.exists()) {
        return Ok(());
    }
    let egress = dataplane::egress_link(&old_pins, bond);
    // One that cannot be read is moved along when the links prove it ours: `up` then refuses
    // it under its new name, as any state file it cannot read.
    let state_ifindex = runstate::read(&old_state).ok().flatten().map(|s| s.ifindex);
    if !leftovers::legacy_is_ours(egress, sys::ifindex(bond), state_ifindex) {
        tracing::info!(
            bond = %bond,
            "{} and {} are not this network namespace's (a namespace gone before had its inode): left alone",
            old_pins.display(),
            old_state.display()
        );
        return Ok(());
    }
    move_dir_entry(&old_pins, &pins)?;
    if old_state.exists()
        && let Err(e) = move_dir_entry(&old_state, &state)
    {
        // Back where the previous version's daemon would look.
        let _ = std::fs::rename(&pins, &old_pins);
        return Err(e);
    }
    for dir in [old_pins.parent(), old_state.parent()].into_iter().flatten() {
        let _ = std::fs::remove_dir(dir);
    }
    // The previous daemon's control directory, this namespace's too: its sockets are stale
    // unless another bond's daemon of that version still runs here.
    if let Some(dir) = sys::this_netns().and_then(|ns| ns.legacy_control_dir()).map(|d| runstate::run_dir().join(d))
        && dir.exists()
        && !daemon_answers(&dir)
    {
        let _ = std::fs::remove_dir_all(&dir);
    }
    tracing::info!(bond = %bond, "took over the bond the previous version left under {legacy}: {}, {}", pins.display(), state.display());
    Ok(())
}

/// Renames `from` to `to`, making `to`'s parent first (bpffs renames pins too).
fn move_dir_entry(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

fn bond_pins() -> PathBuf {
    sys::bpffs_root().join("bond")
}

/// What one other namespace left, and where.
#[derive(Default)]
struct Found {
    /// Its pin directory, state directory, control directory, in the order they are removed.
    paths: Vec<(PathBuf, &'static str)>,
    egress: Vec<Egress>,
    daemon_answers: bool,
}

/// Removes what dead network namespaces left: their pins, state files and control
/// directories, one log line each. Anything of a namespace that may be alive stays
/// (`leftovers::is_dead`). Problems are logged; the daemon starts regardless.
pub fn clear_dead_namespaces() {
    let Some(own) = sys::this_netns() else { return };
    // Without cookies (kernels before 5.14) paths are keyed by inode as before: nothing tells a
    // dead namespace's from a live one's.
    let Some(own_cookie) = own.cookie else { return };
    let mut found: BTreeMap<NsKey, Found> = BTreeMap::new();
    for (path, name) in subdirs(&bond_pins()) {
        let Some(key) = leftovers::parse_part(&name) else { continue };
        let f = found.entry(key).or_default();
        f.egress.extend(subdirs(&path).iter().map(|(dir, bond)| dataplane::egress_link(dir, bond)));
        f.paths.push((path, "pins"));
    }
    for (path, name) in subdirs(&runstate::run_dir()) {
        if let Some(key) = leftovers::parse_part(&name) {
            found.entry(key).or_default().paths.push((path, "state files"));
        } else if let Some(key) = leftovers::parse_control_dir(&name) {
            let f = found.entry(key).or_default();
            f.daemon_answers |= daemon_answers(&path);
            f.paths.push((path, "control directory"));
        }
    }
    // This namespace's own, and the main namespace's control directory (`ctl-<inode>`).
    found.remove(&NsKey::Cookie(own_cookie));
    if let Some(main) = sys::main_netns_inode() {
        found.remove(&NsKey::Inode(main));
    }
    if found.is_empty() {
        return;
    }
    let live = live_namespaces(&own);
    for (key, f) in found {
        if !leftovers::is_dead(&Leftover { key, egress: f.egress, daemon_answers: f.daemon_answers }, &live) {
            continue;
        }
        for (path, what) in f.paths {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!("removed {}: the {what} of a network namespace that is gone ({key})", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("removing {} (left by a network namespace that is gone, {key}): {e}", path.display()),
            }
        }
    }
}

/// The directories in `dir`, with their names.
fn subdirs(dir: &Path) -> Vec<(PathBuf, String)> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok);
    entries
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.path(), e.file_name().into_string().ok()?)))
        .collect()
}

/// Whether a daemon answers on one of the sockets in control directory `dir`.
fn daemon_answers(dir: &Path) -> bool {
    let entries = std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok);
    entries.filter(|e| e.path().extension().is_some_and(|x| x == "sock")).any(|e| std::os::unix::net::UnixStream::connect(e.path()).is_ok())
}

/// The network namespaces alive now that can be found: every process's, the named ones
/// (/run/netns) and any other bind mount of one (as container runtimes make).
fn live_namespaces(own: &NetnsId) -> LiveNamespaces {
    let procs = std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok);
    let procs = procs.filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())));
    let named = std::fs::read_dir("/run/netns").into_iter().flatten().filter_map(Result::ok).map(|e| e.path());
    let paths = procs.map(|e| e.path().join("ns/net")).chain(named).chain(nsfs_mounts());
    let (mut cookies, mut inodes, mut ids) = (HashSet::new(), HashSet::new(), true);
    for path in paths {
        let Ok(file) = File::open(&path) else { continue };
        if !sys::is_netns_file(&file) {
            continue;
        }
        if let Ok(meta) = file.metadata() {
            inodes.insert(meta.ino());
        }
        match sys::namespace_file_id(&file) {
            Ok(id) => {
                cookies.insert(id);
            }
            Err(_) => ids = false,
        }
    }
    // NS_GET_ID names a network namespace by its cookie where the kernel has the call: checked
    // on this namespace before the ids are trusted.
    let own_id = File::open("/proc/thread-self/ns/net").and_then(|f| sys::namespace_file_id(&f)).ok();
    let trusted = ids && own_id.is_some() && own_id == own.cookie;
    if !trusted {
        tracing::debug!("this kernel does not tell a namespace's cookie (NS_GET_ID): leftovers are judged by their links alone");
    }
    LiveNamespaces { cookies: trusted.then_some(cookies), inodes }
}

/// Mount points of namespace files (`nsfs`) in this mount namespace.
fn nsfs_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (fields, fs) = l.split_once(" - ")?;
            // Mount points with spaces and the like come escaped (`\040`): not ours to find.
            let point = fields.split(' ').nth(4).filter(|p| !p.contains('\\'))?;
            (fs.split(' ').next() == Some("nsfs")).then(|| PathBuf::from(point))
        })
        .collect()
}
