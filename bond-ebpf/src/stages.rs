//! `bond_egress` cut short, for the bench's breakdown of what it costs: each `stage_*` program
//! runs the stages of a balance-xor (layer3+4) packet up to and including its own, in the order
//! `bond_egress` runs them, then redirects to `FLOOR_EGRESS_TO` as `floor_redirect` does. One
//! function instantiated per stage count, so every program is the same code with later stages
//! compiled out; the difference between neighbours is what that stage costs. The controller
//! never loads them.

use aya_ebpf::{bindings::TC_ACT_SHOT, helpers::bpf_redirect, programs::TcContext};
use bond_common::config::XmitHash;
use bond_common::select::xor_member;

use crate::{
    FLOOR_EGRESS_TO,
    egress::{parse_headers, record_flow, xmit_hash},
    maps::{Scratch, current_config, flow_sample_due, member_stats, member_usable, scratch, skb_protocol},
    skb::Skb,
};

/// The stages, in the order they run; a program named `stage_<name>` runs the first ones up to
/// it. (The bench reads this order from its own copy of the list.)
pub const CONFIG: u32 = 1;
pub const USABLE: u32 = 2;
pub const PARSE: u32 = 3;
pub const HASH: u32 = 4;
pub const SAMPLE: u32 = 5;
pub const COUNTERS: u32 = 6;

/// Runs stages 1..=`N`, then the redirect. A stage that finds nothing to work with drops the
/// packet (as `bond_egress` would), which also keeps its work from being compiled away.
#[inline(always)]
pub fn upto<const N: u32>(ctx: &TcContext) -> i32 {
    let to = FLOOR_EGRESS_TO.load();
    if N >= CONFIG {
        let (Some(cfg), Some(Scratch { sample_cursor, headers: h })) = (current_config(), scratch()) else { return TC_ACT_SHOT as i32 };
        let Some(policy) = cfg.policies.get(cfg.default_policy as usize) else { return TC_ACT_SHOT as i32 };
        if N >= USABLE {
            let usable = member_usable() & policy.family_mask(skb_protocol(ctx));
            if usable == 0 {
                return TC_ACT_SHOT as i32;
            }
            if N >= PARSE {
                let pkt = Skb::new(ctx);
                if !parse_headers(&pkt, h) {
                    return TC_ACT_SHOT as i32;
                }
                if N >= HASH {
                    let Some(slot) = xor_member(policy, usable, xmit_hash(XmitHash::Layer34, &pkt, h)) else {
                        return TC_ACT_SHOT as i32;
                    };
                    let len = u64::from(ctx.len());
                    if N >= SAMPLE && flow_sample_due(sample_cursor) {
                        record_flow(h, u32::from(slot), len);
                    }
                    if N >= COUNTERS {
                        member_stats(u32::from(slot), |s| {
                            s.tx_packets += 1;
                            s.tx_bytes += len;
                        });
                    }
                }
            }
        }
    }
    // SAFETY: bpf_redirect takes only integers and touches no memory of ours.
    unsafe { bpf_redirect(to, 0) as i32 }
}
