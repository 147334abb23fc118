//! The request path, top to bottom: request id → the OSS bridge endpoint or a route → the body
//! within the route's limit → event → function call → reply contract → answer (or, on an
//! `upstream:` route, the proxied exchange) → one access-log line. pingora accepts the
//! connections (`ServerApp`); `http1` reads the requests and writes the answers.

use crate::access_log::{AccessLog, Entry};
use crate::bridge;
use crate::checks::{Admitted, Identity, Request, Verdict};
use crate::client;
use crate::config::{ContractErrors, EventFormat, OssBridge, Route, Target};
use crate::contract;
use crate::errors::{self, GatewayError};
use crate::event::apigw::{self, ApiRequest, EventError};
use crate::http1::slots::Slots;
use crate::http1::{self, Answer, BodyError, Exchange, HeadError, Socket};
use crate::invoke::{InvokeError, Invoker};
use crate::metrics::{Metrics, RouteMetrics};
use crate::oss::queue::AsyncDelivery;
use crate::oss::stats::Stats;
use crate::proxy;
use crate::routing::Lookup;
use crate::snapshot::Snapshot;
use crate::text;
use crate::workers::Workers;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct Gateway {
    state: Arc<ArcSwap<Snapshot>>,
    invoker: Invoker,
    oss_stats: Arc<Stats>,
    oss_queue: Option<Arc<AsyncDelivery>>,
    settings: http1::Settings,
    workers: Arc<Workers>,
    /// Client connections open now, at most `server.max_connections`.
    connections: Slots,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
}

/// What the access log and the metrics say about a request.
struct Record<'s> {
    /// When the request's head had been read.
    started: Instant,
    /// The series of the route that took the request.
    metrics: Option<&'s RouteMetrics>,
    request_id: client::RequestId,
    /// The route's path pattern, `oss_bridge`, or `-`.
    route: &'s str,
    status: u16,
    error: Option<&'static str>,
    function_time: Option<Duration>,
    bytes_in: usize,
}

/// The checks' view of the request (and its body, as far as it is read).
fn with_request<T>(
    x: &Exchange<'_>,
    snap: &Snapshot,
    f: impl FnOnce(&Request<'_>, &[u8]) -> T,
) -> T {
    let peer = x.peer().map(|a| a.ip());
    let forwarded = client::forwarded_chain(x.headers());
    let trusted = &snap.config.gateway.trusted_proxies;
    let header = |name: &str| x.header(name);
    let req = Request {
        method: &x.head.method,
        path: x.path(),
        query: x.query(),
        header: &header,
        source_ip: client::source_ip(peer, &forwarded, trusted),
    };
    f(&req, x.body())
}

/// What `admit` decided.
enum Admission {
    Admitted(Admitted),
    /// A check answered the request itself.
    Answered,
}

/// A function route's call: the route, its function, the path's parameters, who called.
struct Call<'r, 's> {
    route: &'r Route,
    function: usize,
    params: &'r [ParamSpan<'s>],
    identity: Option<&'r Identity>,
}

/// A path parameter: its name and where its raw value lies in the request path.
type ParamSpan<'s> = (&'s str, Range<usize>);
/// A route's path parameters; the usual few kept in place.
type ParamSpans<'s> = SmallVec<[ParamSpan<'s>; 4]>;

