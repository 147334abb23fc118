//! Chunked framing (RFC 9112 §7.1), shared by request bodies (`conn`) and replies
//! (`invoke::conn`): the chunk-size line and the trailer section.
//!
//! Why not httparse's `parse_chunk_size`: it reads an empty size line and an extension without a
//! size as a last chunk, and takes any byte, a bare LF included, inside an extension. A proxy
//! and the server behind it that disagree on where a chunk ends are a smuggling channel, so the
//! line is held to the grammar, as hyper and nginx hold it. Trailers are header lines and are
//! parsed by httparse as heads are, within the heads' limits.

use super::head::{MAX_HEAD, MAX_HEADERS};

/// Longest chunk-size line, extensions included (hyper allows 16 KiB of extensions per body;
/// nothing real sends more than a few bytes).
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a chunk-size line, or a malformed trailer section: 400.
    Malformed,
    /// Trailers beyond the head limits (bytes or lines): 431.
    TrailersTooLarge,
}

/// Parses the chunk-size line at the start of `buf`: `1*HEXDIG [BWS] *(";" ext) CRLF`.
/// `Ok(None)` when the line is not complete yet; otherwise the line's length and the size.
pub fn size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, ChunkError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == buf.len() {
        // All hex so far: wait for the rest, unless it can no longer be a size.
        return match digits > 16 {
            true => Err(ChunkError::Malformed),
            false => Ok(None),
        };
    }
    if digits == 0 || digits > 16 {
        return Err(ChunkError::Malformed);
    }
    let size = buf[..digits]
        .iter()
        .fold(0u64, |n, &b| (n << 4) | u64::from(hex(b)));
    let mut i = digits;
    while i < buf.len() && (buf[i] == b' ' || buf[i] == b'\t') {
        i += 1;
    }
    if i < buf.len() && buf[i] == b';' {
        // Extensions are dropped; they may hold visible characters, spaces, tabs and obs-text,
        // never a control character (a bare CR or LF would end the line for someone else).
        while i < buf.len() && (buf[i] == b'\t' || (buf[i] >= 0x20 && buf[i] != 0x7f)) {
            i += 1;
        }
    }
    if i >= MAX_LINE {
        // Too long, whether or not its end has arrived in the same read.
        return Err(ChunkError::Malformed);
    }
    match buf.get(i..i + 2) {
        Some(b"\r\n") => Ok(Some((i + 2, size))),
        Some(_) => Err(ChunkError::Malformed),
        None if i == buf.len() && i < MAX_LINE => Ok(None),
        None if buf[i..] == *b"\r" && i < MAX_LINE => Ok(None),
        None => Err(ChunkError::Malformed),
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Parses the trailer section at the start of `buf` (after the last chunk's size line), up to
/// and including its blank line: `Ok(None)` when it is not complete yet; otherwise its
/// length. Trailers are dropped, but they are read as header lines with the heads' rules
/// (bare LF as in heads, no obs-fold, valid names) and within the heads' limits.
pub fn trailers(buf: &[u8]) -> Result<Option<usize>, ChunkError> {
    // Most bodies have none: just the blank line.
    if buf.starts_with(b"\r\n") {
        return Ok(Some(2));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, _))) if len <= MAX_HEAD => Ok(Some(len)),
        Ok(httparse::Status::Complete(_)) => Err(ChunkError::TrailersTooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(ChunkError::TrailersTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ChunkError::TrailersTooLarge),
        Err(_) => Err(ChunkError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_lines_follow_the_grammar() {
        let ok: [(&str, usize, u64); 7] = [
            ("5\r\n", 3, 5),
            ("A\r\nxx", 3, 10),
            ("ff;name=value\r\n", 15, 255),
            ("10 ;a=\"q s\"\r\n", 13, 16),
            ("1\t;x\r\n", 6, 1),
            ("0\r\n", 3, 0),
            ("ffffffffffffffff\r\n", 18, u64::MAX),
        ];
        for (line, len, size) in ok {
            assert_eq!(
                size_line(line.as_bytes()),
                Ok(Some((len, size))),
                "{line:?}"
            );
        }
        // What nginx and hyper refuse, and httparse lets through.
        let bad = [
            "\r\n",                  // an empty size line
            ";ext\r\n",              // an extension without a size
            "5;a\nb\r\n",            // a bare LF inside an extension
            "5\n",                   // a bare LF ending the line
            "5;a\rb\r\n",            // a bare CR inside an extension
            "5;\x00\r\n",            // a control character in an extension
            "5 5\r\n",               // digits after whitespace
            "-5\r\n",                // a sign
            "0x5\r\n",               // a prefix
            "5\r5",                  // CR without LF
            "10000000000000000\r\n", // 17 digits: overflow
        ];
        for line in bad {
            assert_eq!(
                size_line(line.as_bytes()),
                Err(ChunkError::Malformed),
                "{line:?}"
            );
        }
        for partial in ["", "5", "5;ext", "5\r", "5 ", "ffffffffffffffff"] {
            assert_eq!(size_line(partial.as_bytes()), Ok(None), "{partial:?}");
        }
        let long = format!("5;{}", "x".repeat(MAX_LINE));
        assert_eq!(size_line(long.as_bytes()), Err(ChunkError::Malformed));
        // Also when the whole line, CRLF and all, came in one read.
        let whole = format!("{long}\r\nhello");
        assert_eq!(size_line(whole.as_bytes()), Err(ChunkError::Malformed));
        let within = format!("5;{}\r\n", "x".repeat(MAX_LINE - 10));
        assert_eq!(size_line(within.as_bytes()), Ok(Some((within.len(), 5))));
        assert_eq!(size_line(b"11111111111111111"), Err(ChunkError::Malformed));
    }

    #[test]
    fn trailers_are_header_lines_within_the_head_limits() {
        assert_eq!(trailers(b"\r\nNEXT"), Ok(Some(2)));
        assert_eq!(trailers(b"x-a: 1\r\nx-b: 2\r\n\r\nNEXT"), Ok(Some(18)));
        // Bare LF, as httparse takes it in heads.
        assert_eq!(trailers(b"x-a: 1\n\n"), Ok(Some(8)));
        assert_eq!(trailers(b"x-a: 1\r\n"), Ok(None));
        assert_eq!(trailers(b""), Ok(None));
        for bad in [
            "bad name: 1\r\n\r\n",
            "x-a: 1\r\n folded\r\n\r\n",
            ": v\r\n\r\n",
        ] {
            assert_eq!(
                trailers(bad.as_bytes()),
                Err(ChunkError::Malformed),
                "{bad:?}"
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(
            trailers(format!("{many}\r\n").as_bytes()),
            Err(ChunkError::TrailersTooLarge)
        );
        let endless = format!("x: {}", "a".repeat(MAX_HEAD));
        assert_eq!(
            trailers(endless.as_bytes()),
            Err(ChunkError::TrailersTooLarge)
        );
    }
}
