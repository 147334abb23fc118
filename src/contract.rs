//! The reply contract (docs/events.md): function output bytes → an HTTP reply, or a violation that names
//! the offending field by JSON pointer (the gateway answers 503).

use crate::event::apigw::is_hop_by_hop;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A valid reply, borrowing from the function's output where no unescaping was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub status: u16,
    /// In the order the function gave them, names as written; arrays become several entries.
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub body: Cow<'a, [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending field (empty for the whole reply).
    pub pointer: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.pointer.is_empty() {
            true => f.write_str(&self.problem),
            false => write!(f, "{}: {}", self.pointer, self.problem),
        }
    }
}

/// What a runtime's error answer (non-2xx) says was raised, from the Lambda-style
/// `{"errorType", "errorMessage"}` body the project's runtime sends; `None` for any other body.
pub fn raised(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct RuntimeError {
        #[serde(rename = "errorType")]
        error_type: String,
        #[serde(rename = "errorMessage", default)]
        error_message: String,
    }
    const MAX_CHARS: usize = 300;
    let e: RuntimeError = serde_json::from_slice(body).ok()?;
    let text = match e.error_message.is_empty() {
        true => e.error_type,
        false => format!("{}: {}", e.error_type, e.error_message),
    };
    Some(match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    })
}

fn violation(pointer: impl Into<String>, problem: impl Into<String>) -> Violation {
    Violation {
        pointer: pointer.into(),
        problem: problem.into(),
    }
}

/// The top-level fields; each is kept raw so that a wrong type can be described precisely.
#[derive(Deserialize)]
struct RawReply<'a> {
    #[serde(rename = "statusCode", borrow)]
    status_code: Option<&'a RawValue>,
    #[serde(borrow)]
    headers: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(rename = "isBase64Encoded", borrow)]
    is_base64: Option<&'a RawValue>,
}

/// Describes a JSON value for messages: `the string "200"`, `a number`, `an array`.
fn describe(raw: &RawValue) -> String {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            let shown: String = text.chars().take(40).collect();
            let cut = if shown.len() < text.len() { "…" } else { "" };
            format!("the string {shown}{cut}")
        }
        Some(b'{') => "an object".into(),
        Some(b'[') => "an array".into(),
        Some(b't' | b'f') => format!("the boolean {text}"),
        Some(b'n') => "null".into(),
        _ => format!("the number {text}"),
    }
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

/// The text of a JSON string literal (`raw` is one, already checked by serde_json): borrowed
/// when it has no escapes, else unescaped into a string of the right size. serde_json decodes
/// the rare literal `unescape` leaves alone (an unpaired surrogate), for its error message.
fn json_string(raw: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.get();
    if let Some(inner) = text.get(1..text.len().saturating_sub(1)) {
        if !inner.as_bytes().contains(&b'\\') {
            return Ok(Cow::Borrowed(inner));
        }
        if let Some(unescaped) = unescape(inner) {
            return Ok(Cow::Owned(unescaped));
        }
    }
    serde_json::from_str::<String>(text).map(Cow::Owned)
}

/// Decodes the escapes of a JSON string's inside, which serde_json has validated (so every `\`
/// starts a well-formed escape). `None` for a `\u` escape that is not a scalar value.
fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.bytes().position(|b| b == b'\\') {
        out.push_str(&rest[..at]);
        let escape = rest.as_bytes().get(at + 1)?;
        rest = &rest[at + 2..];
        out.push(match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(rest)?;
                rest = &rest[4..];
                let code = match unit {
                    0xD800..=0xDBFF => {
                        let low = rest.strip_prefix("\\u").and_then(hex4)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        rest = &rest[6..];
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    unit => unit,
                };
                char::from_u32(code)?
            }
            _ => return None,
        });
    }
    out.push_str(rest);
    Some(out)
}

/// The four hex digits at the start of `text`.
fn hex4(text: &str) -> Option<u32> {
    let digits = text.get(..4)?;
    match digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => u32::from_str_radix(digits, 16).ok(),
        false => None,
    }
}

