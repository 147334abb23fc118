//! Golden tests: every normalisation rule of docs/events.md, checked on the event a real function
//! backend receives through the gateway.

mod support;
use serde_json::{json, Value};
use support::*;

const ROUTES: &str = "      - path: /users/{id}\n        function: fn\n      - path: /files/{*key}\n        function: fn\n      - path: /bin/{*key}\n        function: fn\n        binary: base64\n";

fn setup(extra_gateway: &str) -> (FakeFunction, Gateway) {
    let f = FakeFunction::replying(json!({"statusCode": 200, "body": "ok"}));
    let yaml = function_config(&f.url(), "", ROUTES)
        .replace("gateway:\n", &format!("gateway:\n{extra_gateway}"));
    let g = Gateway::start(&yaml);
    (f, g)
}

fn detail(f: &FakeFunction) -> Value {
    f.last_event().json()["detail"].clone()
}

#[test]
fn full_event_matches_the_spec_envelope() {
    let (f, g) = setup("");
    let resp = g.client().request(
        "GET",
        "/users/42?lang=zh&tag=a&tag=b",
        &[("Accept", "application/json")],
        b"",
    );
    assert_eq!(resp.status, 200);
    let rid = resp.header("x-jdcloud-request-id").unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&rid).is_ok_and(|u| u.get_version_num() == 4),
        "{rid}"
    );
    let rec = f.last_event();
    assert_eq!(rec.header("x-jdcloud-request-id"), Some(rid.as_str()));
    assert_eq!(rec.header("x-fngate-function"), Some("fn"));
    assert_eq!(rec.header("content-type"), Some("application/json"));
    let mut event = rec.json();
    let time = event["time"].as_str().unwrap().to_owned();
    assert!(
        time.ends_with('Z') && time.len() == 24,
        "RFC 3339 with millis: {time}"
    );
    event["time"] = json!("T");
    let expected = json!({
        "version": "0", "id": rid, "time": "T", "source": "apigateway",
        "base64OwnerPin": "NTk0MDM1MjYzMDE5",
        "resources": ["jrn:apigateway:cn-north-1:594035263019:api/testsvc"],
        "region": "cn-north-1", "detailType": "ApiGatewayReceived",
        "detail": {
            "path": "/users/42", "httpMethod": "GET",
            "headers": {"host": "test", "accept": "application/json",
                        "x-jdcloud-request-id": rid, "x-forwarded-for": "127.0.0.1"},
            "pathParameters": {"id": "42"},
            "queryParameters": {"lang": "zh", "tag": ["a", "b"]},
            "queryString": "lang=zh&tag=a&tag=b",
            "body": "",
            "requestContext": {"stage": "test", "apiId": "testsvc",
                "identity": {"accountId": "", "apiKey": "", "user": "", "authType": "none"},
                "requestId": rid, "sourceIp": "127.0.0.1"}
        }
    });
    assert_eq!(event, expected);
}

#[test]
fn detail_format_sends_only_the_inner_object() {
    let f = FakeFunction::replying(json!({"statusCode": 200}));
    let yaml = function_config(&f.url(), "", "      - path: /x\n        function: fn\n").replace(
        "    stage: test\n",
        "    stage: prod\n    format: jdcloud-detail\n",
    );
    let g = Gateway::start(&yaml);
    assert_eq!(g.client().request("POST", "/x", &[], b"hi").status, 200);
    let e = f.last_event().json();
    assert_eq!(e["path"], "/x");
    assert_eq!(e["body"], "hi");
    assert_eq!(e["requestContext"]["stage"], "prod");
    assert!(e.get("detail").is_none() && e.get("version").is_none());
}

/// Also: names that differ only in the middle (the same length, first and last 8 bytes, as the
/// gateway's fingerprint of a name sees them) are not joined; the same name in another case is.
#[test]
fn headers_are_lowercased_joined_and_hop_by_hop_removed() {
    let (f, g) = setup("");
    let mut c = g.client();
    c.send_raw(b"GET /users/1 HTTP/1.1\r\nHost: test\r\nX-Multi: a\r\nx-multi: b\r\nCookie: c=1\r\nCookie: d=2\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: no\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: foo\r\nProxy-Authorization: x\r\nX-Forwarded-For: 203.0.113.7\r\nX-Aaaaaaaa-1-Bbbbbbbb: 1\r\nX-Aaaaaaaa-2-Bbbbbbbb: 2\r\nx-aaaaaaaa-1-bbbbbbbb: 3\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    let h = detail(&f)["headers"].clone();
    assert_eq!(h["x-multi"], "a, b");
    assert_eq!(h["cookie"], "c=1; d=2");
    assert_eq!(h["x-aaaaaaaa-1-bbbbbbbb"], "1, 3");
    assert_eq!(h["x-aaaaaaaa-2-bbbbbbbb"], "2");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    for gone in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "x-secret-hop",
    ] {
        assert!(h.get(gone).is_none(), "{gone} should not be passed: {h}");
    }
}

#[test]
fn path_parameters_are_percent_decoded_and_path_is_raw() {
    let (f, g) = setup("");
    let mut c = g.client();
    assert_eq!(c.get("/users/a%2Fb%20c%E4%B8%AD+d").status, 200);
    let d = detail(&f);
    assert_eq!(d["pathParameters"]["id"], "a/b c中+d");
    assert_eq!(d["path"], "/users/a%2Fb%20c%E4%B8%AD+d");
    assert_eq!(c.get("/files/dir/sub/name.txt").status, 200);
    assert_eq!(detail(&f)["pathParameters"]["key"], "dir/sub/name.txt");
}

