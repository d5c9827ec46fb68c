//! Traffic and observation: sequenced UDP flows, TCP transfers, raw frames, packet capture.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{
    sched::CpuSet,
    sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrLike, sockopt},
    unistd::Pid,
};

use crate::{Lab, Netns};

/// Marks the lab's test datagrams ("BOND").
pub const MAGIC: [u8; 4] = *b"BOND";
/// UDP port the receivers listen on.
pub const RX_PORT: u16 = 5001;

/// A test payload: magic, sequence number, flow number, padded to `len` (at least 16).
pub fn payload(seq: u64, flow: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len.max(16));
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&flow.to_be_bytes());
    p.resize(len.max(16), 0);
    p
}

/// (sequence, flow) of a test payload.
pub fn parse_payload(p: &[u8]) -> Option<(u64, u32)> {
    if p.len() < 16 || p[..4] != MAGIC {
        return None;
    }
    Some((u64::from_be_bytes(p[4..12].try_into().ok()?), u32::from_be_bytes(p[12..16].try_into().ok()?)))
}

/// (sequence, flow) of a captured Ethernet frame carrying a test datagram (IPv4/UDP, untagged).
pub fn parse_frame(f: &[u8]) -> Option<(u64, u32)> {
    if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    parse_payload(f.get(14 + ihl + 8..)?)
}

/// UDP flows from side A to side B: one sender socket per flow (its own source port) and one
/// receiver.
pub struct UdpFlows {
    pub senders: Vec<UdpSocket>,
    pub receiver: UdpSocket,
    pub dst: SocketAddr,
}

impl UdpFlows {
    /// `flows` senders on ports `base_port..` of A's address, receiver on B.
    pub fn new(lab: &Lab, flows: usize, base_port: u16) -> anyhow::Result<UdpFlows> {
        let receiver = lab.b.ns.enter(|| UdpSocket::bind((lab.b.addr, RX_PORT)))??;
        receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
        set_rcvbuf(&receiver, 16 << 20);
        let senders =
            lab.a.ns.enter(|| (0..flows).map(|i| UdpSocket::bind((lab.a.addr, base_port + i as u16))).collect::<Result<Vec<_>, _>>())??;
        Ok(UdpFlows { senders, receiver, dst: format!("{}:{RX_PORT}", lab.b.addr).parse()? })
    }

    /// Sends `per_flow` datagrams of `len` bytes on every flow, round-robin over flows;
    /// sequence numbers count over all datagrams.
    pub fn send(&self, per_flow: u64, len: usize) -> anyhow::Result<u64> {
        let mut seq = 0;
        for _ in 0..per_flow {
            for (f, s) in self.senders.iter().enumerate() {
                send_retrying(s, &payload(seq, f as u32, len), self.dst)?;
                seq += 1;
            }
        }
        Ok(seq)
    }

    /// Everything received until nothing arrives for `idle`.
    pub fn receive(&self, idle: Duration) -> Vec<(u64, u32)> {
        receive_until_idle(&self.receiver, idle)
    }
}

/// Sends, waiting briefly when the socket buffer is full rather than dropping.
pub fn send_retrying(s: &UdpSocket, p: &[u8], dst: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..1000 {
        match s.send_to(p, dst) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) || e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e).context("sending a test datagram"),
        }
    }
    bail!("socket buffer stayed full")
}

/// Test datagrams received on `sock` until nothing arrives for `idle`.
pub fn receive_until_idle(sock: &UdpSocket, idle: Duration) -> Vec<(u64, u32)> {
    let _ = sock.set_read_timeout(Some(idle));
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        if let Some(x) = parse_payload(&buf[..n]) {
            out.push(x);
        }
    }
    out
}

pub fn set_rcvbuf(s: &impl AsFd, bytes: usize) {
    // SO_RCVBUFFORCE (root) lifts the rmem_max cap, so bursts are not dropped by the receiver.
    let _ = socket::setsockopt(s, sockopt::RcvBufForce, &bytes);
}

/// Datagrams received on `s` until it is quiet for its read timeout, each with the time the
/// kernel took it in (SO_TIMESTAMPNS, CLOCK_REALTIME): a reader descheduled on a loaded
/// machine reads a backlog at once, but each datagram keeps the time it arrived.
pub fn recv_stamped(s: &UdpSocket) -> anyhow::Result<Vec<(Vec<u8>, Duration)>> {
    socket::setsockopt(s, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = match socket::recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EAGAIN) => return Ok(got),
            Err(e) => return Err(e).context("recvmsg"),
        };
        let stamp = msg.cmsgs()?.find_map(|c| match c {
            socket::ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
            _ => None,
        });
        let len = msg.bytes;
        let stamp = stamp.context("a datagram without its kernel stamp")?;
        got.push((buf[..len].to_vec(), stamp));
    }
}

