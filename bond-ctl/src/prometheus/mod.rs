//! The daemon's Prometheus endpoint (`bondctl up --metrics ADDR`): every bond's status in the
//! Prometheus text exposition format, version 0.0.4.
//!
//! Names shared with the node exporter's bonding collector keep its names and labels
//! (`node_bonding_slaves{master}`, `node_bonding_active{master}`); everything else is
//! `bondctl_*`, in base units (seconds, bytes per second, ratios 0..1), counters ending in
//! `_total`. Unknown values are left out rather than reported as 0: the latency figures of a
//! member no probe reply has measured yet, its speed when the driver reports none, its allocation
//! under policies without buckets.
//!
//! The text is written here rather than with the `prometheus-client` crate: that crate encodes
//! OpenMetrics 1.0 only (a counter's `# TYPE` without its `_total`, a closing `# EOF`, its own
//! content type), not the 0.0.4 format, and a registry of atomics rebuilt on every scrape only to
//! print numbers the daemon already has would cost a dependency and more code than the small
//! writer below. Likewise the HTTP side is a minimal HTTP/1.x responder rather than hyper: one
//! GET endpoint, no request bodies, no keep-alive (`Connection: close`), a request head read
//! within a size and time bound.

use std::{
    fmt::{self, Write as _},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, oneshot, watch},
    time::{Instant, timeout, timeout_at},
};

use crate::{
    control::{Pending, Request, Response},
    status::{BondStatus, MemberStatus},
};

/// Content type of the 0.0.4 text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the daemon has to answer for all bonds of one scrape.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed unanswered (each scrape queries the daemon).
const MAX_CONNECTIONS: usize = 8;

const INDEX: &str = "<html><head><title>bondctl</title></head>\n\
                     <body><h1>bondctl</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

// ---------------------------------------------------------------------------------------------
// Rendering

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A sample's value: integers exactly, floats as Prometheus spells them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Int(n.into())
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(n as u64)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(b.into())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x.is_infinite() => f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" }),
            // Rust prints the shortest text that reads back to the same f64, never an exponent.
            Value::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Milliseconds (as the status has them) to seconds.
fn ms(v: f64) -> Value {
    Value::Float(v / 1000.0)
}

/// Bond-wide families labelled `{bond}`.
type BondFamily = (&'static str, Kind, &'static str, fn(&BondStatus) -> Value);

const BOND_FAMILIES: &[BondFamily] = &[
    ("bondctl_bond_config_generation", Kind::Gauge, "Generation of the configuration in force in the data plane.", |b| b.generation.into()),
    (
        "bondctl_bond_failovers_total",
        Kind::Counter,
        "Changes of the active member and members leaving the usable set, since the daemon started.",
        |b| b.failovers.into(),
    ),
    ("bondctl_bond_flows", Kind::Gauge, "Flows in the bond's flow table.", |b| b.counters.flows.into()),
    ("bondctl_bond_tx_dropped_no_member_total", Kind::Counter, "Packets dropped because no member of the policy was usable.", |b| {
        b.counters.tx_no_member.into()
    }),
    ("bondctl_bond_tx_dropped_no_config_total", Kind::Counter, "Packets dropped because no configuration was in place.", |b| {
        b.counters.tx_no_config.into()
    }),
    ("bondctl_bond_tx_unparsed_total", Kind::Counter, "Packets whose headers could not be parsed (sent on a deterministic member).", |b| {
        b.counters.tx_unparsed.into()
    }),
    ("bondctl_bond_tx_broadcast_copies_total", Kind::Counter, "Extra copies made by broadcast.", |b| b.counters.tx_broadcast_copies.into()),
    (
        "bondctl_bond_rx_not_member_total",
        Kind::Counter,
        "Packets received on an interface that is not a member of the bond (passed up unchanged).",
        |b| b.counters.rx_not_member.into(),
    ),
    ("bondctl_bond_rx_slow_protocol_total", Kind::Counter, "Slow-protocol frames (LACP) left on the member for the controller.", |b| {
        b.counters.rx_slow_protocol.into()
    }),
];

/// Per-member families labelled `{bond, member}`; `None` leaves the member's sample out.
type MemberFamily = (&'static str, Kind, &'static str, fn(&MemberStatus) -> Option<Value>);

