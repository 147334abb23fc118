//! The load benchmark (issue 5): requests/s and latency of the event route, the pass-through
//! route, the stub itself and nginx as a plain reverse proxy to the same stub — same client,
//! same stub, same run — then the gateway's memory with 10,000 idle keep-alive clients.
//!
//!     benches/load.sh                  # installs nginx when missing, then runs this
//!     cargo bench --bench load         # the same, without nginx unless it is installed
//!
//! Environment: FNGATE_BENCH_SECS (10), FNGATE_BENCH_RUNS (3), FNGATE_BENCH_CONNECTIONS (64),
//! FNGATE_BENCH_LOG=1 turns the access log on, for fngate (`access_log: {path: FILE}`: buffered,
//! flushed every second) and nginx alike (`access_log FILE combined buffer=64k flush=1s`); off,
//! both have none. FNGATE_BENCH_COMPARE=<path to another fngate binary> adds its event route as a
//! further target (two builds measured in one run; a build older than `server.access_log` gets
//! its log through RUST_LOG instead; FNGATE_BENCH_COMPARE_CURRENT=1 gives it this build's
//! configuration, for an A/B of one change). FNGATE_BENCH_CLIENT=wrk drives the load with wrk (one
//! thread, the same request) instead of the built-in client: a second harness. Each row shows
//! how busy every core was during its runs. FNGATE_BENCH_STUB=nginx makes the function stub an
//! nginx answering `return 200` with the same reply. Under `cargo test` it runs a short smoke
//! version, to keep the harness working.

mod support;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// The API key `/secure/{id}` accepts.
const BENCH_KEY: &str = "bench-key-0123456789abcdef";
/// The function reply of the "64 KiB reply" shape: a valid reply whose body is a JSON document
/// as a string (escaped, as a function returns it), about 64 KiB.
fn big_reply() -> Vec<u8> {
    let mut body = String::from("[");
    let mut i = 0;
    while body.len() < 64 * 1024 - 80 {
        body.push_str(&format!(
            "{{\\\"id\\\":{i},\\\"name\\\":\\\"item {i}\\\",\\\"ok\\\":true}},"
        ));
        i += 1;
    }
    body.push_str("{}]");
    format!(
        "{{\"statusCode\":200,\"headers\":{{\"content-type\":\"application/json\"}},\"body\":\"{body}\"}}"
    )
    .into_bytes()
}

/// A request shape: what every connection sends, over how many connections. The path is the
/// event route's and nginx's (nginx forwards any path to the stub); pass-through adds `/pass`.
struct Workload {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    conns: usize,
}

impl Workload {
    /// The base request: `GET /users/42?lang=zh&page=2` with five headers.
    fn get(name: &'static str, conns: usize) -> Workload {
        let headers = [
            ("Host", "bench.local"),
            ("User-Agent", "fngate-bench/1"),
            ("Accept", "application/json"),
            ("Accept-Language", "zh-CN,zh;q=0.9"),
            ("X-Trace", "7f3a9c"),
        ];
        Workload {
            name,
            method: "GET",
            path: "/users/42?lang=zh&page=2",
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            conns,
        }
    }

    /// Every shape the issue names (FNGATE_BENCH_SHAPES picks some by name: get, post, headers,
    /// c256, c1024, reply).
    fn all(conns: usize) -> Vec<(&'static str, Workload)> {
        let mut post = Workload::get("POST 4 KiB JSON", conns);
        post.method = "POST";
        post.path = "/orders/42?lang=zh";
        post.headers
            .push(("Content-Type".into(), "application/json".into()));
        let mut json = String::from("{\"order\":42,\"items\":[");
        let mut i = 0;
        while json.len() < 4096 - 80 {
            json.push_str(&format!(
                "{{\"sku\":\"SKU-{i:05}\",\"name\":\"item \\\"{i}\\\" 名前\",\"qty\":{}}},",
                i % 7 + 1
            ));
            i += 1;
        }
        json.push_str("{}]}");
        json.push_str(&" ".repeat(4096 - json.len()));
        post.body = json.into_bytes();
        let mut headers = Workload::get("30 headers", conns);
        for i in headers.headers.len()..30 {
            headers.headers.push((
                format!("X-Custom-Header-{i}"),
                "some-value-of-moderate-length-0123456789".into(),
            ));
        }
        let mut reply = Workload::get("64 KiB reply", conns);
        reply.path = "/big/42?lang=zh";
        vec![
            ("get", Workload::get("GET", conns)),
            ("post", post),
            ("headers", headers),
            ("c256", Workload::get("GET, 256 connections", 256)),
            ("c1024", Workload::get("GET, 1,024 connections", 1024)),
            ("reply", reply),
        ]
    }

