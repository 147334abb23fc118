//! Calling function backends: pooled HTTP/1.1 keep-alive connections (`conn`), round-robin
//! over endpoints with failed ones skipped for a while, and a cap on the reply size.
//!
//! No byte may cross between callers, so a connection goes back to the pool only after a
//! reply framed exactly and read to its end with nothing after it (`conn::Conn::reusable`),
//! and is taken out again only if nothing has arrived on it since (`Conn::still_idle`). A
//! request is sent again (once, on a fresh connection) only when not one byte of it was
//! written: never after, as the function may have run.

pub(crate) mod conn;

use crate::config::Function;
use crate::http1::response::push_decimal;
use crate::metrics::PoolMetrics;
use bytes::Bytes;
use conn::{Conn, Failure as ConnFailure};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How long an endpoint that refused a connection is skipped.
pub const EJECT_FOR: Duration = Duration::from_secs(2);
/// How long an idle pooled connection to a backend is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// Connect refused, reset or closed before a reply, malformed reply framing.
    Unreachable(String),
    /// The reply body is larger than the function's cap.
    ReplyTooLarge(usize),
    /// No reply within the given time.
    Timeout(Duration),
}

/// What the function's runtime answered.
#[derive(Debug)]
pub struct Invocation {
    pub status: u16,
    pub body: Bytes,
}

struct EndpointState {
    addr: SocketAddr,
    authority: String,
    /// The request head up to the Content-Length value, written out at load.
    head_start: Vec<u8>,
    /// Milliseconds since the invoker's epoch until which the endpoint is skipped.
    down_until: AtomicU64,
}

/// One function's endpoints and balancing state.
pub struct FunctionClient {
    name: String,
    /// The head's lines from the function's name to the deadline value, written out at load.
    head_function: Vec<u8>,
    endpoints: Vec<EndpointState>,
    next: AtomicUsize,
    max_reply_bytes: usize,
}

impl FunctionClient {
    pub fn new(f: &Function) -> FunctionClient {
        let endpoints = f
            .endpoints
            .iter()
            .map(|e| EndpointState {
                addr: e.addr,
                authority: e.authority.clone(),
                head_start: format!(
                    "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: ",
                    e.path_and_query, e.authority
                )
                .into_bytes(),
                down_until: AtomicU64::new(0),
            })
            .collect();
        FunctionClient {
            name: f.name.clone(),
            head_function: format!(
                "\r\nx-fngate-function: {}\r\nx-fngate-deadline-ms: ",
                f.name
            )
            .into_bytes(),
            endpoints,
            next: AtomicUsize::new(0),
            max_reply_bytes: f.max_reply_bytes,
        }
    }
}

enum Failure {
    /// Nothing was sent: safe to try another endpoint.
    Connect(String),
    /// The request may have reached the function.
    AfterSend(String),
    TooLarge(usize),
}

/// Calls functions; owns the idle connections.
pub struct Invoker {
    /// Per thread and backend address: a connection's readiness comes from the I/O driver of
    /// the runtime that opened it, and the gateway's runtimes are one per thread (`workers`),
    /// so a connection is reused only on the thread that opened it. Keyed with foldhash:
    /// SipHash cost 225 instructions a lookup, two a call, and the keys are the config's own
    /// addresses (nothing for a client to collide).
    idle: Mutex<HashMap<(ThreadId, SocketAddr), Vec<Conn>, foldhash::fast::RandomState>>,
    max_idle: usize,
    /// Longest wait for a backend to take more of a request.
    send_timeout: Duration,
    epoch: Instant,
    counters: PoolMetrics,
}

impl Invoker {
    /// `max_idle`: idle connections kept per thread and backend address.
    pub fn new(max_idle: usize, send_timeout: Duration, counters: PoolMetrics) -> Invoker {
        Invoker {
            idle: Mutex::new(HashMap::default()),
            max_idle,
            send_timeout,
            epoch: Instant::now(),
            counters,
        }
    }

    /// A new connection to `addr`.
    pub(crate) async fn open(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        let conn = Conn::open(addr, self.send_timeout).await?;
        self.counters.opened.inc();
        Ok(conn)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// `invoke`, bounded by `timeout`, which is also what the function is told it has left.
    pub async fn invoke_within(
        &self,
        f: &FunctionClient,
        event: &[u8],
        request_id: &str,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        let call = self.invoke(f, event, request_id, timeout.as_millis() as u64);
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(InvokeError::Timeout(timeout)))
    }

