//! What one client can hold of the gateway: an answer it never reads is given up after
//! `server.send_timeout`, and connections past `server.max_connections` are refused at once.

mod support;
use std::time::{Duration, Instant};
use support::*;

const ROUTES: &str = "      - path: /items/{id}\n        function: fn\n";

#[test]
fn an_answer_the_client_never_reads_is_given_up_after_send_timeout() {
    // 16 MiB: more than the loopback socket buffers hold, so the gateway must wait for room.
    let big = "x".repeat(16 << 20);
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": big}));
    let g = Gateway::start_with_server(
        "  send_timeout: 1s\n",
        &function_config(&f.url(), "    max_reply_bytes: 20971520\n", ROUTES),
    );
    let mut clients: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = g.client();
            c.send_raw(b"GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n");
            c
        })
        .collect();
    // Once the answer has begun (the call and its 16 MiB may take a while on a loaded
    // machine), the gateway fills the socket buffers, then waits for room that never comes.
    for c in &clients {
        c.stream()
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut first = [0u8; 1];
        assert_eq!(c.stream().peek(&mut first).unwrap(), 1, "the answer begins");
    }
    std::thread::sleep(Duration::from_secs(3));
    for c in &mut clients {
        // What the socket buffers held, then the end: the gateway has closed the connection.
        let got = c.read_until_close();
        assert!(
            got.len() < 16 << 20,
            "only part arrived: {} bytes",
            got.len()
        );
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    // The gateway serves on.
    let mut c = g.client();
    c.send_raw(b"GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(
        (r.status, r.body.len()),
        (200, 16 << 20),
        "a reading client gets it all"
    );
}

#[test]
fn connections_past_max_connections_get_a_503_at_once() {
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let g = Gateway::start_with_server(
        "  max_connections: 3\n",
        &function_config(&f.url(), "", ROUTES),
    );
    // Each held connection served once (places are given back as closes are noticed: the
    // probe that saw the gateway listening may still hold one for a moment).
    let mut held: Vec<Client> = (0..3).map(|_| served(&g)).collect();
    // Refused before it says anything: the answer comes without a request.
    let mut refused = g.client();
    let r = refused.read_response(false);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("TOO_MANY_CONNECTIONS"))
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(refused.is_closed());
    // A connection that ends gives its place back.
    drop(held.pop());
    held.push(served(&g));
    // The held ones were never disturbed.
    for c in &mut held {
        assert_eq!(c.get("/items/1").status, 200);
    }
}

/// A new connection that has been served a request (retried while the gateway is full, for up
/// to 5 s).
fn served(g: &Gateway) -> Client {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = g.client();
        c.send_raw(b"GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n");
        match c.read_response(false).status {
            200 => return c,
            503 if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("{other}"),
        }
    }
}
