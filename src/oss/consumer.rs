//! `delivery: async` from a Redis stream (`oss::streams`): this gateway is one consumer of the
//! group. It reads new entries as workers free up, renews the entries it is attempting so that
//! no other gateway takes them, takes over entries that another consumer has held without
//! renewing for `visibility_timeout` (it died), moves due retries back into the stream, and
//! settles each attempt with one script: delivered, retried later, or dead-lettered.

use super::queue::{Dead, Queued};
use super::stats::Stats;
use super::streams::{entries_of, Streams};
use super::worker::{backoff, deliver, Outcome, MAX_BACKOFF, POOL};
use crate::config::{OssBridge, RedisQueue};
use crate::invoke::Invoker;
use crate::metrics::PoolMetrics;
use crate::remote::{connect, within, CALL_TIMEOUT};
use crate::snapshot::Snapshot;
use crate::text::now_ms;
use arc_swap::ArcSwap;
use redis::aio::ConnectionManager;
use redis::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// How long one blocking read waits for new entries; housekeeping runs at least this often.
const READ_BLOCK: Duration = Duration::from_millis(250);
/// Due retries moved back into the stream per call, and how often.
const PROMOTE_BATCH: usize = 256;
const PROMOTE_EVERY: Duration = Duration::from_millis(100);
/// A consumer that holds nothing and has not read for this many visibility timeouts is a
/// gateway gone for good (its entries were taken over after one): it leaves the group.
const FORGET_AFTER: u32 = 5;

pub struct Consumer {
    pub streams: Arc<Streams>,
    /// Its own connection: a blocking read holds the connection it is sent on.
    reader: ConnectionManager,
    name: String,
    visibility: Duration,
    bridge: Arc<OssBridge>,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
    invoker: Arc<Invoker>,
    /// Entry ids being attempted now, renewed while they are.
    attempting: Arc<Mutex<HashSet<String>>>,
}

/// A unique name for this process in the group: host, pid and a random part.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", host.trim(), std::process::id(), &random[..8])
}

impl Consumer {
    /// Call with the runner's runtime entered: the connections are driven by it.
    pub fn new(
        settings: &RedisQueue,
        bridge: OssBridge,
        state: Arc<ArcSwap<Snapshot>>,
        stats: Arc<Stats>,
        pool: PoolMetrics,
    ) -> Result<Consumer, String> {
        let url = &settings.url.0;
        let con = connect(url, CALL_TIMEOUT)?;
        let reader = connect(url, CALL_TIMEOUT + READ_BLOCK)?;
        let streams = Streams::new(settings, con, bridge.dead_letter_capacity);
        let send_timeout = state.load().config.server.send_timeout;
        Ok(Consumer {
            streams: Arc::new(streams),
            reader,
            name: settings.consumer.clone().unwrap_or_else(consumer_name),
            visibility: settings.visibility_timeout,
            bridge: Arc::new(bridge),
            state,
            stats,
            invoker: Arc::new(Invoker::new(POOL, send_timeout, pool)),
            attempting: Arc::default(),
        })
    }

