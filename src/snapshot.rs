//! An immutable view of everything a request needs — config, route table, function clients —
//! built off the hot path and swapped whole (`ArcSwap`) so that a reload is one store. A request
//! holds the snapshot it started with until it ends.

use crate::checks::{Chain, Shared};
use crate::config::Config;
use crate::config::Target;
use crate::event::apigw::Template;
use crate::invoke::FunctionClient;
use crate::metrics::{Metrics, RouteMetrics};
use crate::routing::RouteTable;
use crate::supervisor::InstanceState;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    pub table: RouteTable,
    pub functions: Vec<FunctionClient>,
    /// Each API's event template, by the API's index in `config.apis`.
    pub templates: Vec<Template>,
    /// The supervised instances the functions' endpoints lead to.
    pub instances: Vec<Arc<InstanceState>>,
    /// 1 for the config the gateway started with, one more for each reload.
    pub generation: u64,
    /// Each route's series, by index in `config.routes`.
    pub route_metrics: Vec<RouteMetrics>,
    /// Requests no route took (404, 405, 400 before routing).
    pub unrouted: RouteMetrics,
    /// The OSS bridge endpoint's, when there is one.
    pub bridge_metrics: Option<RouteMetrics>,
    /// Each `server.tls` entry's certificate, read when the snapshot was built.
    pub tls: Vec<Arc<rustls::ServerConfig>>,
    /// Each route's checks (CORS, authentication, rate limit), by index in `config.routes`.
    pub chains: Vec<Chain>,
}

impl Snapshot {
    pub fn new(
        config: Config,
        instances: Vec<Arc<InstanceState>>,
        generation: u64,
        metrics: &Arc<Metrics>,
        shared: &Shared,
    ) -> Result<Snapshot, String> {
        let table = RouteTable::build(&config.routes).map_err(|c| {
            c.iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let functions = config.functions.iter().map(FunctionClient::new).collect();
        let templates = config
            .apis
            .iter()
            .map(|api| Template::new(api, &config.gateway))
            .collect();
        let tls = (config.server.tls.iter())
            .map(|t| crate::tls::server_config(&t.cert, &t.key))
            .collect::<Result<_, _>>()?;
        // API-wide limits: one set of buckets shared by the API's routes.
        let limiters: Vec<_> = (config.apis.iter())
            .map(|a| a.rate_limit.as_ref().map(|l| shared.limiter(l, &a.id)))
            .collect();
        let chains = (config.routes.iter())
            .map(|r| Chain::for_route(&config, r, &limiters, shared))
            .collect();
        let route_metrics = config
            .routes
            .iter()
            .map(|r| {
                let function = match r.target {
                    Target::Function(f) => Some(config.functions[f].name.as_str()),
                    Target::Upstream(_) => None,
                };
                metrics.route(&config.apis[r.api].id, &r.path, function)
            })
            .collect();
        Ok(Snapshot {
            tls,
            chains,
            route_metrics,
            unrouted: metrics.route("-", "-", None),
            bridge_metrics: (config.oss_bridge.as_ref())
                .map(|_| metrics.route("-", "oss_bridge", None)),
            config,
            table,
            functions,
            templates,
            instances,
            generation,
        })
    }
}
