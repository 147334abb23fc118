//! `auth: jdcloud` against the real client: JD Cloud's official Python SDK (installed from PyPI
//! into a virtualenv this test makes) signs requests with its own signer — a GET with a query, a
//! POST with a JSON body, a non-ASCII path — that fngate admits and passes on with the identity;
//! tampered copies (body, path, a signed header, an old date, a replayed request or nonce, an
//! unknown key, a wrong secret, no signature) are each refused with a code naming why.

mod support;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use support::*;

const ACCESS_KEY: &str = "JDC_TEST_ACCESS_KEY";
const SECRET_KEY: &str = "test-secret-0123456789abcdef";

fn sdk_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let packages = ["jdcloud-sdk", "requests"];
            venv(
                "jdcloud-sdk-venv",
                &packages,
                "import jdcloud_sdk.core.signer, requests",
            )
        })
        .clone()
}

/// Runs `tests/clients/jd_signed.py` against `g`: each case's status, error code and event.
fn sdk_client(g: &Gateway) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/jd_signed.py");
    let out = succeeded(std::process::Command::new(sdk_python()).arg(script).args([
        &format!("http://{}", g.addr),
        ACCESS_KEY,
        SECRET_KEY,
        "cn-north-1",
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_sdk_s_signed_requests_pass_and_tampered_ones_do_not() {
    // The function answers with the event it got, so the client can see what passed.
    let f = FakeFunction::start(|r| {
        Scripted::json(json!({"statusCode": 200, "body": r.json().to_string()}))
    });
    let g = Gateway::start(&format!(
        "gateway:\n  region: cn-north-1\nauth:\n  jdcloud:\n    credentials:\n      - {{access_key: {ACCESS_KEY}, secret_key: {SECRET_KEY}, user: alice, account_id: \"222\"}}\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: signed\n    auth: jdcloud\n    routes:\n      - path: /sig/users/{{id}}\n        function: fn\n",
        f.url()
    ));
    let results = sdk_client(&g);
    let case = |name: &str| {
        (
            results[name]["status"].as_u64().unwrap_or(0),
            results[name]["error"].as_str().unwrap_or("-").to_owned(),
        )
    };

    for name in ["get", "post", "non_ascii_path"] {
        assert_eq!(case(name), (200, "-".into()), "{name}: {}", results[name]);
    }
    // The gateway answers with the function's body: the event it received.
    let detail = &results["get"]["event"]["detail"];
    assert_eq!(
        detail["requestContext"]["identity"],
        json!({"accountId": "222", "apiKey": ACCESS_KEY, "user": "alice", "authType": "jdcloud"})
    );
    assert_eq!(detail["queryParameters"]["tag"], json!(["b", "a"]));
    let post = &results["post"]["event"]["detail"];
    assert_eq!(post["body"], "{\"name\": \"世界\", \"n\": 1}");
    let path = &results["non_ascii_path"]["event"]["detail"];
    assert_eq!(path["pathParameters"]["id"], "世界");

    let refused = [
        ("replayed", 403, "SIGNATURE_REPLAYED"),
        ("nonce_reused", 403, "SIGNATURE_REPLAYED"),
        ("body_tampered", 403, "SIGNATURE_MISMATCH"),
        ("path_tampered", 403, "SIGNATURE_MISMATCH"),
        ("header_tampered", 403, "SIGNATURE_MISMATCH"),
        ("old_date", 403, "SIGNATURE_EXPIRED"),
        ("unknown_key", 403, "UNKNOWN_ACCESS_KEY"),
        ("wrong_secret", 403, "SIGNATURE_MISMATCH"),
        ("unsigned", 401, "UNAUTHORIZED"),
    ];
    for (name, status, code) in refused {
        assert_eq!(
            case(name),
            (status, code.to_owned()),
            "{name}: {}",
            results[name]
        );
    }
    assert_eq!(
        f.events().len(),
        3,
        "only the three good requests reached the function"
    );
}

/// A signed route and a per-key limit of one request an hour.
fn signed_gateway(f: &FakeFunction) -> Gateway {
    Gateway::start(&format!(
        "gateway:\n  region: cn-north-1\nauth:\n  jdcloud:\n    credentials:\n      - {{access_key: {ACCESS_KEY}, secret_key: {SECRET_KEY}}}\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: signed\n    auth: jdcloud\n    routes:\n      - path: /sig/users/{{id}}\n        function: fn\n        max_body_bytes: 2000000000\n        rate_limit: {{requests: 1, per: 1h, key: api_key}}\n",
        f.url()
    ))
}

#[test]
fn an_unsigned_gigabyte_is_refused_unread_and_a_claimed_key_spends_no_bucket() {
    let f = FakeFunction::replying(json!({"statusCode": 200}));
    let g = signed_gateway(&f);
    let mut c = g.client();
    c.send_raw(b"POST /sig/users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\nfirst");
    let r = c.read_response(false);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (401, Some("UNAUTHORIZED"))
    );
    assert_eq!(r.header("www-authenticate"), Some("JDCLOUD3-HMAC-SHA256"));
    assert!(c.is_closed(), "the body is not waited for");

    // Someone claiming the key with a made-up signature, many times: refused, and the owner's
    // one request an hour is still there.
    let now = std::time::SystemTime::now();
    let stamp = jd_date(now);
    let forged = format!(
        "JDCLOUD3-HMAC-SHA256 Credential={ACCESS_KEY}/{}/cn-north-1/apigateway/jdcloud3_request, SignedHeaders=host, Signature={}",
        &stamp[..8],
        "0".repeat(64)
    );
    for i in 0..3 {
        let nonce = format!("forged-{i}");
        let r = g.client().request(
            "GET",
            "/sig/users/1",
            &[
                ("Authorization", &forged),
                ("x-jdcloud-date", &stamp),
                ("x-jdcloud-nonce", &nonce),
            ],
            b"",
        );
        assert_eq!(
            r.header("x-fngate-error"),
            Some("SIGNATURE_MISMATCH"),
            "{}",
            r.text()
        );
        assert_eq!(
            r.header("ratelimit-remaining"),
            None,
            "no bucket was touched"
        );
    }
    let results = sdk_client(&g);
    assert_eq!(results["get"]["status"], 200, "{}", results["get"]);
    // The per-key limit then counts: the next good request is over it.
    assert_eq!(results["post"]["status"], 429, "{}", results["post"]);
    assert!(f.events().len() == 1);
}

/// `yyyymmddThhmmssZ` for `t`, as the SDK writes `x-jdcloud-date`.
fn jd_date(t: std::time::SystemTime) -> String {
    let mut rfc3339 = Vec::new();
    fngate::text::push_rfc3339_millis(&mut rfc3339, t);
    // 2026-12-04T20:05:26.123Z
    let text = String::from_utf8(rfc3339).unwrap();
    format!("{}Z", text[..19].replace(['-', ':'], ""))
}
