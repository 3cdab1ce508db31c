//! The MAC of an authenticated datagram: keyed BLAKE3 (the `blake3` crate) over every byte of the
//! datagram except the MAC itself, truncated to 16 bytes (128 bits: forging one takes 2^128
//! guesses, each a datagram the node refuses and counts).
//!
//! The two parts around the MAC are fed to one hasher, so nothing is copied; the comparison is in
//! constant time (`constant_time_eq`), so the time a refusal takes says nothing about how many
//! bytes matched.

use super::ext::MAC_LEN;

/// The MAC of `datagram` whose MAC field is at `mac_offset` (its content is ignored).
pub fn compute(key: &[u8; 32], datagram: &[u8], mac_offset: usize) -> [u8; MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&datagram[..mac_offset]);
    h.update(&datagram[mac_offset + MAC_LEN..]);
    let mut out = [0u8; MAC_LEN];
    h.finalize_xof().fill(&mut out);
    out
}

/// True when `mac` is `datagram`'s MAC under `key`.
pub fn verify(key: &[u8; 32], datagram: &[u8], mac_offset: usize, mac: &[u8; MAC_LEN]) -> bool {
    constant_time_eq::constant_time_eq_16(&compute(key, datagram, mac_offset), mac)
}

/// Fills the MAC field of `datagram` (its other bytes final).
pub fn seal(key: &[u8; 32], datagram: &mut [u8], mac_offset: usize) {
    let mac = compute(key, datagram, mac_offset);
    datagram[mac_offset..mac_offset + MAC_LEN].copy_from_slice(&mac);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_fails() {
        let key = [7u8; 32];
        let mut d = vec![0x5a; 80];
        seal(&key, &mut d, 40);
        let mac: [u8; 16] = d[40..56].try_into().unwrap();
        assert!(verify(&key, &d, 40, &mac));
        for i in (0..d.len()).filter(|i| !(40..56).contains(i)) {
            let mut e = d.clone();
            e[i] ^= 1;
            assert!(!verify(&key, &e, 40, &mac), "byte {i} is covered");
        }
        assert!(!verify(&[8u8; 32], &d, 40, &mac), "another key");
    }
}
