//! A minimal JSON writer into a byte buffer: the hot path builds events without an intermediate
//! `serde_json::Value`.

use crate::swar::{bytes_equal, controls, first, push_prefix, word};

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

/// A mask with the high bit of each of the 8 bytes of `w` (little-endian) that needs escaping —
/// below 0x20, `"` or `\\` — set, and nothing else: the exact form of the "has zero byte"
/// trick (no borrow crosses bytes, so no plain byte is flagged beside a real one).
#[inline]
fn escape_mask(w: u64) -> u64 {
    controls(w) | bytes_equal(w, b'"') | bytes_equal(w, b'\\')
}

#[inline]
fn any_to_escape(w: u64) -> bool {
    escape_mask(w) != 0
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

/// `push_str` for any string, a word of 8 bytes at a time: a word with nothing to escape is
/// copied whole; one whose escapes are all `"` or `\\` (JSON posted to a function is full of
/// them) goes through `push_quoted_word`; one with a control character is written escape by
/// escape, the plain runs between escapes copied by storing the whole shifted word and keeping
/// its first bytes, so no copy has a variable length (a `memcpy` call each).
#[inline(never)]
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 4 + 2);
    out.push(b'"');
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let w = word(chunk);
        let mut mask = escape_mask(w);
        if mask == 0 {
            out.extend_from_slice(chunk);
            continue;
        }
        if controls(w) == 0 {
            push_quoted_word(out, w, mask);
            continue;
        }
        // `from`: the first byte of the word not yet written.
        let mut from = 0;
        while mask != 0 {
            let at = first(mask);
            mask &= mask - 1;
            push_prefix(out, w >> (8 * from), at - from);
            push_escape(out, (w >> (8 * at)) as u8);
            from = at + 1;
        }
        if from < 8 {
            push_prefix(out, w >> (8 * from), 8 - from);
        }
    }
    for &b in words.remainder() {
        match ESCAPE[b as usize] {
            0 => out.push(b),
            _ => push_escape(out, b),
        }
    }
    out.push(b'"');
}

/// A word whose flagged bytes (`mask`) are all `"` or `\\`, written into a window of 24
/// bytes made room for at once (the length is cut back after): no length or capacity to keep
/// per escape. Before each escape at most 14 bytes are written (the plain bytes before it and
/// one backslash each for those escaped), so each 8-byte store fits.
#[inline(always)]
fn push_quoted_word(out: &mut Vec<u8>, w: u64, mut mask: u64) {
    let len = out.len();
    out.extend_from_slice(&[0u8; 24]);
    let dst = &mut out[len..len + 24];
    let (mut n, mut from) = (0, 0);
    while mask != 0 {
        let at = first(mask);
        mask &= mask - 1;
        dst[n..n + 8].copy_from_slice(&(w >> (8 * from)).to_le_bytes());
        n += at - from;
        dst[n] = b'\\';
        dst[n + 1] = (w >> (8 * at)) as u8;
        n += 2;
        from = at + 1;
    }
    if from < 8 {
        dst[n..n + 8].copy_from_slice(&(w >> (8 * from)).to_le_bytes());
        n += 8 - from;
    }
    out.truncate(len + n);
}

/// Appends the escape for `b` (one that `ESCAPE` marks). `"` and `\\` are escaped as
/// themselves, so only control characters need the table.
#[inline(always)]
fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if b >= 0x20 {
        out.extend_from_slice(&[b'\\', b]);
        return;
    }
    match ESCAPE[b as usize] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 0xf) as usize],
        ]),
        e => out.extend_from_slice(&[b'\\', e]),
    }
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

    /// Runs of escapes, several to a word, and the bytes an inexact word mask would flag (one
    /// above a real match: `"#`, `\\]`, control + 0x21): strings of up to 20 bytes drawn from
    /// them, pseudo-randomly, against serde_json.
    #[test]
    fn dense_escapes_match_serde_json() {
        let alphabet = [
            '"', '#', '\\', ']', '\u{1}', '!', 'a', '\n', '\u{1f}', ' ', 'é', '名',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 21) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 3)) as usize + i) % alphabet.len()])
                .collect();
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }
}
