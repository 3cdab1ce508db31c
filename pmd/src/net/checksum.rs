//! The Internet checksum (RFC 1071) used by IPv4, ICMP and UDP.
//!
//! Written by hand: it is a dozen lines, and the crates that offer it (etherparse, smoltcp, pnet)
//! bring whole packet models with them that the fast path does not use.
//! Invariant: `fold(sum(data))` of a region whose checksum field holds the right value is 0xFFFF
//! before complement, i.e. `checksum(region) == 0`.

/// Adds `data` as big-endian 16-bit words to `acc` (an odd trailing byte is padded with zero).
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four big-endian words per step; the u64 accumulator cannot overflow for any frame size.
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a running sum into the 16-bit one's complement checksum value to store.
#[inline]
pub fn finish(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone; 0 when `data` already carries a correct checksum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// The running sum of the IPv4 pseudo-header for a UDP datagram of `udp_len` bytes.
#[inline]
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], protocol: u8, udp_len: u16) -> u64 {
    u64::from(u16::from_be_bytes([src[0], src[1]]))
        + u64::from(u16::from_be_bytes([src[2], src[3]]))
        + u64::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u64::from(u16::from_be_bytes([dst[2], dst[3]]))
        + u64::from(protocol)
        + u64::from(udp_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
    }

    #[test]
    fn region_with_its_checksum_sums_to_zero() {
        let mut data = [0x45u8, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }
}
