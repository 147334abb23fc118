//! Who may call what, on real sockets: `auth: apikey` (header, query, scopes, the identity the
//! function sees, nothing logged), rate limits (per address, per key, per API; 429 and the
//! RateLimit-* fields), CORS (preflights answered by the gateway, headers on every answer),
//! the order of the checks, and a refused client's body never read.

mod support;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use support::*;

const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdef00";
const CAROL: &str = "carol-key-0123456789abcdef";

/// Alice may call everything, Bob only the API `other`, Carol only the routes in `carol`.
fn keys(carol: &str) -> String {
    format!(
        "auth:\n  apikey:\n    query: api_key\n    keys:\n      - {{key: {ALICE}, user: alice, account_id: \"111\"}}\n      - {{key: {BOB}, user: bob, apis: [other]}}\n      - {{key: {CAROL}, user: carol, routes: [\"{carol}\"]}}\n"
    )
}

/// `apis` is the YAML under `apis:`; the function is `fn`; Carol's key is for `/other`.
fn gateway(f: &FakeFunction, server: &str, apis: &str) -> Gateway {
    gateway_with_carol(f, server, apis, "/other")
}

fn gateway_with_carol(f: &FakeFunction, server: &str, apis: &str, carol: &str) -> Gateway {
    Gateway::start_with_server(
        server,
        &format!(
            "functions:\n  fn:\n    endpoints: [\"{}\"]\n{}apis:\n{apis}  - id: other\n    routes:\n      - path: /other\n        function: fn\n",
            f.url(),
            keys(carol)
        ),
    )
}

fn get(g: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    g.client().request("GET", path, headers, b"")
}

