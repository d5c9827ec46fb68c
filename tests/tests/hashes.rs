//! balance-xor's transmit hashes against the Linux bonding driver's formulas.
//!
//! Crafted frames are sent through the bond; the member each arrives on at the peer must be
//! `kernel_hash(frame) % 3`. The oracle below is a line-by-line transcription of
//! drivers/net/bonding/bond_main.c (`__bond_xmit_hash` and helpers) and the parts of
//! net/core/flow_dissector.c the encap policies use, written independently of the data plane's
//! implementation in bond-common.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use bond_tests::{
    Daemon, Lab, LabOptions,
    net::{Capture, MAGIC, RawSender},
    poll_until,
};

// ---------------------------------------------------------------------------------------------
// The oracle: the kernel's C, transcribed. `f` is the frame; all offsets are from its start.
// Multi-byte fields the kernel copies as raw network-order words are read little-endian (x86).

#[derive(Default, Clone, Copy)]
struct FlowKeys {
    src: u32,
    dst: u32,
    ports: u32,
    icmp_type: u8,
    icmp_code: u8,
    icmp_id: u16,
}

fn le32(f: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]])
}

fn be16(f: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([f[o], f[o + 1]])
}

fn ipv6_addr_hash(f: &[u8], o: usize) -> u32 {
    le32(f, o) ^ le32(f, o + 4) ^ le32(f, o + 8) ^ le32(f, o + 12)
}

/// bond_eth_hash
fn bond_eth_hash(f: &[u8]) -> u32 {
    if f.len() < 14 {
        return 0;
    }
    u32::from(f[5] ^ f[11]) ^ u32::from(be16(f, 12))
}

/// proto_ports_offset + __skb_flow_get_ports
fn skb_flow_get_ports(f: &[u8], thoff: usize, ip_proto: u8) -> u32 {
    let poff = match ip_proto {
        6 | 17 | 33 | 50 | 132 | 136 => 0,
        51 => 4,
        _ => return 0,
    };
    if thoff + poff + 4 <= f.len() { le32(f, thoff + poff) } else { 0 }
}

/// skb_flow_get_icmp_tci
fn skb_flow_get_icmp_tci(f: &[u8], thoff: usize, k: &mut FlowKeys) {
    if thoff + 8 > f.len() {
        return;
    }
    k.icmp_type = f[thoff];
    k.icmp_code = f[thoff + 1];
    let has_id = matches!(f[thoff], 8 | 0 | 13 | 14 | 128 | 129);
    k.icmp_id = if has_id {
        let id = be16(f, thoff + 4);
        if id != 0 { id } else { 1 }
    } else {
        0
    };
}

/// bond_flow_ip
fn bond_flow_ip(f: &[u8], l2_proto: u16, nhoff: &mut usize, ip_proto: &mut i32, k: &mut FlowKeys, l34: bool) -> bool {
    if l2_proto == 0x0800 {
        if *nhoff + 20 > f.len() {
            return false;
        }
        let iph = *nhoff;
        k.src = le32(f, iph + 12);
        k.dst = le32(f, iph + 16);
        *nhoff += usize::from(f[iph] & 0x0f) << 2;
        if be16(f, iph + 6) & 0x3fff == 0 {
            *ip_proto = i32::from(f[iph + 9]);
        }
    } else if l2_proto == 0x86dd {
        if *nhoff + 40 > f.len() {
            return false;
        }
        let iph6 = *nhoff;
        k.src = ipv6_addr_hash(f, iph6 + 8);
        k.dst = ipv6_addr_hash(f, iph6 + 24);
        *nhoff += 40;
        *ip_proto = i32::from(f[iph6 + 6]);
    } else {
        return false;
    }
    if l34 && *ip_proto >= 0 {
        k.ports = skb_flow_get_ports(f, *nhoff, *ip_proto as u8);
    }
    true
}

/// bond_flow_dissect (non-encap branch)
fn bond_flow_dissect(f: &[u8], l34: bool, k: &mut FlowKeys) -> bool {
    let l2_proto = be16(f, 12);
    let mut nhoff = 14;
    let mut ip_proto = -1;
    k.ports = 0;
    if !bond_flow_ip(f, l2_proto, &mut nhoff, &mut ip_proto, k, l34) {
        return false;
    }
    if ip_proto == 1 || ip_proto == 58 {
        skb_flow_get_icmp_tci(f, nhoff, k);
        if ip_proto == 1 {
            if !matches!(k.icmp_type, 3 | 4 | 5 | 11 | 12) {
                return true;
            }
            nhoff += 8;
        } else {
            if !matches!(k.icmp_type, 1..=4) {
                return true;
            }
            nhoff += 8;
        }
        return bond_flow_ip(f, l2_proto, &mut nhoff, &mut ip_proto, k, l34);
    }
    true
}

