//! Route metrics in Prometheus text format (`GET /metrics` on the admin listener), with
//! prometheus-client. Every series is described in docs/operations.md.
//!
//! The request path touches no map and takes no lock for a counter: each route's handles are
//! looked up once, when a snapshot is built (`RouteMetrics`), and a request adds to atomics
//! (a histogram takes its own uncontended mutex). Series live as long as the process, across
//! reloads, as Prometheus expects of counters.

use crate::oss::queue::AsyncDelivery;
use crate::oss::stats::Stats;
use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Request and function-call latency buckets, in seconds: 0.5 ms to 30 s.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The methods counted by name; any other is `OTHER`, so a client cannot create series.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

type Labels<const N: usize> = [(&'static str, String); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The pool's counters, shared by every `Invoker`.
#[derive(Clone, Default, Debug)]
pub struct PoolMetrics {
    pub opened: Counter,
    pub reused: Counter,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels<4>, Counter>,
    request_seconds: Histograms<2>,
    function_seconds: Histograms<3>,
    errors: Family<[(&'static str, &'static str); 1], Counter>,
    restarts: Family<Labels<1>, Counter>,
    pub pool: PoolMetrics,
    /// Access-log lines dropped because the writer fell behind.
    pub log_dropped: Counter,
    pub tls_failures: Counter,
}

impl Metrics {
    /// `queue` is filled in once the async OSS delivery has started (it needs the snapshot,
    /// which needs these metrics).
    pub fn new(oss: Arc<Stats>, queue: Arc<OnceLock<Arc<AsyncDelivery>>>) -> Metrics {
        let mut registry = Registry::with_prefix("fngate");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by API, route pattern (- when none matched), method and status class",
            requests.clone(),
        );
        let request_seconds: Histograms<2> = Family::new_with_constructor(histogram);
        registry.register(
            "request_duration_seconds",
            "Whole requests, from the parsed head to the last byte of the answer",
            request_seconds.clone(),
        );
        let function_seconds: Histograms<3> = Family::new_with_constructor(histogram);
        registry.register(
            "function_duration_seconds",
            "Function calls alone, from the first byte of the event sent to the whole reply read",
            function_seconds.clone(),
        );
        let errors = Family::default();
        registry.register(
            "gateway_errors",
            "Answers the gateway made itself, by x-fngate-error code",
            errors.clone(),
        );
        let restarts = Family::default();
        registry.register(
            "function_restarts",
            "Supervised function instances started again after they exited",
            restarts.clone(),
        );
        let pool = PoolMetrics::default();
        registry.register(
            "backend_connections_opened",
            "Connections opened to function backends and upstreams",
            pool.opened.clone(),
        );
        registry.register(
            "backend_connections_reused",
            "Requests sent on a pooled keep-alive connection",
            pool.reused.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "access_log_dropped_lines",
            "Access-log lines dropped because the log writer could not keep up",
            log_dropped.clone(),
        );
        let tls_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out (the connection is closed)",
            tls_failures.clone(),
        );
        registry.register_collector(Box::new(OssCollector { stats: oss, queue }));
        Metrics {
            registry,
            requests,
            request_seconds,
            function_seconds,
            errors,
            restarts,
            pool,
            log_dropped,
            tls_failures,
        }
    }

    /// The text exposition, from memory (the OSS queue's depths are kept as counters).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    pub fn error(&self, code: &'static str) {
        self.errors.get_or_create(&[("code", code)]).inc();
    }

    /// The restart counter of one function's instances.
    pub fn restarts(&self, function: &str) -> Counter {
        self.restarts
            .get_or_create_owned(&[("function", function.to_owned())])
    }

    /// The handles of one route (`route` is its pattern, or `-`/`oss_bridge`).
    pub fn route(self: &Arc<Self>, api: &str, route: &str, function: Option<&str>) -> RouteMetrics {
        let labels = [("api", api.to_owned()), ("route", route.to_owned())];
        RouteMetrics {
            metrics: self.clone(),
            api: api.to_owned(),
            route: route.to_owned(),
            requests: Default::default(),
            seconds: self.request_seconds.get_or_create_owned(&labels),
            function_seconds: function.map(|f| {
                let [api, route] = labels.clone();
                self.function_seconds
                    .get_or_create_owned(&[api, route, ("function", f.to_owned())])
            }),
        }
    }
}

/// One route's series.
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    api: String,
    route: String,
    /// By method, then status class; created on first use so that only seen pairs show.
    requests: [[OnceLock<Counter>; CLASSES.len()]; METHODS.len()],
    seconds: Histogram,
    function_seconds: Option<Histogram>,
}

impl RouteMetrics {
    /// One answered request.
    pub fn observe(
        &self,
        method: &Method,
        status: u16,
        took: Duration,
        function: Option<Duration>,
    ) {
        let m = method_index(method);
        let c = usize::from(status / 100).clamp(1, CLASSES.len()) - 1;
        self.requests[m][c]
            .get_or_init(|| {
                self.metrics.requests.get_or_create_owned(&[
                    ("api", self.api.clone()),
                    ("route", self.route.clone()),
                    ("method", METHODS[m].to_owned()),
                    ("status_class", CLASSES[c].to_owned()),
                ])
            })
            .inc();
        self.seconds.observe(took.as_secs_f64());
        if let (Some(h), Some(f)) = (&self.function_seconds, function) {
            h.observe(f.as_secs_f64());
        }
    }
}

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The OSS bridge's counters and queue depths, read at each scrape.
struct OssCollector {
    stats: Arc<Stats>,
    queue: Arc<OnceLock<Arc<AsyncDelivery>>>,
}

impl std::fmt::Debug for OssCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("OssCollector")
    }
}

impl Collector for OssCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in self.stats.snapshot() {
            let counter = ConstCounter::new(value);
            let name = format!("oss_{name}");
            let metric = encoder.encode_descriptor(&name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        if let Some(q) = self.queue.get() {
            let (pending, dead) = q.depths();
            let gauges = [
                (
                    "oss_queue_pending",
                    "OSS events waiting for delivery",
                    pending,
                ),
                (
                    "oss_dead_letters",
                    "OSS events in the dead-letter store",
                    dead,
                ),
            ];
            for (name, help, value) in gauges {
                let gauge = ConstGauge::new(value as i64);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}
