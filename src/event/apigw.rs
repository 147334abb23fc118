//! Request → JD Cloud API-gateway event (docs/events.md). A pure function: request parts in, JSON bytes
//! out, written directly without an intermediate `serde_json::Value`.

use super::decode::{decode_component, parse_query};
use super::json::{push_key, push_key_lower, push_member, push_str};
use crate::config::{Api, EventFormat, GatewaySettings};
use base64::Engine;
use std::time::SystemTime;

/// Why a request cannot become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Malformed request: bad percent-encoding, non-UTF-8 parameter or header (400).
    BadRequest(String),
    /// The body is not UTF-8 and the route is not `binary: base64` (415).
    UnsupportedBody,
}

/// The parts of an API's events that come from the config, written out once when the config
/// loads (the snapshot keeps one per API): about 10 strings a request fewer to escape.
pub struct Template {
    /// `jdcloud`: the envelope after the time (from the quote that closes it) to `"detail":`;
    /// empty for `jdcloud-detail`.
    envelope: Vec<u8>,
    /// From `,"requestContext"` to `"identity":`.
    context: Vec<u8>,
    detail_only: bool,
    pub format: EventFormat,
    /// For the AWS formats, which write them where their own shape puts them.
    pub account_id: String,
    pub api_id: String,
    pub stage: String,
}

