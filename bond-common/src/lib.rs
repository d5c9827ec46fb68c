//! Types and pure per-packet logic shared by the kernel programs (`bond-ebpf`) and the controller
//! (`bond-ctl`).
//!
//! Everything the data plane decides per packet lives here as plain functions over plain data:
//! header parsing ([`packet`]), transmit hashes ([`hash`]), flow identity ([`flow`]) and member
//! selection ([`select`]), balance-aware's packet scheduler ([`schedule`]) and flow-static's table ([`sticky`]). The eBPF program calls them with a packet reader over the skb; the unit
//! tests call them with byte slices, so the per-packet logic is tested without a kernel.
//!
//! Map values are `#[repr(C)]` with explicit padding and raw integers (no enums, bools or
//! options), checked for size at compile time, so both sides agree on the layout.
#![no_std]

pub mod config;
pub mod flow;
pub mod hash;
pub mod maps;
pub mod packet;
pub mod probe;
pub mod schedule;
pub mod select;
pub mod siphash;
pub mod stats;
pub mod sticky;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], contain only integers and arrays of integers, and have
    // no implicit padding (each has a compile-time size check next to its definition).
    unsafe impl aya::Pod for crate::config::BondConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::config::PolicyConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::flow::FlowEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::stats::MemberStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::stats::BondStats {}
    // SAFETY: repr(C), two u64 counters, no padding.
    unsafe impl aya::Pod for crate::stats::ClassStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::maps::MacKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::stats::MemberSeen {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::probe::ProbeEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::probe::ProbeKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::schedule::MemberSchedule {}
}