const MEMBER_FAMILIES: &[MemberFamily] = &[
    ("bondctl_member_up", Kind::Gauge, "Whether the member may carry traffic (1) or not (0).", |m| Some(m.usable.into())),
    ("bondctl_member_carrier", Kind::Gauge, "Whether the member has carrier.", |m| Some(m.carrier.into())),
    ("bondctl_member_admin_up", Kind::Gauge, "Whether the member is administratively up.", |m| Some(m.admin_up.into())),
    ("bondctl_member_active", Kind::Gauge, "Whether the member is the one carrying the traffic (active-backup and none policies).", |m| {
        Some(m.active.into())
    }),
    ("bondctl_member_link_failures_total", Kind::Counter, "Link failures of the member since the daemon started.", |m| {
        Some(m.link_failures.into())
    }),
    ("bondctl_member_punished_seconds", Kind::Gauge, "Punishment left before the member may be used again, 0 when not punished.", |m| {
        Some(ms(m.punished_ms as f64))
    }),
    ("bondctl_member_quality_violations", Kind::Gauge, "Quality limits the member exceeds (it is avoided while any).", |m| {
        Some(m.violations.len().into())
    }),
    ("bondctl_member_score", Kind::Gauge, "Quality score, 0 to 1.", |m| Some(m.score.into())),
    ("bondctl_member_allocation_ratio", Kind::Gauge, "Share of the balance-aware buckets allocated to the member.", |m| {
        m.allocation.map(Value::Float)
    }),
    // Bytes, as node_exporter's `node_network_speed_bytes`: promtool rejects `bits` in a name.
    ("bondctl_member_speed_bytes", Kind::Gauge, "Link speed the driver reports, in bytes per second.", |m| {
        m.speed_mbps.map(|s| Value::Int(u64::from(s) * 125_000))
    }),
    ("bondctl_member_quality_samples", Kind::Gauge, "Probe round trips the latency figures rest on.", |m| Some(m.quality.samples.into())),
    ("bondctl_member_latency_seconds", Kind::Gauge, "Mean probe round-trip time over the window.", |m| {
        (m.quality.samples > 0).then(|| ms(m.quality.lat))
    }),
    ("bondctl_member_latency_max_seconds", Kind::Gauge, "Longest probe round-trip time in the window.", |m| {
        (m.quality.samples > 0).then(|| ms(m.quality.ltm))
    }),
    (
        "bondctl_member_latency_variation_seconds",
        Kind::Gauge,
        "Packet delay variation: standard deviation of the probe round-trip times.",
        |m| (m.quality.samples > 0).then(|| ms(m.quality.pdv)),
    ),
    ("bondctl_member_loss_ratio", Kind::Gauge, "Share of the probes in the window that were lost.", |m| Some(m.quality.plr.into())),
    ("bondctl_member_error_ratio", Kind::Gauge, "Share of the received probes that were corrupt or malformed.", |m| {
        Some(m.quality.per.into())
    }),
    ("bondctl_member_availability_ratio", Kind::Gauge, "Share of the recent period the member was usable.", |m| Some(m.quality.avl.into())),
    ("bondctl_member_tx_packets_total", Kind::Counter, "Packets the bond sent on the member.", |m| Some(m.tx_packets.into())),
    ("bondctl_member_tx_bytes_total", Kind::Counter, "Bytes the bond sent on the member.", |m| Some(m.tx_bytes.into())),
    ("bondctl_member_tx_errors_total", Kind::Counter, "Redirects to the member the kernel refused.", |m| Some(m.tx_errors.into())),
    ("bondctl_member_rx_packets_total", Kind::Counter, "Packets received on the member and handed to the bond.", |m| {
        Some(m.rx_packets.into())
    }),
    ("bondctl_member_rx_bytes_total", Kind::Counter, "Bytes received on the member and handed to the bond.", |m| Some(m.rx_bytes.into())),
    ("bondctl_member_rx_dropped_total", Kind::Counter, "Packets received on the member and dropped by the data plane (duplicates).", |m| {
        Some(m.rx_dropped.into())
    }),
    ("bondctl_member_probes_sent_total", Kind::Counter, "Probes sent on the member.", |m| Some(m.tx_probes.into())),
    ("bondctl_member_probe_replies_total", Kind::Counter, "Replies to our probes received on the member.", |m| Some(m.rx_probes.into())),
    ("bondctl_member_probes_answered_total", Kind::Counter, "Probes from the peer answered on the member.", |m| {
        Some(m.probes_answered.into())
    }),
    ("bondctl_member_probe_errors_total", Kind::Counter, "Corrupt or malformed probes received on the member.", |m| {
        Some(m.probe_errors.into())
    }),
];

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Appends a label value escaped as the format wants: backslash, double quote and line feed.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends HELP text escaped: backslash and line feed.
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One family: `# HELP`, `# TYPE`, then its samples, nothing at all when it has none.
fn family<'a>(out: &mut String, name: &str, kind: Kind, help: &str, samples: impl IntoIterator<Item = (Labels<'a>, Value)>) {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return;
    }
    let _ = write!(out, "# HELP {name} ");
    escape_help(out, help);
    let _ = writeln!(out, "\n# TYPE {name} {}", kind.as_str());
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{key}=\"");
                escape_label_value(out, v);
                out.push('"');
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// The bonds' statuses in the text exposition format, one block per family, the bonds' samples
/// in the order given.
pub fn render(bonds: &[BondStatus]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "node_bonding_slaves",
        Kind::Gauge,
        "Number of configured slaves per bonding interface.",
        bonds.iter().map(|b| (vec![("master", b.name.as_str())], b.members.len().into())),
    );
    family(
        &mut out,
        "node_bonding_active",
        Kind::Gauge,
        "Number of active slaves per bonding interface.",
        bonds.iter().map(|b| (vec![("master", b.name.as_str())], b.members.iter().filter(|m| m.usable).count().into())),
    );
    family(
        &mut out,
        "bondctl_bond_info",
        Kind::Gauge,
        "The bond's policy and the standard mode it is based on (always 1).",
        bonds.iter().map(|b| {
            (vec![("bond", b.name.as_str()), ("policy", b.policy.name.as_str()), ("mode", b.policy.mode.as_str())], Value::Int(1))
        }),
    );
    for &(name, kind, help, value) in BOND_FAMILIES {
        family(&mut out, name, kind, help, bonds.iter().map(|b| (vec![("bond", b.name.as_str())], value(b))));
    }
    for &(name, kind, help, value) in MEMBER_FAMILIES {
        let samples = bonds.iter().flat_map(|b| {
            b.members.iter().filter_map(move |m| Some((vec![("bond", b.name.as_str()), ("member", m.name.as_str())], value(m)?)))
        });
        family(&mut out, name, kind, help, samples);
    }
    out
}