/// __skb_flow_dissect with flow_keys_bonding, for the frames used here: IPv4 (fragments end
/// the dissection), IPv6 without extension headers, IPIP, and protocols with or without ports.
fn skb_flow_dissect(f: &[u8], k: &mut FlowKeys) -> bool {
    let mut proto = be16(f, 12);
    let mut nhoff = 14;
    loop {
        let ip_proto;
        match proto {
            0x0800 => {
                if nhoff + 20 > f.len() || f[nhoff] & 0x0f < 5 {
                    return false;
                }
                let iph = nhoff;
                nhoff += usize::from(f[iph] & 0x0f) * 4;
                ip_proto = f[iph + 9];
                k.src = le32(f, iph + 12);
                k.dst = le32(f, iph + 16);
                if be16(f, iph + 6) & 0x3fff != 0 {
                    return true;
                }
            }
            0x86dd => {
                if nhoff + 40 > f.len() {
                    return false;
                }
                ip_proto = f[nhoff + 6];
                k.src = ipv6_addr_hash(f, nhoff + 8);
                k.dst = ipv6_addr_hash(f, nhoff + 24);
                nhoff += 40;
            }
            _ => return false,
        }
        if ip_proto == 1 || ip_proto == 58 {
            skb_flow_get_icmp_tci(f, nhoff, k);
        }
        k.ports = skb_flow_get_ports(f, nhoff, ip_proto);
        match ip_proto {
            4 => proto = 0x0800,
            41 => proto = 0x86dd,
            _ => return true,
        }
    }
}

/// bond_ip_hash
fn bond_ip_hash(mut hash: u32, k: &FlowKeys, shift: bool) -> u32 {
    hash ^= k.dst ^ k.src;
    hash ^= hash >> 16;
    hash ^= hash >> 8;
    if shift { hash >> 1 } else { hash }
}

/// __bond_xmit_hash
fn kernel_xmit_hash(policy: &str, f: &[u8]) -> u32 {
    let mut k = FlowKeys::default();
    if policy == "vlan+srcmac" {
        let v = u32::from(f[6]) << 16 | u32::from(f[7]) << 8 | u32::from(f[8]);
        let d = u32::from(f[9]) << 16 | u32::from(f[10]) << 8 | u32::from(f[11]);
        return v ^ d;
    }
    let dissected = match policy {
        "layer2" => false,
        "encap2+3" | "encap3+4" => skb_flow_dissect(f, &mut k),
        _ => bond_flow_dissect(f, policy == "layer3+4", &mut k),
    };
    if !dissected {
        return bond_eth_hash(f);
    }
    let hash = if policy == "layer2+3" || policy == "encap2+3" {
        bond_eth_hash(f)
    } else if k.icmp_id != 0 {
        u32::from(k.icmp_type) | u32::from(k.icmp_code) << 8 | u32::from(k.icmp_id) << 16
    } else {
        k.ports
    };
    bond_ip_hash(hash, &k, policy == "layer3+4" || policy == "encap3+4")
}

// ---------------------------------------------------------------------------------------------
// Arrivals at the peer.

/// The members of B each marked frame arrived on (one entry per copy), captured until every one
/// of `want` has arrived (at most 2 s), then once more after a quiet 50 ms so that a duplicate
/// sent along with the original is counted too (its absence cannot be waited for).
fn arrivals(caps: &[Capture], want: &BTreeSet<u64>) -> BTreeMap<u64, Vec<usize>> {
    let mut arrived: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let drain = |arrived: &mut BTreeMap<u64, Vec<usize>>| {
        for (i, c) in caps.iter().enumerate() {
            for f in c.frames() {
                if let Some(seq) = find_marker(&f) {
                    arrived.entry(seq).or_default().push(i);
                }
            }
        }
    };
    let _ = poll_until(Duration::from_secs(2), || {
        drain(&mut arrived);
        want.iter().all(|s| arrived.contains_key(s))
    });
    std::thread::sleep(Duration::from_millis(50));
    drain(&mut arrived);
    arrived
}

