//! Shared test harness: free ports, an in-process gateway that shuts down fast when dropped,
//! fake function backends that record events and answer scripted replies, and a raw HTTP/1.1
//! client that shows exactly what goes over the wire.
#![allow(dead_code)]

pub mod oss;
pub mod redis_server;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port for a server a test starts. Taken from below Linux's ephemeral range
/// (32768–60999), where `bind(0)` and outgoing connections get theirs: a port found by binding
/// port 0 and letting go could be handed to another test's fake function or client before the
/// gateway binds it (the gateway's thread then fails and the test talks to a stranger). A
/// counter keeps the tests of one binary apart; each binary starts at its own place.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start.wrapping_add(n)) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// A virtualenv under the target directory with `packages` installed from PyPI (system
/// packages visible, so a machine that has them installs nothing), made when `import` fails in
/// it; returns its python. Callers keep the path in a `OnceLock` so tests do not race to make it.
pub fn venv(name: &str, packages: &[&str], import: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = dir.join("bin/python");
    let ready = |p: &std::path::Path| {
        std::process::Command::new(p)
            .args(["-c", import])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv failed");
        let pip = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages)
            .status()
            .unwrap();
        assert!(pip.success(), "pip install {packages:?} failed");
        assert!(ready(&python), "{import:?} fails after pip install");
    }
    python
}

/// Recorded bucket notifications; where each comes from is in the folder's SOURCES.md.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/notifications");

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn wait_listening(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < until, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The gateway running in this process; dropping it shuts it down.
pub struct Gateway {
    pub addr: SocketAddr,
    stopper: fngate::server::Stopper,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway on a free port; `rest` is the YAML after the `server:` section.
    pub fn start(rest: &str) -> Gateway {
        Gateway::start_with_server("", rest)
    }

    /// Like `start`, with extra keys for the `server:` section (indented two spaces).
    /// Unless `server_extra` sets one, the access log is off (its lines would go to the test
    /// process's stdout, around cargo's capture).
    pub fn start_with_server(server_extra: &str, rest: &str) -> Gateway {
        let port = free_port();
        let no_log = "  access_log: {path: \"off\"}\n";
        let server_extra = if server_extra.contains("access_log:") {
            server_extra.to_owned()
        } else {
            format!("{server_extra}{no_log}")
        };
        let yaml = format!(
            "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 2\n  grace_period: 0s\n{server_extra}{rest}"
        );
        Gateway::from_yaml(&yaml, std::path::Path::new("."), port)
    }

    /// Runs a whole config file's text (relative paths against `base_dir`) that listens on
    /// 127.0.0.1:`port`; returns once it listens, after its functions have started.
    pub fn from_yaml(yaml: &str, base_dir: &std::path::Path, port: u16) -> Gateway {
        let config = fngate::config::Config::from_yaml(yaml, base_dir, "test.yaml")
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{yaml}"));
        let stopper = fngate::server::Stopper::default();
        let stop = stopper.clone();
        let thread = std::thread::spawn(move || {
            fngate::server::run_until(config, &stop).expect("gateway runs");
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr);
        Gateway {
            addr,
            stopper,
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first value of a header, by case-insensitive name.
fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What a fake function received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the event is JSON")
    }
}

/// How a fake function answers one request.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Close the connection instead of answering.
    pub close: bool,
    /// Answer, then close the connection without saying so (a stale pooled connection).
    pub hangup_after: bool,
}

impl Scripted {
    pub fn ok(body: impl Into<Vec<u8>>) -> Scripted {
        Scripted {
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
            close: false,
            hangup_after: false,
        }
    }
    pub fn json(v: Value) -> Scripted {
        Scripted::ok(v.to_string())
    }
}

type Script = Arc<dyn Fn(&Recorded) -> Scripted + Send + Sync>;

struct FakeState {
    events: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
    script: Script,
}

/// A function backend on a real loopback socket, speaking HTTP/1.1 keep-alive.
pub struct FakeFunction {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeFunction {
    pub fn start(script: impl Fn(&Recorded) -> Scripted + Send + Sync + 'static) -> FakeFunction {
        FakeFunction::start_on(0, script)
    }

    /// Like `start`, on a given loopback port (0: any free one).
    pub fn start_on(
        port: u16,
        script: impl Fn(&Recorded) -> Scripted + Send + Sync + 'static,
    ) -> FakeFunction {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            events: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            script: Arc::new(script),
        });
        let st = state.clone();
        runtime.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_conn(conn, st.clone()));
            }
        });
        FakeFunction {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    /// Answers every event with this reply (a JSON value).
    pub fn replying(v: Value) -> FakeFunction {
        FakeFunction::start(move |_| Scripted::json(v.clone()))
    }

    pub fn url(&self) -> String {
        format!("http://{}/invoke", self.addr)
    }
    pub fn events(&self) -> Vec<Recorded> {
        self.state.events.lock().unwrap().clone()
    }
    pub fn last_event(&self) -> Recorded {
        self.events().pop().expect("the function was called")
    }
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeFunction {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve_conn(mut conn: tokio::net::TcpStream, st: Arc<FakeState>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&buf[..head_end]).is_err() {
            return;
        }
        let path = req.path.unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into(),
                )
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let rec = Recorded {
            path,
            headers,
            body: buf[head_end..head_end + len].to_vec(),
        };
        buf.drain(..head_end + len);
        st.events.lock().unwrap().push(rec.clone());
        let reply = (st.script)(&rec);
        tokio::time::sleep(reply.delay).await;
        if reply.close {
            return;
        }
        let head = format!(
            "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.status,
            reply.body.len()
        );
        if conn.write_all(head.as_bytes()).await.is_err()
            || conn.write_all(&reply.body).await.is_err()
            || reply.hangup_after
        {
            return;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over one TCP connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends raw bytes and reads one answer.
    pub fn raw(&mut self, bytes: &[u8]) -> Response {
        self.send_raw(bytes);
        self.read_response(false)
    }

    /// Everything the server sends until it closes the connection.
    pub fn read_until_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader
            .read_to_end(&mut rest)
            .expect("read until close");
        rest
    }

    /// The socket itself, for reads that must bypass the response parser.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Sends a request with Host and (for a body) Content-Length, and reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let lines: Vec<(&str, &str)> = [("Host", "test")]
            .into_iter()
            .chain(headers.iter().copied())
            .collect();
        self.request_lines(method, path, &lines, body)
    }

    /// A request with exactly these header lines (no `Host` of its own) and a `Content-Length`
    /// when there is a body or the method is POST or PUT.
    pub fn request_lines(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read_response(method == "HEAD")
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Reads an interim (1xx) response: its status line, then headers up to the blank line.
    pub fn read_status_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("interim header");
            if h.trim_end().is_empty() {
                return line;
            }
        }
    }

    pub fn read_response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("header has a colon");
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return self.read_response(head_only);
        }
        if head_only || status == 204 || status == 304 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(len) = resp.header("content-length").and_then(|v| v.parse().ok()) {
            resp.body = vec![0; len];
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }

    /// True when the server has closed this connection (EOF or reset within a short wait).
    pub fn is_closed(&mut self) -> bool {
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        let closed = match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        closed
    }
}

