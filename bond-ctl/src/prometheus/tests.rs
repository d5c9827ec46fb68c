//! Tests of the text format and the HTTP endpoint.

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
        probe_peer: None,
        name: name.into(),
        slot: 0,
        ifindex: 3,
        state: crate::status::MemberState::Up,
        carrier: true,
        admin_up: true,
        usable: true,
        active: false,
        link_failures: 0,
        not_usable: None,
        health: "up".into(),
        punished_ms: 0,
        violations: vec![],
        quality: LinkMetrics::default(),
        score: 1.0,
        speed_mbps: None,
        delivered_bps: None,
        measured_rate_bps: None,
        train_capacity_bps: None,
        queue_found_ms: None,
        queue_counted_ms: None,
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
        mac: "02:00:00:00:00:01".into(),
        alb_peers: None,
    }
}

fn bond(name: &str) -> BondStatus {
    let eth0 = MemberStatus {
        active: true,
        link_failures: 2,
        not_usable: None,
        quality: LinkMetrics { lat: 12.5, ltm: 20.0, pdv: 2.5, plr: 0.25, plr_congestion: 0.0, per: 0.0, avl: 1.0, samples: 8 },
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
        state: crate::status::MemberState::Down,
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
        probes: None,
        name: name.into(),
        ifindex: 7,
        mac: "02:00:00:00:00:01".into(),
        policy: PolicyStatus {
            name: "fast".into(),
            mode: bond_common::config::Mode::BalanceAware,
            xmit_hash_policy: bond_common::config::XmitHash::Layer2,
            packets_per_link: 1,
            balance_policy: bond_common::config::Balance::FlowDynamic,
        },
        active: None,
        generation: 4,
        failovers: 3,
        members: vec![eth0, odd],
        peers: Vec::new(),
        classes: Vec::new(),
        counters: BondCounters { tx_no_member: 5, flows: 9, ..Default::default() },
        lacp: None,
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
        "bondctl_member_speed_bytes{bond=\"bond0\",member=\"eth0\"} 1250000000",
        "bondctl_member_latency_seconds{bond=\"bond0\",member=\"eth0\"} 0.0125",
        "bondctl_member_latency_max_seconds{bond=\"bond0\",member=\"eth0\"} 0.02",
        "bondctl_member_latency_variation_seconds{bond=\"bond0\",member=\"eth0\"} 0.0025",
        "bondctl_member_loss_ratio{bond=\"bond0\",member=\"eth0\"} 0.25",
        "bondctl_member_congestion_loss_ratio{bond=\"bond0\",member=\"eth0\"} 0",
        "bondctl_member_tx_bytes_total{bond=\"bond0\",member=\"eth0\"} 12345678901",
        "bondctl_member_probe_replies_total{bond=\"bond0\",member=\"eth0\"} 7",
    ] {
        assert!(l.contains(&want), "missing {want:?} in:\n{text}");
    }
    // Unknown values are left out: no speed, no latency before any round trip.
    for absent in ["bondctl_member_speed_bytes", "bondctl_member_latency_seconds"] {
        assert!(!l.iter().any(|s| s.starts_with(absent) && s.contains("we\\\"ird")), "{absent} of the odd member");
    }
    assert!(text.ends_with('\n'));
}

