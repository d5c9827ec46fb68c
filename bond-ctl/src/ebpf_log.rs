//! The data plane's own diagnostics (aya-log): rare events only the programs see (no
//! configuration in force, a failed redirect or copy, a source address not rewritten), off
//! unless `bondctl up --ebpf-log`. The parser giving up on a frame is counted (`tx_unparsed`),
//! not logged: a log statement on the main path doubles the states the verifier walks through
//! everything after it, and `bond_egress` with logging on would pass its limit.
//!
//! Off, the programs are loaded with aya-log's `AYA_LOG_LEVEL` at 0: a read-only global the
//! verifier knows, so it removes every log statement from the loaded program (the bench
//! compares the programs' size and cost per packet both ways). On, the level is debug and a
//! thread reads the records from aya-log's ring buffer into the daemon's log (target
//! `bond_ebpf`).

use std::{
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use aya::{Ebpf, EbpfLoader};
use aya_log::EbpfLogger;

/// Whether `bondctl up --ebpf-log` asked for the data plane's diagnostics (process-wide: set
/// once before any bond loads its programs).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// aya-log's levels (`aya_log_common::Level`): records at or below the global's value are
/// written; 0 writes none.
const LEVEL_OFF: u8 = 0;
const LEVEL_DEBUG: u8 = 4;

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets the programs' log level before they are loaded.
pub fn configure(loader: &mut EbpfLoader<'_>) {
    static OFF: u8 = LEVEL_OFF;
    static DEBUG: u8 = LEVEL_DEBUG;
    loader.override_global("AYA_LOG_LEVEL", if enabled() { &DEBUG } else { &OFF }, true);
}

/// Reads the programs' records into the daemon's log until dropped.
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Takes aya-log's ring buffer out of the loaded object (None when logging is off).
    pub fn start(ebpf: &mut Ebpf) -> anyhow::Result<Option<Reader>> {
        if !enabled() {
            return Ok(None);
        }
        let mut logger = EbpfLogger::init_with_logger(ebpf, ToTracing)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("ebpf-log".into()).spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                // Wakes on a record, or every 200 ms to notice the stop.
                let mut fds = [nix::poll::PollFd::new(logger.as_fd(), nix::poll::PollFlags::POLLIN)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16));
                logger.flush();
            }
        })?;
        tracing::info!("the data plane's diagnostics are on: logged with target bond_ebpf");
        Ok(Some(Reader { stop, thread: Some(thread) }))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// aya-log writes `log` records; the daemon logs with `tracing`.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: "bond_ebpf", "{message}"),
            log::Level::Warn => tracing::warn!(target: "bond_ebpf", "{message}"),
            log::Level::Info => tracing::info!(target: "bond_ebpf", "{message}"),
            log::Level::Debug | log::Level::Trace => tracing::debug!(target: "bond_ebpf", "{message}"),
        }
    }

    fn flush(&self) {}
}