#[test]
fn bad_percent_encoding_and_invalid_utf8_are_400() {
    let (f, g) = setup("");
    let mut c = g.client();
    for path in [
        "/users/%zz",
        "/users/%ff",
        "/users/1?q=%E4",
        "/users/1?q=%g1",
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.header("x-fngate-error"), Some("BAD_REQUEST"));
    }
    assert!(
        f.events().is_empty(),
        "no function call for a malformed request"
    );
}

#[test]
fn query_is_form_decoded_with_arrays_flags_and_raw_string() {
    let (f, g) = setup("");
    let raw = "a=1&b=x+y%21&a=2&flag&a=3&empty=&k%20s=v";
    assert_eq!(g.client().get(&format!("/users/1?{raw}")).status, 200);
    let d = detail(&f);
    assert_eq!(
        d["queryParameters"],
        json!({"a": ["1", "2", "3"], "b": "x y!", "flag": "", "empty": "", "k s": "v"})
    );
    assert_eq!(d["queryString"], raw);
    assert_eq!(g.client().get("/users/1").status, 200);
    assert_eq!(detail(&f)["queryParameters"], json!({}));
    assert_eq!(detail(&f)["queryString"], "");
}

#[test]
fn body_is_a_plain_utf8_string_and_non_utf8_is_415() {
    let (f, g) = setup("");
    let mut c = g.client();
    let text = "{\"k\": \"中文\\n\"}\u{1}";
    assert_eq!(
        c.request("POST", "/users/1", &[], text.as_bytes()).status,
        200
    );
    assert_eq!(detail(&f)["body"], text);
    assert!(detail(&f).get("isBase64Encoded").is_none());
    let r = c.request("POST", "/users/1", &[], &[0xff, 0xfe, 0x00]);
    assert_eq!(r.status, 415);
    assert_eq!(r.header("x-fngate-error"), Some("UNSUPPORTED_BODY"));
    assert_eq!(c.get("/users/2").status, 200, "connection still usable");
}

#[test]
fn binary_routes_send_base64_with_the_flag() {
    let (f, g) = setup("");
    let mut c = g.client();
    assert_eq!(
        c.request("POST", "/bin/x", &[], &[0xff, 0x00, 0x41]).status,
        200
    );
    assert_eq!(detail(&f)["body"], "/wBB");
    assert_eq!(detail(&f)["isBase64Encoded"], true);
    assert_eq!(c.request("POST", "/bin/x", &[], b"text").status, 200);
    assert_eq!(detail(&f)["body"], "dGV4dA==");
    assert_eq!(c.get("/bin/x").status, 200);
    assert_eq!(detail(&f)["body"], "");
    assert_eq!(detail(&f)["isBase64Encoded"], false);
}

#[test]
fn chunked_bodies_and_expect_continue_work() {
    let (f, g) = setup("");
    let mut c = g.client();
    c.send_raw(b"POST /users/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    assert_eq!(detail(&f)["body"], "hello world");
    assert!(detail(&f)["headers"].get("transfer-encoding").is_none());

    c.send_raw(
        b"POST /users/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.read_status_line();
    assert!(interim.contains(" 100 "), "{interim}");
    c.send_raw(b"body");
    assert_eq!(c.read_response(false).status, 200);
    assert_eq!(detail(&f)["body"], "body");
}

#[test]
fn request_id_and_source_ip_follow_trust_settings() {
    let (f, g) = setup("  trust_request_id: true\n  trusted_proxies: [\"127.0.0.0/8\"]\n");
    let r = g.client().request(
        "GET",
        "/users/1",
        &[
            ("x-request-id", "client-id-1"),
            ("X-Forwarded-For", "198.51.100.4, 127.0.0.9"),
        ],
        b"",
    );
    assert_eq!(r.header("x-jdcloud-request-id"), Some("client-id-1"));
    let d = detail(&f);
    assert_eq!(d["requestContext"]["requestId"], "client-id-1");
    assert_eq!(d["requestContext"]["sourceIp"], "198.51.100.4");
    let r = g.client().request(
        "GET",
        "/users/1",
        &[("x-jdcloud-request-id", "bad id with spaces")],
        b"",
    );
    assert_ne!(r.header("x-jdcloud-request-id"), Some("bad id with spaces"));

    // Untrusted by default: the client's id and X-Forwarded-For are not believed.
    let (f, g) = setup("");
    let r = g.client().request(
        "GET",
        "/users/1",
        &[
            ("x-request-id", "client-id-1"),
            ("X-Forwarded-For", "198.51.100.4"),
        ],
        b"",
    );
    assert_ne!(r.header("x-jdcloud-request-id"), Some("client-id-1"));
    assert_eq!(detail(&f)["requestContext"]["sourceIp"], "127.0.0.1");
}

#[test]
fn non_utf8_header_value_is_400() {
    let (f, g) = setup("");
    let mut c = g.client();
    c.send_raw(b"GET /users/1 HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("x-latin"));
    assert!(f.events().is_empty());
}
