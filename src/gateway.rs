//! The request path, in order: route → read the body within limits → build the event → invoke
//! the function → check the reply contract → answer. Pass-through routes leave `request_filter`
//! early and continue through pingora's proxy (`upstream_peer`).

use crate::bridge;
use crate::client;
use crate::config::{OssBridge, Target};
use crate::contract;
use crate::errors::{self, GatewayError};
use crate::event::apigw::{self, ApiRequest, EventError};
use crate::invoke::Invoker;
use crate::oss::stats::Stats;
use crate::oss::worker::AsyncDelivery;
use crate::respond;
use crate::routing::Lookup;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct Gateway {
    state: Arc<ArcSwap<Snapshot>>,
    invoker: Invoker,
    oss_stats: Arc<Stats>,
    oss_queue: Option<Arc<AsyncDelivery>>,
}

/// Per-request state, also what the access log prints.
pub struct RequestCtx {
    started: Instant,
    snapshot: Option<Arc<Snapshot>>,
    request_id: String,
    route: Option<usize>,
    /// The request went to the OSS bridge endpoint.
    bridge: bool,
    upstream: Option<(SocketAddr, Duration)>,
    status: u16,
    error: Option<&'static str>,
    function_time: Option<Duration>,
    bytes_in: usize,
    bytes_out: usize,
}

impl Gateway {
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        pool_size: usize,
        oss_stats: Arc<Stats>,
        oss_queue: Option<Arc<AsyncDelivery>>,
    ) -> Gateway {
        Gateway {
            state,
            invoker: Invoker::new(pool_size),
            oss_stats,
            oss_queue,
        }
    }

    /// The OSS bridge endpoint (`oss_bridge.path`); see `bridge`.
    async fn serve_bridge(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        oss: &OssBridge,
    ) -> Result<Option<GatewayError>> {
        let req = session.req_header();
        let query = req.uri.query().unwrap_or("");
        if let Err(err) = bridge::admit(&req.method, &req.headers, query, oss) {
            return Ok(Some(err));
        }
        let body = match read_body(session, oss.max_body_bytes).await? {
            Ok(body) => body,
            Err(err) => return Ok(Some(err)),
        };
        ctx.bytes_in = body.len();
        let headers = &session.req_header().headers;
        let deps = bridge::Deps {
            snap,
            invoker: &self.invoker,
            stats: &self.oss_stats,
            queue: self.oss_queue.as_ref(),
        };
        match bridge::handle(headers, &body, &deps).await {
            Ok(answer) => {
                ctx.status = answer.status;
                let content_type = (
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(answer.content_type),
                );
                ctx.bytes_out = respond::write(
                    session,
                    answer.status,
                    &[content_type],
                    &ctx.request_id,
                    answer.body,
                )
                .await?;
                Ok(None)
            }
            Err(err) => Ok(Some(err)),
        }
    }

    /// The event route. Returns the error to answer with, if any; a successful reply has been
    /// written when it returns `Ok(None)`.
    async fn serve_function(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        route_index: usize,
        params: &[(&str, String)],
    ) -> Result<Option<GatewayError>> {
        let route = &snap.config.routes[route_index];
        let Target::Function(function) = route.target else {
            return Ok(None);
        };

        // 1. The body, within the route's limit, before anything is called.
        let body = match read_body(session, route.max_body_bytes).await? {
            Ok(body) => body,
            Err(err) => return Ok(Some(err)),
        };
        ctx.bytes_in = body.len();

        // 2. The event.
        let req = session.req_header();
        let peer = peer_ip(session);
        let chain = client::forwarded_chain(&req.headers);
        let source_ip = client::source_ip(peer, &chain, &snap.config.gateway.trusted_proxies);
        let forwarded_for = client::append_peer(&chain, peer);
        let raw_params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let event = apigw::build(&ApiRequest {
            api: &snap.config.apis[route.api],
            gateway: &snap.config.gateway,
            request_id: &ctx.request_id,
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: &req.headers,
            path_params: &raw_params,
            forwarded_for: &forwarded_for,
            source_ip: &source_ip,
            body: &body,
            binary: route.binary,
            time: SystemTime::now(),
        });
        let event = match event {
            Ok(e) => Bytes::from(e),
            Err(EventError::BadRequest(why)) => return Ok(Some(GatewayError::BadRequest(why))),
            Err(EventError::UnsupportedBody) => return Ok(Some(GatewayError::UnsupportedBody)),
        };

        // 3. The call, bounded by the route's timeout.
        let client = &snap.functions[function];
        let called = Instant::now();
        let outcome = self
            .invoker
            .invoke_within(client, event, &ctx.request_id, route.timeout)
            .await;
        ctx.function_time = Some(called.elapsed());
        let invocation = match errors::call_outcome(outcome) {
            Ok(inv) => inv,
            Err(err) => return Ok(Some(err)),
        };

        // 4. The contract, then the answer.
        let reply = match contract::check(&invocation.body) {
            Ok(reply) => reply,
            Err(v) => return Ok(Some(GatewayError::ResponseInvalid(v))),
        };
        ctx.status = reply.status;
        ctx.bytes_out = respond::write(
            session,
            reply.status,
            &reply.headers,
            &ctx.request_id,
            reply.body,
        )
        .await?;
        Ok(None)
    }

    async fn answer_error(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        err: GatewayError,
        expose: bool,
    ) -> Result<()> {
        // pingora closes a connection whose request body was left unread; drain a small one so
        // that the client keeps its connection, and close after anything larger (413 included).
        let small = declared_length(session).is_some_and(|len| len <= DRAIN_LIMIT);
        let unread = !session.is_body_done();
        let too_large = matches!(err, GatewayError::PayloadTooLarge { .. });
        let keep = !unread || (small && !too_large && session.drain_request_body().await.is_ok());
        if !keep {
            session.set_keepalive(None);
        }
        ctx.status = err.status();
        ctx.error = Some(err.code());
        ctx.bytes_out = respond::error(session, &err, &ctx.request_id, expose).await?;
        Ok(())
    }
}