impl Gateway {
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        pool_size: usize,
        oss_stats: Arc<Stats>,
        oss_queue: Option<Arc<AsyncDelivery>>,
        workers: Arc<Workers>,
        metrics: Arc<Metrics>,
        access_log: Option<Arc<AccessLog>>,
    ) -> Gateway {
        let server = &state.load().config.server;
        let settings = http1::Settings {
            keepalive_timeout: server.keepalive_timeout,
            keepalive_requests: server.keepalive_requests,
            read_timeout: server.read_timeout,
            send_timeout: server.send_timeout,
        };
        Gateway {
            invoker: Invoker::new(pool_size, server.send_timeout, metrics.pool.clone()),
            metrics,
            access_log,
            connections: Slots::new(server.max_connections),
            state,
            oss_stats,
            oss_queue,
            settings,
            workers,
        }
    }

    /// Everything after the request id; an error is answered by the caller.
    async fn dispatch<'s>(
        &self,
        x: &mut Exchange<'_>,
        snap: &'s Snapshot,
        rec: &mut Record<'s>,
    ) -> Result<(), GatewayError> {
        x.head
            .check_utf8(x.buf())
            .map_err(|_| GatewayError::BadRequest("the request target is not UTF-8".into()))?;
        if let Some(oss) = snap.config.oss_bridge.as_ref() {
            if oss.path == x.path() {
                rec.route = "oss_bridge";
                rec.metrics = snap.bridge_metrics.as_ref();
                // Boxed: a rare path with a large future, kept out of every request's.
                return Box::pin(self.serve_bridge(x, snap, oss, rec)).await;
            }
        }
        let path = x.path();
        let (index, params) = match snap.table.lookup(&x.head.method, path) {
            Lookup::Found { route, params } => (route, param_spans(path, params.iter())),
            Lookup::NotFound => return Err(GatewayError::RouteNotFound),
            Lookup::MethodNotAllowed { allow, route } => {
                // A CORS preflight on the path is its API's to answer, OPTIONS route or not.
                let api = snap.config.routes.get(route).map(|r| r.api);
                let cors = api.is_some_and(|a| snap.config.apis[a].cors.is_some());
                let preflight = cors
                    && x.head.method == http::Method::OPTIONS
                    && x.header("access-control-request-method").is_some();
                if preflight
                    && matches!(self.admit(x, snap, route, rec).await?, Admission::Answered)
                {
                    return Ok(());
                }
                let allow = allow.to_owned();
                return Err(GatewayError::MethodNotAllowed { allow });
            }
        };
        let route = &snap.config.routes[index];
        rec.route = &route.path;
        rec.metrics = snap.route_metrics.get(index);
        // The route's checks, before the body is read: a refused client's body is not taken in.
        let mut admitted = match self.admit(x, snap, index, rec).await? {
            Admission::Admitted(admitted) => admitted,
            Admission::Answered => return Ok(()),
        };
        read_body(x, route.max_body_bytes).await?;
        rec.bytes_in = x.body().len();
        if admitted.pending.is_some() {
            // A signature covers the body: checked now that it is read.
            let chain = &snap.chains[index];
            let verdict = with_request(x, snap, |req, body| {
                chain.run_body(req, body, &mut admitted)
            });
            x.extra_headers.append(&mut admitted.headers);
            if let Verdict::Refuse(err) = verdict {
                return Err(err);
            }
        }
        let identity = admitted.identity;
        match &route.target {
            Target::Function(f) => {
                let call = Call {
                    route,
                    function: *f,
                    params: &params,
                    identity: identity.as_deref(),
                };
                self.serve_function(x, snap, call, rec).await
            }
            Target::Upstream(up) => {
                let chain = client::forwarded_chain(x.headers());
                let forwarded_for = client::append_peer(&chain, x.peer_ip()).into_owned();
                let target = proxy::Target {
                    addr: up.addr,
                    timeout: route.timeout,
                    request_id: &rec.request_id,
                    forwarded_for: &forwarded_for,
                };
                rec.status = proxy::forward(x, &self.invoker, &target).await?;
                Ok(())
            }
        }
    }

    /// The route's checks (`checks`): the request goes on, with whom it was admitted as, or
    /// was answered by a check (a CORS preflight); a refusal is an error. The headers the
    /// checks want on the answer are set on the exchange, for whatever answer it gets.
    async fn admit(
        &self,
        x: &mut Exchange<'_>,
        snap: &Snapshot,
        route: usize,
        rec: &mut Record<'_>,
    ) -> Result<Admission, GatewayError> {
        let Some(chain) = snap.chains.get(route).filter(|c| !c.is_empty()) else {
            return Ok(Admission::Admitted(Admitted::default()));
        };
        let mut admitted = Admitted::default();
        let verdict = with_request(x, snap, |req, _| chain.run(req, &mut admitted));
        x.extra_headers = std::mem::take(&mut admitted.headers);
        match verdict {
            Verdict::Continue => Ok(Admission::Admitted(admitted)),
            Verdict::Refuse(err) => Err(err),
            Verdict::Answer(status) => {
                rec.status = status;
                let id = [("x-jdcloud-request-id", rec.request_id.as_bytes())];
                let _ = x.respond(status, id, b"").await;
                Ok(Admission::Answered)
            }
        }
    }

    /// The event route, once the body is read.
    async fn serve_function(
        &self,
        x: &mut Exchange<'_>,
        snap: &Snapshot,
        call: Call<'_, '_>,
        rec: &mut Record<'_>,
    ) -> Result<(), GatewayError> {
        let Call {
            route,
            function,
            params,
            identity,
        } = call;
        // 1. The event, from the request as received.
        let event = {
            let headers: SmallVec<[(&str, &[u8]); 16]> = x.headers().collect();
            let peer = x.peer().map(|a| a.ip());
            let chain = client::forwarded_chain(headers.iter().copied());
            let trusted = &snap.config.gateway.trusted_proxies;
            let forwarded_for = client::append_peer(&chain, x.peer_ip());
            let source_ip = match client::source_ip(peer, &chain, trusted) {
                // The usual case: the source is the peer, written out once per connection.
                Some(ip) if Some(ip) == peer => Cow::Borrowed(x.peer_ip()),
                Some(ip) => Cow::Owned(ip.to_string()),
                None => Cow::Borrowed(""),
            };
            let path = x.path();
            let raw_params: SmallVec<[(&str, &str); 4]> = params
                .iter()
                .map(|(name, span)| (*name, path.get(span.clone()).unwrap_or("")))
                .collect();
            apigw::build(&ApiRequest {
                template: &snap.templates[route.api],
                request_id: &rec.request_id,
                method: x.method(),
                path,
                query: x.query(),
                headers: &headers,
                path_params: &raw_params,
                forwarded_for: &forwarded_for,
                source_ip: &source_ip,
                body: x.body(),
                route_path: &route.path,
                any_method: route.methods.is_none(),
                binary: route.binary,
                identity,
                time: SystemTime::now(),
            })
            .map_err(|e| match e {
                EventError::BadRequest(why) => GatewayError::BadRequest(why),
                EventError::UnsupportedBody => GatewayError::UnsupportedBody,
            })?
        };

        // 2. The call, bounded by the route's timeout.
        let called = Instant::now();
        let deadline_ms = route.timeout.as_millis() as u64;
        let f = &snap.functions[function];
        // In a block: the call's future is gone before the answer's is made, so the two share
        // room in this future.
        let outcome = {
            let call = std::pin::pin!(self.invoker.invoke(f, &event, &rec.request_id, deadline_ms));
            // On the connection's timer: no timer of its own per call.
            x.within(route.timeout, call).await
        }
        .unwrap_or(Err(InvokeError::Timeout(route.timeout)));
        rec.function_time = Some(called.elapsed());
        let invocation = errors::call_outcome(outcome)?;

        // 3. The contract, then the answer.
        let api = &snap.config.apis[route.api];
        let reply = contract::check_format(api.format, &invocation.body)
            .map_err(|v| contract_error(api, v))?;
        rec.status = reply.status;
        let headers = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_bytes()))
            .filter(|(n, _)| !n.eq_ignore_ascii_case("x-jdcloud-request-id"))
            .chain([("x-jdcloud-request-id", rec.request_id.as_bytes())]);
        // A client that has gone away cannot be told anything; the connection just closes.
        let _ = x.respond(reply.status, headers, &reply.body).await;
        Ok(())
    }

    /// The OSS bridge endpoint (`oss_bridge.path`); see `bridge`.
    async fn serve_bridge(
        &self,
        x: &mut Exchange<'_>,
        snap: &Snapshot,
        oss: &OssBridge,
        rec: &mut Record<'_>,
    ) -> Result<(), GatewayError> {
        let headers = header_map(x.headers());
        bridge::admit(&x.head.method, &headers, x.query(), oss)?;
        read_body(x, oss.max_body_bytes).await?;
        rec.bytes_in = x.body().len();
        let deps = bridge::Deps {
            snap,
            invoker: &self.invoker,
            stats: &self.oss_stats,
            queue: self.oss_queue.as_ref(),
        };
        let answer = bridge::handle(&headers, x.body(), &deps).await?;
        rec.status = answer.status;
        let headers = [
            ("Content-Type", answer.content_type.as_bytes()),
            ("x-jdcloud-request-id", rec.request_id.as_bytes()),
        ];
        let _ = x.respond(answer.status, headers, &answer.body).await;
        Ok(())
    }
}

