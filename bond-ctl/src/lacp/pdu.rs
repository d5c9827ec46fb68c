//! The slow-protocols frames LACP uses (802.1AX-2014 §6.4.2 LACPDU, §6.5.3 Marker PDU): a 14-byte
//! Ethernet header and a fixed 110-byte payload, all fields big-endian, no FCS.

use std::fmt;

use super::{ETH_P_SLOW, PortInfo, SLOW_PROTOCOLS_MAC};

/// Both PDUs are 110 bytes after the Ethernet header.
pub const FRAME_LEN: usize = 124;
const ETH_HEADER_LEN: usize = 14;

const SUBTYPE_LACP: u8 = 1;
const SUBTYPE_MARKER: u8 = 2;
const VERSION: u8 = 1;

const TLV_ACTOR: u8 = 1;
const TLV_PARTNER: u8 = 2;
const TLV_COLLECTOR: u8 = 3;
const TLV_TERMINATOR: u8 = 0;
const PORT_INFO_LEN: u8 = 20;
const COLLECTOR_LEN: u8 = 16;

const TLV_MARKER_INFO: u8 = 1;
const TLV_MARKER_RESPONSE: u8 = 2;
const MARKER_INFO_LEN: u8 = 16;

// Frame offsets of the TLV headers: the layout is fixed, which is what lets a version 1 receiver
// read newer versions.
const ACTOR_TLV: usize = ETH_HEADER_LEN + 2;
const PARTNER_TLV: usize = ACTOR_TLV + PORT_INFO_LEN as usize;
const COLLECTOR_TLV: usize = PARTNER_TLV + PORT_INFO_LEN as usize;
const TERMINATOR_TLV: usize = COLLECTOR_TLV + COLLECTOR_LEN as usize;
const MARKER_TLV: usize = ETH_HEADER_LEN + 2;
const MARKER_TERMINATOR_TLV: usize = MARKER_TLV + MARKER_INFO_LEN as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lacpdu {
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub collector_max_delay: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerKind {
    Information,
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    pub requester_port: u16,
    pub requester_system: [u8; 6],
    pub transaction_id: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPdu {
    Lacp(Lacpdu),
    Marker(Marker),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduError {
    Short(usize),
    NotSlowProtocols(u16),
    /// Another slow protocol (OAM, ESMC, ...): not malformed, just not ours.
    OtherSubtype(u8),
    BadTlv {
        offset: usize,
        tlv_type: u8,
        length: u8,
    },
}

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PduError::Short(len) => write!(f, "frame of {len} bytes is shorter than {FRAME_LEN}"),
            PduError::NotSlowProtocols(ethertype) => write!(f, "ethertype {ethertype:#06x} is not slow protocols"),
            PduError::OtherSubtype(subtype) => write!(f, "slow protocol subtype {subtype} is neither LACP nor marker"),
            PduError::BadTlv { offset, tlv_type, length } => write!(f, "TLV at byte {offset} has type {tlv_type} length {length}"),
        }
    }
}

pub fn parse(frame: &[u8]) -> Result<SlowPdu, PduError> {
    if frame.len() < ETH_HEADER_LEN + 2 {
        return Err(PduError::Short(frame.len()));
    }
    let ethertype = be16(frame, 12);
    if ethertype != ETH_P_SLOW {
        return Err(PduError::NotSlowProtocols(ethertype));
    }
    let subtype = frame[ETH_HEADER_LEN];
    if subtype != SUBTYPE_LACP && subtype != SUBTYPE_MARKER {
        return Err(PduError::OtherSubtype(subtype));
    }
    if frame.len() < FRAME_LEN {
        return Err(PduError::Short(frame.len()));
    }
    // Versions above 1 keep the version 1 fields where they were (and may add TLVs before the
    // terminator), so only a version 1 PDU must end where version 1 ends.
    let version = frame[ETH_HEADER_LEN + 1];
    if subtype == SUBTYPE_LACP {
        expect_tlv(frame, ACTOR_TLV, &[TLV_ACTOR], PORT_INFO_LEN)?;
        expect_tlv(frame, PARTNER_TLV, &[TLV_PARTNER], PORT_INFO_LEN)?;
        expect_tlv(frame, COLLECTOR_TLV, &[TLV_COLLECTOR], COLLECTOR_LEN)?;
        if version <= VERSION {
            expect_tlv(frame, TERMINATOR_TLV, &[TLV_TERMINATOR], 0)?;
        }
        Ok(SlowPdu::Lacp(Lacpdu {
            actor: read_port_info(frame, ACTOR_TLV + 2),
            partner: read_port_info(frame, PARTNER_TLV + 2),
            collector_max_delay: be16(frame, COLLECTOR_TLV + 2),
        }))
    } else {
        let tlv_type = expect_tlv(frame, MARKER_TLV, &[TLV_MARKER_INFO, TLV_MARKER_RESPONSE], MARKER_INFO_LEN)?;
        if version <= VERSION {
            expect_tlv(frame, MARKER_TERMINATOR_TLV, &[TLV_TERMINATOR], 0)?;
        }
        let at = MARKER_TLV + 2;
        Ok(SlowPdu::Marker(Marker {
            kind: if tlv_type == TLV_MARKER_INFO { MarkerKind::Information } else { MarkerKind::Response },
            requester_port: be16(frame, at),
            requester_system: frame[at + 2..at + 8].try_into().expect("6 bytes"),
            transaction_id: u32::from_be_bytes(frame[at + 8..at + 12].try_into().expect("4 bytes")),
        }))
    }
}

