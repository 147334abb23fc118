//! The gateway's own statuses (docs/events.md), pooling, balancing and load, on real sockets.

mod support;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

const OK: &str = r#"{"statusCode":200,"body":"ok"}"#;

fn routes() -> &'static str {
    "      - path: /items/{id}\n        methods: [GET, DELETE]\n        function: fn\n      - path: /small\n        function: fn\n        max_body_bytes: 10\n      - path: /slow\n        function: fn\n        timeout: 300ms\n"
}

#[test]
fn not_found_and_method_not_allowed_keep_the_connection() {
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let mut c = g.client();
    let r = c.get("/nothing/here");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (404, Some("ROUTE_NOT_FOUND"))
    );
    assert_eq!(r.json()["error"], "ROUTE_NOT_FOUND");
    let r = c.request("POST", "/items/1", &[], b"ignored body");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
    assert_eq!(r.header("allow"), Some("DELETE, GET, HEAD"));
    let r = c.request("HEAD", "/items/1", &[], b"");
    assert_eq!(r.status, 200, "HEAD is served by the GET route");
    assert_eq!(
        c.get("/items/1").text(),
        "ok",
        "same connection still works"
    );
    assert!(f.events().len() == 2);
}

#[test]
fn oversized_bodies_are_413_before_any_call() {
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    // Declared too large: answered without reading the body, then closed.
    let mut c = g.client();
    c.send_raw(
        b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    assert!(c.is_closed());
    // Streamed (chunked) past the limit.
    let mut c = g.client();
    c.send_raw(b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 413);
    // Every 413 closes, a small body sent in full too (as nginx's does).
    let mut c = g.client();
    let r = c.request("POST", "/small", &[], b"0123456789ab");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // At the limit is fine.
    assert_eq!(
        g.client()
            .request("POST", "/small", &[], b"0123456789")
            .status,
        200
    );
    assert_eq!(
        f.events().len(),
        1,
        "only the request within the limit reached the function"
    );
}

#[test]
fn dead_backend_is_502_fast() {
    let dead = format!("http://127.0.0.1:{}/invoke", free_port());
    let g = Gateway::start(&function_config(&dead, "", routes()));
    let mut c = g.client();
    let started = Instant::now();
    let r = c.get("/items/1");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.get("/items/1").status, 502, "connection still usable");
}

#[test]
fn hanging_backend_is_504_at_the_route_timeout() {
    let f = FakeFunction::start(|_| Scripted {
        delay: Duration::from_secs(5),
        ..Scripted::ok(OK)
    });
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let mut c = g.client();
    let started = Instant::now();
    let r = c.get("/slow");
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (504, Some("FUNCTION_TIMEOUT"))
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    let deadline: u64 = f
        .last_event()
        .header("x-fngate-deadline-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(deadline, 300);
}

#[test]
fn function_timeout_is_the_default_for_its_routes() {
    let f = FakeFunction::start(|_| Scripted {
        delay: Duration::from_secs(5),
        ..Scripted::ok(OK)
    });
    let g = Gateway::start(&function_config(&f.url(), "    timeout: 250ms\n", routes()));
    let started = Instant::now();
    assert_eq!(g.client().get("/items/1").status, 504);
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert_eq!(f.last_event().header("x-fngate-deadline-ms"), Some("250"));
}

#[test]
fn backend_closing_before_reply_is_502() {
    let f = FakeFunction::start(|_| Scripted {
        close: true,
        ..Scripted::ok(OK)
    });
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let r = g.client().get("/items/1");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE"))
    );
}

#[test]
fn stale_pooled_connections_are_left_for_fresh_ones() {
    // The backend answers, then closes the connection without saying so: every pooled
    // connection is stale by the next request, and is seen to be before anything is written
    // on it (the pause lets the close arrive: one that crosses the request is a 502, as the
    // request may have reached the function; tests/backends.rs).
    let f = FakeFunction::start(|_| Scripted {
        hangup_after: true,
        ..Scripted::ok(OK)
    });
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let mut c = g.client();
    for i in 0..20 {
        let r = c.get("/items/1");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        f.events().len(),
        20,
        "each request reached the function exactly once"
    );
}

#[test]
fn each_worker_reuses_its_own_function_connection() {
    // The test gateway has two workers (`threads: 2`); client connections are dealt to them in
    // turn, and a pooled connection to a function is reused only on the worker that opened it
    // (its readiness comes from that worker's runtime). Requests go one at a time, so each
    // worker needs one connection: two in all, whichever clients each worker got.
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let mut clients: Vec<Client> = (0..8).map(|_| g.client()).collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            assert_eq!(c.get("/items/1").status, 200, "round {round}, client {i}");
        }
    }
    assert_eq!(f.events().len(), 24);
    assert_eq!(f.connections(), 2, "one pooled connection a worker, reused");
}

