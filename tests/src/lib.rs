//! A network-namespace lab for the bond: two hosts joined by N links, a bond on each side,
//! traffic tools and independent observation points (kernel interface counters, packet
//! capture on the peer's members).
//!
//! Everything created here is named uniquely per process and per use, and removed on drop,
//! also when a test fails, so tests run in parallel and leave nothing behind. Traffic only
//! flows between namespaces the lab created, on documentation addresses.
//!
//! ```text
//!   netns A                                    netns B
//!  +----------------------+                  +----------------------+
//!  | bond (192.0.2.1/24)  |                  | bond (192.0.2.2/24)  |
//!  |  a0  a1 ... aN-1     |==== veth x N ====|  b0  b1 ... bN-1     |
//!  +----------------------+                  +----------------------+
//! ```

pub mod cmd;
pub mod emu;
pub mod lab;
pub mod lan;
pub mod net;
pub mod ns;
pub mod ovs;
pub mod switch;
pub mod wan;

pub use lab::{Daemon, Lab, LabOptions};
pub use ns::Netns;

use std::time::{Duration, Instant};

/// Polls `cond` (every 2 ms, plus however long `cond` itself takes) until it holds. Ok with the
/// time that took, or Err with the time waited when it did not hold within `timeout`.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration, Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `cond` holds and returns how long that took; panics saying `what` did not happen
/// when it does not hold within `timeout`. Tests wait for what they can observe rather than
/// for a fixed time.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) -> Duration {
    match poll_until(timeout, cond) {
        Ok(took) => took,
        Err(waited) => panic!("{what}: not within {waited:?}"),
    }
}

/// A name unique in this process run: `prefix` + pid + counter (short enough for an
/// interface name when `prefix` is at most 4 characters).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{}", radix36(std::process::id()), radix36(n))
}

fn radix36(mut v: u32) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(D[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

/// The file `cargo xtask test` names for tests that could not run here (environment variable
/// `BOND_TESTS_SKIPPED`).
pub const SKIPPED_ENV: &str = "BOND_TESTS_SKIPPED";

/// Records that test `test` cannot run on this machine (a kernel feature it needs is absent)
/// and why; the test then returns. `cargo xtask test` counts and lists these, so a skip is
/// visible rather than a silent pass.
pub fn skip(test: &str, reason: &str) {
    // One line per test.
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIPPED_ENV) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}