// ---------------------------------------------------------------------------------------------
// Crafted frames. Each carries the marker MAGIC + sequence number where the payload goes.

fn marker(seq: u64) -> Vec<u8> {
    let mut m = MAGIC.to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m
}

fn find_marker(f: &[u8]) -> Option<u64> {
    let i = f.windows(4).position(|w| w == MAGIC)?;
    Some(u64::from_be_bytes(f.get(i + 4..i + 12)?.try_into().ok()?))
}

fn eth(dst_last: u8, src_last: u8, ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0xaa, 0, 0, 0, dst_last, 0x02, 0xbb, 0x11, 0x22, 0x33, src_last];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, (frag >> 8) as u8, frag as u8, 64, proto, 0, 0];
    let total = (20 + l4.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(l4);
    h
}

fn ipv6(src_last: u8, dst_last: u8, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    for last in [src_last, dst_last] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[1] = 0x42;
        a[15] = last;
        h.extend_from_slice(&a);
    }
    h.extend_from_slice(l4);
    h
}

fn l4_ports(sport: u16, dport: u16, seq: u64) -> Vec<u8> {
    let mut l = sport.to_be_bytes().to_vec();
    l.extend_from_slice(&dport.to_be_bytes());
    l.extend_from_slice(&[0; 16]); // rest of a UDP or TCP header
    l.extend_from_slice(&marker(seq));
    l
}

fn icmp_echo(id: u16, seq: u64) -> Vec<u8> {
    let mut l = vec![8, 0, 0, 0];
    l.extend_from_slice(&id.to_be_bytes());
    l.extend_from_slice(&[0, 1]);
    l.extend_from_slice(&marker(seq));
    l
}

/// The test frames: (kind, frame).
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    for i in 0..24u8 {
        let (sport, dport) = (10_000 + u16::from(i) * 37, 5_000 + u16::from(i % 5) * 101);
        let src = [192, 0, 2, 10 + i % 7];
        let dst = [198, 51, 100, 20 + i / 3];
        v.push(("udp", eth(i, i.wrapping_mul(3), 0x0800, &ipv4(src, dst, 17, 0, &l4_ports(sport, dport, next())))));
        v.push(("tcp", eth(i, 7, 0x0800, &ipv4(src, dst, 6, 0, &l4_ports(dport, sport, next())))));
    }
    for i in 0..8u8 {
        v.push((
            "icmp-echo",
            eth(1, 2, 0x0800, &ipv4([192, 0, 2, 1], [192, 0, 2, 2 + i], 1, 0, &icmp_echo(u16::from(i) * 1000 + 1, next()))),
        ));
        v.push(("fragment", eth(3, i, 0x0800, &ipv4([192, 0, 2, 1 + i], [192, 0, 2, 9], 17, 0x2000, &l4_ports(1, 2, next())))));
        v.push(("ipv6-udp", eth(i, 5, 0x86dd, &ipv6(i, 2 * i + 1, 17, &l4_ports(7000 + u16::from(i), 53, next())))));
        let inner = ipv4([10, 0, 0, i], [10, 0, 1, 3 * i], 17, 0, &l4_ports(20_000 + u16::from(i) * 3, 443, next()));
        v.push(("ipip", eth(2, 9, 0x0800, &ipv4([203, 0, 113, 1], [203, 0, 113, 2], 4, 0, &inner))));
        v.push(("non-ip", eth(i, 4, 0x88b6, &marker(next()))));
        let quoted = ipv4([192, 0, 2, 2], [198, 51, 100, i], 17, 0, &l4_ports(3000 + u16::from(i), 4000, next()));
        let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quoted);
        v.push(("icmp-error", eth(5, 6, 0x0800, &ipv4([198, 51, 100, 1], [192, 0, 2, 1], 1, 0, &err))));
    }
    v
}

