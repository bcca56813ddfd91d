//! CRC32C (Castagnoli), the checksum of the log's frames: the same function
//! as RocksDB's block checksums and iSCSI's (RFC 3720), computed with
//! SSE4.2's `crc32` instruction where the CPU has it (the linked RocksDB
//! library needs it on x86_64 anyway, see `cpu.rs`), by table otherwise.
//!
//! Invariant: `extend` gives the same answer on either path (the tests run
//! both against RFC 3720's vectors).

const POLYNOMIAL: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLYNOMIAL } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Extends `crc` (0 to start) over `bytes`: `extend(extend(0, a), b)` is the
/// CRC of `a` followed by `b`.
pub(crate) fn extend(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, as just checked.
        return unsafe { hardware(crc, bytes) };
    }
    software(crc, bytes)
}

fn software(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for byte in bytes {
        crc = TABLE[((crc ^ u32::from(*byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn hardware(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut wide = u64::from(!crc);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        wide = _mm_crc32_u64(wide, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let mut crc = wide as u32;
    for byte in words.remainder() {
        crc = _mm_crc32_u8(crc, *byte);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720, B.4, and the customary check value.
    const VECTORS: [(&[u8], u32); 4] = [
        (&[0; 32], 0x8A91_36AA),
        (&[0xFF; 32], 0x62A8_AB43),
        (b"123456789", 0xE306_9283),
        (
            &[
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                28, 29, 30, 31,
            ],
            0x46DD_794E,
        ),
    ];

    #[test]
    fn both_paths_compute_rfc_3720_s_check_values() {
        for (bytes, expected) in VECTORS {
            assert_eq!(software(0, bytes), expected, "{bytes:?}");
            assert_eq!(extend(0, bytes), expected, "{bytes:?}");
            // In two pieces, split anywhere, including inside a word.
            for split in 0..bytes.len() {
                assert_eq!(extend(extend(0, &bytes[..split]), &bytes[split..]), expected);
                assert_eq!(software(software(0, &bytes[..split]), &bytes[split..]), expected);
            }
        }
    }
}
