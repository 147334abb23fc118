//! Shared by the benchmarks: a fast function stub, an HTTP/1.1 keep-alive load generator, CPU
//! pinning, and per-process CPU time and memory from /proc.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stub's answer: a valid reply for event routes, and an ordinary JSON response for
/// pass-through and direct requests.
pub const REPLY: &[u8] = br#"{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"id\":\"42\",\"ok\":true}"}"#;

/// The benchmark's request: `GET /users/42?lang=zh&page=2` with a few headers.
pub fn request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: fngate-bench/1\r\nAccept: application/json\r\nAccept-Language: zh-CN,zh;q=0.9\r\nX-Trace: 7f3a9c\r\n\r\n"
    )
    .into_bytes()
}

/// A stub's whole response carrying `reply`.
pub fn stub_response(reply: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        reply.len()
    )
    .into_bytes();
    r.extend_from_slice(reply);
    r
}

/// Where a request head ends, and the body length it declares.
pub fn parse_head(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut len = 0;
    for line in buf[..end].split(|&b| b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            len = std::str::from_utf8(&line[15..])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        }
    }
    Some((end, len))
}

/// Serves `REPLY` to every request on every connection (keep-alive, pipelining-safe).
pub async fn serve_stub(listener: tokio::net::TcpListener) {
    let response: &'static [u8] = Box::leak(stub_response(REPLY).into_boxed_slice());
    serve_by(listener, move |_| response).await
}

/// Serves every request on every connection with the answer `reply` picks for its body
/// (keep-alive, pipelining-safe).
pub async fn serve_by(
    listener: tokio::net::TcpListener,
    reply: impl Fn(&[u8]) -> &'static [u8] + Copy + Send + 'static,
) {
    serve_with(listener, move |_, body| reply(body)).await
}

/// Serves every request with the whole response (status line on) `reply` picks for its head.
pub async fn serve_by_head(
    listener: tokio::net::TcpListener,
    reply: impl Fn(&[u8]) -> &'static [u8] + Copy + Send + 'static,
) {
    serve_with(listener, move |head, _| reply(head)).await
}

async fn serve_with(
    listener: tokio::net::TcpListener,
    reply: impl Fn(&[u8], &[u8]) -> &'static [u8] + Copy + Send + 'static,
) {
    while let Ok((mut conn, _)) = listener.accept().await {
        let _ = conn.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut filled = 0;
            loop {
                match conn.read(&mut buf[filled..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
                while let Some((head, body)) = parse_head(&buf[..filled]) {
                    if filled < head + body {
                        break;
                    }
                    if conn
                        .write_all(reply(&buf[..head], &buf[head..head + body]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    buf.copy_within(head + body..filled, 0);
                    filled -= head + body;
                }
                if filled == buf.len() {
                    return;
                }
            }
        });
    }
}

/// What one load run measured.
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile(&self, p: f64) -> u32 {
        if self.latencies.is_empty() {
            return 0;
        }
        let i = ((self.latencies.len() as f64 * p / 100.0).ceil() as usize)
            .clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

/// `connections` keep-alive connections, each sending `request` and reading the answer in a
/// loop (closed loop); only answers after `warmup` are measured, for `duration`.
pub async fn drive(
    addr: SocketAddr,
    request: Vec<u8>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Load {
    let request: &'static [u8] = Box::leak(request.into_boxed_slice());
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(one_connection(addr, request, start, end)))
        .collect();
    let mut load = Load {
        requests: 0,
        errors: 0,
        elapsed: duration,
        latencies: Vec::new(),
    };
    for t in tasks {
        if let Ok((ok, errors, mut lat)) = t.await {
            load.requests += ok;
            load.errors += errors;
            load.latencies.append(&mut lat);
        }
    }
    load.latencies.sort_unstable();
    load
}

async fn one_connection(
    addr: SocketAddr,
    request: &'static [u8],
    start: Instant,
    end: Instant,
) -> (u64, u64, Vec<u32>) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let (mut ok, mut errors) = (0u64, 0u64);
    // Room for the largest answer measured (the 64 KiB reply).
    let mut buf = vec![0u8; 256 * 1024];
    'connect: while Instant::now() < end {
        let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = conn.set_nodelay(true);
        loop {
            let sent = Instant::now();
            if sent >= end {
                break 'connect;
            }
            if conn.write_all(request).await.is_err() {
                errors += 1;
                continue 'connect;
            }
            let complete =
                read_answer(&mut conn, &mut buf).await && buf.starts_with(b"HTTP/1.1 200");
            if !complete {
                errors += 1;
                continue 'connect;
            }
            if sent >= start {
                ok += 1;
                latencies.push(sent.elapsed().as_micros() as u32);
            }
        }
    }
    (ok, errors, latencies)
}

/// Reads one whole answer (head and Content-Length body) into the start of `buf`; false when
/// the connection ends first or the answer does not fit.
pub async fn read_answer(conn: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        match conn.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
        if let Some((head, body)) = parse_head(&buf[..filled]) {
            if filled >= head + body {
                return true;
            }
        }
        if filled == buf.len() {
            return false;
        }
    }
}

/// Pins the calling thread (and the threads it creates afterwards) to one CPU.
pub fn pin_to(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; the calls take pointers to it and its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// User + system CPU time of a process so far.
pub fn cpu_time(pid: u32) -> CpuTime {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // After the command name: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    let field = |i: usize| {
        let ticks = fields.get(i).and_then(|v| v.parse::<u64>().ok());
        Duration::from_micros(ticks.unwrap_or(0) * 1_000_000 / hz)
    };
    CpuTime {
        user: field(11),
        system: field(12),
    }
}

/// A process's CPU time so far, in user space and in the kernel.
#[derive(Clone, Copy)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-file limit to its hard limit (children inherit it).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit take a pointer to a plain struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < until, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Busy and total jiffies of each CPU so far (`/proc/stat`), to tell how busy each core was
/// over a run.
pub fn core_times() -> Vec<(u64, u64)> {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// Each core's busy share between two `core_times` readings, in percent.
pub fn core_busy(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((b0, t0), (b1, t1))| 100.0 * (b1 - b0) as f64 / (t1 - t0).max(1) as f64)
        .collect()
}
