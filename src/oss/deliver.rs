//! Delivering one JD event to its function: the attempt shared by `delivery: sync` (in the
//! request) and the async workers.

use crate::errors::{self, GatewayError};
use crate::invoke::Invoker;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use std::time::Instant;

/// One event to deliver: a record for a trigger.
pub struct Delivery {
    pub id: String,
    pub trigger: String,
    pub function: usize,
    pub event: Bytes,
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
    let outcome = invoker
        .invoke_within(client, &d.event, &d.id, function.timeout)
        .await;
    let outcome = errors::call_outcome(outcome).map(|_| ());
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
