//! The control socket between `bondctl` commands and the daemon running a bond.
//!
//! A Unix socket per bond, `<run dir>/ctl-cookie-<cookie>/<bond>.sock`: one directory per
//! network namespace (named by the namespace's cookie; the main namespace's `ctl-<inode>`, see
//! `leftovers`), so `bondctl --netns NS status` and `ip netns exec NS bondctl status` reach the
//! daemon of that namespace and bonds of one name in two namespaces do not meet; it goes when
//! the namespace's last daemon exits. The directory is root's alone (0700, checked before use),
//! so no other user can connect to a daemon, squat a bond's socket before its daemon starts, or
//! answer in its place; a daemon holds a lock on `<bond>.lock` for as long as it runs the bond,
//! so a stale socket left by a killed daemon is replaced and a live one is not. The daemon
//! checks the peer's credentials at accept, before reading anything; a request is one JSON line
//! of at most `MAX_REQUEST` bytes, sent within `IDLE_TIMEOUT`, at most `MAX_CONNECTIONS` at
//! once; the answer is one JSON line. The client checks that the daemon answering runs as root.

use std::{
    io::{BufRead, BufReader, Write},
    os::{
        fd::AsFd,
        unix::fs::{DirBuilderExt, MetadataExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader},
    net::{UnixListener, UnixStream},
    sync::{Semaphore, mpsc, oneshot},
    time::timeout,
};

use crate::{runstate, status::BondStatus, sys};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// Time a client has to send its request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are answered "busy" and closed.
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    SetPolicy {
        policy: String,
    },
    /// Events after sequence number `after` (`events --follow` polls with the last it saw).
    Events {
        after: u64,
    },
    /// Change options of the running bond (`KEY=VALUE`, see `config::live`).
    Set {
        options: Vec<String>,
    },
    /// The `top` flows by bytes.
    Flows {
        top: usize,
    },
    /// Re-read the configuration file (this one, or the daemon's own) and put it in force.
    Reload {
        config: Option<std::path::PathBuf>,
    },
    AddLink {
        link: String,
    },
    RemoveLink {
        link: String,
    },
    /// Remove the bond and restore its members.
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Status { status: Box<BondStatus> },
    Flows { flows: Vec<crate::status::FlowStatus> },
    Events { events: Vec<crate::status::Event> },
    Done { message: String },
    Error { error: String },
}

/// A request waiting for the daemon's answer.
pub struct Pending {
    pub bond: String,
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// This network namespace's directory of control sockets.
fn socket_dir() -> std::io::Result<PathBuf> {
    // Named the same from `--netns`, `ip netns exec` and inside.
    let ns = sys::this_netns().ok_or_else(|| std::io::Error::other("cannot tell this thread's network namespace"))?;
    Ok(runstate::run_dir().join(ns.control_dir()))
}

/// The directory the previous version gave this namespace's sockets (`ctl-<inode>`), where it
/// differs. A socket there that accepts a connection is this namespace's: its daemon is alive,
/// so is its namespace, and no two live namespaces share an inode.
fn legacy_socket_dir() -> Option<PathBuf> {
    Some(runstate::run_dir().join(sys::this_netns()?.legacy_control_dir()?))
}

/// The control socket of `bond` in this network namespace.
pub fn socket_path(bond: &str) -> std::io::Result<PathBuf> {
    Ok(socket_dir()?.join(format!("{bond}.sock")))
}

/// Whether a daemon answers on `dir`'s socket of `bond`.
fn answers(dir: &Path, bond: &str) -> bool {
    std::os::unix::net::UnixStream::connect(dir.join(format!("{bond}.sock"))).is_ok()
}

/// Creates the socket directory if needed and checks that it is root's alone: a directory
/// another user could write to would let them take a bond's socket.
fn own_socket_dir() -> anyhow::Result<PathBuf> {
    let dir = socket_dir()?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e).with_context(|| format!("creating {}", dir.display())),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        bail!(
            "{} is not a directory that only root can use (owner {}, mode {:o}); remove it and start again",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    Ok(dir)
}

/// The socket directory and the bond's lock file in it. A daemon of another bond exiting
/// removes the directory once empty: one removed under us is made again.
fn open_lock(bond: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
    for _ in 0..3 {
        let dir = own_socket_dir()?;
        let lock_path = dir.join(format!("{bond}.lock"));
        match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path) {
            Ok(f) => return Ok((dir, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", lock_path.display())),
        }
    }
    bail!("the control directory of this network namespace keeps vanishing")
}

/// Listens on the bond's socket and forwards requests to `to_daemon`.
pub fn serve(bond: &str, to_daemon: mpsc::Sender<Pending>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if let Some(legacy) = legacy_socket_dir().filter(|d| answers(d, bond)) {
        bail!("bond {bond} is run by a bondctl of the previous version in this network namespace ({}): stop it first", legacy.display());
    }
    let (dir, lock_file) = open_lock(bond)?;
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| anyhow::anyhow!("bond {bond} is already run by another bondctl in this network namespace"))?;
    let path = dir.join(format!("{bond}.sock"));
    // Ours now: a socket left there is a killed daemon's.
    let _ = std::fs::remove_file(&path);
    let std_listener = std::os::unix::net::UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std_listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(std_listener)?;
    let bond = bond.to_string();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        // Held while the daemon runs the bond (released when this task ends).
        let _lock = lock;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: pause rather than spin.
                    tracing::warn!(bond = %bond, "control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Nothing is read from anyone but root.
            if !stream.peer_cred().is_ok_and(|c| c.uid() == 0) {
                reply_and_close(stream, &Response::Error { error: "permission denied: the control socket is for root only".into() });
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                reply_and_close(stream, &Response::Error { error: "busy: too many requests at once; try again".into() });
                continue;
            };
            let (to_daemon, bond) = (to_daemon.clone(), bond.clone());
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(stream, &bond, &to_daemon).await;
            });
        }
    }))
}

