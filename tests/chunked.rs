//! Chunked framing on both sides (src/http1/chunk.rs): chunk-size lines held to the grammar
//! and trailers held to the heads' rules and limits, in request bodies and in replies.

mod support;
use std::io::Write;
use support::*;

/// A function that answers with the event's body, and the gateway in front of it.
fn body_echo() -> (FakeFunction, Gateway) {
    let f = FakeFunction::start(|rec| {
        let body = rec.json()["detail"]["body"].clone();
        Scripted::json(serde_json::json!({"statusCode": 200, "body": body}))
    });
    let routes = "      - path: /items/{id}\n        function: fn\n";
    let g = Gateway::start(&function_config(&f.url(), "", routes));
    (f, g)
}

fn chunked(body: &str) -> Vec<u8> {
    format!("POST /items/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
        .into_bytes()
}

#[test]
fn chunk_lines_outside_the_grammar_are_400_and_close() {
    let (f, g) = body_echo();
    let cases = [
        ("an empty size line", "\r\n"),
        ("an extension without a size", ";ext\r\n"),
        (
            "a bare LF inside an extension",
            "5;a\nb\r\nhello\r\n0\r\n\r\n",
        ),
        ("a bare LF ending the size line", "5\nhello\r\n0\r\n\r\n"),
        ("a sign", "+5\r\nhello\r\n0\r\n\r\n"),
        ("17 hex digits", "10000000000000000\r\nhello\r\n0\r\n\r\n"),
        ("a chunk without its CRLF", "5\r\nhelloX0\r\n\r\n"),
    ];
    for (what, body) in cases {
        let mut c = g.client();
        let r = c.raw(&chunked(body));
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (400, Some("BAD_REQUEST")),
            "{what}"
        );
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(c.is_closed(), "{what}");
    }
    assert!(f.events().is_empty(), "no function was called");
}

#[test]
fn extensions_and_trailers_are_read_and_dropped() {
    let (f, g) = body_echo();
    let mut c = g.client();
    let cases = [
        (
            "extensions",
            "2;a=b;c=\"d e\"\r\nhe\r\n3 ;x\r\nllo\r\n0\r\n\r\n",
        ),
        ("trailers", "5\r\nhello\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"),
        // As in heads: httparse takes a bare LF as a line end.
        (
            "trailers ending in bare LF",
            "5\r\nhello\r\n0\r\nx-a: 1\n\n",
        ),
        (
            "a last chunk with an extension",
            "5\r\nhello\r\n0;end\r\n\r\n",
        ),
    ];
    for (what, body) in cases {
        let r = c.raw(&chunked(body));
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{what}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{what}");
    }
    // The end arriving a byte at a time, the empty trailer section last.
    let mut whole = chunked("5\r\nhello\r\n0\r\n\r\n");
    let last = whole.split_off(whole.len() - 4);
    c.send_raw(&whole);
    for b in last {
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.send_raw(&[b]);
    }
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"), "in pieces");
    assert_eq!(
        f.events().len(),
        cases.len() + 1,
        "one connection served them all"
    );
}

#[test]
fn trailers_past_the_head_limits_are_431_and_close() {
    let (f, g) = body_echo();
    let many: String = (0..200).map(|i| format!("x-t-{i}: v\r\n")).collect();
    let long = format!("x-t: {}\r\n", "a".repeat(70 * 1024));
    for (what, trailers) in [("200 lines", many), ("70 KiB", long)] {
        let mut c = g.client();
        let r = c.raw(&chunked(&format!("5\r\nhello\r\n0\r\n{trailers}\r\n")));
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (431, Some("REQUEST_HEADER_TOO_LARGE")),
            "{what}"
        );
        assert!(c.is_closed(), "{what}");
    }
    let mut c = g.client();
    let r = c.raw(&chunked("5\r\nhello\r\n0\r\nbad name: v\r\n\r\n"));
    assert_eq!(r.status, 400, "a trailer that is no header line");
    assert!(f.events().is_empty());
}

#[test]
fn endless_trailers_get_a_431_and_the_gateway_stays_small() {
    let dir = std::env::temp_dir().join(format!("fngate-trailers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let port = free_port();
    let config = dir.join("fngate.yaml");
    let routes = "      - path: /items/{id}\n        function: fn\n";
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 1\n{}",
        function_config(&f.url(), "", routes)
    );
    std::fs::write(&config, yaml).unwrap();
    let gateway = FngateProcess::start(&config, &[]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    // Up to 256 MiB of trailer lines; the gateway answers and closes long before.
    let mut c = Client::connect(addr);
    c.send_raw(&chunked("5\r\nhello\r\n0\r\n"));
    let line = [b"x-trailer: 0123456789abcdef0123456789abcdef\r\n".as_slice(); 1024].concat();
    let mut stream = c.stream().try_clone().unwrap();
    let mut sent = 0usize;
    while sent < 256 << 20 && stream.write_all(&line).is_ok() {
        sent += line.len();
    }
    let r = c.read_response(false);
    assert_eq!(r.status, 431);
    assert!(sent < 16 << 20, "cut off early: {sent} bytes were taken");
    let peak = peak_rss_kib(gateway.child.id());
    eprintln!("endless trailers: {sent} bytes taken, gateway peak RSS {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    assert!(f.events().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// A process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn replies_with_bad_chunk_lines_or_endless_trailers_are_502() {
    let many: String = (0..200).map(|i| format!("x-t-{i}: v\r\n")).collect();
    let trailers = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n{many}\r\n"
    );
    let cases: [(&str, &'static [u8]); 3] = [
        (
            "an empty size line",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        ),
        (
            "a bare LF inside an extension",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nb\r\n{}\r\n0\r\n\r\n",
        ),
        ("200 trailer lines", trailers.leak().as_bytes()),
    ];
    for (what, raw) in cases {
        let backend = raw_backend(raw, false);
        let routes = "      - path: /items/{id}\n        function: fn\n";
        let g = Gateway::start(&function_config(&format!("http://{backend}/"), "", routes));
        let r = g.client().get("/items/1");
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (502, Some("FUNCTION_UNREACHABLE")),
            "{what}: {}",
            r.text()
        );
    }
}