    /// The request's bytes for `path` (the built-in client).
    fn bytes(&self, path: &str) -> Vec<u8> {
        let mut head = format!("{} {path} HTTP/1.1\r\n", self.method);
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// The same request as a wrk script (wrk adds Content-Length for a body).
    fn wrk_script(&self, path: &str) -> String {
        let mut lua = format!("wrk.method = \"{}\"\nwrk.path = \"{path}\"\n", self.method);
        for (n, v) in &self.headers {
            lua.push_str(&format!("wrk.headers[\"{n}\"] = \"{v}\"\n"));
        }
        if !self.body.is_empty() {
            let body = String::from_utf8_lossy(&self.body);
            lua.push_str(&format!("wrk.body = [==[{body}]==]\n"));
        }
        lua
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server process pinned to `cpu`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: an nginx master stops its workers (SIGKILL would orphan them).
        // SAFETY: kill takes a pid and a signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(mut cmd: Command, cpu: Option<usize>) -> Child {
    if let Some(cpu) = cpu {
        // SAFETY: only sched_setaffinity (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
    }
    cmd.spawn().expect("start server")
}

fn logging() -> bool {
    env_or("FNGATE_BENCH_LOG", 0) == 1
}

/// `FNGATE_BENCH_THREADS`: fngate's `server.threads` and nginx's `worker_processes` (1).
fn threads() -> usize {
    env_or("FNGATE_BENCH_THREADS", 1usize).max(1)
}

/// `FNGATE_BENCH_COMPARE_CURRENT=1`: the compared binary knows this tree's configuration (a
/// variant of it, for an A/B of one change), so it gets the same file as this build.
fn compare_is_current() -> bool {
    env_or("FNGATE_BENCH_COMPARE_CURRENT", 0) == 1
}

/// `own`: the binary knows this tree's configuration (`server.access_log`, `auth:`).
fn start_fngate(
    binary: &Path,
    dir: &Path,
    stub: SocketAddr,
    cpu: Option<usize>,
    own: bool,
) -> Server {
    let port = free_port();
    let access_log = match (own, logging()) {
        (false, _) => String::new(),
        (true, false) => "  access_log: {path: \"off\"}\n".to_owned(),
        (true, true) => format!(
            "  access_log: {{path: {}/fngate-access-{port}.log}}\n",
            dir.display()
        ),
    };
    // Builds older than the checks do not know `auth:`.
    let secure = match own {
        true => format!("      - path: /secure/{{id}}\n        methods: [GET]\n        function: stub\n        auth: apikey\n        rate_limit: {{requests: 1000000000, per: 1s, key: api_key}}\nauth:\n  apikey:\n    query: api_key\n    keys:\n      - {{key: {BENCH_KEY}, user: bench}}\n"),
        false => String::new(),
    };
    let threads = threads();
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: {threads}\n  grace_period: 0s\n  keepalive_timeout: 600s\n  max_connections: 12000\n{access_log}functions:\n  stub:\n    endpoints: [\"http://{stub}/invoke\"]\n    timeout: 10s\n  big:\n    endpoints: [\"http://{stub}/invoke-big\"]\n    timeout: 10s\napis:\n  - id: bench\n    stage: test\n    routes:\n      - path: /users/{{id}}\n        methods: [GET]\n        function: stub\n      - path: /orders/{{id}}\n        methods: [POST]\n        function: stub\n      - path: /big/{{id}}\n        methods: [GET]\n        function: big\n      - path: /pass/{{*rest}}\n        upstream: http://{stub}\n{secure}"
    );
    let conf = dir.join(format!("fngate-{port}.yaml"));
    std::fs::write(&conf, yaml).unwrap();
    // Older builds wrote their access log through tracing, to stdout.
    let log = if logging() && !own { "info" } else { "warn" };
    let stdout = if logging() && !own {
        let file = std::fs::File::create(dir.join(format!("fngate-stdout-{port}.log"))).unwrap();
        Stdio::from(file)
    } else {
        Stdio::null()
    };
    let mut cmd = Command::new(binary);
    cmd.arg("-c")
        .arg(&conf)
        .env("RUST_LOG", log)
        .stdout(stdout)
        .stderr(Stdio::null());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server {
        child: pinned(cmd, cpu),
        addr,
    };
    wait_listening(addr);
    server
}

/// `FNGATE_BENCH_STUB=nginx`: the function stub is nginx answering `return 200` with the same
/// reply (as the outside harness had it), on the client's CPU, instead of the built-in stub.
fn start_nginx_stub(dir: &Path, cpu: Option<usize>) -> Option<Server> {
    let nginx = nginx_binary()?;
    let dir = dir.join("stub");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    // nginx quotes: the reply's backslashes and quotes escaped for its string.
    let reply = String::from_utf8_lossy(REPLY)
        .replace('\\', "\\\\")
        .replace('\'', "\\'");
    // The big reply is too long for a string in nginx's configuration: a file, which nginx
    // serves to a POST (a function call) only through error_page's redirect as a GET.
    std::fs::write(dir.join("big.json"), big_reply()).unwrap();
    let d = dir.display();
    let server = format!(
        "  access_log off;\n  server {{\n    listen 127.0.0.1:{port} reuseport backlog=4096;\n    location / {{\n      default_type application/json;\n      return 200 '{reply}';\n    }}\n    location ~ big {{\n      default_type application/json;\n      root {d};\n      try_files /big.json =404;\n      error_page 405 =200 /big.json;\n    }}\n  }}\n"
    );
    let conf = nginx_conf(&dir, &server, 1);
    Some(run_nginx(nginx, &dir, &conf, port, cpu))
}

fn start_nginx(dir: &Path, stub: SocketAddr, cpu: Option<usize>) -> Option<Server> {
    let nginx = nginx_binary()?;
    let port = free_port();
    let d = dir.display();
    let access_log = if logging() {
        format!("access_log {d}/nginx-access.log combined buffer=64k flush=1s;")
    } else {
        "access_log off;".to_owned()
    };
    let server = format!(
        "  {access_log}\n  upstream stub {{ server {stub}; keepalive 128; keepalive_requests 10000000; }}\n  server {{\n    listen 127.0.0.1:{port} reuseport backlog=4096;\n    location / {{\n      proxy_pass http://stub;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n"
    );
    let conf = nginx_conf(dir, &server, threads());
    Some(run_nginx(nginx, dir, &conf, port, cpu))
}

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// `workers` nginx workers with their files under `dir`, long keep-alive, and `http` inside `http {}`.
fn nginx_conf(dir: &Path, http: &str, workers: usize) -> String {
    let d = dir.display();
    // Without a master nginx runs one process whatever worker_processes says.
    let master = if workers > 1 { "on" } else { "off" };
    format!(
        "worker_processes {workers};\ndaemon off;\nmaster_process {master};\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\nworker_rlimit_nofile 20000;\nevents {{ worker_connections 16384; }}\nhttp {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 10000000;\n  keepalive_timeout 600s;\n{http}}}\n"
    )
}

/// Starts nginx with `conf` (written to `dir`, its prefix) and waits for `port`.
fn run_nginx(nginx: &str, dir: &Path, conf: &str, port: u16, cpu: Option<usize>) -> Server {
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server {
        child: pinned(cmd, cpu),
        addr,
    };
    wait_listening(addr);
    server
}

struct Row {
    name: &'static str,
    rps: f64,
    p50: u32,
    p99: u32,
    p999: u32,
    errors: u64,
    /// CPU µs per request: user space, kernel.
    cpu_us: Option<(f64, f64)>,
    /// How busy each core was during the run, in percent (is the system under test the
    /// bottleneck, or the client?).
    cores: Vec<f64>,
}

/// One thing to load: a name, where it listens, the request, and the process to account.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: String,
    pid: Option<u32>,
}

/// How hard and how long.
struct Shape<'a> {
    load: &'a Workload,
    warmup: Duration,
    secs: Duration,
}

