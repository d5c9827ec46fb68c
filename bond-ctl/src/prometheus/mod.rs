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
//! writer below.
//!
//! HTTP is hyper's HTTP/1.1 server (`hyper::server::conn::http1`, on tokio through hyper-util's
//! `TokioIo` and `TokioTimer`), one request per connection: GET or HEAD of `/metrics` and of an
//! index page at `/`. Each connection runs in a task of its own, so a slow or idle client never
//! holds up another scrape; at most `MAX_CONNECTIONS` are served at once (more are closed
//! unanswered), the request head is read within a size and time bound, and the whole connection
//! within a time bound that leaves the client `WRITE_TIMEOUT` to take the response.

use std::{
    convert::Infallible,
    fmt::{self, Write as _},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use http_body_util::Full;
use hyper::{
    Method, Request as HttpRequest, Response as HttpResponse, StatusCode,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, watch},
    time::{Instant, timeout, timeout_at},
};

use crate::{
    control::{Pending, Request, Response},
    status::{BondStatus, MemberStatus},
};

/// Content type of the 0.0.4 text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest request head accepted (request line and headers); larger ones get 431.
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
    ("bondctl_bond_flow_table_size", Kind::Gauge, "Flows the bond's flow table holds at most.", |b| b.counters.flow_table_size.into()),
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
    (
        "bondctl_member_delivered_bytes_per_second",
        Kind::Gauge,
        "What the link delivered between the last two probe replies, as the peer counted it.",
        |m| m.delivered_bps.map(|b| Value::Float(b / 8.0)),
    ),
    (
        "bondctl_member_measured_rate_bytes_per_second",
        Kind::Gauge,
        "The link's rate as measured, which balance-aware packet placement without speed counts on.",
        |m| m.measured_rate_bps.map(|b| Value::Float(b / 8.0)),
    ),
    (
        "bondctl_member_train_capacity_bytes_per_second",
        Kind::Gauge,
        "The link's capacity as packet trains found it, counted on by balance-aware packet without speed until the link is first found full.",
        |m| m.train_capacity_bps.map(|b| Value::Float(b / 8.0)),
    ),
    (
        "bondctl_member_queue_found_seconds",
        Kind::Gauge,
        "The queue the latest probe found on its way out over the link, under balance-aware packet without speed.",
        |m| m.queue_found_ms.map(ms),
    ),
    (
        "bondctl_member_queue_counted_seconds",
        Kind::Gauge,
        "The queue the packet schedule counted on the link as that probe left, under balance-aware packet without speed.",
        |m| m.queue_counted_ms.map(ms),
    ),
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
    (
        "bondctl_member_loss_ratio",
        Kind::Gauge,
        "Share of the probes in the window lost for a reason other than the member's full queue.",
        |m| Some(m.quality.plr.into()),
    ),
    (
        "bondctl_member_congestion_loss_ratio",
        Kind::Gauge,
        "Share of the probes in the window lost while the member's queue was full (round trips well above its base).",
        |m| Some(m.quality.plr_congestion.into()),
    ),
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
        bonds
            .iter()
            .map(|b| (vec![("bond", b.name.as_str()), ("policy", b.policy.name.as_str()), ("mode", b.policy.mode.name())], Value::Int(1))),
    );
    for &(name, kind, help, value) in BOND_FAMILIES {
        family(&mut out, name, kind, help, bonds.iter().map(|b| (vec![("bond", b.name.as_str())], value(b))));
    }
    // Per traffic class (`classSpecificBonds`), labelled by what it matches and its policy.
    let classes = || bonds.iter().flat_map(|b| b.classes.iter().map(move |c| (b, c)));
    family(
        &mut out,
        "bondctl_class_tx_packets_total",
        Kind::Counter,
        "Packets sent under a class-specific policy.",
        classes().map(|(b, c)| {
            (vec![("bond", b.name.as_str()), ("class", c.class.as_str()), ("policy", c.policy.as_str())], c.tx_packets.into())
        }),
    );
    family(
        &mut out,
        "bondctl_class_tx_bytes_total",
        Kind::Counter,
        "Bytes sent under a class-specific policy.",
        classes()
            .map(|(b, c)| (vec![("bond", b.name.as_str()), ("class", c.class.as_str()), ("policy", c.policy.as_str())], c.tx_bytes.into())),
    );
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
    serve_with(listener, bonds, to_daemon, LIMITS).await;
}