/// [`render`] and whether each bond's status could be read for this scrape.
fn render_scrape(bonds: &[BondStatus], failed: &[&str]) -> String {
    let mut out = render(bonds);
    let ok = bonds.iter().map(|b| (vec![("bond", b.name.as_str())], Value::Int(1)));
    let failed = failed.iter().map(|b| (vec![("bond", *b)], Value::Int(0)));
    family(
        &mut out,
        "bondctl_scrape_success",
        Kind::Gauge,
        "Whether the bond's status could be read for this scrape (1) or not (0).",
        ok.chain(failed),
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Serving

/// Binds the metrics endpoint. `ADDR` is `HOST:PORT` (`127.0.0.1:9100`, `[::]:9100`,
/// `localhost:9100`) or `:PORT` for every IPv4 address.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let target = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_string(),
    };
    TcpListener::bind(&target).await.with_context(|| format!("binding the metrics endpoint to {addr}"))
}

/// Answers scrapes on `listener` with the status of the bonds the daemon runs (`bonds`, kept
/// current by the daemon as bonds come and go), asked of it through `to_daemon`. Returns when
/// the daemon stops taking requests.
pub async fn serve(listener: TcpListener, bonds: watch::Receiver<Vec<String>>, to_daemon: mpsc::Sender<Pending>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = to_daemon.closed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("metrics endpoint: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: too many connections, closing one");
            continue;
        };
        let bonds: Vec<String> = bonds.borrow().clone();
        let to_daemon = to_daemon.clone();
        tokio::spawn(async move {
            handle(stream, &bonds, &to_daemon).await;
            drop(slot);
        });
    }
}