fn measure(rt: &tokio::runtime::Runtime, t: &Target, shape: &Shape) -> Row {
    let before = t.pid.map(tree_cpu_time);
    let cores_before = core_times();
    let load = match wrk_binary() {
        Some(wrk) => wrk::drive(&wrk, t.addr, &t.path, shape),
        None => rt.block_on(drive(
            t.addr,
            shape.load.bytes(&t.path),
            shape.load.conns,
            shape.warmup,
            shape.secs,
        )),
    };
    let cores = core_busy(&cores_before, &core_times());
    let cpu_us = t.pid.zip(before).map(|(p, b)| {
        // CPU time cannot be split between warm-up and measurement, so the warm-up's
        // requests are counted at the measured rate.
        let now = tree_cpu_time(p);
        let total = load.rps() * (shape.secs + shape.warmup).as_secs_f64();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / total.max(1.0);
        (
            per(now.user.saturating_sub(b.user)),
            per(now.system.saturating_sub(b.system)),
        )
    });
    Row {
        name: t.name,
        rps: load.rps(),
        p50: load.percentile(50.0),
        p99: load.percentile(99.0),
        // wrk's distribution stops at 99 %.
        p999: if wrk_binary().is_some() {
            0
        } else {
            load.percentile(99.9)
        },
        errors: load.errors,
        cpu_us,
        cores,
    }
}

