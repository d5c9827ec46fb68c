//! Small system facilities: the BPF filesystem, RCU grace periods, network namespaces.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use nix::{
    mount::MsFlags,
    sched::CloneFlags,
    sys::{
        socket::{AddressFamily, SockFlag, SockType},
        statfs::BPF_FS_MAGIC,
    },
    time::ClockId,
};

use crate::leftovers::NetnsId;

/// Where bonds keep their pinned maps and links: `BPFFS/bond/<bond>/`, in a network namespace
/// other than the main one `BPFFS/bond/netns-cookie:<cookie>/<bond>/` (see [`netns_part`]),
/// under [`bpffs_root`].
pub const BPFFS: &str = "/sys/fs/bpf";

pub fn pin_dir(bond: &str) -> PathBuf {
    let dir = bpffs_root().join("bond");
    netns_part().map_or(dir.clone(), |ns| dir.join(ns)).join(bond)
}

/// Where the BPF filesystem bonds pin into is reached: /sys/fs/bpf, or, when this process runs
/// in a private mount namespace whose /sys hides it (`ip netns exec` remounts /sys), the one
/// of the namespace it was started from (see [`outer_bpffs`]). Pins in a filesystem mounted
/// only inside such a namespace go with it when its last process exits: a killed daemon would
/// take its bond's forwarding along.
pub fn bpffs_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| if is_bpffs(Path::new(BPFFS)) { BPFFS.into() } else { outer_bpffs().unwrap_or_else(|| BPFFS.into()) })
}

/// The BPF filesystem of the nearest ancestor process in another mount namespace (under `ip
/// netns exec`, `ip` itself), held open for the life of this process and reached through
/// `/proc/self/fd/N`, so it stays reachable when that ancestor exits. PID 1's root is not
/// used: it is not always readable, even by root (a PID 1 with capabilities we lack).
fn outer_bpffs() -> Option<PathBuf> {
    use std::os::{fd::IntoRawFd, unix::fs::OpenOptionsExt};
    let mine = namespace_id("self", "mnt")?;
    let pid = ancestors().find(|pid| namespace_id(&pid.to_string(), "mnt").is_some_and(|ns| ns != mine))?;
    let outer = PathBuf::from(format!("/proc/{pid}/root{BPFFS}"));
    if !is_bpffs(&outer) {
        return None;
    }
    let dir = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(&outer).ok()?;
    tracing::info!("pinning into the BPF filesystem of the mount namespace this daemon was started from ({})", outer.display());
    // Kept open (never closed) for as long as the process runs.
    Some(PathBuf::from(format!("/proc/self/fd/{}", dir.into_raw_fd())))
}

/// This process's ancestors, parent first, up to (not including) PID 1.
fn ancestors() -> impl Iterator<Item = i32> {
    std::iter::successors(Some(nix::unistd::getppid().as_raw()), |&pid| parent_of(pid)).take_while(|&pid| pid > 1).take(64)
}

/// The (device, inode) naming process `pid`'s namespace of `kind` (`net`, `mnt`).
fn namespace_id(pid: &str, kind: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).ok().map(|m| (m.dev(), m.ino()))
}

fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse().ok())
}

/// This network namespace's part of a host-wide path: none in the main namespace (PID 1's),
/// `netns-cookie:<cookie>` in any other, so that bonds of the same name in several namespaces
/// keep apart. The cookie names a namespace the same from `--netns`, `ip netns exec` and
/// inside it, and unlike the inode is never given to another namespace (see `leftovers`).
pub fn netns_part() -> Option<String> {
    this_netns()?.part()
}

/// The network namespace this thread runs in (None if /proc cannot tell: taken as the main one).
pub fn this_netns() -> Option<NetnsId> {
    let this = namespace_id("thread-self", "net")?;
    Some(NetnsId { inode: this.1, cookie: netns_cookie().ok(), main: namespace_id("1", "net") == Some(this) })
}

/// This thread's network namespace's cookie (`SO_NETNS_COOKIE` on any socket, Linux 5.14).
/// nix has no such socket option: libc's getsockopt.
pub fn netns_cookie() -> io::Result<u64> {
    let sock = nix::sys::socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` (8) bytes into `cookie`, a live local u64, and
    // the new length into `len`.
    let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NETNS_COOKIE, (&raw mut cookie).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

// <linux/nsfs.h>: NS_GET_NSTYPE = _IO(0xb7, 0x3), NS_GET_ID = _IOR(0xb7, 13, __u64) (Linux 6.18).
nix::ioctl_none!(ns_get_nstype, 0xb7, 3);
nix::ioctl_read!(ns_get_id, 0xb7, 13, u64);

/// Whether `file` is a network namespace (a `/proc/PID/ns/net`, or a bind mount of one as under
/// /run/netns): NS_GET_NSTYPE, which any other file refuses.
pub fn is_netns_file(file: &File) -> bool {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the namespace's CLONE_NEW* flag.
    unsafe { ns_get_nstype(file.as_raw_fd()) }.is_ok_and(|kind| kind == libc::CLONE_NEWNET)
}

/// The id of the namespace `file` refers to (NS_GET_ID); for a network namespace its cookie,
/// on kernels that have the call (6.18).
pub fn namespace_file_id(file: &File) -> io::Result<u64> {
    let mut id = 0u64;
    // SAFETY: NS_GET_ID writes one u64 into `id`, a live local.
    unsafe { ns_get_id(file.as_raw_fd(), &mut id) }?;
    Ok(id)
}

/// The main network namespace's (PID 1's) inode.
pub fn main_netns_inode() -> Option<u64> {
    namespace_id("1", "net").map(|(_, ino)| ino)
}

// The kernel's `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD, and the start of `struct
// bpf_link_info` for a TCX link: aya's `LinkInfo` has the link's type and ids, not its device.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C, align(8))]
#[derive(Default)]
struct TcxLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    // The union after it is 8-aligned.
    _pad: u32,
    ifindex: u32,
    attach_type: u32,
}

