//! The reply contract (SPEC §2): function output bytes → an HTTP reply, or a violation that names
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

/// The text of a JSON string literal (`raw` is one), borrowed when it has no escapes: serde_json
/// has checked the literal, so without a backslash its text is the string itself.
fn json_string(raw: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.get();
    match text.get(1..text.len().saturating_sub(1)) {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(text).map(Cow::Owned),
    }
}

/// RFC 9110 `token`: what a header name may be made of.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
            let text =
                json_string(b).map_err(|e| violation("/body", format!("invalid string ({e})")))?;
            match (base64, text) {
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
            }
        }
        _ => Cow::Borrowed(&[][..]),
    };
    Ok(Reply {
        status,
        headers,
        body,
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
        // SPEC §2 allows 100..599, but a 1xx cannot be a final response: the client would wait
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

/// Escapes `~` and `/` in a JSON pointer segment (RFC 6901).
fn pointer_segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

type Headers<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn headers(raw: &RawValue) -> Result<Headers<'_>, Violation> {
    if !raw.get().starts_with('{') {
        return Err(violation(
            "/headers",
            format!("expected an object, got {}", describe(raw)),
        ));
    }
    let map = serde_json::from_str::<OrderedMap>(raw.get())
        .map(|m| m.0)
        .map_err(|e| violation("/headers", format!("invalid object ({e})")))?;
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        // Built only for a message: most replies have nothing wrong.
        let pointer = || format!("/headers/{}", pointer_segment(&name));
        if !is_token(&name) {
            return Err(violation(pointer(), "invalid header name"));
        }
        if is_hop_by_hop(&name) || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let values: Vec<Cow<str>> = match value.get().as_bytes().first() {
            Some(b'"') => vec![json_string(value)
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
                return Err(violation(
                    pointer(),
                    format!(
                        "expected a string or an array of strings, got {}",
                        describe(value)
                    ),
                ))
            }
        };
        for v in values {
            if v.contains(['\r', '\n']) {
                return Err(violation(
                    pointer(),
                    "value contains CR or LF (header injection)",
                ));
            }
            if !is_field_value(&v) {
                return Err(violation(
                    pointer(),
                    "value has characters not allowed in a header",
                ));
            }
            out.push((name.clone(), v));
        }
    }
    Ok(out)
}

/// A JSON object as ordered (key, raw value) pairs; keeps duplicates and order. Keys borrow from
/// the input unless they had escapes.
struct OrderedMap<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An object key, borrowed when serde_json can lend it.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for OrderedMap<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = OrderedMap<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k.0, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}