/// One connection: one request, one response.
async fn handle(mut stream: TcpStream, bonds: &[String], to_daemon: &mpsc::Sender<Pending>) {
    let head = timeout(HEAD_TIMEOUT, read_head(&mut stream)).await.unwrap_or(Err(Some(408)));
    let reply = match head {
        Ok(head) => {
            let request = parse_head(&head);
            match request.route {
                Ok(Route::Metrics) => {
                    let body = scrape(bonds, to_daemon).await;
                    response(200, CONTENT_TYPE, &body, request.head_only)
                }
                Ok(Route::Index) => response(200, "text/html; charset=utf-8", INDEX, request.head_only),
                Err(code) => error_response(code, request.head_only),
            }
        }
        Err(Some(code)) => error_response(code, false),
        // Closed or failed before sending anything.
        Err(None) => return,
    };
    let written = timeout(WRITE_TIMEOUT, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        // Take what the client may still send (a body, the rest of an oversized head) for a
        // moment: closing with unread data resets the connection, which can destroy the response
        // before the client reads it.
        let _ = timeout(Duration::from_secs(1), async {
            let mut sink = [0u8; 4096];
            let mut left = 64 * 1024usize;
            while let Ok(n @ 1..) = stream.read(&mut sink).await {
                left = left.saturating_sub(n);
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// The request head, up to and including the empty line ending it. `Err(None)`: nothing came
/// (or the connection failed); `Err(Some(code))`: answer with that error.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, Option<u16>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await.map_err(|_| None)?;
        if n == 0 {
            return Err(if buf.is_empty() { None } else { Some(400) });
        }
        // The end may straddle two reads: look a few bytes back.
        let from = buf.len().saturating_sub(2);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf[from..]) {
            buf.truncate(from + end);
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(Some(431));
        }
    }
}

/// Length of the head in `b` up to the end of its first empty line (`\n\n` or `\n\r\n`).
fn head_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i] != b'\n' {
            return None;
        }
        match b.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Index,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    /// What to answer, or the error status.
    route: Result<Route, u16>,
    /// A HEAD request: headers only.
    head_only: bool,
}

/// token characters (RFC 9110), as methods and header names are made of.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Reads an HTTP/1.x request head. Never panics, whatever the bytes.
fn parse_head(head: &[u8]) -> Parsed {
    let mut lines = head.split(|&c| c == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let reject = |code| Parsed { route: Err(code), head_only: false };
    // Servers ought to ignore empty lines before the request line (RFC 9112, 2.2).
    let Some(line) = lines.find(|l| !l.is_empty()) else {
        return reject(400);
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return reject(400);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return reject(400);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) || target.is_empty() || !target.bytes().all(|c| c.is_ascii_graphic()) {
        return reject(400);
    }
    match version.strip_prefix("HTTP/").map(str::as_bytes) {
        Some(b"1.0" | b"1.1") => {}
        Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => return reject(505),
        _ => return reject(400),
    }
    for header in lines.take_while(|l| !l.is_empty()) {
        // `name: value`; a line starting with white space (obsolete folding) fails here too.
        let name = header.split(|&c| c == b':').next().unwrap_or_default();
        if name.is_empty() || name.len() == header.len() || !name.iter().all(|&c| is_tchar(c)) {
            return reject(400);
        }
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return reject(405),
    };
    // origin-form `/path?query`, or absolute-form `http://host/path?query`.
    let path = if target.starts_with('/') {
        target
    } else if let Some(rest) = target.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).and(target.get(7..)) {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        return Parsed { route: Err(400), head_only };
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let route = match path {
        "/metrics" => Ok(Route::Metrics),
        "/" => Ok(Route::Index),
        _ => Err(404),
    };
    Parsed { route, head_only }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn response(code: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

fn error_response(code: u16, head_only: bool) -> Vec<u8> {
    let body = match code {
        404 => "Not found: metrics are at /metrics\n".to_string(),
        code => format!("{}\n", reason(code)),
    };
    response(code, "text/plain; charset=utf-8", &body, head_only)
}

/// Every bond's status from the daemon, rendered. Bonds that answer with an error, or not in
/// time, are left out and reported by `bondctl_scrape_success`.
async fn scrape(bonds: &[String], to_daemon: &mpsc::Sender<Pending>) -> String {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    let mut statuses = Vec::new();
    let mut failed = Vec::new();
    for bond in bonds {
        match timeout_at(deadline, status(bond, to_daemon)).await {
            Ok(Ok(s)) => statuses.push(s),
            Ok(Err(e)) => {
                tracing::debug!(bond = %bond, "metrics: no status: {e}");
                failed.push(bond.as_str());
            }
            Err(_) => {
                tracing::debug!(bond = %bond, "metrics: no status: the daemon did not answer in {STATUS_TIMEOUT:?}");
                failed.push(bond.as_str());
            }
        }
    }
    render_scrape(&statuses, &failed)
}

async fn status(bond: &str, to_daemon: &mpsc::Sender<Pending>) -> Result<BondStatus, String> {
    let (reply, answer) = oneshot::channel();
    to_daemon
        .send(Pending { bond: bond.to_string(), request: Request::Status, reply })
        .await
        .map_err(|_| "the daemon is shutting down".to_string())?;
    match answer.await {
        Ok(Response::Status { status }) => Ok(*status),
        Ok(Response::Error { error }) => Err(error),
        Ok(other) => Err(format!("unexpected answer: {other:?}")),
        Err(_) => Err("the daemon did not answer".into()),
    }
}

#[cfg(test)]
mod tests;
