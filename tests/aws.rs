//! `format: aws-v1` and `aws-v2` (docs/events.md#aws-api-gateway-events): published AWS events
//! (tests/fixtures/apigw, from aws-lambda-go) as golden examples — the request each describes
//! goes through fngate and the event fngate writes must agree with the published one, field by
//! field — and AWS's reply contracts, with `contract_errors: platform` answering as AWS does.

mod support;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::*;

fn fixture_json(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/apigw/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A gateway with one API in `format`, whose routes all go to `f`.
fn gateway(f: &FakeFunction, format: &str, api: &str, stage: &str, routes: &str) -> Gateway {
    Gateway::start(&format!(
        "gateway:\n  region: us-east-1\n  account_id: \"123456789012\"\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: {api}\n    stage: \"{stage}\"\n    format: {format}\n    routes:\n{routes}",
        f.url()
    ))
}

/// Sends a request with exactly these header lines (Host among them) and returns the event the
/// function received.
fn event_of(
    g: &Gateway,
    f: &FakeFunction,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Value {
    let r = g.client().request_lines(method, target, headers, body);
    assert_eq!(r.status, 200, "{}", r.text());
    f.last_event().json()
}

fn at<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn without(set: BTreeSet<String>, gone: &[&str]) -> BTreeSet<String> {
    set.into_iter()
        .filter(|k| !gone.contains(&k.as_str()))
        .collect()
}

const OK: &str = r#"{"statusCode": 200, "body": "ok"}"#;

#[test]
fn the_published_payload_2_0_event_is_what_fngate_writes_for_its_request() {
    let published = fixture_json("aws-apigw-v2-request-jwt-authorizer.json");
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = gateway(
        &f,
        "aws-v2",
        "api-id",
        "$default",
        "      - path: /my/{*proxy}\n        function: fn\n",
    );
    let body = at(&published, "/body").as_str().unwrap();
    let ours = event_of(
        &g,
        &f,
        "GET",
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        &[
            ("Host", "id.execute-api.us-east-1.amazonaws.com"),
            ("Header1", "value1"),
            ("Header2", "value2"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "agent"),
        ],
        body.as_bytes(),
    );
    for pointer in [
        "/version",
        "/rawPath",
        "/rawQueryString",
        "/cookies",
        "/queryStringParameters",
        "/body",
        "/isBase64Encoded",
        "/requestContext/accountId",
        "/requestContext/apiId",
        "/requestContext/stage",
        "/requestContext/domainName",
        "/requestContext/domainPrefix",
        "/requestContext/http/method",
        "/requestContext/http/path",
        "/requestContext/http/protocol",
        "/requestContext/http/userAgent",
    ] {
        assert_eq!(
            at(&ours, pointer),
            at(&published, pointer),
            "{pointer}\n{ours:#}"
        );
    }
    // Header names are lower-case in HTTP API events (the example's capitals are its own).
    for (name, value) in published["headers"].as_object().unwrap() {
        assert_eq!(&ours["headers"][name.to_lowercase()], value, "{name}");
    }
    // The same keys, but for what fngate has no counterpart of: stage variables, a JWT
    // authorizer, mutual TLS.
    assert_eq!(keys(&ours), without(keys(&published), &["stageVariables"]));
    assert_eq!(
        keys(&ours["requestContext"]),
        without(
            keys(&published["requestContext"]),
            &["authorizer", "authentication"]
        )
    );
    assert_eq!(
        keys(&ours["requestContext"]["http"]),
        keys(&published["requestContext"]["http"])
    );
    // The route key names the matched route (fngate has no `$default` route); the parameters
    // are the path's (the example's `hello/world` does not match its own rawPath).
    assert_eq!(ours["routeKey"], "ANY /my/{proxy+}");
    assert_eq!(ours["requestContext"]["routeKey"], "ANY /my/{proxy+}");
    assert_eq!(ours["pathParameters"], json!({"proxy": "path"}));
    // Generated per request, in AWS's forms.
    let time = ours["requestContext"]["time"].as_str().unwrap();
    assert!(
        time.len() == 26 && time.ends_with(" +0000") && time.as_bytes()[2] == b'/',
        "{time}"
    );
    assert!(ours["requestContext"]["timeEpoch"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        Some(ours["requestContext"]["requestId"].as_str().unwrap()),
        f.last_event().header("x-jdcloud-request-id")
    );
}

#[test]
fn a_payload_2_0_event_leaves_out_what_the_request_does_not_have() {
    let published = fixture_json("aws-apigw-v2-request-no-authorizer.json");
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = gateway(
        &f,
        "aws-v2",
        "aaaaaaaaaa",
        "$default",
        "      - path: /\n        methods: [GET]\n        function: fn\n",
    );
    let ours = event_of(
        &g,
        &f,
        "GET",
        "/",
        &[
            ("Host", "aaaaaaaaaa.execute-api.us-west-2.amazonaws.com"),
            ("User-Agent", "curl/7.58.0"),
            ("Accept", "*/*"),
        ],
        b"",
    );
    assert_eq!(keys(&ours), keys(&published), "{ours:#}");
    for pointer in [
        "/rawPath",
        "/rawQueryString",
        "/isBase64Encoded",
        "/requestContext/domainPrefix",
        "/requestContext/http/userAgent",
    ] {
        assert_eq!(at(&ours, pointer), at(&published, pointer), "{pointer}");
    }
    assert_eq!(ours["routeKey"], "GET /");
    assert_eq!(ours["headers"]["accept"], "*/*");
    // One hop more than AWS's example: fngate appends the peer it saw.
    assert_eq!(ours["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(ours["requestContext"]["http"]["sourceIp"], "127.0.0.1");
}

#[test]
fn the_published_payload_1_0_event_is_what_fngate_writes_for_its_request() {
    let published = fixture_json("aws-apigw-request.json");
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = gateway(
        &f,
        "aws-v1",
        "gy415nuibc",
        "testStage",
        "      - path: /{*proxy}\n        methods: [POST]\n        function: fn\n",
    );
    let sent: Vec<(String, String)> = published["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let body = at(&published, "/body").as_str().unwrap();
    let ours = event_of(
        &g,
        &f,
        "POST",
        "/hello/world?name=me",
        &headers,
        body.as_bytes(),
    );
    for pointer in [
        "/resource",
        "/path",
        "/httpMethod",
        "/queryStringParameters",
        "/multiValueQueryStringParameters",
        "/pathParameters",
        "/body",
        "/requestContext/resourcePath",
        "/requestContext/httpMethod",
        "/requestContext/stage",
        "/requestContext/apiId",
        "/requestContext/identity/userAgent",
    ] {
        assert_eq!(
            at(&ours, pointer),
            at(&published, pointer),
            "{pointer}\n{ours:#}"
        );
    }
    // Every header as sent, names as spelled, but X-Forwarded-For: fngate is one hop more.
    for (name, value) in published["headers"].as_object().unwrap() {
        if name != "X-Forwarded-For" {
            assert_eq!(&ours["headers"][name], value, "{name}");
            assert_eq!(ours["multiValueHeaders"][name], json!([value]), "{name}");
        }
    }
    assert_eq!(
        ours["headers"]["X-Forwarded-For"],
        "54.240.196.186, 54.182.214.83, 127.0.0.1"
    );
    assert_eq!(
        keys(&ours),
        keys(&published).into_iter().chain(["version".into(), "isBase64Encoded".into()]).collect(),
        "the published REST event has no version (HTTP APIs' 1.0 events do) and leaves isBase64Encoded out"
    );
    assert_eq!(ours["isBase64Encoded"], false);
    // Absent without an authorizer; present in the example, which had one.
    assert_eq!(
        without(keys(&ours["requestContext"]), &[]),
        without(keys(&published["requestContext"]), &["authorizer"])
            .into_iter()
            .chain(["extendedRequestId".into(), "path".into(), "protocol".into()])
            .collect()
    );
    // All of the example's identity but the mutual-TLS client certificate.
    let missing: Vec<String> = without(
        keys(&published["requestContext"]["identity"]),
        &["clientCert"],
    )
    .difference(&keys(&ours["requestContext"]["identity"]))
    .cloned()
    .collect();
    assert!(missing.is_empty(), "identity lacks {missing:?}");
    assert_eq!(ours["stageVariables"], Value::Null);
}

#[test]
fn payload_1_0_repeats_keep_every_value_in_the_multi_value_forms() {
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = gateway(
        &f,
        "aws-v1",
        "a",
        "prod",
        "      - path: /items/{id}\n        function: fn\n",
    );
    let ours = event_of(
        &g,
        &f,
        "GET",
        "/items/a%20b?tag=x&tag=y%20z&one=1",
        &[("Host", "h"), ("X-Tag", "1"), ("x-tag", "2")],
        b"",
    );
    assert_eq!(ours["pathParameters"], json!({"id": "a b"}));
    assert_eq!(
        ours["queryStringParameters"],
        json!({"tag": "y z", "one": "1"})
    );
    assert_eq!(
        ours["multiValueQueryStringParameters"],
        json!({"tag": ["x", "y z"], "one": ["1"]})
    );
    assert_eq!(ours["headers"]["X-Tag"], "2", "the last value");
    assert_eq!(ours["multiValueHeaders"]["X-Tag"], json!(["1", "2"]));
    assert_eq!(ours["body"], Value::Null);
    assert_eq!(ours["resource"], "/items/{id}");
    assert_eq!(ours["requestContext"]["identity"]["apiKey"], Value::Null);
}

#[test]
fn binary_bodies_are_base64_with_is_base64_encoded() {
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    for format in ["aws-v1", "aws-v2"] {
        let g = gateway(
            &f,
            format,
            "a",
            "prod",
            "      - path: /up\n        function: fn\n",
        );
        let ours = event_of(&g, &f, "POST", "/up", &[("Host", "h")], &[0xff, 0x00, 0x41]);
        assert_eq!(
            (&ours["body"], &ours["isBase64Encoded"]),
            (&json!("/wBB"), &json!(true)),
            "{format}"
        );
    }
}

/// The function's reply as the client gets it: (status, headers, body).
fn answer(format: &str, extra: &str, reply: &str) -> Response {
    let reply = reply.to_owned();
    let f = FakeFunction::start(move |_| Scripted::ok(reply.clone()));
    let g = Gateway::start(&format!(
        "functions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: a\n    format: {format}\n{extra}    routes:\n      - path: /r\n        function: fn\n",
        f.url()
    ));
    g.client().get("/r")
}

#[test]
fn the_published_replies_are_answered_as_aws_answers_them() {
    let v1 = std::fs::read_to_string(format!(
        "{}/tests/fixtures/apigw/aws-apigw-response.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let r = answer("aws-v1", "", &v1);
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World"));
    // A name in both headers and multiValueHeaders: the multi-value list's values, once.
    assert_eq!(r.header_all("accept-language"), ["en-US,en;q=0.8"]);
    assert_eq!(r.header_all("x-forwarded-port"), ["443"]);

    let v2 = std::fs::read_to_string(format!(
        "{}/tests/fixtures/apigw/aws-lambda-urls-response.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let r = answer("aws-v2", "", &v2);
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), json!({"message": "Hello, world!"}));
    assert_eq!(r.header("my-custom-header"), Some("Custom Value"));
    assert_eq!(
        r.header_all("set-cookie"),
        [
            "Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT",
            "Cookie_2=Value2; Max-Age=78000"
        ]
    );
}

#[test]
fn a_payload_2_0_reply_without_status_code_is_a_json_body() {
    for reply in [
        r#"{"message": "hi", "n": [1, 2]}"#,
        r#""just a string""#,
        "[1,2,3]",
    ] {
        let r = answer("aws-v2", "", reply);
        assert_eq!(r.status, 200, "{reply}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.text(), reply);
    }
    // Payload 1.0 makes no such assumption: no statusCode is a broken reply.
    let r = answer("aws-v1", "", r#"{"message": "hi"}"#);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("FUNCTION_RESPONSE_INVALID"))
    );
    assert!(r.text().contains("/statusCode"), "{}", r.text());
}

#[test]
fn broken_replies_get_fngate_s_503_or_as_the_platform_answers_502() {
    for (format, reply, pointer) in [
        (
            "aws-v2",
            r#"{"statusCode": 200, "cookies": "a=1"}"#,
            "/cookies",
        ),
        (
            "aws-v2",
            r#"{"statusCode": 200, "cookies": ["a=1", 7]}"#,
            "/cookies/1",
        ),
        (
            "aws-v1",
            r#"{"statusCode": 200, "multiValueHeaders": {"X-A": "1"}}"#,
            "/multiValueHeaders/X-A",
        ),
        ("aws-v1", "not json", ""),
        ("aws-v2", "not json", ""),
    ] {
        let r = answer(format, "", reply);
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (503, Some("FUNCTION_RESPONSE_INVALID")),
            "{format} {reply}"
        );
        assert!(r.text().contains(pointer), "{format} {reply}: {}", r.text());
        let r = answer(format, "    contract_errors: platform\n", reply);
        assert_eq!(r.status, 502, "{format} {reply}");
        assert_eq!(r.json(), json!({"message": "Internal server error"}));
    }
}

/// Mangum (from PyPI, in a test venv) in front of an ASGI app: AWS users' code, unchanged.
fn mangum_python() -> std::path::PathBuf {
    static PYTHON: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| venv("mangum-venv", &["mangum"], "import mangum"))
        .clone()
}

#[test]
fn an_asgi_app_behind_mangum_is_served_through_both_aws_formats() {
    let python = mangum_python();
    for format in ["aws-v2", "aws-v1"] {
        let g = Gateway::start(&format!(
            "functions:\n  app:\n    command: [\"{}\", \"runtime/python/fngate_runtime.py\", \"--code\", \"tests/functions/aws_asgi\", \"--handler\", \"index.handler\"]\napis:\n  - id: shop\n    stage: prod\n    format: {format}\n    routes:\n      - path: /asgi/{{*rest}}\n        function: app\n",
            python.display()
        ));
        let mut c = g.client();
        let r = c.request(
            "POST",
            "/asgi/items/7%20b?x=1&y=two%20words",
            &[
                ("X-Custom", "yes"),
                ("Content-Type", "text/plain"),
                ("Cookie", "s=1; t=2"),
            ],
            "caf\u{e9} au lait".as_bytes(),
        );
        assert_eq!(r.status, 201, "{format}: {}", r.text());
        assert_eq!(r.header("x-app"), Some("asgi"), "{format}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{format}"
        );
        assert_eq!(
            r.header_all("set-cookie"),
            ["a=1; Path=/", "b=2"],
            "{format}"
        );
        let seen = r.json();
        assert_eq!(seen["method"], "POST", "{format}");
        assert_eq!(seen["path"], "/asgi/items/7 b", "{format}");
        assert_eq!(seen["body"], "caf\u{e9} au lait", "{format}");
        assert_eq!(seen["headers"]["x-custom"], "yes", "{format}");
        assert_eq!(seen["headers"]["cookie"], "s=1; t=2", "{format}: {seen}");
        assert_eq!(seen["client"][0], "127.0.0.1", "{format}");
        let query = seen["query"].as_str().unwrap();
        assert!(
            query == "x=1&y=two%20words" || query == "x=1&y=two+words",
            "{format}: {query}"
        );
    }
}
