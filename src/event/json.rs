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

/// Appends `s` as a JSON string literal (quoted, escaped): runs of plain bytes are copied
/// whole, found with one table lookup per byte.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
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
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `push_key` with the key's ASCII letters lower-cased, in place: escapes only ever use
/// lower-case letters, so lower-casing the written literal changes just the key's own.
pub fn push_key_lower(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    let start = out.len();
    push_str(out, key);
    out[start..].make_ascii_lowercase();
    out.push(b':');
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
}
