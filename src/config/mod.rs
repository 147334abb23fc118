//! Configuration: the YAML file (`file`), `${ENV}` expansion and scalar parsing (`value`), and
//! the semantic checks (`validate`) that turn it into an immutable, validated [`Config`].

mod access;
pub mod command;
mod file;
mod queue;
pub mod trigger;
mod validate;
pub mod value;

use ipnet::IpNet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Functions default to this timeout (docs/events.md).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// 6 MiB, JD Cloud's and AWS Lambda's synchronous payload limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
pub const DEFAULT_MAX_REPLY_BYTES: usize = 6 * 1024 * 1024;
/// A supervised instance that has not opened its port by then is reported; start-up goes on.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the config file; relative paths are resolved against it.
    pub base_dir: PathBuf,
    /// The file it was read from (`None` when built from text): what a reload reads again.
    pub source: Option<PathBuf>,
    pub server: ServerSettings,
    pub gateway: GatewaySettings,
    pub expose_details: bool,
    pub functions: Vec<Function>,
    pub apis: Vec<Api>,
    pub routes: Vec<Route>,
    pub triggers: Vec<OssTrigger>,
    pub oss_bridge: Option<OssBridge>,
    pub cluster: Option<ClusterSettings>,
    pub api_keys: ApiKeys,
    pub jdcloud: JdcloudAuth,
}

/// `auth.jdcloud`: whose JD Cloud signatures are accepted.
#[derive(Debug, Clone, Default)]
pub struct JdcloudAuth {
    pub credentials: Vec<JdcloudCredential>,
    /// How far `x-jdcloud-date` may be from the gateway's clock.
    pub max_skew: Duration,
    /// Nonces remembered at once (twice `max_skew` long each).
    pub max_nonces: usize,
}

#[derive(Debug, Clone)]
pub struct JdcloudCredential {
    pub access_key: String,
    pub secret_key: Secret,
    pub user: String,
    pub account_id: String,
}

/// `auth.apikey`: where keys are sent and which exist.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    /// Lower-case header name.
    pub header: String,
    pub query: Option<String>,
    pub keys: Vec<ApiKey>,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key: Secret,
    pub user: String,
    pub account_id: String,
    /// API ids it may call; `None`: every API.
    pub apis: Option<Vec<String>>,
    /// Route patterns it may call; `None`: every route.
    pub routes: Option<Vec<String>>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    ApiKey,
    Jdcloud,
}

/// A token bucket: `requests` per `per`, up to `burst` at once, one bucket per `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
    pub key: LimitKey,
    pub max_keys: usize,
    pub scope: LimitScope,
}

/// Who counts a rate limit's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Each gateway alone: a token bucket (GCRA) in memory.
    Local,
    /// Every gateway of the cluster: a fixed window counted in Redis (`cluster:`), each
    /// gateway's local bucket standing in while Redis cannot be reached.
    Cluster,
}

/// `cluster:`: what the gateways of one cluster share.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// `redis://…`: a credential, never printed.
    pub redis: Secret,
    pub sync: Duration,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (`sourceIp`).
    Ip,
    /// The API key the request was admitted with.
    ApiKey,
    /// One bucket for everyone.
    Route,
}

/// Cross-origin settings of an API (AWS HTTP API `corsConfiguration`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    /// Exact origins, or `*`.
    pub allow_origins: Vec<String>,
    /// Upper-case methods, or `*`.
    pub allow_methods: Vec<String>,
    /// Lower-case header names, or `*`.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<Duration>,
}

/// One `triggers.oss` entry (docs/oss-bridge.md).
#[derive(Debug, Clone)]
pub struct OssTrigger {
    /// Written into events as `detail.s3.configurationId`.
    pub name: String,
    pub function: usize,
    pub bucket: String,
    pub events: trigger::EventSet,
    /// Literal, case-sensitive, matched on the decoded key; empty matches every key.
    pub prefix: String,
    pub suffix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Answer 2xx once every matched function has answered 2xx.
    Sync,
    /// Answer 2xx once the events are durably stored; deliver from workers.
    Async,
}

/// The bucket-notification endpoint (`oss_bridge`).
#[derive(Debug, Clone)]
pub struct OssBridge {
    pub path: String,
    pub token: Secret,
    pub delivery: Delivery,
    /// Where `delivery: async` keeps accepted events; `None` only with `delivery: sync`.
    pub queue: Option<QueueSettings>,
    pub max_attempts: u32,
    pub max_event_age: Duration,
    pub confirm_subscriptions: bool,
    /// Hosts besides AWS's SNS endpoints whose SubscribeURL may be fetched.
    pub subscription_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub queue_capacity: usize,
    pub dead_letter_capacity: usize,
    pub workers: usize,
    pub dedup_window: Duration,
    pub retry_backoff: Duration,
}

