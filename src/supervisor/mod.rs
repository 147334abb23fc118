//! Supervised functions (docs/runtime.md, docs/configuration.md): every instance of a `command:`
//! function gets a loopback port chosen here, becomes an endpoint of its function, is started
//! before routes point at it, is restarted with back-off whenever it exits, and is stopped after
//! the gateway has drained.
//!
//! A reload applies a new config to the running set (`apply`): a function whose command,
//! environment, instances, timeout and memory are unchanged keeps its processes and ports; a
//! changed one gets new processes on new ports, started before the new snapshot points at them;
//! the old ones are retired after the swap (SIGTERM: they finish what they are running).
//!
//! The processes live on one dedicated thread with its own small runtime: the kernel ties
//! `PR_SET_PDEATHSIG` to the thread that forked, so that thread must outlive every instance.

mod instance;
mod output;

use crate::config::{Command, Config, Endpoint, Function};
use crate::metrics::Metrics;
use instance::Instance;
pub use instance::InstanceState;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What makes two `command:` functions the same running processes.
#[derive(Clone, PartialEq)]
struct Spec {
    name: String,
    command: Command,
    timeout: Duration,
    memory_mb: u32,
}

impl Spec {
    fn of(f: &Function) -> Option<Spec> {
        Some(Spec {
            name: f.name.clone(),
            command: f.command.clone()?,
            timeout: f.timeout,
            memory_mb: f.memory_mb,
        })
    }
}

/// The running instances of one function.
struct Group {
    spec: Spec,
    endpoints: Vec<Endpoint>,
    states: Vec<Arc<InstanceState>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What a reload changed, by function name.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Changes {
    pub unchanged: Vec<String>,
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
}

/// Groups replaced or removed by `apply`, stopped by `retire` once nothing routes to them.
#[must_use = "retire them after the new snapshot is in place"]
pub struct Retired(Vec<Group>);

pub struct Supervisor {
    runtime: Handle,
    groups: Vec<Group>,
    /// Tasks of retired groups, still stopping; awaited on shutdown.
    retiring: Vec<JoinHandle<()>>,
    /// Ends the supervisor thread once it has awaited the tasks it is handed.
    exit: Option<oneshot::Sender<Vec<JoinHandle<()>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Supervisor {
    /// Starts the supervisor thread and the config's functions (see `apply`).
    pub fn start(config: &mut Config, metrics: Arc<Metrics>) -> Result<Supervisor, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the function supervisor: {e}"))?;
        let handle = runtime.handle().clone();
        let (exit, exit_rx) = oneshot::channel::<Vec<JoinHandle<()>>>();
        let thread = std::thread::Builder::new()
            .name("fngate-supervisor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for task in exit_rx.await.unwrap_or_default() {
                        let _ = task.await;
                    }
                });
            })
            .map_err(|e| format!("cannot start the function supervisor: {e}"))?;
        let mut supervisor = Supervisor {
            runtime: handle,
            groups: Vec::new(),
            retiring: Vec::new(),
            exit: Some(exit),
            thread: Some(thread),
            metrics,
        };
        let (retired, _) = supervisor.apply(config)?;
        supervisor.retire(retired);
        Ok(supervisor)
    }

    /// Makes the running set match `config`: adds each `command:` function's instances to its
    /// endpoints, keeping unchanged functions' processes and starting the others. Returns once
    /// every new instance has opened its port, exited, or used up its `start_timeout` (those
    /// not up by then keep being started in the background).
    pub fn apply(&mut self, config: &mut Config) -> Result<(Retired, Changes), String> {
        let mut old = std::mem::take(&mut self.groups);
        let mut changes = Changes::default();
        let mut starting = Vec::new();
        // Hold every chosen port until all are chosen, so that no two instances share one.
        let mut held = Vec::new();
        for f in &mut config.functions {
            let Some(spec) = Spec::of(f) else {
                continue;
            };
            if let Some(i) = old.iter().position(|g| g.spec == spec) {
                let group = old.swap_remove(i);
                f.endpoints.extend(group.endpoints.iter().cloned());
                changes.unchanged.push(f.name.clone());
                self.groups.push(group);
                continue;
            }
            let replaces = old.iter().any(|g| g.spec.name == f.name);
            let list = if replaces {
                &mut changes.restarted
            } else {
                &mut changes.started
            };
            list.push(f.name.clone());
            let mut instances = Vec::new();
            for index in 0..spec.command.instances {
                let (listener, addr) = match free_loopback_port() {
                    Ok(p) => p,
                    Err(e) => {
                        // Nothing new has started yet; the running set stays as it was.
                        self.groups.append(&mut old);
                        return Err(e);
                    }
                };
                held.push(listener);
                let restarts = self.metrics.restarts(&f.name);
                instances.push(Instance::new(f, &spec.command, index, addr, restarts));
            }
            f.endpoints
                .extend(instances.iter().map(|i| endpoint(i.addr())));
            starting.push((spec, instances));
        }
        drop(held);
        changes.stopped = old
            .iter()
            .map(|g| g.spec.name.clone())
            .filter(|n| !changes.restarted.contains(n))
            .collect();

        let (settled_tx, settled) = mpsc::channel();
        let mut count = 0;
        for (spec, instances) in starting {
            let (stop, stop_rx) = watch::channel(false);
            let endpoints = instances.iter().map(|i| endpoint(i.addr())).collect();
            let states = instances.iter().map(Instance::state).collect();
            let tasks = instances
                .into_iter()
                .map(|i| {
                    count += 1;
                    let run = i.keep_running(stop_rx.clone(), settled_tx.clone());
                    self.runtime.spawn(run)
                })
                .collect();
            self.groups.push(Group {
                spec,
                endpoints,
                states,
                stop,
                tasks,
            });
        }
        drop(settled_tx);
        for _ in 0..count {
            if settled.recv().is_err() {
                break;
            }
        }
        Ok((Retired(old), changes))
    }

    /// Stops retired instances (SIGTERM, then SIGKILL); does not wait for them.
    pub fn retire(&mut self, retired: Retired) {
        for group in retired.0 {
            let _ = group.stop.send(true);
            self.retiring.extend(group.tasks);
        }
        self.retiring.retain(|t| !t.is_finished());
    }

    /// Every running instance, in config order.
    pub fn instances(&self) -> Vec<Arc<InstanceState>> {
        self.groups
            .iter()
            .flat_map(|g| g.states.iter().cloned())
            .collect()
    }

    /// Stops every instance (SIGTERM, then SIGKILL) and returns when all are gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let mut tasks = std::mem::take(&mut self.retiring);
        for group in self.groups.drain(..) {
            let _ = group.stop.send(true);
            tasks.extend(group.tasks);
        }
        if let Some(exit) = self.exit.take() {
            let _ = exit.send(tasks);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint {
        url: format!("http://{addr}/"),
        addr,
        authority: addr.to_string(),
        path_and_query: "/".into(),
    }
}

fn free_loopback_port() -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free loopback port for a function: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot find a free loopback port for a function: {e}"))?;
    Ok((listener, addr))
}
