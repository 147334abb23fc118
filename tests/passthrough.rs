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

fn upstream_gateway(addr: std::net::SocketAddr) -> Gateway {
    Gateway::start(&format!(
        "apis:\n  - id: a\n    routes:\n      - path: /legacy/{{*rest}}\n        upstream: http://{addr}\n"
    ))
}

#[test]
fn upstream_replies_in_every_framing_reach_http11_and_http10_clients() {
    let cases: [(&str, &'static [u8], bool); 3] = [
        (
            "Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello",
            false,
        ),
        (
            "chunked, with an extension and a trailer",
            b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhe\r\n3\r\nllo\r\n0\r\nx-t: 1\r\n\r\n",
            false,
        ),
        (
            "until close",
            b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\nhello",
            true,
        ),
    ];
    for (what, raw, close) in cases {
        let g = upstream_gateway(raw_backend(raw, close));
        let mut c = g.client();
        for i in 0..3 {
            let r = c.get("/legacy/x");
            assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{what} #{i}");
            assert_eq!(r.header("x-up"), Some("1"), "{what}");
            let framed = r.header("content-length").is_some()
                || r.header("transfer-encoding") == Some("chunked");
            assert!(framed, "{what}: framed for the client: {:?}", r.headers);
            assert_eq!(r.header("connection"), Some("keep-alive"), "{what}");
        }
        // HTTP/1.0 cannot take chunks: an unknown length is sent until close.
        let mut c = g.client();
        c.send_raw(b"GET /legacy/x HTTP/1.0\r\n\r\n");
        let r = c.read_response(true);
        assert_eq!(r.header("transfer-encoding"), None, "{what}");
        let rest = c.read_until_close();
        assert_eq!(
            rest, b"hello",
            "{what}: the body, then the connection closes"
        );
    }
    // No body where HTTP says there is none, whatever the upstream declares.
    let g = upstream_gateway(raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        false,
    ));
    let mut c = g.client();
    let r = c.request("HEAD", "/legacy/x", &[], b"");
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    assert_eq!(
        c.get("/legacy/x").text(),
        "hello",
        "nothing was left after the head"
    );
}

#[test]
fn hop_by_hop_headers_stop_at_the_gateway_both_ways() {
    let up = FakeFunction::start(|_| Scripted::ok("ok"));
    let g = upstream_gateway(up.addr);
    let r = g.client().request(
        "GET",
        "/legacy/h",
        &[
            ("Connection", "x-secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eA=="),
            ("TE", "trailers"),
            ("X-Kept", "yes"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = up.last_event();
    for gone in ["x-secret", "keep-alive", "proxy-authorization", "te"] {
        assert_eq!(seen.header(gone), None, "{gone} is not passed on");
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
    assert_eq!(
        seen.header("host"),
        Some("test"),
        "Host is passed on as sent"
    );

    let g = upstream_gateway(raw_backend(
        b"HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Public: 1\r\nContent-Length: 2\r\n\r\nok",
        false,
    ));
    let r = g.client().get("/legacy/h");
    assert_eq!((r.status, r.header("x-public")), (200, Some("1")));
    for gone in ["x-private", "keep-alive", "proxy-authenticate"] {
        assert_eq!(r.header(gone), None, "{gone} is not passed back");
    }
    assert_eq!(
        r.header("connection"),
        Some("keep-alive"),
        "the gateway's own"
    );
}

#[test]
fn absolute_form_targets_go_on_in_origin_form_with_their_authority_as_host() {
    let up = FakeFunction::start(|_| Scripted::ok("ok"));
    let g = upstream_gateway(up.addr);
    let cases = [
        ("http://example.com:8080/legacy/a?x=1", "/legacy/a?x=1"),
        ("HTTP://example.com:8080/legacy/b", "/legacy/b"),
    ];
    for (target, origin) in cases {
        let mut c = g.client();
        let r = c.raw(format!("GET {target} HTTP/1.1\r\nHost: other\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200, "{target}");
        let seen = up.last_event();
        assert_eq!(seen.path, origin, "{target}");
        let hosts: Vec<_> = seen.headers.iter().filter(|(n, _)| n == "host").collect();
        assert_eq!(hosts.len(), 1, "one Host: {hosts:?}");
        assert_eq!(
            hosts[0].1, "example.com:8080",
            "the target's authority wins"
        );
    }
}

#[test]
fn an_upstream_101_is_a_502_and_the_date_is_the_gateways() {
    let g = upstream_gateway(raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        false,
    ));
    let r = g.client().get("/legacy/ws");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE")),
        "{}",
        r.text()
    );
    let g = upstream_gateway(raw_backend(
        b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
        false,
    ));
    let r = g.client().get("/legacy/d");
    let dates = r.header_all("date");
    assert_eq!(dates.len(), 1, "{dates:?}");
    assert_ne!(dates[0], "Thu, 01 Jan 1970 00:00:00 GMT");
}