/// RFC 9110 `token`: what a header name may be made of.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a reply header goes to the client: hop-by-hop headers stop here, and the gateway
/// frames the body itself.
fn passed_on(name: &str) -> bool {
    !is_hop_by_hop(name) && !name.eq_ignore_ascii_case("content-length")
}

/// What a header value may hold (visible characters, space, tab, obs-text), as `http` checks.
fn is_field_value(v: &str) -> bool {
    v.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}

/// Parses and checks a function's return value.
pub fn check(reply: &[u8]) -> Result<Reply<'_>, Violation> {
    let first = reply.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match serde_json::from_slice::<&RawValue>(reply) {
            Ok(v) => violation("", format!("expected a JSON object, got {}", describe(v))),
            Err(e) => violation("", format!("not valid JSON ({e})")),
        });
    }
    match plain(reply) {
        Some(reply) => Ok(reply),
        None => field_by_field(reply),
    }
}

/// The usual reply — an integer status, string header values, a string body — read in one
/// pass. Anything else, valid or not, is `None` and read again by `field_by_field`, which
/// accepts more shapes and names what is wrong; this path accepts only what that one accepts,
/// with the same result (a test in this file compares them).
fn plain(reply: &[u8]) -> Option<Reply<'_>> {
    #[derive(Deserialize)]
    struct Plain<'a> {
        #[serde(rename = "statusCode")]
        status_code: u16,
        #[serde(borrow, default)]
        headers: Option<Pairs<'a, Text<'a>>>,
        // Decoded by serde_json as it reads (lent when it has no escapes): one pass over a
        // long, escape-dense body instead of a pass to skip it and one to unescape it.
        #[serde(borrow, default)]
        body: Option<Text<'a>>,
        #[serde(rename = "isBase64Encoded", default)]
        is_base64: Option<bool>,
    }
    // Checked as UTF-8 once (ASCII a word at a time) so that serde_json, reading a `str`, does
    // not check each string it lends again.
    let raw: Plain = serde_json::from_str(crate::text::utf8(reply).ok()?).ok()?;
    if !(200..=599).contains(&raw.status_code) {
        return None;
    }
    let given = raw.headers.map(|h| h.0).unwrap_or_default();
    // Collected in place (same layout): no second vector.
    let mut headers: Headers = given.into_iter().map(|(n, v)| (n, v.0)).collect();
    let valid = |(name, value): &(Cow<str>, Cow<str>)| is_token(name) && is_field_value(value);
    if !headers.iter().all(valid) {
        return None;
    }
    headers.retain(|(name, _)| passed_on(name));
    let body = match raw.body {
        Some(text) => body_bytes(text.0, raw.is_base64.unwrap_or(false)).ok()?,
        None => Cow::Borrowed(&[][..]),
    };
    Some(Reply {
        status: raw.status_code,
        headers,
        body,
    })
}

/// Reads the reply one field at a time, keeping each raw so that a wrong type can be named.
fn field_by_field(reply: &[u8]) -> Result<Reply<'_>, Violation> {
    let raw: RawReply = serde_json::from_slice(reply)
        .map_err(|e| violation("", format!("not a valid JSON object ({e})")))?;
    let status = status_code(raw.status_code)?;
    let headers = match raw.headers {
        Some(h) if h.get() != "null" => headers(h)?,
        _ => Vec::new(),
    };
    let base64 = match raw.is_base64 {
        None => false,
        Some(b) => match b.get() {
            "null" | "false" => false,
            "true" => true,
            _ => {
                let got = describe(b);
                return Err(violation(
                    "/isBase64Encoded",
                    format!("expected a boolean, got {got}"),
                ));
            }
        },
    };
    let body = match raw.body {
        Some(b) if !is_null(Some(b)) => {
            if !b.get().starts_with('"') {
                let got = describe(b);
                return Err(violation("/body", format!("expected a string, got {got}")));
            }
            body(b, base64)?
        }
        _ => Cow::Borrowed(&[][..]),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The body's bytes from its JSON string literal, base64-decoded when the reply says so.
fn body(raw: &RawValue, base64: bool) -> Result<Cow<'_, [u8]>, Violation> {
    let text = json_string(raw).map_err(|e| violation("/body", format!("invalid string ({e})")))?;
    body_bytes(text, base64)
}

