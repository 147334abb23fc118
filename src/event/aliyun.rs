//! Request → Alibaba Cloud Function Compute's API-gateway trigger event (`format: aliyun`,
//! docs/events.md#alibaba-cloud-function-compute-events): `path`, `httpMethod`, `headers`,
//! `queryParameters`, `pathParameters`, `body`, `isBase64Encoded` — the shape JD Cloud modelled
//! its own on, without the envelope and the request context.

use super::apigw::{ApiRequest, EventError};
use super::aws::{push_object, raw, Parts};
use super::json::{push_key, push_str};

pub fn build(req: &ApiRequest) -> Result<Vec<u8>, EventError> {
    let Parts {
        groups,
        query,
        params,
        body,
        base64,
    } = Parts::of(req)?;
    let mut out = Vec::with_capacity(400 + req.body.len() * 4 / 3 + req.query.len() * 2);
    raw(&mut out, r#"{"path":"#);
    push_str(&mut out, req.path);
    raw(&mut out, r#","httpMethod":"#);
    push_str(&mut out, req.method);
    // Names as the client spelled them; a repeated header's values joined with ", ".
    raw(&mut out, r#","headers":{"#);
    let mut first = true;
    for (name, values) in &groups {
        push_key(&mut out, &mut first, name);
        match values.as_slice() {
            [one] => push_str(&mut out, one),
            many => push_str(&mut out, &many.join(", ")),
        }
    }
    // One value per key (a map of strings): a repeated key's last.
    raw(&mut out, r#"},"queryParameters":"#);
    let last = (query.iter()).map(|(k, v)| (k.as_ref(), v.last().map_or("", |v| v.as_ref())));
    push_object(&mut out, last, false);
    raw(&mut out, r#","pathParameters":"#);
    push_object(
        &mut out,
        params.iter().map(|(k, v)| (*k, v.as_ref())),
        false,
    );
    raw(&mut out, r#","body":"#);
    push_str(&mut out, &body);
    raw(&mut out, r#","isBase64Encoded":"#);
    raw(&mut out, if base64 { "true" } else { "false" });
    out.push(b'}');
    Ok(out)
}