/// CPU time of a process and its children (an nginx master's workers).
fn tree_cpu_time(pid: u32) -> CpuTime {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(cpu_time)
        .fold(cpu_time(pid), |a, c| CpuTime {
            user: a.user + c.user,
            system: a.system + c.system,
        })
}

/// `FNGATE_BENCH_CLIENT=wrk`: wrk drives the load instead of the built-in client (a second
/// harness; the brief's rule is to trust a number only when two agree).
fn wrk_binary() -> Option<String> {
    let wanted = std::env::var("FNGATE_BENCH_CLIENT").is_ok_and(|c| c == "wrk");
    let found = ["/usr/bin/wrk", "/usr/local/bin/wrk"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    match (wanted, found) {
        (true, Some(p)) => Some(p.to_owned()),
        (true, None) => {
            panic!("FNGATE_BENCH_CLIENT=wrk, but wrk is not installed (apt-get install wrk)")
        }
        _ => None,
    }
}

mod wrk {
    use super::{Load, Shape};
    use std::net::SocketAddr;
    use std::process::Command;
    use std::time::Duration;

    /// Runs wrk (one thread, `shape.conns` connections) for the warm-up, then for the measured
    /// time, sending the same request as the built-in client (path and headers).
    pub fn drive(wrk: &str, addr: SocketAddr, path: &str, shape: &Shape) -> Load {
        let script = std::env::temp_dir().join(format!("fngate-wrk-{}.lua", std::process::id()));
        std::fs::write(&script, shape.load.wrk_script(path)).unwrap();
        let run = |secs: Duration| {
            let out = Command::new(wrk)
                .args([
                    "-t1",
                    &format!("-c{}", shape.load.conns),
                    &format!("-d{}s", secs.as_secs().max(1)),
                    "--latency",
                    "-s",
                ])
                .arg(&script)
                .arg(format!("http://{addr}"))
                .output()
                .expect("wrk runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        if !shape.warmup.is_zero() {
            run(shape.warmup);
        }
        // wrk counts whole seconds.
        let secs = Duration::from_secs(shape.secs.as_secs().max(1));
        let text = run(secs);
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
        };
        let rps: f64 = field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let errors = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // The latency distribution's lines, as microseconds; the load's `latencies` hold just
        // the percentiles wrk gives, placed so that `percentile` reads them back.
        let micros = |v: &str| {
            let (n, unit) =
                v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
            let n: f64 = n.parse().unwrap_or(0.0);
            let scale = match unit {
                "us" => 1.0,
                "ms" => 1e3,
                "s" => 1e6,
                _ => 1.0,
            };
            (n * scale) as u32
        };
        let p = |q: &str| field(q).map_or(0, |v| micros(&v));
        let (p50, p99) = (p("50%"), p("99%"));
        // `percentile(99.0)` reads entry 990 of 1,000 (1-based): p99 from there on.
        let mut latencies = vec![p50; 989];
        latencies.extend(std::iter::repeat_n(p99, 11));
        Load {
            requests: (rps * secs.as_secs_f64()) as u64,
            errors,
            elapsed: secs,
            latencies,
        }
    }
}

fn median_by_rps(mut rows: Vec<Row>) -> Row {
    rows.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = rows.len() / 2;
    rows.swap_remove(mid)
}

/// For each target, its ratios to nginx's row of the same run (req/s, p99) as
/// "median [lowest – highest]": the VM drifts between runs more than between targets measured
/// back to back within one.
fn ratio_spread(targets: &[Target], results: &[Vec<Row>]) -> Vec<(&'static str, String, String)> {
    let Some(n) = targets.iter().position(|t| t.name == "nginx proxy") else {
        return Vec::new();
    };
    let summary = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let (lo, mid, hi) = (v[0], v[v.len() / 2], v[v.len() - 1]);
        format!("{mid:.2}× [{lo:.2} – {hi:.2}]")
    };
    let nginx = &results[n];
    targets
        .iter()
        .zip(results)
        .filter(|(t, r)| t.name != "nginx proxy" && !r.is_empty())
        .map(|(t, rows)| {
            let rps = rows.iter().zip(nginx).map(|(r, g)| r.rps / g.rps);
            let p99 = rows.iter().zip(nginx);
            let p99 = p99.map(|(r, g)| r.p99 as f64 / g.p99.max(1) as f64);
            (t.name, summary(rps.collect()), summary(p99.collect()))
        })
        .collect()
}

