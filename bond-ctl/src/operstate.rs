//! The bond device's operational state follows its members, as bonding turns its carrier off
//! when no member can carry traffic: routing daemons, keepalived and systemd-networkd watch it.
//! The bond device's driver has no carrier of its own to switch, so the device is put in
//! dormant link mode (`ip link set BOND mode dormant`), where user space sets the operational
//! state: UP (RUNNING) while a member is usable, DORMANT (not RUNNING) while none is.
//!
//! One `RTM_SETLINK` on a netlink socket of its own, synchronous (`rtnl_sync`): it is written from the
//! daemon's timing path when the usable members change.

use std::io;

use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage, LinkMode, State},
};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};

/// Puts device `ifindex` in dormant link mode with operational state UP (`running`) or DORMANT.
pub fn set_running(ifindex: u32, running: bool) -> io::Result<()> {
    crate::rtnl_sync::ack(set_link(ifindex, running), NLM_F_REQUEST | NLM_F_ACK)
}

fn set_link(ifindex: u32, running: bool) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    link.attributes.push(LinkAttribute::Mode(LinkMode::Dormant));
    link.attributes.push(LinkAttribute::OperState(if running { State::Up } else { State::Dormant }));
    RouteNetlinkMessage::SetLink(link)
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};

    use super::*;

    #[test]
    fn the_request_sets_dormant_mode_and_the_state() {
        for (running, state) in [(true, State::Up), (false, State::Dormant)] {
            let buf = crate::rtnl_sync::request(set_link(7, running), NLM_F_REQUEST | NLM_F_ACK);
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(link)) = m.payload else { panic!("{m:?}") };
            assert_eq!(link.header.index, 7);
            assert!(link.attributes.contains(&LinkAttribute::Mode(LinkMode::Dormant)));
            assert!(link.attributes.contains(&LinkAttribute::OperState(state)));
        }
    }
}