impl Template {
    pub fn new(api: &Api, gateway: &GatewaySettings) -> Template {
        let raw = |out: &mut Vec<u8>, fragment: &str| out.extend_from_slice(fragment.as_bytes());
        let detail_only = api.format == EventFormat::JdcloudDetail;
        let mut envelope = Vec::new();
        if !detail_only {
            raw(
                &mut envelope,
                r#"","source":"apigateway","base64OwnerPin":"#,
            );
            push_str(&mut envelope, &gateway.base64_owner_pin);
            raw(&mut envelope, r#","resources":["#);
            push_str(&mut envelope, &api.resource);
            raw(&mut envelope, r#"],"region":"#);
            push_str(&mut envelope, &gateway.region);
            raw(
                &mut envelope,
                r#","detailType":"ApiGatewayReceived","detail":"#,
            );
        }
        let mut context = Vec::new();
        raw(&mut context, r#","requestContext":{"stage":"#);
        push_str(&mut context, &api.stage);
        raw(&mut context, r#","apiId":"#);
        push_str(&mut context, &api.id);
        raw(&mut context, r#","identity":"#);
        Template {
            envelope,
            context,
            detail_only,
            format: api.format,
            account_id: gateway.account_id.clone(),
            api_id: api.id.clone(),
            stage: api.stage.clone(),
        }
    }
}

/// Everything the event is made of; borrowed from the request and the config.
pub struct ApiRequest<'a> {
    pub template: &'a Template,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// Raw query string without `?` (empty when there is none).
    pub query: &'a str,
    /// Header lines in arrival order, names as sent.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Raw (still percent-encoded) path parameters in pattern order.
    pub path_params: &'a [(&'a str, &'a str)],
    /// The `x-forwarded-for` value to pass on (the client's, with the peer appended).
    pub forwarded_for: &'a str,
    pub source_ip: &'a str,
    pub body: &'a [u8],
    /// The route's pattern (`/users/{id}`) and whether it takes every method (AWS's route key).
    pub route_path: &'a str,
    pub any_method: bool,
    /// Route has `binary: base64`.
    pub binary: bool,
    /// Who the route's authentication admitted; `None`: `authType: "none"`.
    pub identity: Option<&'a crate::checks::Identity>,
    pub time: SystemTime,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are not part of the event, nor passed on by a proxy.
/// Names compare case-insensitively.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 6] = [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// What stops at this hop for one message: the standard hop-by-hop headers and the names its
/// `Connection` header lists. Shared by the event and the pass-through proxy.
pub struct HopByHop<'a>(Vec<&'a [u8]>);

impl<'a> HopByHop<'a> {
    pub fn of(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> HopByHop<'a> {
        let listed = headers
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .collect();
        HopByHop(listed)
    }

    pub fn contains(&self, name: &str) -> bool {
        is_hop_by_hop(name)
            || self
                .0
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Builds the event JSON for the API's format.
pub fn build(req: &ApiRequest) -> Result<Vec<u8>, EventError> {
    match req.template.format {
        EventFormat::AwsV1 => super::aws::build_v1(req),
        EventFormat::AwsV2 => super::aws::build_v2(req),
        EventFormat::Aliyun => super::aliyun::build(req),
        EventFormat::Jdcloud | EventFormat::JdcloudDetail => build_jd(req),
    }
}

fn build_jd(req: &ApiRequest) -> Result<Vec<u8>, EventError> {
    // A `binary: base64` route always sends base64, so the function knows what it gets.
    let body_text = match req.binary {
        true => None,
        false => {
            Some(simdutf8::basic::from_utf8(req.body).map_err(|_| EventError::UnsupportedBody)?)
        }
    };
    // Sized from the request so the buffer is not grown (and copied) while it is written: the
    // template, about 400 bytes of keys and punctuation, and the escaped request data.
    let headers: usize = req.headers.iter().map(|(n, v)| n.len() + v.len() + 6).sum();
    let request = req.path.len() + 2 * req.query.len() + req.request_id.len() * 2 + headers;
    let body = req.body.len() + req.body.len() / 3;
    let template = req.template;
    let fixed = template.envelope.len() + template.context.len();
    let mut out = Vec::with_capacity(400 + fixed + request + body);
    // Fixed keys and punctuation go out as literal fragments; values through `push_str`.
    let raw = |out: &mut Vec<u8>, fragment: &str| out.extend_from_slice(fragment.as_bytes());
    if !template.detail_only {
        raw(&mut out, r#"{"version":"0","id":"#);
        push_str(&mut out, req.request_id);
        // RFC 3339 needs no escaping: written straight into the event.
        raw(&mut out, r#","time":""#);
        crate::text::push_rfc3339_millis(&mut out, req.time);
        out.extend_from_slice(&template.envelope);
    }
    raw(&mut out, r#"{"path":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","httpMethod":"#);
    push_str(&mut out, req.method);
    raw(&mut out, r#","headers":"#);
    write_headers(&mut out, req)?;
    raw(&mut out, r#","pathParameters":"#);
    write_path_params(&mut out, req.path_params)?;
    raw(&mut out, r#","queryParameters":"#);
    write_query(&mut out, req.query)?;
    raw(&mut out, r#","queryString":"#);
    push_str(&mut out, req.query);
    raw(&mut out, r#","body":"#);
    match body_text {
        Some(text) => push_str(&mut out, text),
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(req.body);
            push_str(&mut out, &encoded);
        }
    }
    if req.binary {
        raw(&mut out, r#","isBase64Encoded":"#);
        raw(&mut out, if req.body.is_empty() { "false" } else { "true" });
    }
    out.extend_from_slice(&template.context);
    match req.identity {
        None => raw(
            &mut out,
            r#"{"accountId":"","apiKey":"","user":"","authType":"none"}"#,
        ),
        Some(id) => {
            raw(&mut out, r#"{"accountId":"#);
            push_str(&mut out, &id.account_id);
            raw(&mut out, r#","apiKey":"#);
            push_str(&mut out, &id.api_key);
            raw(&mut out, r#","user":"#);
            push_str(&mut out, &id.user);
            raw(&mut out, r#","authType":"#);
            push_str(&mut out, id.auth_type);
            out.push(b'}');
        }
    }
    raw(&mut out, r#","requestId":"#);
    push_str(&mut out, req.request_id);
    raw(&mut out, r#","sourceIp":"#);
    push_str(&mut out, req.source_ip);
    raw(&mut out, if template.detail_only { "}}" } else { "}}}" });
    Ok(out)
}

/// A header name's case-blind fingerprint: its length and its first and last 8 bytes with
/// each byte's 0x20 bit set (which folds ASCII letters' case). Names equal but for case have
/// equal fingerprints; most different names do not.
#[derive(Clone, Copy, PartialEq)]
struct NamePrint(usize, u64, u64);

impl NamePrint {
    fn of(name: &str) -> NamePrint {
        const FOLD: u64 = 0x2020_2020_2020_2020;
        let b = name.as_bytes();
        let mut head = [0u8; 8];
        let mut tail = [0u8; 8];
        let n = b.len().min(8);
        head[..n].copy_from_slice(&b[..n]);
        tail[..n].copy_from_slice(&b[b.len() - n..]);
        NamePrint(
            b.len(),
            u64::from_le_bytes(head) | FOLD,
            u64::from_le_bytes(tail) | FOLD,
        )
    }
}

fn write_headers(out: &mut Vec<u8>, req: &ApiRequest) -> Result<(), EventError> {
    let headers = req.headers;
    let hop = HopByHop::of(headers.iter().copied());
    let mut first = true;
    out.push(b'{');
    // Each name is compared with every other to find repeats: by fingerprint first, so that
    // names which only share a length (X-Custom-Header-1, -2, …) are not compared byte by byte
    // (with 30 headers that comparison was the largest user-space cost of the request).
    let prints: smallvec::SmallVec<[NamePrint; 32]> =
        headers.iter().map(|(n, _)| NamePrint::of(n)).collect();
    for (i, &(name, value)) in headers.iter().enumerate() {
        let print = prints[i];
        let same = |&(j, n): &(usize, &(&str, &[u8]))| {
            prints[j] == print && n.0.eq_ignore_ascii_case(name)
        };
        // A name is written once, where it first appears; its later lines are joined there.
        if headers[..i].iter().enumerate().any(|h| same(&h))
            || hop.contains(name)
            || name.eq_ignore_ascii_case("x-jdcloud-request-id")
            || name.eq_ignore_ascii_case("x-forwarded-for")
        {
            continue;
        }
        push_key_lower(out, &mut first, name);
        let mut more = (headers.iter().enumerate().skip(i + 1))
            .filter(same)
            .map(|(_, h)| h)
            .peekable();
        if more.peek().is_none() {
            // The usual case, one line: written straight from the request, no copy.
            push_str(out, header_text(name, value)?);
            continue;
        }
        // Several lines of one header: joined, as one field-value.
        let sep = if name.eq_ignore_ascii_case("cookie") {
            "; "
        } else {
            ", "
        };
        let mut joined = String::from(header_text(name, value)?);
        for (_, v) in more {
            joined.push_str(sep);
            joined.push_str(header_text(name, v)?);
        }
        push_str(out, &joined);
    }
    push_member(out, &mut first, "x-jdcloud-request-id", req.request_id);
    push_member(out, &mut first, "x-forwarded-for", req.forwarded_for);
    out.push(b'}');
    Ok(())
}

fn header_text<'v>(name: &str, value: &'v [u8]) -> Result<&'v str, EventError> {
    crate::text::utf8(value).map_err(|_| {
        let name = name.to_ascii_lowercase();
        EventError::BadRequest(format!("header {name:?} is not valid UTF-8"))
    })
}

fn write_path_params(out: &mut Vec<u8>, params: &[(&str, &str)]) -> Result<(), EventError> {
    let mut first = true;
    out.push(b'{');
    for (name, raw) in params {
        let value = decode_component(raw, false)
            .map_err(|e| EventError::BadRequest(format!("path parameter {name:?}: {e}")))?;
        push_member(out, &mut first, name, &value);
    }
    out.push(b'}');
    Ok(())
}

fn write_query(out: &mut Vec<u8>, query: &str) -> Result<(), EventError> {
    out.push(b'{');
    let start = out.len();
    if !write_pairs(out, query)? {
        // A repeated key, or one to decode: written again from the parsed query.
        out.truncate(start);
        write_parsed(out, query)?;
    }
    out.push(b'}');
    Ok(())
}

fn bad_query(e: String) -> EventError {
    EventError::BadRequest(format!("query string: {e}"))
}

/// The `key=value` pairs of a query, empty ones skipped; a pair without `=` has an empty
/// value. Split by byte: `str::split(char)` costs about 100 instructions a match through
/// `CharSearcher`, several times a request.
fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    fn cut(text: &str, at: u8) -> (&str, Option<&str>) {
        match text.bytes().position(|b| b == at) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        }
    }
    let mut rest = Some(query);
    std::iter::from_fn(move || loop {
        let (pair, next) = cut(rest?, b'&');
        rest = next;
        if !pair.is_empty() {
            let (key, value) = cut(pair, b'=');
            return Some((key, value.unwrap_or("")));
        }
    })
}

/// The usual query — at most 16 keys, none repeated and none with anything to decode (`%`,
/// `+`), so that `parse_query` would give each key as written with one value — written pair by
/// pair as it is read, in one pass. `Ok(false)` as soon as it turns out not to be one; what was
/// written is then discarded. A bad value is the same error `parse_query` would report first.
fn write_pairs(out: &mut Vec<u8>, query: &str) -> Result<bool, EventError> {
    let mut seen: [&str; 16] = [""; 16];
    let mut first = true;
    for (n, (key, value)) in pairs(query).enumerate() {
        let encoded = key.bytes().any(|b| b == b'%' || b == b'+');
        if n == seen.len() || encoded || seen[..n].contains(&key) {
            return Ok(false);
        }
        seen[n] = key;
        push_key(out, &mut first, key);
        push_str(out, &decode_component(value, true).map_err(bad_query)?);
    }
    Ok(true)
}

/// Any query: keys decoded, a repeated key's values collected into an array.
fn write_parsed(out: &mut Vec<u8>, query: &str) -> Result<(), EventError> {
    let mut first = true;
    for (key, values) in &parse_query(query).map_err(bad_query)? {
        push_key(out, &mut first, key);
        if let [one] = values.as_slice() {
            push_str(out, one);
        } else {
            out.push(b'[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, v);
            }
            out.push(b']');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names equal but for case share a fingerprint; names that share one may still differ
    /// (tests/events.rs shows those are told apart by the byte comparison).
    #[test]
    fn names_equal_but_for_case_share_a_fingerprint() {
        assert!(NamePrint::of("X-Custom-Header-7") == NamePrint::of("x-custom-header-7"));
        assert!(NamePrint::of("TE") == NamePrint::of("te"));
        assert!(NamePrint::of("X-Custom-Header-7") != NamePrint::of("X-Custom-Header-8"));
        assert!(NamePrint::of("X-Aaaaaaaa-1-Bbbbbbbb") == NamePrint::of("X-Aaaaaaaa-2-Bbbbbbbb"));
    }

    #[test]
    fn hop_by_hop_names_in_any_case() {
        for name in [
            "connection",
            "Keep-Alive",
            "TE",
            "trailer",
            "Transfer-Encoding",
            "UPGRADE",
            "proxy-authorization",
            "Proxy-Connection",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "content-type",
            "tea",
            "t",
            "upgrades",
            "trailers",
            "proxy",
            "x-te",
            "",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn plain_queries_are_written_as_the_parsed_path_writes_them() {
        let plain = [
            "lang=zh&page=2",
            "",
            "&&a=1&&b",
            "a=&b==x&c=%E4%B8%AD+%20",
            "x=%zz",
            "k=%ff",
            "q=a\"b",
        ];
        for query in plain {
            let (mut fast, mut parsed) = (Vec::new(), Vec::new());
            let fast = write_pairs(&mut fast, query).map(|done| (done, fast));
            let parsed = write_parsed(&mut parsed, query).map(|_| (true, parsed));
            assert_eq!(fast, parsed, "{query}");
        }
        let many: String = (0..17).map(|i| format!("k{i}=v&")).collect();
        for query in ["a=1&a=2", "a%20b=1", "a+b=1", "a=1&b=2&a", many.as_str()] {
            assert_eq!(write_pairs(&mut Vec::new(), query), Ok(false), "{query}");
            let (mut whole, mut parsed) = (Vec::new(), b"{".to_vec());
            write_query(&mut whole, query).unwrap();
            write_parsed(&mut parsed, query).unwrap();
            parsed.push(b'}');
            assert_eq!(whole, parsed, "{query}");
        }
    }
}
