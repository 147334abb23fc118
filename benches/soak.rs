//! The soak (docs/reliability.md): 1,000,000 requests over 256 keep-alive connections on the
//! event route, to a function that gives each kind of reply in turn — a good one, one that
//! breaks the contract, one that raised, its own 404, a base64 body, several Set-Cookie lines —
//! with every status checked against the kind, and the gateway's RSS sampled every second.
//!
//!     cargo bench --bench soak
//!
//! FNGATE_SOAK_REQUESTS and FNGATE_SOAK_CONNECTIONS change the size. Under `cargo test` it runs
//! 3,000 requests over 16 connections, to keep the harness working.

mod support;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncWriteExt;

/// (path segment, the function's reply as its runtime sends it, the status the client gets).
const KINDS: [(&str, &str, u16); 6] = [
    ("ok", "200|{\"statusCode\":200,\"body\":\"fine\"}", 200),
    ("invalid", "200|\"download file successfully\"", 503),
    (
        "raised",
        "500|{\"errorType\":\"ValueError\",\"errorMessage\":\"no\"}",
        503,
    ),
    (
        "notfound",
        "200|{\"statusCode\":404,\"body\":\"none here\"}",
        404,
    ),
    (
        "base64",
        "200|{\"statusCode\":200,\"isBase64Encoded\":true,\"body\":\"aGVsbG8=\"}",
        200,
    ),
    (
        "cookies",
        "200|{\"statusCode\":201,\"headers\":{\"Set-Cookie\":[\"a=1\",\"b=2\"]},\"body\":\"\"}",
        201,
    ),
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The function: reads the kind from the event's path and answers that kind.
async fn serve_kinds(listener: tokio::net::TcpListener) {
    let replies: Vec<(&'static str, Vec<u8>)> = KINDS
        .iter()
        .map(|(kind, reply, _)| {
            let (status, body) = reply.split_once('|').unwrap();
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            (*kind, [head.as_bytes(), body.as_bytes()].concat())
        })
        .collect();
    let replies: &'static [(&str, Vec<u8>)] = Box::leak(replies.into_boxed_slice());
    serve_by(listener, move |event| {
        let kind = replies.iter().find(|(k, _)| {
            let needle = format!("\"path\":\"/kind/{k}\"");
            event.windows(needle.len()).any(|w| w == needle.as_bytes())
        });
        kind.map_or(&replies[0].1[..], |(_, r)| &r[..])
    })
    .await
}

/// One connection's share: requests in turn over the kinds; statuses that are not the kind's.
async fn connection(
    addr: SocketAddr,
    requests: u64,
    offset: usize,
    done: Arc<AtomicU64>,
) -> (u64, u64) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut unexpected, mut errors) = (0u64, 0u64);
    for i in 0..requests {
        let (kind, _, want) = KINDS[(i as usize + offset) % KINDS.len()];
        let request = format!("GET /kind/{kind} HTTP/1.1\r\nHost: soak\r\n\r\n");
        if conn.write_all(request.as_bytes()).await.is_err() {
            errors += 1;
            conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            continue;
        }
        if !read_answer(&mut conn, &mut buf).await {
            errors += 1;
            conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            continue;
        }
        let status: u16 = std::str::from_utf8(&buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != want {
            unexpected += 1;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    (unexpected, errors)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total = if bench {
        env_or("FNGATE_SOAK_REQUESTS", 1_000_000)
    } else {
        3_000
    };
    let conns = if bench {
        env_or("FNGATE_SOAK_CONNECTIONS", 256)
    } else {
        16
    };
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_kinds(l));
        addr
    });
    let dir = std::env::temp_dir().join(format!("fngate-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let conf = dir.join("soak.yaml");
    std::fs::write(
        &conf,
        format!("server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 2\n  grace_period: 0s\n  access_log: {{path: \"off\"}}\nfunctions:\n  fn:\n    endpoints: [\"http://{stub}/\"]\napis:\n  - id: soak\n    routes:\n      - path: /kind/{{kind}}\n        function: fn\n"),
    )
    .unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    let pid = gateway.id();

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (stop, samples, done) = (stop.clone(), samples.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                samples
                    .lock()
                    .unwrap()
                    .push((done.load(Ordering::Relaxed), rss_kib(pid)));
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let started = Instant::now();
    let (unexpected, errors) = rt.block_on(async {
        // The remainder goes to the first connections, so that exactly `total` are sent.
        let share = |c: u64| total / conns + u64::from(c < total % conns);
        let tasks: Vec<_> = (0..conns)
            .map(|c| tokio::spawn(connection(addr, share(c), c as usize, done.clone())))
            .collect();
        let mut sum = (0, 0);
        for t in tasks {
            let (u, e) = t.await.unwrap();
            sum = (sum.0 + u, sum.1 + e);
        }
        sum
    });
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let final_rss = rss_kib(pid);
    let _ = gateway.kill();
    let _ = gateway.wait();

    let samples = samples.lock().unwrap().clone();
    let answered = done.load(Ordering::Relaxed);
    // RSS once the first tenth of the requests is through (warm pools, allocator arenas).
    let warm = samples
        .iter()
        .find(|(n, _)| *n >= answered / 10)
        .map_or(final_rss, |s| s.1);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(final_rss);
    println!(
        "soak: {answered} requests over {conns} connections in {:.1} s ({:.0} req/s)",
        took.as_secs_f64(),
        answered as f64 / took.as_secs_f64()
    );
    println!("unexpected statuses: {unexpected}; broken connections: {errors}");
    println!(
        "gateway RSS: {:.1} MiB after warm-up, {:.1} MiB at the end (growth {:+.1} MiB), peak {:.1} MiB; {} samples",
        warm as f64 / 1024.0,
        final_rss as f64 / 1024.0,
        (final_rss as f64 - warm as f64) / 1024.0,
        peak as f64 / 1024.0,
        samples.len()
    );
    if bench {
        let series: Vec<String> = samples
            .iter()
            .map(|(n, r)| format!("{n}:{:.1}", *r as f64 / 1024.0))
            .collect();
        println!("samples (requests:MiB): {}", series.join(" "));
    }
    assert_eq!(answered, total, "every request answered");
    assert_eq!(unexpected, 0, "every status was the kind's");
    assert_eq!(errors, 0, "no connection broke");
    let _ = std::fs::remove_dir_all(&dir);
}
