//! A minimal JSON writer into a byte buffer: the hot path builds events without an intermediate
//! `serde_json::Value`.

/// For each byte: 0 when it goes out as is, else the letter after the backslash (`u` for
/// the `\u00XX` form). Only `"`, `\\` and control characters need escaping in JSON.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// A mask whose lowest set bit is in the first of the 8 bytes of `w` (little-endian) that needs
/// escaping — below 0x20, `"` or `\\` — and 0 when none does (the "has zero byte" bit trick:
/// its lowest flagged byte is always a real match).
#[inline]
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | zero_in(w ^ (ONES * b'"' as u64)) | zero_in(w ^ (ONES * b'\\' as u64))
}

#[inline]
fn any_to_escape(w: u64) -> bool {
    escape_mask(w) != 0
}

/// The 8 bytes at the start of `b` (at least 8 long) as one word.
#[inline]
fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Whether a string is plain (nothing to escape): a word at a time, the last word overlapping
/// the one before; a table lookup per byte below 8.
#[inline]
fn is_plain(b: &[u8]) -> bool {
    if b.len() < 8 {
        return b.iter().all(|&c| ESCAPE[c as usize] == 0);
    }
    let mut i = 0;
    while i + 8 < b.len() {
        if any_to_escape(word(&b[i..])) {
            return false;
        }
        i += 8;
    }
    !any_to_escape(word(&b[b.len() - 8..]))
}

/// Appends `s` as a JSON string literal (quoted, escaped). Most strings in an event (keys,
/// header values, ids) are plain: checked a word at a time and copied whole; the rest go
/// through `push_escaped`.
#[inline]
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if is_plain(b) {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        push_escaped(out, s);
    }
}

/// `push_str` for any string: 8 bytes are tested at a time, and the scan jumps to the first
/// one that needs escaping; plain runs are copied whole.
#[inline(never)]
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mask = escape_mask(word(&bytes[i..]));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let escape = ESCAPE[b as usize];
        if escape != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if escape == b'u' {
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `push_key` with the key's ASCII letters lower-cased. A header name (a token) is plain: its
/// bytes are lower-cased as they are copied; any other key is written, then lower-cased in
/// place (escapes only ever use lower-case letters, so that changes just the key's own).
pub fn push_key_lower(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    let b = key.as_bytes();
    if is_plain(b) {
        out.reserve(b.len() + 3);
        out.push(b'"');
        out.extend(b.iter().map(u8::to_ascii_lowercase));
        out.extend_from_slice(b"\":");
    } else {
        let start = out.len();
        push_str(out, key);
        out[start..].make_ascii_lowercase();
        out.push(b':');
    }
}

/// Writes `"key":` preceded by a comma unless it is the first member.
pub fn push_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    push_str(out, key);
    out.push(b':');
}

/// Writes `"key":"value"` as a member.
pub fn push_member(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &str) {
    push_key(out, first, key);
    push_str(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lower_cased_plain_or_escaped() {
        let mut out = Vec::new();
        let mut first = true;
        for key in [
            "X-Trace",
            "Accept-Language-Very-Long-Name",
            "A\"B\u{1}C",
            "ÄB",
        ] {
            push_key_lower(&mut out, &mut first, key);
            out.extend_from_slice(b"1");
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#""x-trace":1,"accept-language-very-long-name":1,"a\"b\u0001c":1,"Äb":1"#
        );
    }

    #[test]
    fn escapes_round_trip_through_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "nl\n\r\t",
            "ctl\u{1}\u{1f}",
            "中文 ✓",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn escapes_match_serde_json_at_every_position_in_a_word() {
        let specials = [
            "\"", "\\", "\n", "\u{1}", "\u{1f}", "\t", "é", "世", " ", "\u{7f}",
        ];
        for special in specials {
            for at in 0..20 {
                let s = format!("{}{special}{}", "a".repeat(at), "b".repeat(19 - at));
                let mut out = Vec::new();
                push_str(&mut out, &s);
                assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
            }
        }
    }
}
