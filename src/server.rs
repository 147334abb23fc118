//! Wiring: a validated `Config` becomes a pingora `Server` with the gateway (a pingora
//! `ServerApp`) on every listener,
//! after the supervised functions have been started. Startup problems (a busy port) are errors
//! here, not a silent hang inside pingora's retries. Functions are stopped only after the server
//! has drained, so in-flight requests can finish.

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::config::{Config, Delivery};
use crate::gateway::{Gateway, Listener};
use crate::metrics::Metrics;
use crate::oss::queue::AsyncDelivery;
use crate::oss::stats::Stats;
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use crate::supervisor::Supervisor;
use crate::workers::Workers;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// Pooled idle connections to function backends and upstreams, per worker thread.
const POOL_PER_THREAD: usize = 256;

/// Fails fast with a readable message when a listen address cannot be bound (pingora itself
/// retries a busy port for 30 s and then panics inside the service). The probe binds without
/// listening: a listening probe would take connections into its backlog and reset them when it
/// closes, and a client that saw the port open (a health check, a retrying sender) would get
/// a reset instead of waiting for the real listener.
fn check_listeners(config: &Config) -> Result<(), String> {
    let admin = config.server.admin_listen.iter();
    let tls = config.server.tls.iter().flat_map(|t| &t.listen);
    for addr in config.server.listen.iter().chain(tls).chain(admin) {
        probe_bind(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        // Dropped at once: pingora binds it again.
    }
    Ok(())
}

/// Binds `addr` as a listener would (`SO_REUSEADDR`, as pingora sets it), without listening.
/// Linux refuses the bind while another socket listens there.
fn probe_bind(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// What `run` stops once pingora's server has drained.
struct Running {
    reloader: Arc<Reloader>,
    access_log: Option<Arc<AccessLog>>,
    workers: Arc<Workers>,
    pid_file: Option<PidFile>,
}

/// Starts the supervised functions and the worker threads and builds the server; nothing
/// listens until it runs.
fn build(mut config: Config) -> Result<(Server, Running), String> {
    check_listeners(&config)?;
    let pid_file = config
        .server
        .pid_file
        .as_deref()
        .map(PidFile::write)
        .transpose()?;
    let oss_stats = Arc::new(Stats::default());
    let queue_slot = Arc::new(std::sync::OnceLock::new());
    let metrics = Arc::new(Metrics::new(oss_stats.clone(), queue_slot.clone()));
    let supervisor = Supervisor::start(&mut config, metrics.clone())?;
    let threads = config.server.threads;
    let workers = Workers::start(threads).map_err(|e| format!("cannot start workers: {e}"))?;
    let workers = Arc::new(workers);
    let conf = ServerConf {
        // pingora's runtimes only accept (and serve the admin port); connections are served
        // on the gateway's own workers (`workers.rs`).
        threads: 1,
        // pingora's default grace period is 300 s; ours comes from the config.
        grace_period_seconds: Some(config.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let listen = config.server.listen.clone();
    let tls_listen: Vec<Vec<SocketAddr>> =
        config.server.tls.iter().map(|t| t.listen.clone()).collect();
    let config_bridge = config.oss_bridge.clone();
    let admin_listen = config.server.admin_listen;
    let access_log = config.server.access_log.clone();
    let shared = crate::checks::Shared::start(&config)?;
    let snapshot = Snapshot::new(config, supervisor.instances(), 1, &metrics, &shared)?;
    let state = Arc::new(ArcSwap::from_pointee(snapshot));
    let reloader = Reloader::new(state.clone(), supervisor, metrics.clone(), shared);
    let reloader = Arc::new(reloader);

    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let oss_queue = match config_bridge.filter(|b| b.delivery == Delivery::Async) {
        Some(b) => {
            let pool = metrics.pool.clone();
            let queue = AsyncDelivery::start(&b, state.clone(), oss_stats.clone(), pool)?;
            let queue = Arc::new(queue);
            let _ = queue_slot.set(queue.clone());
            Some(queue)
        }
        None => None,
    };
    let admin = admin_listen.map(|addr| {
        let app = Admin {
            state: state.clone(),
            reloader: reloader.clone(),
            metrics: metrics.clone(),
            queue: oss_queue.clone(),
        };
        let mut service = pingora::services::listening::Service::new("fngate admin".into(), app);
        service.add_tcp(&addr.to_string());
        service
    });
    let access_log = access_log
        .map(|settings| AccessLog::start(&settings, threads, metrics.log_dropped.clone()))
        .transpose()?
        .map(Arc::new);
    let gateway = Gateway::new(
        state,
        POOL_PER_THREAD,
        oss_stats,
        oss_queue,
        workers.clone(),
        metrics,
        access_log.clone(),
    );
    let gateway = Arc::new(gateway);
    let app = Listener {
        gateway: gateway.clone(),
        tls: None,
    };
    let mut service = pingora::services::listening::Service::new("fngate".into(), app);
    add_listeners(&mut service, &listen);
    server.add_service(service);
    for (index, addrs) in tls_listen.iter().enumerate() {
        let app = Listener {
            gateway: gateway.clone(),
            tls: Some(index),
        };
        let mut service =
            pingora::services::listening::Service::new(format!("fngate tls {index}"), app);
        add_listeners(&mut service, addrs);
        server.add_service(service);
    }
    if let Some(admin) = admin {
        server.add_service(admin);
    }
    let running = Running {
        reloader,
        access_log,
        workers,
        pid_file,
    };
    Ok((server, running))
}

fn add_listeners<A>(service: &mut pingora::services::listening::Service<A>, addrs: &[SocketAddr]) {
    for addr in addrs {
        // The gateway takes each accepted socket out of pingora's stream at once (`http1`), so
        // pingora's read and write buffers would only be allocated to be freed.
        let buffers = L4BufferSettings::unbuffered();
        service.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(buffers));
    }
}

/// Runs until the process gets SIGTERM (graceful, `server.grace_period`), SIGINT (fast) or
/// SIGQUIT (graceful upgrade); SIGHUP reloads the config file.
pub fn run_forever(config: Config) -> Result<(), String> {
    run(config, RunArgs::default(), true)
}

/// Builds, runs until pingora's shutdown is over, then stops what pingora does not own: the
/// workers (whatever still runs on them is dropped) and the supervised functions.
fn run(config: Config, args: RunArgs, reload_on_sighup: bool) -> Result<(), String> {
    let (server, running) = build(config)?;
    if reload_on_sighup {
        reload_on_hangup(running.reloader.clone())?;
    }
    server.run(args);
    running.workers.stop();
    if let Some(log) = &running.access_log {
        log.stop();
    }
    running.reloader.stop_functions();
    drop(running.pid_file);
    Ok(())
}

/// A thread that reloads the config on each SIGHUP, one reload at a time.
fn reload_on_hangup(reloader: Arc<Reloader>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    // Registered here, before the server runs, so that an early SIGHUP cannot kill the process.
    let mut hangups = runtime
        .block_on(async { signal(SignalKind::hangup()) })
        .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("fngate-reload".into())
        .spawn(move || {
            runtime.block_on(async move {
                while hangups.recv().await.is_some() {
                    tracing::info!(target: "fngate::reload", "SIGHUP: reloading the configuration");
                    // Blocking is fine: this thread does nothing else.
                    let _ = reloader.reload();
                }
            });
        })
        .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    Ok(())
}

/// `server.pid_file`: written once the listeners are known to be free, removed on exit if it
/// still names this process.
struct PidFile(std::path::PathBuf);

impl PidFile {
    fn write(path: &std::path::Path) -> Result<PidFile, String> {
        let pid = std::process::id();
        // Written beside and renamed, so that a reader never sees half a number.
        let tmp = path.with_extension("pid.tmp");
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, format!("{pid}\n")))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the pid file {}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A shutdown switch for embedding the gateway (tests, benches): `stop()` ends `run_until`.
#[derive(Clone, Default)]
pub struct Stopper(Arc<Notify>);

impl Stopper {
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

struct StopWatch(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// Runs on the calling thread until `stopper.stop()`.
pub fn run_until(config: Config, stopper: &Stopper) -> Result<(), String> {
    let shutdown_signal = Box::new(StopWatch(stopper.0.clone()));
    run(config, RunArgs { shutdown_signal }, false)
}

#[cfg(test)]
mod tests {
    use super::probe_bind;
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_port_probe_takes_no_connection_and_sees_a_busy_port() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let refused = probe_bind(addr).err().map(|e| e.kind());
        assert_eq!(refused, Some(ErrorKind::AddrInUse));
        drop(busy);
        // Free now: the probe binds it, and a client is refused rather than queued and reset.
        let probe = probe_bind(addr).unwrap();
        let connect = TcpStream::connect(addr).err().map(|e| e.kind());
        assert_eq!(connect, Some(ErrorKind::ConnectionRefused));
        drop(probe);
    }
}