/// A backend answering every request with `raw` bytes, then closing if `close`.
pub fn raw_backend(raw: &'static [u8], close: bool) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                while read_request(&mut conn, &mut pending).is_some() {
                    if conn.write_all(raw).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads one request (head and Content-Length body; the gateway sends backends no other
/// framing) from a blocking socket and returns its bytes; `pending` keeps what arrived after it.
/// `None` when the connection ends first.
pub fn read_request(conn: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if pending.len() >= end + 4 + len {
                return Some(pending.drain(..end + 4 + len).collect());
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The YAML of one function and one API with the given routes.
pub fn function_config(url: &str, extra_function: &str, routes: &str) -> String {
    format!(
        "gateway:\n  region: cn-north-1\n  account_id: \"594035263019\"\n  owner_pin: \"594035263019\"\nfunctions:\n  fn:\n    endpoints: [\"{url}\"]\n{extra_function}apis:\n  - id: testsvc\n    stage: test\n    routes:\n{routes}"
    )
}

/// The YAML `command:` that serves `handler` from `code_dir` with the project's Python runtime
/// (paths relative to the package root, where tests run).
pub fn runtime_command(code_dir: &str, handler: &str) -> String {
    format!(
        "[\"python3\", \"runtime/python/fngate_runtime.py\", \"--code\", \"{code_dir}\", \"--handler\", \"{handler}\"]"
    )
}

/// True while `pid` is a live process (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `within` for `pid` to be gone.
pub fn gone_within(pid: u32, within: Duration) -> bool {
    let until = Instant::now() + within;
    while pid_alive(pid) {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Lines a child process writes to a pipe, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn collect(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// Waits up to 5 s for a line containing every one of `parts`.
    pub fn wait_for(&self, parts: &[&str]) -> Option<String> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .all()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)));
            if found.is_some() || Instant::now() > until {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The project's Python runtime started directly (no gateway), killed when dropped.
pub struct PythonRuntime {
    pub addr: SocketAddr,
    pub child: std::process::Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl PythonRuntime {
    pub fn start(code_dir: &str, handler: &str, env: &[(&str, &str)]) -> PythonRuntime {
        let port = free_port();
        let mut child = std::process::Command::new("python3")
            .args(["runtime/python/fngate_runtime.py", "--code", code_dir])
            .args([
                "--handler",
                handler,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr);
        PythonRuntime {
            addr,
            child,
            stdout,
            stderr,
        }
    }

    /// POSTs `event` the way the gateway does.
    pub fn invoke(&self, event: &Value, request_id: &str, deadline_ms: u64) -> Response {
        let mut c = Client::connect(self.addr);
        let deadline = deadline_ms.to_string();
        c.request(
            "POST",
            "/",
            &[
                ("content-type", "application/json"),
                ("x-jdcloud-request-id", request_id),
                ("x-fngate-deadline-ms", &deadline),
            ],
            event.to_string().as_bytes(),
        )
    }
}

impl Drop for PythonRuntime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Dockerfile's logical lines (continuations joined, comments dropped): (instruction, rest).
pub fn dockerfile(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (word, rest) = current.split_once(' ').unwrap_or((&current, ""));
                lines.push((word.to_ascii_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    lines
}

/// The exec form (`["a", "b"]`) at the end of an instruction's arguments, e.g. a HEALTHCHECK's.
pub fn exec_form(rest: &str) -> Vec<String> {
    let start = rest
        .find('[')
        .unwrap_or_else(|| panic!("no exec form in {rest:?}"));
    serde_json::from_str(&rest[start..]).unwrap_or_else(|e| panic!("{rest:?}: {e}"))
}

/// The fngate binary running a config file (output discarded), killed when dropped.
pub struct FngateProcess {
    pub child: std::process::Child,
}

impl FngateProcess {
    pub fn start(config: &std::path::Path, env: &[(&str, &str)]) -> FngateProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fngate"))
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("fngate starts");
        FngateProcess { child }
    }

    pub fn sigterm(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Waits for the process to exit; panics after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "still running after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FngateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that a finished command succeeded, showing what it wrote to stderr when it did not.
pub fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` to its end and asserts that it succeeded; returns what it printed.
pub fn succeeded(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert_succeeded(&out);
    out
}
