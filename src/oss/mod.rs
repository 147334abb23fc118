//! The OSS-trigger bridge (docs/oss-bridge.md): bucket notifications in, JD Cloud OSS-trigger events out.
//!
//! `classify` recognises the sender and its control messages, `records` reduces each sender's
//! record to one shape, `event` matches it against the triggers and writes the JD event.
//! `deliver` is one attempt; `delivery: async` stores events first (`queue`), either in a local
//! redb file (`local`, delivered by `worker`) or in a Redis stream that several gateways share
//! (`streams`, delivered by `consumer`).

pub mod auth;
pub mod classify;
pub mod consumer;
pub mod deliver;
pub mod event;
pub mod local;
pub mod queue;
pub mod records;
pub mod stats;
pub mod streams;
pub mod subscribe;
pub mod worker;