/// `oss_bridge.queue`: where accepted events wait for delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueSettings {
    /// An embedded redb file, `dir/queue.redb`: one gateway's own queue (the default).
    Redb { dir: PathBuf },
    /// A Redis stream that every gateway of one consumer group delivers from (docs/scaling.md).
    Redis(RedisQueue),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisQueue {
    /// `redis://[user:password@]host:port[/db]`: a credential, never printed.
    pub url: Secret,
    /// The stream's key; its retries, dead letters and seen ids use keys beginning with it.
    pub stream: String,
    pub group: String,
    /// This gateway's name in the group; unique per process unless set.
    pub consumer: Option<String>,
    /// How long an event may stay with a consumer that stopped renewing it before another
    /// gateway takes it over.
    pub visibility_timeout: Duration,
}

/// A credential: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub threads: usize,
    pub grace_period: Duration,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: Option<u32>,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    /// Relative to the config file's directory.
    pub pid_file: Option<PathBuf>,
    /// `None`: `access_log: {path: off}`.
    pub access_log: Option<AccessLogSettings>,
    pub tls: Vec<TlsListeners>,
}

/// Listeners that speak TLS with one certificate (`server.tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListeners {
    pub listen: Vec<SocketAddr>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogSettings {
    /// `None`: standard output.
    pub path: Option<PathBuf>,
    pub json: bool,
    pub buffer: usize,
    pub flush: Duration,
}

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub region: String,
    pub account_id: String,
    /// base64 of `owner_pin`, as written into events.
    pub base64_owner_pin: String,
    pub trust_request_id: bool,
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub command: Option<Command>,
    pub timeout: Duration,
    pub max_reply_bytes: usize,
    pub memory_mb: u32,
}

/// One HTTP endpoint of a function backend, resolved at load time.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
    /// Host header value (`host:port` as written in the URL).
    pub authority: String,
    pub path_and_query: String,
}

/// A function process the gateway starts itself (supervised; see docs/runtime.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// A bare name (looked up in PATH when started) or a path resolved against `workdir`.
    pub program: PathBuf,
    /// Arguments as written; `{port}` is replaced when an instance starts.
    pub args: Vec<String>,
    pub instances: usize,
    /// The function's own `env:`, on top of the gateway's environment.
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub start_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// The JD Cloud envelope with the request under `detail`.
    Jdcloud,
    /// Only the inner object, as the seed document prints it.
    JdcloudDetail,
    /// AWS API Gateway's Lambda-proxy event, payload format 1.0 (REST APIs).
    AwsV1,
    /// AWS API Gateway's payload format 2.0 (HTTP APIs).
    AwsV2,
    /// Alibaba Cloud Function Compute's API-gateway trigger event.
    Aliyun,
}

/// How a reply that breaks the API's reply contract is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractErrors {
    /// 503 `RESPONSE_INVALID`, naming the field (fngate's own).
    Fngate,
    /// As the format's platform answers: AWS's 502 `{"message": "Internal server error"}`,
    /// Alibaba Cloud's 503 without a body.
    Platform,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub id: String,
    pub stage: String,
    pub format: EventFormat,
    pub contract_errors: ContractErrors,
    /// `jrn:apigateway:<region>:<accountId>:api/<apiId>`
    pub resource: String,
    /// Shared by the routes that have no limit of their own.
    pub rate_limit: Option<RateLimit>,
    pub cors: Option<Cors>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub api: usize,
    pub path: String,
    /// `None` = every method.
    pub methods: Option<Vec<http::Method>>,
    pub target: Target,
    /// Non-UTF-8 bodies are sent base64 (`binary: base64`).
    pub binary: bool,
    pub max_body_bytes: usize,
    /// Route timeout, else the function's.
    pub timeout: Duration,
    /// The route's `auth`, else its API's.
    pub auth: Auth,
    /// The route's own limit (the API's applies when `None`).
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Function(usize),
    Upstream(Upstream),
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    pub addr: SocketAddr,
}

/// Every problem found in a config file, each with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let mut config = Config::from_yaml(&text, &base, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates YAML text; `base_dir` anchors relative paths, `file` names the source
    /// in error messages.
    pub fn from_yaml(text: &str, base_dir: &Path, file: &str) -> Result<Config, ConfigError> {
        let parsed: file::FileConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            problems: vec![validate::parse_problem(&e)],
        })?;
        validate::validate(parsed, base_dir).map_err(|problems| ConfigError {
            file: file.to_owned(),
            problems,
        })
    }
}
