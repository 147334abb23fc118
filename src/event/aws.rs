//! Request → AWS API Gateway Lambda-proxy events (docs/events.md#aws-api-gateway-events):
//! `aws-v1` (payload format 1.0, the REST API's proxy event) and `aws-v2` (payload format 2.0,
//! the HTTP API's). Written straight into bytes like the JD event; the request parts are the
//! same `ApiRequest`.

use super::apigw::{ApiRequest, EventError, HopByHop};
use super::decode::{decode_component, parse_query, QueryParams};
use super::json::{push_key, push_key_lower, push_str};
use base64::Engine;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::time::SystemTime;

/// What the AWS and Alibaba Cloud events are written from: headers grouped, the query parsed,
/// path parameters decoded, the body as text or base64.
pub(super) struct Parts<'a> {
    pub groups: Groups<'a>,
    pub query: QueryParams<'a>,
    pub params: Vec<(&'a str, Cow<'a, str>)>,
    pub body: Cow<'a, str>,
    pub base64: bool,
}

impl<'a> Parts<'a> {
    pub fn of(req: &ApiRequest<'a>) -> Result<Parts<'a>, EventError> {
        let (body, base64) = body_of(req);
        Ok(Parts {
            groups: grouped(req)?,
            query: parse_query(req.query).map_err(bad_query)?,
            params: decoded_params(req)?,
            body,
            base64,
        })
    }
}

/// Header lines grouped by name (compared without case; kept as first spelled), in order of
/// first appearance.
pub(super) type Groups<'a> = Vec<(&'a str, SmallVec<[&'a str; 1]>)>;

/// The request's headers grouped; hop-by-hop headers and those the `Connection` header names are
/// left out, as a proxy drops them.
fn grouped<'a>(req: &ApiRequest<'a>) -> Result<Groups<'a>, EventError> {
    let hop = HopByHop::of(req.headers.iter().copied());
    let mut groups: Groups<'a> = Vec::with_capacity(req.headers.len() + 1);
    // The client's spelling of X-Forwarded-For, if it sent one.
    let mut forwarded = "x-forwarded-for";
    for &(name, value) in req.headers {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded = name;
            continue;
        }
        if hop.contains(name) {
            continue;
        }
        let value = crate::text::utf8(value).map_err(|_| {
            let name = name.to_ascii_lowercase();
            EventError::BadRequest(format!("header {name:?} is not valid UTF-8"))
        })?;
        match groups
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, values)) => values.push(value),
            None => groups.push((name, smallvec::smallvec![value])),
        }
    }
    // What the client's proxies said, with this hop's peer appended, as AWS's own front does.
    if !req.forwarded_for.is_empty() {
        groups.push((forwarded, smallvec::smallvec![req.forwarded_for]));
    }
    Ok(groups)
}

fn header<'a>(groups: &Groups<'a>, name: &str) -> &'a str {
    groups
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().copied())
        .unwrap_or("")
}

/// The body as the function gets it: text when it is UTF-8 (and the route is not
/// `binary: base64`), else base64 with `isBase64Encoded: true`, as AWS does for binary media.
fn body_of<'a>(req: &ApiRequest<'a>) -> (Cow<'a, str>, bool) {
    match (req.binary, simdutf8::basic::from_utf8(req.body)) {
        (false, Ok(text)) => (Cow::Borrowed(text), false),
        _ => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(req.body)),
            true,
        ),
    }
}

/// The route in AWS's syntax: `{*rest}` is `{rest+}`.
fn resource(pattern: &str) -> Cow<'_, str> {
    match pattern.find("{*") {
        Some(at) => {
            let name = pattern[at + 2..].trim_end_matches('}');
            Cow::Owned(format!("{}{{{name}+}}", &pattern[..at]))
        }
        None => Cow::Borrowed(pattern),
    }
}

/// `GET /users/{id}`, or `ANY /path` for a route that takes every method.
fn route_key(req: &ApiRequest) -> String {
    let method = if req.any_method { "ANY" } else { req.method };
    format!("{method} {}", resource(req.route_path))
}