#[test]
fn balance_xor_hashes_match_the_kernel_formulas() {
    let policies = ["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"];
    let settings: String = std::iter::once("policies:".to_string())
        .chain(policies.iter().map(|p| format!("  x-{p}: {{ basePolicy: balance-xor, xmitHashPolicy: {p} }}")))
        .collect::<Vec<_>>()
        .join("\n");
    let lab = Lab::start(LabOptions::default().policy("x-layer2").settings(&settings)).expect("lab");
    let frames = frames();
    let sender = RawSender::open(&lab.a.ns, &lab.a.bond).unwrap();
    let mut mismatches = Vec::new();
    for policy in policies {
        lab.a.daemon().set_policy(&format!("x-{policy}")).unwrap();
        let caps: Vec<Capture> = (0..3).map(|i| Capture::open(&lab.b.ns, &format!("eth{i}")).unwrap()).collect();
        for (_, f) in &frames {
            sender.send(f).unwrap();
        }
        let sent: BTreeSet<u64> = frames.iter().map(|(_, f)| find_marker(f).unwrap()).collect();
        assert_eq!(sent.len(), frames.len(), "every frame has its own marker");
        let arrived = arrivals(&caps, &sent);
        // Each frame exactly once, on the member the kernel would pick; missing and duplicated
        // frames are mismatches too.
        for (kind, f) in &frames {
            let seq = find_marker(f).unwrap();
            let want = (kernel_xmit_hash(policy, f) % 3) as usize;
            match arrived.get(&seq).map(Vec::as_slice) {
                Some(&[got]) if got == want => {}
                got => mismatches.push(format!("{policy} {kind} #{seq}: arrived on {got:?}, kernel picks eth{want}")),
            }
        }
        let strays: Vec<&u64> = arrived.keys().filter(|s| !sent.contains(s)).collect();
        assert!(strays.is_empty(), "{policy}: frames arrived that were not sent: {strays:?}");
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

/// murmur3's 32-bit finalizer, as published: what the bond mixes ZeroTier's flow id with.
fn murmur3_fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[test]
fn zerotier_hash_is_ports_xor_protocol_mixed() {
    let lab = Lab::start(LabOptions::default().policy("balance-xor")).expect("lab");
    let sender = RawSender::open(&lab.a.ns, &lab.a.bond).unwrap();
    let caps: Vec<Capture> = (0..3).map(|i| Capture::open(&lab.b.ns, &format!("eth{i}")).unwrap()).collect();
    let mut want = BTreeMap::new();
    for i in 0..30u16 {
        let (sport, dport, proto) = (1000 + i * 13, 80 + i % 4, if i % 2 == 0 { 17u8 } else { 6 });
        let seq = u64::from(i) + 1;
        sender.send(&eth(1, 2, 0x0800, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], proto, 0, &l4_ports(sport, dport, seq)))).unwrap();
        want.insert(seq, murmur3_fmix32(u32::from(sport ^ dport) ^ u32::from(proto)) % 3);
    }
    let sent: BTreeSet<u64> = want.keys().copied().collect();
    let arrived = arrivals(&caps, &sent);
    let missing: Vec<&u64> = sent.iter().filter(|s| !arrived.contains_key(s)).collect();
    assert!(missing.is_empty(), "every one of the {} frames arrives; missing: {missing:?}", sent.len());
    for (seq, members) in &arrived {
        assert!(sent.contains(seq), "frame {seq} was never sent");
        assert_eq!(members.len(), 1, "frame {seq} arrived once, not on members {members:?}");
        assert_eq!(want[seq] as usize, members[0], "frame {seq}");
    }
}

#[test]
fn zerotier_balance_xor_spreads_tcp_flows_from_linux_clients_over_two_members() {
    // Linux connects from even ports, so ZeroTier's bare flow id (ports ^ protocol) has the same
    // parity for every flow to one server port: modulo two members, all on one.
    let lab = Lab::start(LabOptions::default().links(2).policy("balance-xor")).expect("lab");
    let tx = |name: &str| Daemon::member(&lab.a.daemon().status().unwrap(), name)["tx_bytes"].as_u64().unwrap();
    let before = [tx("eth0"), tx("eth1")];
    bond_tests::net::tcp_rate(&lab, lab.b.addr, 16, Duration::from_secs(2)).unwrap();
    let sent = [tx("eth0") - before[0], tx("eth1") - before[1]];
    let total = (sent[0] + sent[1]).max(1);
    println!("16 TCP flows over two members: {sent:?} bytes");
    // Binomial: one member with one flow or none of 16 is 1 run in 2,000.
    assert!(sent.iter().all(|&n| n * 10 >= total), "each member carries at least a tenth: {sent:?}");
}