/// The bounds one connection is held to.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Time a client has to send its request head.
    head: Duration,
    /// Time the daemon has to answer for all bonds of one scrape.
    status: Duration,
    /// Time a client has to take the response.
    write: Duration,
    /// Connections served at once; more are closed unanswered (each scrape queries the daemon).
    connections: usize,
}

const LIMITS: Limits = Limits { head: HEAD_TIMEOUT, status: STATUS_TIMEOUT, write: WRITE_TIMEOUT, connections: MAX_CONNECTIONS };

async fn serve_with(listener: TcpListener, bonds: watch::Receiver<Vec<String>>, to_daemon: mpsc::Sender<Pending>, limits: Limits) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let slots = Arc::new(Semaphore::new(limits.connections));
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
        let bonds: Arc<[String]> = bonds.borrow().as_slice().into();
        let to_daemon = to_daemon.clone();
        tokio::spawn(async move {
            connection(stream, bonds, to_daemon, limits).await;
            drop(slot);
        });
    }
}

/// One connection: one request, one response, then hyper closes it (no keep-alive). hyper
/// bounds the head's size and the time to read it; the whole connection is bounded too, which
/// leaves the client at least `limits.write` to take the response once the daemon has answered.
async fn connection(stream: TcpStream, bonds: Arc<[String]>, to_daemon: mpsc::Sender<Pending>, limits: Limits) {
    let service = service_fn(move |request| answer(request, bonds.clone(), to_daemon.clone(), limits.status));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .max_header_size(MAX_HEAD)
        // A client that shuts its side down after the request (as `curl` may, and `nc -N`)
        // still gets the answer, which takes a moment to gather.
        .half_close(true)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match timeout(limits.head + limits.status + limits.write, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("metrics endpoint: {e}"),
        Err(_) => tracing::debug!("metrics endpoint: the client did not take the response in time, closing"),
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse<Body> {
    let mut response = HttpResponse::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// GET or HEAD of `/metrics` (a scrape) or `/` (the index); hyper leaves out the body of a
/// HEAD answer.
async fn answer(
    request: HttpRequest<Incoming>,
    bonds: Arc<[String]>,
    to_daemon: mpsc::Sender<Pending>,
    status_timeout: Duration,
) -> Result<HttpResponse<Body>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "Method Not Allowed\n");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    Ok(match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, CONTENT_TYPE, scrape(&bonds, &to_daemon, status_timeout).await),
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        _ => reply(StatusCode::NOT_FOUND, TEXT, "Not found: metrics are at /metrics\n"),
    })
}

/// Every bond's status from the daemon, rendered. Bonds that answer with an error, or not in
/// time, are left out and reported by `bondctl_scrape_success`.
async fn scrape(bonds: &[String], to_daemon: &mpsc::Sender<Pending>, status_timeout: Duration) -> String {
    let deadline = Instant::now() + status_timeout;
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
                tracing::debug!(bond = %bond, "metrics: no status: the daemon did not answer in {status_timeout:?}");
                failed.push(bond.as_str());
            }
        }
    }
    render_scrape(&statuses, &failed)
}

/// A bond's status, through the same path as `bondctl status` (the flow count read off the
/// daemon's loop, see [`crate::control::ask`]).
async fn status(bond: &str, to_daemon: &mpsc::Sender<Pending>) -> Result<BondStatus, String> {
    match crate::control::ask(to_daemon, bond, Request::Status).await {
        Response::Status { status } => Ok(*status),
        Response::Error { error } => Err(error),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

#[cfg(test)]
mod tests;