/// The body's bytes from its text, base64-decoded when the reply says so.
fn body_bytes(text: Cow<'_, str>, base64: bool) -> Result<Cow<'_, [u8]>, Violation> {
    Ok(match (base64, text) {
        (true, text) => Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| {
                    violation(
                        "/body",
                        format!("isBase64Encoded is true but the body is not base64 ({e})"),
                    )
                })?,
        ),
        (false, Cow::Borrowed(text)) => Cow::Borrowed(text.as_bytes()),
        (false, Cow::Owned(text)) => Cow::Owned(text.into_bytes()),
    })
}

fn status_code(raw: Option<&RawValue>) -> Result<u16, Violation> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Err(violation(
            "/statusCode",
            "missing; expected an integer 100..599",
        ));
    };
    let text = raw.get();
    let number = text
        .parse::<u64>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()));
    match number {
        Some(n @ 200..=599) => Ok(n as u16),
        // The contract (docs/events.md) allows 100..599, but a 1xx cannot be a final response: the client would wait
        // for another one. Documented in docs/events.md.
        Some(n @ 100..=199) => Err(violation(
            "/statusCode",
            format!("{n} is an informational status and cannot be a final response"),
        )),
        _ => Err(violation(
            "/statusCode",
            format!("expected an integer 100..599, got {}", describe(raw)),
        )),
    }
}

/// The reply contract of the API's format: JD Cloud's (`check`) or AWS's.
pub fn check_format(
    format: crate::config::EventFormat,
    reply: &[u8],
) -> Result<Reply<'_>, Violation> {
    use crate::config::EventFormat;
    match format {
        // Alibaba Cloud's reply is JD's shape (`isBase64Encoded`, `statusCode`, `headers`, `body`).
        EventFormat::Jdcloud | EventFormat::JdcloudDetail | EventFormat::Aliyun => check(reply),
        EventFormat::AwsV1 => check_aws(reply, false),
        EventFormat::AwsV2 => check_aws(reply, true),
    }
}

/// AWS API Gateway's Lambda-proxy reply. Payload 1.0: `statusCode`, `headers`,
/// `multiValueHeaders` (each value an array; merged with `headers`), `body`,
/// `isBase64Encoded`. Payload 2.0: the same without `multiValueHeaders`, with `cookies` (each a
/// `Set-Cookie` header); a reply without `statusCode` is the body of a 200
/// `application/json` answer, as it is.
fn check_aws(reply: &[u8], v2: bool) -> Result<Reply<'_>, Violation> {
    #[derive(Deserialize)]
    struct Aws<'a> {
        #[serde(rename = "statusCode", borrow)]
        status_code: Option<&'a RawValue>,
        #[serde(rename = "multiValueHeaders", borrow)]
        multi_value_headers: Option<&'a RawValue>,
        #[serde(borrow)]
        cookies: Option<&'a RawValue>,
    }
    // Only an object has fields (serde would read an array's items as them, in order).
    let object = reply.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let fields = serde_json::from_slice::<Aws>(reply).ok().filter(|_| object);
    if v2 && fields.as_ref().is_none_or(|f| f.status_code.is_none()) {
        let whole = serde_json::from_slice::<&RawValue>(reply)
            .map_err(|e| violation("", format!("not valid JSON ({e})")))?;
        return Ok(Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Cow::Borrowed(whole.get().as_bytes()),
        });
    }
    let mut out = check(reply)?;
    let Some(fields) = fields else {
        return Ok(out);
    };
    let given = |raw: &&RawValue| raw.get() != "null";
    if let Some(multi) = fields.multi_value_headers.filter(given).filter(|_| !v2) {
        // AWS merges the two; for a name in both, the multi-value one's values are kept.
        let multi = headers_at(multi, "/multiValueHeaders", true)?;
        let in_multi = |name: &str| multi.iter().any(|(m, _)| m.eq_ignore_ascii_case(name));
        out.headers.retain(|(name, _)| !in_multi(name));
        out.headers.extend(multi);
    }
    if let Some(cookies) = fields.cookies.filter(given).filter(|_| v2) {
        let wrong = || {
            violation(
                "/cookies",
                format!("expected an array of strings, got {}", describe(cookies)),
            )
        };
        let items: Vec<&RawValue> = serde_json::from_str(cookies.get()).map_err(|_| wrong())?;
        for (i, item) in items.iter().enumerate() {
            let at = || format!("/cookies/{i}");
            if !item.get().starts_with('"') {
                return Err(violation(
                    at(),
                    format!("expected a string, got {}", describe(item)),
                ));
            }
            let value =
                json_string(item).map_err(|e| violation(at(), format!("invalid string ({e})")))?;
            header_value(&value, at)?;
            out.headers.push((Cow::Borrowed("set-cookie"), value));
        }
    }
    Ok(out)
}