/// A broken reply, answered by fngate's rule or, with `contract_errors: platform`, as the
/// format's platform answers it (JD Cloud's formats have no other answer than fngate's).
fn contract_error(api: &crate::config::Api, violation: contract::Violation) -> GatewayError {
    let platform = match (api.contract_errors, api.format) {
        (ContractErrors::Fngate, _) => None,
        (_, EventFormat::AwsV1 | EventFormat::AwsV2) => {
            Some((502, &br#"{"message":"Internal server error"}"#[..]))
        }
        (_, EventFormat::Aliyun) => Some((503, &b""[..])),
        (_, EventFormat::Jdcloud | EventFormat::JdcloudDetail) => None,
    };
    match platform {
        Some((status, body)) => GatewayError::ResponseInvalidAsPlatform {
            violation,
            status,
            body,
        },
        None => GatewayError::ResponseInvalid(violation),
    }
}

/// Where each parameter's raw value lies in `path` (matchit hands out slices of it).
fn param_spans<'s, 'p>(
    path: &'p str,
    params: impl Iterator<Item = (&'s str, &'p str)>,
) -> ParamSpans<'s> {
    params
        .map(|(name, value)| (name, text::span(path.as_bytes(), value.as_bytes())))
        .collect()
}

/// The request headers as an `http::HeaderMap`, for the OSS code (not on the event route's
/// hot path); lines that are not valid HTTP are left out.
fn header_map<'h>(headers: impl Iterator<Item = (&'h str, &'h [u8])>) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// Reads the whole body within `limit` (413 above it, before anything is called; the
/// connection closes after a 413, as nginx's does).
async fn read_body(x: &mut Exchange<'_>, limit: usize) -> Result<(), GatewayError> {
    x.read_body(limit).await.map_err(|e| match e {
        BodyError::TooLarge => {
            x.keep_alive = false;
            GatewayError::PayloadTooLarge { limit }
        }
        BodyError::Malformed => GatewayError::BadRequest("malformed chunked request body".into()),
        BodyError::TrailersTooLarge => GatewayError::HeaderTooLarge,
        BodyError::TimedOut => GatewayError::RequestTimeout,
        BodyError::Closed => GatewayError::ClientClosed,
    })
}

async fn answer_error(x: &mut Exchange<'_>, rec: &mut Record<'_>, err: GatewayError, expose: bool) {
    rec.status = err.status();
    rec.error = Some(err.code());
    if x.responded() || err == GatewayError::ClientClosed {
        x.abort();
        return;
    }
    let answer = err.answer(&rec.request_id, expose);
    let _ = x.respond_answer(&answer).await;
}

impl http1::Handler for Gateway {
    async fn serve(&self, x: &mut Exchange<'_>) {
        let snap = self.state.load_full();
        let mut rec = Record {
            started: Instant::now(),
            metrics: None,
            request_id: client::request_id(|name| x.header(name), &snap.config.gateway),
            route: "-",
            status: 0,
            error: None,
            function_time: None,
            bytes_in: 0,
        };
        if let Err(err) = self.dispatch(x, &snap, &mut rec).await {
            answer_error(x, &mut rec, err, snap.config.expose_details).await;
        }
        self.account(x, &snap, &rec);
    }

    fn refuse(&self, err: &HeadError, peer: Option<SocketAddr>) -> Answer {
        let err = match err {
            HeadError::Malformed(why) => GatewayError::BadRequest(why.clone()),
            HeadError::TooLarge => GatewayError::HeaderTooLarge,
            HeadError::UnsupportedCoding => GatewayError::UnsupportedCoding,
        };
        self.refuse_with(err, peer)
    }
}

impl Gateway {
    /// The request in the metrics and the access log, once it is answered.
    fn account(&self, x: &Exchange<'_>, snap: &Snapshot, rec: &Record<'_>) {
        // One reading of the clock for both.
        let took = rec.started.elapsed();
        let series = rec.metrics.unwrap_or(&snap.unrouted);
        series.observe(&x.head.method, rec.status, took, rec.function_time);
        if let Some(code) = rec.error {
            self.metrics.error(code);
        }
        if let Some(log) = &self.access_log {
            let function = rec.function_time.unwrap_or_default();
            log.write(&Entry {
                time: SystemTime::now(),
                peer: x.peer_ip(),
                method: x.method(),
                path: x.path(),
                route: rec.route,
                status: rec.status,
                request_id: &rec.request_id,
                error: rec.error,
                bytes_in: rec.bytes_in,
                bytes_out: x.bytes_out,
                gateway_us: took.saturating_sub(function).as_micros() as u64,
                function_us: function.as_micros() as u64,
            });
        }
    }

    /// A connection over `server.max_connections`: a 503 at once, rather than a client left
    /// waiting on a gateway out of descriptors.
    async fn turn_away(&self, socket: Socket, shutdown: &ShutdownWatch) {
        let err = GatewayError::TooManyConnections {
            limit: self.connections.max(),
        };
        let answer = self.refuse_with(err, socket.peer_addr());
        http1::turn_away(socket, &answer, &self.settings, shutdown).await;
    }

    /// The answer to a connection or head refused before routing, logged.
    fn refuse_with(&self, err: GatewayError, peer: Option<SocketAddr>) -> Answer {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.metrics.error(err.code());
        if let Some(log) = &self.access_log {
            let peer = peer.map(|p| p.ip().to_string()).unwrap_or_default();
            log.write(&Entry {
                time: SystemTime::now(),
                peer: &peer,
                method: "-",
                path: "-",
                route: "-",
                status: err.status(),
                request_id: &request_id,
                error: Some(err.code()),
                bytes_in: 0,
                bytes_out: 0,
                gateway_us: 0,
                function_us: 0,
            });
        }
        err.answer(&request_id, self.state.load().config.expose_details)
    }
}

impl Gateway {
    /// Serves one accepted connection on a worker; `tls`: the `server.tls` entry whose
    /// listener accepted it.
    async fn accept(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        tls: Option<usize>,
    ) {
        let Some(tcp) = http1::take_tcp(stream) else {
            tracing::warn!("dropped a connection that is not a TCP stream");
            return;
        };
        let gateway = self.clone();
        let shutdown = shutdown.clone();
        let slot = self.connections.take();
        // Served on a worker (`workers`); this task, pingora's, waits for it, so that pingora's
        // graceful shutdown still waits for the connection.
        let served = self.workers.spawn(async move {
            let tcp = match tokio::net::TcpStream::from_std(tcp) {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::warn!("dropped a connection that could not be registered: {e}");
                    return;
                }
            };
            let socket = match tls {
                None => Socket::Tcp(tcp),
                Some(i) => match gateway.handshake(tcp, i).await {
                    Some(socket) => socket,
                    None => return,
                },
            };
            match slot {
                Some(_held) => http1::serve(socket, &*gateway, &gateway.settings, &shutdown).await,
                None => gateway.turn_away(socket, &shutdown).await,
            }
        });
        let _ = served.await;
    }

    /// The TLS handshake with the certificate of the current snapshot (a reload renews it),
    /// within `read_timeout`; a failure ends only this connection.
    async fn handshake(&self, tcp: tokio::net::TcpStream, index: usize) -> Option<Socket> {
        let peer = tcp.peer_addr().ok();
        let config = self.state.load().tls.get(index).cloned()?;
        match http1::accept_tls(tcp, config, self.settings.read_timeout).await {
            Ok(socket) => Some(socket),
            Err(e) => {
                self.metrics.tls_failures.inc();
                tracing::debug!(peer = ?peer, "TLS handshake failed: {e}");
                None
            }
        }
    }
}

/// The gateway behind a group of listeners (a pingora `ServerApp`): the plain ones, or those
/// of one `server.tls` entry.
pub struct Listener {
    pub gateway: Arc<Gateway>,
    /// The entry's index in `server.tls`; `None` for `server.listen`.
    pub tls: Option<usize>,
}

#[async_trait]
impl ServerApp for Listener {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.gateway.accept(stream, shutdown, self.tls).await;
        None
    }
}
