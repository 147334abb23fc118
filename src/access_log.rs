//! The access log (`server.access_log`): one line per request, text or JSON, written by a thread
//! of its own so that a request never waits on a disk or a pipe.
//!
//! As nginx's `access_log … buffer= flush=`: a worker formats its line into a buffer of its own
//! (a shard, found by thread; the lock is uncontended); a full buffer is handed to the writer
//! over a bounded channel, and the writer also takes whatever has waited `flush` in a buffer.
//! When the writer falls behind and the channel is full, the buffer's lines are dropped and
//! counted (`fngate_access_log_dropped_lines_total`) rather than the request held.

use crate::config::AccessLogSettings;
use crate::event::json;
use prometheus_client::metrics::counter::Counter;
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Full buffers that may wait for the writer; past this, lines are dropped.
const QUEUED: usize = 64;

/// What one line says.
pub struct Entry<'a> {
    pub time: SystemTime,
    pub peer: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub request_id: &'a str,
    pub error: Option<&'static str>,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub gateway_us: u64,
    pub function_us: u64,
}

#[derive(Default)]
struct Shard {
    buf: Vec<u8>,
    lines: u64,
}

enum Msg {
    Lines(Vec<u8>),
    Stop,
}

pub struct AccessLog {
    json: bool,
    buffer: usize,
    shards: Arc<[Mutex<Shard>]>,
    hasher: foldhash::fast::FixedState,
    tx: SyncSender<Msg>,
    dropped: Counter,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens the file (appending) or takes stdout, and starts the writer thread.
    pub fn start(
        settings: &AccessLogSettings,
        threads: usize,
        dropped: Counter,
    ) -> Result<AccessLog, String> {
        let out: Box<dyn Write + Send> = match &settings.path {
            None => Box::new(std::io::stdout()),
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the access log {}: {e}", path.display()))?,
            ),
        };
        // A few shards per worker: threads rarely share one, and sharing only costs a wait.
        let shards: Arc<[Mutex<Shard>]> = (0..threads.max(1) * 4 + 1)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        let (tx, rx) = mpsc::sync_channel(QUEUED);
        let writer = Writer {
            out,
            rx,
            shards: shards.clone(),
            flush: settings.flush,
        };
        let thread = std::thread::Builder::new()
            .name("fngate-access-log".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the access log writer: {e}"))?;
        Ok(AccessLog {
            json: settings.json,
            buffer: settings.buffer,
            shards,
            hasher: foldhash::fast::FixedState::default(),
            tx,
            dropped,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// Adds a line; never blocks on the output.
    pub fn write(&self, e: &Entry) {
        let i = self.hasher.hash_one(std::thread::current().id()) as usize % self.shards.len();
        let Ok(mut shard) = self.shards[i].lock() else {
            return;
        };
        if self.json {
            push_json(&mut shard.buf, e);
        } else {
            push_text(&mut shard.buf, e);
        }
        shard.lines += 1;
        if shard.buf.len() >= self.buffer {
            let lines = std::mem::take(&mut shard.lines);
            let full = std::mem::replace(&mut shard.buf, Vec::with_capacity(self.buffer));
            drop(shard);
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                self.tx.try_send(Msg::Lines(full))
            {
                self.dropped.inc_by(lines);
            }
        }
    }

    /// Writes out everything buffered and stops the writer (at shutdown).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.writer.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Writer {
    out: Box<dyn Write + Send>,
    rx: Receiver<Msg>,
    shards: Arc<[Mutex<Shard>]>,
    flush: Duration,
}

impl Writer {
    fn run(mut self) {
        let mut swept = Instant::now();
        loop {
            let wait = self.flush.saturating_sub(swept.elapsed());
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Lines(bytes)) => self.put(&bytes),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    while let Ok(Msg::Lines(bytes)) = self.rx.try_recv() {
                        self.put(&bytes);
                    }
                    self.sweep();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if swept.elapsed() >= self.flush {
                self.sweep();
                swept = Instant::now();
            }
        }
    }

    /// Takes what waits in every worker's buffer.
    fn sweep(&mut self) {
        let shards = self.shards.clone();
        for shard in shards.iter() {
            let taken = match shard.lock() {
                Ok(mut s) if !s.buf.is_empty() => {
                    s.lines = 0;
                    std::mem::take(&mut s.buf)
                }
                _ => continue,
            };
            self.put(&taken);
        }
        let _ = self.out.flush();
    }

    fn put(&mut self, bytes: &[u8]) {
        if let Err(e) = self.out.write_all(bytes) {
            tracing::warn!("cannot write the access log: {e}");
        }
    }
}

/// `time=… peer=… method=… path="…" route="…" status=… request_id=… error=… bytes_in=…
/// bytes_out=… gateway_us=… function_us=…`: logfmt, one line.
fn push_text(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(b"time=");
    crate::text::push_rfc3339_millis(out, e.time);
    out.extend_from_slice(b" peer=");
    push_bare(out, e.peer);
    out.extend_from_slice(b" method=");
    push_bare(out, e.method);
    out.extend_from_slice(b" path=");
    push_quoted(out, e.path);
    out.extend_from_slice(b" route=");
    push_quoted(out, e.route);
    out.extend_from_slice(b" status=");
    push_u64(out, e.status.into());
    out.extend_from_slice(b" request_id=");
    push_bare(out, e.request_id);
    out.extend_from_slice(b" error=");
    out.extend_from_slice(e.error.unwrap_or("-").as_bytes());
    out.extend_from_slice(b" bytes_in=");
    push_u64(out, e.bytes_in as u64);
    out.extend_from_slice(b" bytes_out=");
    push_u64(out, e.bytes_out as u64);
    out.extend_from_slice(b" gateway_us=");
    push_u64(out, e.gateway_us);
    out.extend_from_slice(b" function_us=");
    push_u64(out, e.function_us);
    out.push(b'\n');
}

fn push_json(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(b"{\"time\":\"");
    crate::text::push_rfc3339_millis(out, e.time);
    out.push(b'"');
    for (key, value) in [
        ("peer", e.peer),
        ("method", e.method),
        ("path", e.path),
        ("route", e.route),
        ("request_id", e.request_id),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        json::push_str(out, value);
    }
    out.extend_from_slice(b",\"error\":");
    match e.error {
        Some(code) => json::push_str(out, code),
        None => out.extend_from_slice(b"null"),
    }
    for (key, value) in [
        ("status", u64::from(e.status)),
        ("bytes_in", e.bytes_in as u64),
        ("bytes_out", e.bytes_out as u64),
        ("gateway_us", e.gateway_us),
        ("function_us", e.function_us),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        push_u64(out, value);
    }
    out.extend_from_slice(b"}\n");
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A value without spaces or quotes of its own (ids, methods, addresses); `-` when empty.
fn push_bare(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.push(b'-');
    } else {
        push_escaped(out, s);
    }
}

fn push_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// Quotes, backslashes, spaces and control bytes escaped, so that one request is one line
/// whatever its path holds.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..=0x20 | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, error: Option<&'static str>) -> Entry<'a> {
        Entry {
            time: std::time::UNIX_EPOCH + Duration::from_millis(1_764_800_000_123),
            peer: "127.0.0.1",
            method: "GET",
            path,
            route: "/users/{id}",
            status: 200,
            request_id: "abc",
            error,
            bytes_in: 3,
            bytes_out: 10,
            gateway_us: 12,
            function_us: 34,
        }
    }

    #[test]
    fn text_lines_stay_one_line_whatever_the_path_holds() {
        let mut out = Vec::new();
        push_text(&mut out, &entry("/a \"b\"\\\n", None));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "time=2025-12-03T22:13:20.123Z peer=127.0.0.1 method=GET path=\"/a\\x20\\\"b\\\"\\\\\\x0a\" route=\"/users/{id}\" status=200 request_id=abc error=- bytes_in=3 bytes_out=10 gateway_us=12 function_us=34\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let mut out = Vec::new();
        push_json(&mut out, &entry("/a\"\u{1}é", Some("ROUTE_NOT_FOUND")));
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "/a\"\u{1}é");
        assert_eq!(v["error"], "ROUTE_NOT_FOUND");
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "2025-12-03T22:13:20.123Z");
        assert_eq!(v["function_us"], 34);
    }
}
