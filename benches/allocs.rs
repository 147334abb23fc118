//! Allocations per request on the event route, counted by a global allocator around an
//! in-process gateway (one worker thread). The stub and the clients below use fixed buffers
//! and allocate nothing per request, so the count is the gateway's.
//!
//!     cargo bench --bench allocs
//!
//! `FNGATE_BENCH_CONNECTIONS=16` spreads the requests over that many client connections (one
//! thread each). Under callgrind, which runs one thread at a time, one connection makes the
//! gateway's worker sleep and wake twice a request; many connections keep it busy, as a load
//! test does, so the instruction count is closer to the gateway's cost under load.

mod support;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Allocations by requested size (the last slot: 4 KiB and more), to tell them apart.
static BY_SIZE: [AtomicU64; 257] = [const { AtomicU64::new(0) }; 257];

fn count(size: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    BY_SIZE[(size / 16).min(256)].fetch_add(1, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REPLY_BODY: &str = r#"{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"id\":\"42\",\"ok\":true}"}"#;
const REQUEST: &[u8] = b"GET /users/42?lang=zh&page=2 HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: fngate-bench/1\r\nAccept: application/json\r\nAccept-Language: zh-CN,zh;q=0.9\r\nX-Trace: 7f3a9c\r\n\r\n";

/// Reads one HTTP message (head + Content-Length body) into `buf`; returns its length.
fn read_message(s: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        if let Some((head, body)) = support::parse_head(&buf[..filled]) {
            if filled >= head + body {
                return Some(head + body);
            }
        }
    }
}

fn stub() -> SocketAddr {
    let reply: &'static [u8] = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{REPLY_BODY}",
        REPLY_BODY.len()
    )
    .leak()
    .as_bytes();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                while read_message(&mut conn, &mut buf).is_some() {
                    if conn.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (warmup, n) = if bench {
        (2_000, 20_000u64)
    } else {
        (200, 500)
    };
    let stub = stub();
    let port = support::free_port();
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 1\n  grace_period: 0s\n  access_log: {{path: \"off\"}}\nfunctions:\n  stub:\n    endpoints: [\"http://{stub}/invoke\"]\napis:\n  - id: bench\n    routes:\n      - path: /users/{{id}}\n        function: stub\n"
    );
    let config =
        fngate::config::Config::from_yaml(&yaml, std::path::Path::new("."), "bench.yaml").unwrap();
    let stopper = fngate::server::Stopper::default();
    let stop = stopper.clone();
    let gateway = std::thread::spawn(move || fngate::server::run_until(config, &stop).unwrap());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    support::wait_listening(addr);
    let conns: u64 = std::env::var("FNGATE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 256);
    // Every client warms up, then all are counted over the same stretch.
    let stages = std::sync::Arc::new(std::sync::Barrier::new(conns as usize + 1));
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            let stages = stages.clone();
            std::thread::spawn(move || {
                let mut client = TcpStream::connect(addr).unwrap();
                client.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut round = |count: u64| {
                    for _ in 0..count {
                        client.write_all(REQUEST).unwrap();
                        let len = read_message(&mut client, &mut buf).expect("an answer");
                        assert!(
                            buf[..len].starts_with(b"HTTP/1.1 200"),
                            "{}",
                            String::from_utf8_lossy(&buf[..len])
                        );
                    }
                };
                round(warmup / conns);
                stages.wait();
                round(n / conns);
                stages.wait();
            })
        })
        .collect();
    stages.wait();
    let sizes0: Vec<u64> = BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    stages.wait();
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let n = n / conns * conns;
    println!(
        "event route: {:.1} allocations and {:.0} bytes allocated per request ({n} requests, {conns} connection(s), access log off)",
        (a1 - a0) as f64 / n as f64,
        (b1 - b0) as f64 / n as f64
    );
    let mut sizes: Vec<(usize, f64)> = BY_SIZE
        .iter()
        .zip(sizes0)
        .enumerate()
        .map(|(i, (c, c0))| (i * 16, (c.load(Ordering::Relaxed) - c0) as f64 / n as f64))
        .filter(|(_, per)| *per >= 0.05)
        .collect();
    sizes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = sizes
        .iter()
        .map(|(size, per)| format!("{size}..{}: {per:.1}", size + 15))
        .collect();
    println!("per request, by size in bytes: {}", shown.join(", "));
    for c in clients {
        c.join().unwrap();
    }
    stopper.stop();
    let _ = gateway.join();
}