/// Escapes `~` and `/` in a JSON pointer segment (RFC 6901).
fn pointer_segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

type Headers<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn headers(raw: &RawValue) -> Result<Headers<'_>, Violation> {
    headers_at(raw, "/headers", false)
}

/// A header value as it may go to the client: no CR or LF (header injection), only the
/// characters a field value may hold.
fn header_value(v: &str, pointer: impl Fn() -> String) -> Result<(), Violation> {
    if v.contains(['\r', '\n']) {
        return Err(violation(
            pointer(),
            "value contains CR or LF (header injection)",
        ));
    }
    if !is_field_value(v) {
        return Err(violation(
            pointer(),
            "value has characters not allowed in a header",
        ));
    }
    Ok(())
}

/// The header object at `at`: `/headers` (a string or an array of strings per name), or AWS's
/// `/multiValueHeaders` (`lists_only`: an array per name).
fn headers_at<'a>(raw: &'a RawValue, at: &str, lists_only: bool) -> Result<Headers<'a>, Violation> {
    if !raw.get().starts_with('{') {
        return Err(violation(
            at,
            format!("expected an object, got {}", describe(raw)),
        ));
    }
    let map = serde_json::from_str::<Pairs<&RawValue>>(raw.get())
        .map(|m| m.0)
        .map_err(|e| violation(at, format!("invalid object ({e})")))?;
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        // Built only for a message: most replies have nothing wrong.
        let pointer = || format!("{at}/{}", pointer_segment(&name));
        if !is_token(&name) {
            return Err(violation(pointer(), "invalid header name"));
        }
        if !passed_on(&name) {
            continue;
        }
        let values: Vec<Cow<str>> = match value.get().as_bytes().first() {
            Some(b'"') if !lists_only => vec![json_string(value)
                .map_err(|e| violation(pointer(), format!("invalid string ({e})")))?],
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(value.get())
                    .map_err(|_| violation(pointer(), "expected an array of strings"))?;
                let strings = items.iter().filter(|v| v.get().starts_with('"'));
                let values: Result<Vec<_>, _> = strings.map(|v| json_string(v)).collect();
                match values {
                    Ok(v) if v.len() == items.len() => v,
                    _ => return Err(violation(pointer(), "expected an array of strings")),
                }
            }
            _ => {
                let expected = match lists_only {
                    true => "an array of strings",
                    false => "a string or an array of strings",
                };
                let got = describe(value);
                return Err(violation(
                    pointer(),
                    format!("expected {expected}, got {got}"),
                ));
            }
        };
        for v in values {
            header_value(&v, pointer)?;
            out.push((name.clone(), v));
        }
    }
    Ok(out)
}

