//! Calling function backends (SPEC §3): pooled HTTP/1.1 keep-alive connections from pingora's
//! `TransportConnector`, round-robin over endpoints with failed ones skipped for a while, one
//! retry on a fresh connection when a pooled one turns out stale, and a cap on the reply size.

use crate::config::Function;
use bytes::{Bytes, BytesMut};
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::{HttpPeer, Peer};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
}

/// What the function's runtime answered.
#[derive(Debug)]
pub struct Invocation {
    pub status: u16,
    pub body: Bytes,
}

struct EndpointState {
    peer: HttpPeer,
    authority: String,
    path: String,
    /// Milliseconds since the invoker's epoch until which the endpoint is skipped.
    down_until: AtomicU64,
}

/// One function's endpoints and balancing state.
pub struct FunctionClient {
    name: String,
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
                peer: HttpPeer::new(e.addr, false, String::new()),
                authority: e.authority.clone(),
                path: e.path_and_query.clone(),
                down_until: AtomicU64::new(0),
            })
            .collect();
        FunctionClient {
            name: f.name.clone(),
            endpoints,
            next: AtomicUsize::new(0),
            max_reply_bytes: f.max_reply_bytes,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

enum Failure {
    /// Nothing was sent: safe to try another endpoint.
    Connect(String),
    /// The request may have reached the function.
    AfterSend(String),
    TooLarge(usize),
}

pub struct Invoker {
    transport: TransportConnector,
    epoch: Instant,
}

impl Invoker {
    pub fn new(pool_size: usize) -> Invoker {
        Invoker {
            transport: TransportConnector::new(Some(ConnectorOptions::new(pool_size))),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// POSTs `event` to one of the function's endpoints. The caller bounds it with the timeout;
    /// `deadline_ms` is what the function is told it has left.
    pub async fn invoke(
        &self,
        f: &FunctionClient,
        event: Bytes,
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
        let now = self.now_ms();
        let order = (0..n).map(|i| (start + i) % n);
        let healthy: Vec<usize> = order
            .clone()
            .filter(|&i| f.endpoints[i].down_until.load(Ordering::Relaxed) <= now)
            .collect();
        // With every endpoint ejected, try them all rather than fail without trying.
        let candidates = if healthy.is_empty() {
            order.collect()
        } else {
            healthy
        };
        let mut last = String::new();
        for i in candidates {
            let ep = &f.endpoints[i];
            let header = request_header(f, ep, event.len(), request_id, deadline_ms)?;
            match self.call(ep, header, &event, f.max_reply_bytes).await {
                Ok(inv) => return Ok(inv),
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

    async fn call(
        &self,
        ep: &EndpointState,
        header: RequestHeader,
        event: &Bytes,
        max_reply: usize,
    ) -> Result<Invocation, Failure> {
        if let Some(stream) = self.transport.reused_stream(&ep.peer).await {
            let mut session = HttpSession::new_with_options(stream, &ep.peer);
            match exchange(&mut session, header.clone(), event, max_reply).await {
                Ok(inv) => {
                    self.release(session, ep).await;
                    return Ok(inv);
                }
                // The pooled connection was closed by the backend while idle: the request
                // never reached it, so one retry on a fresh connection is safe.
                Err(Exchange::BeforeReply(_)) => {}
                Err(Exchange::AfterReply(why)) => return Err(Failure::AfterSend(why)),
                Err(Exchange::TooLarge(l)) => return Err(Failure::TooLarge(l)),
            }
        }
        let stream = self.transport.new_stream(&ep.peer).await.map_err(|e| {
            Failure::Connect(format!(
                "connect to {}: {}",
                ep.authority,
                e.etype().as_str()
            ))
        })?;
        let mut session = HttpSession::new_with_options(stream, &ep.peer);
        match exchange(&mut session, header, event, max_reply).await {
            Ok(inv) => {
                self.release(session, ep).await;
                Ok(inv)
            }
            Err(Exchange::BeforeReply(why) | Exchange::AfterReply(why)) => {
                Err(Failure::AfterSend(why))
            }
            Err(Exchange::TooLarge(l)) => Err(Failure::TooLarge(l)),
        }
    }

    /// Returns the connection to the pool; pingora keeps it only if the reply was read whole
    /// and both sides allow keep-alive.
    async fn release(&self, mut session: HttpSession, ep: &EndpointState) {
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            self.transport
                .release_stream(stream, ep.peer.reuse_hash(), Some(POOL_IDLE_TIMEOUT));
        }
    }
}

fn request_header(
    f: &FunctionClient,
    ep: &EndpointState,
    len: usize,
    request_id: &str,
    deadline_ms: u64,
) -> Result<RequestHeader, InvokeError> {
    let build = || -> pingora::Result<RequestHeader> {
        let mut h = RequestHeader::build("POST", ep.path.as_bytes(), Some(6))?;
        h.insert_header("host", &ep.authority)?;
        h.insert_header("content-type", "application/json")?;
        h.insert_header("content-length", len)?;
        h.insert_header("x-jdcloud-request-id", request_id)?;
        h.insert_header("x-fngate-function", &f.name)?;
        h.insert_header("x-fngate-deadline-ms", deadline_ms)?;
        Ok(h)
    };
    build().map_err(|e| InvokeError::Unreachable(format!("cannot build the request: {e}")))
}

enum Exchange {
    BeforeReply(String),
    AfterReply(String),
    TooLarge(usize),
}

async fn exchange(
    s: &mut HttpSession,
    header: RequestHeader,
    event: &Bytes,
    max_reply: usize,
) -> Result<Invocation, Exchange> {
    let before = |e: Box<pingora::Error>| Exchange::BeforeReply(e.etype().as_str().to_owned());
    s.write_request_header(Box::new(header))
        .await
        .map_err(before)?;
    s.write_body(event).await.map_err(before)?;
    s.finish_body().await.map_err(before)?;
    s.read_response().await.map_err(before)?;
    let status = s.get_status().map_or(0, |c| c.as_u16());
    let declared = s
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|l| l > max_reply) {
        return Err(Exchange::TooLarge(max_reply));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(max_reply));
    loop {
        match s.read_body_ref().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_reply {
                    return Err(Exchange::TooLarge(max_reply));
                }
                body.extend_from_slice(chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Exchange::AfterReply(format!(
                    "reading the reply: {}",
                    e.etype().as_str()
                )))
            }
        }
    }
    Ok(Invocation {
        status,
        body: body.freeze(),
    })
}
