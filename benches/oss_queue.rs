//! Accepted OSS notifications per second on each queue store, in one run (docs/scaling.md):
//! the local redb file, and Redis Streams with `appendfsync always` and `everysec`. One
//! gateway, 16 keep-alive senders posting notifications with unique keys, a function stub that
//! answers at once; accepted/s is the 2xx answers per second, delivered/s how fast the
//! functions received every accepted event.
//!
//!     cargo bench --bench oss_queue      # 5 s per store (redis-server must be installed)
//!
//! Under `cargo test` it runs a short smoke pass: every answer 2xx, every event delivered.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{free_port, parse_head, stub_response, wait_listening};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "bench-token-0123456789";
const SENDERS: usize = 16;
/// Events the function stub has received.
static DELIVERED: AtomicU64 = AtomicU64::new(0);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(dir: &Path, fsync: &str) -> (Killed, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server; .ci/run does)");
    wait_listening(SocketAddr::from(([127, 0, 0, 1], port)));
    (Killed(child), format!("redis://127.0.0.1:{port}"))
}

fn gateway(dir: &Path, queue: &str, function: SocketAddr) -> (Killed, SocketAddr) {
    let port = free_port();
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 0s\nfunctions:\n  fn:\n    endpoints: [\"http://{function}/invoke\"]\ntriggers:\n  oss:\n    - name: t\n      function: fn\n      bucket: b\n      triggerConfig:\n        events: s3:ObjectCreated:*\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: async\n  queue_capacity: 10000000\n  {queue}\n"
    );
    let config = dir.join("fngate.yaml");
    std::fs::write(&config, yaml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr);
    (Killed(child), addr)
}

fn notification(key: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"2026-12-05T10:00:00.000Z","s3":{{"bucket":{{"name":"b"}},"object":{{"key":"{key}","size":3,"eTag":"e"}}}}}}]}}"#
    );
    let mut r = format!(
        "POST /oss/notify HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

/// One sender: unique notifications, one at a time, until `end`; (2xx answers, others, latencies µs).
async fn sender(addr: SocketAddr, n: usize, end: Instant) -> (u64, u64, Vec<u32>) {
    let (mut ok, mut bad, mut lat) = (0, 0, Vec::new());
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return (0, 1, lat);
    };
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut i = 0u64;
    while Instant::now() < end {
        let sent = Instant::now();
        let key = format!("{}-{n}-{i}", uuid_like(sent));
        i += 1;
        if conn.write_all(&notification(&key)).await.is_err() {
            return (ok, bad + 1, lat);
        }
        let mut filled = 0;
        let answered = loop {
            match conn.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => break None,
                Ok(got) => filled += got,
            }
            if let Some((head, body)) = parse_head(&buf[..filled]) {
                if filled >= head + body {
                    break Some(buf.starts_with(b"HTTP/1.1 2"));
                }
            }
        };
        match answered {
            Some(true) => {
                ok += 1;
                lat.push(sent.elapsed().as_micros() as u32);
            }
            Some(false) => bad += 1,
            None => return (ok, bad + 1, lat),
        }
    }
    (ok, bad, lat)
}

/// Keys unique across runs of one process.
fn uuid_like(t: Instant) -> u128 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    t.duration_since(*START.get_or_init(Instant::now))
        .as_nanos()
}

struct Measured {
    accepted: u64,
    errors: u64,
    secs: f64,
    p50: u32,
    p99: u32,
    drained: f64,
}

fn measure(rt: &tokio::runtime::Runtime, addr: SocketAddr, secs: f64) -> Measured {
    let before = DELIVERED.load(Ordering::Relaxed);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..SENDERS)
            .map(|n| tokio::spawn(sender(addr, n, end)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (mut accepted, mut errors, mut lat) = (0, 0, Vec::new());
    for (ok, bad, mut l) in results {
        accepted += ok;
        errors += bad;
        lat.append(&mut l);
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().max(1) - 1))
            .copied()
            .unwrap_or(0)
    };
    // Every accepted event reaches the function (at least once).
    let until = Instant::now() + Duration::from_secs(120);
    while DELIVERED.load(Ordering::Relaxed) - before < accepted {
        assert!(Instant::now() < until, "accepted events not delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
    Measured {
        accepted,
        errors,
        secs: elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        drained: started.elapsed().as_secs_f64(),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let secs = if bench { 5.0 } else { 1.0 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stub = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let function = stub.local_addr().unwrap();
    let response: &'static [u8] = Box::leak(stub_response(b"\"ok\"").into_boxed_slice());
    rt.spawn(support::serve_by(stub, move |_| {
        DELIVERED.fetch_add(1, Ordering::Relaxed);
        response
    }));
    let root = std::env::temp_dir().join(format!("fngate-oss-bench-{}", std::process::id()));
    let stores: &[(&str, Option<&str>)] = if bench {
        &[
            ("redb", None),
            ("redis, appendfsync always", Some("always")),
            ("redis, appendfsync everysec", Some("everysec")),
        ]
    } else {
        &[
            ("redb", None),
            ("redis, appendfsync always", Some("always")),
        ]
    };
    println!("| store | accepted/s | p50 ms | p99 ms | delivered/s | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, fsync) in stores {
        let dir: PathBuf = root.join(name.replace([' ', ','], "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let (_redis, queue) = match fsync {
            None => (
                None,
                format!(
                    "queue: {{kind: redb, dir: {}}}",
                    dir.join("queue").display()
                ),
            ),
            Some(f) => {
                let (server, url) = redis(&dir, f);
                (
                    Some(server),
                    format!("queue: {{kind: redis, url: \"{url}\"}}"),
                )
            }
        };
        let (_gw, addr) = gateway(&dir, &queue, function);
        measure(&rt, addr, 0.5); // warm-up: connections, scripts, the consumer group
        let m = measure(&rt, addr, secs);
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {} |",
            m.accepted as f64 / m.secs,
            f64::from(m.p50) / 1000.0,
            f64::from(m.p99) / 1000.0,
            m.accepted as f64 / m.drained,
            m.errors
        );
        assert_eq!(m.errors, 0, "{name}: every notification answered 2xx");
    }
    let _ = std::fs::remove_dir_all(root);
}
