//! Small system facilities: the BPF filesystem, RCU grace periods, network namespaces.

use std::{
    ffi::CString,
    fs::File,
    os::fd::{AsRawFd, FromRawFd},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context, bail};

/// Where bonds keep their pinned maps and links: `BPFFS/bond/<bond>/`.
pub const BPFFS: &str = "/sys/fs/bpf";

pub fn pin_dir(bond: &str) -> PathBuf {
    Path::new(BPFFS).join("bond").join(bond)
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts the BPF filesystem on /sys/fs/bpf unless it is there already (it is not on every
/// system, and `ip netns exec` gives a fresh /sys without it).
pub fn ensure_bpffs() -> anyhow::Result<()> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    let src = CString::new("bpf")?;
    let target = CString::new(BPFFS)?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        bail!("mounting the BPF filesystem on {BPFFS}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out pointer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Waits until every BPF program run that started before this call has finished.
///
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is implemented with `synchronize_rcu()`, and TC programs
/// run inside RCU read-side sections, so after it returns no packet can still be reading a
/// config bank that was switched away from before the call. Where the call is refused
/// (nohz_full kernels), a pause far longer than any program run stands in for it.
pub fn wait_for_bpf_readers() {
    static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);
    // SAFETY: plain syscall with integer arguments.
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
    // SAFETY: valid fd of a namespace file.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("entering network namespace {}: {}", path.display(), std::io::Error::last_os_error());
    }
    Ok(())
}

/// The ifindex of `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: valid NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The interface name of `ifindex` in this network namespace.
pub fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buffer of IF_NAMESIZE bytes as the call requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated string into buf.
    Some(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
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
    // SAFETY: no arguments.
    unsafe { libc::geteuid() == 0 }
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `02:00:00:00:00:0a` (or with dashes) as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let h = parts.next()?;
        if h.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(h, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Sets the MAC address of interface `name` (SIOCSIFHWADDR): synchronous, for the moments a
/// balance-tlb / balance-alb failover moves the bond's address between members.
pub fn set_mac(name: &str, mac: [u8; 6]) -> std::io::Result<()> {
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: writing the union's sockaddr member, the one SIOCSIFHWADDR reads.
    let addr = unsafe { &mut req.ifr_ifru.ifru_hwaddr };
    addr.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in addr.sa_data.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    // SAFETY: valid fd and ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFHWADDR, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the data plane stamps with (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A random 32-bit number from the kernel.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: valid buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    if n == 4 { u32::from_ne_bytes(b) } else { monotonic_ns() as u32 ^ std::process::id() }
}
