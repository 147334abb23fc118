//! The admin listener (`server.admin_listen`): health, counters, and the OSS dead-letter store.
//! Meant for operators on a loopback or private address; it has no credential of its own.
//!
//! - `GET /healthz` → `{"status": "ok"}`
//! - `GET /metrics` → Prometheus text: the OSS bridge's counters and queue depths
//! - `GET /oss/dead-letters` → every dead-lettered event with its reason
//! - `POST /oss/dead-letters/replay[?seq=N]` → moves them (or one) back for delivery

use crate::oss::stats::Stats;
use crate::oss::worker::{now_ms, AsyncDelivery};
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::fmt::Write;
use std::sync::Arc;

pub struct Admin {
    pub stats: Arc<Stats>,
    pub queue: Option<Arc<AsyncDelivery>>,
}

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

fn json_answer(status: u16, v: serde_json::Value) -> Response<Vec<u8>> {
    answer(status, "application/json", v.to_string().into_bytes())
}

impl Admin {
    async fn metrics(&self) -> Response<Vec<u8>> {
        let mut out = String::new();
        for (name, value) in self.stats.snapshot() {
            let _ = writeln!(out, "# TYPE fngate_oss_{name}_total counter");
            let _ = writeln!(out, "fngate_oss_{name}_total {value}");
        }
        if let Some(q) = &self.queue {
            let store = q.store.clone();
            let dead = tokio::task::spawn_blocking(move || store.dead().map(|d| d.len()))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let _ = writeln!(out, "# TYPE fngate_oss_queue_pending gauge");
            let _ = writeln!(out, "fngate_oss_queue_pending {}", q.store.pending_count());
            let _ = writeln!(out, "# TYPE fngate_oss_dead_letters gauge");
            let _ = writeln!(out, "fngate_oss_dead_letters {dead}");
        }
        answer(200, "text/plain; version=0.0.4", out.into_bytes())
    }

    async fn dead_letters(&self, queue: &AsyncDelivery) -> Response<Vec<u8>> {
        let store = queue.store.clone();
        match tokio::task::spawn_blocking(move || store.dead()).await {
            Ok(Ok(list)) => {
                let items: Vec<_> = list
                    .into_iter()
                    .map(|(seq, d)| {
                        json!({"seq": seq, "id": d.entry.id, "trigger": d.entry.trigger,
                               "function": d.entry.function, "attempts": d.entry.attempts,
                               "acceptedMs": d.entry.accepted_ms, "deadMs": d.dead_ms,
                               "reason": d.reason, "lastError": d.entry.last_error,
                               "event": d.entry.event})
                    })
                    .collect();
                json_answer(200, json!({ "deadLetters": items }))
            }
            Ok(Err(e)) => json_answer(503, json!({ "error": e })),
            Err(e) => json_answer(503, json!({ "error": e.to_string() })),
        }
    }

    async fn replay(&self, queue: &AsyncDelivery, query: &str) -> Response<Vec<u8>> {
        let only = match query.split('&').find_map(|p| p.strip_prefix("seq=")) {
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return json_answer(400, json!({"error": "seq must be a number"})),
            },
            None => None,
        };
        let store = queue.store.clone();
        match tokio::task::spawn_blocking(move || store.replay(only, now_ms())).await {
            Ok(Ok(seqs)) => {
                tracing::info!(target: "fngate::oss", count = seqs.len(), "dead letters replayed");
                queue.workers.wake(&seqs);
                json_answer(200, json!({ "replayed": seqs }))
            }
            Ok(Err(e)) => json_answer(503, json!({ "error": e })),
            Err(e) => json_answer(503, json!({ "error": e.to_string() })),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().unwrap_or("").to_owned();
        // Admin requests carry no body worth reading; drain it so keep-alive holds.
        let _ = session.drain_request_body().await;
        match (method, path.as_str(), &self.queue) {
            (Method::GET, "/healthz", _) => json_answer(200, json!({"status": "ok"})),
            (Method::GET, "/metrics", _) => self.metrics().await,
            (Method::GET, "/oss/dead-letters", Some(q)) => self.dead_letters(q).await,
            (Method::POST, "/oss/dead-letters/replay", Some(q)) => self.replay(q, &query).await,
            (_, "/oss/dead-letters" | "/oss/dead-letters/replay", None) => {
                json_answer(404, json!({"error": "no async OSS delivery is configured"}))
            }
            _ => json_answer(404, json!({"error": "not found"})),
        }
    }
}
