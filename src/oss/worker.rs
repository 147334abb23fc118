//! `delivery: async` from the local store (`queue: {kind: redb}`): a pool of delivery workers on
//! a thread of their own, fed from the store. A failed attempt is retried with exponential
//! back-off and jitter up to `max_attempts`; an event older than `max_event_age`, or out of
//! attempts, moves to the dead-letter table. After a restart every pending event is tried right
//! away. The attempt itself (`deliver`) and the back-off are shared with `oss::consumer`.

use super::deliver::{invoke_once, Delivery};
use super::local::Store;
use super::queue::Queued;
use super::stats::Stats;
use crate::config::OssBridge;
use crate::invoke::Invoker;
use crate::metrics::PoolMetrics;
use crate::runner::Runner;
use crate::snapshot::Snapshot;
use crate::text::now_ms;
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Retry delays grow to this and no further (docs/oss-bridge.md: "from about 1 s up to 5 min").
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often ids older than the dedup window are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Pooled connections of the workers' own invoker.
pub(super) const POOL: usize = 64;

/// The handle the request path uses: new sequence numbers go to the dispatcher.
pub struct Workers {
    tx: mpsc::UnboundedSender<u64>,
    _runner: Runner,
}

impl Workers {
    pub fn start(
        store: Arc<Store>,
        state: Arc<ArcSwap<Snapshot>>,
        stats: Arc<Stats>,
        bridge: OssBridge,
        pool: PoolMetrics,
    ) -> Result<Workers, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let send_timeout = state.load().config.server.send_timeout;
        let runner = Runner::start("fngate-oss-delivery")?;
        let dispatcher = Dispatcher {
            store,
            state,
            stats,
            invoker: Arc::new(Invoker::new(POOL, send_timeout, pool)),
            bridge: Arc::new(bridge),
        };
        runner.spawn(dispatcher.run(rx));
        Ok(Workers {
            tx,
            _runner: runner,
        })
    }

    /// Newly stored events, to be attempted now.
    pub fn wake(&self, seqs: &[u64]) {
        for &seq in seqs {
            let _ = self.tx.send(seq);
        }
    }
}

struct Dispatcher {
    store: Arc<Store>,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
    invoker: Arc<Invoker>,
    bridge: Arc<OssBridge>,
}

/// What an attempt asks of the dispatcher: try again at this time (Unix ms), or nothing.
type Retry = Option<(u64, u64)>;

impl Dispatcher {
    async fn run(self, mut new: mpsc::UnboundedReceiver<u64>) {
        let mut due: BTreeSet<(u64, u64)> = BTreeSet::new();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.pending_seqs()).await {
            Ok(Ok(seqs)) => {
                if !seqs.is_empty() {
                    tracing::info!(target: "fngate::oss", pending = seqs.len(), "resuming delivery of stored events");
                }
                let now = now_ms();
                due.extend(seqs.into_iter().map(|s| (now, s)));
            }
            Ok(Err(e)) => tracing::error!(target: "fngate::oss", "{e}"),
            Err(e) => tracing::error!(target: "fngate::oss", "loading pending events: {e}"),
        }
        let permits = Arc::new(Semaphore::new(self.bridge.workers));
        let (done_tx, mut done) = mpsc::unbounded_channel::<Retry>();
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            // Start every due event there is a free worker for.
            let now = now_ms();
            while let Some(&(at, seq)) = due.first() {
                if at > now {
                    break;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                due.pop_first();
                let attempt = self.attempt(seq);
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let retry = attempt.await;
                    drop(permit);
                    let _ = done_tx.send(retry);
                });
            }
            // With every worker busy, a finished attempt (on `done`) is what frees one: no timer,
            // or an event that is already due would wake this loop in a spin.
            let next = due
                .first()
                .filter(|_| permits.available_permits() > 0)
                .map(|&(at, _)| at.saturating_sub(now_ms()));
            tokio::select! {
                seq = new.recv() => match seq {
                    Some(seq) => { due.insert((now_ms(), seq)); }
                    None => return,
                },
                Some(retry) = done.recv() => {
                    if let Some(entry) = retry {
                        due.insert(entry);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(next.unwrap_or(60_000))), if next.is_some() => {}
                _ = prune.tick() => self.prune(),
            }
        }
    }

    fn prune(&self) {
        let store = self.store.clone();
        let cutoff = now_ms().saturating_sub(self.bridge.dedup_window.as_millis() as u64);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.prune_seen(cutoff) {
                tracing::warn!(target: "fngate::oss", "{e}");
            }
        });
    }

    /// One attempt at the stored event `seq`; returns when to try again, if ever.
    fn attempt(&self, seq: u64) -> impl std::future::Future<Output = Retry> + Send + 'static {
        let store = self.store.clone();
        let state = self.state.clone();
        let stats = self.stats.clone();
        let invoker = self.invoker.clone();
        let bridge = self.bridge.clone();
        async move {
            let s = store.clone();
            let entry = match tokio::task::spawn_blocking(move || s.get(seq)).await {
                Ok(Ok(Some(entry))) => entry,
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => {
                    tracing::error!(target: "fngate::oss", seq, "{e}");
                    return Some((now_ms() + 1000, seq));
                }
                Err(_) => return None,
            };
            let outcome = deliver(&entry, &state.load_full(), &invoker, &bridge).await;
            let (entry, next) = match outcome {
                Outcome::Delivered => {
                    Stats::add(&stats.delivered, 1);
                    let s = store.clone();
                    write(move || s.delivered(seq)).await;
                    return None;
                }
                Outcome::GiveUp(entry, reason) => {
                    let s = store.clone();
                    let moved = move || s.dead_letter(seq, entry, &reason, now_ms());
                    match tokio::task::spawn_blocking(moved).await {
                        Ok(Ok(true)) => {
                            Stats::add(&stats.dead_lettered, 1);
                            tracing::warn!(target: "fngate::oss", seq, "dead-lettered");
                            return None;
                        }
                        // Full (or the store failed): it stays pending, tried again later;
                        // nothing is dropped.
                        Ok(Ok(false)) => {
                            Stats::add(&stats.dead_letters_full, 1);
                            tracing::error!(target: "fngate::oss", seq, "the dead-letter store is full: the event stays pending");
                        }
                        Ok(Err(e)) => tracing::error!(target: "fngate::oss", seq, "{e}"),
                        Err(e) => tracing::error!(target: "fngate::oss", seq, "store write: {e}"),
                    }
                    return Some((now_ms() + MAX_BACKOFF.as_millis() as u64, seq));
                }
                Outcome::Retry(entry) => {
                    let delay = backoff(bridge.retry_backoff, entry.attempts);
                    Stats::add(&stats.retried, 1);
                    tracing::info!(target: "fngate::oss", id = entry.id, attempts = entry.attempts, "retrying in {} ms", delay.as_millis());
                    (entry, now_ms() + delay.as_millis() as u64)
                }
            };
            let s = store.clone();
            write(move || s.update(seq, &entry)).await;
            Some((next, seq))
        }
    }
}