    pub async fn run(self) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.bridge.workers));
        let freed = Arc::new(Notify::new());
        // Renewals and take-overs run well inside the visibility timeout.
        let renew_every = (this.visibility / 3).max(READ_BLOCK);
        let (mut renewed, mut claimed, mut counted) = (Instant::now(), Instant::now(), None);
        let mut swept = Instant::now();
        let mut promoted: Option<Instant> = None;
        let mut grouped = false;
        // Own entries left from an earlier run under the same name come first.
        let mut start_id = "0";
        let mut failing = Backoff::default();
        tracing::info!(target: "fngate::oss", consumer = this.name, stream = this.streams.stream, group = this.streams.group, "consuming the OSS queue on Redis");
        loop {
            if !grouped {
                match this.create_group().await {
                    Ok(()) => grouped = true,
                    Err(e) => {
                        failing.wait(&e).await;
                        continue;
                    }
                }
            }
            let housekeeping = async {
                if promoted.is_none_or(|t: Instant| t.elapsed() >= PROMOTE_EVERY) {
                    promoted = Some(Instant::now());
                    this.streams.promote(now_ms(), PROMOTE_BATCH).await?;
                }
                if renewed.elapsed() >= renew_every {
                    renewed = Instant::now();
                    this.renew().await?;
                }
                if counted.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                    counted = Some(Instant::now());
                    this.streams.count().await?;
                }
                if swept.elapsed() >= this.visibility {
                    swept = Instant::now();
                    this.forget_gone().await?;
                }
                Ok::<(), String>(())
            };
            if let Err(e) = housekeeping.await {
                failing.wait(&e).await;
                continue;
            }
            let free = permits.available_permits();
            if free == 0 {
                // Every worker busy: wait for one to finish (or for the next housekeeping).
                let _ = tokio::time::timeout(READ_BLOCK, freed.notified()).await;
                continue;
            }
            let taking_over = claimed.elapsed() >= renew_every;
            let entries = if taking_over {
                claimed = Instant::now();
                this.take_over(free).await
            } else {
                this.read(start_id, free).await
            };
            let entries = match entries {
                Ok(entries) => entries,
                Err(e) => {
                    failing.wait(&e).await;
                    continue;
                }
            };
            failing.ok();
            // Own history (`0`) lists the entries being attempted too: those are skipped, and
            // once nothing else is left, only new entries are read.
            let entries = this.not_attempting(entries);
            if start_id == "0" && !taking_over && entries.is_empty() {
                start_id = ">";
            }
            for (id, json) in entries {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break; // not reached: at most `free` were asked for
                };
                this.attempting
                    .lock()
                    .map(|mut a| a.insert(id.clone()))
                    .ok();
                let (this, freed) = (this.clone(), freed.clone());
                tokio::spawn(async move {
                    this.attempt(&id, &json).await;
                    this.attempting.lock().map(|mut a| a.remove(&id)).ok();
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
    }

    async fn create_group(&self) -> Result<(), String> {
        let mut con = self.streams.con.clone();
        let create = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.streams.stream)
            .arg(&self.streams.group)
            .arg("0")
            .arg("MKSTREAM")
            .to_owned();
        match within(create.query_async::<Value>(&mut con)).await {
            Ok(_) => Ok(()),
            Err(e) if e.contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// New entries (`>`), or this consumer's own unsettled ones (`0`), at most `count`.
    async fn read(&self, from: &str, count: usize) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut con = self.reader.clone();
        let read = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.streams.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.streams.stream)
            .arg(from)
            .to_owned();
        let reply: Value = within(read.query_async(&mut con)).await?;
        // [[stream, entries]] or nil when nothing came.
        let Value::Array(mut streams) = reply else {
            return Ok(Vec::new());
        };
        match streams.pop() {
            Some(Value::Array(mut pair)) if pair.len() == 2 => {
                Ok(pair.pop().map_or(Vec::new(), |e| entries_of(e, "e")))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Entries another consumer has held for `visibility_timeout` without renewing them.
    async fn take_over(&self, count: usize) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut con = self.streams.con.clone();
        let claim = redis::cmd("XAUTOCLAIM")
            .arg(&self.streams.stream)
            .arg(&self.streams.group)
            .arg(&self.name)
            .arg(self.visibility.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .to_owned();
        let reply: Value = within(claim.query_async(&mut con)).await?;
        let Value::Array(parts) = reply else {
            return Ok(Vec::new());
        };
        let entries = parts
            .into_iter()
            .nth(1)
            .map_or(Vec::new(), |e| entries_of(e, "e"));
        let own = self.not_attempting(entries);
        if !own.is_empty() {
            tracing::warn!(target: "fngate::oss", consumer = self.name, count = own.len(), "took over events another gateway held without renewing them");
            Stats::add(&self.stats.taken_over, own.len() as u64);
        }
        Ok(own)
    }

    /// Removes the consumers of gateways gone for good, so that the group lists live ones.
    async fn forget_gone(&self) -> Result<(), String> {
        let idle = self.visibility * FORGET_AFTER;
        let gone = self
            .streams
            .forget(idle.as_millis() as u64, &self.name)
            .await?;
        for name in gone {
            tracing::info!(target: "fngate::oss", consumer = name, "removed a consumer that held nothing and had not read for {}", humantime::format_duration(idle));
        }
        Ok(())
    }

    fn not_attempting(&self, entries: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
        match self.attempting.lock() {
            Ok(attempting) => entries
                .into_iter()
                .filter(|(id, _)| !attempting.contains(id))
                .collect(),
            Err(_) => entries,
        }
    }

    /// Resets the idle time of the entries being attempted, so that they are not taken over.
    async fn renew(&self) -> Result<(), String> {
        let ids: Vec<String> = match self.attempting.lock() {
            Ok(a) => a.iter().cloned().collect(),
            Err(_) => return Ok(()),
        };
        if ids.is_empty() {
            return Ok(());
        }
        let mut con = self.streams.con.clone();
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(&self.streams.stream)
            .arg(&self.streams.group)
            .arg(&self.name)
            .arg(0)
            .arg(&ids)
            .arg("JUSTID");
        within(claim.query_async::<Value>(&mut con)).await.map(drop)
    }

    /// One attempt at the entry `id`, settled in Redis. A failure to settle leaves the entry
    /// with this consumer, unrenewed: after `visibility_timeout` it is attempted again.
    async fn attempt(&self, id: &str, json: &[u8]) {
        let entry: Queued = match serde_json::from_slice(json) {
            Ok(e) => e,
            Err(e) => {
                let dead = Dead {
                    entry: Queued {
                        id: id.to_owned(),
                        trigger: String::new(),
                        function: String::new(),
                        event: String::from_utf8_lossy(json).into_owned(),
                        attempts: 0,
                        accepted_ms: now_ms(),
                        last_error: String::new(),
                    },
                    reason: format!("not an fngate queue entry: {e}"),
                    dead_ms: now_ms(),
                };
                self.settle(
                    id,
                    self.streams.dead_letter(Some(id), &dead).await.map(drop),
                );
                return;
            }
        };
        let stats = &self.stats;
        let settled = match deliver(&entry, &self.state.load_full(), &self.invoker, &self.bridge)
            .await
        {
            Outcome::Delivered => {
                Stats::add(&stats.delivered, 1);
                self.streams.done(id).await
            }
            Outcome::Retry(entry) => {
                let delay = backoff(self.bridge.retry_backoff, entry.attempts);
                Stats::add(&stats.retried, 1);
                tracing::info!(target: "fngate::oss", id = entry.id, attempts = entry.attempts, "retrying in {} ms", delay.as_millis());
                let due = now_ms() + delay.as_millis() as u64;
                self.streams.retry(id, due, &entry).await
            }
            Outcome::GiveUp(entry, reason) => {
                let dead = Dead {
                    entry,
                    reason,
                    dead_ms: now_ms(),
                };
                match self.streams.dead_letter(Some(id), &dead).await {
                    Ok(Some(_)) => {
                        Stats::add(&stats.dead_lettered, 1);
                        tracing::warn!(target: "fngate::oss", id = dead.entry.id, "dead-lettered");
                        Ok(())
                    }
                    // Full: it waits, tried again in 5 minutes; nothing is dropped.
                    Ok(None) => {
                        Stats::add(&stats.dead_letters_full, 1);
                        tracing::error!(target: "fngate::oss", id = dead.entry.id, "the dead-letter stream is full: the event stays queued");
                        let due = now_ms() + MAX_BACKOFF.as_millis() as u64;
                        self.streams.retry(id, due, &dead.entry).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        self.settle(id, settled);
    }

    fn settle(&self, id: &str, settled: Result<(), String>) {
        if let Err(e) = settled {
            tracing::error!(target: "fngate::oss", entry = id, "{e}; the event is attempted again after visibility_timeout");
        }
    }
}

/// Waits between failed rounds with Redis: 100 ms doubling to 5 s, logged once per outage.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    async fn wait(&mut self, why: &str) {
        if self.failures == 0 {
            tracing::error!(target: "fngate::oss", "{why}; retrying with back-off");
        }
        self.failures += 1;
        let delay = Duration::from_millis(100 << self.failures.min(6).saturating_sub(1));
        tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
    }

    fn ok(&mut self) {
        if self.failures > 0 {
            tracing::info!(target: "fngate::oss", "the OSS queue on Redis answers again");
        }
        self.failures = 0;
    }
}
