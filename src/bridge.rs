//! The OSS bridge's request path (docs/oss-bridge.md), in order: POST only → credential → the body within
//! its cap → what kind of message it is → control messages answered → records matched against
//! the triggers → events delivered (`sync`) or durably stored (`async`) → the answer that tells
//! the sender whether to retry.

use crate::config::OssBridge;
use crate::errors::GatewayError;
use crate::invoke::Invoker;
use crate::oss::auth::{self, Credential};
use crate::oss::classify::{classify, Notification};
use crate::oss::deliver::{invoke_once, Delivery};
use crate::oss::event;
use crate::oss::queue::{Accepted, AsyncDelivery, Queued};
use crate::oss::records::ObjectRecord;
use crate::oss::stats::Stats;
use crate::snapshot::Snapshot;
use crate::text::now_ms;
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A 2xx answer of the bridge.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Answer {
    fn json(status: u16, value: serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
        }
    }
}

/// What a notification comes to.
pub struct Plan {
    pub records: usize,
    pub deliveries: Vec<Delivery>,
    pub unmappable: Vec<String>,
}

/// Checks method and credential before the body is read.
pub fn admit(
    method: &http::Method,
    headers: &http::HeaderMap,
    query: &str,
    bridge: &OssBridge,
) -> Result<(), GatewayError> {
    if method != http::Method::POST {
        return Err(GatewayError::MethodNotAllowed {
            allow: "POST".into(),
        });
    }
    match auth::check(headers, query, &bridge.token.0) {
        Credential::Valid => Ok(()),
        Credential::Missing => Err(GatewayError::Unauthorized),
        Credential::Wrong => Err(GatewayError::Forbidden),
    }
}

/// Where the bridge's work goes: the snapshot and invoker of the request path, and the store
/// and workers when `delivery: async`.
pub struct Deps<'a> {
    pub snap: &'a Snapshot,
    pub invoker: &'a Invoker,
    pub stats: &'a Stats,
    pub queue: Option<&'a Arc<AsyncDelivery>>,
}

/// Handles an admitted notification body.
pub async fn handle(
    headers: &http::HeaderMap,
    body: &[u8],
    deps: &Deps<'_>,
) -> Result<Answer, GatewayError> {
    let stats = deps.stats;
    Stats::add(&stats.notifications, 1);
    let notification = match classify(headers, body) {
        Ok(n) => n,
        Err(why) => {
            tracing::warn!(target: "fngate::oss", bytes = body.len(), "unrecognised notification: {why}");
            return keep_unmappable(body, why, deps.queue, deps.stats).await;
        }
    };
    let records = match notification {
        Notification::Records(records) => records,
        Notification::TestEvent => {
            tracing::info!(target: "fngate::oss", "s3:TestEvent acknowledged");
            return Ok(Answer::json(200, json!({"test": true})));
        }
        Notification::SnsSubscription {
            topic,
            subscribe_url,
        } => return sns_subscription(topic, subscribe_url, deps.snap).await,
        Notification::SnsUnsubscribe { topic } => {
            tracing::warn!(target: "fngate::oss", topic, "SNS UnsubscribeConfirmation received");
            return Ok(Answer::json(200, json!({"unsubscribe": "received"})));
        }
        Notification::JdHandshake { answer } => {
            tracing::info!(target: "fngate::oss", "JD OSS SubscriptionConfirmation answered");
            return Ok(Answer {
                status: 200,
                content_type: "text/plain",
                body: Bytes::from(answer),
            });
        }
    };
    let plan = plan(records, deps.snap, SystemTime::now(), stats);
    if !plan.unmappable.is_empty() {
        // Retrying cannot make them mappable: keep the body, deliver the rest.
        let why = plan.unmappable.join("; ");
        if plan.deliveries.is_empty() && plan.records == plan.unmappable.len() {
            return keep_unmappable(body, why, deps.queue, deps.stats).await;
        }
        if deps.queue.is_some() {
            keep_unmappable(body, why, deps.queue, deps.stats).await?;
        }
    }
    let counts = json!({"records": plan.records, "matched": plan.deliveries.len(),
                        "unmappable": plan.unmappable.len()});
    let mut answer = match deps.queue {
        Some(queue) => store(plan.deliveries, deps.snap, queue, stats).await?,
        None => {
            let delivered = deliver_sync(&plan.deliveries, deps.snap, deps.invoker, stats).await?;
            json!({ "delivered": delivered })
        }
    };
    if let (Some(a), Some(c)) = (answer.as_object_mut(), counts.as_object()) {
        a.extend(c.clone());
    }
    Ok(Answer::json(200, answer))
}

/// SNS asks to confirm a subscription. Fetching the URL confirms it; that is done only when
/// configured, else the URL (which holds SNS's one-time token) is logged for the operator.
async fn sns_subscription(
    topic: String,
    url: String,
    snap: &Snapshot,
) -> Result<Answer, GatewayError> {
    let bridge = snap.config.oss_bridge.as_ref();
    let Some(bridge) = bridge.filter(|b| b.confirm_subscriptions) else {
        tracing::warn!(target: "fngate::oss", topic, "SNS SubscriptionConfirmation: confirm it by opening {url} (or set confirm_subscriptions: true)");
        return Ok(Answer::json(200, json!({"subscription": "received"})));
    };
    let allowed = &bridge.subscription_hosts;
    let outcome = match crate::oss::subscribe::confirm(&url, allowed).await {
        Ok(status) if (200..300).contains(&status) => Ok(status),
        Ok(status) => Err(format!("the SubscribeURL answered {status}")),
        Err(why) => Err(why),
    };
    match outcome {
        Ok(status) => {
            tracing::info!(target: "fngate::oss", topic, status, "SNS subscription confirmed");
            Ok(Answer::json(200, json!({"subscription": "confirmed"})))
        }
        Err(why) => {
            tracing::warn!(target: "fngate::oss", topic, "SNS subscription not confirmed ({why}); confirm it by opening {url}");
            Ok(Answer::json(
                200,
                json!({"subscription": "received", "confirmed": false, "why": why}),
            ))
        }
    }
}

