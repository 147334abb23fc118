//! Hostile requests on raw sockets (docs/reliability.md): for each case the status, whether the
//! connection is closed, whether the function saw anything, and that the gateway answers a
//! normal request right after. Smuggling and framing (RFC 9112 §6.1, §6.3, §7.1), limits,
//! request targets, pipelining and HTTP/1.0, `Expect: 100-continue` with a refused body.

mod support;
use serde_json::json;
use std::time::Duration;
use support::*;

const KEY: &str = "hostile-key-0123456789abcd";

/// What a case must get.
struct Expect {
    status: u16,
    /// The connection is closed after the answer.
    closes: bool,
    /// The function was called.
    called: bool,
}

const fn refused(status: u16) -> Expect {
    Expect {
        status,
        closes: true,
        called: false,
    }
}

const fn kept(status: u16, called: bool) -> Expect {
    Expect {
        status,
        closes: false,
        called,
    }
}

fn chunked_post(path: &str, chunks: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")
        .into_bytes()
}

fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
}

/// Every case: a name, the bytes sent, what must happen.
fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let post = |headers: &str, body: &str| {
        format!("POST /echo/1 HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}").into_bytes()
    };
    let many_headers: String = (0..129).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_path = format!("/echo/{}", "a".repeat(64 * 1024));
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000));
    let many_trailers: String = (0..200).map(|i| format!("T{i}: v\r\n")).collect();
    vec![
        // Smuggling and framing.
        ("Content-Length with Transfer-Encoding", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), refused(400)),
        ("two different Content-Lengths", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), refused(400)),
        ("two equal Content-Lengths", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), kept(200, true)),
        ("a Content-Length list", post("Content-Length: 5, 5\r\n", "hello"), refused(400)),
        ("a signed Content-Length", post("Content-Length: +5\r\n", "hello"), refused(400)),
        ("Transfer-Encoding: chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"), refused(501)),
        ("Transfer-Encoding: identity", post("Transfer-Encoding: identity\r\n", ""), refused(501)),
        ("Transfer-Encoding on HTTP/1.0", b"POST /echo/1 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), refused(400)),
        ("obs-fold in a header", get("/echo/1", "X-A: a\r\n b\r\n"), refused(400)),
        ("whitespace before the colon", get("/echo/1", "X-A : a\r\n"), refused(400)),
        ("a NUL in a header value", get("/echo/1", "X-A: a\0b\r\n"), refused(400)),
        ("bare LF line ends in the head", b"GET /echo/1 HTTP/1.1\nHost: x\n\n".to_vec(), kept(200, true)),
        ("no Host on HTTP/1.1", b"GET /echo/1 HTTP/1.1\r\n\r\n".to_vec(), refused(400)),
        ("two Hosts", get("/echo/1", "Host: y\r\n"), refused(400)),
        ("chunk size of 17 digits", chunked_post("/echo/1", "00000000000000005\r\nhello\r\n0\r\n\r\n"), refused(400)),
        ("chunk size past u64", chunked_post("/echo/1", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n"), refused(400)),
        ("chunk size not hex", chunked_post("/echo/1", "zz\r\nhello\r\n0\r\n\r\n"), refused(400)),
        ("chunk not followed by CRLF", chunked_post("/echo/1", "5\r\nhelloXX0\r\n\r\n"), refused(400)),
        ("chunk extension over 4 KiB", chunked_post("/echo/1", &long_extension), refused(400)),
        ("chunk extension, bounded", chunked_post("/echo/1", "5;name=value\r\nhello\r\n0\r\n\r\n"), kept(200, true)),
        ("trailers, bounded", chunked_post("/echo/1", "5\r\nhello\r\n0\r\nT: v\r\n\r\n"), kept(200, true)),
        ("200 trailer lines", chunked_post("/echo/1", &format!("5\r\nhello\r\n0\r\n{many_trailers}\r\n")), refused(431)),
        ("the final CRLF never comes", chunked_post("/echo/1", "5\r\nhello\r\n0\r\n"), refused(408)),
        // Limits.
        ("a 64 KiB request line", get(&long_path, ""), refused(431)),
        ("129 header lines", get("/echo/1", &many_headers), refused(431)),
        ("a declared body over the limit", b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".to_vec(), refused(413)),
        ("a chunked body over the limit", chunked_post("/small", &format!("7d0\r\n{}\r\n0\r\n\r\n", "b".repeat(2000))), refused(413)),
        // Targets.
        ("absolute-form", get("http://x/echo/1", ""), kept(200, true)),
        ("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), kept(404, false)),
        ("CONNECT", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec(), refused(400)),
        ("an empty first segment", get("//echo/1", ""), kept(404, false)),
        ("dot segments", get("/echo/../echo/1", ""), kept(404, false)),
        ("%2e%2e as a parameter", get("/echo/%2e%2e", ""), kept(200, true)),
        ("%2F in a parameter", get("/echo/a%2Fb", ""), kept(200, true)),
        ("%00 in a parameter", get("/echo/a%00b", ""), kept(200, true)),
        ("a bad escape in a parameter", get("/echo/%zz", ""), kept(400, false)),
        ("non-UTF-8 bytes in the target", b"GET /echo/\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), refused(400)),
        ("TLS sent to a plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), refused(400)),
        ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), refused(400)),
        // HTTP/1.0 and Expect.
        ("HTTP/1.0 without keep-alive", b"GET /echo/1 HTTP/1.0\r\n\r\n".to_vec(), Expect { status: 200, closes: true, called: true }),
        ("HTTP/1.0 with keep-alive", b"GET /echo/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(), kept(200, true)),
        ("100-continue, no API key", b"POST /locked HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n".to_vec(), refused(401)),
        ("100-continue, over the limit", b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n".to_vec(), refused(413)),
        ("100-continue, a key", format!("POST /locked HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello").into_bytes(), kept(200, true)),
    ]
}

fn hostile_gateway() -> (FakeFunction, Gateway) {
    let f = FakeFunction::replying(json!({"statusCode": 200, "body": "ok"}));
    let g = Gateway::start_with_server(
        "  read_timeout: 1s\n",
        &format!(
            "auth:\n  apikey:\n    keys: [{{key: {KEY}}}]\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: h\n    routes:\n      - path: /echo/{{id}}\n        function: fn\n      - path: /small\n        function: fn\n        max_body_bytes: 1024\n      - path: /locked\n        function: fn\n        auth: apikey\n",
            f.url()
        ),
    );
    (f, g)
}

#[test]
fn every_hostile_request_gets_its_documented_answer_and_the_gateway_serves_on() {
    let (f, g) = hostile_gateway();
    let mut failures = Vec::new();
    for (name, bytes, want) in cases() {
        let before = f.events().len();
        let mut c = g.client();
        c.send_raw(&bytes);
        let mut r = c.read_response(false);
        // An interim 100 is not the answer (the client sends the body it announced).
        if r.status == 100 {
            r = c.read_response(false);
        }
        let closes = c.is_closed();
        let called = f.events().len() > before;
        let after = g.client().get("/echo/ok").status;
        let got = (r.status, closes, called, after);
        if got != (want.status, want.closes, want.called, 200) {
            failures.push(format!(
                "{name}: got status {} closed {closes} called {called} (next request {after}); want {} {} {}",
                r.status, want.status, want.closes, want.called
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ten_pipelined_requests_are_answered_in_order() {
    let (_f, g) = hostile_gateway();
    let mut c = g.client();
    let burst: Vec<u8> = (0..10)
        .flat_map(|i| get(&format!("/echo/{i}?n={i}"), ""))
        .collect();
    c.send_raw(&burst);
    for i in 0..10 {
        let r = c.read_response(false);
        assert_eq!(r.status, 200, "request {i}");
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(!c.is_closed());
}

/// Raises the soft open-file limit to the hard one (each connection here is two descriptors).
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit take a pointer to a plain struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

#[test]
fn two_thousand_clients_at_a_byte_a_second_are_cut_and_delay_no_one() {
    let slow_clients = 2000;
    assert!(
        raise_fd_limit() > 2 * slow_clients as u64 + 100,
        "not enough descriptors"
    );
    let (_f, g) = hostile_gateway();
    let line = b"GET /echo/1 HTTP/1.1\r\nHost: x\r\n";
    let mut slow: Vec<std::net::TcpStream> = (0..slow_clients)
        .map(|_| {
            let s = std::net::TcpStream::connect(g.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // One byte a second on every connection, while a normal client keeps asking.
    let started = std::time::Instant::now();
    let mut worst = Duration::ZERO;
    let mut answered = 0;
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(3500) {
        if started.elapsed() >= Duration::from_secs(sent) {
            for s in &mut slow {
                use std::io::Write;
                let _ = s.write(&line[sent as usize..sent as usize + 1]);
            }
            sent += 1;
        }
        let asked = std::time::Instant::now();
        assert_eq!(g.client().get("/echo/ok").status, 200);
        worst = worst.max(asked.elapsed());
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    // read_timeout is 1 s from a head's first byte: every slow head has been cut by now.
    let mut closed = 0;
    for s in &mut slow {
        use std::io::Read;
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Closed: the end of the stream (after an answer, if any) or a reset; a read that
        // times out means the gateway still holds the connection.
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert_eq!(closed, slow_clients, "every slow head is cut");
    eprintln!(
        "slow clients: {slow_clients}; normal requests meanwhile: {answered}, slowest {worst:?}"
    );
    assert!(
        worst < Duration::from_millis(500),
        "a normal request waited {worst:?}"
    );
}

/// An upstream that answers every request `200 ok` and keeps each request's bytes as received.
struct RecordingUpstream {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl RecordingUpstream {
    fn start() -> RecordingUpstream {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    while let Some(request) = read_request(&mut conn, &mut pending) {
                        kept.lock().unwrap().push(request);
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                });
            }
        });
        RecordingUpstream { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        let got = self.requests.lock().unwrap();
        got.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

#[test]
fn what_reaches_an_upstream_is_framed_once_and_exactly() {
    let up = RecordingUpstream::start();
    let g = Gateway::start(&format!(
        "apis:\n  - id: u\n    routes:\n      - path: /up/{{*rest}}\n        upstream: http://{}\n",
        up.addr
    ));
    let send = |bytes: &[u8], answers: usize| -> Vec<u16> {
        let mut c = g.client();
        c.send_raw(bytes);
        (0..answers)
            .map(|_| c.read_response(false).status)
            .collect()
    };

    // Ambiguous framing never reaches the upstream.
    let smuggle = b"POST /up/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /up/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(send(smuggle, 1), [400]);
    let folded = b"GET /up/a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n X-Injected: 1\r\n\r\n";
    assert_eq!(send(folded, 1), [400]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(up.requests().is_empty(), "{:?}", up.requests());

    // A length, then more bytes in the same write: two requests here, two there, each whole.
    let two = b"POST /up/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdGET /up/b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(send(two, 2), [200, 200]);
    // A chunked body with an extension and trailers: a length there, nothing else of it.
    let chunked = b"POST /up/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n";
    assert_eq!(send(chunked, 1), [200]);
    let got = up.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("POST /up/a HTTP/1.1\r\n") && got[0].ends_with("\r\n\r\nabcd"),
        "{}",
        got[0]
    );
    assert!(
        got[0]
            .to_ascii_lowercase()
            .contains("\r\ncontent-length: 4\r\n"),
        "{}",
        got[0]
    );
    assert!(got[1].starts_with("GET /up/b HTTP/1.1\r\n"), "{}", got[1]);
    assert!(
        got[2].starts_with("POST /up/c HTTP/1.1\r\n") && got[2].ends_with("\r\n\r\nhello"),
        "{}",
        got[2]
    );
    let head = got[2].to_ascii_lowercase();
    assert!(head.contains("\r\ncontent-length: 5\r\n"), "{}", got[2]);
    for leaked in ["transfer-encoding", "x-trailer", "ext=1"] {
        assert!(
            !head.contains(leaked),
            "{leaked} reached the upstream: {}",
            got[2]
        );
    }
}