/// Packet capture on one interface (AF_PACKET), for frames arriving on it.
pub struct Capture {
    fd: OwnedFd,
    pub dev: String,
}

impl Capture {
    pub fn open(ns: &Netns, dev: &str) -> anyhow::Result<Capture> {
        // Non-blocking: `frames` reads what has arrived so far and stops.
        let fd = ns.enter(|| packet_socket(dev, SockFlag::SOCK_NONBLOCK))??;
        set_rcvbuf(&fd, 32 << 20);
        Ok(Capture { fd, dev: dev.into() })
    }

    /// Frames received so far (not ones sent from this interface).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, addr)) = socket::recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            if addr.is_none_or(|a| a.pkttype() != libc::PACKET_OUTGOING) {
                out.push(buf[..n].to_vec());
            }
        }
        out
    }

    /// Test datagrams among the frames received so far.
    pub fn test_datagrams(&self) -> Vec<(u64, u32)> {
        self.frames().iter().filter_map(|f| parse_frame(f)).collect()
    }
}

/// Sends `per_flow` datagrams on every flow and captures them on B's members (`caps`, one per
/// member) until every one has arrived, each exactly once (panics otherwise); returns the
/// member each flow arrived on (its last datagram's).
pub fn flows_by_member(flows: &UdpFlows, caps: &[Capture], per_flow: u64) -> std::collections::BTreeMap<u32, usize> {
    use std::collections::BTreeMap;
    let sent = flows.send(per_flow, 100).unwrap();
    let mut seen: BTreeMap<u64, (u32, usize)> = BTreeMap::new();
    let mut copies = 0u64;
    let drain = |seen: &mut BTreeMap<u64, (u32, usize)>, copies: &mut u64| {
        for (i, c) in caps.iter().enumerate() {
            for (seq, flow) in c.test_datagrams() {
                seen.insert(seq, (flow, i));
                *copies += 1;
            }
        }
    };
    let waited = crate::poll_until(Duration::from_secs(2), || {
        drain(&mut seen, &mut copies);
        seen.len() as u64 >= sent
    });
    // A duplicate would travel with its original: one more look after a quiet moment.
    std::thread::sleep(Duration::from_millis(20));
    drain(&mut seen, &mut copies);
    assert_eq!(seen.len() as u64, sent, "every datagram captured on some member of B (waited {waited:?})");
    assert_eq!(copies, sent, "each datagram arrived exactly once");
    seen.into_values().collect()
}

/// Sends raw Ethernet frames out of an interface (through its TC egress programs).
pub struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    pub fn open(ns: &Netns, dev: &str) -> anyhow::Result<RawSender> {
        Ok(RawSender { fd: ns.enter(|| packet_socket(dev, SockFlag::empty()))?? })
    }

    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty()).map_err(|e| anyhow::anyhow!("sending a raw frame: {e}"))?;
        Ok(())
    }
}

/// An AF_PACKET socket for every EtherType, bound to `dev`.
pub fn packet_socket(dev: &str, flags: SockFlag) -> anyhow::Result<OwnedFd> {
    let fd = socket::socket(AddressFamily::Packet, SockType::Raw, flags, SockProtocol::EthAll)
        .map_err(|e| anyhow::anyhow!("AF_PACKET socket: {e}"))?;
    let ifindex = nix::net::if_::if_nametoindex(dev).map_err(|_| anyhow::anyhow!("no interface {dev}"))?;
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: SockProtocol::EthAll as u16,
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // nix builds a LinkAddr only from raw memory (there is no constructor from fields).
    // SAFETY: a pointer to a live, fully initialised sockaddr_ll and its exact size; from_raw
    // copies it and checks the family.
    let addr = unsafe { LinkAddr::from_raw((&sll as *const libc::sockaddr_ll).cast(), Some(size_of::<libc::sockaddr_ll>() as u32)) }
        .context("sockaddr_ll")?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(|e| anyhow::anyhow!("binding to {dev}: {e}"))?;
    Ok(fd)
}

/// Sends `bytes` over TCP from A to B and checks B received exactly that, with its checksum.
pub fn tcp_transfer(lab: &Lab, bytes: usize) -> anyhow::Result<()> {
    tcp_transfer_to(lab, lab.b.addr.parse()?, bytes)
}