/// The ifindex a TCX link is attached to: 0 once its device is gone (with its namespace).
pub fn tcx_link_ifindex(link: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = TcxLinkInfo::default();
    let mut attr =
        InfoByFd { bpf_fd: link.as_raw_fd() as u32, info_len: std::mem::size_of::<TcxLinkInfo>() as u32, info: (&raw mut info) as u64 };
    // SAFETY: the kernel reads `attr` (a live local of the size passed) and writes at most
    // `info_len` bytes into `info`, a live local of that size, then the length into `attr`.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &raw mut attr, std::mem::size_of::<InfoByFd>()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.ifindex)
}

/// Makes sure bonds have a BPF filesystem to pin into (see [`bpffs_root`]): mounts one on
/// /sys/fs/bpf unless there is one (not every system has it). In a private mount namespace
/// with no host filesystem to reach, the one mounted here lasts only as long as the namespace:
/// says so, since a SIGKILL then stops the bond.
pub fn ensure_bpffs() -> anyhow::Result<()> {
    if is_bpffs(bpffs_root()) {
        return Ok(());
    }
    nix::mount::mount(Some("bpf"), BPFFS, Some("bpf"), MsFlags::empty(), None::<&str>)
        .map_err(|e| anyhow::anyhow!("mounting the BPF filesystem on {BPFFS}: {}", io::Error::from(e)))?;
    if ancestors().any(|pid| namespace_id(&pid.to_string(), "mnt") != namespace_id("self", "mnt")) {
        tracing::warn!(
            "the host has no BPF filesystem on {BPFFS}, so the one mounted here lives only in this private mount \
             namespace (as under `ip netns exec`): the bond's pins go when the daemon exits, and a SIGKILL stops \
             the bond; mount it on the host (`mount -t bpf bpf {BPFFS}`) or run `bondctl --netns NS` instead"
        );
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|st| st.filesystem_type() == BPF_FS_MAGIC)
}

// nix has no membarrier(2) wrapper (nor does libc, beyond the syscall number).
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Waits until every BPF program run that started before this call has finished.
///
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is implemented with `synchronize_rcu()`, and TC programs
/// run inside RCU read-side sections, so after it returns no packet can still be reading a
/// config bank that was switched away from before the call. Where the call is refused
/// (nohz_full kernels), a pause far longer than any program run stands in for it.
pub fn wait_for_bpf_readers() {
    static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);
    // SAFETY: membarrier takes only integer arguments (command, flags, cpu id) and touches no
    // memory of ours; an unknown command fails with EINVAL, it does not misbehave.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        if !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "membarrier(GLOBAL) unavailable ({}); waiting 50 ms after config switches instead",
                std::io::Error::last_os_error()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Moves the calling thread into a network namespace: a name under /var/run/netns or a path
/// (e.g. /proc/PID/ns/net). Call before any other thread exists so the whole process moves.
pub fn enter_netns(ns: &str) -> anyhow::Result<()> {
    let path = if ns.contains('/') { PathBuf::from(ns) } else { Path::new("/var/run/netns").join(ns) };
    let f = File::open(&path).with_context(|| format!("opening network namespace {}", path.display()))?;
    if let Err(e) = nix::sched::setns(&f, CloneFlags::CLONE_NEWNET) {
        bail!("entering network namespace {}: {}", path.display(), io::Error::from(e));
    }
    Ok(())
}

/// The ifindex of `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The interface name of `ifindex` in this network namespace.
pub fn ifname(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex).ok().map(|c| c.to_string_lossy().into_owned())
}

/// `net.ipv6.conf.<iface>.disable_ipv6`, or None when the interface has no IPv6 settings.
pub fn ipv6_disabled(iface: &str) -> Option<bool> {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6")).ok().map(|s| s.trim() == "1")
}