fn ok_function() -> FakeFunction {
    FakeFunction::replying(
        json!({"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "https://evil.example"}, "body": "ok"}),
    )
}

#[test]
fn api_keys_admit_by_header_or_query_and_fill_the_identity() {
    let f = ok_function();
    let dir = std::env::temp_dir().join(format!("fngate-access-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let g = gateway(
        &f,
        &format!("  access_log: {{path: {}, flush: 10ms}}\n", log.display()),
        "  - id: shop\n    auth: apikey\n    routes:\n      - path: /users/{id}\n        function: fn\n      - path: /open\n        function: fn\n        auth: none\n",
    );
    let r = get(&g, "/users/1", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-fngate-error"), Some("UNAUTHORIZED"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey header=\"x-api-key\"")
    );
    let r = get(&g, "/users/1", &[("x-api-key", "not-a-key-0123456789")]);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (403, Some("FORBIDDEN"))
    );
    // Bob's key is for the API `other` only: refused here, exactly as an unknown key.
    let r = get(&g, "/users/1", &[("x-api-key", BOB)]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "the API key is not valid for this route"
    );
    assert_eq!(get(&g, "/other", &[("x-api-key", BOB)]).status, 200);
    // Carol's key names one route, `/other`: nothing else.
    assert_eq!(get(&g, "/users/1", &[("x-api-key", CAROL)]).status, 403);
    assert_eq!(f.events().len(), 1, "refused requests call nothing");

    let r = get(&g, "/users/1", &[("x-api-key", ALICE)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let identity = &f.last_event().json()["detail"]["requestContext"]["identity"];
    assert_eq!(
        identity,
        &json!({"accountId": "111", "apiKey": ALICE, "user": "alice", "authType": "apikey"})
    );
    let r = get(&g, &format!("/users/2?x=1&api_key={ALICE}"), &[]);
    assert_eq!(r.status, 200);
    // A route may opt out of its API's authentication.
    assert_eq!(get(&g, "/open", &[]).status, 200);
    let open = f.last_event().json();
    assert_eq!(
        open["detail"]["requestContext"]["identity"]["authType"],
        "none"
    );

    std::thread::sleep(Duration::from_millis(200));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 8, "{logged}");
    assert!(!logged.contains(ALICE) && !logged.contains(BOB), "{logged}");
}

#[test]
fn a_refused_client_s_declared_gigabyte_is_never_read() {
    let f = ok_function();
    let g = gateway(
        &f,
        "",
        "  - id: shop\n    auth: apikey\n    routes:\n      - path: /upload\n        function: fn\n        max_body_bytes: 2000000000\n",
    );
    let mut c = g.client();
    c.send_raw(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\nfirst bytes",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed(), "the body is not waited for");
    assert!(f.events().is_empty());
}

#[test]
fn rate_limits_per_address_per_key_and_per_api() {
    let f = ok_function();
    let g = gateway_with_carol(
        &f,
        "",
        "  - id: shop\n    rate_limit: {requests: 3, per: 1m}\n    routes:\n      - path: /a\n        function: fn\n      - path: /b\n        function: fn\n      - path: /limited/{id}\n        function: fn\n        auth: apikey\n        rate_limit: {requests: 2, per: 1h, key: api_key}\n",
        "/limited/{id}",
    );
    // The API's limit is shared by its routes: 3 in all, then 429.
    let remaining: Vec<_> = ["/a", "/b", "/a"]
        .iter()
        .map(|p| {
            let r = get(&g, p, &[]);
            assert_eq!(r.status, 200);
            assert_eq!(r.header("ratelimit-limit"), Some("3"));
            r.header("ratelimit-remaining").unwrap().to_owned()
        })
        .collect();
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = get(&g, "/b", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-fngate-error"), Some("RATE_LIMITED"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "one request comes back every 20 s: {retry}"
    );
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        r.header("ratelimit-reset"),
        Some(retry.to_string().as_str())
    );
    assert_eq!(f.events().len(), 3, "a limited request calls nothing");

    // By key: each key its own bucket; authentication runs first, so a request without a key
    // is 401, never 429, and takes nothing from anyone's bucket.
    for _ in 0..2 {
        assert_eq!(get(&g, "/limited/1", &[("x-api-key", ALICE)]).status, 200);
    }
    assert_eq!(get(&g, "/limited/1", &[("x-api-key", ALICE)]).status, 429);
    assert_eq!(get(&g, "/limited/1", &[]).status, 401);
    assert_eq!(get(&g, "/limited/1", &[("x-api-key", CAROL)]).status, 200);
}

#[test]
fn cors_preflights_are_answered_and_every_answer_carries_the_headers() {
    let f = ok_function();
    let g = gateway(
        &f,
        "",
        "  - id: shop\n    auth: apikey\n    cors:\n      allow_origins: [\"https://app.example\"]\n      allow_methods: [GET, POST]\n      allow_headers: [content-type, x-api-key]\n      expose_headers: [x-jdcloud-request-id]\n      allow_credentials: true\n      max_age: 10m\n    routes:\n      - path: /users/{id}\n        function: fn\n        methods: [GET, POST]\n",
    );
    let origin = ("Origin", "https://app.example");
    // The preflight: no key needed, no OPTIONS route needed, no function called.
    let r = g.client().request(
        "OPTIONS",
        "/users/1",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-api-key"),
        ],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-api-key")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(f.events().is_empty());
    // From an origin not allowed: answered, with nothing that lets a browser use it.
    let r = g.client().request(
        "OPTIONS",
        "/users/1",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // A refusal carries them too, so the page can read why.
    let r = get(&g, "/users/1", &[origin]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // A function's own CORS header is replaced by the API's.
    let r = get(&g, "/users/1", &[origin, ("x-api-key", ALICE)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header_all("access-control-allow-origin"),
        ["https://app.example"]
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-jdcloud-request-id")
    );
    let r = get(
        &g,
        "/users/1",
        &[("Origin", "https://evil.example"), ("x-api-key", ALICE)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // An OPTIONS that is not a preflight is an ordinary request: 405 here.
    assert_eq!(
        g.client()
            .request("OPTIONS", "/users/1", &[origin], b"")
            .status,
        405
    );
}

/// `fngate -t` on `yaml`: the error text.
fn config_error(yaml: &str) -> String {
    let dir = std::env::temp_dir();
    match fngate::config::Config::from_yaml(yaml, &dir, "c.yaml") {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_new_key_is_checked_with_its_place() {
    let base = "server:\n  listen: [\"127.0.0.1:1\"]\nfunctions:\n  fn:\n    endpoints: [\"http://127.0.0.1:1/\"]\n";
    let route = "    routes:\n      - path: /x\n        function: fn\n";
    let cases: [(String, &str); 6] = [
        (format!("{base}apis:\n  - id: a\n    auth: apikey\n{route}"), "c.yaml:10:15: route \"/x\" has auth apikey but auth.apikey lists no keys"),
        (format!("{base}auth:\n  apikey:\n    keys:\n      - {{key: short}}\napis:\n  - id: a\n{route}"), "c.yaml:9:15: auth.apikey: a key needs at least 16 visible ASCII characters"),
        (format!("{base}auth:\n  apikey:\n    keys:\n      - {{key: {ALICE}, apis: [nope]}}\napis:\n  - id: a\n{route}"), "c.yaml:9:50: auth.apikey: api \"nope\" does not exist"),
        (format!("{base}apis:\n  - id: a\n    rate_limit: {{requests: 0, per: 1s, key: who}}\n{route}"), "rate_limit.requests must be at least 1"),
        (format!("{base}apis:\n  - id: a\n    cors: {{allow_origins: [\"*\"], allow_credentials: true}}\n{route}"), "cors: allow_credentials cannot be used with allow_origins \"*\""),
        (format!("{base}apis:\n  - id: a\n    cors: {{allow_origins: [\"app.example\"]}}\n{route}"), "c.yaml:8:28: cors.allow_origins: \"app.example\" is not * or an origin"),
    ];
    for (yaml, says) in cases {
        let err = config_error(&yaml);
        assert!(err.contains(says), "{says:?} not in:\n{err}\n{yaml}");
    }
    let jd = format!("{base}auth:\n  jdcloud:\n    credentials:\n      - {{access_key: ak, secret_key: short}}\napis:\n  - id: a\n    auth: jdcloud\n{route}");
    let err = config_error(&jd);
    let says = "auth.jdcloud: a secret key needs at least 16 characters";
    assert!(err.contains(&format!("c.yaml:9:38: {says}")), "{err}");
    let none = format!("{base}apis:\n  - id: a\n    auth: jdcloud\n{route}");
    let err = config_error(&none);
    let says = "route \"/x\" has auth jdcloud but auth.jdcloud lists no credentials";
    assert!(err.contains(&format!("c.yaml:10:15: {says}")), "{err}");
    let err = config_error(&format!(
        "{base}apis:\n  - id: a\n    rate_limit: {{requests: 1, per: 1s, key: who}}\n{route}"
    ));
    assert!(
        err.contains("rate_limit.key \"who\": expected ip, api_key or route"),
        "{err}"
    );
}

#[test]
fn keys_can_come_from_a_file() {
    let f = ok_function();
    let dir = std::env::temp_dir().join(format!("fngate-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = std::fs::File::create(dir.join("keys.yaml")).unwrap();
    writeln!(file, "- key: dave-key-0123456789abcdef\n  user: dave").unwrap();
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  access_log: {{path: \"off\"}}\nauth:\n  apikey:\n    keys_file: keys.yaml\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: a\n    auth: apikey\n    routes:\n      - path: /x\n        function: fn\n",
        f.url(),
        port = 0
    );
    let port = free_port();
    let yaml = yaml.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let g = Gateway::from_yaml(&yaml, &dir, port);
    let r = get(&g, "/x", &[("x-api-key", "dave-key-0123456789abcdef")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = f.last_event().json();
    assert_eq!(v["detail"]["requestContext"]["identity"]["user"], "dave");
}
