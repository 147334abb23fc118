//! One instance of a `command:` function: start it, watch it, restart it with back-off, stop it.

use super::output;
use crate::config::{command as env, Command, Function};
use prometheus_client::metrics::counter::Counter;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::watch;

/// The first restart comes quickly; each failure in a row doubles the wait up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run at least this long counts as healthy and resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Between SIGTERM and SIGKILL on stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a starting instance's port is tried.
const READY_POLL: Duration = Duration::from_millis(20);

pub(super) struct Instance {
    function: Arc<str>,
    index: usize,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    workdir: PathBuf,
    addr: SocketAddr,
    start_timeout: Duration,
    state: Arc<InstanceState>,
    restarts: Counter,
}

/// What the admin listener shows of an instance (`/readyz`, `/admin/routes`).
#[derive(Debug)]
pub struct InstanceState {
    pub function: Arc<str>,
    pub index: usize,
    pub addr: SocketAddr,
    /// The running process, 0 between runs.
    pid: AtomicU32,
    /// Its port accepted a connection since it was last started.
    ready: AtomicBool,
}

impl InstanceState {
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

enum Ended {
    /// The process exited (or could not be started); it will be started again.
    Exited,
    /// The gateway is stopping; the process is gone.
    Stopped,
}

impl Instance {
    pub(super) fn new(
        f: &Function,
        command: &Command,
        index: usize,
        addr: SocketAddr,
        restarts: Counter,
    ) -> Instance {
        let port = addr.port().to_string();
        let mut vars = command.env.clone();
        vars.extend([
            (env::PORT.to_owned(), port.clone()),
            (env::FUNCTION_NAME.to_owned(), f.name.clone()),
            (
                env::FUNCTION_TIMEOUT_MS.to_owned(),
                f.timeout.as_millis().to_string(),
            ),
            (env::FUNCTION_MEMORY_MB.to_owned(), f.memory_mb.to_string()),
            (env::INSTANCE.to_owned(), index.to_string()),
        ]);
        let function: Arc<str> = f.name.as_str().into();
        Instance {
            state: Arc::new(InstanceState {
                function: function.clone(),
                index,
                addr,
                pid: AtomicU32::new(0),
                ready: AtomicBool::new(false),
            }),
            function,
            restarts,
            index,
            program: command.program.clone(),
            args: command
                .args
                .iter()
                .map(|a| a.replace("{port}", &port))
                .collect(),
            env: vars,
            workdir: command.workdir.clone(),
            addr,
            start_timeout: command.start_timeout,
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn state(&self) -> Arc<InstanceState> {
        self.state.clone()
    }

    /// Runs the instance until `stop` says so. `settled` hears once, when the first start has
    /// opened its port, exited or timed out.
    pub(super) async fn keep_running(
        self,
        mut stop: watch::Receiver<bool>,
        settled: mpsc::Sender<()>,
    ) {
        let mut settled = Some(settled);
        let mut failures = 0u32;
        while !*stop.borrow() {
            let began = Instant::now();
            if let Ended::Stopped = self.run_once(&mut stop, &mut settled).await {
                return;
            }
            if began.elapsed() >= STABLE_AFTER {
                failures = 0;
            }
            let delay = backoff(failures);
            failures = failures.saturating_add(1);
            self.restarts.inc();
            tracing::warn!(
                function = %self.function,
                instance = self.index,
                "restarting in {}",
                humantime::format_duration(delay)
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn run_once(
        &self,
        stop: &mut watch::Receiver<bool>,
        settled: &mut Option<mpsc::Sender<()>>,
    ) -> Ended {
        let began = Instant::now();
        let mut child = match self.spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    function = %self.function,
                    instance = self.index,
                    "cannot start {}: {e}",
                    self.program.display()
                );
                settle(settled);
                return Ended::Exited;
            }
        };
        let pid = child.id();
        self.state.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
        let relays = [
            child.stdout.take().map(|s| {
                tokio::spawn(output::relay(
                    s,
                    self.function.clone(),
                    self.index,
                    "stdout",
                ))
            }),
            child.stderr.take().map(|s| {
                tokio::spawn(output::relay(
                    s,
                    self.function.clone(),
                    self.index,
                    "stderr",
                ))
            }),
        ];
        let ready = accepting(self.addr);
        tokio::pin!(ready);
        let start_timeout = tokio::time::sleep(self.start_timeout);
        tokio::pin!(start_timeout);
        let mut is_ready = false;
        let status = loop {
            tokio::select! {
                _ = &mut ready, if !is_ready => {
                    is_ready = true;
                    self.state.ready.store(true, Ordering::Relaxed);
                    tracing::info!(
                        function = %self.function,
                        instance = self.index,
                        pid,
                        "ready on {} after {} ms",
                        self.addr,
                        began.elapsed().as_millis()
                    );
                    settle(settled);
                }
                _ = &mut start_timeout, if !is_ready && settled.is_some() => {
                    tracing::warn!(
                        function = %self.function,
                        instance = self.index,
                        pid,
                        "not accepting connections on {} after {}; start-up goes on without it",
                        self.addr,
                        humantime::format_duration(self.start_timeout)
                    );
                    settle(settled);
                }
                status = child.wait() => break status,
                _ = stop.changed() => {
                    self.state.ready.store(false, Ordering::Relaxed);
                    terminate(&mut child, pid).await;
                    self.state.pid.store(0, Ordering::Relaxed);
                    tracing::info!(function = %self.function, instance = self.index, pid, "stopped");
                    return Ended::Stopped;
                }
            }
        };
        self.state.ready.store(false, Ordering::Relaxed);
        self.state.pid.store(0, Ordering::Relaxed);
        // Let the last lines (a traceback, say) reach the log before the exit is reported.
        for relay in relays.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_millis(500), relay).await;
        }
        tracing::warn!(
            function = %self.function,
            instance = self.index,
            pid,
            "exited {} after {} ms{}",
            describe(status),
            began.elapsed().as_millis(),
            if is_ready { "" } else { ", before it accepted connections" }
        );
        settle(settled);
        Ended::Exited
    }

