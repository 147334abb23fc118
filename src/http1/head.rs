//! Request heads: parsed with httparse and kept as offsets into the connection's buffer, so the
//! body can be read into the same buffer while the head stays readable. The framing rules are
//! RFC 9112 §6 with the ambiguous cases refused (request smuggling): Content-Length together with
//! Transfer-Encoding, differing Content-Lengths, and Transfer-Encoding on HTTP/1.0 are 400.

use crate::text::span;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Most header lines a request may have (nginx has no count limit, pingora 256, Envoy 100).
pub const MAX_HEADERS: usize = 128;
/// Largest request head (nginx: 4 × 8 KiB buffers; Envoy: 60 KiB).
pub const MAX_HEAD: usize = 64 * 1024;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    #[default]
    Empty,
    Length(usize),
    Chunked,
}

/// Why a head cannot be served; the connection is closed after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// 400: not HTTP/1.x, bad syntax, ambiguous framing.
    Malformed(String),
    /// 431: more than `MAX_HEAD` bytes or `MAX_HEADERS` lines.
    TooLarge,
    /// 501: a transfer coding other than chunked.
    UnsupportedCoding,
}

type Span = Range<usize>;

/// A parsed request head; the spans index the buffer it was parsed from.
#[derive(Debug, Default)]
pub struct Head {
    /// Bytes of the head, up to and including the blank line.
    pub len: usize,
    /// Parsed once: standard methods without an allocation.
    pub method: http::Method,
    target: Span,
    /// Empty for an absolute-form target without a path, which means "/".
    path: Span,
    query: Span,
    pub http10: bool,
    headers: Vec<(Span, Span)>,
    pub framing: Framing,
    /// What the client asked for (HTTP/1.1 default on, HTTP/1.0 default off).
    pub keep_alive: bool,
    pub expect_continue: bool,
}

fn malformed(why: impl Into<String>) -> HeadError {
    HeadError::Malformed(why.into())
}

/// Parses the head at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    // Slots left uninitialised: filling 128 of them (4 KiB) cost more than parsing the head.
    let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(malformed(format!("malformed request head: {e}"))),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(malformed("incomplete request line"));
    };
    let mut head = Head {
        len,
        method: http::Method::from_bytes(method.as_bytes())
            .map_err(|_| malformed("malformed method"))?,
        target: span(buf, target.as_bytes()),
        http10: minor == 0,
        keep_alive: minor == 1,
        headers: Vec::with_capacity(req.headers.len()),
        ..Head::default()
    };
    let (path, query) = split_target(target)?;
    head.path = span(buf, path.as_bytes());
    head.query = span(buf, query.as_bytes());

    let mut length: Option<usize> = None;
    let mut coding: Option<&[u8]> = None;
    let mut hosts = 0;
    for h in req.headers.iter() {
        head.headers
            .push((span(buf, h.name.as_bytes()), span(buf, h.value)));
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_length(h.value).ok_or_else(|| malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(malformed("differing Content-Length headers"));
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if coding.is_some() {
                return Err(HeadError::UnsupportedCoding);
            }
            coding = Some(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && head.http10 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = !head.http10 && h.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    // RFC 9112 §3.2: exactly one Host on HTTP/1.1.
    if !head.http10 && hosts != 1 {
        return Err(malformed(if hosts == 0 {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "more than one Host header"
        }));
    }
    head.framing = match (coding, length) {
        (Some(_), Some(_)) => {
            return Err(malformed(
                "both Content-Length and Transfer-Encoding (refused: ambiguous framing)",
            ))
        }
        (Some(_), None) if head.http10 => {
            return Err(malformed("Transfer-Encoding on an HTTP/1.0 request"))
        }
        (Some(c), None) if c.trim_ascii().eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
        (Some(_), None) => return Err(HeadError::UnsupportedCoding),
        (None, Some(0) | None) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    };
    Ok(Some(head))
}

/// When a header section (a head, or chunked trailers) arriving in pieces is worth parsing:
/// httparse starts from the first byte each time, so a head arriving a byte at a time would
/// otherwise be parsed once per byte (quadratic in its size).
#[derive(Default)]
pub struct EndScan {
    /// Bytes of the section looked at before; `None` until it had any.
    searched: Option<usize>,
}

impl EndScan {
    /// Whether to parse `buf`, the section so far: on the first look at it (garbage is refused
    /// at once), then once its end may have arrived, or once it has reached `MAX_HEAD`.
    pub fn due(&mut self, buf: &[u8]) -> bool {
        if buf.is_empty() {
            return false;
        }
        let due = match self.searched {
            None => true,
            Some(from) => has_end(buf, from) || buf.len() >= MAX_HEAD,
        };
        self.searched = Some(buf.len());
        due
    }
}

/// Whether the end of a header section (an empty line, CRLF or bare LF as httparse takes it)
/// lies in `buf` past the first `from` bytes, which were searched before.
fn has_end(buf: &[u8], from: usize) -> bool {
    // `buf` starts a line, so an empty line may open it (a trailer section with no trailers).
    if buf.starts_with(b"\n") || buf.starts_with(b"\r\n") {
        return true;
    }
    let start = from.saturating_sub(2).min(buf.len());
    let tail = &buf[start..];
    tail.iter().enumerate().any(|(i, &b)| {
        b == b'\n' && (tail.get(i + 1) == Some(&b'\n') || tail.get(i + 1..i + 3) == Some(b"\r\n"))
    })
}

/// Digits only: no sign, no list, no spaces inside.
/// A Content-Length value: 1 to 18 digits (RFC 9110 `1*DIGIT`; 18 keep it far from
/// overflowing), with surrounding spaces allowed. Shared with the client side's replies.
pub(crate) fn parse_length(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    v.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
    })
}

