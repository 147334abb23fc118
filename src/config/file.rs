//! The YAML file as written by users (docs/configuration.md). Strict: unknown keys are errors. These types are
//! only the parse result; `validate` turns them into the runtime `Config`.

use super::value::{Dur, Scalar, Text};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerFile,
    #[serde(default)]
    pub gateway: GatewayFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub errors: ErrorsFile,
    #[serde(default)]
    pub functions: BTreeMap<String, Spanned<FunctionFile>>,
    #[serde(default)]
    pub apis: Vec<Spanned<ApiFile>>,
    #[serde(default)]
    pub triggers: Option<TriggersFile>,
    #[serde(default)]
    pub oss_bridge: Option<OssBridgeFile>,
    /// Credentials the API routes' `auth:` checks against.
    #[serde(default)]
    pub auth: AuthFile,
    /// What the gateways of one cluster share: the Redis behind `scope: cluster` rate limits.
    pub cluster: Option<Spanned<ClusterFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub redis: Spanned<Text>,
    /// How often each gateway adds its counts to Redis's and reads the cluster's back.
    pub sync: Option<Spanned<Dur>>,
    /// The beginning of every rate-limit key in Redis.
    pub key_prefix: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub apikey: Option<ApiKeysFile>,
    pub jdcloud: Option<JdcloudFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JdcloudFile {
    #[serde(default)]
    pub credentials: Vec<Spanned<JdcloudCredentialFile>>,
    pub max_skew: Option<Dur>,
    pub max_nonces: Option<Scalar<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JdcloudCredentialFile {
    pub access_key: Spanned<Text>,
    pub secret_key: Spanned<Text>,
    pub user: Option<Text>,
    pub account_id: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysFile {
    /// Where the key is sent (default `x-api-key`).
    pub header: Option<Spanned<Text>>,
    /// A query parameter that may carry the key instead.
    pub query: Option<Spanned<Text>>,
    #[serde(default)]
    pub keys: Vec<Spanned<ApiKeyFile>>,
    /// A YAML file holding more keys, a list of the same shape.
    pub keys_file: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub key: Spanned<Text>,
    pub user: Option<Text>,
    pub account_id: Option<Text>,
    /// API ids the key may call (default: every API).
    pub apis: Option<Vec<Spanned<Text>>>,
    /// Route path patterns the key may call (default: every route).
    pub routes: Option<Vec<Spanned<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub requests: Spanned<Scalar<u32>>,
    pub per: Spanned<Dur>,
    pub burst: Option<Spanned<Scalar<u32>>>,
    /// `ip` (default), `api_key` or `route`.
    pub key: Option<Spanned<Text>>,
    /// Distinct keys tracked at once (default 100,000).
    pub max_keys: Option<Scalar<usize>>,
    /// `local` (default: each gateway counts alone) or `cluster` (counted in `cluster.redis`).
    pub scope: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    #[serde(default)]
    pub allow_origins: Vec<Spanned<Text>>,
    #[serde(default)]
    pub allow_methods: Vec<Spanned<Text>>,
    #[serde(default)]
    pub allow_headers: Vec<Spanned<Text>>,
    #[serde(default)]
    pub expose_headers: Vec<Spanned<Text>>,
    pub allow_credentials: Option<Spanned<Scalar<bool>>>,
    pub max_age: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Vec<Spanned<Text>>,
    pub admin_listen: Option<Spanned<Text>>,
    pub threads: Option<Scalar<usize>>,
    pub grace_period: Option<Dur>,
    /// How long an idle client keep-alive connection is kept open.
    pub keepalive_timeout: Option<Dur>,
    /// Requests served on one client connection before it is closed.
    pub keepalive_requests: Option<Scalar<u32>>,
    /// A request head must arrive within this from its first byte; each body read too.
    pub read_timeout: Option<Dur>,
    /// Longest wait for a client or backend to take more of what is being written.
    pub send_timeout: Option<Dur>,
    /// Client connections open at once on the gateway's listeners.
    pub max_connections: Option<Scalar<usize>>,
    /// Where the running gateway writes its process id (for `fngate -s reload`).
    pub pid_file: Option<Text>,
    pub access_log: Option<AccessLogFile>,
    /// Listeners that speak TLS, each group with its certificate.
    #[serde(default)]
    pub tls: Vec<TlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub listen: Vec<Spanned<Text>>,
    /// PEM: the certificate, then its chain.
    pub cert: Spanned<Text>,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// A file, `stdout`, or `off`.
    pub path: Option<Spanned<Text>>,
    /// `text` or `json`.
    pub format: Option<Spanned<Text>>,
    /// Bytes gathered per worker before they are handed to the writer.
    pub buffer: Option<Scalar<usize>>,
    /// Longest time a line waits in a buffer.
    pub flush: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub region: Option<Text>,
    pub account_id: Option<Text>,
    pub owner_pin: Option<Text>,
    /// Take the request id from the client's `x-jdcloud-request-id` / `x-request-id`.
    pub trust_request_id: Option<Scalar<bool>>,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` is believed for `sourceIp`.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<Scalar<usize>>,
    pub max_reply_bytes: Option<Scalar<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsFile {
    pub expose_details: Option<Scalar<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionFile {
    pub endpoints: Option<Vec<Spanned<Text>>>,
    pub command: Option<Spanned<Vec<Text>>>,
    pub timeout: Option<Dur>,
    pub instances: Option<Spanned<Scalar<usize>>>,
    pub env: Option<Spanned<BTreeMap<String, Text>>>,
    pub workdir: Option<Spanned<Text>>,
    /// How long a started instance may take to accept connections before start-up goes on.
    pub start_timeout: Option<Spanned<Dur>>,
    pub memory_mb: Option<Scalar<u32>>,
    pub max_reply_bytes: Option<Scalar<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    pub id: Spanned<Text>,
    pub stage: Option<Text>,
    pub format: Option<Spanned<Text>>,
    /// `fngate` (503 naming the field) or `platform` (as the format's platform answers).
    pub contract_errors: Option<Spanned<Text>>,
    /// Every route's default (`none`, `apikey`, `jdcloud`).
    pub auth: Option<Spanned<Text>>,
    /// One limit shared by the API's routes.
    pub rate_limit: Option<RateLimitFile>,
    pub cors: Option<Spanned<CorsFile>>,
    pub routes: Vec<Spanned<RouteFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub path: Spanned<Text>,
    pub methods: Option<Vec<Spanned<Text>>>,
    pub function: Option<Spanned<Text>>,
    pub upstream: Option<Spanned<Text>>,
    pub auth: Option<Spanned<Text>>,
    /// The route's own limit.
    pub rate_limit: Option<RateLimitFile>,
    pub binary: Option<Spanned<Text>>,
    pub max_body_bytes: Option<Scalar<usize>>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersFile {
    #[serde(default)]
    pub oss: Vec<Spanned<OssTriggerFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssTriggerFile {
    pub name: Spanned<Text>,
    pub function: Spanned<Text>,
    pub bucket: Spanned<Text>,
    #[serde(rename = "triggerConfig")]
    pub trigger_config: Option<TriggerConfigFile>,
    pub config_file: Option<Spanned<Text>>,
}

/// A `config_file:` holds the seed's `ossTrigger.yml`: one `triggerConfig` key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDocFile {
    #[serde(rename = "triggerConfig")]
    pub trigger_config: TriggerConfigFile,
}

/// The seed's `triggerConfig`; `events` may be a list or one whitespace-separated string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfigFile {
    pub events: Spanned<EventsFile>,
    pub filter: Option<FilterFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EventsFile {
    List(Vec<String>),
    Words(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    pub key: Option<KeyFilterFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFilterFile {
    pub prefix: Option<Spanned<Text>>,
    pub suffix: Option<Spanned<Text>>,
}

/// `oss_bridge.queue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    pub kind: Spanned<Text>,
    /// redb: the directory of `queue.redb`.
    pub dir: Option<Spanned<Text>>,
    /// redis: `redis://host:port[/db]`.
    pub url: Option<Spanned<Text>>,
    pub stream: Option<Spanned<Text>>,
    pub group: Option<Spanned<Text>>,
    pub consumer: Option<Spanned<Text>>,
    pub visibility_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssBridgeFile {
    pub path: Spanned<Text>,
    pub token: Spanned<Text>,
    pub delivery: Option<Spanned<Text>>,
    /// Shorthand for `queue: {kind: redb, dir: ...}`.
    pub queue_dir: Option<Spanned<Text>>,
    pub queue: Option<Spanned<QueueFile>>,
    pub max_attempts: Option<Spanned<Scalar<u32>>>,
    pub max_event_age: Option<Dur>,
    pub verify_sns_signatures: Option<Spanned<Scalar<bool>>>,
    /// GET an SNS SubscriptionConfirmation's SubscribeURL (off: answer and log it only).
    pub confirm_subscriptions: Option<Scalar<bool>>,
    /// Hosts (`host` or `host:port`) besides AWS's SNS endpoints whose SubscribeURL is fetched.
    #[serde(default)]
    pub subscription_hosts: Vec<Text>,
    pub max_body_bytes: Option<Scalar<usize>>,
    /// async: events waiting for delivery before new notifications get 503.
    pub queue_capacity: Option<Spanned<Scalar<usize>>>,
    /// async: dead letters kept before unmappable notifications get 503.
    pub dead_letter_capacity: Option<Spanned<Scalar<usize>>>,
    /// async: deliveries in flight at once.
    pub workers: Option<Spanned<Scalar<usize>>>,
    /// async: a notification whose id was accepted this recently is not queued again.
    pub dedup_window: Option<Dur>,
    /// async: the first retry's delay; each further one doubles it, up to 5 minutes.
    pub retry_backoff: Option<Dur>,
}
