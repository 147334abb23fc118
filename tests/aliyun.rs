//! `format: aliyun` (docs/events.md#alibaba-cloud-function-compute-events): the documented event
//! shape, and a handler written for Alibaba Cloud Function Compute — the event as bytes
//! (the runtime's `--raw-event`), base64 bodies, its reply shape — served unchanged.

mod support;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::*;

fn gateway(function: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "functions:\n  fn:\n    {function}\napis:\n  - id: shop\n    format: aliyun\n{extra}    routes:\n      - path: /fc/{{name}}/{{*rest}}\n        function: fn\n"
    ))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_event_has_the_documented_keys_and_types() {
    let path = format!(
        "{}/tests/fixtures/apigw/aliyun-fc-apigw-event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let documented: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let f = FakeFunction::start(|_| Scripted::ok(r#"{"statusCode": 200, "body": "ok"}"#));
    let g = gateway(&format!("endpoints: [\"{}\"]", f.url()), "");
    let r = g.client().request(
        "POST",
        "/fc/a%20b/x/y?tag=1&tag=2&q=caf%C3%A9",
        &[
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("Content-Type", "text/plain"),
        ],
        b"hello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ours = f.last_event().json();
    assert_eq!(keys(&ours), keys(&documented), "{ours:#}");
    for (key, value) in documented.as_object().unwrap() {
        let same_type = std::mem::discriminant(value) == std::mem::discriminant(&ours[key]);
        assert!(same_type, "{key}: {} vs {}", ours[key], value);
    }
    assert_eq!(ours["path"], "/fc/a%20b/x/y");
    assert_eq!(ours["httpMethod"], "POST");
    assert_eq!(
        ours["pathParameters"],
        json!({"name": "a b", "rest": "x/y"})
    );
    assert_eq!(ours["queryParameters"], json!({"tag": "2", "q": "café"}));
    assert_eq!(ours["headers"]["X-Custom"], "one, two");
    assert_eq!(ours["headers"]["Content-Type"], "text/plain");
    assert_eq!(
        (&ours["body"], &ours["isBase64Encoded"]),
        (&json!("hello"), &json!(false))
    );
}

#[test]
fn a_handler_written_for_function_compute_is_served_unchanged() {
    let g = gateway(
        "command: [\"python3\", \"runtime/python/fngate_runtime.py\", \"--code\", \"tests/functions/aliyun_fc\", \"--handler\", \"index.handler\", \"--raw-event\"]",
        "",
    );
    let mut c = g.client();
    for (body, binary) in [(&b"caf\xc3\xa9"[..], false), (&b"\xffbin"[..], true)] {
        let r = c.request("PUT", "/fc/n1/deep/path?x=1", &[("X-Custom", "yes")], body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-fc"), Some("yes"));
        let seen = r.json();
        assert_eq!(seen["event_type"], "bytes", "the event arrives as bytes");
        assert_eq!(seen["method"], "PUT");
        assert_eq!(seen["params"], json!({"name": "n1", "rest": "deep/path"}));
        assert_eq!(seen["query"], json!({"x": "1"}));
        assert_eq!(seen["custom"], "yes");
        assert!(seen["request_id"].as_str().is_some_and(|id| id.len() == 36));
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            (&seen["body_hex"], &seen["base64"]),
            (&json!(hex), &json!(binary))
        );
    }
}

#[test]
fn a_broken_reply_is_fngate_s_503_or_the_platform_s_bare_503() {
    let f = FakeFunction::start(|_| Scripted::ok(r#"{"statusCode": "200"}"#));
    let url = format!("endpoints: [\"{}\"]", f.url());
    let r = gateway(&url, "").client().get("/fc/a/b");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("FUNCTION_RESPONSE_INVALID"))
    );
    assert!(r.text().contains("/statusCode"), "{}", r.text());
    let r = gateway(&url, "    contract_errors: platform\n")
        .client()
        .get("/fc/a/b");
    assert_eq!((r.status, r.text().as_str()), (503, ""));
}