/// A body that cannot be mapped: with a store it is dead-lettered and acknowledged (MinIO and
/// Ceph would otherwise retry it forever); without one the sender is told 400.
async fn keep_unmappable(
    body: &[u8],
    why: String,
    queue: Option<&Arc<AsyncDelivery>>,
    stats: &Stats,
) -> Result<Answer, GatewayError> {
    let Some(queue) = queue else {
        return Err(GatewayError::BadNotification(why));
    };
    let reason = format!("not mappable: {why}");
    let kept = queue.dead_letter_body(body.to_vec(), reason).await;
    let Some(seq) = kept.map_err(unavailable)? else {
        Stats::add(&stats.dead_letters_full, 1);
        return Err(GatewayError::DeadLettersFull);
    };
    Ok(Answer::json(
        202,
        json!({"deadLettered": seq, "reason": why}),
    ))
}

/// `delivery: async`: the events are stored (one fsync'd commit) before the answer.
async fn store(
    deliveries: Vec<Delivery>,
    snap: &Snapshot,
    queue: &Arc<AsyncDelivery>,
    stats: &Stats,
) -> Result<serde_json::Value, GatewayError> {
    let bridge = snap.config.oss_bridge.as_ref();
    let (window, capacity) = bridge.map_or((Duration::ZERO, usize::MAX), |b| {
        (b.dedup_window, b.queue_capacity)
    });
    let now = now_ms();
    let entries: Vec<Queued> = deliveries
        .into_iter()
        .map(|d| Queued {
            id: d.id,
            trigger: d.trigger,
            function: snap.config.functions[d.function].name.clone(),
            event: String::from_utf8_lossy(&d.event).into_owned(),
            attempts: 0,
            accepted_ms: now,
            last_error: String::new(),
        })
        .collect();
    match queue
        .enqueue(entries, window, capacity)
        .await
        .map_err(unavailable)?
    {
        Accepted::Full => {
            tracing::warn!(target: "fngate::oss", capacity, "queue full: notification refused");
            Err(GatewayError::QueueFull { retry_after: 5 })
        }
        Accepted::Stored { queued, duplicates } => {
            Stats::add(&stats.duplicates, duplicates as u64);
            if duplicates > 0 {
                tracing::info!(target: "fngate::oss", duplicates, "already accepted within dedup_window; not queued again");
            }
            Ok(json!({"queued": queued, "duplicates": duplicates}))
        }
    }
}

/// The store could not take the events (a disk, or Redis, away): 503, the sender retries.
fn unavailable(e: String) -> GatewayError {
    tracing::error!(target: "fngate::oss", "{e}");
    GatewayError::QueueUnavailable(e)
}

/// Each record against every trigger; unmappable records are logged with the reason.
pub fn plan(
    records: Vec<Result<ObjectRecord, String>>,
    snap: &Snapshot,
    received: SystemTime,
    stats: &Stats,
) -> Plan {
    let config = &snap.config;
    let mut plan = Plan {
        records: records.len(),
        deliveries: Vec::new(),
        unmappable: Vec::new(),
    };
    Stats::add(&stats.records, records.len() as u64);
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(target: "fngate::oss", "unmappable record: {why}");
                Stats::add(&stats.unmappable, 1);
                plan.unmappable.push(why);
                continue;
            }
        };
        let before = plan.deliveries.len();
        for trigger in event::matching(&record, &config.triggers) {
            let (id, bytes) = event::build(&record, trigger, &config.gateway, received);
            tracing::info!(target: "fngate::oss", sender = record.sender.as_str(), event = record.event_name, bucket = record.bucket, key = record.key, trigger = trigger.name, id, "matched");
            plan.deliveries.push(Delivery {
                id,
                trigger: trigger.name.clone(),
                function: trigger.function,
                event: Bytes::from(bytes),
            });
        }
        let matched = plan.deliveries.len() - before;
        Stats::add(&stats.matched, matched as u64);
        if matched == 0 {
            Stats::add(&stats.unmatched, 1);
            tracing::info!(target: "fngate::oss", sender = record.sender.as_str(), event = record.event_name, bucket = record.bucket, key = record.key, "matched no trigger; acknowledged");
        }
    }
    plan
}

/// `delivery: sync`: every event now, one after another; the first failure is the answer (5xx,
/// so the sender retries the whole notification — at least once).
async fn deliver_sync(
    deliveries: &[Delivery],
    snap: &Snapshot,
    invoker: &Invoker,
    stats: &Stats,
) -> Result<usize, GatewayError> {
    for d in deliveries {
        invoke_once(d, snap, invoker).await?;
        Stats::add(&stats.delivered, 1);
    }
    Ok(deliveries.len())
}
