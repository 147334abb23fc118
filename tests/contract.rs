//! The reply contract (docs/events.md): valid replies are passed through exactly, every violation class
//! is a 503 naming the field, and the client connection stays usable after each.

mod support;
use serde_json::json;
use support::*;

/// A function that answers with the raw bytes given in the request body.
fn echo_reply() -> (FakeFunction, Gateway) {
    let f = FakeFunction::start(|rec| {
        let body = rec.json()["detail"]["body"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        Scripted::ok(body)
    });
    let yaml = function_config(
        &f.url(),
        "    max_reply_bytes: 2048\n",
        "      - path: /r\n        function: fn\n",
    );
    let g = Gateway::start(&yaml);
    (f, g)
}

#[test]
fn each_violation_is_503_naming_the_field_and_keeps_the_connection() {
    let (_f, g) = echo_reply();
    let mut c = g.client();
    let big = format!("{{\"statusCode\":200,\"body\":\"{}\"}}", "x".repeat(3000));
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "hello".into(), "not valid JSON"),
        (
            "array",
            "[1,2]".into(),
            "expected a JSON object, got an array",
        ),
        (
            "string",
            "\"download file successfully\"".into(),
            "got the string",
        ),
        (
            "missing statusCode",
            "{\"body\":\"x\"}".into(),
            "/statusCode: missing",
        ),
        (
            "string statusCode",
            "{\"statusCode\":\"200\"}".into(),
            "/statusCode: expected an integer 100..599, got the string \"200\"",
        ),
        (
            "float statusCode",
            "{\"statusCode\":200.5}".into(),
            "/statusCode",
        ),
        (
            "statusCode too low",
            "{\"statusCode\":99}".into(),
            "/statusCode",
        ),
        (
            "statusCode too high",
            "{\"statusCode\":600}".into(),
            "/statusCode",
        ),
        (
            "headers not an object",
            "{\"statusCode\":200,\"headers\":[\"a\"]}".into(),
            "/headers: expected an object",
        ),
        (
            "non-string header value",
            "{\"statusCode\":200,\"headers\":{\"x-n\":5}}".into(),
            "/headers/x-n: expected a string",
        ),
        (
            "CR/LF in a header",
            "{\"statusCode\":200,\"headers\":{\"x-a\":\"v\\r\\nInjected: 1\"}}".into(),
            "/headers/x-a: value contains CR or LF",
        ),
        (
            "invalid header name",
            "{\"statusCode\":200,\"headers\":{\"bad name\":\"v\"}}".into(),
            "/headers/bad name: invalid header name",
        ),
        (
            "body not a string",
            "{\"statusCode\":200,\"body\":{\"a\":1}}".into(),
            "/body: expected a string, got an object",
        ),
        (
            "bad isBase64Encoded",
            "{\"statusCode\":200,\"isBase64Encoded\":\"yes\"}".into(),
            "/isBase64Encoded",
        ),
        (
            "bad base64 body",
            "{\"statusCode\":200,\"isBase64Encoded\":true,\"body\":\"@@\"}".into(),
            "/body",
        ),
        ("oversized reply", big, "larger than 2048 bytes"),
    ];
    for (what, reply, expected) in cases {
        let r = c.request("POST", "/r", &[], reply.as_bytes());
        assert_eq!(r.status, 503, "{what}");
        assert_eq!(
            r.header("x-fngate-error"),
            Some("FUNCTION_RESPONSE_INVALID"),
            "{what}"
        );
        assert!(r.header("x-jdcloud-request-id").is_some());
        let body = r.json();
        assert_eq!(body["error"], "FUNCTION_RESPONSE_INVALID");
        assert_eq!(body["requestId"], r.header("x-jdcloud-request-id").unwrap());
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{what}: {msg:?} should contain {expected:?}"
        );
        assert_ne!(r.header("connection"), Some("close"), "{what}");
    }
    // The same connection still serves a valid reply.
    let ok = c.request("POST", "/r", &[], br#"{"statusCode":201,"body":"fine"}"#);
    assert_eq!((ok.status, ok.text().as_str()), (201, "fine"));
}

#[test]
fn valid_replies_pass_through_with_headers_arrays_and_base64() {
    let (_f, g) = echo_reply();
    let mut c = g.client();
    let reply = json!({
        "statusCode": 202,
        "headers": {"Content-Type": "text/plain", "Set-Cookie": ["a=1", "b=2"], "X-Custom": "v",
                    "Connection": "close", "Transfer-Encoding": "chunked", "Content-Length": "999"},
        "body": "héllo",
        "extra": "ignored"
    });
    let r = c.request("POST", "/r", &[], reply.to_string().as_bytes());
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "héllo");
    assert_eq!(r.header("content-length"), Some("6"));
    assert_eq!(r.header_all("set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(r.header("x-custom"), Some("v"));
    assert!(r.header("transfer-encoding").is_none());
    assert_ne!(
        r.header("connection"),
        Some("close"),
        "hop-by-hop from the function is dropped"
    );

    let r = c.request(
        "POST",
        "/r",
        &[],
        br#"{"statusCode":200,"isBase64Encoded":true,"body":"/wBB"}"#,
    );
    assert_eq!(r.body, vec![0xff, 0x00, 0x41]);
    let r = c.request("POST", "/r", &[], br#"{"statusCode":204,"body":"dropped"}"#);
    assert_eq!(r.status, 204);
    let r = c.request(
        "POST",
        "/r",
        &[],
        br#"{"statusCode":404,"headers":null,"body":null}"#,
    );
    assert_eq!((r.status, r.body.len()), (404, 0));
    let r = c.request("POST", "/r", &[], br#"{"statusCode":200,"body":"x"}"#);
    assert_eq!(r.text(), "x", "connection usable after a 204");
}

#[test]
fn function_error_is_503_function_error() {
    let f = FakeFunction::start(|_| Scripted {
        status: 500,
        ..Scripted::ok(r#"{"errorType":"ValueError"}"#)
    });
    let g = Gateway::start(&function_config(
        &f.url(),
        "",
        "      - path: /r\n        function: fn\n",
    ));
    let mut c = g.client();
    let r = c.get("/r");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-fngate-error"), Some("FUNCTION_ERROR"));
    assert!(r.json()["message"].as_str().unwrap().contains("500"));
    assert_eq!(c.get("/r").status, 503, "connection still usable");
}

#[test]
fn details_can_be_hidden_but_the_code_stays() {
    let f = FakeFunction::replying(json!({"statusCode": "200"}));
    let yaml = format!(
        "errors:\n  expose_details: false\n{}",
        function_config(&f.url(), "", "      - path: /r\n        function: fn\n")
    );
    let g = Gateway::start(&yaml);
    let r = g.client().get("/r");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "FUNCTION_RESPONSE_INVALID");
    assert_eq!(r.json()["message"], "service unavailable");
}
