//! The OSS bridge's request path (SPEC §6), in order: POST only → credential → the body within
//! its cap → what kind of message it is → control messages answered → records matched against
//! the triggers → events delivered (`sync`) → the answer that tells the sender whether to retry.

use crate::config::OssBridge;
use crate::errors::GatewayError;
use crate::invoke::{InvokeError, Invoker};
use crate::oss::auth::{self, Credential};
use crate::oss::classify::{classify, Notification};
use crate::oss::event;
use crate::oss::records::ObjectRecord;
use crate::oss::stats::Stats;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use serde_json::json;
use std::time::{Instant, SystemTime};

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

/// One event to deliver: a record for a trigger.
pub struct Delivery {
    pub id: String,
    pub trigger: String,
    pub function: usize,
    pub event: Bytes,
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

/// Handles an admitted notification body.
pub async fn handle(
    headers: &http::HeaderMap,
    body: &[u8],
    snap: &Snapshot,
    invoker: &Invoker,
    stats: &Stats,
) -> Result<Answer, GatewayError> {
    Stats::add(&stats.notifications, 1);
    let notification = match classify(headers, body) {
        Ok(n) => n,
        Err(why) => {
            tracing::warn!(target: "fngate::oss", bytes = body.len(), "unrecognised notification: {why}");
            return Err(GatewayError::BadNotification(why));
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
        } => {
            // The URL holds SNS's one-time confirmation token, which the operator needs.
            tracing::warn!(target: "fngate::oss", topic, "SNS SubscriptionConfirmation: confirm it by fetching {subscribe_url}");
            return Ok(Answer::json(200, json!({"subscription": "received"})));
        }
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
    let plan = plan(records, snap, SystemTime::now(), stats);
    if !plan.unmappable.is_empty() {
        // Retrying cannot make them mappable; with other records the rest is still delivered.
        let why = plan.unmappable.join("; ");
        if plan.deliveries.is_empty() && plan.records == plan.unmappable.len() {
            return Err(GatewayError::BadNotification(why));
        }
    }
    let delivered = deliver_sync(&plan.deliveries, snap, invoker, stats).await?;
    Ok(Answer::json(
        200,
        json!({"records": plan.records, "matched": plan.deliveries.len(), "delivered": delivered,
               "unmappable": plan.unmappable.len()}),
    ))
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

/// One attempt at one event: `Ok` when the function's runtime answered 2xx, whatever the
/// function returned (the reply contract is for API routes).
pub async fn invoke_once(
    d: &Delivery,
    snap: &Snapshot,
    invoker: &Invoker,
) -> Result<(), GatewayError> {
    let function = &snap.config.functions[d.function];
    let client = &snap.functions[d.function];
    let started = Instant::now();
    let timeout = function.timeout;
    let call = invoker.invoke(client, d.event.clone(), &d.id, timeout.as_millis() as u64);
    let outcome = match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(GatewayError::FunctionTimeout(timeout)),
        Ok(Err(InvokeError::Unreachable(why))) => Err(GatewayError::FunctionUnreachable(why)),
        Ok(Err(InvokeError::ReplyTooLarge(limit))) => Err(GatewayError::FunctionError {
            status: 0,
            raised: Some(format!("a reply larger than {limit} bytes")),
        }),
        Ok(Ok(inv)) if !(200..300).contains(&inv.status) => Err(GatewayError::FunctionError {
            status: inv.status,
            raised: crate::contract::raised(&inv.body),
        }),
        Ok(Ok(_)) => Ok(()),
    };
    let ms = started.elapsed().as_millis() as u64;
    match &outcome {
        Ok(()) => {
            tracing::info!(target: "fngate::oss", id = d.id, trigger = d.trigger, function = function.name, ms, "delivered")
        }
        Err(e) => {
            tracing::warn!(target: "fngate::oss", id = d.id, trigger = d.trigger, function = function.name, ms, "delivery failed: {}", e.detail())
        }
    }
    outcome
}
