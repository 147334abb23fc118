//! Hot reload (`SIGHUP`, `fngate -s reload`, `POST /admin/reload`): the config file is read and
//! validated again; only a valid file is applied. Supervised functions are brought in line first
//! (unchanged ones keep running, new and changed ones are up before anything routes to them),
//! then the new snapshot is stored in one step: requests in flight finish on the snapshot they
//! started with, the next ones see the new routes. Replaced function processes are stopped last.
//!
//! What is bound or started once at start-up — everything under `server:` and the async OSS
//! delivery's queue and workers — keeps its running values; a reload that changes them says
//! which keys need a restart (docs/operations.md).

use crate::config::{Config, Delivery};
use crate::metrics::Metrics;
use crate::routing::RouteTable;
use crate::snapshot::Snapshot;
use crate::supervisor::{Changes, Supervisor};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::{Arc, Mutex};

pub struct Reloader {
    state: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    /// Also what makes reloads one at a time; `None` once the gateway has stopped its functions.
    supervisor: Mutex<Option<Supervisor>>,
}

/// What a successful reload did.
#[derive(Debug, Serialize)]
pub struct Reloaded {
    pub generation: u64,
    pub functions: Changes,
    /// Keys whose new values were not applied: they take effect on the next start.
    pub restart_needed: Vec<&'static str>,
}

/// Why a reload was not applied; the running config stays.
#[derive(Debug)]
pub struct Rejected {
    /// Each problem on a line of its own, `file:line:column: message` where there is a place.
    pub problems: Vec<String>,
}

impl Rejected {
    fn one(message: impl Into<String>) -> Rejected {
        Rejected {
            problems: vec![message.into()],
        }
    }
}

impl Reloader {
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        supervisor: Supervisor,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        Reloader {
            state,
            metrics,
            supervisor: Mutex::new(Some(supervisor)),
        }
    }

    /// Reads the config file again and applies it, or leaves everything as it is. Blocks
    /// while new function instances start.
    pub fn reload(&self) -> Result<Reloaded, Rejected> {
        let outcome = self.try_reload();
        match &outcome {
            Ok(r) => {
                tracing::info!(
                    target: "fngate::reload",
                    generation = r.generation,
                    started = ?r.functions.started,
                    restarted = ?r.functions.restarted,
                    stopped = ?r.functions.stopped,
                    "configuration reloaded"
                );
                for key in &r.restart_needed {
                    tracing::warn!(
                        target: "fngate::reload",
                        "{key} changed: the running value stays until the gateway is restarted"
                    );
                }
            }
            Err(rejected) => {
                for p in &rejected.problems {
                    tracing::error!(target: "fngate::reload", "{p}");
                }
                tracing::error!(
                    target: "fngate::reload",
                    "reload rejected; the running configuration stays"
                );
            }
        }
        outcome
    }

    fn try_reload(&self) -> Result<Reloaded, Rejected> {
        let mut guard = self
            .supervisor
            .lock()
            .map_err(|_| Rejected::one("a previous reload failed midway; restart the gateway"))?;
        let supervisor = guard
            .as_mut()
            .ok_or_else(|| Rejected::one("the gateway is stopping"))?;
        let running = self.state.load_full();
        let path = running
            .config
            .source
            .clone()
            .ok_or_else(|| Rejected::one("the configuration was not read from a file"))?;
        let mut config = Config::load(&path).map_err(|e| Rejected {
            problems: e.to_string().lines().map(str::to_owned).collect(),
        })?;
        let restart_needed = keep_running_values(&running.config, &mut config);
        // Validation builds the table too; checked again before any process is started.
        RouteTable::build(&config.routes).map_err(|c| Rejected {
            problems: c.into_iter().map(|c| c.message).collect(),
        })?;
        let (retired, functions) = supervisor.apply(&mut config).map_err(Rejected::one)?;
        let generation = running.generation + 1;
        let snapshot = Snapshot::new(config, supervisor.instances(), generation, &self.metrics);
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                // Unreachable after the check above; the new instances then serve nothing.
                supervisor.retire(retired);
                return Err(Rejected::one(e));
            }
        };
        self.state.store(Arc::new(snapshot));
        supervisor.retire(retired);
        Ok(Reloaded {
            generation,
            functions,
            restart_needed,
        })
    }

    /// Stops the supervised functions (after the server has drained); later reloads are
    /// refused.
    pub fn stop_functions(&self) {
        let supervisor = match self.supervisor.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(s) = supervisor {
            s.stop();
        }
    }
}

