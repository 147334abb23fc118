//! The HTTP/1.1 server side (src/http1): what a client gets for every kind of request head and
//! body, keep-alive and pipelining, limits, timeouts and shutdown — on real sockets, with the
//! bytes written by hand.

mod support;
use std::io::Read;
use std::time::{Duration, Instant};
use support::*;

/// A function that answers with the path parameter, and the gateway in front of it.
fn echo_gateway(server_extra: &str) -> (FakeFunction, Gateway) {
    let f = FakeFunction::start(|rec| {
        let id = rec.json()["detail"]["pathParameters"]["id"].clone();
        let body = rec.json()["detail"]["body"].clone();
        Scripted::json(serde_json::json!({
            "statusCode": 200,
            "headers": {"x-id": id},
            "body": format!("{}:{}", id.as_str().unwrap_or(""), body.as_str().unwrap_or("")),
        }))
    });
    let routes = "      - path: /items/{id}\n        function: fn\n";
    let g = Gateway::start_with_server(server_extra, &function_config(&f.url(), "", routes));
    (f, g)
}

#[test]
fn malformed_heads_are_a_json_400_and_close_without_calling_anything() {
    let (f, g) = echo_gateway("");
    let cases: [(&str, &[u8]); 9] = [
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        (
            "both Content-Length and Transfer-Encoding",
            b"POST /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "differing Content-Lengths",
            b"POST /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "a negative Content-Length",
            b"POST /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        ),
        ("no Host on HTTP/1.1", b"GET /items/1 HTTP/1.1\r\n\r\n"),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            "a space in a header name",
            b"GET /items/1 HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        ),
        (
            "an authority-form target",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            b"POST /items/1 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, raw) in cases {
        let mut c = g.client();
        let r = c.raw(raw);
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (400, Some("BAD_REQUEST")),
            "{what}"
        );
        assert_eq!(r.json()["error"], "BAD_REQUEST", "{what}");
        assert!(r.header("x-jdcloud-request-id").is_some(), "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(c.is_closed(), "{what}: closed after the answer");
    }
    assert!(f.events().is_empty(), "no function was called");
}

#[test]
fn oversized_heads_are_431_and_unknown_codings_501() {
    let (f, g) = echo_gateway("");
    let mut c = g.client();
    let big = format!(
        "GET /items/1 HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let r = c.raw(big.as_bytes());
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (431, Some("REQUEST_HEADER_TOO_LARGE"))
    );
    let mut c = g.client();
    let many: String = (0..200).map(|i| format!("x-h-{i}: v\r\n")).collect();
    let r = c.raw(format!("GET /items/1 HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431);
    let mut c = g.client();
    let r = c.raw(
        b"POST /items/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (501, Some("NOT_IMPLEMENTED"))
    );
    assert!(c.is_closed());
    // Just under the limit is fine.
    let mut c = g.client();
    let fits = format!(
        "GET /items/1 HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    assert_eq!(c.raw(fits.as_bytes()).status, 200);
    assert_eq!(f.events().len(), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (f, g) = echo_gateway("");
    let mut c = g.client();
    c.send_raw(
        b"GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /items/2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
          POST /items/3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy\
          GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /items/5 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let bodies: Vec<(u16, String)> = (0..5)
        .map(|_| {
            let r = c.read_response(false);
            (r.status, r.text())
        })
        .collect();
    assert_eq!(bodies[0], (200, "1:".into()));
    assert_eq!(bodies[1], (200, "2:abcde".into()));
    assert_eq!(bodies[2], (200, "3:xy".into()));
    assert_eq!(bodies[3].0, 404);
    assert_eq!(bodies[4], (200, "5:".into()));
    assert!(!c.is_closed(), "still open");
    assert_eq!(f.events().len(), 4);
}

#[test]
fn http10_closes_unless_asked_and_connection_close_is_honoured() {
    let (_f, g) = echo_gateway("");
    let mut c = g.client();
    let r = c.raw(b"GET /items/1 HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.is_closed());

    let mut c = g.client();
    for _ in 0..2 {
        let r = c.raw(b"GET /items/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
    assert!(!c.is_closed());

    let mut c = g.client();
    let r = c.request("GET", "/items/1", &[("Connection", "close")], b"");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.is_closed());
}

#[test]
fn keepalive_requests_limits_a_connection() {
    let (_f, g) = echo_gateway("  keepalive_requests: 3\n");
    let mut c = g.client();
    for i in 1..=3 {
        let r = c.get("/items/1");
        let expected = if i < 3 { "keep-alive" } else { "close" };
        assert_eq!(r.header("connection"), Some(expected), "request {i}");
    }
    assert!(c.is_closed());
}

#[test]
fn stalled_heads_are_dropped_and_stalled_bodies_are_408() {
    let (f, g) = echo_gateway("  read_timeout: 300ms\n");
    let mut c = g.client();
    c.send_raw(b"GET /items/1 HTTP/1.1\r\nHost: a\r\n");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = c_read(&mut c, &mut buf);
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "after the read timeout"
    );

    let mut c = g.client();
    let r = c.raw(b"POST /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    // Closed at once: a stalled body is not waited for a second time (to drain it).
    assert_eq!(
        (r.status, r.header("x-fngate-error"), r.header("connection")),
        (408, Some("REQUEST_TIMEOUT"), Some("close"))
    );
    assert!(c.is_closed());
    // An idle keep-alive connection is not a stalled head: it waits for keepalive_timeout.
    let mut c = g.client();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(c.get("/items/1").status, 200);
    assert_eq!(f.events().len(), 1);
}

/// Reads from the client's socket (EOF = 0), within its read timeout.
fn c_read(c: &mut Client, buf: &mut [u8]) -> usize {
    let mut stream: &std::net::TcpStream = c.stream();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.read(buf).unwrap_or(0)
}

#[test]
fn head_requests_get_the_length_and_no_body() {
    let (_f, g) = echo_gateway("");
    let mut c = g.client();
    let r = c.request("HEAD", "/items/7", &[], b"");
    assert_eq!((r.status, r.header("content-length")), (200, Some("2")));
    assert_eq!(r.header("x-id"), Some("7"));
    // Nothing followed the head: the next answer is read cleanly.
    assert_eq!(c.get("/items/8").text(), "8:");
}

#[test]
fn unread_bodies_are_drained_when_small_and_close_when_large() {
    let (f, g) = echo_gateway("");
    let mut c = g.client();
    let r = c.request("POST", "/nowhere", &[], &[b'x'; 1000]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(
        c.get("/items/1").status,
        200,
        "the body was not taken as a request"
    );

    let mut c = g.client();
    let big = vec![b'x'; 200 * 1024];
    let r = c.request("POST", "/nowhere", &[], &big);
    assert_eq!((r.status, r.header("connection")), (404, Some("close")));
    assert!(c.is_closed());
    assert_eq!(f.events().len(), 1);
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_closes_idle_connections() {
    let f = FakeFunction::start(|_| {
        let mut s = Scripted::json(serde_json::json!({"statusCode": 200, "body": "done"}));
        s.delay = Duration::from_millis(700);
        s
    });
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("fngate-http1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("term.yaml");
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 3s\n  threads: 1\n{}",
        function_config(&f.url(), "", "      - path: /slow\n        function: fn\n")
    );
    std::fs::write(&conf, yaml).unwrap();
    let mut gateway = FngateProcess::start(&conf, &[]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    let mut idle = Client::connect(addr);
    let mut busy = Client::connect(addr);
    busy.send_raw(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    gateway.sigterm();
    let r = busy.read_response(false);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "done"),
        "in flight: finished"
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(idle.is_closed(), "idle: closed at once");
    assert!(gateway.wait_exit(Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// xorshift64*: deterministic, so a failure names the case that can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Flips, drops, duplicates or inserts bytes (often CR, LF, digits, ':' and ';').
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len().max(1));
        const SPECIAL: &[u8] = b"\r\n:; 0123456789abcdefxX-\t\x00\x7f\xff";
        let special = SPECIAL[rng.below(SPECIAL.len())];
        match rng.below(5) {
            0 if !out.is_empty() => out[at] = special,
            1 if !out.is_empty() => {
                out.remove(at);
            }
            2 => out.insert(at, special),
            3 if at + 8 <= out.len() => {
                let piece = out[at..at + 8].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Panics raised outside the tests' own code (the in-process gateway's tasks): tokio would turn
/// them into closed connections, which the test below could not tell from a refusal.
fn record_gateway_panics() -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let place = info
            .location()
            .map(|l| l.file().to_owned())
            .unwrap_or_default();
        if !place.starts_with("tests/") {
            if let Ok(mut all) = record.lock() {
                all.push(format!("{info}"));
            }
        }
        previous(info);
    }));
    seen
}

#[test]
fn mutated_requests_get_an_answer_or_a_close_and_never_take_the_gateway_down() {
    let panics = record_gateway_panics();
    let (_f, g) = echo_gateway("  read_timeout: 300ms\n");
    let seeds: [&[u8]; 4] = [
        b"GET /items/1?x=1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n",
        b"POST /items/2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nt: 1\r\n\r\n",
        b"PUT /items/3 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        b"GET /items/4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /items/5 HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    // FNGATE_MUTATION_SEED / _CASES explore further than the suite's fixed 400 cases.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut rng = Rng(env("FNGATE_MUTATION_SEED", 0x5eed_f00d));
    for case in 0..env("FNGATE_MUTATION_CASES", 400) as usize {
        let seed = seeds[case % seeds.len()];
        let bytes = mutate(seed, &mut rng);
        let mut stream = std::net::TcpStream::connect(g.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = std::io::Write::write_all(&mut stream, &bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // Whatever came of it, the gateway answers or closes within the read timeout.
        let mut got = Vec::new();
        let read = stream.read_to_end(&mut got);
        assert!(
            read.is_ok(),
            "case {case}: no answer and no close: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        if !got.is_empty() {
            assert!(
                got.starts_with(b"HTTP/1.1 "),
                "case {case}: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
    assert_eq!(g.client().get("/items/9").text(), "9:", "still serving");
    assert!(
        panics.lock().unwrap().is_empty(),
        "{:?}",
        panics.lock().unwrap()
    );
}