pub fn set_ipv6_disabled(iface: &str, disabled: bool) -> anyhow::Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6");
    std::fs::write(&path, if disabled { "1" } else { "0" }).with_context(|| format!("writing {path}"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// An AF_INET datagram socket: the handle interface ioctls (SIOCSIFHWADDR, SIOCETHTOOL) go
/// through, in the calling thread's network namespace.
/// Drops `value` on a thread of its own: closing a packet socket or a TCX link waits for an RCU
/// grace period in the kernel (tens of milliseconds), which the daemon's loop must not.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    if let Err(e) = std::thread::Builder::new().name("release".into()).spawn(move || drop(value)) {
        tracing::warn!("no thread to release a socket or link on: {e}");
    }
}

pub fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    Ok(nix::sys::socket::socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?)
}

/// An `ifreq` naming interface `name`, the rest zero. nix has no `ifreq` type: interface ioctls
/// use libc's.
pub fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let mut req = libc::ifreq { ifr_name: [0; libc::IFNAMSIZ], ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_data: std::ptr::null_mut() } };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

nix::ioctl_write_ptr_bad!(siocsifhwaddr, libc::SIOCSIFHWADDR, libc::ifreq);

/// Sets the MAC address of interface `name` (SIOCSIFHWADDR): synchronous, for the moments a
/// balance-tlb / balance-alb failover moves the bond's address between members.
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let fd = ioctl_socket()?;
    let mut req = ifreq(name)?;
    let mut addr = libc::sockaddr { sa_family: libc::ARPHRD_ETHER, sa_data: [0; 14] };
    for (d, s) in addr.sa_data.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_hwaddr = addr;
    // SAFETY: SIOCSIFHWADDR reads one `struct ifreq` (a NUL-terminated name and a sockaddr, both
    // set above) through a pointer to a live local; it writes nothing back.
    unsafe { siocsifhwaddr(fd.as_raw_fd(), &req) }?;
    Ok(())
}

nix::ioctl_write_ptr_bad!(siocsifmtu, libc::SIOCSIFMTU, libc::ifreq);

/// Sets the MTU of interface `name` (SIOCSIFMTU): synchronous, when the bond's MTU changes.
pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let fd = ioctl_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu = i32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: SIOCSIFMTU reads one `struct ifreq` (a NUL-terminated name and the MTU, both set
    // above) through a pointer to a live local; it writes nothing back.
    unsafe { siocsifmtu(fd.as_raw_fd(), &req) }?;
    Ok(())
}

nix::ioctl_readwrite_bad!(siocgifflags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifflags, libc::SIOCSIFFLAGS, libc::ifreq);

/// Turns interface `name`'s promiscuous mode on or off (its own IFF_PROMISC, counted once by
/// the kernel however often it is asked). Waits for the RTNL lock: call it off the daemon's loop.
pub fn set_promisc(name: &str, on: bool) -> io::Result<()> {
    set_flag(name, libc::IFF_PROMISC, on)
}

/// Sets interface `name` up (IFF_UP).
pub fn set_up(name: &str) -> io::Result<()> {
    set_flag(name, libc::IFF_UP, true)
}

fn set_flag(name: &str, flag: libc::c_int, on: bool) -> io::Result<()> {
    let fd = ioctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags of a live local
    // `struct ifreq`.
    unsafe { siocgifflags(fd.as_raw_fd(), &mut req) }?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let flag = flag as libc::c_short;
    req.ifr_ifru.ifru_flags = if on { flags | flag } else { flags & !flag };
    // SAFETY: SIOCSIFFLAGS reads the name and flags of the live local `struct ifreq`.
    unsafe { siocsifflags(fd.as_raw_fd(), &req) }?;
    Ok(())
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the data plane stamps with (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux: the call cannot fail.
    nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}

/// A random 32-bit number from the kernel.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // nix has no getrandom(2) wrapper.
    // SAFETY: the kernel writes at most 4 bytes into `b`, a live local array of 4 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    if n == 4 { u32::from_ne_bytes(b) } else { monotonic_ns() as u32 ^ std::process::id() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_name_and_index_resolve_both_ways() {
        let index = ifindex("lo").expect("lo has an ifindex");
        assert_eq!(ifname(index).as_deref(), Some("lo"));
        assert_eq!(ifindex("no-such-if0"), None);
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_ns() >= a + 1_000_000);
    }

    #[test]
    fn the_namespace_cookie_is_what_ns_get_id_reports() {
        let cookie = netns_cookie().expect("SO_NETNS_COOKIE (Linux 5.14)");
        let file = File::open("/proc/thread-self/ns/net").unwrap();
        assert!(is_netns_file(&file));
        assert!(!is_netns_file(&File::open("/proc/self/ns/uts").unwrap()));
        assert!(!is_netns_file(&File::open("/proc/self/status").unwrap()));
        // Kernels before 6.18 have no NS_GET_ID: the sweep then judges by links alone.
        if let Ok(id) = namespace_file_id(&file) {
            assert_eq!(id, cookie);
        }
        assert_eq!(this_netns().unwrap().cookie, Some(cookie));
    }

    #[test]
    fn interface_names_longer_than_ifnamsiz_are_refused() {
        assert!(ifreq("lo").is_ok());
        assert_eq!(ifreq("a-name-of-16-chr").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