/// An 802.3ad bond of three members (one with every optional value, one with none, one half
/// way) next to the balance-aware `bond("bond1")`, as a scrape that also lost a third bond.
fn realistic_scrape() -> String {
    let mut lacp = crate::lacp::Lacp::new(crate::lacp::LacpSettings { system: [0x02, 0, 0, 0, 0, 0x10], fast: true, ..Default::default() });
    for slot in 0..3u8 {
        lacp.add_port(slot, u16::from(slot) + 1, [0x02, 0, 0, 0, 1, slot], 1000, true, 1_000_000);
    }
    let full = MemberStatus {
        active: true,
        link_failures: 1,
        not_usable: None,
        quality: LinkMetrics { lat: 0.4, ltm: 1.25, pdv: 0.1, plr: 0.0, plr_congestion: 0.0, per: 0.0, avl: 1.0, samples: 50 },
        speed_mbps: Some(1000),
        allocation: Some(0.5),
        tx_probes: 60,
        rx_probes: 50,
        probes_answered: 59,
        tx_packets: 1_000,
        tx_bytes: 1_500_000,
        rx_packets: 900,
        rx_bytes: 1_200_000,
        ..member("eth0")
    };
    let bare = MemberStatus {
        slot: 1,
        state: crate::status::MemberState::Down,
        carrier: false,
        admin_up: false,
        usable: false,
        health: "down: admin down".into(),
        score: 0.0,
        ..member("eth1")
    };
    let half = MemberStatus {
        slot: 2,
        punished_ms: 250,
        violations: vec!["latency 9.0 ms > 5.0 ms".into(), "loss 10.0% > 5.0%".into()],
        quality: LinkMetrics { lat: 9.0, ltm: 30.0, pdv: 4.0, plr: 0.1, plr_congestion: 0.05, per: 0.02, avl: 0.5, samples: 3 },
        speed_mbps: Some(100),
        tx_errors: 2,
        rx_dropped: 4,
        probe_errors: 1,
        ..member("eth2")
    };
    let lag = BondStatus {
        name: "lag0".into(),
        policy: PolicyStatus {
            name: "802.3ad".into(),
            mode: bond_common::config::Mode::Lacp,
            xmit_hash_policy: bond_common::config::XmitHash::Layer34,
            packets_per_link: 1,
            balance_policy: bond_common::config::Balance::FlowStatic,
        },
        active: Some("eth0".into()),
        members: vec![full, bare, half],
        counters: BondCounters {
            tx_no_member: 1,
            tx_no_config: 2,
            tx_unparsed: 3,
            tx_broadcast_copies: 4,
            rx_not_member: 5,
            rx_slow_protocol: 6,
            flows: 7,
            flow_table_size: 65536,
        },
        lacp: Some(lacp.status()),
        events: vec![crate::status::Event::new(1, std::time::SystemTime::UNIX_EPOCH, crate::status::EventKind::Health, "eth1 down".into())],
        ..bond("lag0")
    };
    render_scrape(&[lag, bond("bond1")], &["gone"])
}

/// Prometheus's own linter finds nothing to say. Skips (saying so) only where promtool is not
/// installed (Debian package `prometheus`; `cargo xtask setup` installs it).
#[test]
fn promtool_accepts_the_output() {
    use std::process::{Command, Stdio};
    let text = realistic_scrape();
    for name in ["bondctl_member_speed_bytes", "bondctl_member_latency_seconds", "bondctl_member_allocation_ratio"] {
        assert!(text.contains(&format!("{name}{{bond=\"lag0\",member=\"eth0\"}}")), "{name} present for eth0");
        assert!(!text.contains(&format!("{name}{{bond=\"lag0\",member=\"eth1\"}}")), "{name} absent for eth1");
    }
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: promtool not installed");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    // promtool reads all of its input before it answers: write it all, then close.
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, text.as_bytes()).expect("writing to promtool");
    drop(stdin);
    let out = child.wait_with_output().expect("waiting for promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {}\n{said}\n{text}", out.status);
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

/// A bond of 5,000 members: a response of megabytes.
fn big_bond() -> BondStatus {
    BondStatus { members: (0..5000).map(|i| member(&format!("m{i}"))).collect(), ..bond("big") }
}

/// A daemon answering for bond0 and big only.
fn fake_daemon() -> (mpsc::Sender<Pending>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Pending>(4);
    let task = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            assert_eq!(p.request, Request::Status);
            let answer = if p.bond == "bond0" {
                Response::Status { status: Box::new(bond("bond0")) }
            } else if p.bond == "big" {
                Response::Status { status: Box::new(big_bond()) }
            } else {
                Response::Error { error: format!("no bond {}", p.bond) }
            };
            let _ = p.reply.send(answer);
        }
    });
    (tx, task)
}

/// End of the response head in `raw`, after its empty line.
fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Sends `request` (in pieces, to cross read boundaries), returns what came back, `None` when
/// the server closed the connection without a response.
async fn try_exchange(addr: std::net::SocketAddr, request: &[&[u8]]) -> Option<(String, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for piece in request {
        // A server that closed the connection at once makes writes fail.
        s.write_all(piece).await.ok()?;
        s.flush().await.ok()?;
        tokio::task::yield_now().await;
    }
    let _ = s.shutdown().await;
    let mut raw = Vec::new();
    let _ = timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("the server closes the connection");
    let end = head_end(&raw)?;
    let head = String::from_utf8(raw[..end - 4].to_vec()).unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    Some((status.to_string(), headers.to_string(), raw[end..].to_vec()))
}

/// [`try_exchange`] that wants an answer: the status line, the headers and the body.
async fn exchange(addr: std::net::SocketAddr, request: &[&[u8]]) -> (String, String, Vec<u8>) {
    try_exchange(addr, request).await.expect("a response")
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The endpoint on 127.0.0.1 with `limits`, serving the `bonds` of [`fake_daemon`].
async fn start(limits: Limits, bonds: &[&str]) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let listener = bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (to_daemon, daemon) = fake_daemon();
    let (names, bonds) = tokio::sync::watch::channel(bonds.iter().map(|b| b.to_string()).collect());
    let server = tokio::spawn(async move {
        serve_with(listener, bonds, to_daemon, limits).await;
        drop(names);
    });
    (addr, daemon, server)
}

