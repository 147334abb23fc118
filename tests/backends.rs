//! Misbehaving backends against the connection pool: no client may ever receive an answer
//! meant for another, a request reaches a backend at most once, and what a backend sends
//! beyond its reply is never read as the next one. Function routes and pass-through routes
//! share one backend (and so one pool) here, as they do when they name the same host:port.

mod support;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;
use support::*;

/// What a backend does wrong after (or instead of) a proper reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Bytes past the reply's Content-Length.
    LongBody,
    /// A second, unsolicited copy of the reply.
    SecondReply,
    /// A body (a whole reply) after a 204.
    After204,
    /// A body (a whole reply) after a 304.
    After304,
    /// A body in the answer to a HEAD request.
    BodyToHead,
}

/// When the extra bytes leave.
#[derive(Debug, Clone, Copy)]
enum Extra {
    /// In the same write as the reply.
    Together,
    /// This long after the reply, on the idle connection.
    Late(Duration),
}

/// A backend that answers each request with the caller's id (found in the request as
/// `cid…`) in an `x-id` header and in the body, and misbehaves as told. Requests to `/p/…`
/// are pass-through requests and get plain replies; the others are function calls and get
/// the reply contract's JSON.
struct Backend {
    addr: SocketAddr,
    /// Requests seen, by caller id.
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

type Seen = Mutex<HashMap<String, usize>>;

impl Backend {
    /// Accepts connections, each served by `serve` on a thread of its own.
    fn spawn(serve: impl Fn(TcpStream, &Seen) + Send + Copy + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Backend { addr, seen }
    }

    fn start(fault: Fault, extra: Extra, delay: Duration) -> Backend {
        Backend::spawn(move |conn, seen| serve(conn, fault, extra, delay, seen))
    }

