//! A minimal JSON writer into a byte buffer: the hot path builds events without an intermediate
//! `serde_json::Value`.

/// Appends `s` as a JSON string literal (quoted, escaped).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
