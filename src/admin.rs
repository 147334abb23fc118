//! The admin listener (`server.admin_listen`): health, reload, the live routes, counters, and
//! the OSS dead-letter store. Meant for operators on a loopback or private address; it has no
//! credential of its own (docs/operations.md).
//!
//! - `GET /healthz` → `{"status": "ok"}` while the process serves
//! - `GET /readyz` → 200 once every supervised instance accepts connections, else 503
//! - `GET /admin/routes` → the live routes and where each goes
//! - `POST /admin/reload` → reads the config file again (as SIGHUP does) and says what changed
//! - `GET /metrics` → Prometheus text: the OSS bridge's counters and queue depths
//! - `GET /oss/dead-letters` → every dead-lettered event with its reason
//! - `POST /oss/dead-letters/replay[?seq=N]` → moves them (or one) back for delivery

use crate::config::Target;
use crate::metrics::Metrics;
use crate::oss::queue::{AsyncDelivery, ReplayError};
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus_client::encoding::prometheus_text;
use serde_json::json;
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub reloader: Arc<Reloader>,
    pub metrics: Arc<Metrics>,
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
    fn ready(&self) -> Response<Vec<u8>> {
        let snap = self.state.load();
        let waiting: Vec<_> = snap
            .instances
            .iter()
            .filter(|i| !i.ready())
            .map(|i| json!({"function": &*i.function, "instance": i.index}))
            .collect();
        let status = if waiting.is_empty() {
            "ready"
        } else {
            "starting"
        };
        let body = json!({"status": status, "generation": snap.generation, "waiting": waiting});
        json_answer(if waiting.is_empty() { 200 } else { 503 }, body)
    }

    fn routes(&self) -> Response<Vec<u8>> {
        let snap = self.state.load();
        let config = &snap.config;
        let routes: Vec<_> = config
            .routes
            .iter()
            .map(|r| {
                let api = &config.apis[r.api];
                let methods = r
                    .methods
                    .as_ref()
                    .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>());
                let mut route = json!({"api": api.id, "stage": api.stage, "path": r.path,
                                       "methods": methods, "timeoutMs": r.timeout.as_millis() as u64});
                match &r.target {
                    Target::Function(f) => {
                        let f = &config.functions[*f];
                        route["function"] = json!(f.name);
                        route["endpoints"] = json!(f.endpoints.iter().map(|e| &e.url).collect::<Vec<_>>());
                    }
                    Target::Upstream(u) => route["upstream"] = json!(u.url),
                }
                route
            })
            .collect();
        let instances: Vec<_> = snap
            .instances
            .iter()
            .map(|i| {
                json!({"function": &*i.function, "instance": i.index,
                            "addr": i.addr.to_string(), "pid": i.pid(), "ready": i.ready()})
            })
            .collect();
        let bridge = config.oss_bridge.as_ref().map(|b| b.path.as_str());
        json_answer(
            200,
            json!({"generation": snap.generation, "routes": routes,
                   "instances": instances, "ossBridge": bridge}),
        )
    }

    async fn reload(&self) -> Response<Vec<u8>> {
        let reloader = self.reloader.clone();
        match tokio::task::spawn_blocking(move || reloader.reload()).await {
            Ok(Ok(done)) => json_answer(
                200,
                json!({"reloaded": true, "generation": done.generation,
                "functions": done.functions, "restartNeeded": done.restart_needed}),
            ),
            Ok(Err(rejected)) => json_answer(
                422,
                json!({"reloaded": false,
                "generation": self.state.load().generation, "problems": rejected.problems}),
            ),
            Err(e) => json_answer(500, json!({"reloaded": false, "problems": [e.to_string()]})),
        }
    }

    async fn metrics(&self) -> Response<Vec<u8>> {
        // In memory only (the queue depths are counters): no need to leave the admin runtime.
        let text = self.metrics.encode();
        answer(200, prometheus_text::CONTENT_TYPE, text.into_bytes())
    }

    async fn dead_letters(&self, queue: &AsyncDelivery) -> Response<Vec<u8>> {
        match queue.dead().await {
            Ok(list) => {
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
            Err(e) => json_answer(503, json!({ "error": e })),
        }
    }

    async fn replay(&self, queue: &AsyncDelivery, query: &str) -> Response<Vec<u8>> {
        let only = query.split('&').find_map(|p| p.strip_prefix("seq="));
        match queue.replay(only).await {
            Ok(seqs) => {
                tracing::info!(target: "fngate::oss", count = seqs.len(), "dead letters replayed");
                json_answer(200, json!({ "replayed": seqs }))
            }
            Err(ReplayError::BadId(why)) => json_answer(400, json!({ "error": why })),
            Err(ReplayError::Store(e)) => json_answer(503, json!({ "error": e })),
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
            (Method::GET, "/readyz", _) => self.ready(),
            (Method::GET, "/admin/routes", _) => self.routes(),
            (Method::POST, "/admin/reload", _) => self.reload().await,
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
