//! fngate: an API gateway on pingora that turns HTTP requests into JD Cloud function events.
//!
//! Data flows one way: `config` (YAML → validated Config) → `routing` (lookup) → `event`
//! (request → event bytes) → `invoke` (pooled call to a function backend) → `contract` (reply
//! bytes → HTTP answer or violation) → `respond`; `gateway` runs that path inside pingora and
//! `server` wires listeners, signals and shutdown.

pub mod admin;
pub mod bridge;
pub mod client;
pub mod config;
pub mod contract;
pub mod errors;
pub mod event;
pub mod gateway;
pub mod http1;
pub mod invoke;
pub mod oss;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod supervisor;
pub mod text;