pub(super) enum Outcome {
    Delivered,
    Retry(Queued),
    GiveUp(Queued, String),
}

pub(super) async fn deliver(
    entry: &Queued,
    snap: &Snapshot,
    invoker: &Invoker,
    bridge: &OssBridge,
) -> Outcome {
    let age = Duration::from_millis(now_ms().saturating_sub(entry.accepted_ms));
    if age > bridge.max_event_age {
        let reason = format!(
            "older than max_event_age ({})",
            humantime::format_duration(bridge.max_event_age)
        );
        return Outcome::GiveUp(entry.clone(), reason);
    }
    let Some(function) = snap
        .config
        .functions
        .iter()
        .position(|f| f.name == entry.function)
    else {
        return Outcome::GiveUp(
            entry.clone(),
            format!("function {:?} is no longer configured", entry.function),
        );
    };
    let delivery = Delivery {
        id: entry.id.clone(),
        trigger: entry.trigger.clone(),
        function,
        event: Bytes::from(entry.event.clone()),
    };
    match invoke_once(&delivery, snap, invoker).await {
        Ok(()) => Outcome::Delivered,
        Err(e) => {
            let mut entry = entry.clone();
            entry.attempts += 1;
            entry.last_error = e.detail();
            if entry.attempts >= bridge.max_attempts {
                let reason = format!(
                    "gave up after {} attempts; last: {}",
                    entry.attempts, entry.last_error
                );
                Outcome::GiveUp(entry, reason)
            } else {
                Outcome::Retry(entry)
            }
        }
    }
}

/// Runs a store write on the blocking pool; a failure is logged (the event stays as it was, so
/// at worst it is delivered again).
async fn write(f: impl FnOnce() -> Result<(), String> + Send + 'static) {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(target: "fngate::oss", "{e}"),
        Err(e) => tracing::error!(target: "fngate::oss", "store write: {e}"),
    }
}

/// `base · 2^(attempts-1)`, capped at 5 minutes, times a random factor in [0.5, 1) so that
/// many failed events do not retry in lockstep.
pub(super) fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(MAX_BACKOFF);
    // 16 random bits from a v4 UUID (the OS's generator) are plenty for jitter.
    let random = (uuid::Uuid::new_v4().as_u128() & 0xffff) as f64 / 65536.0;
    capped.mul_f64(0.5 + random / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_five_minutes() {
        let base = Duration::from_secs(1);
        for (attempts, full) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (9, 256.0),
            (10, 300.0),
            (40, 300.0),
        ] {
            for _ in 0..20 {
                let d = backoff(base, attempts).as_secs_f64();
                assert!(d >= full * 0.5 && d < full, "attempt {attempts}: {d}");
            }
        }
    }
}