/// Path and query of a request target: origin-form (`/a?b`), absolute-form
/// (`http://host/a?b`, which proxies send) or `*`.
fn split_target(target: &str) -> Result<(&str, &str), HeadError> {
    let rest = if target.starts_with('/') || target == "*" {
        target
    } else {
        absolute_form(target)
            .ok_or_else(|| malformed("unsupported request target"))?
            .1
    };
    // A byte search: `split_once('?')` costs about 170 instructions through `CharSearcher`.
    Ok(match rest.bytes().position(|b| b == b'?') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    })
}

/// An absolute-form target's authority and the rest (path and query, possibly empty):
/// `http://host:8080/a?b` → (`host:8080`, `/a?b`). `None` for any other form.
pub fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let scheme = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let after = if scheme.starts_with("http://") {
        &target[7..]
    } else if scheme.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    Some(after.split_at(after.find(['/', '?']).unwrap_or(after.len())))
}

fn text<'b>(buf: &'b [u8], s: &Span) -> &'b str {
    crate::text::utf8(&buf[s.clone()]).unwrap_or("")
}

impl Head {
    /// The request target as received (path and query).
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b str {
        text(buf, &self.target)
    }

    /// The path, still percent-encoded. Not UTF-8 → checked by `check_utf8`.
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b str {
        match self.path.is_empty() {
            true => "/",
            false => text(buf, &self.path),
        }
    }

