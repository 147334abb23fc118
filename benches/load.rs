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
//! its log through RUST_LOG instead). FNGATE_BENCH_CLIENT=wrk drives the load with wrk (one
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

const EVENT_PATH: &str = "/users/42?lang=zh&page=2";
/// The same request to the same function through `auth: apikey` and a rate limit (a limit no
/// client reaches: the cost of checking it, not of refusing).
const SECURE_PATH: &str = "/secure/42?lang=zh&page=2&api_key=bench-key-0123456789abcdef";
const PASS_PATH: &str = "/pass/users/42?lang=zh&page=2";

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

/// `own`: the binary built from this tree (it has `server.access_log`).
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
        true => "      - path: /secure/{id}\n        methods: [GET]\n        function: stub\n        auth: apikey\n        rate_limit: {requests: 1000000000, per: 1s, key: api_key}\nauth:\n  apikey:\n    query: api_key\n    keys:\n      - {key: bench-key-0123456789abcdef, user: bench}\n",
        false => "",
    };
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 1\n  grace_period: 0s\n  keepalive_timeout: 600s\n  max_connections: 12000\n{access_log}functions:\n  stub:\n    endpoints: [\"http://{stub}/invoke\"]\n    timeout: 10s\napis:\n  - id: bench\n    stage: test\n    routes:\n      - path: /users/{{id}}\n        methods: [GET]\n        function: stub\n      - path: /pass/{{*rest}}\n        upstream: http://{stub}\n{secure}"
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
    let server = format!(
        "  access_log off;\n  server {{\n    listen 127.0.0.1:{port} reuseport backlog=4096;\n    location / {{\n      default_type application/json;\n      return 200 '{reply}';\n    }}\n  }}\n"
    );
    let conf = nginx_conf(&dir, &server);
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
    let conf = nginx_conf(dir, &server);
    Some(run_nginx(nginx, dir, &conf, port, cpu))
}

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// One nginx worker with its files under `dir`, long keep-alive, and `http` inside `http {}`.
fn nginx_conf(dir: &Path, http: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\nworker_rlimit_nofile 20000;\nevents {{ worker_connections 16384; }}\nhttp {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 10000000;\n  keepalive_timeout 600s;\n{http}}}\n"
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

/// One thing to load: a name, where it listens, the request path, and the process to account.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    pid: Option<u32>,
}

/// How hard and how long.
struct Shape {
    conns: usize,
    warmup: Duration,
    secs: Duration,
}

