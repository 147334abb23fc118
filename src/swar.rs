//! Bytes a word (8) at a time, for writing long JSON strings — the request body escaped into
//! the event (`event::json`). A body full of quotes has an escape every few bytes, so what each
//! escape costs decides the speed: these helpers find them with exact masks and copy the runs
//! between them with fixed-size stores (a copy of variable length is a `memcpy` call). (The
//! reply's body is decoded by serde_json: a word-at-a-time decoder measured no faster there.)

/// The 8 bytes at the start of `b` (at least 8 long) as one little-endian word.
#[inline(always)]
pub fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The high bit of each zero byte of `v`, exactly (no borrow crosses bytes, so no byte beside
/// a zero one is flagged, as the shorter "has zero byte" trick can).
#[inline(always)]
pub fn zero_bytes(v: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7)
}

/// The high bit of each byte of `w` equal to `b`.
#[inline(always)]
pub fn bytes_equal(w: u64, b: u8) -> u64 {
    zero_bytes(w ^ (0x0101_0101_0101_0101 * b as u64))
}

/// The high bit of each byte of `w` below 0x20 (a control character).
#[inline(always)]
pub fn controls(w: u64) -> u64 {
    zero_bytes(w & 0xe0e0_e0e0_e0e0_e0e0)
}

/// The index of the byte of the lowest flag in `mask` (not 0).
#[inline(always)]
pub fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Appends the first `n` (at most 8) bytes of `w`: all 8 are stored, then the length is cut
/// back.
#[inline(always)]
pub fn push_prefix(out: &mut Vec<u8>, w: u64, n: usize) {
    let len = out.len();
    out.extend_from_slice(&w.to_le_bytes());
    out.truncate(len + n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_flag_exactly_the_bytes_asked_for() {
        // Every byte value at every position, beside bytes one above and below it (where the
        // inexact trick's borrow would land).
        for v in 0..=255u8 {
            for at in 0..8 {
                let mut b = [v.wrapping_add(1); 8];
                b[at] = v;
                if at > 0 {
                    b[at - 1] = v.wrapping_sub(1);
                }
                let w = word(&b);
                for (k, &x) in b.iter().enumerate() {
                    let bit = 1u64 << (8 * k + 7);
                    assert_eq!(bytes_equal(w, b'\\') & bit != 0, x == b'\\', "{b:?}");
                    assert_eq!(controls(w) & bit != 0, x < 0x20, "{b:?}");
                    assert_eq!(zero_bytes(w) & bit != 0, x == 0, "{b:?}");
                }
            }
        }
    }

    #[test]
    fn prefixes_keep_what_was_asked() {
        let w = word(b"abcdefgh");
        for n in 0..=8 {
            let mut out = b"x".to_vec();
            push_prefix(&mut out, w, n);
            assert_eq!(out, [b"x".as_slice(), &b"abcdefgh"[..n]].concat());
        }
    }
}
