//! The bond's kernel programs.
//!
//! - `bond_egress` (TC egress on the bond device): picks a member for every packet the stack sends
//!   on the bond and redirects it there.
//! - `member_ingress` (TC ingress on every member): hands received traffic to the bond, so the
//!   stack sees it arrive on the bond; slow-protocol frames stay on the member for the controller.
//!
//! Both read one config bank per packet (see `bond_common::config`) and keep per-CPU counters.
//! `floor` does nothing: the benchmark's baseline for what running a TC program costs;
//! `floor_redirect` and `floor_redirect_ingress` only redirect, the least a bond's programs do;
//! the `stage_*` programs are `bond_egress` cut short after each stage (`stages`), and
//! `stage_general` is `bond_egress` without its short paths.
#![no_std]
#![no_main]

mod egress;
mod ingress;
mod maps;
mod probe;
mod skb;
mod stages;

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn bond_egress(ctx: TcContext) -> i32 {
    egress::bond_egress::<true>(&ctx)
}

#[classifier]
pub fn member_ingress(ctx: TcContext) -> i32 {
    ingress::member_ingress(&ctx)
}

/// Does nothing. `cargo xtask bench` attaches it the same way (TCX) to a plain veth pair in the
/// same run: its cost per packet is the floor (running a TC program, and the kernel's run-time
/// statistics themselves) that the bond's programs are measured against. The controller never
/// loads it.
#[classifier]
pub fn floor(_ctx: TcContext) -> i32 {
    aya_ebpf::bindings::TC_ACT_OK
}

/// Where `floor_redirect` sends every packet (set by the bench when it loads the object).
#[unsafe(no_mangle)]
pub static FLOOR_EGRESS_TO: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);
/// Where `floor_redirect_ingress` hands every frame, as received there.
#[unsafe(no_mangle)]
pub static FLOOR_INGRESS_TO: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// The least a bond's transmit program does: redirect the packet to one fixed member. The
/// bench runs it ahead of `bond_egress` (which then does not run) under the same traffic: the
/// second floor, what `bond_egress` costs beyond the redirect itself.
#[classifier]
pub fn floor_redirect(_ctx: TcContext) -> i32 {
    // SAFETY: bpf_redirect takes only integers and touches no memory of ours.
    unsafe { aya_ebpf::helpers::bpf_redirect(FLOOR_EGRESS_TO.load(), 0) as i32 }
}

/// The least a member's receive program does: hand the frame to the bond device. The floor of
/// `member_ingress`, as `floor_redirect` is `bond_egress`'s.
#[classifier]
pub fn floor_redirect_ingress(_ctx: TcContext) -> i32 {
    // SAFETY: as above.
    unsafe { aya_ebpf::helpers::bpf_redirect(FLOOR_INGRESS_TO.load(), u64::from(aya_ebpf::bindings::BPF_F_INGRESS)) as i32 }
}

// `bond_egress` cut short after each of its stages (see `stages`), for the bench's breakdown.
#[classifier]
pub fn stage_config(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::CONFIG }>(&ctx)
}
#[classifier]
pub fn stage_usable(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::USABLE }>(&ctx)
}
#[classifier]
pub fn stage_parse(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::PARSE }>(&ctx)
}
#[classifier]
pub fn stage_hash(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::HASH }>(&ctx)
}
#[classifier]
pub fn stage_sample(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::SAMPLE }>(&ctx)
}
#[classifier]
pub fn stage_counters(ctx: TcContext) -> i32 {
    stages::upto::<{ stages::COUNTERS }>(&ctx)
}

/// `bond_egress` without its short paths: every packet by the general path (for the bench).
#[classifier]
pub fn stage_general(ctx: TcContext) -> i32 {
    egress::bond_egress::<false>(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; the verifier rejects any path that gets here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