/// Gives `new` the running values of what cannot change without a restart; returns the keys
/// whose values differed.
fn keep_running_values(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (r, n) = (&running.server, &new.server);
    let server_keys: [(&'static str, bool); 11] = [
        ("server.listen", r.listen != n.listen),
        ("server.admin_listen", r.admin_listen != n.admin_listen),
        ("server.threads", r.threads != n.threads),
        ("server.grace_period", r.grace_period != n.grace_period),
        (
            "server.keepalive_timeout",
            r.keepalive_timeout != n.keepalive_timeout,
        ),
        (
            "server.keepalive_requests",
            r.keepalive_requests != n.keepalive_requests,
        ),
        ("server.read_timeout", r.read_timeout != n.read_timeout),
        ("server.send_timeout", r.send_timeout != n.send_timeout),
        (
            "server.max_connections",
            r.max_connections != n.max_connections,
        ),
        ("server.pid_file", r.pid_file != n.pid_file),
        ("server.access_log", r.access_log != n.access_log),
    ];
    changed.extend(server_keys.iter().filter(|(_, d)| *d).map(|(k, _)| *k));
    // Certificate files are read again (renewed certificates); the listeners stay.
    let same_listeners = (r.tls.iter().map(|t| &t.listen)).eq(n.tls.iter().map(|t| &t.listen));
    let tls = if same_listeners {
        n.tls.clone()
    } else {
        changed.push("server.tls");
        r.tls.clone()
    };
    new.server = running.server.clone();
    new.server.tls = tls;

    let running_async = running
        .oss_bridge
        .as_ref()
        .filter(|b| b.delivery == Delivery::Async);
    match (running_async, new.oss_bridge.as_mut()) {
        // The queue and its workers were started with these values.
        (Some(r), Some(n)) => {
            let keys: [(&'static str, bool); 8] = [
                ("oss_bridge.delivery", r.delivery != n.delivery),
                ("oss_bridge.queue_dir", r.queue_dir != n.queue_dir),
                ("oss_bridge.max_attempts", r.max_attempts != n.max_attempts),
                (
                    "oss_bridge.max_event_age",
                    r.max_event_age != n.max_event_age,
                ),
                ("oss_bridge.workers", r.workers != n.workers),
                ("oss_bridge.dedup_window", r.dedup_window != n.dedup_window),
                (
                    "oss_bridge.retry_backoff",
                    r.retry_backoff != n.retry_backoff,
                ),
                (
                    "oss_bridge.dead_letter_capacity",
                    r.dead_letter_capacity != n.dead_letter_capacity,
                ),
            ];
            changed.extend(keys.iter().filter(|(_, d)| *d).map(|(k, _)| *k));
            n.delivery = r.delivery;
            n.queue_dir = r.queue_dir.clone();
            n.max_attempts = r.max_attempts;
            n.max_event_age = r.max_event_age;
            n.workers = r.workers;
            n.dedup_window = r.dedup_window;
            n.retry_backoff = r.retry_backoff;
            n.dead_letter_capacity = r.dead_letter_capacity;
        }
        // No queue runs: the bridge delivers synchronously until a restart opens one.
        (None, Some(n)) if n.delivery == Delivery::Async => {
            changed.push("oss_bridge.delivery");
            n.delivery = Delivery::Sync;
        }
        _ => {}
    }
    changed
}
