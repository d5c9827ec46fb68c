//! The bond's kernel programs.
//!
//! - `bond_egress` (TC egress on the bond device): picks a member for every packet the stack sends
//!   on the bond and redirects it there.
//! - `member_ingress` (TC ingress on every member): hands received traffic to the bond, so the
//!   stack sees it arrive on the bond; slow-protocol frames stay on the member for the controller.
//!
//! Both read one config bank per packet (see `bond_common::config`) and keep per-CPU counters.
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; the verifier rejects any path that gets here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
