//! Packet bytes of a TC program's skb, for the shared parser.

use aya_ebpf::programs::TcContext;
use bond_common::packet::PacketBytes;

/// Headers are looked for in the first 256 bytes. The bound also lets the verifier check
/// reads at offsets computed from packet contents.
const HEADER_WINDOW: usize = 256;

pub struct Skb<'a>(&'a TcContext);

impl Skb<'_> {
    #[inline(always)]
    pub fn len(&self) -> u32 {
        self.0.len()
    }

    /// The bytes the packet puts on the wire: a GSO packet's segments each carry headers.
    #[inline(always)]
    pub fn wire_len(&self) -> u64 {
        let skb = self.0.skb.skb;
        // SAFETY: the context pointer is valid for the whole program run.
        let (segs, size) = unsafe { ((*skb).gso_segs, (*skb).gso_size) };
        bond_common::schedule::wire_bytes(self.len(), segs, size)
    }

    /// `skb->data` and `skb->data_end`. Volatile so LLVM cannot hoist the context loads out of a
    /// BPF subprogram into its arguments: the callee would then zero-extend the 32-bit field with
    /// shifts, which the verifier forbids on packet pointers.
    #[inline(always)]
    fn data_bounds(&self) -> (usize, usize) {
        let skb = self.0.skb.skb;
        // SAFETY: the context pointer is valid for the whole program run.
        unsafe { (core::ptr::read_volatile(&(*skb).data) as usize, core::ptr::read_volatile(&(*skb).data_end) as usize) }
    }
}

impl<'a> Skb<'a> {
    /// Makes sure the header window is in the linear part of the skb, so every read below is a
    /// direct, bounds-checked load (no per-read helper fallback and its stack buffers).
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        let linear = ctx.data_end() - ctx.data();
        let len = ctx.len() as usize;
        let want = if len < HEADER_WINDOW { len } else { HEADER_WINDOW };
        if linear < want {
            // Failure leaves the skb as it was: reads past the linear part then see "too short".
            let _ = ctx.pull_data(want as u32);
        }
        Skb(ctx)
    }
}

impl PacketBytes for Skb<'_> {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if offset >= HEADER_WINDOW {
            return None;
        }
        let (start, end) = self.data_bounds();
        if start + offset + N > end {
            return None;
        }
        // SAFETY: bounds checked against data_end just above.
        Some(unsafe { ((start + offset) as *const [u8; N]).read_unaligned() })
    }
}