pub fn encode_lacpdu(src: [u8; 6], pdu: &Lacpdu) -> Vec<u8> {
    let mut frame = header(src, SUBTYPE_LACP);
    write_port_info(&mut frame, ACTOR_TLV, TLV_ACTOR, &pdu.actor);
    write_port_info(&mut frame, PARTNER_TLV, TLV_PARTNER, &pdu.partner);
    frame[COLLECTOR_TLV] = TLV_COLLECTOR;
    frame[COLLECTOR_TLV + 1] = COLLECTOR_LEN;
    frame[COLLECTOR_TLV + 2..COLLECTOR_TLV + 4].copy_from_slice(&pdu.collector_max_delay.to_be_bytes());
    frame
}

pub fn encode_marker(src: [u8; 6], marker: &Marker) -> Vec<u8> {
    let mut frame = header(src, SUBTYPE_MARKER);
    frame[MARKER_TLV] = match marker.kind {
        MarkerKind::Information => TLV_MARKER_INFO,
        MarkerKind::Response => TLV_MARKER_RESPONSE,
    };
    frame[MARKER_TLV + 1] = MARKER_INFO_LEN;
    let at = MARKER_TLV + 2;
    frame[at..at + 2].copy_from_slice(&marker.requester_port.to_be_bytes());
    frame[at + 2..at + 8].copy_from_slice(&marker.requester_system);
    frame[at + 8..at + 12].copy_from_slice(&marker.transaction_id.to_be_bytes());
    frame
}

/// The responder echoes the requester's fields unchanged (§6.5.4.2.2), from its own port's MAC.
pub fn marker_response(src: [u8; 6], info: &Marker) -> Vec<u8> {
    encode_marker(src, &Marker { kind: MarkerKind::Response, ..*info })
}

/// A zeroed frame with the Ethernet header, subtype and version: the terminator TLV and all
/// reserved fields are zeros.
fn header(src: [u8; 6], subtype: u8) -> Vec<u8> {
    let mut frame = vec![0u8; FRAME_LEN];
    frame[0..6].copy_from_slice(&SLOW_PROTOCOLS_MAC);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&ETH_P_SLOW.to_be_bytes());
    frame[ETH_HEADER_LEN] = subtype;
    frame[ETH_HEADER_LEN + 1] = VERSION;
    frame
}

fn expect_tlv(frame: &[u8], offset: usize, types: &[u8], length: u8) -> Result<u8, PduError> {
    let (tlv_type, tlv_length) = (frame[offset], frame[offset + 1]);
    if types.contains(&tlv_type) && tlv_length == length {
        Ok(tlv_type)
    } else {
        Err(PduError::BadTlv { offset, tlv_type, length: tlv_length })
    }
}

fn write_port_info(frame: &mut [u8], tlv: usize, tlv_type: u8, info: &PortInfo) {
    frame[tlv] = tlv_type;
    frame[tlv + 1] = PORT_INFO_LEN;
    let at = tlv + 2;
    frame[at..at + 2].copy_from_slice(&info.system_priority.to_be_bytes());
    frame[at + 2..at + 8].copy_from_slice(&info.system);
    frame[at + 8..at + 10].copy_from_slice(&info.key.to_be_bytes());
    frame[at + 10..at + 12].copy_from_slice(&info.port_priority.to_be_bytes());
    frame[at + 12..at + 14].copy_from_slice(&info.port.to_be_bytes());
    frame[at + 14] = info.state;
}

fn read_port_info(frame: &[u8], at: usize) -> PortInfo {
    PortInfo {
        system_priority: be16(frame, at),
        system: frame[at + 2..at + 8].try_into().expect("6 bytes"),
        key: be16(frame, at + 8),
        port_priority: be16(frame, at + 10),
        port: be16(frame, at + 12),
        state: frame[at + 14],
    }
}

