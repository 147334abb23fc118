//! JD compatibility: existing JD Cloud Python code rebuilds a WSGI environ from `event["detail"]`.
//! A WSGI application (checked by wsgiref's validator) behind such an adapter, served by the
//! project's runtime through the gateway, sees the request and answers exactly.

mod support;
use serde_json::json;
use support::*;

fn wsgi_gateway(format: &str) -> Gateway {
    let command = runtime_command("tests/functions/wsgi_app", "index.handler");
    Gateway::start(&format!(
        "functions:\n  app:\n    command: {command}\napis:\n  - id: shop\n    stage: prod\n    format: {format}\n    routes:\n      - path: /wsgi/{{*rest}}\n        function: app\n"
    ))
}

#[test]
fn a_wsgi_app_sees_method_path_query_headers_and_body_and_answers_exactly() {
    for format in ["jdcloud", "jdcloud-detail"] {
        let g = wsgi_gateway(format);
        let mut c = g.client();
        let r = c.request(
            "POST",
            "/wsgi/items/7%20b?x=1&y=two%20words&y=3",
            &[
                ("X-Custom", "yes"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "a=1&b=caf\u{e9}".as_bytes(),
        );
        assert_eq!(r.status, 201, "{format}: {}", r.text());
        assert_eq!(r.header("x-app"), Some("wsgi"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header_all("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(
            r.json(),
            json!({
                "method": "POST",
                "script_name": "",
                "path": "/wsgi/items/7 b",
                "query": "x=1&y=two%20words&y=3",
                "content_type": "application/x-www-form-urlencoded",
                "custom": "yes",
                "host": "test",
                "server": ["test", "80"],
                "scheme": "http",
                "body": "a=1&b=caf\u{e9}",
            }),
            "{format}"
        );
        let r = c.get("/wsgi/health");
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        let seen = r.json();
        assert_eq!(
            (seen["method"].as_str(), seen["path"].as_str()),
            (Some("GET"), Some("/wsgi/health"))
        );
        assert_eq!(
            (seen["query"].as_str(), seen["body"].as_str()),
            (Some(""), Some(""))
        );
    }
}

#[test]
fn the_adapter_falls_back_to_query_parameters_without_a_query_string() {
    let rt = PythonRuntime::start("tests/functions/wsgi_app", "index.handler", &[]);
    let event = json!({"detail": {
        "path": "/p", "httpMethod": "GET", "headers": {"host": "h:8080"},
        "queryParameters": {"a": "1 2", "tag": ["x", "y"]}, "body": ""
    }});
    let r = rt.invoke(&event, "rid", 3000);
    assert_eq!(r.status, 200, "{}", r.text());
    let reply = r.json();
    assert_eq!(reply["statusCode"], 200);
    let seen: serde_json::Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["query"], "a=1%202&tag=x&tag=y");
    assert_eq!(seen["server"], json!(["h", "8080"]));
}
