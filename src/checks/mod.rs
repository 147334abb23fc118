//! The checks a request passes before its route serves it (docs/security.md): an ordered chain,
//! built per route with each snapshot, in which every check may let the request go on, answer
//! it itself (a CORS preflight) or refuse it (401, 403, 429). They run after routing and before
//! the body is read, so a refused client's body is never taken in; what only the body can
//! settle (a signature over it) runs in a second stage once it is read. A new kind of check is
//! a new file here and one line in `Chain::for_route`.
//!
//! Order: CORS (a preflight is answered before anything else; the CORS headers are then on
//! every answer, refusals included) → authentication → rate limit (so that a limit keyed by
//! API key sees the key that was admitted).

mod apikey;
mod cluster_limit;
mod cors;
pub mod jdcloud;
mod rate_limit;

use crate::config::{Auth, Config, Route};
use crate::errors::GatewayError;
use http::Method;
use std::net::IpAddr;
use std::sync::Arc;

pub use cluster_limit::ClusterSync;
pub use jdcloud::NonceTable;
pub use rate_limit::Limiter;

/// What the checks see of a request.
pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// Raw, without `?`.
    pub query: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    /// `sourceIp`: the peer, or what a trusted proxy said.
    pub source_ip: Option<IpAddr>,
}

/// Who the request was admitted as (`requestContext.identity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub auth_type: &'static str,
    pub api_key: String,
    pub user: String,
    pub account_id: String,
}

/// What the checks learned, for the rest of the request.
#[derive(Default)]
pub struct Admitted {
    /// Shared, not copied: the same key admits many requests.
    pub identity: Option<Arc<Identity>>,
    /// Headers every answer to this request carries (CORS, rate-limit state).
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// A JD Cloud signature whose head is valid, to be checked against the body.
    pub pending: Option<Box<jdcloud::Pending>>,
}

pub enum Verdict {
    Continue,
    /// Answered by the check itself with this status and no body (the headers are in
    /// `Admitted::headers`).
    Answer(u16),
    Refuse(GatewayError),
}

pub trait Check: Send + Sync {
    /// On the head, before the body is read.
    fn check(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict;

    /// Once the body is read, for what only the body can settle (a signature over it).
    fn check_body(&self, _req: &Request<'_>, _body: &[u8], _admitted: &mut Admitted) -> Verdict {
        Verdict::Continue
    }
}

/// What the routes' checks share across the snapshot and across reloads.
#[derive(Clone, Default)]
pub struct Shared {
    pub nonces: NonceTable,
    /// The Redis sync of `scope: cluster` rate limits, when `cluster:` is configured.
    pub cluster: Option<Arc<ClusterSync>>,
}

impl Shared {
    /// Starts the cluster sync when the config has `cluster:`.
    pub fn start(config: &Config) -> Result<Shared, String> {
        Ok(Shared {
            nonces: NonceTable::default(),
            cluster: config
                .cluster
                .as_ref()
                .map(ClusterSync::start)
                .transpose()?,
        })
    }

    /// A rate limit as configured: `name` (API id, and route path for a route's own limit)
    /// names it in Redis when it is cluster-wide.
    pub fn limiter(&self, limit: &crate::config::RateLimit, name: &str) -> Arc<Limiter> {
        let cluster = self.cluster.as_deref().map(|sync| (sync, name));
        if cluster.is_none() && limit.scope == crate::config::LimitScope::Cluster {
            tracing::warn!(target: "fngate::limits", limit = name, "scope cluster without a running cluster sync (cluster: was added by a reload?): counted by this gateway alone until a restart");
        }
        Arc::new(Limiter::new(limit, cluster))
    }
}

/// One route's checks, in order.
#[derive(Clone, Default)]
pub struct Chain(Vec<Arc<dyn Check>>);

impl Chain {
    /// `limiters`: the API-wide limiters, by API index, shared by the API's routes.
    pub fn for_route(
        config: &Config,
        route: &Route,
        limiters: &[Option<Arc<Limiter>>],
        shared: &Shared,
    ) -> Chain {
        let api = &config.apis[route.api];
        let mut checks: Vec<Arc<dyn Check>> = Vec::new();
        if let Some(cors) = &api.cors {
            checks.push(Arc::new(cors::Cors::new(cors)));
        }
        match route.auth {
            Auth::None => {}
            Auth::ApiKey => checks.push(Arc::new(apikey::ApiKeyCheck::new(
                &config.api_keys,
                &api.id,
                &route.path,
            ))),
            Auth::Jdcloud => checks.push(Arc::new(jdcloud::JdcloudCheck::new(
                Arc::new(config.jdcloud.clone()),
                &config.gateway.region,
                &shared.nonces,
            ))),
        }
        let limiter = match &route.rate_limit {
            Some(limit) => Some(shared.limiter(limit, &format!("{}:{}", api.id, route.path))),
            None => limiters.get(route.api).cloned().flatten(),
        };
        if let Some(l) = limiter {
            checks.push(Arc::new(rate_limit::RateLimitCheck::new(l)));
        }
        Chain(checks)
    }

    /// Runs the checks until one answers or refuses.
    pub fn run(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict {
        for check in &self.0 {
            match check.check(req, admitted) {
                Verdict::Continue => {}
                other => return other,
            }
        }
        Verdict::Continue
    }

    /// Runs the checks' body stage until one refuses.
    pub fn run_body(&self, req: &Request<'_>, body: &[u8], admitted: &mut Admitted) -> Verdict {
        for check in &self.0 {
            match check.check_body(req, body, admitted) {
                Verdict::Continue => {}
                other => return other,
            }
        }
        Verdict::Continue
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first value of a header, as text.
fn header_text<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    (req.header)(name).and_then(|v| std::str::from_utf8(v).ok())
}
