//! What the OSS bridge's tests share: the bridge's credential, an S3 notification for one key,
//! posting it as a sender would, reading the admin endpoint, and where the queue lives
//! (`Store`), so that one behaviour is checked on the local redb file and on Redis alike.

use super::redis_server::RedisServer;
use super::{Client, FakeFunction, Recorded, Response, Scripted};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "async-token-0123456789";

/// Where `delivery: async` keeps events in a test.
pub enum Store {
    Redb,
    Redis(RedisServer),
}

impl Store {
    pub fn redb() -> Store {
        Store::Redb
    }

    pub fn redis() -> Store {
        Store::Redis(RedisServer::start())
    }

    /// The `oss_bridge` lines that choose it (indented for the bridge's mapping); a fresh
    /// directory for redb, the server's one stream for Redis (gateways given the same Redis
    /// share it).
    pub fn yaml(&self) -> String {
        match self {
            Store::Redb => format!("  queue_dir: {}\n", queue_dir().display()),
            Store::Redis(r) => Store::yaml_for(r),
        }
    }

    /// The stream `events` of group `gateways` on `redis`.
    pub fn yaml_for(redis: &RedisServer) -> String {
        format!(
            "  queue: {{kind: redis, url: \"{}\", stream: events, group: gateways, visibility_timeout: 2s}}\n",
            redis.url()
        )
    }
}

pub fn queue_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fngate-oss-queue-{}", uuid::Uuid::new_v4()))
}

pub fn notification(key: &str) -> String {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-21T10:00:00.000Z", "responseElements": {"x-amz-request-id": "R1"},
        "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 3, "eTag": "e"}}}]})
    .to_string()
}

pub fn post(addr: SocketAddr, body: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    Client::connect(addr).request(
        "POST",
        "/oss/notify",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
}

/// One POST of `body` as a sender would make it; `None` when the gateway is not there or the
/// connection broke before an answer (the sender then tries again, as S3 and MinIO do).
pub fn try_post(addr: SocketAddr, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "POST /oss/notify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).ok()?;
    c.write_all(body.as_bytes()).ok()?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).ok()?;
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

/// The object key of the event a function received.
pub fn key_of(r: &Recorded) -> String {
    r.json()["Records"][0]["detail"]["s3"]["object"]["key"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn admin_get(admin: SocketAddr, path: &str) -> Response {
    Client::connect(admin).get(path)
}

pub fn metric(admin: SocketAddr, name: &str) -> u64 {
    let text = admin_get(admin, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A function that answers 500 with `error` until the flag it returns is set, then 200.
pub fn failing_until_healthy(error: serde_json::Value) -> (FakeFunction, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let f = FakeFunction::start(move |_| match h.load(Ordering::SeqCst) {
        true => Scripted::json(json!("ok")),
        false => Scripted {
            status: 500,
            ..Scripted::json(error.clone())
        },
    });
    (f, healthy)
}
