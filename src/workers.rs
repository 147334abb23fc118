//! The gateway's worker threads: one single-threaded tokio runtime each, on which accepted
//! connections are served. pingora accepts on its own runtime and hands each connection here.
//!
//! Why not pingora's runtimes: its work-stealing scheduler runs the task each I/O poll woke
//! last before the others (tokio's LIFO slot), which shuffles the order in which connections
//! are served; measured against serving on pingora's runtime, these workers were ahead on the
//! event route in seven sittings of seven (median +9.3 %, docs/performance.md). pingora's own
//! current-thread flavour (`work_stealing: false`) cannot be used: it keeps runtime handles in
//! a process-wide thread-local table whose ids are recycled, so a gateway started after another
//! in the same process can be handed the first one's dead runtimes (cloudflare/pingora#981).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Each worker's stop signal and thread, taken by `stop`.
    running: Mutex<Vec<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Workers {
    /// Starts `n` (at least one) worker threads.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        let mut running = Vec::new();
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("fngate-worker-{i}"))
                .spawn(move || {
                    let _ = runtime.block_on(stopped);
                    // Whatever still runs (a request past the grace period) is dropped here.
                    drop(runtime);
                })?;
            running.push((stop, thread));
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            running: Mutex::new(running),
        })
    }

    /// Runs `task` on the next worker, round-robin.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task)
    }

    /// Stops the workers, dropping what still runs on them, and waits for their threads.
    pub fn stop(&self) {
        let running = match self.running.lock() {
            Ok(mut running) => std::mem::take(&mut *running),
            Err(_) => return,
        };
        for (stop, thread) in running {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Signalled, not joined: a drop may happen on a runtime thread.
        if let Ok(running) = self.running.get_mut() {
            for (stop, _) in running.drain(..) {
                let _ = stop.send(());
            }
        }
    }
}