/// A JSON string (an object key, a header value), borrowed when serde_json can lend it.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A JSON object as ordered (key, value) pairs; keeps duplicates and order. Keys borrow from
/// the input unless they had escapes.
struct Pairs<'a, V>(Vec<(Cow<'a, str>, V)>);

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Pairs<'a, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a, V>(std::marker::PhantomData<(&'a (), V)>);
        impl<'de: 'a, 'a, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<'a, V> {
            type Value = Pairs<'a, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                // Sized for the usual few members: one allocation, not several as it grows.
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(4));
                while let Some((k, v)) = m.next_entry::<Text<'a>, V>()? {
                    out.push((k.0, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        r#"{"statusCode":200,"headers":{"Content-Type":"application/json","X-A":"1"},"body":"{\"id\":\"42\",\"ok\":true}"}"#,
        r#"{"statusCode":404,"body":"caf\u00e9 \ud83d\ude00 \/ \t\n","isBase64Encoded":false}"#,
        r#"{"statusCode":201,"headers":{"set-cookie":"a=1","Set-Cookie":"b=2","Connection":"close","content-length":"3"},"body":"aGk=","isBase64Encoded":true}"#,
        r#" {"body":null,"headers":null,"statusCode":599,"isBase64Encoded":null,"other":[1,{"x":"y"}]} "#,
        r#"{"statusCode":200}"#,
        r#"{"statusCode":200,"headers":{"X-E\u0073c":"v\u00e9"},"body":""}"#,
    ];

    /// Every reply the one-pass path accepts, the field-by-field path accepts the same way; and
    /// it does take the usual replies. Checked on each valid reply with every byte deleted or
    /// replaced by one that matters to JSON.
    #[test]
    fn the_one_pass_path_agrees_with_the_field_by_field_path() {
        const BYTES: &[u8] = b"\"\\{}[],:05an ue\x01\r";
        let mut taken = 0;
        for reply in VALID {
            let reply = reply.as_bytes();
            assert_eq!(plain(reply).map(Ok), Some(field_by_field(reply)));
            for at in 0..reply.len() {
                let mut cases = vec![[&reply[..at], &reply[at + 1..]].concat()];
                for &b in BYTES {
                    let mut changed = reply.to_vec();
                    changed[at] = b;
                    cases.push(changed);
                }
                for case in &cases {
                    if let Some(fast) = plain(case) {
                        taken += 1;
                        assert_eq!(
                            Ok(fast),
                            field_by_field(case),
                            "{}",
                            String::from_utf8_lossy(case)
                        );
                    }
                }
            }
        }
        assert!(taken > 100, "the one-pass path took only {taken} cases");
    }

    #[test]
    fn headers_arrays_and_bad_fields_take_the_field_by_field_path() {
        for reply in [
            r#"{"statusCode":200,"headers":{"a":["1","2"]}}"#,
            r#"{"statusCode":"200"}"#,
            r#"{"statusCode":200,"headers":{"a b":"1"}}"#,
            r#"{"statusCode":200,"headers":{"a":"1\r\nb: 2"}}"#,
            r#"{"statusCode":150}"#,
            r#"{"statusCode":200,"body":5}"#,
        ] {
            assert_eq!(plain(reply.as_bytes()), None, "{reply}");
        }
    }

    #[test]
    fn unescaping_matches_serde_json() {
        let texts = [
            "plain",
            "\"quoted\" \\ back/slash",
            "\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}",
            "café 中文 😀",
            "",
        ];
        for text in texts {
            let literal = serde_json::to_string(text).unwrap();
            let raw: &RawValue = serde_json::from_str(&literal).unwrap();
            assert_eq!(json_string(raw).unwrap(), text);
        }
        // Every escape at every offset in a word, before and after plain runs of 8 or more.
        for special in [
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "é",
            "😀",
            "\\u00e9",
            "\\ud83d\\ude00",
        ] {
            for at in 0..20 {
                let text = format!(
                    "{}{special}{}{special}",
                    "a".repeat(at),
                    "b".repeat(19 - at)
                );
                let literal = match special.starts_with("\\u") {
                    // A `\u` escape written as such, not produced by serde_json.
                    true => format!("\"{text}\""),
                    false => serde_json::to_string(&text).unwrap(),
                };
                let raw: &RawValue = serde_json::from_str(&literal).unwrap();
                let expected: String = serde_json::from_str(&literal).unwrap();
                assert_eq!(json_string(raw).unwrap(), expected, "{literal}");
            }
        }
        let escaped = r#""\u00e9\u4E2D\ud83d\ude00\/""#;
        let raw: &RawValue = serde_json::from_str(escaped).unwrap();
        assert_eq!(json_string(raw).unwrap(), "é中😀/");
        for lone in [r#""\ud83d""#, r#""\ude00x""#, r#""\ud83d\u0041""#] {
            let raw: &RawValue = serde_json::from_str(lone).unwrap();
            assert_eq!(unescape(&raw.get()[1..raw.get().len() - 1]), None, "{lone}");
            assert!(json_string(raw).is_err(), "{lone}");
        }
    }
}
