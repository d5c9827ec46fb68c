//! The control socket between `bondctl` commands and the daemon running a bond.
//!
//! One abstract Unix socket per bond, `@bondctl/<bond>`. Abstract sockets belong to the network
//! namespace, so `ip netns exec NS bondctl status` reaches the daemon of that namespace, and
//! they leave no file behind when a daemon is killed. Only root may talk to it: the daemon
//! checks the peer's credentials on every connection. One JSON request and one JSON response per
//! connection, each a single line.

use std::{
    io::{BufRead, BufReader, Write},
    os::{linux::net::SocketAddrExt, unix::net::SocketAddr},
    time::Duration,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use crate::status::BondStatus;

/// Prefix of the control sockets' abstract names.
pub const SOCKET_PREFIX: &str = "bondctl/";

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

fn address(bond: &str) -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("{SOCKET_PREFIX}{bond}").as_bytes())
}

/// Listens on the bond's socket and forwards requests to `to_daemon`.
pub fn serve(bond: &str, to_daemon: mpsc::Sender<Pending>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let std_listener = std::os::unix::net::UnixListener::bind_addr(&address(bond)?).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("bond {bond} is already run by another bondctl in this network namespace")
        } else {
            anyhow::anyhow!(e).context(format!("binding the control socket of {bond}"))
        }
    })?;
    std_listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(std_listener)?;
    let bond = bond.to_string();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let to_daemon = to_daemon.clone();
            let bond = bond.clone();
            tokio::spawn(async move {
                let root = stream.peer_cred().map(|c| c.uid() == 0).unwrap_or(false);
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                let mut rd = AsyncBufReader::new(rd);
                if rd.read_line(&mut line).await.is_err() {
                    return;
                }
                let response = if !root {
                    Response::Error { error: "permission denied: the control socket is for root only".into() }
                } else {
                    match serde_json::from_str::<Request>(&line) {
                        Err(e) => Response::Error { error: format!("malformed request: {e}") },
                        Ok(request) => ask(&to_daemon, &bond, request).await,
                    }
                };
                let mut out = serde_json::to_string(&response).unwrap_or_default();
                out.push('\n');
                let _ = wr.write_all(out.as_bytes()).await;
            });
        }
    }))
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
    let mut stream = match std::os::unix::net::UnixStream::connect_addr(&address(bond)?) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!("no bondctl daemon runs bond {bond} in this network namespace")
        }
        Err(e) => return Err(e).context(format!("connecting to the daemon of {bond}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).context("reading the daemon's answer")?;
    serde_json::from_str(&answer).with_context(|| format!("malformed answer from the daemon: {answer:?}"))
}

/// Bonds with a daemon in this network namespace (from the abstract sockets in /proc/net/unix).
pub fn running_bonds() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let mut bonds: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter_map(|p| p.strip_prefix('@')?.strip_prefix(SOCKET_PREFIX).map(str::to_string))
        .collect();
    bonds.sort();
    bonds.dedup();
    bonds
}