/// Unread request bodies up to this size are drained so that an error keeps the connection.
const DRAIN_LIMIT: usize = 64 * 1024;

fn declared_length(session: &Session) -> Option<usize> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
}

fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Reads the whole request body, answering 413 as soon as the declared or received length
/// passes `limit`. `Expect: 100-continue` is answered only when the body will be read.
async fn read_body(
    session: &mut Session,
    limit: usize,
) -> Result<std::result::Result<Bytes, GatewayError>> {
    let too_large = GatewayError::PayloadTooLarge { limit };
    let declared = declared_length(session);
    if declared.is_some_and(|len| len > limit) {
        return Ok(Err(too_large));
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await?;
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(Err(too_large));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body.freeze()))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// No downstream modules: pingora's default adds a (disabled) compression module, which
    /// still costs allocations on every request.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            request_id: String::new(),
            route: None,
            bridge: false,
            upstream: None,
            status: 0,
            error: None,
            function_time: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        // pingora keeps idle HTTP/1.1 clients forever unless told otherwise.
        let idle = self.state.load().config.server.keepalive_timeout.as_secs();
        session.set_keepalive(Some(idle.max(1)));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snap = self.state.load_full();
        ctx.snapshot = Some(snap.clone());
        ctx.request_id = client::request_id(&session.req_header().headers, &snap.config.gateway);
        let expose = snap.config.expose_details;

        let path = session.req_header().uri.path().to_owned();
        if let Some(oss) = snap.config.oss_bridge.as_ref().filter(|b| b.path == path) {
            ctx.bridge = true;
            if let Some(err) = self.serve_bridge(session, ctx, &snap, oss).await? {
                self.answer_error(session, ctx, err, expose).await?;
            }
            return Ok(true);
        }
        let method = session.req_header().method.clone();
        let (route_index, params) = match snap.table.lookup(&method, &path) {
            Lookup::Found { route, params } => (
                route,
                params
                    .iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect::<Vec<_>>(),
            ),
            Lookup::NotFound => {
                self.answer_error(session, ctx, GatewayError::RouteNotFound, expose)
                    .await?;
                return Ok(true);
            }
            Lookup::MethodNotAllowed { allow } => {
                let err = GatewayError::MethodNotAllowed {
                    allow: allow.to_owned(),
                };
                self.answer_error(session, ctx, err, expose).await?;
                return Ok(true);
            }
        };
        ctx.route = Some(route_index);
        let route = &snap.config.routes[route_index];
        if let Target::Upstream(up) = &route.target {
            ctx.upstream = Some((up.addr, route.timeout));
            return Ok(false);
        }
        if let Some(err) = self
            .serve_function(session, ctx, &snap, route_index, &params)
            .await?
        {
            self.answer_error(session, ctx, err, expose).await?;
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (addr, timeout) = ctx.upstream.ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "no upstream for this route")
        })?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.read_timeout = Some(timeout);
        peer.options.idle_timeout = Some(crate::invoke::POOL_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let chain = client::forwarded_chain(&session.req_header().headers);
        let forwarded = client::append_peer(&chain, peer_ip(session));
        upstream.insert_header("x-forwarded-for", forwarded)?;
        upstream.insert_header("x-forwarded-proto", "http")?;
        upstream.insert_header("x-jdcloud-request-id", &ctx.request_id)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream_response.status.as_u16();
        upstream_response.insert_header("x-jdcloud-request-id", &ctx.request_id)?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let err = match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                GatewayError::FunctionTimeout(ctx.upstream.map_or(Duration::ZERO, |u| u.1))
            }
            ErrorType::HTTPStatus(400) | ErrorType::InvalidHTTPHeader => {
                GatewayError::BadRequest(format!("malformed request: {}", e.etype().as_str()))
            }
            other => GatewayError::FunctionUnreachable(format!("upstream: {}", other.as_str())),
        };
        let downstream_gone = e.esource() == &pingora::ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
            );
        let mut code = 0;
        if session.response_written().is_none() && !downstream_gone {
            let expose = ctx
                .snapshot
                .as_ref()
                .is_none_or(|s| s.config.expose_details);
            if self.answer_error(session, ctx, err, expose).await.is_ok() {
                code = ctx.status;
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let total = ctx.started.elapsed();
        let function = ctx.function_time.unwrap_or_default();
        let req = session.req_header();
        let route = ctx
            .route
            .zip(ctx.snapshot.as_ref())
            .map_or(if ctx.bridge { "oss_bridge" } else { "-" }, |(r, s)| {
                s.config.routes[r].path.as_str()
            });
        let status = match session.response_written() {
            Some(resp) => resp.status.as_u16(),
            None => ctx.status,
        };
        tracing::info!(
            target: "fngate::access",
            method = %req.method,
            path = req.uri.path(),
            route,
            status,
            request_id = %ctx.request_id,
            error = ctx.error.unwrap_or("-"),
            bytes_in = ctx.bytes_in.max(session.body_bytes_read()),
            bytes_out = ctx.bytes_out.max(session.body_bytes_sent()),
            gateway_us = total.saturating_sub(function).as_micros() as u64,
            function_us = function.as_micros() as u64,
            failure = e.map(|e| e.etype().as_str()),
        );
    }
}