    fn spawn(&self) -> io::Result<Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.workdir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches the gateway only, and stopping
            // reaches whatever the command started in turn.
            .process_group(0)
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        {
            let gateway = std::process::id();
            // SAFETY: the closure runs in the forked child before exec and only makes the
            // async-signal-safe calls prctl, getppid and _exit.
            unsafe {
                cmd.pre_exec(move || die_with_gateway(gateway));
            }
        }
        cmd.spawn()
    }
}

/// In the forked child: the kernel kills the instance when the gateway dies without stopping it
/// (kill -9), so no function process outlives its gateway.
#[cfg(target_os = "linux")]
fn die_with_gateway(gateway: u32) -> io::Result<()> {
    // SAFETY: plain system calls without memory arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The gateway died between fork and prctl.
        if libc::getppid() as u32 != gateway {
            libc::_exit(1);
        }
    }
    Ok(())
}

fn settle(settled: &mut Option<mpsc::Sender<()>>) {
    if let Some(s) = settled.take() {
        let _ = s.send(());
    }
}

/// Resolves once something accepts connections on `addr`.
async fn accepting(addr: SocketAddr) {
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(READY_POLL).await;
    }
}

/// SIGTERM to the instance's process group, SIGKILL after `STOP_TIMEOUT`, and SIGKILL to anything
/// left in the group once the instance itself is gone.
async fn terminate(child: &mut Child, pid: Option<u32>) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
    signal_group(pid, libc::SIGKILL);
}

fn signal_group(pid: Option<u32>, signal: libc::c_int) {
    if let Some(pgid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill has no memory arguments; a group that is already gone gives ESRCH.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
}

fn describe(status: io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("with status {code}"),
            (None, Some(sig)) => format!("on signal {sig}"),
            _ => "for an unknown reason".into(),
        },
        Err(e) => format!("(its status could not be read: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (0..10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
