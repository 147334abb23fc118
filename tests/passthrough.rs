//! Pass-through (`upstream:`) routes: the request is proxied as-is, streamed, with
//! X-Forwarded-For/-Proto, over pooled keep-alive connections.

mod support;
use support::*;

#[test]
fn streams_a_one_mib_body_both_ways_with_forwarding_headers() {
    // The upstream echoes the body back and reports what it saw in headers.
    let up = FakeFunction::start(|rec| {
        let mut s = Scripted::ok(rec.body.clone());
        s.status = 200;
        s
    });
    let yaml = format!(
        "apis:\n  - id: a\n    routes:\n      - path: /legacy/{{*rest}}\n        upstream: http://{}\n",
        up.addr
    );
    let g = Gateway::start(&yaml);
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut c = g.client();
    let r = c.request(
        "POST",
        "/legacy/a/b?x=1",
        &[("X-Forwarded-For", "203.0.113.1")],
        &body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the body arrives unchanged, both ways");
    assert!(r.header("x-jdcloud-request-id").is_some());
    let seen = up.last_event();
    assert_eq!(seen.path, "/legacy/a/b?x=1", "the path is forwarded as-is");
    assert_eq!(seen.body.len(), body.len());
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.1, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    for _ in 0..5 {
        assert_eq!(c.request("GET", "/legacy/again", &[], b"").status, 200);
    }
    assert_eq!(up.connections(), 1, "keep-alive to the upstream");
}

#[test]
fn dead_upstream_is_a_json_502() {
    let yaml = format!(
        "apis:\n  - id: a\n    routes:\n      - path: /legacy/{{*rest}}\n        upstream: http://127.0.0.1:{}\n",
        free_port()
    );
    let g = Gateway::start(&yaml);
    let r = g.client().get("/legacy/x");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE"))
    );
    assert_eq!(r.json()["error"], "FUNCTION_UNREACHABLE");
}