    /// POSTs `event` to one of the function's endpoints. The caller bounds it with the timeout;
    /// `deadline_ms` is what the function is told it has left.
    pub async fn invoke(
        &self,
        f: &FunctionClient,
        event: &[u8],
        request_id: &str,
        deadline_ms: u64,
    ) -> Result<Invocation, InvokeError> {
        let n = f.endpoints.len();
        if n == 0 {
            return Err(InvokeError::Unreachable(format!(
                "function {:?} has no running endpoint",
                f.name
            )));
        }
        let start = f.next.fetch_add(1, Ordering::Relaxed);
        // The clock is read only when some endpoint has been ejected (0: never, or recovered).
        let ejected = f
            .endpoints
            .iter()
            .any(|e| e.down_until.load(Ordering::Relaxed) != 0);
        let now = if ejected { self.now_ms() } else { 0 };
        let healthy = |i: &usize| f.endpoints[*i].down_until.load(Ordering::Relaxed) <= now;
        let order = (0..n).map(|i| (start + i) % n);
        // With every endpoint ejected, try them all rather than fail without trying.
        let all_down = ejected && !order.clone().any(|i| healthy(&i));
        let candidates = order.filter(|i| all_down || healthy(i));
        let mut last = String::new();
        for i in candidates {
            let ep = &f.endpoints[i];
            let head = |out: &mut Vec<u8>| {
                write_request_head(out, f, ep, event.len(), request_id, deadline_ms)
            };
            match self.call(ep, head, event, f.max_reply_bytes).await {
                Ok(inv) => {
                    if ejected {
                        ep.down_until.store(0, Ordering::Relaxed);
                    }
                    return Ok(inv);
                }
                Err(Failure::Connect(why)) => {
                    ep.down_until.store(
                        self.now_ms() + EJECT_FOR.as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    last = why;
                }
                Err(Failure::AfterSend(why)) => return Err(InvokeError::Unreachable(why)),
                Err(Failure::TooLarge(limit)) => return Err(InvokeError::ReplyTooLarge(limit)),
            }
        }
        Err(InvokeError::Unreachable(last))
    }

    /// A pooled connection not idle for too long on which nothing has arrived, if there is
    /// one; the others are closed.
    pub(crate) fn take_idle(&self, addr: SocketAddr) -> Option<Conn> {
        loop {
            let conn = self.pop_idle(addr)?;
            // Out of the lock: a system call.
            if conn.still_idle() {
                self.counters.reused.inc();
                return Some(conn);
            }
        }
    }

    fn pop_idle(&self, addr: SocketAddr) -> Option<Conn> {
        let key = (std::thread::current().id(), addr);
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&key)?;
        while let Some(conn) = list.pop() {
            if conn.idle_since.elapsed() < POOL_IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    pub(crate) fn put_idle(&self, addr: SocketAddr, mut conn: Conn) {
        conn.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry((std::thread::current().id(), addr)).or_default();
            if list.len() < self.max_idle {
                list.push(conn);
            }
        }
    }

    async fn call(
        &self,
        ep: &EndpointState,
        head: impl Fn(&mut Vec<u8>),
        event: &[u8],
        max_reply: usize,
    ) -> Result<Invocation, Failure> {
        if let Some(mut conn) = self.take_idle(ep.addr) {
            match conn.exchange(&head, event, max_reply).await {
                Ok(reply) => return Ok(self.finish(ep, conn, reply)),
                // The pooled connection failed before one byte of the request left (reset
                // while idle): the function never saw it, so a fresh connection may carry it.
                Err(ConnFailure::NotSent(_)) => {}
                Err(ConnFailure::NoReply(why) | ConnFailure::AfterReply(why)) => {
                    return Err(Failure::AfterSend(why))
                }
                Err(ConnFailure::TooLarge(l)) => return Err(Failure::TooLarge(l)),
            }
        }
        let mut conn = self
            .open(ep.addr)
            .await
            .map_err(|e| Failure::Connect(format!("connect to {}: {e}", ep.authority)))?;
        match conn.exchange(head, event, max_reply).await {
            Ok(reply) => Ok(self.finish(ep, conn, reply)),
            Err(ConnFailure::NotSent(why)) => Err(Failure::Connect(why)),
            Err(ConnFailure::NoReply(why) | ConnFailure::AfterReply(why)) => {
                Err(Failure::AfterSend(why))
            }
            Err(ConnFailure::TooLarge(l)) => Err(Failure::TooLarge(l)),
        }
    }

    /// Pools the connection when the reply was read whole and both sides keep it alive.
    fn finish(&self, ep: &EndpointState, conn: Conn, reply: conn::Reply) -> Invocation {
        if reply.reusable {
            self.put_idle(ep.addr, conn);
        }
        Invocation {
            status: reply.status,
            body: reply.body,
        }
    }
}

/// Writes the request head (values are checked at config load; ids are ours): two pieces
/// written out at load, with the length, request id and deadline between them.
fn write_request_head(
    h: &mut Vec<u8>,
    f: &FunctionClient,
    ep: &EndpointState,
    len: usize,
    request_id: &str,
    deadline_ms: u64,
) {
    const ID: &[u8] = b"\r\nx-jdcloud-request-id: ";
    h.reserve(ep.head_start.len() + ID.len() + request_id.len() + f.head_function.len() + 48);
    h.extend_from_slice(&ep.head_start);
    push_decimal(h, len as u64);
    h.extend_from_slice(ID);
    h.extend_from_slice(request_id.as_bytes());
    h.extend_from_slice(&f.head_function);
    push_decimal(h, deadline_ms);
    h.extend_from_slice(b"\r\n\r\n");
}