/// `bytes` over one TCP connection from A to B's address `to` (IPv4 or IPv6), checked whole.
pub fn tcp_transfer_to(lab: &Lab, to: std::net::IpAddr, bytes: usize) -> anyhow::Result<()> {
    let listener = lab.b.ns.enter(|| TcpListener::bind((to, 0)))??;
    let port = listener.local_addr()?.port();
    let receiver = std::thread::spawn(move || -> anyhow::Result<(usize, u64)> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let (mut n, mut sum) = (0usize, 0u64);
        let mut buf = vec![0u8; 65536];
        loop {
            let k = s.read(&mut buf)?;
            if k == 0 {
                break;
            }
            sum = buf[..k].iter().fold(sum, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(*b)));
            n += k;
        }
        s.write_all(b"ok")?;
        Ok((n, sum))
    });
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
    let expected = data.iter().fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let dst = SocketAddr::new(to, port);
    let mut s = lab.a.ns.enter(|| TcpStream::connect_timeout(&dst, Duration::from_secs(5)))??;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut ack = [0u8; 2];
    s.read_exact(&mut ack)?;
    let (n, sum) = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    if n != bytes || sum != expected {
        bail!("TCP: sent {bytes} bytes, received {n} (checksum {})", if sum == expected { "ok" } else { "wrong" });
    }
    Ok(())
}

/// `ping -c COUNT` from A to B; Ok when every echo came back.
pub fn ping(lab: &Lab, count: u32) -> anyhow::Result<()> {
    // A bond just (re)started on a loaded machine may need a moment more than one ping's 2 s
    // (its neighbours learnt again): three tries, then the error.
    let mut tries = 0;
    loop {
        match lab.a.ns.exec("ping", &["-q", "-c", &count.to_string(), "-i", "0.05", "-W", "2", lab.b.addr]) {
            Ok(_) => return Ok(()),
            Err(e) if tries >= 2 => return Err(e),
            Err(_) => tries += 1,
        }
    }
}

/// Pins the calling thread to one CPU (per-CPU data-plane state then sees one sender).
pub fn pin_to_cpu(cpu: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).context("CPU number out of range")?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).context("sched_setaffinity")
}

/// When each datagram of a stream was sent, by sequence number.
pub type SentAt = Vec<Instant>;

/// A constant-rate sequenced stream from A to B over one flow, in a background thread, and its
/// receiver. Used to measure how much traffic a fault costs.
pub struct Stream {
    sender: Option<std::thread::JoinHandle<anyhow::Result<SentAt>>>,
    receiver: Option<std::thread::JoinHandle<Vec<(u64, Instant)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub interval: Duration,
}

impl Stream {
    /// Starts sending one datagram every `interval` (at most `max` datagrams).
    pub fn start(lab: &Lab, interval: Duration, max: u64) -> anyhow::Result<Stream> {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        };
        let flows = UdpFlows::new(lab, 1, 40000)?;
        let stop = Arc::new(AtomicBool::new(false));
        let UdpFlows { mut senders, receiver, dst } = flows;
        let sender = senders.pop().context("no sender")?;
        let st = stop.clone();
        let sender = std::thread::spawn(move || -> anyhow::Result<Vec<Instant>> {
            let start = Instant::now();
            let mut sent_at = Vec::new();
            let mut seq = 0;
            while seq < max && !st.load(Ordering::Relaxed) {
                let due = start + Duration::from_nanos(interval.as_nanos() as u64 * seq);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                send_retrying(&sender, &payload(seq, 0, 64), dst)?;
                sent_at.push(Instant::now());
                seq += 1;
            }
            Ok(sent_at)
        });
        let st = stop.clone();
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = received.clone();
        let receiver = std::thread::spawn(move || {
            let _ = receiver.set_read_timeout(Some(Duration::from_millis(100)));
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            let mut idle_since: Option<Instant> = None;
            loop {
                match receiver.recv(&mut buf) {
                    Ok(n) => {
                        idle_since = None;
                        if let Some((seq, _)) = parse_payload(&buf[..n]) {
                            got.push((seq, Instant::now()));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        if st.load(Ordering::Relaxed) {
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(300) {
                                break;
                            }
                        }
                    }
                }
            }
            got
        });
        Ok(Stream { sender: Some(sender), receiver: Some(receiver), stop, received, interval })
    }

    /// Datagrams received so far (B's socket), to wait for traffic to flow.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `n` more datagrams have arrived at B (panics naming `what` after 10 s):
    /// traffic flowed through whatever state the bond is in now.
    pub fn flowed(&self, n: u64, what: &str) {
        let from = self.received();
        crate::wait_until(Duration::from_secs(10), &format!("{n} datagrams arrive at B {what}"), || self.received() >= from + n);
    }

