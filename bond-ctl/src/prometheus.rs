//! The daemon's Prometheus endpoint (`bondctl up --metrics ADDR`): every bond's status in the
//! Prometheus text exposition format, version 0.0.4.
//!
//! Names shared with the node exporter's bonding collector keep its names and labels
//! (`node_bonding_slaves{master}`, `node_bonding_active{master}`); everything else is
//! `bondctl_*`, in base units (seconds, bits per second, ratios 0..1), counters ending in
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
    sync::{Semaphore, mpsc, oneshot},
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
    ("bondctl_member_speed_bits_per_second", Kind::Gauge, "Link speed the driver reports.", |m| {
        m.speed_mbps.map(|s| Value::Int(u64::from(s) * 1_000_000))
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

/// Answers scrapes on `listener` with the status of `bonds`, asked of the daemon through
/// `to_daemon`. Returns when the daemon stops taking requests.
pub async fn serve(listener: TcpListener, bonds: Vec<String>, to_daemon: mpsc::Sender<Pending>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let bonds: Arc<[String]> = bonds.into();
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
        let (bonds, to_daemon) = (bonds.clone(), to_daemon.clone());
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
mod tests {
    use std::collections::HashSet;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{
        health::metrics::LinkMetrics,
        status::{BondCounters, PolicyStatus},
    };

    const ODD: &str = "we\"ird\\name";

    fn member(name: &str) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            slot: 0,
            ifindex: 3,
            state: "up".into(),
            carrier: true,
            admin_up: true,
            usable: true,
            active: false,
            link_failures: 0,
            health: "up".into(),
            punished_ms: 0,
            violations: vec![],
            quality: LinkMetrics::default(),
            score: 1.0,
            speed_mbps: None,
            tx_probes: 0,
            rx_probes: 0,
            probes_answered: 0,
            probe_errors: 0,
            perm_mac: "02:00:00:00:00:01".into(),
            allocation: None,
            tx_packets: 0,
            tx_bytes: 0,
            tx_errors: 0,
            rx_packets: 0,
            rx_bytes: 0,
            rx_dropped: 0,
        }
    }

    fn bond(name: &str) -> BondStatus {
        let eth0 = MemberStatus {
            active: true,
            link_failures: 2,
            quality: LinkMetrics { lat: 12.5, ltm: 20.0, pdv: 2.5, plr: 0.25, per: 0.0, avl: 1.0, samples: 8 },
            score: 0.75,
            speed_mbps: Some(10_000),
            allocation: Some(0.75),
            tx_packets: 10,
            tx_bytes: 12_345_678_901,
            rx_probes: 7,
            ..member("eth0")
        };
        let odd = MemberStatus {
            slot: 1,
            state: "down".into(),
            carrier: false,
            usable: false,
            health: "down: no carrier".into(),
            punished_ms: 1500,
            violations: vec!["loss 50.0% > 5.0%".into()],
            score: 0.0,
            allocation: Some(0.25),
            ..member(ODD)
        };
        BondStatus {
            name: name.into(),
            ifindex: 7,
            mac: "02:00:00:00:00:01".into(),
            policy: PolicyStatus {
                name: "fast".into(),
                mode: "balance-aware".into(),
                xmit_hash_policy: "layer2".into(),
                packets_per_link: 1,
                balance_policy: "flow-dynamic".into(),
            },
            active: None,
            generation: 4,
            failovers: 3,
            members: vec![eth0, odd],
            peers: Vec::new(),
            counters: BondCounters { tx_no_member: 5, flows: 9, ..Default::default() },
            events: vec![],
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn renders_node_exporter_names_units_and_escapes() {
        let text = render(&[bond("bond0")]);
        let l = lines(&text);
        for want in [
            "node_bonding_slaves{master=\"bond0\"} 2",
            "node_bonding_active{master=\"bond0\"} 1",
            "# HELP node_bonding_slaves Number of configured slaves per bonding interface.",
            "# TYPE node_bonding_slaves gauge",
            "bondctl_bond_info{bond=\"bond0\",policy=\"fast\",mode=\"balance-aware\"} 1",
            "bondctl_bond_failovers_total{bond=\"bond0\"} 3",
            "# TYPE bondctl_bond_failovers_total counter",
            "bondctl_bond_flows{bond=\"bond0\"} 9",
            "bondctl_bond_tx_dropped_no_member_total{bond=\"bond0\"} 5",
            "bondctl_member_up{bond=\"bond0\",member=\"eth0\"} 1",
            "bondctl_member_up{bond=\"bond0\",member=\"we\\\"ird\\\\name\"} 0",
            "bondctl_member_carrier{bond=\"bond0\",member=\"we\\\"ird\\\\name\"} 0",
            "bondctl_member_active{bond=\"bond0\",member=\"eth0\"} 1",
            "bondctl_member_link_failures_total{bond=\"bond0\",member=\"eth0\"} 2",
            "bondctl_member_punished_seconds{bond=\"bond0\",member=\"we\\\"ird\\\\name\"} 1.5",
            "bondctl_member_punished_seconds{bond=\"bond0\",member=\"eth0\"} 0",
            "bondctl_member_quality_violations{bond=\"bond0\",member=\"we\\\"ird\\\\name\"} 1",
            "bondctl_member_score{bond=\"bond0\",member=\"eth0\"} 0.75",
            "bondctl_member_allocation_ratio{bond=\"bond0\",member=\"eth0\"} 0.75",
            "bondctl_member_speed_bits_per_second{bond=\"bond0\",member=\"eth0\"} 10000000000",
            "bondctl_member_latency_seconds{bond=\"bond0\",member=\"eth0\"} 0.0125",
            "bondctl_member_latency_max_seconds{bond=\"bond0\",member=\"eth0\"} 0.02",
            "bondctl_member_latency_variation_seconds{bond=\"bond0\",member=\"eth0\"} 0.0025",
            "bondctl_member_loss_ratio{bond=\"bond0\",member=\"eth0\"} 0.25",
            "bondctl_member_tx_bytes_total{bond=\"bond0\",member=\"eth0\"} 12345678901",
            "bondctl_member_probe_replies_total{bond=\"bond0\",member=\"eth0\"} 7",
        ] {
            assert!(l.contains(&want), "missing {want:?} in:\n{text}");
        }
        // Unknown values are left out: no speed, no latency before any round trip.
        for absent in ["bondctl_member_speed_bits_per_second", "bondctl_member_latency_seconds"] {
            assert!(!l.iter().any(|s| s.starts_with(absent) && s.contains("we\\\"ird")), "{absent} of the odd member");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn families_are_whole_and_announced_once() {
        let text = render(&[bond("bond0"), bond("bond1")]);
        let mut helped = HashSet::new();
        let mut typed = HashSet::new();
        let mut done = HashSet::new();
        let mut current = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(helped.insert(name), "HELP twice for {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.insert(name), "TYPE twice for {name}");
                assert!(helped.contains(name), "TYPE before HELP for {name}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
                if !current.is_empty() {
                    done.insert(current);
                }
                current = name;
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample outside its family: {line}");
                assert!(!done.contains(name));
                assert!(name == "node_bonding_slaves" || name == "node_bonding_active" || name.starts_with("bondctl_"));
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "value of {line}");
            }
        }
        assert_eq!(helped, typed);
        // Both bonds in one block per family.
        let slaves: Vec<&str> = text.lines().filter(|l| l.starts_with("node_bonding_slaves{")).collect();
        assert_eq!(slaves, ["node_bonding_slaves{master=\"bond0\"} 2", "node_bonding_slaves{master=\"bond1\"} 2"]);
    }

    #[test]
    fn escaping_and_values() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
        s.clear();
        escape_help(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\"b\\\\c\\nd");
        assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Value::Float(1e-9).to_string(), "0.000000001");
        assert_eq!(Value::Int(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(render(&[]), "");
        assert_eq!(
            render_scrape(&[], &["gone"]),
            "# HELP bondctl_scrape_success Whether the bond's status could be read for this scrape (1) or not (0).\n\
             # TYPE bondctl_scrape_success gauge\nbondctl_scrape_success{bond=\"gone\"} 0\n"
        );
    }

    #[test]
    fn request_heads() {
        let ok = |route, head_only| Parsed { route: Ok(route), head_only };
        let err = |code| Parsed { route: Err(code), head_only: false };
        let cases: &[(&[u8], Parsed)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: x:1\r\nAccept: */*\r\n\r\n", ok(Route::Metrics, false)),
            (b"GET /metrics?name[]=x HTTP/1.0\n\n", ok(Route::Metrics, false)),
            (b"\r\nGET http://host:9100/metrics HTTP/1.1\r\n\r\n", ok(Route::Metrics, false)),
            (b"GET HTTP://host HTTP/1.1\r\n\r\n", ok(Route::Index, false)),
            (b"HEAD / HTTP/1.1\r\n\r\n", ok(Route::Index, true)),
            (b"GET / HTTP/1.1\r\n\r\n", ok(Route::Index, false)),
            (b"HEAD /nope HTTP/1.1\r\n\r\n", Parsed { route: Err(404), head_only: true }),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", err(404)),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n", err(405)),
            (b"DELETE / HTTP/1.1\r\n\r\n", err(405)),
            (b"GET /metrics HTTP/2.0\r\n\r\n", err(505)),
            (b"PRI * HTTP/2.0\r\n\r\n", err(505)),
            (b"GET /metrics\r\n\r\n", err(400)),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", err(400)),
            (b"GET /metrics HTTP/1.1 x\r\n\r\n", err(400)),
            (b"GET metrics HTTP/1.1\r\n\r\n", err(400)),
            (b"G(T /metrics HTTP/1.1\r\n\r\n", err(400)),
            (b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", err(400)),
            (b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", err(400)),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", err(400)),
            (b"GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n", err(400)),
            (b"\xff\xfe\x00\r\n\r\n", err(400)),
            (b"\r\n\r\n", err(400)),
            (b"", err(400)),
        ];
        for (head, want) in cases {
            assert_eq!(parse_head(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let pieces: &[&[u8]] =
            &[b"GET", b"HEAD", b" ", b"/", b"/metrics", b"HTTP/1.1", b"HTTP/", b"\r", b"\n", b":", b"?", b"\xff", b"\xc3"];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut head = Vec::new();
            for _ in 0..next() % 24 {
                match next() % 3 {
                    0 => head.push(next() as u8),
                    _ => head.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]),
                }
            }
            let _ = parse_head(&head);
            let _ = head_end(&head);
        }
    }

    #[test]
    fn head_ends_at_the_first_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"\n"), None);
        assert_eq!(head_end(b""), None);
    }

    /// A daemon answering for bond0 only.
    fn fake_daemon() -> (mpsc::Sender<Pending>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Pending>(4);
        let task = tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                assert_eq!(p.request, Request::Status);
                let answer = if p.bond == "bond0" {
                    Response::Status { status: Box::new(bond("bond0")) }
                } else {
                    Response::Error { error: format!("no bond {}", p.bond) }
                };
                let _ = p.reply.send(answer);
            }
        });
        (tx, task)
    }

    /// Sends `request` (in pieces, to cross read boundaries), returns the status line, the
    /// headers and the body.
    async fn exchange(addr: std::net::SocketAddr, request: &[&[u8]]) -> (String, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        for piece in request {
            s.write_all(piece).await.unwrap();
            s.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        s.shutdown().await.unwrap();
        let mut raw = Vec::new();
        timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.unwrap().unwrap();
        let end = head_end(&raw).expect("a response head");
        let head = String::from_utf8(raw[..end].to_vec()).unwrap();
        let (status, headers) = head.split_once("\r\n").unwrap();
        (status.to_string(), headers.to_string(), raw[end..].to_vec())
    }

    fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
        headers.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn serves_scrapes_over_tcp() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (to_daemon, daemon) = fake_daemon();
        let server = tokio::spawn(serve(listener, vec!["bond0".into(), "gone".into()], to_daemon));

        // A client that sends nothing does not hold the others up.
        let idle = TcpStream::connect(addr).await.unwrap();

        let (status, headers, body) =
            exchange(addr, &[b"GET /metr", b"ics HTTP/1.1\r\nHost: 127.0.0.1\r", b"\nAccept: text/plain\r\n\r\n"]).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some(CONTENT_TYPE));
        assert_eq!(header(&headers, "Connection"), Some("close"));
        assert_eq!(header(&headers, "Content-Length"), Some(body.len().to_string().as_str()));
        let body = String::from_utf8(body).unwrap();
        let l = lines(&body);
        assert!(l.contains(&"node_bonding_slaves{master=\"bond0\"} 2"), "{body}");
        assert!(l.contains(&"bondctl_scrape_success{bond=\"bond0\"} 1"), "{body}");
        assert!(l.contains(&"bondctl_scrape_success{bond=\"gone\"} 0"), "{body}");
        assert!(!body.contains("master=\"gone\""));

        let (status, headers, body) = exchange(addr, &[b"HEAD /metrics HTTP/1.0\r\n\r\n"]).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.is_empty());
        assert!(header(&headers, "Content-Length").unwrap().parse::<usize>().unwrap() > 1000);

        let (status, headers, body) = exchange(addr, &[b"GET / HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some("text/html; charset=utf-8"));
        assert!(String::from_utf8(body).unwrap().contains("href=\"/metrics\""));

        assert_eq!(exchange(addr, &[b"GET /favicon.ico HTTP/1.1\r\n\r\n"]).await.0, "HTTP/1.1 404 Not Found");
        let (status, headers, _) = exchange(addr, &[b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"]).await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(header(&headers, "Allow"), Some("GET, HEAD"));
        // Garbage: a head that ends, one that never does, one too large.
        assert_eq!(exchange(addr, &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n"]).await.0, "HTTP/1.1 400 Bad Request");
        assert_eq!(exchange(addr, &[b"\x00\xffGET / HTTP/1.1\r\nHost"]).await.0, "HTTP/1.1 400 Bad Request");
        let big = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(exchange(addr, &[b"GET / HTTP/1.1\r\nX: ", &big]).await.0, "HTTP/1.1 431 Request Header Fields Too Large");
        // A client that connects and leaves gets nothing, and the server goes on.
        drop(TcpStream::connect(addr).await.unwrap());
        assert_eq!(exchange(addr, &[b"GET /metrics HTTP/1.1\r\n\r\n"]).await.0, "HTTP/1.1 200 OK");
        drop(idle);

        // The endpoint stops with the daemon.
        daemon.abort();
        let _ = daemon.await;
        timeout(Duration::from_secs(5), server).await.expect("serve returns when the daemon is gone").unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bind_errors_name_the_address() {
        let taken = bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = format!("{:#}", bind(&addr).await.unwrap_err());
        assert!(e.starts_with(&format!("binding the metrics endpoint to {addr}: ")), "{e}");
        let e = format!("{:#}", bind("not an address").await.unwrap_err());
        assert!(e.contains("not an address"), "{e}");
    }
}