/// `12/Mar/2020:19:03:58 +0000`, the request time of AWS's request contexts: rearranged from
/// the RFC 3339 form in place.
fn push_clf_time(out: &mut Vec<u8>, time: SystemTime) {
    const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let mut iso = Vec::with_capacity(24);
    crate::text::push_rfc3339_millis(&mut iso, time);
    // 2026-12-05T10:00:00.000Z → "05/Dec/2026:10:00:00 +0000"
    let digit = |i: usize| usize::from(iso[i].wrapping_sub(b'0')).min(9);
    let month = (digit(5) * 10 + digit(6)).clamp(1, 12) - 1;
    out.push(b'"');
    out.extend_from_slice(&iso[8..10]);
    out.push(b'/');
    out.extend_from_slice(&MONTHS[month * 3..month * 3 + 3]);
    out.push(b'/');
    out.extend_from_slice(&iso[0..4]);
    out.push(b':');
    out.extend_from_slice(&iso[11..19]);
    out.extend_from_slice(b" +0000\"");
}

pub(super) fn raw(out: &mut Vec<u8>, fragment: &str) {
    out.extend_from_slice(fragment.as_bytes());
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn bad_query(e: String) -> EventError {
    EventError::BadRequest(format!("query string: {e}"))
}

fn decoded_params<'a>(req: &ApiRequest<'a>) -> Result<Vec<(&'a str, Cow<'a, str>)>, EventError> {
    (req.path_params.iter())
        .map(|&(name, raw)| {
            decode_component(raw, false)
                .map(|v| (name, v))
                .map_err(|e| EventError::BadRequest(format!("path parameter {name:?}: {e}")))
        })
        .collect()
}

/// `{"name": value, ...}` from pairs; `null` when there are none and `null_when_empty`.
pub(super) fn push_object<'v>(
    out: &mut Vec<u8>,
    pairs: impl Iterator<Item = (&'v str, &'v str)>,
    null_when_empty: bool,
) {
    let mut first = true;
    out.push(b'{');
    for (k, v) in pairs {
        push_key(out, &mut first, k);
        push_str(out, v);
    }
    if first && null_when_empty {
        out.pop();
        raw(out, "null");
    } else {
        out.push(b'}');
    }
}

/// The identity fngate's checks admitted, as a Lambda authorizer's context would carry it.
fn push_identity(out: &mut Vec<u8>, id: &crate::checks::Identity) {
    let mut first = true;
    out.push(b'{');
    for (k, v) in [
        ("accountId", id.account_id.as_str()),
        ("apiKey", id.api_key.as_str()),
        ("user", id.user.as_str()),
        ("authType", id.auth_type),
    ] {
        push_key(out, &mut first, k);
        push_str(out, v);
    }
    out.push(b'}');
}

