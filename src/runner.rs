//! A thread of its own with a current-thread tokio runtime, for work that must not take time
//! from the connection workers and whose client library wants one runtime to live on: the OSS
//! delivery (`oss::worker`, `oss::consumer`) and the cluster-wide rate limits' sync
//! (`checks::cluster_limit`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A thread of its own with a current-thread runtime, driving the tasks given to it until
/// dropped; work can also be sent to it and awaited from any runtime (`run`), so that everything
/// a client library does — its connections, their reconnections — lives on one runtime, whatever
/// thread asks.
pub struct Runner {
    handle: tokio::runtime::Handle,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runner {
    pub fn start(name: &str) -> Result<Runner, String> {
        let failed = |e: std::io::Error| format!("cannot start the OSS delivery: {e}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let handle = runtime.handle().clone();
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(stopped.notified());
                // Attempts in flight are dropped here; their events stay pending (at least once).
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(failed)?;
        Ok(Runner {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    /// Makes this runtime the current one while the guard lives (to create a client on it).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Runs `work` on this runner's runtime and waits for it from any runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            Err(e) => Err(format!("the OSS delivery thread is gone: {e}")),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