    fn times_seen(&self, id: &str) -> usize {
        self.seen.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

/// The caller's id in a request: `cid` and the letters and digits after it.
fn id_in(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let start = text.find("cid").unwrap_or(0);
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// A whole reply carrying `id`: plain for pass-through, the reply contract for a function.
fn reply(status: u16, id: &str, proxied: bool, with_length: bool) -> Vec<u8> {
    let body = match proxied {
        true => id.to_owned(),
        false => format!(r#"{{"statusCode":200,"headers":{{"x-id":"{id}"}},"body":"{id}"}}"#),
    };
    let mut out = format!("HTTP/1.1 {status} X\r\nx-id: {id}\r\n");
    if with_length {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    if with_length {
        out.push_str(&body);
    }
    out.into_bytes()
}

fn serve(mut conn: TcpStream, fault: Fault, extra: Extra, delay: Duration, seen: &Seen) {
    let mut pending = Vec::new();
    while let Some(request) = read_request(&mut conn, &mut pending) {
        let id = id_in(&request);
        *seen.lock().unwrap().entry(id.clone()).or_default() += 1;
        let proxied = request.starts_with(b"GET /p/") || request.starts_with(b"HEAD /p/");
        std::thread::sleep(delay);
        let (first, more) = match fault {
            Fault::LongBody => (
                reply(200, &id, proxied, true),
                format!("junk after the body of {id}").into_bytes(),
            ),
            Fault::SecondReply => (
                reply(200, &id, proxied, true),
                reply(200, &id, proxied, true),
            ),
            Fault::After204 => (
                reply(204, &id, proxied, false),
                reply(200, &id, proxied, true),
            ),
            Fault::After304 => (
                reply(304, &id, proxied, false),
                reply(200, &id, proxied, true),
            ),
            Fault::BodyToHead => {
                let mut head = reply(200, &id, proxied, true);
                let body = head.split_off(head.len() - id.len());
                (head, body)
            }
        };
        let sent = match extra {
            Extra::Together => conn.write_all(&[first, more].concat()),
            Extra::Late(after) => conn.write_all(&first).and_then(|()| {
                std::thread::sleep(after);
                conn.write_all(&more)
            }),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// A gateway with a function route and a pass-through route on the same backend.
fn gateway_on(backend: SocketAddr) -> Gateway {
    let routes = format!(
        "      - path: /f/{{id}}\n        methods: [GET]\n        function: fn\n      - path: /p/{{*rest}}\n        upstream: http://{backend}\n"
    );
    Gateway::start(&function_config(
        &format!("http://{backend}/invoke"),
        "",
        &routes,
    ))
}

/// What a client must get back for its own request under `fault`.
fn expected(fault: Fault, proxied: bool) -> (&'static str, u16) {
    match (fault, proxied) {
        (Fault::After204, false) => ("GET", 503), // a 204 breaks the reply contract
        (Fault::After204, true) => ("GET", 204),
        (Fault::After304, _) => ("GET", 304),
        (Fault::BodyToHead, _) => ("HEAD", 200),
        _ => ("GET", 200),
    }
}

/// `clients` clients on their own connections send `rounds` requests each, all at once in
/// each round, with `pause` between rounds; returns every answer that was not the client's
/// own, and checks that each request reached the backend exactly once.
fn run_clients(
    fault: Fault,
    extra: Extra,
    delay: Duration,
    clients: usize,
    rounds: usize,
    pause: Duration,
) -> Vec<String> {
    let backend = Backend::start(fault, extra, delay);
    let g = gateway_on(backend.addr);
    let wrong = run_through(g.addr, fault, clients, rounds, pause, false);
    for c in 0..clients {
        for r in 0..rounds {
            let id = format!("cid{c}r{r}");
            assert_eq!(
                backend.times_seen(&id),
                1,
                "{fault:?}: {id} reached the backend"
            );
        }
    }
    wrong
}

/// `run_clients` through the proxy at `front`; `all_proxied`: no function routes there.
fn run_through(
    front: SocketAddr,
    fault: Fault,
    clients: usize,
    rounds: usize,
    pause: Duration,
    all_proxied: bool,
) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(clients));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (barrier, wrong) = (barrier.clone(), wrong.clone());
            let addr = front;
            // Function routes and pass-through routes at once, through one pool.
            let proxied =
                all_proxied || fault == Fault::After304 || fault == Fault::BodyToHead || c % 2 == 1;
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for r in 0..rounds {
                    barrier.wait();
                    let id = format!("cid{c}r{r}");
                    let (method, status) = expected(fault, proxied);
                    let path = match proxied {
                        true => format!("/p/{id}"),
                        false => format!("/f/{id}"),
                    };
                    let got = client.request(method, &path, &[], b"");
                    let own_id = got.header("x-id").is_none_or(|x| x == id);
                    let own_body = got.status != 200 || method == "HEAD" || got.text() == id;
                    if got.status != status || !own_id || !own_body {
                        wrong.lock().unwrap().push(format!(
                            "{id} got {} x-id {:?} body {:?}",
                            got.status,
                            got.header("x-id"),
                            got.text()
                        ));
                    }
                    std::thread::sleep(pause);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wrong = wrong.lock().unwrap().clone();
    wrong
}

const FAULTS: [Fault; 5] = [
    Fault::LongBody,
    Fault::SecondReply,
    Fault::After204,
    Fault::After304,
    Fault::BodyToHead,
];

#[test]
fn bytes_a_backend_sends_late_are_never_read_as_the_next_reply() {
    // All of a round's 16 requests are in flight at once (the backend takes 30 ms), so each
    // holds a connection of its own; the extra bytes arrive 10 ms after each reply, on the
    // idle pooled connection, well before the next round takes it.
    let late = Extra::Late(Duration::from_millis(10));
    let report: Vec<_> = FAULTS
        .into_iter()
        .map(|fault| {
            let delay = Duration::from_millis(30);
            let pause = Duration::from_millis(150);
            (fault, run_clients(fault, late, delay, 16, 4, pause))
        })
        .filter(|(_, wrong)| !wrong.is_empty())
        .collect();
    let counts: Vec<_> = report.iter().map(|(f, w)| (f, w.len())).collect();
    assert!(
        report.is_empty(),
        "answers of 64 not the client's own, by fault: {counts:?}\n{report:#?}"
    );
}

#[test]
fn many_clients_back_to_back_never_get_each_others_answers() {
    for fault in FAULTS {
        let zero = Duration::ZERO;
        let wrong = run_clients(fault, Extra::Together, zero, 16, 25, zero);
        assert!(
            wrong.is_empty(),
            "{fault:?}: {} of 400 answers were not the client's own: {wrong:#?}",
            wrong.len()
        );
    }
}

/// What a backend does with the n-th request (from 0) on one of its connections.
#[derive(Debug, Clone, Copy)]
enum Act {
    Answer,
    /// Answers, then closes the connection this long after (a keep-alive timeout).
    AnswerThenClose(Duration),
    /// Reads the request and dies without a word (a crash mid-call).
    Die,
}

/// A backend whose connections follow `plan`, counting requests by caller id.
fn planned_backend(plan: fn(usize) -> Act) -> Backend {
    Backend::spawn(move |mut conn, seen| {
        let mut pending = Vec::new();
        let mut n = 0;
        while let Some(request) = read_request(&mut conn, &mut pending) {
            let id = id_in(&request);
            *seen.lock().unwrap().entry(id.clone()).or_default() += 1;
            let proxied = request.starts_with(b"POST /p/");
            let act = plan(n);
            n += 1;
            match act {
                Act::Die => return,
                Act::Answer => {
                    let _ = conn.write_all(&reply(200, &id, proxied, true));
                }
                Act::AnswerThenClose(after) => {
                    let _ = conn.write_all(&reply(200, &id, proxied, true));
                    std::thread::sleep(after);
                    return;
                }
            }
        }
    })
}

#[test]
fn a_call_that_dies_after_its_request_was_written_is_never_sent_again() {
    // The first request on each connection is answered; the second kills the connection.
    let backend = planned_backend(|n| if n == 0 { Act::Answer } else { Act::Die });
    let g = gateway_on(backend.addr);
    for (route, method) in [("/f", "GET"), ("/p", "POST")] {
        let mut c = g.client();
        let first = format!("cid{}first", &route[1..]);
        let r = c.request(method, &format!("{route}/{first}"), &[], b"{}");
        assert_eq!((r.status, r.text()), (200, first.clone()), "{route}");
        std::thread::sleep(Duration::from_millis(50));
        // On the pooled connection: written, then the backend dies.
        let second = format!("cid{}second", &route[1..]);
        let r = c.request(method, &format!("{route}/{second}"), &[], b"{}");
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (502, Some("FUNCTION_UNREACHABLE")),
            "{route}: {}",
            r.text()
        );
        assert_eq!(
            backend.times_seen(&second),
            1,
            "{route}: sent once, not retried"
        );
    }
}

#[test]
fn a_pooled_connection_the_backend_closed_while_idle_is_not_used() {
    // Each connection is closed 20 ms after its reply, as by a short keep-alive timeout.
    let backend = planned_backend(|_| Act::AnswerThenClose(Duration::from_millis(20)));
    let g = gateway_on(backend.addr);
    for (route, method) in [("/f", "GET"), ("/p", "POST")] {
        let mut c = g.client();
        for i in 0..3 {
            let id = format!("cid{}n{i}", &route[1..]);
            let r = c.request(method, &format!("{route}/{id}"), &[], b"{}");
            assert_eq!((r.status, r.text()), (200, id.clone()), "{route} #{i}");
            assert_eq!(backend.times_seen(&id), 1, "{route} #{i}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The same late-bytes run through nginx (upstream keep-alive on) for comparison; run by hand
/// where nginx is installed: `cargo test --test backends -- --ignored --nocapture`.
#[test]
#[ignore = "needs nginx; a comparison, not a check of fngate"]
fn nginx_on_the_same_backends_for_comparison() {
    let late = Extra::Late(Duration::from_millis(10));
    for fault in FAULTS {
        let backend = Backend::start(fault, late, Duration::from_millis(30));
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("fngate-nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  upstream b {{ server {b}; keepalive 64; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
            d = dir.display(),
            b = backend.addr
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut nginx = std::process::Command::new("nginx")
            .args(["-c", &dir.join("nginx.conf").display().to_string()])
            .spawn()
            .expect("nginx runs");
        let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(front);
        let pause = Duration::from_millis(150);
        let wrong = run_through(front, fault, 16, 4, pause, true);
        let leaked = wrong.iter().filter(|w| w.contains("x-id Some")).count();
        eprintln!(
            "nginx, {fault:?}: {} of 64 answers not the client's own ({leaked} with another's id)",
            wrong.len()
        );
        let _ = nginx.kill();
        let _ = nginx.wait();
        std::fs::remove_dir_all(&dir).ok();
    }
}