/// Payload format 2.0 (HTTP APIs).
pub fn build_v2(req: &ApiRequest) -> Result<Vec<u8>, EventError> {
    let t = req.template;
    let Parts {
        groups,
        query,
        params,
        body,
        base64,
    } = Parts::of(req)?;
    let route_key = route_key(req);
    let mut out = Vec::with_capacity(900 + req.body.len() * 4 / 3 + req.query.len() * 2);
    raw(&mut out, r#"{"version":"2.0","routeKey":"#);
    push_str(&mut out, &route_key);
    raw(&mut out, r#","rawPath":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","rawQueryString":"#);
    push_str(&mut out, req.query);
    // Cookies leave the headers for their own list, one entry per cookie.
    let cookies: Vec<&str> = (groups.iter())
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.iter().flat_map(|line| line.split(';')))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if !cookies.is_empty() {
        raw(&mut out, r#","cookies":"#);
        push_list(&mut out, cookies.into_iter());
    }
    // Repeated headers and query keys: one value, joined with commas.
    raw(&mut out, r#","headers":{"#);
    let mut first = true;
    for (name, values) in groups
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("cookie"))
    {
        push_key_lower(&mut out, &mut first, name);
        match values.as_slice() {
            [one] => push_str(&mut out, one),
            many => push_str(&mut out, &many.join(",")),
        }
    }
    out.push(b'}');
    if !query.is_empty() {
        raw(&mut out, r#","queryStringParameters":"#);
        let joined: Vec<(&str, String)> = (query.iter())
            .map(|(k, v)| (k.as_ref(), v.join(",")))
            .collect();
        push_object(
            &mut out,
            joined.iter().map(|(k, v)| (*k, v.as_str())),
            false,
        );
    }
    raw(&mut out, r#","requestContext":{"accountId":"#);
    push_str(&mut out, &t.account_id);
    raw(&mut out, r#","apiId":"#);
    push_str(&mut out, &t.api_id);
    if let Some(id) = req.identity {
        raw(&mut out, r#","authorizer":{"lambda":"#);
        push_identity(&mut out, id);
        out.push(b'}');
    }
    let host = header(&groups, "host");
    raw(&mut out, r#","domainName":"#);
    push_str(&mut out, host);
    raw(&mut out, r#","domainPrefix":"#);
    push_str(&mut out, host.split('.').next().unwrap_or(""));
    raw(&mut out, r#","http":{"method":"#);
    push_str(&mut out, req.method);
    raw(&mut out, r#","path":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","protocol":"HTTP/1.1","sourceIp":"#);
    push_str(&mut out, req.source_ip);
    raw(&mut out, r#","userAgent":"#);
    push_str(&mut out, header(&groups, "user-agent"));
    raw(&mut out, r#"},"requestId":"#);
    push_str(&mut out, req.request_id);
    raw(&mut out, r#","routeKey":"#);
    push_str(&mut out, &route_key);
    raw(&mut out, r#","stage":"#);
    push_str(&mut out, &t.stage);
    raw(&mut out, r#","time":"#);
    push_clf_time(&mut out, req.time);
    raw(&mut out, r#","timeEpoch":"#);
    push_u64(&mut out, crate::text::unix_ms(req.time));
    out.push(b'}');
    if !params.is_empty() {
        raw(&mut out, r#","pathParameters":"#);
        push_object(
            &mut out,
            params.iter().map(|(k, v)| (*k, v.as_ref())),
            false,
        );
    }
    if !req.body.is_empty() {
        raw(&mut out, r#","body":"#);
        push_str(&mut out, &body);
    }
    raw(&mut out, r#","isBase64Encoded":"#);
    raw(&mut out, if base64 { "true" } else { "false" });
    out.push(b'}');
    Ok(out)
}

/// Payload format 1.0 (the REST API's Lambda-proxy event): header names as sent, the last value
/// of a repeated header or query key in `headers` / `queryStringParameters`, every value in the
/// `multiValue` forms, `null` for what is absent.
pub fn build_v1(req: &ApiRequest) -> Result<Vec<u8>, EventError> {
    let t = req.template;
    let Parts {
        groups,
        query,
        params,
        body,
        base64,
    } = Parts::of(req)?;
    let resource = resource(req.route_path);
    let mut out = Vec::with_capacity(1400 + req.body.len() * 4 / 3 + req.query.len() * 3);
    raw(&mut out, r#"{"version":"1.0","resource":"#);
    push_str(&mut out, &resource);
    raw(&mut out, r#","path":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","httpMethod":"#);
    push_str(&mut out, req.method);
    raw(&mut out, r#","headers":"#);
    let last = groups
        .iter()
        .map(|(n, v)| (*n, v.last().copied().unwrap_or("")));
    push_object(&mut out, last, true);
    raw(&mut out, r#","multiValueHeaders":"#);
    let lists = (groups.iter()).map(|(n, v)| (*n, v.iter().copied()));
    push_lists(&mut out, lists);
    raw(&mut out, r#","queryStringParameters":"#);
    let pairs = (query.iter()).map(|(k, v)| (k.as_ref(), v.last().map_or("", |s| s.as_ref())));
    push_object(&mut out, pairs, true);
    raw(&mut out, r#","multiValueQueryStringParameters":"#);
    let lists = (query.iter()).map(|(k, v)| (k.as_ref(), v.iter().map(|v| v.as_ref())));
    push_lists(&mut out, lists);
    raw(&mut out, r#","requestContext":{"accountId":"#);
    push_str(&mut out, &t.account_id);
    raw(&mut out, r#","apiId":"#);
    push_str(&mut out, &t.api_id);
    if let Some(id) = req.identity {
        raw(&mut out, r#","authorizer":"#);
        push_identity(&mut out, id);
    }
    let host = header(&groups, "host");
    raw(&mut out, r#","domainName":"#);
    push_str(&mut out, host);
    raw(&mut out, r#","domainPrefix":"#);
    push_str(&mut out, host.split('.').next().unwrap_or(""));
    raw(&mut out, r#","extendedRequestId":"#);
    push_str(&mut out, req.request_id);
    raw(&mut out, r#","httpMethod":"#);
    push_str(&mut out, req.method);
    raw(
        &mut out,
        r#","identity":{"accessKey":null,"accountId":null,"apiKey":"#,
    );
    match req.identity.filter(|i| i.auth_type == "apikey") {
        Some(i) => push_str(&mut out, &i.api_key),
        None => raw(&mut out, "null"),
    }
    raw(
        &mut out,
        r#","apiKeyId":null,"caller":null,"cognitoAuthenticationProvider":null,"cognitoAuthenticationType":null,"cognitoIdentityId":null,"cognitoIdentityPoolId":null,"principalOrgId":null,"sourceIp":"#,
    );
    push_str(&mut out, req.source_ip);
    raw(&mut out, r#","user":"#);
    match req.identity {
        Some(i) => push_str(&mut out, &i.user),
        None => raw(&mut out, "null"),
    }
    raw(&mut out, r#","userAgent":"#);
    push_str(&mut out, header(&groups, "user-agent"));
    raw(&mut out, r#","userArn":null},"path":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","protocol":"HTTP/1.1","requestId":"#);
    push_str(&mut out, req.request_id);
    raw(&mut out, r#","requestTime":"#);
    push_clf_time(&mut out, req.time);
    raw(&mut out, r#","requestTimeEpoch":"#);
    push_u64(&mut out, crate::text::unix_ms(req.time));
    raw(&mut out, r#","resourceId":null,"resourcePath":"#);
    push_str(&mut out, &resource);
    raw(&mut out, r#","stage":"#);
    push_str(&mut out, &t.stage);
    raw(&mut out, r#"},"pathParameters":"#);
    push_object(&mut out, params.iter().map(|(k, v)| (*k, v.as_ref())), true);
    raw(&mut out, r#","stageVariables":null,"body":"#);
    match req.body.is_empty() {
        true => raw(&mut out, "null"),
        false => push_str(&mut out, &body),
    }
    raw(&mut out, r#","isBase64Encoded":"#);
    raw(&mut out, if base64 { "true" } else { "false" });
    out.push(b'}');
    Ok(out)
}

/// `{"name": [values], ...}`, or `null` when there are none (the 1.0 `multiValue` forms).
fn push_lists<'v, V: Iterator<Item = &'v str>>(
    out: &mut Vec<u8>,
    lists: impl Iterator<Item = (&'v str, V)>,
) {
    let mut first = true;
    out.push(b'{');
    for (name, values) in lists {
        push_key(out, &mut first, name);
        push_list(out, values);
    }
    if first {
        out.pop();
        raw(out, "null");
    } else {
        out.push(b'}');
    }
}

fn push_list<'v>(out: &mut Vec<u8>, values: impl Iterator<Item = &'v str>) {
    out.push(b'[');
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, v);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_routes_are_written_as_aws_writes_them() {
        assert_eq!(resource("/my/{*proxy}"), "/my/{proxy+}");
        assert_eq!(resource("/users/{id}"), "/users/{id}");
        assert_eq!(resource("/{*rest}"), "/{rest+}");
    }

    #[test]
    fn request_times_are_in_the_access_log_form() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_583_348_638_390);
        let mut out = Vec::new();
        push_clf_time(&mut out, t);
        assert_eq!(out, br#""04/Mar/2020:19:03:58 +0000""#);
        assert_eq!(crate::text::unix_ms(t), 1_583_348_638_390);
    }
}
