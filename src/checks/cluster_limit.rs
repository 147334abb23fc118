//! `rate_limit: {scope: cluster}` (docs/scaling.md): one limit for every gateway of a cluster,
//! counted in fixed windows of `per` in the Redis of `cluster:`.
//!
//! The request path never waits on Redis. Each gateway counts its admissions in memory and,
//! every `cluster.sync`, adds them to the window's counter in Redis with one script call and
//! reads the cluster's totals back; a request is admitted while the cluster's last known total,
//! plus what this gateway admitted since, is under the limit. The cluster can therefore pass
//! the limit by what the other gateways admit within one sync interval. While Redis cannot be
//! reached (no sync for three intervals), the route's local token bucket decides instead; it
//! is spent by every admission in the meantime too, so a failover grants no fresh burst.

use super::rate_limit::Key;
use crate::config::ClusterSettings;
use crate::remote::{connect, within, CALL_TIMEOUT};
use crate::runner::Runner;
use crate::text::now_ms;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Adds each key's increment to its counter (setting its expiry) or, for 0, reads it; returns
/// the totals in order. The last argument is the counters' time to live in ms.
const ADD: &str = r"
local ttl = ARGV[#ARGV]
local out = {}
for i, k in ipairs(KEYS) do
  local n = tonumber(ARGV[i])
  if n > 0 then
    out[i] = redis.call('INCRBY', k, n)
    redis.call('PEXPIRE', k, ttl)
  else
    local v = redis.call('GET', k)
    out[i] = v and tonumber(v) or 0
  end
end
return out
";

/// Keys whose cluster totals are read back each sync although this gateway admitted nothing
/// for them since the last one, at most.
const REFRESH: usize = 1024;
/// Names shared by hash when a window tracks `max_keys` already.
const OVERFLOW: u64 = 1024;

pub enum Decision {
    Admit {
        remaining: u64,
        reset_s: u64,
    },
    Refuse {
        reset_s: u64,
    },
    /// Redis has not been reached lately: the local bucket decides.
    Local,
}

pub struct ClusterLimiter {
    limit: u64,
    window_ms: u64,
    max_keys: usize,
    /// `key_prefix:api[:route]`; a counter is `prefix:window:name`.
    prefix: String,
    state: Mutex<Window>,
    /// Unix ms of the last sync that reached Redis.
    synced_ms: AtomicU64,
    stale_after_ms: u64,
}

#[derive(Default)]
struct Window {
    index: u64,
    counts: HashMap<Key, Count>,
}

struct Count {
    /// The key's name in Redis, the same on every gateway (never a credential).
    name: String,
    /// The cluster's total as last read from Redis (this gateway's synced admissions in it).
    known: u64,
    /// Sent in the sync under way.
    flushing: u64,
    /// Admitted since.
    pending: u64,
}

/// One sync's work for a limiter: the window, and each key with its name and increment.
struct Batch {
    index: u64,
    keys: Vec<(Key, String, u64)>,
}

impl ClusterLimiter {
    pub fn new(
        requests: u32,
        per: Duration,
        max_keys: usize,
        name: &str,
        sync: &ClusterSync,
    ) -> Arc<ClusterLimiter> {
        let limiter = Arc::new(ClusterLimiter {
            limit: requests.into(),
            window_ms: (per.as_millis() as u64).max(1),
            max_keys,
            prefix: format!("{}:{name}", sync.key_prefix),
            state: Mutex::default(),
            // A limiter of a reloaded snapshot starts as healthy as the sync is.
            synced_ms: AtomicU64::new(sync.reached_ms.load(Ordering::Relaxed)),
            stale_after_ms: (sync.every.as_millis() as u64 * 3).max(1000),
        });
        sync.register(&limiter);
        limiter
    }

    /// Admits or refuses one request of `key` (`name`: its name in Redis, made only the first
    /// time the window sees the key).
    pub(super) fn take(&self, key: Key, name: impl FnOnce() -> String) -> Decision {
        let now = now_ms();
        if now.saturating_sub(self.synced_ms.load(Ordering::Relaxed)) > self.stale_after_ms {
            return Decision::Local;
        }
        let index = now / self.window_ms;
        let ends = (index + 1) * self.window_ms;
        let reset_s = (ends - now).div_ceil(1000);
        let Ok(mut w) = self.state.lock() else {
            return Decision::Local;
        };
        if w.index != index {
            w.index = index;
            w.counts.clear();
        }
        let full = w.counts.len() >= self.max_keys && !w.counts.contains_key(&key);
        let (key, name): (Key, Box<dyn FnOnce() -> String>) = match full {
            false => (key, Box::new(name)),
            true => {
                // Shared names, by a hash every gateway computes alike.
                let n = stable_hash(&name()) % OVERFLOW;
                (Key::Overflow(n), Box::new(move || format!("overflow-{n}")))
            }
        };
        let count = w.counts.entry(key).or_insert_with(|| Count {
            name: name(),
            known: 0,
            flushing: 0,
            pending: 0,
        });
        let used = count.known + count.flushing + count.pending;
        if used >= self.limit {
            return Decision::Refuse { reset_s };
        }
        count.pending += 1;
        Decision::Admit {
            remaining: self.limit - used - 1,
            reset_s,
        }
    }

    /// What to send: every key admitted since the last sync, and the totals of some others to
    /// read back; the increments move to `flushing`.
    fn batch(&self) -> Option<Batch> {
        let mut w = self.state.lock().ok()?;
        let index = w.index;
        let mut keys = Vec::new();
        let mut refresh = 0;
        for (key, c) in w.counts.iter_mut() {
            if c.pending > 0 {
                keys.push((key.clone(), c.name.clone(), c.pending));
                c.flushing = c.pending;
                c.pending = 0;
            } else if c.known < self.limit && refresh < REFRESH {
                refresh += 1;
                keys.push((key.clone(), c.name.clone(), 0));
            }
        }
        Some(Batch { index, keys })
    }

    /// The totals Redis answered (`Ok`), or the increments back to pending (`Err`).
    fn settle(&self, batch: &Batch, totals: Result<Vec<u64>, ()>) {
        let ok = totals.is_ok();
        if ok {
            self.synced_ms.store(now_ms(), Ordering::Relaxed);
        }
        let Ok(mut w) = self.state.lock() else {
            return;
        };
        if w.index != batch.index {
            return; // that window is over
        }
        let totals = totals.unwrap_or_default();
        for (i, (key, _, _)) in batch.keys.iter().enumerate() {
            let Some(c) = w.counts.get_mut(key) else {
                continue;
            };
            match totals.get(i) {
                Some(&total) if ok => c.known = total,
                _ => c.pending += c.flushing,
            }
            c.flushing = 0;
        }
    }

    fn counter(&self, index: u64, name: &str) -> String {
        format!("{}:{index}:{name}", self.prefix)
    }
}

/// FNV-1a: the same on every gateway, whatever the build's hasher seeds.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The connection to `cluster.redis` and the loop that syncs every cluster-wide limiter, on a
/// thread of its own; kept across reloads (`checks::Shared`).
pub struct ClusterSync {
    key_prefix: String,
    every: Duration,
    /// Unix ms of the last call that reached Redis.
    reached_ms: Arc<AtomicU64>,
    limiters: Arc<Mutex<Vec<Weak<ClusterLimiter>>>>,
    _runner: Runner,
}

impl ClusterSync {
    pub fn start(settings: &ClusterSettings) -> Result<Arc<ClusterSync>, String> {
        let runner = Runner::start("fngate-cluster-limits")?;
        let con = {
            let _on = runner.enter();
            connect(&settings.redis.0, CALL_TIMEOUT)?
        };
        let limiters: Arc<Mutex<Vec<Weak<ClusterLimiter>>>> = Arc::default();
        let reached_ms: Arc<AtomicU64> = Arc::default();
        let looping = sync_loop(con, limiters.clone(), reached_ms.clone(), settings.sync);
        runner.spawn(looping);
        Ok(Arc::new(ClusterSync {
            key_prefix: settings.key_prefix.clone(),
            every: settings.sync,
            reached_ms,
            limiters,
            _runner: runner,
        }))
    }

    fn register(&self, limiter: &Arc<ClusterLimiter>) {
        if let Ok(mut all) = self.limiters.lock() {
            all.push(Arc::downgrade(limiter));
        }
    }
}

async fn sync_loop(
    con: ConnectionManager,
    limiters: Arc<Mutex<Vec<Weak<ClusterLimiter>>>>,
    reached_ms: Arc<AtomicU64>,
    every: Duration,
) {
    let script = Script::new(ADD);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut down = false;
    loop {
        tick.tick().await;
        // Limiters of retired snapshots are gone: forget them.
        let live: Vec<Arc<ClusterLimiter>> = match limiters.lock() {
            Ok(mut all) => {
                all.retain(|l| l.strong_count() > 0);
                all.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return,
        };
        let (mut failed, mut reached) = (None, false);
        let mut idle = Vec::new();
        for limiter in live {
            let Some(batch) = limiter.batch() else {
                continue;
            };
            if batch.keys.is_empty() {
                idle.push((limiter, batch));
                continue;
            }
            let mut call = script.prepare_invoke();
            for (_, name, _) in &batch.keys {
                call.key(limiter.counter(batch.index, name));
            }
            for (_, _, n) in &batch.keys {
                call.arg(*n);
            }
            call.arg(limiter.window_ms * 2 + 1000);
            let mut c = con.clone();
            match within(call.invoke_async::<Vec<u64>>(&mut c)).await {
                Ok(totals) => {
                    limiter.settle(&batch, Ok(totals));
                    reached = true;
                }
                Err(e) => {
                    limiter.settle(&batch, Err(()));
                    failed = Some(e);
                }
            }
        }
        // Nothing was counted this round: one PING says whether Redis is there, for the idle
        // limiters (and for limiters yet to come).
        if !reached && failed.is_none() {
            let mut c = con.clone();
            failed = within(redis::cmd("PING").query_async::<()>(&mut c))
                .await
                .err();
        }
        if failed.is_none() {
            for (limiter, batch) in idle {
                limiter.settle(&batch, Ok(Vec::new()));
            }
        }
        if failed.is_none() {
            reached_ms.store(now_ms(), Ordering::Relaxed);
        }
        match (failed, down) {
            (Some(e), false) => {
                tracing::error!(target: "fngate::limits", "{e}; cluster-wide rate limits fall back to each gateway's own buckets until Redis answers");
                down = true;
            }
            (None, true) => {
                tracing::info!(target: "fngate::limits", "Redis answers again: cluster-wide rate limits are counted there");
                down = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: u64, max_keys: usize) -> ClusterLimiter {
        ClusterLimiter {
            limit,
            window_ms: 3_600_000,
            max_keys,
            prefix: "p:a".into(),
            state: Mutex::default(),
            synced_ms: AtomicU64::new(now_ms()),
            stale_after_ms: 3_600_000,
        }
    }

    #[test]
    fn admissions_count_against_the_cluster_total_and_survive_a_failed_sync() {
        let l = limiter(5, 100);
        let take = |l: &ClusterLimiter| l.take(Key::All, || "all".into());
        assert!(matches!(take(&l), Decision::Admit { remaining: 4, .. }));
        let batch = l.batch().unwrap();
        assert_eq!(batch.keys.len(), 1);
        assert_eq!(batch.keys[0].1, "all");
        assert_eq!(batch.keys[0].2, 1);
        // While the sync is under way the admission still counts.
        assert!(matches!(take(&l), Decision::Admit { remaining: 3, .. }));
        // Redis says the cluster is at 4 (the other gateways admitted 3).
        l.settle(&batch, Ok(vec![4]));
        assert!(
            matches!(take(&l), Decision::Refuse { .. }),
            "4 + 1 pending = 5"
        );
        // A failed sync puts the increment back: it is sent again next time.
        let batch = l.batch().unwrap();
        assert_eq!(batch.keys[0].2, 1);
        l.settle(&batch, Err(()));
        assert_eq!(l.batch().unwrap().keys[0].2, 1);
        assert_eq!(l.counter(7, "all"), "p:a:7:all");
    }

    #[test]
    fn a_full_window_shares_overflow_names_and_a_stale_sync_hands_over_to_the_local_bucket() {
        let l = limiter(1_000, 2);
        for i in 1..=4u8 {
            let ip = std::net::IpAddr::from([10, 0, 0, i]);
            assert!(matches!(
                l.take(Key::Ip(ip), || ip.to_string()),
                Decision::Admit { .. }
            ));
        }
        let names: Vec<String> = l.batch().unwrap().keys.into_iter().map(|k| k.1).collect();
        let (own, shared): (Vec<_>, Vec<_>) = names.iter().partition(|n| n.starts_with("10."));
        assert_eq!(own.len(), 2, "{names:?}");
        assert!(
            !shared.is_empty() && shared.iter().all(|n| n.starts_with("overflow-")),
            "{names:?}"
        );
        l.synced_ms.store(0, Ordering::Relaxed);
        assert!(matches!(l.take(Key::All, || "all".into()), Decision::Local));
    }
}
