//! SipHash-2-4 of a fixed 16-byte message: the keyed hash a probe reply carries when the bonds
//! share a `probeKey`, computed by the answering bond's kernel program and checked by the
//! asking one's. Written here (not taken from a crate) because it runs in eBPF: fixed rounds,
//! no loops over lengths, no slices; the unit tests hold it to the `siphasher` crate.

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

/// SipHash-2-4 under key `(k0, k1)` of the 16 bytes `m0` then `m1`, each little-endian.
#[inline(always)]
pub fn siphash24_16(k0: u64, k1: u64, m0: u64, m1: u64) -> u64 {
    let mut v = [k0 ^ 0x736f_6d65_7073_6575, k1 ^ 0x646f_7261_6e64_6f6d, k0 ^ 0x6c79_6765_6e65_7261, k1 ^ 0x7465_6462_7974_6573];
    compress(&mut v, m0);
    compress(&mut v, m1);
    // The last block holds only the length (16) in its top byte.
    compress(&mut v, 16u64 << 56);
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use core::hash::Hasher;

    use super::*;

    #[test]
    fn equals_siphash_2_4_of_the_16_bytes() {
        for (k0, k1, m0, m1) in [
            (0u64, 0u64, 0u64, 0u64),
            (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908, 0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908),
            (u64::MAX, 1, 0xdead_beef, u64::MAX - 7),
        ] {
            let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&m0.to_le_bytes());
            bytes[8..].copy_from_slice(&m1.to_le_bytes());
            h.write(&bytes);
            assert_eq!(siphash24_16(k0, k1, m0, m1), h.finish());
        }
    }

    #[test]
    fn the_reference_vector() {
        // The SipHash paper's key 00..0f over the 15-byte message 00..0e is a byte-oriented case;
        // its 16-byte one (00..0f) is 0x3f2acc7f57c29bdb in the reference implementation.
        assert_eq!(
            siphash24_16(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908, 0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908),
            0x3f2a_cc7f_57c2_9bdb
        );
    }
}
