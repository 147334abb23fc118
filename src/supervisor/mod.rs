//! Supervised functions (docs/runtime.md, docs/configuration.md): every instance of a `command:` function gets a loopback port
//! chosen here, becomes an endpoint of its function, is started before the gateway listens, is
//! restarted with back-off whenever it exits, and is stopped after the gateway has drained.
//!
//! The processes live on one dedicated thread with its own small runtime: the kernel ties
//! `PR_SET_PDEATHSIG` to the thread that forked, so that thread must outlive every instance.

mod instance;
mod output;

use crate::config::{Config, Endpoint};
use instance::Instance;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::mpsc;
use tokio::sync::watch;

pub struct Supervisor {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    /// Chooses a port for every instance, adds it to its function's endpoints, starts the
    /// instances and returns once each has opened its port, exited, or used up its
    /// `start_timeout`. Instances that are not up by then keep being started in the background.
    pub fn start(config: &mut Config) -> Result<Supervisor, String> {
        let mut instances = Vec::new();
        // Hold every chosen port until all are chosen, so that no two instances share one.
        let mut held = Vec::new();
        for f in &mut config.functions {
            let Some(command) = f.command.clone() else {
                continue;
            };
            for index in 0..command.instances {
                let (listener, addr) = free_loopback_port()?;
                held.push(listener);
                f.endpoints.push(Endpoint {
                    url: format!("http://{addr}/"),
                    addr,
                    authority: addr.to_string(),
                    path_and_query: "/".into(),
                });
                instances.push(Instance::new(f, &command, index, addr));
            }
        }
        drop(held);

        let (stop, stop_rx) = watch::channel(false);
        if instances.is_empty() {
            return Ok(Supervisor { stop, thread: None });
        }
        let count = instances.len();
        let (settled_tx, settled) = mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the function supervisor: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("fngate-supervisor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let tasks: Vec<_> = instances
                        .into_iter()
                        .map(|i| tokio::spawn(i.keep_running(stop_rx.clone(), settled_tx.clone())))
                        .collect();
                    drop(settled_tx);
                    for task in tasks {
                        let _ = task.await;
                    }
                });
            })
            .map_err(|e| format!("cannot start the function supervisor: {e}"))?;
        for _ in 0..count {
            if settled.recv().is_err() {
                break;
            }
        }
        Ok(Supervisor {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops every instance (SIGTERM, then SIGKILL) and returns when all are gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
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

fn free_loopback_port() -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free loopback port for a function: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot find a free loopback port for a function: {e}"))?;
    Ok((listener, addr))
}