/// Answers and closes without reading (refusals).
fn reply_and_close(stream: UnixStream, response: &Response) {
    let mut out = serde_json::to_string(response).unwrap_or_default();
    out.push('\n');
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = timeout(IDLE_TIMEOUT, stream.write_all(out.as_bytes())).await;
    });
}

/// One request line, bounded in size and time, and its answer.
async fn serve_connection(stream: UnixStream, bond: &str, to_daemon: &mpsc::Sender<Pending>) {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = AsyncBufReader::new(rd.take(MAX_REQUEST as u64 + 1));
    let response = match timeout(IDLE_TIMEOUT, rd.read_line(&mut line)).await {
        Err(_) => Response::Error { error: format!("no request within {IDLE_TIMEOUT:?}") },
        Ok(Err(e)) => Response::Error { error: format!("reading the request: {e}") },
        Ok(Ok(_)) if line.len() > MAX_REQUEST => Response::Error { error: format!("request longer than {MAX_REQUEST} bytes") },
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error { error: format!("malformed request: {e}") },
            Ok(request) => ask(to_daemon, bond, request).await,
        },
    };
    let mut out = serde_json::to_string(&response).unwrap_or_default();
    out.push('\n');
    let _ = timeout(IDLE_TIMEOUT, wr.write_all(out.as_bytes())).await;
}

/// Removes the bond's socket and lock files (its daemon exits), and the namespace's directory
/// once no other bond's socket is left in it.
pub fn remove_socket(bond: &str) {
    if let Ok(dir) = socket_dir() {
        let _ = std::fs::remove_file(dir.join(format!("{bond}.sock")));
        let _ = std::fs::remove_file(dir.join(format!("{bond}.lock")));
        let _ = std::fs::remove_dir(dir);
    }
}

/// Answers a request for `bond`: the flow table is read here, on a thread of its own; the rest
/// goes to the daemon's loop, which owns the bond. The daemon answers status without the flow
/// count, which is added here, so neither walks the flow table on the timing path.
pub async fn ask(to_daemon: &mpsc::Sender<Pending>, bond: &str, request: Request) -> Response {
    if let Request::Flows { top } = request {
        let bond = bond.to_string();
        return match tokio::task::spawn_blocking(move || crate::flows::top(&bond, top)).await {
            Ok(Ok(flows)) => Response::Flows { flows },
            Ok(Err(e)) => Response::Error { error: format!("{e:#}") },
            Err(e) => Response::Error { error: format!("reading the flow table: {e}") },
        };
    }
    let (tx, rx) = oneshot::channel();
    if to_daemon.send(Pending { bond: bond.to_string(), request, reply: tx }).await.is_err() {
        return Response::Error { error: "the daemon is shutting down".into() };
    }
    match rx.await {
        Ok(Response::Status { mut status }) => {
            let name = bond.to_string();
            match tokio::task::spawn_blocking(move || crate::flows::count(&name)).await {
                Ok(Ok(n)) => status.counters.flows = n,
                Ok(Err(e)) => tracing::warn!(bond = %bond, "counting flows: {e:#}"),
                Err(e) => tracing::warn!(bond = %bond, "counting flows: {e}"),
            }
            Response::Status { status }
        }
        Ok(other) => other,
        Err(_) => Response::Error { error: "the daemon did not answer".into() },
    }
}

/// Sends one request to the daemon running `bond` and waits for its answer.
pub fn request(bond: &str, req: &Request) -> anyhow::Result<Response> {
    let mut path = socket_path(bond)?;
    // A daemon of the previous version still running here answers there.
    if let Some(legacy) = legacy_socket_dir()
        && !answers(path.parent().unwrap_or(Path::new("/")), bond)
        && answers(&legacy, bond)
    {
        path = legacy.join(format!("{bond}.sock"));
    }
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => {
            bail!("no bondctl daemon runs bond {bond} in this network namespace")
        }
        Err(e) => return Err(e).context(format!("connecting to the daemon of {bond} ({})", path.display())),
    };
    // Only root can bind there; still, answers are taken from root alone.
    let peer = nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
        .with_context(|| format!("reading the credentials of the daemon of {bond}"))?;
    if peer.uid() != 0 {
        bail!("the process answering on {} runs as uid {}, not root: not a bondctl daemon", path.display(), peer.uid());
    }
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).context("reading the daemon's answer")?;
    serde_json::from_str(&answer).with_context(|| format!("malformed answer from the daemon: {answer:?}"))
}

/// Bonds with a daemon in this network namespace: sockets that accept a connection.
pub fn running_bonds() -> Vec<String> {
    let dirs = socket_dir().into_iter().chain(legacy_socket_dir());
    let mut bonds: Vec<String> = dirs
        .flat_map(|dir| {
            let names = std::fs::read_dir(&dir).into_iter().flatten();
            let names = names.filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".sock").map(str::to_string));
            names.filter(|b| answers(&dir, b)).collect::<Vec<_>>()
        })
        .collect();
    bonds.sort();
    bonds.dedup();
    bonds
}