    /// Stops sending; returns (datagrams sent, (seq, arrival) received).
    pub fn finish(self) -> anyhow::Result<(u64, Vec<(u64, Instant)>)> {
        let (sent_at, got) = self.finish_timed()?;
        Ok((sent_at.len() as u64, got))
    }

    /// Stops sending; returns when each datagram was sent (indexed by sequence number) and
    /// (seq, arrival) received. A sender that was descheduled catches up in a burst, so a loss
    /// is measured in the time its datagrams were sent over, not in their count.
    pub fn finish_timed(mut self) -> anyhow::Result<(SentAt, Vec<(u64, Instant)>)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent_at = self.sender.take().context("finished twice")?.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
        let got = self.receiver.take().context("finished twice")?.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        Ok((sent_at, got))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Which of `sent` sequenced datagrams arrived.
fn arrived(sent: u64, got: &[(u64, Instant)]) -> Vec<bool> {
    let mut seen = vec![false; sent as usize];
    for (s, _) in got {
        if let Some(x) = seen.get_mut(*s as usize) {
            *x = true;
        }
    }
    seen
}

/// Loss summary of a sequenced stream: (datagrams lost, longest run of consecutive lost ones).
pub fn losses(sent: u64, got: &[(u64, Instant)]) -> (u64, u64) {
    let seen = arrived(sent, got);
    let lost = seen.iter().filter(|s| !**s).count() as u64;
    let mut longest = 0;
    let mut run = 0;
    for s in &seen {
        if *s {
            run = 0;
        } else {
            run += 1;
            longest = longest.max(run);
        }
    }
    (lost, longest)
}

/// The time over which the lost datagrams of a sequenced stream were sent: from the first lost
/// one's sending to the last's (zero when none or one was lost).
pub fn loss_span(sent_at: &[Instant], got: &[(u64, Instant)]) -> Duration {
    let seen = arrived(sent_at.len() as u64, got);
    let mut lost = seen.iter().zip(sent_at).filter(|(s, _)| !**s).map(|(_, t)| *t);
    match (lost.next(), lost.next_back()) {
        (Some(first), Some(last)) => last.duration_since(first),
        _ => Duration::ZERO,
    }
}

/// What a restart under a stream cost: datagrams sent, lost on the way, and where.
#[derive(Debug)]
pub struct RestartLoss {
    pub sent: u64,
    /// Lost end to end.
    pub lost: u64,
    /// The longest run of consecutive lost datagrams.
    pub longest: u64,
    /// Lost before the wire: A's bond never sent them on any link (the restarted side's
    /// own loss; what the wire saw and B did not get, the partner lost).
    pub lost_by_a: u64,
}

/// Under a 2,000 datagram/s stream from A to B: kills A's daemon, starts a new one 300 ms later
/// (held up for `slow_start` before it loads its programs, see [`Lab::restart_a_slowly`]), and
/// lets 4 s more pass (past the 2 s a new LACP negotiation takes and a fast partner's 3 s
/// timeout). Counts what crossed the wire too, to say which side lost what.
pub fn kill_and_restart_under_stream(lab: &mut Lab, slow_start: Duration) -> anyhow::Result<RestartLoss> {
    let wire = lab.wire().context("the wire namespace, to see what A sent")?;
    let captures = (0..lab.links).map(|i| Capture::open(wire, &format!("a{i}"))).collect::<anyhow::Result<Vec<_>>>()?;
    let stream = Stream::start(lab, Duration::from_micros(500), 20_000)?;
    crate::wait_until(Duration::from_secs(5), "traffic flows", || stream.received() > 400);
    let (killed, kill_instant) = (std::time::SystemTime::now(), Instant::now());
    lab.kill_a()?;
    std::thread::sleep(Duration::from_millis(300));
    // Read as it goes, so no capture's buffer fills.
    let mut on_wire = std::collections::BTreeSet::new();
    let mut read_wire = || on_wire.extend(captures.iter().flat_map(|c| c.test_datagrams()).map(|(seq, _)| seq));
    read_wire();
    lab.restart_a_slowly(slow_start)?;
    // When, to set against the logs of the peer (a partner's LACP timeout counts from the last
    // LACPDU the killed daemon sent).
    println!(
        "killed at {}, the new daemon ready {:?} later",
        humantime::format_rfc3339_millis(killed),
        killed.elapsed().unwrap_or_default()
    );
    read_wire();
    std::thread::sleep(Duration::from_secs(4));
    let (sent_at, got) = stream.finish_timed()?;
    read_wire();
    let sent = sent_at.len() as u64;
    let (lost, longest) = losses(sent, &got);
    let lost_by_a = (0..sent).filter(|seq| !on_wire.contains(seq)).count() as u64;
    // When the lost ones were sent, against the kill and the logs: what ran then says why.
    let seen = arrived(sent, &got);
    let lost_at: Vec<&Instant> = seen.iter().zip(&sent_at).filter(|(s, _)| !**s).map(|(_, t)| t).collect();
    if let (Some(first), Some(last)) = (lost_at.first(), lost_at.last()) {
        let at = |t: &Instant| match t.checked_duration_since(kill_instant) {
            Some(after) => format!("+{:.3} s ({})", after.as_secs_f64(), humantime::format_rfc3339_millis(killed + after)),
            None => format!("-{:.3} s", (kill_instant - *t).as_secs_f64()),
        };
        println!("lost datagrams sent from {} to {} after the kill; {lost_by_a} of them never left A", at(first), at(last));
    }
    Ok(RestartLoss { sent, lost, longest, lost_by_a })
}

/// Bytes per second B receives over `flows` TCP connections from A to `dst` for one round.
pub fn tcp_rate(lab: &Lab, dst: &str, flows: usize, round: Duration) -> anyhow::Result<f64> {
    tcp_rate_with(lab, dst, flows, round, None)
}

/// As [`tcp_rate`], the senders with congestion control `cc` (`cubic`, `bbr`; set on each
/// socket: a namespace may only pick from the host's allowed list).
pub fn tcp_rate_with(lab: &Lab, dst: &str, flows: usize, round: Duration, cc: Option<&str>) -> anyhow::Result<f64> {
    tcp_rate_between(&lab.a.ns, &lab.b.ns, dst, flows, round, cc)
}

/// As [`tcp_rate_with`], from B to A's address: what A's bond then carries is the
/// acknowledgements.
pub fn tcp_rate_back(lab: &Lab, flows: usize, round: Duration, cc: Option<&str>) -> anyhow::Result<f64> {
    tcp_rate_between(&lab.b.ns, &lab.a.ns, lab.a.addr, flows, round, cc)
}

/// TCP from namespace `from` to `dst` in namespace `to`, as [`tcp_rate_with`] says.
fn tcp_rate_between(from: &Netns, to: &Netns, dst: &str, flows: usize, round: Duration, cc: Option<&str>) -> anyhow::Result<f64> {
    const PORT: u16 = 9100;
    let listener = to.enter(|| TcpListener::bind((dst, PORT)))??;
    let connect = || -> anyhow::Result<TcpStream> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt::TcpCongestion};
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        if let Some(cc) = cc {
            setsockopt(&fd, TcpCongestion, &std::ffi::OsString::from(cc)).with_context(|| format!("congestion control {cc}"))?;
        }
        let to: std::net::SocketAddrV4 = format!("{dst}:{PORT}").parse()?;
        connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
        Ok(TcpStream::from(fd))
    };
    let streams = from.enter(|| (0..flows).map(|_| connect()).collect::<anyhow::Result<Vec<_>>>())??;
    let accepted = (0..flows).map(|_| listener.accept().map(|(s, _)| s)).collect::<Result<Vec<_>, _>>().context("accepting")?;
    let received = Arc::new(AtomicU64::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = accepted
        .into_iter()
        .map(|mut s| {
            let received = received.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let writers: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let sending = sending.clone();
            std::thread::spawn(move || {
                let buf = vec![0x5au8; 1 << 16];
                while sending.load(Ordering::Relaxed) && s.write_all(&buf).is_ok() {}
            })
        })
        .collect();
    std::thread::sleep(round);
    let bytes = received.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    sending.store(false, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(bytes as f64 / elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_spans_the_time_its_datagrams_were_sent_over() {
        let t0 = Instant::now();
        let sent_at: Vec<Instant> = (0..10u64).map(|i| t0 + Duration::from_millis(i)).collect();
        let all: Vec<(u64, Instant)> = (0..10).map(|s| (s, t0)).collect();
        assert_eq!(loss_span(&sent_at, &all), Duration::ZERO, "nothing lost");
        let without = |lost: &[u64]| all.iter().copied().filter(|(s, _)| !lost.contains(s)).collect::<Vec<_>>();
        assert_eq!(loss_span(&sent_at, &without(&[4])), Duration::ZERO, "one lost");
        assert_eq!(loss_span(&sent_at, &without(&[2, 3, 7])), Duration::from_millis(5), "first to last lost");
        assert_eq!(losses(10, &without(&[2, 3, 7])), (3, 2));
    }
}