#[test]
fn thousand_requests_over_hundred_connections_all_correct_and_pooled() {
    let f = FakeFunction::start(|rec| {
        let id = rec.json()["detail"]["pathParameters"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        Scripted::json(
            json!({"statusCode": 200, "headers": {"x-id": id}, "body": format!("item {id}")}),
        )
    });
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let addr = g.addr;
    let threads: Vec<_> = (0..100)
        .map(|conn| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..10 {
                    let id = format!("{conn}-{i}");
                    let r = c.get(&format!("/items/{id}"));
                    assert_eq!(r.status, 200);
                    assert_eq!(r.header("x-id"), Some(id.as_str()));
                    assert_eq!(r.text(), format!("item {id}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("all replies correct");
    }
    assert_eq!(f.events().len(), 1000);
    let conns = f.connections();
    assert!(
        conns <= 150,
        "the pool reuses backend connections: {conns} for 1000 requests"
    );
}

#[test]
fn round_robin_over_endpoints_skips_a_dead_one() {
    let a = FakeFunction::start(|_| Scripted::ok(OK));
    let b = FakeFunction::start(|_| Scripted::ok(OK));
    let dead = format!("http://127.0.0.1:{}/invoke", free_port());
    let yaml = function_config(&a.url(), "", routes()).replace(
        &format!("[\"{}\"]", a.url()),
        &format!("[\"{}\", \"{}\", \"{dead}\"]", a.url(), b.url()),
    );
    let g = Gateway::start(&yaml);
    let mut c = g.client();
    for _ in 0..30 {
        assert_eq!(
            c.get("/items/1").status,
            200,
            "a dead endpoint never fails a request"
        );
    }
    let (na, nb) = (a.events().len(), b.events().len());
    assert_eq!(na + nb, 30);
    assert!(na >= 10 && nb >= 10, "balanced: {na} / {nb}");
}

#[test]
fn idle_client_connections_are_closed_after_the_keepalive_timeout() {
    let f = FakeFunction::start(|_| Scripted::ok(OK));
    let g = Gateway::start_with_server(
        "  keepalive_timeout: 1s\n",
        &function_config(&f.url(), "", routes()),
    );
    let mut c = g.client();
    assert_eq!(c.get("/items/1").status, 200);
    assert!(!c.is_closed(), "open right after a request");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(c.is_closed(), "closed after 1 s idle");
}

#[test]
fn function_replies_in_any_http1_framing_are_read() {
    let reply = r#"{"statusCode":200,"body":"framed"}"#;
    let cases: [(&str, &'static [u8], bool); 4] = [
        (
            "chunked, with an extension and a trailer",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"sta\r\n1d\r\ntusCode\":200,\"body\":\"framed\"}\r\n0\r\nx-trailer: y\r\n\r\n",
            false,
        ),
        (
            "a 100 Continue first",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 34\r\n\r\n{\"statusCode\":200,\"body\":\"framed\"}",
            false,
        ),
        (
            "delimited by close",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"statusCode\":200,\"body\":\"framed\"}",
            true,
        ),
        (
            "HTTP/1.0 with a length",
            b"HTTP/1.0 200 OK\r\nContent-Length: 34\r\n\r\n{\"statusCode\":200,\"body\":\"framed\"}",
            true,
        ),
    ];
    assert_eq!(reply.len(), 34);
    for (what, raw, close) in cases {
        let addr = raw_backend(raw, close);
        let g = Gateway::start(&function_config(
            &format!("http://{addr}/invoke"),
            "",
            "      - path: /r\n        function: fn\n",
        ));
        let mut c = g.client();
        for _ in 0..3 {
            let r = c.get("/r");
            assert_eq!((r.status, r.text().as_str()), (200, "framed"), "{what}");
        }
    }
    // A chunk-size line that never ends is an error, not an endless read.
    let endless: &'static [u8] = Box::leak(
        [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;"[..],
            &[b'x'; 70_000][..],
        ]
        .concat()
        .into_boxed_slice(),
    );
    let addr = raw_backend(endless, false);
    let g = Gateway::start(&function_config(
        &format!("http://{addr}/invoke"),
        "    timeout: 5s\n",
        "      - path: /r\n        function: fn\n",
    ));
    let r = g.client().get("/r");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE"))
    );
}

#[test]
fn a_date_in_a_functions_reply_gives_way_to_the_gateways() {
    let f = FakeFunction::replying(json!({
        "statusCode": 200,
        "headers": {"Date": "Thu, 01 Jan 1970 00:00:00 GMT", "x-a": "1"},
        "body": "ok",
    }));
    let g = Gateway::start(&function_config(&f.url(), "", routes()));
    let r = g.client().get("/items/1");
    assert_eq!((r.status, r.header("x-a")), (200, Some("1")));
    let dates = r.header_all("date");
    assert_eq!(dates.len(), 1, "{dates:?}");
    assert_ne!(dates[0], "Thu, 01 Jan 1970 00:00:00 GMT");
}