    /// The raw query string without `?` (empty when there is none).
    pub fn query<'b>(&self, buf: &'b [u8]) -> &'b str {
        text(buf, &self.query)
    }

    /// Request-target bytes above 0x7F must form UTF-8 (they reach events as strings).
    pub fn check_utf8(&self, buf: &[u8]) -> Result<(), HeadError> {
        crate::text::utf8(&buf[self.target.clone()])
            .map(|_| ())
            .map_err(|_| malformed("the request target is not valid UTF-8"))
    }

    /// Header lines in order, names as sent.
    pub fn headers<'h, 'b: 'h>(
        &'h self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = (&'b str, &'b [u8])> + 'h {
        self.headers
            .iter()
            .map(move |(n, v)| (text(buf, n), &buf[v.clone()]))
    }

    /// The first value of a header (names compared case-insensitively).
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.headers(buf)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(
            parse_length(b"999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for bad in ["", " ", "+5", "-1", "1e3", "4 2", "1234567890123456789"] {
            assert_eq!(parse_length(bad.as_bytes()), None, "{bad:?}");
        }
    }

    fn ok(raw: &str) -> Head {
        parse(raw.as_bytes()).unwrap().unwrap()
    }

    fn err(raw: &str) -> HeadError {
        parse(raw.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_parts_as_offsets() {
        let raw = "GET /users/42?lang=zh HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\nrest";
        let h = ok(raw);
        let b = raw.as_bytes();
        assert_eq!(h.len, raw.len() - 4);
        assert_eq!(
            (h.method.as_str(), h.path(b), h.query(b)),
            ("GET", "/users/42", "lang=zh")
        );
        assert_eq!(h.target(b), "/users/42?lang=zh");
        assert_eq!(h.header(b, "x-a"), Some(&b"1"[..]));
        assert_eq!(h.headers(b).count(), 3);
        assert!(h.keep_alive && !h.http10 && h.framing == Framing::Empty);
    }

    #[test]
    fn the_end_of_a_head_is_found_in_new_bytes() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(has_end(head, 0));
        // Searched up to the last byte before: the end still found across the boundary.
        for from in 0..head.len() {
            assert!(has_end(head, from), "from {from}");
        }
        assert!(!has_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
        assert!(has_end(b"GET / HTTP/1.1\nHost: a\n\n", 20));
        assert!(!has_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0));
        assert!(!has_end(b"", 0));
        assert!(!has_end(b"x\n\n", 10), "past the end: nothing new");
        // An empty first line, arriving in pieces.
        assert!(!has_end(b"\r", 0));
        assert!(has_end(b"\r\n", 1));
        assert!(has_end(b"\n", 0));
    }

    #[test]
    fn a_head_arriving_a_byte_at_a_time_is_parsed_twice() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut scan = EndScan::default();
        let due: Vec<usize> = (0..=head.len()).filter(|&n| scan.due(&head[..n])).collect();
        assert_eq!(due, [1, head.len()], "the first byte, and the end");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse(b"").unwrap().is_none());
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        let h = ok(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        let h = ok("GET / HTTP/1.0\r\n\r\n");
        assert!(h.http10 && !h.keep_alive);
        let h = ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = ok("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
        assert_eq!(h.framing, Framing::Length(1));
    }

    #[test]
    fn ambiguous_or_bad_framing_is_refused() {
        let both =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(err(both), HeadError::Malformed(_)));
        let differ = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(matches!(err(differ), HeadError::Malformed(_)));
        for bad in ["-1", "1,1", "0x10", "", "1 2"] {
            let r = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
            assert!(matches!(err(&r), HeadError::Malformed(_)), "{bad:?}");
        }
        let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(err(gzip), HeadError::UnsupportedCoding);
        let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(err(old), HeadError::Malformed(_)));
    }

    #[test]
    fn host_is_required_once_on_http11() {
        assert!(matches!(
            err("GET / HTTP/1.1\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        let two = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert!(matches!(err(two), HeadError::Malformed(_)));
    }

    #[test]
    fn targets() {
        let b = "GET http://example.com/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = ok(b);
        assert_eq!(
            (h.path(b.as_bytes()), h.query(b.as_bytes())),
            ("/a/b", "x=1")
        );
        let b = "GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(ok(b).path(b.as_bytes()), "/");
        let b = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(ok(b).path(b.as_bytes()), "*");
        assert!(matches!(
            err("CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadError::Malformed(_)
        ));
    }

    #[test]
    fn limits_and_garbage() {
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        assert_eq!(
            err(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            HeadError::TooLarge
        );
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nx: {}", "a".repeat(MAX_HEAD));
        assert_eq!(err(&long), HeadError::TooLarge);
        assert!(matches!(
            err("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            err("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            err("\x16\x03\x01\x02\x00"),
            HeadError::Malformed(_)
        ));
    }
}
