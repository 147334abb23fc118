//! Answer heads, written into one buffer: the status line, the caller's headers, then the
//! framing and connection headers the server owns (Content-Length or chunked, Date,
//! Connection).

use std::time::{SystemTime, UNIX_EPOCH};

/// A whole answer, for the cases decided before any I/O (refused heads, gateway errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Appends `n` in decimal (without `core::fmt`, which costs more than the rest of a head;
/// itoa writes two digits a step).
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn is_date(name: &str) -> bool {
    name.len() == 4 && name.eq_ignore_ascii_case("date")
}

/// Whether an answer with this status carries a body (RFC 9110 §6.4.1).
pub fn has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// The `Date` header's value, formatted once a second per connection.
#[derive(Default)]
pub struct DateCache {
    secs: u64,
    text: Vec<u8>,
}

impl DateCache {
    pub fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}

/// Appends one header line, `name: value` and CRLF.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head of an answer. `length` is the body length (with `has_body`); `chunked`
/// announces a chunked body instead.
// Each argument is one part of the head, from one caller (`Exchange::start_answer`).
#[allow(clippy::too_many_arguments)]
pub fn head<'h>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    extra: &[(&'static str, Vec<u8>)],
    length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    date: &[u8],
) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.reserve(192);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, status.into());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    // The server dates its answers: one `Date`, its own, whatever a function or upstream
    // said (nginx hides the upstream's too).
    // The gateway's own headers (CORS, rate limits) replace a function's or upstream's of the
    // same name; `Vary` lists add up. On an API with CORS (its check always adds `Vary:
    // Origin`) every `Access-Control-*` header is the gateway's, as in AWS's HTTP APIs.
    let cors = extra.iter().any(|(n, v)| *n == "Vary" && v == b"Origin");
    let ours = |n: &str| {
        (cors && n.len() > 15 && n[..15].eq_ignore_ascii_case("access-control-"))
            || (!n.eq_ignore_ascii_case("vary")
                && extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)))
    };
    for (name, value) in headers.into_iter().filter(|(n, _)| !is_date(n) && !ours(n)) {
        push_header(out, name, value);
    }
    for (name, value) in extra {
        push_header(out, name, value);
    }
    if has_body(status) {
        match length {
            Some(len) if !chunked => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, len as u64);
                out.extend_from_slice(b"\r\n");
            }
            _ if chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            _ => {}
        }
    }
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(match keep_alive {
        true => b"\r\nConnection: keep-alive\r\n\r\n",
        false => b"\r\nConnection: close\r\n\r\n",
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_carry_framing_date_and_connection() {
        let mut out = Vec::new();
        let headers = [("content-type", &b"text/plain"[..]), ("DATE", b"x")];
        head(&mut out, 200, headers, &[], Some(5), false, true, b"D");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 5\r\nDate: D\r\nConnection: keep-alive\r\n\r\n"
        );
        let mut out = Vec::new();
        head(&mut out, 204, [], &[], Some(0), false, false, b"D");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        head(&mut out, 299, [], &[], None, true, true, b"D");
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("HTTP/1.1 299 \r\nTransfer-Encoding: chunked\r\n"));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 99, 100, 65535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn the_date_is_an_http_date() {
        let mut d = DateCache::default();
        let text = String::from_utf8(d.now().to_vec()).unwrap();
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }
}
