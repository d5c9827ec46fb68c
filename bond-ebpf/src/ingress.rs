//! TC ingress on each member: hand received traffic to the bond device.

use aya_ebpf::{
    bindings::{BPF_F_INGRESS, TC_ACT_OK},
    helpers::bpf_redirect,
    programs::TcContext,
};
use bond_common::packet::ETH_P_SLOW;

use crate::maps::{bond_stats, current_config, member_stats};

#[inline(always)]
pub fn member_ingress(ctx: &TcContext) -> i32 {
    let Some(cfg) = current_config() else {
        return TC_ACT_OK;
    };
    // SAFETY: the context's skb pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(slot) = cfg.slot_of(ifindex) else {
        bond_stats(|s| s.rx_not_member += 1);
        return TC_ACT_OK;
    };
    // skb->protocol holds the EtherType in network byte order.
    if u16::from_be(ctx.skb.protocol() as u16) == ETH_P_SLOW {
        // LACP and marker frames belong to the controller, which reads them on the member.
        bond_stats(|s| s.rx_slow_protocol += 1);
        return TC_ACT_OK;
    }
    let len = u64::from(ctx.len());
    member_stats(u32::from(slot), |s| {
        s.rx_packets += 1;
        s.rx_bytes += len;
    });
    unsafe { bpf_redirect(cfg.bond_ifindex, u64::from(BPF_F_INGRESS)) as i32 }
}