fn be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];

    fn sample() -> Lacpdu {
        Lacpdu {
            actor: PortInfo {
                system_priority: 0x8000,
                system: [0x02, 0xaa, 0, 0, 0, 1],
                key: 0x0109,
                port_priority: 255,
                port: 3,
                state: 0x3d,
            },
            partner: PortInfo {
                system_priority: 0x0064,
                system: [0x02, 0xbb, 0, 0, 0, 2],
                key: 0x0021,
                port_priority: 128,
                port: 7,
                state: 0x0f,
            },
            collector_max_delay: 0,
        }
    }

    /// The sample written out byte by byte, following the standard's figure 6-7.
    fn hand_written() -> Vec<u8> {
        let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x02, 0x02, 0, 0, 0, 0, 0x11, 0x88, 0x09];
        f.extend([0x01, 0x01]); // subtype LACP, version 1
        f.extend([0x01, 0x14, 0x80, 0x00, 0x02, 0xaa, 0, 0, 0, 1, 0x01, 0x09, 0x00, 0xff, 0x00, 0x03, 0x3d, 0, 0, 0]);
        f.extend([0x02, 0x14, 0x00, 0x64, 0x02, 0xbb, 0, 0, 0, 2, 0x00, 0x21, 0x00, 0x80, 0x00, 0x07, 0x0f, 0, 0, 0]);
        f.extend([0x03, 0x10, 0x00, 0x00]);
        f.extend([0u8; 12]);
        f.extend([0x00, 0x00]); // terminator
        f.extend([0u8; 50]);
        f
    }

    #[test]
    fn lacpdu_matches_the_standard_layout() {
        let frame = encode_lacpdu(SRC, &sample());
        assert_eq!(frame.len(), FRAME_LEN);
        assert_eq!(frame, hand_written());
        // Spot checks of the fixed offsets other tools (tcpdump, Wireshark) rely on.
        assert_eq!(frame[14 + 18], 0x3d, "actor state");
        assert_eq!(frame[14 + 38], 0x0f, "partner state");
        assert_eq!(&frame[14 + 6..14 + 12], &[0x02, 0xaa, 0, 0, 0, 1], "actor system");
        assert_eq!(&frame[14 + 36..14 + 38], &[0x00, 0x07], "partner port");
    }

    #[test]
    fn lacpdu_round_trips() {
        let pdu = sample();
        assert_eq!(parse(&encode_lacpdu(SRC, &pdu)), Ok(SlowPdu::Lacp(pdu)));
        assert_eq!(parse(&hand_written()), Ok(SlowPdu::Lacp(pdu)));
    }

    #[test]
    fn newer_versions_are_read_at_the_version_1_offsets() {
        let mut frame = hand_written();
        frame[15] = 2;
        frame[72] = 0x05; // a version 2 TLV where version 1 ends
        frame[73] = 0x10;
        frame.extend([0u8; 20]);
        assert_eq!(parse(&frame), Ok(SlowPdu::Lacp(sample())));
    }

    #[test]
    fn malformed_frames_are_rejected() {
        let good = hand_written();
        assert_eq!(parse(&good[..FRAME_LEN - 1]), Err(PduError::Short(FRAME_LEN - 1)));
        assert_eq!(parse(&good[..10]), Err(PduError::Short(10)));
        let mut f = good.clone();
        f[13] = 0x00;
        assert_eq!(parse(&f), Err(PduError::NotSlowProtocols(0x8800)));
        let mut f = good.clone();
        f[14] = 3;
        assert_eq!(parse(&f), Err(PduError::OtherSubtype(3)));
        for (offset, value) in [(16, 2u8), (17, 19), (36, 1), (37, 0), (56, 4), (57, 20), (72, 1), (73, 2)] {
            let mut f = good.clone();
            f[offset] = value;
            assert!(matches!(parse(&f), Err(PduError::BadTlv { .. })), "byte {offset} = {value} accepted");
        }
    }

    #[test]
    fn marker_information_gets_a_response_with_the_same_content() {
        let info =
            Marker { kind: MarkerKind::Information, requester_port: 5, requester_system: [2, 0, 0, 0, 0, 9], transaction_id: 0x01020304 };
        let frame = encode_marker([2, 0, 0, 0, 0, 9], &info);
        assert_eq!(frame.len(), FRAME_LEN);
        assert_eq!(&frame[14..34], &[2, 1, 1, 16, 0, 5, 2, 0, 0, 0, 0, 9, 1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&frame), Ok(SlowPdu::Marker(info)));

        let response = marker_response(SRC, &info);
        assert_eq!(&response[0..6], &SLOW_PROTOCOLS_MAC);
        assert_eq!(&response[6..12], &SRC);
        assert_eq!(response[16], 2, "response TLV type");
        assert_eq!(&response[17..34], &frame[17..34], "requester fields echoed");
        assert_eq!(parse(&response), Ok(SlowPdu::Marker(Marker { kind: MarkerKind::Response, ..info })));

        let mut bad = frame.clone();
        bad[16] = 3;
        assert!(matches!(parse(&bad), Err(PduError::BadTlv { offset: 16, .. })));
    }
}
