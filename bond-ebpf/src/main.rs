//! The bond's kernel programs.
//!
//! - `bond_egress` (TC egress on the bond device): picks a member for every packet the stack sends
//!   on the bond and redirects it there.
//! - `member_ingress` (TC ingress on every member): hands received traffic to the bond, so the
//!   stack sees it arrive on the bond; slow-protocol frames stay on the member for the controller.
//!
//! Both read one config bank per packet (see `bond_common::config`) and keep per-CPU counters.
//! `floor` does nothing: the benchmark's baseline for what running a TC program costs.
#![no_std]
#![no_main]

mod egress;
mod ingress;
mod maps;
mod probe;
mod skb;

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn bond_egress(ctx: TcContext) -> i32 {
    egress::bond_egress(&ctx)
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; the verifier rejects any path that gets here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