#[tokio::test(flavor = "current_thread")]
async fn serves_scrapes_over_tcp() {
    let (addr, daemon, server) = start(LIMITS, &["bond0", "gone"]).await;

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

    // HTTP/1.0, HEAD, absolute-form target, query string.
    let (status, headers, body) = exchange(addr, &[b"HEAD http://127.0.0.1/metrics?x=1 HTTP/1.0\r\n\r\n"]).await;
    assert!(status.ends_with(" 200 OK"), "{status}");
    assert!(body.is_empty());
    assert!(header(&headers, "Content-Length").unwrap().parse::<usize>().unwrap() > 1000);

    let (status, headers, body) = exchange(addr, &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "Content-Type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8(body).unwrap().contains("href=\"/metrics\""));

    assert_eq!(exchange(addr, &[b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n"]).await.0, "HTTP/1.1 404 Not Found");
    assert_eq!(exchange(addr, &[b"HEAD /metricsx HTTP/1.1\r\nHost: x\r\n\r\n"]).await.0, "HTTP/1.1 404 Not Found");
    for request in [&b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"[..], b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let (status, headers, _) = exchange(addr, &[request]).await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(header(&headers, "Allow"), Some("GET, HEAD"));
    }
    // Garbage, and a head too large.
    assert_eq!(exchange(addr, &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n"]).await.0, "HTTP/1.1 400 Bad Request");
    assert_eq!(exchange(addr, &[b"G(T /metrics HTTP/1.1\r\n\r\n"]).await.0, "HTTP/1.1 400 Bad Request");
    let big = vec![b'a'; MAX_HEAD + 10];
    assert_eq!(exchange(addr, &[b"GET / HTTP/1.1\r\nX: ", &big]).await.0, "HTTP/1.1 431 Request Header Fields Too Large");
    // A client that connects and leaves gets nothing, and the server goes on.
    drop(TcpStream::connect(addr).await.unwrap());
    assert_eq!(exchange(addr, &[b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).await.0, "HTTP/1.1 200 OK");
    drop(idle);

    // The endpoint stops with the daemon.
    daemon.abort();
    let _ = daemon.await;
    timeout(Duration::from_secs(5), server).await.expect("serve returns when the daemon is gone").unwrap();
}

const SHORT: Limits =
    Limits { head: Duration::from_millis(300), status: Duration::from_millis(300), write: Duration::from_millis(300), connections: 2 };

#[tokio::test(flavor = "current_thread")]
async fn idle_and_slow_clients_are_closed_after_the_head_timeout() {
    let limits = Limits { status: Duration::from_secs(5), ..SHORT };
    let (addr, _daemon, _server) = start(limits, &["bond0"]).await;
    let started = std::time::Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost").await.unwrap();
    for s in [&mut idle, &mut slow] {
        let mut raw = Vec::new();
        let _ = timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await.expect("closed by the server");
        assert!(head_end(&raw).is_none(), "no answer to an unfinished head: {:?}", String::from_utf8_lossy(&raw));
    }
    // hyper's header read timeout, not the bound on the whole connection.
    let took = started.elapsed();
    assert!(took >= limits.head && took < limits.head + limits.status, "closed after {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn connections_beyond_the_limit_are_closed_unanswered() {
    let (addr, _daemon, _server) = start(Limits { head: Duration::from_secs(30), ..SHORT }, &["bond0"]).await;
    let held: Vec<TcpStream> =
        futures::future::join_all((0..SHORT.connections).map(|_| TcpStream::connect(addr))).await.into_iter().map(Result::unwrap).collect();
    // Let the server take them before the next one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(try_exchange(addr, &[b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).await, None);
    drop(held);
    // Slots come back as the server sees the clients go.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some((status, ..)) = try_exchange(addr, &[b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).await {
            assert_eq!(status, "HTTP/1.1 200 OK");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_that_does_not_read_loses_the_response_and_its_slot() {
    let (addr, _daemon, _server) = start(Limits { connections: 1, ..SHORT }, &["big"]).await;
    // A response larger than the socket buffers can hold, to a client that takes none of it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some((status, ..)) = try_exchange(addr, &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]).await {
            assert_eq!(status, "HTTP/1.1 200 OK");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the stalled client keeps its slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut raw = Vec::new();
    let _ = timeout(Duration::from_secs(10), stalled.read_to_end(&mut raw)).await.expect("closed by the server");
    let end = head_end(&raw).expect("the head was sent");
    let head = String::from_utf8_lossy(&raw[..end]);
    let length: usize = header(&head, "Content-Length").unwrap().trim().parse().unwrap();
    assert!(raw.len() - end < length, "the whole response went through: {length} bytes");
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
