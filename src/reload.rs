//! Hot reload (`SIGHUP`, `fngate -s reload`, `POST /admin/reload`): the config file is read and
//! validated again; only a valid file is applied. Supervised functions are brought in line first
//! (unchanged ones keep running, new and changed ones are up before anything routes to them),
//! then the new snapshot is stored in one step: requests in flight finish on the snapshot they
//! started with, the next ones see the new routes. Replaced function processes are stopped last.
//!
//! What is bound or started once at start-up — everything under `server:` and the async OSS
//! delivery's queue and workers — keeps its running values; a reload that changes them says
//! which keys need a restart (docs/operations.md).

use crate::checks::Shared;
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
    /// What the checks keep across reloads (JD Cloud nonces).
    shared: Shared,
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
        shared: Shared,
    ) -> Reloader {
        Reloader {
            state,
            metrics,
            shared,
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
        let snapshot = Snapshot::new(
            config,
            supervisor.instances(),
            generation,
            &self.metrics,
            &self.shared,
        );
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

/// For each field: when the new value differs, name it and keep the running one.
macro_rules! keep_running {
    ($changed:ident, $section:literal, $running:expr, $new:expr, [$($field:ident),* $(,)?]) => {{$(
        if $running.$field != $new.$field {
            $changed.push(concat!($section, ".", stringify!($field)));
            $new.$field = $running.$field.clone();
        }
    )*}};
}

/// Gives `new` the running values of what cannot change without a restart; returns the keys
/// whose values differed.
fn keep_running_values(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (r, n) = (&running.server, &mut new.server);
    // Every field of `ServerSettings` but `tls`.
    keep_running!(
        changed,
        "server",
        r,
        n,
        [
            listen,
            admin_listen,
            threads,
            grace_period,
            keepalive_timeout,
            keepalive_requests,
            read_timeout,
            send_timeout,
            max_connections,
            pid_file,
            access_log,
        ]
    );
    // Certificate files are read again (renewed certificates); the listeners stay.
    let same_listeners = (r.tls.iter().map(|t| &t.listen)).eq(n.tls.iter().map(|t| &t.listen));
    if !same_listeners {
        changed.push("server.tls");
        n.tls = r.tls.clone();
    }

    // The cluster sync was started with these; its limiters follow the new config.
    if running.cluster != new.cluster {
        changed.push("cluster");
        new.cluster = running.cluster.clone();
    }

    let running_async = running
        .oss_bridge
        .as_ref()
        .filter(|b| b.delivery == Delivery::Async);
    match (running_async, new.oss_bridge.as_mut()) {
        // The queue and its workers were started with these values.
        (Some(r), Some(n)) => keep_running!(
            changed,
            "oss_bridge",
            r,
            n,
            [
                delivery,
                queue,
                max_attempts,
                max_event_age,
                workers,
                dedup_window,
                retry_backoff,
                dead_letter_capacity,
            ]
        ),
        // No queue runs: the bridge delivers synchronously until a restart opens one.
        (None, Some(n)) if n.delivery == Delivery::Async => {
            changed.push("oss_bridge.delivery");
            n.delivery = Delivery::Sync;
        }
        _ => {}
    }
    changed
}