fn measure(rt: &tokio::runtime::Runtime, t: &Target, shape: &Shape) -> Row {
    let before = t.pid.map(cpu_time);
    let cores_before = core_times();
    let load = match wrk_binary() {
        Some(wrk) => wrk::drive(&wrk, t.addr, t.path, shape),
        None => rt.block_on(drive(
            t.addr,
            request(t.path),
            shape.conns,
            shape.warmup,
            shape.secs,
        )),
    };
    let cores = core_busy(&cores_before, &core_times());
    let cpu_us = t.pid.zip(before).map(|(p, b)| {
        // CPU time cannot be split between warm-up and measurement, so the warm-up's
        // requests are counted at the measured rate.
        let now = cpu_time(p);
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
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"GET\"\nwrk.path = \"{path}\"\nwrk.headers[\"Host\"] = \"bench.local\"\nwrk.headers[\"User-Agent\"] = \"fngate-bench/1\"\nwrk.headers[\"Accept\"] = \"application/json\"\nwrk.headers[\"Accept-Language\"] = \"zh-CN,zh;q=0.9\"\nwrk.headers[\"X-Trace\"] = \"7f3a9c\"\n"
            ),
        )
        .unwrap();
        let run = |secs: Duration| {
            let out = Command::new(wrk)
                .args([
                    "-t1",
                    &format!("-c{}", shape.conns),
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

/// For each target, its ratios to nginx's row of the same run, as table lines: the VM drifts
/// between runs more than between targets measured back to back within one.
fn ratio_spread(targets: &[Target], results: &[Vec<Row>]) -> Vec<String> {
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
            let (rps, p99) = (summary(rps.collect()), summary(p99.collect()));
            format!("| {} | {rps} | {p99} |", t.name)
        })
        .collect()
}

/// Opens `n` connections, each answered once and then left idle; returns them.
fn idle_clients(addr: SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    let req = request(EVENT_PATH);
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
    // The gateway (and nginx) get CPU 0 to themselves; the client and the stub share CPU 1.
    let (server_cpu, client_cpu) = if cpu_count >= 2 {
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
    let stub_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stub = stub_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            stub_listener.set_nonblocking(true).unwrap();
            serve_stub(tokio::net::TcpListener::from_std(stub_listener).unwrap()).await
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
    let other = std::env::var_os("FNGATE_BENCH_COMPARE")
        .map(|bin| start_fngate(Path::new(&bin), &dir, stub, server_cpu, false));
    let nginx = start_nginx(&dir, stub, server_cpu);

    println!("fngate load benchmark: {conns} keep-alive connections, {}s per run after {}s warm-up, median of {runs} run(s)", secs.as_secs_f64(), warmup.as_secs_f64());
    println!("CPUs: {cpu_count} (server pinned to {server_cpu:?}, client and stub to {client_cpu:?}); open files: {fd_limit}");
    // FNGATE_BENCH_ONLY=event,nginx runs only targets whose name contains one of the words.
    let only: Vec<String> = std::env::var("FNGATE_BENCH_ONLY").map_or_else(
        |_| Vec::new(),
        |v| v.split(',').map(str::to_owned).collect(),
    );
    let wanted = |name: &str| only.is_empty() || only.iter().any(|w| name.contains(w.as_str()));
    let serving = |name, server: &Server, path| Target {
        name,
        addr: server.addr,
        path,
        pid: Some(server.child.id()),
    };
    let mut targets = vec![
        Target {
            name: "stub, direct",
            addr: stub,
            path: EVENT_PATH,
            pid: None,
        },
        serving("fngate event route", &fngate, EVENT_PATH),
        serving(
            "fngate event route, apikey + rate limit",
            &fngate,
            SECURE_PATH,
        ),
        serving("fngate pass-through", &fngate, PASS_PATH),
    ];
    let compared = other.as_ref();
    targets.extend(compared.map(|o| serving("other fngate event route", o, EVENT_PATH)));
    targets.extend(
        nginx
            .as_ref()
            .map(|n| serving("nginx proxy", n, EVENT_PATH)),
    );
    targets.retain(|t| wanted(t.name));
    let shape = Shape {
        conns,
        warmup,
        secs,
    };
    let mut results: Vec<Vec<Row>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, t) in targets.iter().enumerate() {
            results[i].push(measure(&rt, t, &shape));
        }
    }
    let spread = ratio_spread(&targets, &results);
    let rows: Vec<Row> = results
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(median_by_rps)
        .collect();
    let nginx_row = rows.iter().find(|r| r.name == "nginx proxy");
    println!();
    println!("| target | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/req (user + sys) | errors | vs nginx req/s | vs nginx p99 | cores busy % |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
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
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.rps,
            r.p50,
            r.p99,
            if r.p999 == 0 {
                "-".to_owned()
            } else {
                r.p999.to_string()
            },
            cpu,
            r.errors,
            x,
            p,
            cores.join(" / ")
        );
    }
    if nginx.is_none() {
        println!("(nginx is not installed: benches/load.sh installs it from Debian's packages)");
    }
    if !spread.is_empty() {
        println!();
        println!("Ratios to nginx within each run (targets measured back to back), median [lowest – highest] of {runs} run(s):");
        println!("| target | req/s vs nginx | p99 vs nginx |");
        println!("|---|---:|---:|");
        for line in spread {
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
    assert!(rows.iter().all(|r| r.rps > 0.0), "every target answered");
}
