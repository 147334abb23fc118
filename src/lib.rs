//! fngate: an API gateway on pingora that turns HTTP requests into JD Cloud function events.
//!
//! Data flows one way: `http1` (bytes → one request) → `routing` (lookup) → `event` (request →
//! event bytes) → `invoke` (pooled call to a function backend) → `contract` (reply bytes → HTTP
//! answer or violation) → `http1` (the answer); `proxy` takes `upstream:` routes instead.
//! `gateway` runs that path for each request of the connections pingora accepts; `config`
//! turns YAML into a validated Config and `server` wires listeners, signals and shutdown.

pub mod access_log;
pub mod admin;
pub mod bridge;
pub mod checks;
pub mod client;
pub mod config;
pub mod contract;
pub mod errors;
pub mod event;
pub mod gateway;
pub mod http1;
pub mod invoke;
pub mod metrics;
pub mod oss;
pub mod proxy;
pub mod reload;
pub mod remote;
pub mod routing;
pub mod runner;
pub mod server;
pub mod snapshot;
pub mod supervisor;
pub mod swar;
pub mod text;
pub mod tls;
pub mod workers;