/// `FNGATE_BENCH_RECORD=FILE` appends every run's row to FILE, tab-separated, so that several
/// sittings can be summarised together (benches/sittings.py).
fn record(file: &Path, shape: &str, run: usize, r: &Row) {
    use std::io::Write;
    let (user, sys) = r.cpu_us.unwrap_or((0.0, 0.0));
    let cores: Vec<String> = r.cores.iter().map(|c| format!("{c:.0}")).collect();
    let line = format!(
        "{}\t{}\t{shape}\t{}\t{run}\t{:.0}\t{}\t{}\t{user:.2}\t{sys:.2}\t{}\t{}\n",
        std::process::id(),
        if wrk_binary().is_some() { "wrk" } else { "own" },
        r.name,
        r.rps,
        r.p50,
        r.p99,
        r.errors,
        cores.join("/"),
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("FNGATE_BENCH_RECORD is writable");
    f.write_all(line.as_bytes()).unwrap();
}

fn print_rows(rows: &[Row]) {
    let nginx_row = rows.iter().find(|r| r.name == "nginx proxy");
    println!("| target | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/req (user + sys) | errors | vs nginx req/s | vs nginx p99 | cores busy % |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let cpu = r.cpu_us.map_or("-".into(), |(u, s)| {
            format!("{:.1} ({u:.1} + {s:.1})", u + s)
        });
        let (x, p) = nginx_row.map_or(("-".into(), "-".into()), |n| {
            (
                format!("{:.2}×", r.rps / n.rps),
                format!("{:.2}×", r.p99 as f64 / n.p99.max(1) as f64),
            )
        });
        let cores: Vec<String> = r.cores.iter().map(|c| format!("{c:.0}")).collect();
        let p999 = match r.p999 {
            0 => "-".to_owned(),
            p => p.to_string(),
        };
        println!(
            "| {} | {:.0} | {} | {} | {p999} | {cpu} | {} | {x} | {p} | {} |",
            r.name,
            r.rps,
            r.p50,
            r.p99,
            r.errors,
            cores.join(" / ")
        );
    }
}

