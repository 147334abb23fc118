//! `delivery: async` as the bridge and the admin endpoint see it, whichever store holds the
//! events: the local redb file (`oss::local` + `oss::worker`, one gateway) or a Redis stream
//! shared by several gateways (`oss::streams` + `oss::consumer`, docs/scaling.md). Each runs its
//! delivery on a thread of its own, so that the bridge never takes time from API routes.

use super::consumer::Consumer;
use super::local::{self, Store};
use super::stats::Stats;
use super::streams::Streams;
use super::worker::Workers;
use crate::config::{OssBridge, QueueSettings};
use crate::metrics::PoolMetrics;
use crate::runner::Runner;
use crate::snapshot::Snapshot;
use crate::text::now_ms;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One accepted event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Queued {
    pub id: String,
    pub trigger: String,
    /// By name, so that a reordered config still finds it.
    pub function: String,
    /// The JD event JSON.
    pub event: String,
    pub attempts: u32,
    /// Unix ms; `max_event_age` counts from here.
    pub accepted_ms: u64,
    pub last_error: String,
}

/// An event given up on, or a notification that could not be mapped (`function` empty, `event`
/// the body as received).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dead {
    pub entry: Queued,
    pub reason: String,
    pub dead_ms: u64,
}

/// What storing a notification's events came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; `duplicates` were accepted before, within the dedup window.
    Stored { queued: usize, duplicates: usize },
    /// Storing them would pass `queue_capacity`.
    Full,
}

/// A replay request the store cannot take (an id of the wrong form).
pub enum ReplayError {
    BadId(String),
    Store(String),
}

pub struct AsyncDelivery {
    backend: Backend,
}

enum Backend {
    Local {
        store: Arc<Store>,
        workers: Workers,
    },
    Streams {
        streams: Arc<Streams>,
        runner: Runner,
    },
}

impl AsyncDelivery {
    /// Opens the configured store and starts the delivery, which resumes what is pending.
    pub fn start(
        bridge: &OssBridge,
        state: Arc<ArcSwap<Snapshot>>,
        stats: Arc<Stats>,
        pool: PoolMetrics,
    ) -> Result<AsyncDelivery, String> {
        let backend = match &bridge.queue {
            None => return Err("oss_bridge: delivery async needs a queue".into()),
            Some(QueueSettings::Redb { dir }) => {
                let store = Arc::new(Store::open(dir, bridge.dead_letter_capacity)?);
                let workers = Workers::start(store.clone(), state, stats, bridge.clone(), pool)?;
                Backend::Local { store, workers }
            }
            Some(QueueSettings::Redis(settings)) => {
                let runner = Runner::start("fngate-oss-streams")?;
                let consumer = {
                    let _on = runner.enter();
                    Consumer::new(settings, bridge.clone(), state, stats, pool)?
                };
                let streams = consumer.streams.clone();
                runner.spawn(consumer.run());
                Backend::Streams { streams, runner }
            }
        };
        Ok(AsyncDelivery { backend })
    }

    /// Stores the events (durably, before the answer), skipping ids accepted within `window`.
    pub async fn enqueue(
        &self,
        events: Vec<Queued>,
        window: Duration,
        capacity: usize,
    ) -> Result<Accepted, String> {
        let window_ms = window.as_millis() as u64;
        match &self.backend {
            Backend::Local { store, workers } => {
                let store = store.clone();
                let now = now_ms();
                match blocking(move || store.enqueue(events, window_ms, capacity, now)).await? {
                    local::Enqueued::Full => Ok(Accepted::Full),
                    local::Enqueued::Stored { seqs, duplicates } => {
                        workers.wake(&seqs);
                        Ok(Accepted::Stored {
                            queued: seqs.len(),
                            duplicates,
                        })
                    }
                }
            }
            Backend::Streams { streams, runner } => {
                let s = streams.clone();
                runner
                    .run(async move { s.enqueue(&events, window_ms, capacity).await })
                    .await
            }
        }
    }

    /// Keeps a notification that could not be mapped; `None` when the dead letters are full.
    pub async fn dead_letter_body(
        &self,
        body: Vec<u8>,
        reason: String,
    ) -> Result<Option<serde_json::Value>, String> {
        let dead = Dead {
            entry: Queued {
                id: uuid::Uuid::new_v4().to_string(),
                trigger: String::new(),
                function: String::new(),
                event: String::from_utf8_lossy(&body).into_owned(),
                attempts: 0,
                accepted_ms: now_ms(),
                last_error: String::new(),
            },
            reason,
            dead_ms: now_ms(),
        };
        match &self.backend {
            Backend::Local { store, .. } => {
                let store = store.clone();
                Ok(blocking(move || store.dead_letter_body(dead))
                    .await?
                    .map(serde_json::Value::from))
            }
            Backend::Streams { streams, runner } => {
                let s = streams.clone();
                let id = runner.run(async move { s.dead_letter(None, &dead).await });
                Ok(id.await?.map(serde_json::Value::from))
            }
        }
    }

    /// Every dead letter with its id (a number in redb, a stream id in Redis), oldest first.
    pub async fn dead(&self) -> Result<Vec<(serde_json::Value, Dead)>, String> {
        match &self.backend {
            Backend::Local { store, .. } => {
                let store = store.clone();
                let list = blocking(move || store.dead()).await?;
                Ok(list.into_iter().map(|(k, d)| (k.into(), d)).collect())
            }
            Backend::Streams { streams, runner } => {
                let s = streams.clone();
                let list = runner.run(async move { s.dead().await }).await?;
                Ok(list.into_iter().map(|(k, d)| (k.into(), d)).collect())
            }
        }
    }

    /// Moves dead letters (all, or the one with id `only`) back for delivery, with a fresh
    /// attempt count and age; returns their ids.
    pub async fn replay(&self, only: Option<&str>) -> Result<Vec<serde_json::Value>, ReplayError> {
        match &self.backend {
            Backend::Local { store, workers } => {
                let only = match only.map(str::parse::<u64>) {
                    Some(Err(_)) => return Err(ReplayError::BadId("seq must be a number".into())),
                    Some(Ok(n)) => Some(n),
                    None => None,
                };
                let store = store.clone();
                let seqs = blocking(move || store.replay(only, now_ms()))
                    .await
                    .map_err(ReplayError::Store)?;
                workers.wake(&seqs);
                Ok(seqs.into_iter().map(Into::into).collect())
            }
            Backend::Streams { streams, runner } => {
                if let Some(id) = only.filter(|id| !super::streams::is_entry_id(id)) {
                    return Err(ReplayError::BadId(format!(
                        "seq {id:?} is not a stream entry id (like 1733356800000-0)"
                    )));
                }
                let (s, only) = (streams.clone(), only.map(str::to_owned));
                let ids = runner.run(async move { s.replay(only.as_deref()).await });
                let ids = ids.await.map_err(ReplayError::Store)?;
                Ok(ids.into_iter().map(Into::into).collect())
            }
        }
    }

    /// Events waiting for delivery and dead letters, for `/metrics`: redb's as its store counts
    /// them, Redis's as the consumer last counted them (every second).
    pub fn depths(&self) -> (usize, usize) {
        match &self.backend {
            Backend::Local { store, .. } => (store.pending_count(), store.dead_count()),
            Backend::Streams { streams, .. } => streams.depths(),
        }
    }
}

/// Runs a redb call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(format!("the OSS queue store failed: {e}")),
    }
}