/// Opens `n` connections, each answered once and then left idle; returns them.
fn idle_clients(addr: SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    let get = Workload::get("idle", 1);
    let req = get.bytes(get.path);
    let mut open = Vec::with_capacity(n);
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            break;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(&req).is_err() || s.read(&mut buf).unwrap_or(0) == 0 {
            break;
        }
        open.push(s);
    }
    open
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (secs, warmup, runs, conns, idle) = if bench {
        (
            Duration::from_secs(env_or("FNGATE_BENCH_SECS", 10)),
            Duration::from_secs(2),
            env_or("FNGATE_BENCH_RUNS", 3),
            env_or("FNGATE_BENCH_CONNECTIONS", 64),
            10_000,
        )
    } else {
        (
            Duration::from_millis(300),
            Duration::from_millis(100),
            1,
            8,
            200,
        )
    };
    let fd_limit = raise_fd_limit();
    let cpu_count = cpus();
    // With one server thread, the gateway (and nginx) get CPU 0 to themselves; the client and
    // the stub share CPU 1. With more, nothing is pinned.
    let (server_cpu, client_cpu) = if cpu_count >= 2 && threads() == 1 {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    if let Some(cpu) = client_cpu {
        pin_to(cpu);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The stub gets a thread (and runtime) of its own, so that it also answers between runs.
    // Requests whose line names `big` get the 64 KiB reply.
    let stub_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stub = stub_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            stub_listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(stub_listener).unwrap();
            let small: &'static [u8] = Box::leak(stub_response(REPLY).into_boxed_slice());
            let big: &'static [u8] = Box::leak(stub_response(&big_reply()).into_boxed_slice());
            serve_by_head(listener, move |head| {
                let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
                match line.windows(3).any(|w| w == b"big") {
                    true => big,
                    false => small,
                }
            })
            .await
        });
    });

    let dir = std::env::temp_dir().join(format!("fngate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nginx_stub = match std::env::var("FNGATE_BENCH_STUB").as_deref() {
        Ok("nginx") => {
            Some(start_nginx_stub(&dir, client_cpu).expect("FNGATE_BENCH_STUB=nginx needs nginx"))
        }
        _ => None,
    };
    let stub = nginx_stub.as_ref().map_or(stub, |s| s.addr);
    let fngate = start_fngate(
        Path::new(env!("CARGO_BIN_EXE_fngate")),
        &dir,
        stub,
        server_cpu,
        true,
    );
    let other = std::env::var_os("FNGATE_BENCH_COMPARE").map(|bin| {
        start_fngate(
            Path::new(&bin),
            &dir,
            stub,
            server_cpu,
            compare_is_current(),
        )
    });
    let nginx = start_nginx(&dir, stub, server_cpu);

    // FNGATE_BENCH_SHAPES=get,post picks shapes by key; the default is every shape.
    let picked: Vec<String> = std::env::var("FNGATE_BENCH_SHAPES").map_or_else(
        |_| Vec::new(),
        |v| v.split(',').map(str::to_owned).collect(),
    );
    let mut workloads = Workload::all(conns);
    workloads.retain(|(key, _)| picked.is_empty() || picked.iter().any(|p| p == key));
    if !bench {
        // The smoke run: every shape once, with few connections.
        for (_, w) in &mut workloads {
            w.conns = w.conns.min(conns);
        }
    }
    let client = if wrk_binary().is_some() {
        "wrk (one thread)"
    } else {
        "the built-in client"
    };
    let stub_kind = if nginx_stub.is_some() {
        "nginx return 200"
    } else {
        "built-in"
    };
    println!("fngate load benchmark: {}s per run after {}s warm-up, median of {runs} run(s); client: {client}; stub: {stub_kind}; access logs: {}; server threads: {}", secs.as_secs_f64(), warmup.as_secs_f64(), if logging() { "on" } else { "off" }, threads());
    println!("CPUs: {cpu_count} (server pinned to {server_cpu:?}, client and stub to {client_cpu:?}); open files: {fd_limit}");
    // FNGATE_BENCH_ONLY=event,nginx runs only targets whose name contains one of the words.
    let only: Vec<String> = std::env::var("FNGATE_BENCH_ONLY").map_or_else(
        |_| Vec::new(),
        |v| v.split(',').map(str::to_owned).collect(),
    );
    let wanted = |name: &str| only.is_empty() || only.iter().any(|w| name.contains(w.as_str()));
    let serving = |name, server: &Server, path: String| Target {
        name,
        addr: server.addr,
        path,
        pid: Some(server.child.id()),
    };
    let recording = std::env::var_os("FNGATE_BENCH_RECORD").map(std::path::PathBuf::from);
    let mut summary = Vec::new();
    for (key, load) in &workloads {
        let path = load.path.to_owned();
        let mut targets = Vec::new();
        if *key == "get" {
            targets.push(Target {
                name: "stub, direct",
                addr: stub,
                path: path.clone(),
                pid: None,
            });
        }
        targets.push(serving("fngate event route", &fngate, path.clone()));
        if *key == "get" {
            let secure = path.replace("/users/", "/secure/") + "&api_key=" + BENCH_KEY;
            targets.push(serving(
                "fngate event route, apikey + rate limit",
                &fngate,
                secure,
            ));
        }
        targets.push(serving(
            "fngate pass-through",
            &fngate,
            format!("/pass{path}"),
        ));
        if let Some(o) = &other {
            targets.push(serving("other fngate event route", o, path.clone()));
        }
        if let Some(n) = &nginx {
            targets.push(serving("nginx proxy", n, path.clone()));
        }
        targets.retain(|t| wanted(t.name));
        let shape = Shape { load, warmup, secs };
        let mut results: Vec<Vec<Row>> = targets.iter().map(|_| Vec::new()).collect();
        for run in 0..runs {
            for (i, t) in targets.iter().enumerate() {
                let row = measure(&rt, t, &shape);
                if let Some(file) = &recording {
                    record(file, key, run, &row);
                }
                results[i].push(row);
            }
        }
        let spread = ratio_spread(&targets, &results);
        let rows: Vec<Row> = results
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(median_by_rps)
            .collect();
        println!();
        println!("### {} ({} connections)", load.name, load.conns);
        print_rows(&rows);
        assert!(
            rows.iter().all(|r| r.rps > 0.0 && r.errors == 0),
            "every target answered every request of {}",
            load.name
        );
        let busy = |name: &str| {
            rows.iter()
                .find(|r| r.name == name)
                .map_or("-".into(), |r| {
                    let c: Vec<String> = r.cores.iter().map(|c| format!("{c:.0}")).collect();
                    c.join("/")
                })
        };
        for (name, rps, p99) in spread {
            if name != "stub, direct" {
                summary.push(format!(
                    "| {} | {name} | {rps} | {p99} | {} · {} |",
                    load.name,
                    busy(name),
                    busy("nginx proxy")
                ));
            }
        }
    }
    if nginx.is_none() {
        println!("(nginx is not installed: benches/load.sh installs it from Debian's packages)");
    }
    if !summary.is_empty() {
        println!();
        println!("Ratios to nginx within each run (targets measured back to back), median [lowest – highest] of {runs} run(s):");
        println!("| shape | target | req/s vs nginx | p99 vs nginx | cores busy % (each CPU): its run / nginx's |");
        println!("|---|---|---:|---:|---|");
        for line in summary {
            println!("{line}");
        }
    }

    let pid = fngate.child.id();
    let before = rss_kib(pid);
    let clients = idle_clients(fngate.addr, idle);
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    println!();
    println!("fngate RSS: {:.1} MiB after the load runs, {:.1} MiB holding {} idle keep-alive client connections", before as f64 / 1024.0, after as f64 / 1024.0, clients.len());
    drop(clients);
    if let Some(n) = &nginx {
        let nginx_clients = idle_clients(n.addr, idle);
        std::thread::sleep(Duration::from_millis(500));
        println!(
            "nginx RSS: {:.1} MiB holding {} idle keep-alive client connections",
            rss_kib(n.child.id()) as f64 / 1024.0,
            nginx_clients.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
